"""A DLRM-style click model whose embedding rows come through a pluggable compression.

Each categorical feature looks up one vector: from a plain table (full, hashing trick, frequency
hybrid, learned maps: they differ only in which row an id reads) or, for quotient-remainder, the
elementwise product of a row of a quotient table and a row of a remainder table. Dense features,
where present, go through a bottom MLP to one more vector. All vectors interact by pairwise dot
products, and a top MLP reads the dot products with the dense vector. Without dense features a
learned constant vector stands in for it, so each feature also gets a first-order term.

The model takes row indices, not raw ids: the id maps run once per dataset outside the model
(``compression.py``), so training reads precomputed int64 index columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TableShape:
    """Rows of the table(s) of one feature: ``(n_rows,)`` plain, ``(q, m)`` quotient-remainder."""

    rows: tuple[int, ...]

    @property
    def n_columns(self) -> int:
        return len(self.rows)


def _mlp(sizes: list[int], last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """Embeddings per feature, bottom MLP, pairwise dot interactions, top MLP; outputs logits.

    ``forward(index, dense)``: ``index`` int64 (batch, sum of ``n_columns``) row indices, feature
    after feature (a quotient-remainder feature uses two columns); ``dense`` float32 or None.
    """

    def __init__(
        self,
        tables: list[TableShape],
        dim: int,
        *,
        n_dense: int = 0,
        bottom: tuple[int, ...] = (64,),
        top: tuple[int, ...] = (64, 32),
        init_std: float = 0.05,
    ):
        super().__init__()
        self.shapes = list(tables)
        self.dim = dim
        self.n_dense = n_dense
        self.embeddings = nn.ModuleList()
        for shape in self.shapes:
            tabs = nn.ModuleList(nn.Embedding(r, dim) for r in shape.rows)
            for k, t in enumerate(tabs):
                # a QR remainder table multiplies its quotient row, so start it near one
                nn.init.normal_(t.weight, mean=1.0 if k else 0.0, std=init_std)
            self.embeddings.append(tabs)
        if n_dense:
            self.bottom = _mlp([n_dense, *bottom, dim], last_act=True)
        else:
            self.bottom = None
            self.constant = nn.Parameter(torch.randn(dim) * init_std)
        n_vec = len(self.shapes) + 1
        n_inter = n_vec * (n_vec - 1) // 2
        self.top = _mlp([n_inter + dim, *top, 1], last_act=False)
        iu = torch.triu_indices(n_vec, n_vec, offset=1)
        self.register_buffer("_iu0", iu[0], persistent=False)
        self.register_buffer("_iu1", iu[1], persistent=False)

    def vectors(self, index: torch.Tensor) -> list[torch.Tensor]:
        out = []
        col = 0
        for tabs in self.embeddings:
            v = tabs[0](index[:, col])
            for k in range(1, len(tabs)):
                v = v * tabs[k](index[:, col + k])
            col += len(tabs)
            out.append(v)
        return out

    def forward(self, index: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        vecs = self.vectors(index)
        if self.bottom is not None:
            d = self.bottom(dense)
        else:
            d = self.constant.expand(index.shape[0], -1)
        stack = torch.stack([d, *vecs], dim=1)  # (batch, n_vec, dim)
        z = torch.bmm(stack, stack.transpose(1, 2))
        inter = z[:, self._iu0, self._iu1]
        return self.top(torch.cat([d, inter], dim=1)).squeeze(1)

    def table_weights(self) -> list[list[torch.Tensor]]:
        """The weight tensors of every feature's table(s)."""
        return [[t.weight for t in tabs] for tabs in self.embeddings]

    @torch.no_grad()
    def set_table(self, feature: int, k: int, weight: np.ndarray) -> None:
        self.embeddings[feature][k].weight.copy_(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
