"""Rows accessed together, from mined stats: the co-access matrix of a table for its layout.

A multi-hot feature's lists are the bags a lookup pools, so ids that come in one list are read in
one batch. ``mine(..., pairs=[("items", "items")])`` counts them on the log's engine (DuckDB, or
Spark for a log no machine holds); :func:`coaccess_matrix` turns those id pairs into pairs of the
table's rows through the feature's id map, the ``cooccurrence`` that
:func:`embcompress.reorder_rows` packs into shared 4 KiB blocks (as
:func:`embcompress.store.mine_coaccess` gives it from bags held in memory).
"""

from __future__ import annotations

import numpy as np

from embcompress.errors import ConfigError, param_error


def coaccess_matrix(stats, feature: str, id_map):
    """An upper-triangular ``scipy.sparse.csr_matrix`` (id_map.n_rows, id_map.n_rows): for rows
    i < j, how many times an id on row i and an id on row j came in one list of ``feature``.

    ``stats``: LogStats mined with ``feature`` (a multi-hot column) paired with itself;
    ``id_map``: the feature's :class:`embcompress.IdMap`. Ids that share a row add nothing (the
    row is read once); each pair of list positions counts once.
    """
    import scipy.sparse as sp

    from embcompress.idmap import IdMap

    if not isinstance(id_map, IdMap):
        raise param_error("id_map", "coaccess_matrix", "be an embcompress.IdMap (IdMap.load(path) opens one)",
                          type(id_map).__name__)
    if (feature, feature) not in getattr(stats, "pairs", ()):
        raise ConfigError(
            f"The 'stats' parameter of coaccess_matrix must hold {feature!r} paired with itself (the ids of one "
            f"list counted together). Got the pairs {getattr(stats, 'pairs', None)} instead. Mine the multi-hot "
            f"column with pairs=[({feature!r}, {feature!r})] (on the command line: --pair {feature}:{feature})."
        )
    ids_a, ids_b, counts = stats.pair_counts(feature, feature)
    rows_a, rows_b = id_map.lookup(ids_a), id_map.lookup(ids_b)
    # both orders of a pair were counted: keep one, and drop ids on one row (no layout to gain)
    keep = rows_a < rows_b
    n = id_map.n_rows
    index = np.int32 if n < 2**31 else np.int64
    m = sp.coo_matrix((counts[keep].astype(np.float64), (rows_a[keep].astype(index), rows_b[keep].astype(index))),
                      shape=(n, n))
    return m.tocsr()  # (duplicates, ids mapped onto the same two rows, are summed)
