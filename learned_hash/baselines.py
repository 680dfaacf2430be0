"""Baseline id -> row mappers, built as :class:`embcompress.IdMap` like the learned map.

- ``"hash"``: the hashing trick. No id is stored; every id goes to ``mix64(id, seed) % n_rows``,
  where ``mix64`` is the seeded splitmix64 hash of :mod:`embcompress.idmap` (a fresh seed draws a
  fresh hash function, as a universal family would).
- ``"frequency"``: the frequency hybrid. The ``hot_rows`` most accessed ids own rows ``0 ..
  hot_rows - 1``; every other id hashes into the cold rows ``hot_rows .. n_rows - 1``.

Both are reached through :func:`learned_hash.fit_hash` (``method="hash"`` / ``"frequency"``) and
also callable directly.
"""

from __future__ import annotations

import numpy as np

from embcompress.errors import param_error
from embcompress.idmap import IdMap, _check_int_array, _check_seed

# The default number of hot rows: an id owns a row when it alone carries at least the traffic of
# an average row (count * n_rows >= total accesses), and at most half the rows go to hot ids, so
# the other half stays for the clustered ids and for ids never seen.
HOT_SHARE_LIMIT = 0.5


def choose_hot_rows(counts, n_rows: int) -> int:
    """Hot rows by the frequency curve: ids with ``count * n_rows >= sum(counts)``, at most
    ``n_rows // 2`` (and never every row: one stays cold for unseen ids)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0 or n_rows < 2:
        return 0
    # counts are sorted descending, so the qualifying ids are a prefix
    # count * n_rows >= total, in integers: count >= ceil(total / n_rows) (a float64 product
    # rounded counts beyond 2**53 and misjudged ties)
    qualifying = int(np.count_nonzero(counts >= -(-total // n_rows)))
    return min(qualifying, int(n_rows * HOT_SHARE_LIMIT), n_rows - 1)


def _py(v):
    """A NumPy scalar as the Python number (the config is written as JSON)."""
    return v.item() if isinstance(v, np.generic) else v


def _check_rows(n_rows, owner: str) -> None:
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise param_error("n_rows", owner, "be a positive int", n_rows)


def hash_map(n_rows: int, *, seed: int = 0, config=None, inputs=None, meta=None) -> IdMap:
    """The hashing trick as an IdMap: no stored ids, all rows are fallback rows."""
    _check_rows(n_rows, "hash_map")
    _check_seed(seed, "hash_map")  # (else the error named IdMap.from_arrays, which the caller never called)
    return IdMap.from_arrays(np.zeros(0, np.int64), np.zeros(0, np.int64), n_rows,
                             fallback_rows=range(n_rows), seed=seed,
                             config=config or {"method": "hash", "n_rows": _py(n_rows), "seed": _py(seed)},
                             inputs=inputs, meta=meta)


def frequency_map(ids, n_rows: int, *, hot_rows: int, seed: int = 0, config=None, inputs=None, meta=None) -> IdMap:
    """Ids ``ids[:hot_rows]`` (most accessed first) own rows ``0 .. hot_rows - 1``; the rest hash
    into rows ``hot_rows .. n_rows - 1``."""
    _check_rows(n_rows, "frequency_map")
    _check_seed(seed, "frequency_map")
    if isinstance(hot_rows, bool) or not isinstance(hot_rows, (int, np.integer)) or not 0 <= hot_rows < n_rows:
        raise param_error("hot_rows", "frequency_map", f"be an int in [0, n_rows - 1] = [0, {n_rows - 1}]", hot_rows)
    # checked as IdMap checks ids, not cast: np.asarray(ids, dtype=np.int64) made id 1.5 id 1
    ids = _check_int_array(ids, "ids", "frequency_map")[:hot_rows]
    return IdMap.from_arrays(ids, np.arange(ids.size), n_rows, fallback_rows=range(ids.size, n_rows), seed=seed,
                             config=config or {"method": "frequency", "n_rows": _py(n_rows), "hot_rows": int(ids.size), "seed": _py(seed)},
                             inputs=inputs, meta=meta)
