"""Which row each id reads, per feature and method, and what it costs in bytes.

Methods (the names a sweep config uses):

- ``full``: every id seen in training owns a row; unseen ids share one extra row.
- ``hash``: the hashing trick (``learned_hash.fit_hash(method="hash")``).
- ``frequency``: hot ids own rows, the rest hashed (``method="frequency"``).
- ``qr``: quotient-remainder (Shi et al. 2020): an id is hashed into ``q * m`` slots and reads row
  ``slot // m`` of a quotient table and row ``slot % m`` of a remainder table; the model multiplies
  the two rows. Two tables of ``q + m`` rows in all, no per-id storage.
- ``learned``: ``fit_hash(method="learned")`` from co-occurrence in the training log.
- ``learned_trained``: a learned map from the rows of a trained full table (compression after
  training): buckets from the trained rows, each shared row initialised with the traffic-weighted
  mean of its members' rows, then an optional short fine-tune.

Budgets are bytes, all of them: for every feature its rows times the format's row record
(``FORMATS[fmt].row_bytes(dim)``, block scales included) plus the id map's own ``nbytes``.
A sweep's budget is a fraction of the full fp32 tables (rows times ``4 * dim``). Features with
fewer ids than ``min_vocab`` keep full tables in the run's format and pay for them first; the rest
of the budget goes to the compressed features in proportion to their full sizes, and each method
gets as many rows as fit its share once its map is paid for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embcompress.errors import ConfigError, param_error
from embcompress.formats.spec import get_format

from .model import TableShape

METHODS = ("full", "hash", "frequency", "qr", "learned", "learned_trained")
MAX_SOLVE_STEPS = 8


@dataclass
class FeatureMap:
    """How one feature's ids become row indices, and the bytes it costs."""

    feature: str
    method: str
    shape: TableShape
    id_map: object  # embcompress.IdMap; for "qr" the map into q*m slots
    info: dict

    @property
    def map_bytes(self) -> int:
        return int(self.id_map.nbytes)

    def index(self, ids: np.ndarray) -> np.ndarray:
        """Row index columns (n, ``shape.n_columns``) of raw int64 ``ids``."""
        rows = self.id_map.lookup(np.ascontiguousarray(ids, dtype=np.int64)).astype(np.int64)
        if self.method == "qr":
            m = self.shape.rows[1]
            return np.stack([rows // m, rows % m], axis=1)
        return rows[:, None]

    def table_bytes(self, fmt: str, dim: int) -> int:
        return sum(self.shape.rows) * get_format(fmt).row_bytes(dim)

    def total_bytes(self, fmt: str, dim: int) -> int:
        return self.table_bytes(fmt, dim) + self.map_bytes


def full_map(feature: str, stats) -> FeatureMap:
    """Every id of the training log owns a row; unseen ids share row ``n_ids``."""
    from embcompress.idmap import IdMap

    ids, _ = stats.frequencies(feature)
    n = ids.size
    m = IdMap.from_arrays(ids, np.arange(n), n + 1, fallback_rows=[n])
    return FeatureMap(feature, "full", TableShape((n + 1,)), m, {"n_ids": int(n)})


def full_rows(stats, feature: str) -> int:
    return int(stats.frequencies(feature)[0].size) + 1


def _solve(build: Callable[[int], object], budget: int, row_bytes: int, upper: int, owner: str):
    """The largest row count ``r <= upper`` whose map (``build(r)``) and rows fit ``budget``.

    Map bytes depend on ``r`` (row dtype, hot rows), so iterate: price the map at a guess, shrink
    the guess until map plus rows fit.
    """
    r = min(upper, budget // row_bytes)
    best = None
    for _ in range(MAX_SOLVE_STEPS):
        if r < 1:
            break
        m = build(r)
        if r * row_bytes + m.nbytes <= budget:
            best = (r, m)
            nxt = min(upper, (budget - m.nbytes) // row_bytes)
            if nxt <= r:
                break  # cannot grow
        else:
            nxt = min(r - 1, (budget - m.nbytes) // row_bytes)
            if best is not None and nxt <= best[0]:
                break
        r = nxt
    if best is None:
        raise ConfigError(
            f"The budget of {budget} bytes cannot hold even one row and the id map for {owner}. "
            f"Raise the budget or lower 'min_vocab' so fewer features are compressed."
        )
    return best


def compressed_map(
    method: str,
    feature: str,
    stats,
    budget: int,
    *,
    dim: int,
    fmt: str,
    seed: int,
    params: dict | None = None,
    trained_rows: np.ndarray | None = None,
) -> FeatureMap:
    """The map of ``method`` for ``feature`` with the most rows that fit ``budget`` bytes.

    ``params`` go to ``fit_hash`` (e.g. ``hot_rows``, ``embedding``); ``trained_rows`` (the full
    table's rows, one per id of ``stats.frequencies(feature)``) is needed by ``learned_trained``.
    """
    from learned_hash import fit_hash

    owner = f"method {method!r} on feature {feature!r}"
    if method not in METHODS or method == "full":
        raise param_error("method", "compressed_map", f"be one of {METHODS[1:]}", method)
    params = dict(params or {})
    rb = get_format(fmt).row_bytes(dim)
    upper = full_rows(stats, feature)
    if method == "qr":
        def build(r):
            m_rows = max(1, r // 2)
            q_rows = max(1, r - m_rows)
            return fit_hash(stats, feature, q_rows * m_rows, method="hash", seed=seed)

        r, idm = _solve(build, budget, rb, 2 * upper, owner)
        m_rows = max(1, r // 2)
        q_rows = max(1, r - m_rows)
        return FeatureMap(feature, method, TableShape((q_rows, m_rows)), idm, {"slots": q_rows * m_rows})
    if method == "learned_trained":
        if trained_rows is None:
            raise param_error("trained_rows", "compressed_map", "hold the trained full table's rows for 'learned_trained'", None)
        # k-means on the raw trained rows: its weighted squared error is exactly what replacing
        # each id's row by its bucket's traffic-weighted mean costs
        params.setdefault("embedding", (stats.frequencies(feature)[0], trained_rows))
        kind = "learned"
    else:
        kind = method

    def build(r):
        return fit_hash(stats, feature, r, method=kind, seed=seed, **params)

    r, idm = _solve(build, budget, rb, upper, owner)
    return FeatureMap(feature, method, TableShape((r,)), idm, {"hot_rows": int(idm.hot_rows)})


@dataclass(frozen=True)
class BudgetPlan:
    """Bytes per compressed feature for one budget, and the fixed cost of the uncompressed ones."""

    reference_bytes: int  # the full fp32 tables
    budget_bytes: int
    fixed_bytes: int
    shares: dict[str, int]


def plan_budget(stats, features: list[str], compressed: list[str], fraction: float, *, dim: int, fmt: str,
                full_maps: dict[str, FeatureMap]) -> BudgetPlan:
    """Split ``fraction`` of the full fp32 tables' bytes over the compressed features."""
    fp32 = get_format("fp32").row_bytes(dim)
    reference = sum(full_rows(stats, f) * fp32 for f in features)
    budget = int(fraction * reference)
    fixed = sum(full_maps[f].total_bytes(fmt, dim) for f in features if f not in compressed)
    left = budget - fixed
    if left <= 0:
        raise ConfigError(
            f"A budget of {fraction:g} of the full tables ({budget} bytes) does not even hold the "
            f"uncompressed features ({fixed} bytes). Lower 'min_vocab' so more features are compressed."
        )
    weights = np.array([full_rows(stats, f) for f in compressed], dtype=np.float64)
    shares = {f: int(left * w / weights.sum()) for f, w in zip(compressed, weights, strict=True)}
    return BudgetPlan(reference, budget, fixed, shares)


def shared_row_init(id_map, ids: np.ndarray, counts: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Each compressed row as the access-weighted mean of its members' trained rows.

    ``rows[i]`` is the trained vector of ``ids[i]``; rows no seen id lands on start at zero.
    """
    target = id_map.lookup(ids).astype(np.int64)
    w = counts.astype(np.float64)
    out = np.zeros((n_rows, rows.shape[1]))
    np.add.at(out, target, rows * w[:, None])
    tot = np.bincount(target, weights=w, minlength=n_rows)
    return (out / np.maximum(tot, 1e-12)[:, None]).astype(np.float32)
