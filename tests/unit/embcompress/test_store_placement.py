import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.store import blocks_per_batch, coaccess_order, mine_coaccess


def test_mine_coaccess_counts_each_pair_once_a_bag():
    # Bags: [1, 2, 3], [2, 1], [4], [5, 5, 1]
    idx = np.array([1, 2, 3, 2, 1, 4, 5, 5, 1])
    off = np.array([0, 3, 5, 6])
    m = mine_coaccess(idx, off, 6).toarray()
    assert m[1, 2] == 2 and m[1, 3] == 1 and m[2, 3] == 1 and m[1, 5] == 1
    assert m.sum() == 5 and np.all(np.tril(m) == 0)


def _planted(n_rows=4096, group=8, n_bags=3000, seed=0):
    """Bags that each draw most of one planted group of `group` rows scattered over the table."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_rows)
    groups = perm.reshape(-1, group)
    bags = [rng.choice(groups[g], size=6, replace=False) for g in rng.integers(0, len(groups), n_bags)]
    return np.concatenate(bags), np.arange(0, 6 * n_bags, 6), groups


def test_planted_groups_share_blocks():
    row_bytes = 512  # 8 rows a 4 KiB block: one planted group fills one block
    idx, off, groups = _planted()
    order = coaccess_order(4096, row_bytes, cooccurrence=mine_coaccess(idx, off, 4096))
    assert sorted(order.tolist()) == list(range(4096))
    new_row = np.empty_like(order)
    new_row[order] = np.arange(4096)
    # Every planted group that was seen lands in one block.
    blocks = new_row[groups] * row_bytes // 4096
    seen = np.isin(groups, idx).all(axis=1)
    assert np.mean([len(set(b)) == 1 for b in blocks[seen]]) > 0.95
    batches = [idx[k : k + 60] for k in range(0, len(idx), 60)]  # 10 bags a batch
    before = blocks_per_batch(batches, row_bytes)
    after = blocks_per_batch(batches, row_bytes, new_row=new_row)
    assert after.mean() < before.mean() / 4


def test_order_inputs_are_checked():
    with pytest.raises(ConfigError, match="exactly one"):
        coaccess_order(10, 64)
    with pytest.raises(ConfigError, match="clusters"):
        coaccess_order(10, 64, clusters=np.zeros(9, int))
    with pytest.raises(ConfigError, match="cooccurrence"):
        coaccess_order(10, 64, cooccurrence=np.zeros((9, 9)))
    # Rows without co-access keep id order after the grouped ones.
    m = np.zeros((10, 10))
    m[7, 2] = 1
    assert coaccess_order(10, 64, cooccurrence=m).tolist() == [2, 7, 0, 1, 3, 4, 5, 6, 8, 9]


def test_mine_coaccess_checks_its_log():
    with pytest.raises(ConfigError, match=r"\[0, 5\)"):
        mine_coaccess(np.array([0, 5]), np.array([0]), 5)
    with pytest.raises(ConfigError, match="offsets"):
        mine_coaccess(np.array([0, 1]), np.array([1, 0]), 5)
    assert mine_coaccess(np.zeros(0, np.int64), np.zeros(0, np.int64), 3).nnz == 0


def test_reorder_finishes_an_update_a_crash_interrupted(tmp_path):
    # A crash after the journal and two of four row writes: the reordered copy must hold the update
    # whole (as the store would serve it after replaying), not the half-written rows.
    from embcompress.container import read_artifact, write_artifact
    from embcompress.store import journal, reorder_rows

    data = np.random.default_rng(0).integers(0, 256, (300, 16), dtype=np.uint8)
    path = write_artifact(tmp_path / "t.embc", "table", {"rows": data}, config={"k": 1}, align=4096)
    rows = np.array([3, 50, 100, 200], dtype=np.int64)
    real_apply, real_pwrite, count = journal._apply_journal, journal.os.pwrite, [0]

    def crash_midway(p, j, fd):
        def pwrite(fd, b, off):
            count[0] += 1
            if count[0] > 2:
                raise KeyboardInterrupt  # stands for the process dying here
            return real_pwrite(fd, b, off)

        journal.os.pwrite = pwrite
        try:
            return real_apply(p, j, fd)
        finally:
            journal.os.pwrite = real_pwrite

    journal._apply_journal = crash_midway
    try:
        with pytest.raises(KeyboardInterrupt):
            journal.apply_update(path, "rows", rows, np.zeros((4, 16), np.uint8))
    finally:
        journal._apply_journal = real_apply
    layout = reorder_rows(path, tmp_path / "re.embc", clusters=np.zeros(300, np.int64))
    out = read_artifact(layout.path, verify="full").array("rows")
    assert (out[rows] == 0).all()


@pytest.mark.parametrize("bad", [0, -4096, 4096.0])
def test_block_bytes_is_checked(bad):
    m = np.zeros((10, 10))
    m[7, 2] = 1
    with pytest.raises(ConfigError, match="'block_bytes'"):
        coaccess_order(10, 64, cooccurrence=m, block_bytes=bad)
    with pytest.raises(ConfigError, match="'block_bytes'"):
        blocks_per_batch([np.arange(5)], 64, block_bytes=bad)


def test_mine_coaccess_long_bags_keep_their_lowest_distinct_ids():
    # max_bag=2: bag [1, 1, 2, 3] has the distinct ids {1, 2, 3}; its two lowest make the pair (1, 2).
    # A repeated id used to take a place among the lowest, so the bag counted no pair at all.
    assert mine_coaccess(np.array([1, 1, 2, 3]), np.array([0]), 5, max_bag=2).toarray()[1, 2] == 1
    rng = np.random.default_rng(0)
    for _ in range(200):  # against counting each bag's pairs by hand
        n, max_bag = 12, int(rng.integers(2, 5))
        lengths = rng.integers(0, 7, rng.integers(1, 8))
        idx = rng.integers(0, n, lengths.sum())
        off = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        want = np.zeros((n, n))
        for s, length in zip(off, lengths):
            ids = sorted(set(idx[s : s + length].tolist()))[:max_bag]
            for a in range(len(ids)):
                for b in range(a + 1, len(ids)):
                    want[ids[a], ids[b]] += 1
        assert np.array_equal(mine_coaccess(idx, off, n, max_bag=max_bag).toarray(), want)


def test_blocks_stay_aligned_when_every_row_is_co_accessed():
    # 4 groups of 3 rows, 4 rows a block, no row without co-access to top blocks up: the hotter
    # groups still get a block each (the coldest group's rows fill their room) instead of the
    # groups running on back to back and straddling blocks.
    import scipy.sparse as sp

    n, row_bytes = 12, 1024
    i, j = zip(*[(3 * g + a, 3 * g + b) for g in range(4) for a in range(3) for b in range(a + 1, 3)])
    m = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    freq = np.repeat([100.0, 50.0, 10.0, 1.0], 3)
    order = coaccess_order(n, row_bytes, cooccurrence=m, frequencies=freq)
    assert sorted(order.tolist()) == list(range(n))
    new_row = np.empty(n, np.int64)
    new_row[order] = np.arange(n)
    blocks = blocks_per_batch([[3 * g, 3 * g + 1, 3 * g + 2] for g in range(4)], row_bytes, new_row=new_row)
    assert blocks[:3].tolist() == [1, 1, 1]


@pytest.mark.parametrize("row_bytes, group", [(66, 16), (68, 16), (132, 8), (33, 32), (512, 8)])
def test_planted_groups_share_blocks_whatever_the_row_size(row_bytes, group):
    # Compressed rows rarely divide 4 KiB (mxfp8 dim 64: 66 bytes; int4_rowwise dim 128: 68): blocks
    # of block_bytes // row_bytes rows drifted off the 4 KiB boundaries and a third of the groups
    # straddled two. Groups are laid inside boundaries; a record across one is some other row.
    rng = np.random.default_rng(0)
    n_rows = 8192
    groups = rng.permutation(n_rows)[: n_rows // 2].reshape(-1, group)  # half the rows never read
    bags = [rng.choice(groups[g], size=6, replace=False) for g in rng.integers(0, len(groups), 6000)]
    idx, off = np.concatenate(bags), np.arange(0, 6 * len(bags), 6)
    order = coaccess_order(n_rows, row_bytes, cooccurrence=mine_coaccess(idx, off, n_rows))
    assert sorted(order.tolist()) == list(range(n_rows))
    new_row = np.empty_like(order)
    new_row[order] = np.arange(n_rows)
    seen = np.isin(groups, idx).all(axis=1)
    per_group = blocks_per_batch(list(groups[seen]), row_bytes, new_row=new_row)
    assert np.mean(per_group == 1) > 0.95


def test_reorder_drops_the_record_of_a_rewrite_and_keeps_no_scratch_file(tmp_path):
    # An update that rewrites a table whole records the file it replaced (meta 'rewritten_from'),
    # so a store tells its own table's rewrite from another table. A reordered table is another
    # table: it must not carry that record. The rows now stream into the writer: nothing else is
    # left in the folder.
    from embcompress import open_table, quantize, write_table
    from embcompress.container import read_artifact, write_artifact
    from embcompress.store import reorder_rows
    from embcompress.store.journal import REWRITTEN_FROM

    w = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    src = write_table(tmp_path / "t.embc", quantize(w, "mxint8"), frequencies=np.arange(300))
    art = read_artifact(src)
    h = art.header
    write_artifact(src, "table", {n: art.array(n) for n in art.section_names}, config=h["config"],
                   inputs=h["inputs"], meta={**h["meta"], REWRITTEN_FROM: [[1, 2]]}, align=h["align"])
    labels = np.arange(300) % 7
    reorder_rows(src, tmp_path / "r.embc", clusters=labels, frequencies=np.arange(300))
    assert REWRITTEN_FROM not in read_artifact(tmp_path / "r.embc").header["meta"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.embc", "t.embc"]
    with open_table(tmp_path / "r.embc", verify="full") as t:
        order = t.header["meta"]["row_order"]
        assert order["source"] == "clusters"
