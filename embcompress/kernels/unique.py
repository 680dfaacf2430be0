"""Unique ids of a batch, in first-seen order, with the inverse and counts (the tiered store's dedup).

``unique_ids(ids)`` returns ``(uniq, inverse, counts)`` with ``uniq[inverse] == ids``, like
``np.unique(..., return_inverse=True, return_counts=True)`` but in the order ids first appear:
the compiled kernel (``_unique.pyx``, a hash table, one pass) or its NumPy twin, same arrays.
"""

from __future__ import annotations

import threading

import numpy as np

from . import compiled

KEEP_TABLE_BYTES = 8 << 20  # a thread keeps its hash table up to this size (262,144 ids)
_local = threading.local()


def unique_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(uniq, inverse, counts)`` of a 1-D int64 array, uniq in first-seen order."""
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    mod = compiled("_unique")
    if mod is None:
        return _unique_numpy(ids)
    n = len(ids)
    need = 2 * mod.table_slots(n)
    table = getattr(_local, "table", None)
    if table is None or len(table) < need:
        table = np.empty(need, np.int64)
        if table.nbytes <= KEEP_TABLE_BYTES:
            _local.table = table
    uniq, inverse, counts = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    u = mod.unique_first_seen(ids, table, uniq, inverse, counts)
    return uniq[:u], inverse, counts[:u]


def _unique_numpy(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uniq, first, inverse, counts = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first)  # sorted -> first-seen order
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return uniq[order], rank[inverse.reshape(-1)], counts[order].astype(np.int64)
