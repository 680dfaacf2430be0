"""coaccess_order on tables of tens of millions of rows: its memory follows the co-accessed rows
and the blocks, not Python objects a table row (the union-find was two Python lists of n_rows
and every row's root a Python int: 7.2 GB and 48 s for 40M rows with 14M co-access pairs), and
its order is the one the per-row code gave (kept below as the reference)."""

import math
import tracemalloc

import numpy as np
import pytest

from embcompress.store import coaccess_order, mine_coaccess
from embcompress.errors import param_error
from embcompress.store.placement import check_counts
from embcompress.store.scm import BLOCK


# --- the order as the code before this change computed it, row by row (the reference) ----------
class _Groups:
    """Union-find with group sizes, capped at ``cap`` members."""

    def __init__(self, n: int):
        self.parent = list(range(n))  # Python lists: scalar access is the hot path
        self.size = [1] * n

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return root


def _old_coaccess_order(
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
    if (cooccurrence is None) == (clusters is None):
        raise param_error("cooccurrence", owner, "be given, or else clusters (exactly one of them)", "both" if cooccurrence is not None else None)
    if frequencies is not None:  # (with clusters too: a wrong array is a mistake either way)
        check_counts(frequencies, n_rows, owner)
    if clusters is not None:
        clusters = np.asarray(clusters)
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

    m = sp.coo_matrix(cooccurrence)
    if m.shape != (n_rows, n_rows):
        raise param_error("cooccurrence", owner, f"be a ({n_rows}, {n_rows}) matrix", m.shape)
    # Rows a block holds whole wherever the records around it fall (the rows section starts on a
    # block boundary): a block's first whole record starts at most row_bytes - gcd bytes into it.
    cap = max(1, (block_bytes - row_bytes + math.gcd(row_bytes, block_bytes)) // row_bytes)
    i, j, w = m.row.astype(np.int64), m.col.astype(np.int64), m.data.astype(np.float64)
    keep = (i != j) & (w > 0)
    i, j, w = i[keep], j[keep], w[keep]
    order = np.lexsort((j, i, -w))  # heaviest first, ties by (i, j): deterministic
    g = _Groups(n_rows)
    if cap > 1:
        for a, b in zip(i[order].tolist(), j[order].tolist()):
            ra, rb = g.find(a), g.find(b)
            if ra != rb and g.size[ra] + g.size[rb] <= cap:
                if g.size[ra] < g.size[rb]:
                    ra, rb = rb, ra
                g.parent[rb] = ra
                g.size[ra] += g.size[rb]
    roots = np.array([g.find(x) for x in range(n_rows)], dtype=np.int64) if n_rows else np.zeros(0, np.int64)
    # Heat of a row: its frequency if given, else its total co-access weight.
    if frequencies is not None:
        heat = np.asarray(frequencies, dtype=np.float64)
    else:
        heat = np.bincount(i, w, n_rows) + np.bincount(j, w, n_rows)
    touched = heat > 0
    group_heat = np.bincount(roots, heat, n_rows)
    group_size = np.bincount(roots, minlength=n_rows)
    # Groups with any heat, hottest first (ties by root id); first-fit them into blocks.
    live = np.flatnonzero((group_size > 0) & (np.bincount(roots, touched, n_rows) > 0))
    live = live[np.lexsort((live, -group_heat[live]))]
    members = np.argsort(roots, kind="stable")
    first = np.concatenate([[0], np.cumsum(group_size)])
    blocks: list[list[int]] = []
    room: list[int] = []
    for r in live.tolist():
        s = int(group_size[r])
        for k in range(max(0, len(room) - 8), len(room)):  # look back a few open blocks only
            if room[k] >= s:
                blocks[k].append(r)
                room[k] -= s
                break
        else:
            blocks.append([r])
            room.append(cap - s)
    grouped = np.zeros(n_rows, dtype=bool)
    for r in live.tolist():
        grouped[members[first[r] : first[r] + group_size[r]]] = True
    rest = np.flatnonzero(~grouped)  # rows without co-access, in id order
    # Lay the blocks on the file's blocks: each goes on the records lying whole inside one block;
    # the room left there and the records across a boundary (row_bytes not dividing block_bytes)
    # take rows without co-access, and when those run out rows of the coldest blocks (from the end),
    # since rows cannot be padded.
    block_rows = [np.concatenate([members[first[r] : first[r] + group_size[r]] for r in blk]) for blk in blocks]
    pos = np.arange(n_rows, dtype=np.int64)
    home = pos * row_bytes // block_bytes  # the block a record starts in; -1: it crosses into the next
    if row_bytes <= block_bytes:
        home[((pos + 1) * row_bytes - 1) // block_bytes != home] = -1
    else:  # no record fits a block: one row a block, in order
        home = pos
    runs = np.concatenate([[0], np.flatnonzero(np.diff(home)) + 1, [n_rows]]) if n_rows else np.zeros(1, np.int64)
    parts, used, placed = [], 0, 0

    def filler(m: int) -> None:
        nonlocal used
        take = min(m, len(rest) - used)
        parts.append(rest[used : used + take])
        used, m = used + take, m - take
        while m > 0 and len(block_rows) > placed:  # only blocks not laid out yet
            last = block_rows[-1]
            cut = max(0, len(last) - m)
            parts.append(last[cut:])
            m -= len(last) - cut
            block_rows[-1] = last[:cut]
            if cut == 0:
                block_rows.pop()

    for a, b in zip(runs[:-1].tolist(), runs[1:].tolist()):
        if home[a] < 0 or placed >= len(block_rows):
            filler(b - a)
            continue
        blk = block_rows[placed]
        placed += 1
        parts.append(blk)
        filler(b - a - len(blk))
    parts.append(rest[used:])
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)



# --- the tests ------------------------------------------------------------------------------------
def _log(rng, n_rows, n_bags, hot):
    """Bags drawn from a few planted groups over ``hot`` rows (most rows never co-accessed)."""
    rows = rng.permutation(n_rows)[:hot]
    groups = rows[: hot - hot % 5].reshape(-1, 5)
    bags = [rng.choice(groups[g], size=int(rng.integers(2, 5)), replace=False)
            for g in rng.integers(0, len(groups), n_bags)]
    noise = [rng.choice(rows, size=3) for _ in range(n_bags // 4)]  # edges across groups
    bags += noise
    lens = [len(b) for b in bags]
    return np.concatenate(bags), np.concatenate([[0], np.cumsum(lens)[:-1]])


@pytest.mark.parametrize("row_bytes", [17, 64, 66, 132, 512, 1000, 3000, 5000])
@pytest.mark.parametrize("with_freq", ["none", "some", "all"])
def test_scale12_order_is_the_per_row_codes(row_bytes, with_freq):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n_rows = int(rng.integers(50, 3000))
        idx, off = _log(rng, n_rows, int(rng.integers(20, 400)), int(rng.integers(10, min(n_rows, 400))))
        m = mine_coaccess(idx, off, n_rows)
        freq = None
        if with_freq == "some":  # ties too
            freq = np.where(rng.random(n_rows) < 0.3, rng.integers(0, 4, n_rows), 0).astype(np.float64)
        elif with_freq == "all":  # every row hot: the coldest blocks fill the room
            freq = rng.integers(1, 6, n_rows).astype(np.float64)
        for block_bytes in (BLOCK, 1024):
            got = coaccess_order(n_rows, row_bytes, cooccurrence=m, frequencies=freq, block_bytes=block_bytes)
            want = _old_coaccess_order(n_rows, row_bytes, cooccurrence=m, frequencies=freq, block_bytes=block_bytes)
            assert got.dtype == np.int64 and np.array_equal(got, want), (seed, block_bytes)


def test_scale12_order_edge_cases_are_the_per_row_codes():
    cases = [(0, np.zeros((0, 0))), (1, np.zeros((1, 1))), (7, np.zeros((7, 7)))]
    m = np.zeros((10, 10))
    m[7, 2] = m[2, 3] = m[8, 9] = 1
    cases.append((10, m))
    for n, m in cases:
        for row_bytes in (64, 4096, 5000):
            for freq in (None, np.arange(n, dtype=np.float64)):
                got = coaccess_order(n, row_bytes, cooccurrence=m, frequencies=freq)
                assert np.array_equal(got, _old_coaccess_order(n, row_bytes, cooccurrence=m, frequencies=freq))


@pytest.mark.parametrize("with_freq", [False, True])
def test_scale12_order_memory_follows_the_co_accessed_rows_not_the_table(with_freq):
    # 2M rows, 300 of them co-accessed: the per-row union-find (Python lists of 2M ints, then every
    # root as a Python int) peaked at about 150 bytes a row; NumPy arrays of the rows, a few at a
    # time, take under 48 (with frequencies every row is a group to place).
    n_rows = 2_000_000
    rng = np.random.default_rng(0)
    idx, off = _log(rng, n_rows, 500, 300)
    m = mine_coaccess(idx, off, n_rows)
    freq = rng.integers(1, 100, n_rows) if with_freq else None
    tracemalloc.start()
    try:
        order = coaccess_order(n_rows, 132, cooccurrence=m, frequencies=freq)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(order) == n_rows
    assert peak < 48 * n_rows, f"{peak / n_rows:.0f} bytes a row"


def test_scale12_mining_sums_into_the_total_a_logarithmic_number_of_times(monkeypatch):
    # Each chunk of pairs was added to the growing total, which copied all of it: quadratic in the
    # log. Pairs now wait until they reach the total's size, so it is copied O(log) times.
    import scipy.sparse as sp

    from embcompress.store import placement

    monkeypatch.setattr(placement, "_PAIR_CHUNK", 500)  # (4M pairs a chunk at scale)
    monkeypatch.setattr(placement, "_MERGE_PAIRS", 1000)
    rng = np.random.default_rng(0)
    n_rows, n_bags, length = 5000, 3000, 8
    idx = rng.integers(0, n_rows, n_bags * length)
    off = np.arange(0, n_bags * length, length)
    adds = []
    real_add = sp.csr_matrix.__add__
    monkeypatch.setattr(sp.csr_matrix, "__add__", lambda self, other: adds.append(other.nnz) or real_add(self, other))
    got = mine_coaccess(idx, off, n_rows)
    monkeypatch.undo()
    n_chunks = math.ceil(n_bags / (500 // 28))
    assert n_chunks > 100 and len(adds) <= 2 + math.log2(n_bags * 28 / 1000) + 2, (n_chunks, len(adds))
    assert np.array_equal(got.toarray(), mine_coaccess(idx, off, n_rows).toarray())  # (one merge at the default sizes)
