"""Training and prediction for the click model: Adam, mini-batches, early stopping on validation.

Early stopping watches validation logloss by default: on Frappe, AUC keeps creeping up for
epochs after the model has become overconfident (validation logloss 0.24 at its best epoch, 0.5
ten epochs later at nearly the same AUC), and a calibrated model is what a CTR system serves.

The batches are slices of precomputed index tensors (no DataLoader, no per-row Python), so a
small model on ~60k rows trains in about a second per epoch on one core.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from embcompress.errors import param_error

from .metrics import auc, logloss


@dataclass(frozen=True)
class TrainConfig:
    """How to train: epochs (an upper bound), early stopping on ``monitor`` of validation, Adam."""

    epochs: int = 10
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 1
    monitor: str = "logloss"  # "logloss" | "auc"
    finetune_epochs: int = 1  # short fine-tune after compressing a trained table
    finetune_lr: float = 5e-4
    threads: int | None = None  # torch threads; None keeps torch's setting
    version: int = 1

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise param_error(name, "TrainConfig", "be an integer >= 1", v)
        def number(v):  # JSON's true is not 1, and an infinite step diverges only after minutes
            return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)

        if not (isinstance(self.finetune_epochs, int) and not isinstance(self.finetune_epochs, bool) and self.finetune_epochs >= 0):
            raise param_error("finetune_epochs", "TrainConfig", "be an integer >= 0", self.finetune_epochs)
        for name in ("lr", "finetune_lr"):
            v = getattr(self, name)
            if not (number(v) and v > 0):
                raise param_error(name, "TrainConfig", "be a positive finite number", v)
        if not (number(self.weight_decay) and self.weight_decay >= 0):
            raise param_error("weight_decay", "TrainConfig", "be a finite number >= 0", self.weight_decay)
        if isinstance(self.version, bool) or self.version != 1:  # as SweepConfig refuses a version it does not know
            raise param_error("version", "TrainConfig", "be 1 (this toolkit's training config version)", self.version)
        if self.monitor not in ("logloss", "auc"):
            raise param_error("monitor", "TrainConfig", "be 'logloss' or 'auc'", self.monitor)
        if self.threads is not None and not (isinstance(self.threads, int) and not isinstance(self.threads, bool) and self.threads >= 1):
            raise param_error("threads", "TrainConfig", "be None or an integer >= 1", self.threads)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Encoded:
    """One split as tensors: row indices (n, columns), dense features or None, labels."""

    index: torch.Tensor
    dense: torch.Tensor | None
    label: torch.Tensor

    @classmethod
    def from_numpy(cls, index: np.ndarray, dense: np.ndarray | None, label: np.ndarray) -> Encoded:
        return cls(
            torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)),
            None if dense is None else torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(label, dtype=np.float32)),
        )

    def __len__(self) -> int:
        return int(self.label.shape[0])


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities (float64) of every row, the sigmoid taken in float64: in float32 every
    logit above ~17 rounds to 1.0 and confident rows tie, which changes the AUC."""
    model.eval()
    out = []
    for s in range(0, len(data), batch_size):
        dense = None if data.dense is None else data.dense[s : s + batch_size]
        out.append(torch.sigmoid(model(data.index[s : s + batch_size], dense).double()).numpy())
    return np.concatenate(out)


def fit(
    model: nn.Module,
    train: Encoded,
    validation: Encoded,
    config: TrainConfig,
    *,
    seed: int,
    epochs: int | None = None,
    lr: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Train ``model`` in place; keeps the weights of the epoch with the best validation score.

    Returns the history: validation AUC and logloss per epoch and the best epoch. With
    ``config.threads`` set, torch trains on that many threads and is given back its own count after.
    """
    if config.threads is None:
        return _fit(model, train, validation, config, seed, epochs, lr, progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit(model, train, validation, config, seed, epochs, lr, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(model, train, validation, config, seed, epochs, lr, progress) -> dict:
    epochs = config.epochs if epochs is None else epochs
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr if lr is None else lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    y_val = validation.label.numpy()
    best = (-np.inf, -1, None)
    history: dict[str, list] = {"val_auc": [], "val_logloss": []}
    n = len(train)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, config.batch_size):
            b = perm[s : s + config.batch_size]
            dense = None if train.dense is None else train.dense[b]
            loss = loss_fn(model(train.index[b], dense), train.label[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        p_val = predict(model, validation)
        history["val_auc"].append(auc(y_val, p_val))
        history["val_logloss"].append(logloss(y_val, p_val))
        if progress is not None:
            progress(epoch + 1, epochs)
        score = history["val_auc"][-1] if config.monitor == "auc" else -history["val_logloss"][-1]
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= config.patience:
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
    return {**history, "best_epoch": best[1], "epochs_run": len(history["val_auc"])}
