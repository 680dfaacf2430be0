"""Where rows live: the DRAM hot set and the co-access layout of the table file.

Hot set: :func:`top_rows`, the rows with the most mined accesses, ties to the lower row.

Co-access layout: a server that misses DRAM reads whole 4 KiB blocks, so rows that are read
together should share a block. :func:`coaccess_order` packs rows into groups of at most the
rows a block holds whole by greedy capacity-bounded merging along co-access edges, heaviest first
(the Kruskal order: two groups join when an edge links them and the union still fits a block), then
lays groups out hottest first, filling each block with whole groups (first fit) and topping it up
with rows that have no co-access, so every block starts aligned and no group straddles two
(when those rows run out, rows of the coldest blocks fill the room instead, splitting those).
Blocks are the file's: when ``row_bytes`` does not divide the block size, a block takes the
records lying whole inside it and the record across each boundary is a filler row too.
The remaining rows without co-access follow in id order. With
learned clusters instead, rows are sorted by (cluster, row) so a cluster's rows are contiguous.

:func:`reorder_rows` writes the reordered table file: the same container, config and sections,
the ``rows`` section in the new order, plus a ``row_order`` section (``row_order[new] = old``).
The file stays self-consistent for ``open_table``: its ``frequencies`` follow their rows and its
id map sends raw ids to the new positions. :class:`~embcompress.store.TieredStore` reads
``row_order`` and keeps serving the original row numbers (its ``id_map`` is mapped back too).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..container import Streamed, read_artifact, write_artifact
from ..errors import ArtifactError, ConfigError, param_error
from ..kernels import compiled
from ..tablefile import check_table_name
from . import journal
from .scm import BLOCK

ROW_ORDER = "row_order"
_COPY_BYTES = 64 << 20  # reorder_rows reads the table file this many bytes at a time
_EDGE_CHUNK = 1 << 20  # the union-find's Python twin takes the edges this many at a time
_PAIR_CHUNK = 4 << 20  # mine_coaccess expands bags into about this many pairs at a time
_MERGE_PAIRS = 1 << 24  # and sums them into the total once this many (or the total's size) wait
_INVERT_CHUNK = 1 << 20  # invert fills the inverse permutation this many positions at a time
_TOP_CHUNK = 1 << 22  # top_rows ranks a table's counts at least this many rows at a time
# Sections of a table file whose values are row numbers (the id map's), renumbered by a reorder.
_ROW_VALUED = ("idmap.rows", "idmap.fallback_rows")
_MAP_PARTS = ("idmap.keys", "idmap.vals", "idmap.fallback")  # the id map as it serves (see tablefile.py)


def param_array(x, name: str, owner: str, must: str) -> np.ndarray:
    """``np.asarray(x)``, with numpy's raw "inhomogeneous shape" ValueError (lists of different
    lengths) turned into the project's error; ``[]`` (float64 to numpy) as an empty int array."""
    try:
        a = np.asarray(x)
    except ValueError:
        raise param_error(name, owner, must, "lists of different lengths") from None
    if a.size == 0 and a.dtype == np.float64 and not isinstance(x, np.ndarray):
        a = a.astype(np.int64)
    return a


def _check_n_rows(n_rows, owner: str) -> int:
    # (a float or a string reached scipy or a numpy comparison as a raw error, or passed)
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 0:
        raise param_error("n_rows", owner, "be a non-negative int (the table's rows)", n_rows)
    return int(n_rows)


def top_rows(frequencies: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` rows with the highest frequencies, ties broken toward the lower row, sorted.

    ``rows`` (unique, any order) limits the choice to those rows.
    """
    # In the counts' own dtype: int64 counts past 2**53 are not all float64s, and a float copy of a
    # table's counts took 8 bytes a row more (the partition below takes one copy, then a pass).
    f = np.asarray(frequencies)
    if f.dtype.kind not in "iuf":
        f = f.astype(np.float64)
    if rows is not None:
        f = f[rows]
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= len(f):
        return np.arange(len(f), dtype=np.int64) if rows is None else np.sort(rows).astype(np.int64)
    if rows is None and 8 * k <= len(f) and len(f) > _TOP_CHUNK:
        return _top_rows_chunked(f, k)
    # Linear time: every row above the k-th largest value, then the lowest rows equal to it.
    kth = np.partition(f, len(f) - k)[len(f) - k]
    above, tied = np.flatnonzero(f > kth), np.flatnonzero(f == kth)
    if rows is None:
        return np.sort(np.concatenate([above, tied[: k - len(above)]])).astype(np.int64)
    return np.sort(np.concatenate([rows[above], np.sort(rows[tied])[: k - len(above)]])).astype(np.int64)


def _top_rows_chunked(f: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_rows` of a table's counts, a chunk of rows at a time: the top ``k`` so far and the
    next chunk of ``max(_TOP_CHUNK, k)`` rows are cut to their top ``k`` (rows ascend throughout,
    so the first ``k`` of a tie are the lowest rows). Memory follows ``k``, not the table: the
    partition of every row copied the counts whole (8 bytes a row at each warm-up; a small hot
    set of a large table is most tables). Linear time."""
    step = max(_TOP_CHUNK, k)
    vals, rows = f[:0], np.zeros(0, dtype=np.int64)
    for a in range(0, len(f), step):
        b = min(len(f), a + step)
        vals = np.concatenate([vals, f[a:b]])
        rows = np.concatenate([rows, np.arange(a, b, dtype=np.int64)])
        if len(vals) > k:
            kth = np.partition(vals, len(vals) - k)[len(vals) - k]
            above = np.flatnonzero(vals > kth)
            tied = np.flatnonzero(vals == kth)[: k - len(above)]
            keep = np.sort(np.concatenate([above, tied]))
            vals, rows = vals[keep], rows[keep]
    return rows


def mine_coaccess(indices, offsets, n_rows: int, *, max_bag: int = 64):
    """Co-access counts of row pairs from a log of bags (``indices`` split at ``offsets``).

    Each bag (one sample's ids, or one query's) counts once for each distinct pair of its rows;
    bags longer than ``max_bag`` contribute the pairs among their ``max_bag`` lowest ids. Returns an upper
    triangular ``scipy.sparse.csr_matrix`` (n_rows, n_rows) of counts.
    """
    import scipy.sparse as sp

    owner = "mine_coaccess"
    n_rows = _check_n_rows(n_rows, owner)
    if isinstance(max_bag, bool) or not isinstance(max_bag, (int, np.integer)) or max_bag < 2:
        raise param_error("max_bag", owner, "be an int of at least 2 (a bag's pairs are among its max_bag lowest "
                          "ids)", max_bag)
    max_bag = int(max_bag)
    indices = param_array(indices, "indices", owner, "be a 1-D array of int row ids")
    offsets = param_array(offsets, "offsets", owner, "be a 1-D array of int bag starts")
    if indices.dtype.kind not in "iu" or indices.ndim != 1:
        raise param_error("indices", owner, "be a 1-D array of int row ids", f"{indices.dtype} of shape {indices.shape}")
    if offsets.dtype.kind not in "iu" or offsets.ndim != 1:
        raise param_error("offsets", owner, "be a 1-D array of int bag starts", f"{offsets.dtype} of shape {offsets.shape}")
    indices, offsets = indices.astype(np.int64), offsets.astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= n_rows):
        raise param_error("indices", owner, f"hold row ids in [0, {n_rows})", f"ids from {indices.min()} to {indices.max()}")
    if offsets.size and (offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > len(indices)):
        raise param_error("offsets", owner, f"start at 0 and rise to at most {len(indices)}", "other offsets")
    bounds = np.concatenate([offsets, [len(indices)]]) if len(offsets) == 0 or offsets[-1] != len(indices) else offsets
    lengths = np.diff(bounds)
    total = sp.csr_matrix((n_rows, n_rows), dtype=np.float64)
    # Pairs wait in pieces and are summed into the total when they reach its size (or
    # _MERGE_PAIRS): adding each few million pairs to the total made every addition copy all of
    # it, quadratic in the log (1.6M bags of 16 over 40M rows took 90 s).
    pending, n_pending = [], 0
    index = np.int32 if n_rows < 2**31 else np.int64

    def merge() -> None:
        nonlocal total, pending, n_pending
        if pending:
            i, j = (np.concatenate(p) for p in zip(*pending))
            pending, n_pending = [], 0
            total = total + sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n_rows, n_rows)).tocsr()

    # Group bags by length so each group's pairs come from one vectorized triu expansion, a few
    # million pairs at a time.
    for length in np.unique(lengths):
        if length < 2:
            continue
        all_starts = bounds[:-1][lengths == length]
        width = min(int(length), max_bag)
        a, b = np.triu_indices(width, k=1)
        step = max(1, _PAIR_CHUNK // max(1, len(a)))
        for c in range(0, len(all_starts), step):
            starts = all_starts[c : c + step]
            bags = np.sort(indices[starts[:, None] + np.arange(length)[None, :]], axis=1)
            dup = np.zeros(bags.shape, dtype=bool)
            dup[:, 1:] = bags[:, 1:] == bags[:, :-1]
            # A repeated id in a bag is one row: repeats move past the distinct ids (sorted again),
            # so the first max_bag columns are the bag's lowest distinct ids.
            bags[dup] = n_rows
            if width < length:
                bags = np.sort(bags, axis=1)[:, :width]
            i, j = bags[:, a].ravel(), bags[:, b].ravel()
            keep = (i < n_rows) & (j < n_rows)
            pending.append((i[keep].astype(index), j[keep].astype(index)))
            n_pending += len(pending[-1][0])
            if n_pending >= max(total.nnz, _MERGE_PAIRS):
                merge()
    merge()
    total.sum_duplicates()
    return total


def _union_groups(i: np.ndarray, j: np.ndarray, cap: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group root after merging along the edges ``(i, j)`` (heaviest first) while a
    union fits ``cap`` rows, and the rows that have an edge (sorted): the union-find runs over
    those only (arrays or, in the Python twin, lists of them, not of the table's rows), with the
    roots it gave over every row (a root is the row of the larger side, the first one's on a tie)."""
    roots = np.arange(n_rows, dtype=np.int64)
    if cap <= 1 or len(i) == 0:
        return roots, np.zeros(0, np.int64)
    nodes, local = np.unique(np.concatenate([i, j]), return_inverse=True)  # sorted: local order = row order
    local = local.reshape(2, -1).astype(np.int64, copy=False)
    mod = compiled("_groups")
    if mod is not None:  # (the same roots, 7.2x as fast as the Python loop: benchmarks/bench_coaccess.py)
        parent, size = np.arange(len(nodes), dtype=np.int64), np.ones(len(nodes), dtype=np.int64)
        mod.union_bounded(np.ascontiguousarray(local[0]), np.ascontiguousarray(local[1]), cap, parent, size)
        roots[nodes] = nodes[parent]
        return roots, nodes
    roots[nodes] = nodes[_union_groups_python(local, cap, len(nodes))]
    return roots, nodes


def _union_groups_python(local: np.ndarray, cap: int, n: int) -> np.ndarray:
    """The root of each node ``0 .. n - 1`` after merging along the edges ``local[:, e]`` (the
    compiled ``_groups.union_bounded``'s twin)."""
    parent, size = list(range(n)), [1] * n

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for c in range(0, local.shape[1], _EDGE_CHUNK):  # (Python ints of a chunk of edges at a time)
        for a, b in zip(local[0, c : c + _EDGE_CHUNK].tolist(), local[1, c : c + _EDGE_CHUNK].tolist()):
            ra, rb = find(a), find(b)
            if ra != rb and size[ra] + size[rb] <= cap:
                if size[ra] < size[rb]:
                    ra, rb = rb, ra
                parent[rb] = ra
                size[ra] += size[rb]
    return np.fromiter((find(x) for x in range(n)), dtype=np.int64, count=n)


def _first_fit(live: np.ndarray, sizes: np.ndarray, cap: int) -> tuple[np.ndarray, int]:
    """The block of each group of ``live`` (hottest first, of ``sizes`` rows), first fit into blocks
    of ``cap`` rows looking back over the last 8 open blocks only; and the number of blocks. A run of
    groups of one row is placed at once: it fills the open blocks' room in order, then new blocks."""
    block = np.empty(len(live), dtype=np.int64)
    room: list[int] = []
    multi = np.flatnonzero(sizes > 1).tolist() + [len(live)]
    at = 0
    for nxt in multi:
        if nxt > at:  # rows alone, at .. nxt - 1
            left, k = nxt - at, max(0, len(room) - 8)
            while left and k < len(room):
                t = min(room[k], left)
                block[at : at + t] = k
                room[k] -= t
                at, left, k = at + t, left - t, k + 1
            if left:
                first = len(room)
                block[at : at + left] = first + np.arange(left, dtype=np.int64) // cap
                full, part = divmod(left, cap)
                room.extend([0] * full + ([cap - part] if part else []))
                at += left
        if nxt == len(live):
            break
        s = int(sizes[nxt])
        for k in range(max(0, len(room) - 8), len(room)):  # look back a few open blocks only
            if room[k] >= s:
                block[nxt] = k
                room[k] -= s
                break
        else:
            block[nxt] = len(room)
            room.append(cap - s)
        at = nxt + 1
    return block, len(room)


def _file_runs(n_rows: int, row_bytes: int, block_bytes: int):
    """``(start, stop, whole)`` of each run of positions in file order: the records lying whole
    inside one block (``whole``), or records each across a block boundary (not ``whole``: they
    follow one another when a record is over half a block); one record a run, whole, when a
    record is larger than a block."""
    if row_bytes > block_bytes:
        for p in range(n_rows):
            yield p, p + 1, True
        return
    p, across = 0, None  # across: the first of the records across boundaries not yet yielded
    while p < n_rows:
        end = (p * row_bytes // block_bytes + 1) * block_bytes  # the end of the block row p starts in
        q = min(n_rows, end // row_bytes)  # rows p .. q - 1 end inside it
        if q > p:
            if across is not None:
                yield across, p, False
                across = None
            yield p, q, True
            p = q
            if p == n_rows or p * row_bytes == end:  # the next record starts the next block
                continue
        if across is None:  # p starts in this block and ends past it
            across = p
        p += 1
    if across is not None:
        yield across, n_rows, False


def coaccess_order(
    n_rows: int,
    row_bytes: int,
    *,
    cooccurrence=None,
    clusters=None,
    frequencies=None,
    block_bytes: int = BLOCK,
) -> np.ndarray:
    """The new row order (``order[new] = old``) that puts co-accessed rows in shared blocks."""
    owner = "coaccess_order"
    n_rows = _check_n_rows(n_rows, owner)
    _check_block_bytes(block_bytes, owner)
    _check_row_bytes(row_bytes, owner)
    if (cooccurrence is None) == (clusters is None):
        raise param_error("cooccurrence", owner, "be given, or else clusters (exactly one of them)", "both" if cooccurrence is not None else None)
    if frequencies is not None:  # (with clusters too: a wrong array is a mistake either way)
        check_counts(frequencies, n_rows, owner)
    if clusters is not None:
        clusters = param_array(clusters, "clusters", owner, f"be {n_rows} int cluster labels, one a row")
        if clusters.shape != (n_rows,) or clusters.dtype.kind not in "iu":
            raise param_error("clusters", owner, f"be {n_rows} int cluster labels, one a row", f"{clusters.dtype} of shape {clusters.shape}")
        if frequencies is None:  # clusters in label order, rows in id order within
            return np.lexsort((np.arange(n_rows), clusters)).astype(np.int64)
        # clusters hottest first (ties by label), and within one its rows hottest first (ties by
        # id), so a cluster's hot rows share its first blocks
        heat = np.asarray(frequencies, dtype=np.float64)
        _, label = np.unique(clusters, return_inverse=True)
        return np.lexsort((np.arange(n_rows), -heat, clusters, -np.bincount(label, heat)[label])).astype(np.int64)
    import scipy.sparse as sp

    try:
        m = sp.coo_matrix(cooccurrence)
    except (TypeError, ValueError):  # (text, objects, ragged lists: scipy's own errors named nothing)
        raise param_error("cooccurrence", owner, f"be a ({n_rows}, {n_rows}) sparse matrix of co-access counts "
                          f"(e.g. from mine_coaccess)", type(cooccurrence).__name__) from None
    if m.shape != (n_rows, n_rows):
        raise param_error("cooccurrence", owner, f"be a ({n_rows}, {n_rows}) matrix", m.shape)
    # Rows a block holds whole wherever the records around it fall (the rows section starts on a
    # block boundary): a block's first whole record starts at most row_bytes - gcd bytes into it.
    cap = max(1, (block_bytes - row_bytes + math.gcd(row_bytes, block_bytes)) // row_bytes)
    i, j, w = m.row.astype(np.int64), m.col.astype(np.int64), m.data.astype(np.float64)
    del m
    keep = (i != j) & (w > 0)
    i, j, w = i[keep], j[keep], w[keep]
    order = np.lexsort((j, i, -w))  # heaviest first, ties by (i, j): deterministic
    # Per-row state is NumPy arrays; Python objects are only the rows that have a co-access edge
    # (the union-find) and the blocks (the first fit and the layout). Python lists of every row's
    # parent and root took 180 bytes a table row: 7.2 GB for 40M rows.
    roots, nodes = _union_groups(i[order], j[order], cap, n_rows)
    del order
    # Heat of a row: its frequency if given, else its total co-access weight.
    if frequencies is not None:
        heat = np.asarray(frequencies, dtype=np.float64)
    else:
        heat = np.bincount(i, w, n_rows) + np.bincount(j, w, n_rows)
    del i, j, w
    group_heat = np.bincount(roots, heat, n_rows)
    group_size = np.bincount(roots, minlength=n_rows)
    # Groups with any heat, hottest first (ties by root id); first-fit them into blocks. (Arrays of
    # a table row are dropped as soon as they are used: the peak is a few of them at once.)
    has_heat = np.zeros(n_rows, dtype=bool)
    has_heat[roots[heat > 0]] = True
    del heat
    # The members of groups of several rows, in id order, by group (rows alone are their root)
    members = nodes[group_size[roots[nodes]] > 1]
    member_roots = roots[members]
    del roots, nodes
    by_root = np.lexsort((members, member_roots))
    members, member_roots = members[by_root], member_roots[by_root]
    del by_root
    live = np.flatnonzero(has_heat)
    del has_heat
    live = live[np.argsort(-group_heat[live], kind="stable")]  # (live ascends: ties by root id)
    del group_heat
    sizes = group_size[live]
    del group_size
    block_of, n_blocks = _first_fit(live, sizes, cap)
    # The blocks' rows, block after block (groups in the order they were placed, a group's rows
    # in id order), and where each block starts among them.
    bstart = np.zeros(n_blocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(block_of, sizes, n_blocks).astype(np.int64), out=bstart[1:])
    by_block = np.argsort(block_of, kind="stable")
    del block_of
    groups = live[by_block]
    del live
    counts = sizes[by_block]
    del sizes, by_block
    flat = np.repeat(groups, counts)  # a group of one row is its root
    multi = np.flatnonzero(counts > 1)
    if len(multi):  # the members of larger groups, where their group's slots are
        first = np.searchsorted(member_roots, groups[multi])
        sizes, starts = counts[multi], np.cumsum(counts)[multi] - counts[multi]
        within = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        flat[np.repeat(starts, sizes) + within] = members[np.repeat(first, sizes) + within]
        del first, within
    del groups, counts, members, member_roots
    grouped = np.zeros(n_rows, dtype=bool)
    grouped[flat] = True
    rest = np.flatnonzero(~grouped)  # rows without co-access, in id order
    del grouped
    # Lay the blocks on the file's blocks: each goes on the records lying whole inside one block;
    # the room left there and the records across a boundary (row_bytes not dividing block_bytes)
    # take rows without co-access, and when those run out rows of the coldest blocks (from the end),
    # since rows cannot be padded.
    out = np.empty(n_rows, dtype=np.int64)
    w = used = placed = 0
    nb, tail = n_blocks, int(bstart[n_blocks])  # blocks not yet emptied by fillers; the last one's end

    def filler(m: int) -> None:
        nonlocal w, used, nb, tail
        take = min(m, len(rest) - used)
        out[w : w + take] = rest[used : used + take]
        w, used, m = w + take, used + take, m - take
        while m > 0 and nb > placed:  # only blocks not laid out yet, the coldest first
            lo = int(bstart[nb - 1])
            cut = max(lo, tail - m)
            out[w : w + tail - cut] = flat[cut:tail]
            w, m, tail = w + tail - cut, m - (tail - cut), cut
            if cut == lo:
                nb -= 1
                tail = int(bstart[nb])

    for a, b, whole in _file_runs(n_rows, row_bytes, block_bytes):
        if not whole or placed >= nb:
            filler(b - a)
            continue
        lo, hi = int(bstart[placed]), (tail if placed == nb - 1 else int(bstart[placed + 1]))
        placed += 1
        out[w : w + hi - lo] = flat[lo:hi]
        w += hi - lo
        filler(b - a - (hi - lo))
    out[w : w + len(rest) - used] = rest[used:]
    return out[: w + len(rest) - used]


def check_counts(frequencies, n_rows: int, owner: str) -> np.ndarray:
    """``frequencies`` as an array of ``n_rows`` finite non-negative counts, one a row; a
    ConfigError naming ``owner`` otherwise."""
    try:
        f = np.asarray(frequencies)
    except ValueError:  # (numpy's "inhomogeneous shape")
        raise param_error("frequencies", owner, f"be {n_rows} finite non-negative counts, one a row",
                          "lists of different lengths") from None
    if (f.dtype.kind not in "iuf" or f.shape != (n_rows,) or (f.dtype.kind == "f" and not np.all(np.isfinite(f)))
            or (f.size and f.min() < 0)):  # (isfinite of ints made a temporary of a byte a row, all True)
        raise param_error("frequencies", owner, f"be {n_rows} finite non-negative counts, one a row",
                          f"{f.dtype} of shape {f.shape}")
    return f


def _check_block_bytes(block_bytes, owner: str) -> None:
    # 0 or a negative size divided silently into nonsense (numpy warns, then packs one row a block).
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, (int, np.integer)) or block_bytes < 1:
        raise param_error("block_bytes", owner, "be a positive int number of bytes", block_bytes)


def _check_row_bytes(row_bytes, owner: str) -> None:
    # 0 divided by zero (coaccess_order), a negative size laid out or counted nonsense silently.
    if isinstance(row_bytes, bool) or not isinstance(row_bytes, (int, np.integer)) or row_bytes < 1:
        raise param_error("row_bytes", owner, "be a positive int number of bytes (a row's record)", row_bytes)


def _check_batches(batches, n_rows: int | None, name: str, owner: str) -> list:
    """``batches`` of row ids as int64 arrays, each id in ``[0, n_rows)`` (non-negative when
    ``n_rows`` is None); a ConfigError naming the first problem otherwise."""
    try:
        batches = list(batches)
    except TypeError:  # (a single int: "'int' object is not iterable")
        raise param_error(name, owner, "be an iterable of batches (one array of row ids a batch)", batches) from None
    out = []
    for rows in batches:
        a = param_array(rows, name, owner, "hold int row ids (one array of ids a batch)")
        if a.size == 0:
            out.append(np.zeros(0, np.int64))
            continue
        if a.dtype.kind not in "iu":  # a float id would be truncated to another row
            raise param_error(name, owner, "hold int row ids (one array of ids a batch)", f"dtype {a.dtype}")
        a = a.astype(np.int64).reshape(-1)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or (n_rows is not None and hi >= n_rows):
            where = f"[0, {n_rows})" if n_rows is not None else "[0, n_rows)"
            raise param_error(name, owner, f"hold row ids in {where}", f"ids from {lo} to {hi}")
        out.append(a)
    return out


def blocks_per_batch(batches, row_bytes: int, *, new_row=None, base: int = 0, block_bytes: int = BLOCK) -> np.ndarray:
    """Distinct ``block_bytes`` blocks each batch of row ids touches (``new_row``: old -> new position)."""
    _check_block_bytes(block_bytes, "blocks_per_batch")
    _check_row_bytes(row_bytes, "blocks_per_batch")
    if new_row is not None:  # (a list raised numpy's raw "only integer scalar arrays ..." below)
        new_row = param_array(new_row, "new_row", "blocks_per_batch", "be a 1-D int array (new_row[old] = new position)")
        if new_row.ndim != 1 or new_row.dtype.kind not in "iu":
            raise param_error("new_row", "blocks_per_batch", "be a 1-D int array (new_row[old] = new position)",
                              f"{new_row.dtype} of shape {new_row.shape}")
    batches = _check_batches(batches, None if new_row is None else len(new_row), "batches", "blocks_per_batch")
    out = np.empty(len(batches), dtype=np.int64)
    for k, rows in enumerate(batches):
        rows = np.unique(rows)
        if new_row is not None:
            rows = new_row[rows]
        start = base + rows * row_bytes
        first, last = start // block_bytes, (start + row_bytes - 1) // block_bytes
        out[k] = len(np.unique(np.concatenate([first, last])))
    return out


@dataclass(frozen=True)
class Layout:
    """A reordered table: where it was written, its permutation both ways, and on a replayed log
    the mean 4 KiB blocks a batch reads in the original order and in the new one (None without)."""

    path: Path
    order: np.ndarray  # order[new] = old row
    new_row: np.ndarray  # new_row[old] = new position
    blocks_per_batch_before: float | None = None
    blocks_per_batch_after: float | None = None


def reorder_rows(
    table_file,
    out_file,
    *,
    cooccurrence=None,
    clusters=None,
    frequencies=None,
    block_bytes: int = BLOCK,
    replay=None,
    memory_bytes: int | None = None,
) -> Layout:
    """Write ``out_file``: ``table_file`` with its rows in co-access order, plus ``row_order``.

    Give the mined ``cooccurrence`` (a sparse (n_rows, n_rows) count matrix, e.g. from
    :func:`mine_coaccess`) or learned ``clusters`` (one label a row). ``frequencies`` (one count a
    row) orders the groups hottest first. A table that was reordered before is reordered from its
    original row ids (the written ``row_order`` maps original ids to the new positions).
    ``replay``: batches of original row ids (a held-out log); the layout then reports the mean
    4 KiB blocks a batch reads in the input file's order and in the new one.

    The rows are copied by reading the table file in order, never row by row at random (a table
    larger than memory would take one random read a row): the new file is made a window of
    ``memory_bytes`` at a time (default: a quarter of the memory available, at least 64 MiB),
    each window by one sequential read of the whole table, so a table larger than the window is
    read ``ceil(table size / window)`` times.
    """
    for name, v in (("table_file", table_file), ("out_file", out_file)):  # (else a raw TypeError of os.fspath)
        if not isinstance(v, (str, os.PathLike)):
            raise param_error(name, "reorder_rows", "be a path (str or os.PathLike) to a table file", v)
    journal.replay_before_open(table_file)  # an update a crash interrupted: its rows whole, or a clear refusal
    art = read_artifact(table_file, kind="table")
    sec = art.section("rows")
    if len(sec.shape) != 2:
        raise ArtifactError(f"The 'rows' section of {str(art.path)!r} is not 2-D; re-create the table.")
    n_rows, row_bytes = sec.shape
    if Path(out_file).resolve() == Path(table_file).resolve():
        raise param_error("out_file", "reorder_rows", "differ from table_file (the original stays intact)", str(out_file))
    out_dir = Path(out_file).parent
    if not out_dir.is_dir():  # (before the work)
        raise ConfigError(f"Cannot write {out_file}: its folder {out_dir} does not exist (or is not a folder). "
                          f"Create it first, or write somewhere else.")
    check_table_name(out_file)  # (before the work, as the folder)
    if memory_bytes is None:
        memory_bytes = _default_copy_bytes()
    elif isinstance(memory_bytes, bool) or not isinstance(memory_bytes, (int, np.integer)) or memory_bytes < 1:
        raise param_error("memory_bytes", "reorder_rows", "be None or a positive int of bytes", memory_bytes)
    if replay is not None:  # checked before anything is written
        replay = _check_batches(replay, n_rows, "replay", "reorder_rows")
        if not replay:
            raise param_error("replay", "reorder_rows", "hold at least one batch of row ids, or be None", "no batch")
    order = coaccess_order(n_rows, row_bytes, cooccurrence=cooccurrence, clusters=clusters,
                           frequencies=frequencies, block_bytes=block_bytes)
    new_row = invert(order)
    # Copied under the table's shared lock, as a store reads: an update another process was
    # writing meanwhile left a row torn in the copy (the file as it is now, opened again). The rows
    # in the new order stream into the writer a window at a time (see _rows_in_order).
    with journal.reading(table_file):
        art = read_artifact(table_file, kind="table")
        if art.section("rows").shape != (n_rows, row_bytes):
            raise ArtifactError(f"The table {str(art.path)!r} was replaced by another table while reorder_rows "
                                f"ran. Run reorder_rows again.")
        prev = np.asarray(art.array(ROW_ORDER), dtype=np.int64) if ROW_ORDER in art.section_names else None
        # (checked as TieredStore checks it: a repeated row left new positions never written, their
        # bytes whatever the memory held, under fresh checksums)
        if prev is not None and (prev.shape != (n_rows,) or invert(prev, check=True) is None):
            raise ArtifactError(f"The 'row_order' section of {str(art.path)!r} is not a permutation of its "
                                f"{n_rows} rows: the file is corrupted. Re-create it with reorder_rows.")
        rows = art.array("rows")
        # The old file holds original row prev[p] at position p (p without a prev); the new one
        # holds original row order[k] at k: old position p goes to new_row of its original row.
        dest = (lambda a, b: new_row[a:b]) if prev is None else (lambda a, b: new_row[prev[a:b]])
        sections = {"rows": Streamed(np.uint8, rows.shape, _rows_in_order(rows, dest, memory_bytes))}
        for name in art.section_names:
            if name in ("rows", ROW_ORDER) or name in _MAP_PARTS:  # (the map's parts: built again below)
                continue
            arr = art.array(name)
            if name == "frequencies":  # one entry a row: follows its row, copied as the rows are
                arr = Streamed(arr.dtype, arr.shape, _rows_in_order(arr, dest, memory_bytes))
            elif name in _ROW_VALUED:  # row numbers: renumbered to the new positions
                arr = new_row[arr if prev is None else prev[arr]]  # old position -> original -> new
            sections[name] = arr
        sections[ROW_ORDER] = order
        h = art.header
        # (not the record of the file an update rewrote: this is another table, in another order)
        meta = {k: v for k, v in h["meta"].items() if k != journal.REWRITTEN_FROM}
        meta["row_order"] = {"block_bytes": block_bytes, "source": "clusters" if clusters is not None else "cooccurrence"}
        im = (meta.get("table_file") or {}).get("id_map")
        if isinstance(im, dict) and "parts" in im:
            # The id map as it serves (its hash table's rows, its cold rows) sends ids to the new
            # positions too: built once here from the renumbered ids and rows, so that opening the
            # reordered file maps it rather than builds it.
            from ..idmap import IdMap

            m = IdMap.from_arrays(sections["idmap.ids"], sections["idmap.rows"], n_rows,
                                  fallback_rows=sections["idmap.fallback_rows"], seed=int(im["seed"]))
            parts = m.parts()
            for name, key in zip(_MAP_PARTS, ("keys", "vals", "fallback")):
                sections[name] = parts[key]
            meta["table_file"] = {**meta["table_file"], "id_map": {**im, "parts": [int(v) for v in parts["params"]]}}
            del m, parts
        inputs = dict(h["inputs"], reordered_from=os.fspath(table_file))
        path = write_artifact(out_file, h["kind"], sections, config=h["config"], inputs=inputs, meta=meta, align=h["align"])
        del sections, rows
    before = after = None
    if replay is not None:
        before = float(blocks_per_batch(replay, row_bytes, new_row=None if prev is None else invert(prev),
                                        block_bytes=block_bytes).mean())
        after = float(blocks_per_batch(replay, row_bytes, new_row=new_row, block_bytes=block_bytes).mean())
    return Layout(Path(path), order, new_row, before, after)


def _rows_in_order(rows: np.ndarray, dest, memory_bytes: int):
    """The rows of ``rows`` (a file's mapping, one entry or record a row along the first axis) in
    their new order, a window of new positions at a time; ``dest(a, b)``: the new positions of old
    rows ``a .. b - 1``. A window is valid until the next is asked for (they share one buffer).

    Each window is filled by one pass over the old rows in file order, a large read at a time,
    keeping the rows whose new positions fall in it. Gathering the rows in the new order
    (``rows[src]``, ``src[k]`` the old position of new position ``k``) read them in a random
    order instead: from the page cache as fast, but from the device one random read a row (each
    a page fault, one at a time) once the table is larger than memory, where this reads the table
    sequentially once per window.
    """
    n = rows.shape[0]
    row_bytes = max(1, rows.dtype.itemsize * math.prod(rows.shape[1:]))
    step = max(1, _COPY_BYTES // row_bytes)
    window = max(1, min(n, int(memory_bytes) // row_bytes))
    # One buffer for every window: the writer is done with a window when it asks for the next, and
    # a new array each window made the next while the writer held the last (twice memory_bytes).
    buf = np.empty((min(n, window), *rows.shape[1:]), dtype=rows.dtype)
    for lo in range(0, n, window):
        hi = min(n, lo + window)
        out = buf[: hi - lo]
        for a in range(0, n, step):
            b = min(n, a + step)
            d = dest(a, b)
            keep = (d >= lo) & (d < hi)
            if keep.all():
                out[d - lo] = rows[a:b]
            elif keep.any():
                out[d[keep] - lo] = rows[a:b][keep]
        yield out


def _default_copy_bytes() -> int:
    """A quarter of the memory available (``MemAvailable``), at least 64 MiB: reorder_rows's window."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            avail = 0
    return max(_COPY_BYTES, avail // 4)


def invert(perm: np.ndarray, *, check: bool = False) -> np.ndarray | None:
    """The inverse permutation, filled a chunk at a time (a whole np.arange beside it took its size
    again). ``check``: None unless ``perm`` is a permutation of ``0 .. len - 1`` (a repeated value
    leaves a hole in the inverse, as it takes no count of every value)."""
    n = len(perm)
    if check and n and (perm.min() < 0 or perm.max() >= n):
        return None
    inv = np.full(n, -1, dtype=perm.dtype) if check else np.empty_like(perm)
    for a in range(0, n, _INVERT_CHUNK):
        b = min(n, a + _INVERT_CHUNK)
        inv[perm[a:b]] = np.arange(a, b, dtype=perm.dtype)
    if check and np.any(inv < 0):
        return None
    return inv
