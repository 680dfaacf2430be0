"""Which row each id reads, per feature and method, and what it costs in bytes.

Methods (the names a sweep config uses):

- ``full``: every id seen in training owns a row; unseen ids share one extra row (with a sweep's
  ``full_min_count``, ids seen fewer times share it too).
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
A sweep's budget is a fraction of the full fp32 tables (rows times ``4 * dim``) of the compressed
features (those with at least ``min_vocab`` training ids: the big tables, which are the ones worth
compressing); features with fewer ids keep full tables, the same in every run, and their bytes are
reported beside. The budget goes to the compressed features in proportion to their full sizes,
and each method gets as many rows as fit its share once its map is paid for.

A per-id map costs bytes that the hashing trick does not pay: at least a byte per id when the ids
are dense integers (``"direct"`` layout), about 13 bytes per id when they are hashed strings (int64
keys in an open-addressing table at load 0.75, as on Criteo). **The map-share rule**: a learned
map (``learned`` and ``learned_trained``) holds the ``K`` most accessed training ids, ``K`` the
largest for which the map's ``nbytes`` stay within ``max_map_share`` of the feature's bytes
(default :data:`MAX_MAP_SHARE`; every seen id when they fit), and hashes the rest (rarer ids and
unseen ones) into its cold rows; the rows take the rest of the bytes (see
:func:`_map_share_plan` for the width of the map's row entries). Mapping every id instead ate up
to 92% of a TalkingData feature's bytes (255 rows against 3,107 for the hashing trick) and left
6-45 rows per Criteo feature against 101-413 (and lost 0.040 AUC there at 1/10). The default 0.5
keeps every id on Frappe (its maps take at most 42% there, so its runs are unchanged) and is the
largest share measured that did not lose on Criteo or TalkingData (README, "Measured on Criteo
and TalkingData").
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
MAX_MAP_SHARE = 0.5


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


def full_map(feature: str, stats, min_count: int = 1) -> FeatureMap:
    """Every id of the training log seen at least ``min_count`` times owns a row; the others and
    unseen ids share row ``n_ids``. With ``min_count`` 1 that row is never trained (no training
    id reads it); 2 trains it on the ids seen once, as a test's unseen ids are read."""
    from embcompress.idmap import IdMap

    ids, counts = stats.frequencies(feature)
    ids = ids[counts >= min_count]
    n = ids.size
    m = IdMap.from_arrays(ids, np.arange(n), n + 1, fallback_rows=[n])
    return FeatureMap(feature, "full", TableShape((n + 1,)), m, {"n_ids": int(n)})


def full_rows(stats, feature: str) -> int:
    return int(stats.frequencies(feature)[0].size) + 1


def _largest_rows(price: Callable[[int], int], budget: int, row_bytes: int, upper: int) -> int:
    """The largest ``r <= upper`` with ``r * row_bytes + price(r) <= budget`` (0 if none).

    ``price(r)``, the map's bytes at ``r`` rows, never falls as ``r`` grows (the row dtype only
    widens), so the total is increasing and a binary search finds the edge.
    """
    lo, hi = 0, min(upper, budget // row_bytes) + 1  # total(lo) fits (or lo = 0), total(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if mid * row_bytes + price(mid) <= budget else (lo, mid)
    return lo


def _fit_within(build: Callable[[int], object], r: int, budget: int, row_bytes: int, owner: str, min_rows: int = 1):
    """Fit at ``r`` rows; if the fitted map came out larger than priced, step down until it fits.

    ``min_rows``: the fewest rows the method can have (qr: a quotient and a remainder row, so a
    smaller ``r`` would be stored as more rows than were paid for).
    """
    for _ in range(MAX_SOLVE_STEPS):
        if r < min_rows:
            break
        m = build(r)
        if r * row_bytes + m.nbytes <= budget:
            return r, m
        r = min(r - 1, (budget - m.nbytes) // row_bytes)
    rows = "one row" if min_rows == 1 else f"{min_rows} rows"
    raise ConfigError(
        f"The budget of {budget} bytes cannot hold even {rows} and the id map for {owner}. "
        f"Raise the budget or lower 'min_vocab' so fewer features are compressed."
    )


def _map_price(ids: np.ndarray):
    """Bytes of an id map holding ``ids`` (row values do not change its size), at ``r`` rows."""
    from embcompress.idmap import IdMap

    zeros = np.zeros(ids.size, dtype=np.int64)
    return lambda r: IdMap.from_arrays(ids, zeros, max(r, 1), fallback_rows=np.arange(max(r, 1))).nbytes


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
            return fit_hash(stats, feature, max(1, r - m_rows) * m_rows, method="hash", seed=seed)

        r = _largest_rows(lambda r: build(r).nbytes, budget, rb, 2 * upper)
        r, idm = _fit_within(build, r, budget, rb, owner, min_rows=2)  # q + m == r only from 2 rows
        m_rows = max(1, r // 2)
        q_rows = max(1, r - m_rows)
        return FeatureMap(feature, method, TableShape((q_rows, m_rows)), idm, {"slots": q_rows * m_rows})
    ids = stats.frequencies(feature)[0]
    info: dict = {}
    if method == "learned_trained":
        if trained_rows is None:
            raise param_error("trained_rows", "compressed_map", "hold the trained full table's rows for 'learned_trained'", None)
        # k-means on the raw trained rows: its weighted squared error is exactly what replacing
        # each id's row by its bucket's traffic-weighted mean costs
        params.setdefault("embedding", (ids, trained_rows))
        kind = "learned"
    else:
        kind = method

    def build(r):
        return fit_hash(stats, feature, r, method=kind, seed=seed, **params)

    if kind == "learned":
        share = params.pop("max_map_share", MAX_MAP_SHARE)
        if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0.0 < share < 1.0):
            raise param_error("max_map_share", "compressed_map", "be a fraction in (0, 1)", share)
        cap = params.get("max_mapped_ids")  # 0 maps no id (hashing them all), as fit_hash reads it
        k = ids.size if cap is None else min(ids.size, cap)
        k, r = _map_share_plan(ids[:k], budget, rb, upper, share)
        params["max_mapped_ids"] = k
        info.update(mapped_ids_cap=int(k), max_map_share=float(share))
    else:
        r = _largest_rows(lambda r: build(r).nbytes, budget, rb, upper)
    r, idm = _fit_within(build, r, budget, rb, owner)
    info.update(hot_rows=int(idm.hot_rows), mapped_ids=int(idm.n_mapped))
    return FeatureMap(feature, method, TableShape((r,)), idm, info)


def _map_share_plan(ids: np.ndarray, budget: int, row_bytes: int, upper: int, share: float) -> tuple[int, int]:
    """The map-share rule (module doc): ``(k, rows)``, the ``k`` hottest ``ids`` (in frequency
    order) held by the map and the rows beside it, with the map within ``share`` of ``budget``.

    A map's row entries widen with the row count (uint8 up to 255 rows, uint16 up to 65,535), so
    one plan is made per entry width the budget reaches: at that width, the most ids whose map fits
    the share (never so many that no row is left), then the most rows that fit with the map still
    within its share. The plan with the largest ``k * rows`` wins: near a width edge, keeping every
    id on narrow entries beats trading ids for a few more rows (Frappe items, MXFP4 at 1/50: 4,082
    ids on 255 rows, learned map AUC 0.929; 391 ids on 307 rows, 0.899), while far from the edge
    the wider entries buy many more rows (TalkingData ip at 1/10: about 1,550 rows against 255).
    """
    map_budget = min(int(share * budget), budget - row_bytes)
    most = max(1, budget // row_bytes)
    tops = sorted({min(int(np.iinfo(dt).max), most) for dt in (np.uint8, np.uint16, np.uint32)})
    plans = []
    for top in tops:
        k = _mapped_ids_cap(ids, map_budget, top)
        price = _map_price(ids[:k])

        def within_share(r, price=price):  # a width that pushes the map past its share does not fit
            b = price(r)
            return b if b <= map_budget else budget + 1

        r = _largest_rows(within_share, budget, row_bytes, upper)
        plans.append((k * r, r, k))
    _, r, k = max(plans)  # ties: more rows
    return k, r


def _mapped_ids_cap(ids: np.ndarray, map_budget: int, n_rows: int) -> int:
    """The most of the hottest ``ids`` an id map can hold in ``map_budget`` bytes (binary search on
    the size of an actual map of them: its layout and row dtype decide the bytes)."""
    from embcompress.idmap import IdMap

    def cost(k):
        return IdMap.from_arrays(ids[:k], np.zeros(k, dtype=np.int64), n_rows, fallback_rows=np.arange(n_rows)).nbytes

    if cost(ids.size) <= map_budget:
        return int(ids.size)
    lo, hi = 0, ids.size  # cost(lo) fits, cost(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= map_budget else (lo, mid)
    return lo


@dataclass(frozen=True)
class BudgetPlan:
    """Bytes for each compressed feature at one budget."""

    reference_bytes: int  # the full fp32 tables of the compressed features
    budget_bytes: int
    shares: dict[str, int]


def plan_budget(stats, compressed: list[str], fraction: float, *, dim: int) -> BudgetPlan:
    """Split ``fraction`` of the compressed features' full fp32 bytes over them, by full size."""
    fp32 = get_format("fp32").row_bytes(dim)
    full = {f: full_rows(stats, f) for f in compressed}
    reference = sum(full.values()) * fp32
    budget = int(fraction * reference)
    total = sum(full.values())
    return BudgetPlan(reference, budget, {f: int(budget * full[f] / total) for f in compressed})


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
