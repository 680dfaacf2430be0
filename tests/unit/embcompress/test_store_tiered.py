import threading
import zlib

import numpy as np
import pytest

from embcompress.container import read_artifact
from embcompress.errors import ArtifactError, ConfigError
from embcompress.formats import quantize
from embcompress.kernels.lookup import pooled_lookup
from embcompress.store import TieredStore, coaccess_order, reorder_rows
from embcompress.store.journal import journal_path
from tests.conftest import torn_reads_during_updates

N, DIM = 3000, 40


def _table(tmp_path, fmt="mxfp8_e4m3", n=N, dim=DIM, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    q = quantize(x, fmt)
    return q.save(tmp_path / f"{fmt}.embc"), q


def _zipf_batches(n_batches, bag=8, bags=64, n=N, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        idx = (rng.zipf(1.3, bag * bags) - 1) % n
        out.append((idx.astype(np.int64), np.arange(0, bag * bags, bag, dtype=np.int64)))
    return out


def _freq(n=N):
    return 1.0 / np.arange(1, n + 1)  # row 0 hottest, as the Zipf batches draw


@pytest.fixture(params=["numpy", "auto"])
def backend(request, monkeypatch):
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4_e2m1", "mx6", "int4_rowwise", "fp16"])
@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_lookups_equal_the_kernel_on_the_whole_table(tmp_path, backend, fmt, policy):
    path, q = _table(tmp_path, fmt)
    with TieredStore(path, dram_bytes=200 * q.row_bytes, policy=policy, frequencies=_freq()) as store:
        for k, (idx, off) in enumerate(_zipf_batches(6)):
            mode = ("sum", "mean", "max")[k % 3]
            w = np.random.default_rng(k).random(len(idx)).astype(np.float32) if mode == "sum" and k else None
            got = store.pooled_lookup(idx, off, mode=mode, per_sample_weights=w)
            want = pooled_lookup(q, idx, off, mode=mode, per_sample_weights=w)
            assert got.dtype == np.float32 and np.array_equal(got, want)
        # include_last_offset, empty bags, out=
        off = np.array([0, 3, 3, 10], dtype=np.int64)
        idx = np.array([5, 0, 2999, 7, 7, 7, 1, 2, 3, 4], dtype=np.int64)
        out = np.empty((3, DIM), np.float32)
        got = store.pooled_lookup(idx, off, include_last_offset=True, out=out)
        assert got is out and np.array_equal(out, pooled_lookup(q, idx, off, include_last_offset=True))


def test_counters_on_unique_ids_per_batch(tmp_path):
    path, q = _table(tmp_path)
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, frequencies=_freq())
    assert store.warm_up() == 10  # rows 0..9 are the hot set
    idx = np.array([0, 0, 1, 500, 500, 2999], dtype=np.int64)  # 4 unique: 2 hot, 2 cold
    store.pooled_lookup(idx, np.array([0], dtype=np.int64))
    s = store.stats()
    assert (s["lookups"], s["unique_rows"], s["dram_hits"], s["scm_rows"]) == (6, 4, 2, 2)
    assert s["hit_rate"] == s["dram_hit_rate"] == 0.5
    assert s["blocks_read"] == 2 and s["bytes_read"] == 2 * 4096
    assert s["read_amplification"] == pytest.approx(2 * 4096 / (2 * q.row_bytes))
    store.reset_stats()
    assert store.stats()["lookups"] == 0
    # A device model accumulates the time its reads would take.
    dev = TieredStore(path, dram_bytes=10 * q.row_bytes, frequencies=_freq(), device="nand")
    dev.pooled_lookup(idx, np.array([0], dtype=np.int64))
    assert dev.stats()["device_reads"] == 2 and dev.stats()["device_seconds"] == pytest.approx(80e-6)
    assert dev.stats()["device_lookups_per_s"] == pytest.approx(6 / 80e-6)


def test_bad_budgets_files_and_ids(tmp_path):
    path, q = _table(tmp_path)
    with pytest.raises(ConfigError, match="at least one row"):
        TieredStore(path, dram_bytes=q.row_bytes - 1, frequencies=_freq())
    with pytest.raises(ConfigError, match="at most the table"):
        TieredStore(path, dram_bytes=N * q.row_bytes + 1, frequencies=_freq())
    with pytest.raises(ConfigError, match="'frequencies'"):
        TieredStore(path, dram_bytes=q.row_bytes)
    with pytest.raises(ConfigError, match="'policy'"):
        TieredStore(path, dram_bytes=q.row_bytes, policy="fifo")
    with pytest.raises(ArtifactError, match="does not exist"):
        TieredStore(tmp_path / "missing.embc", dram_bytes=100, policy="lru")
    store = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    with pytest.raises(ConfigError, match=r"\[0, 3000\)"):
        store.pooled_lookup(np.array([3000]), np.array([0]))
    cut = tmp_path / "cut.embc"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match="truncated"):
        TieredStore(cut, dram_bytes=100, policy="lru")


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_threads_while_the_cache_admits_and_evicts(tmp_path, policy):
    path, q = _table(tmp_path, "mxfp6_e3m2")
    batches = _zipf_batches(40, seed=7)
    want = [pooled_lookup(q, i, o) for i, o in batches]
    store = TieredStore(path, dram_bytes=50 * q.row_bytes, policy=policy)
    errors = []

    def work(t):
        for k in range(t, len(batches) * 3, 4):
            i, o = batches[k % len(batches)]
            if not np.array_equal(store.pooled_lookup(i, o, n_threads=1), want[k % len(batches)]):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.stats()["batches"] == len(batches) * 3 and store.stats()["dram_rows"] == 50


@pytest.mark.parametrize("policy", ["frequency", "lru"])
def test_updates_reach_file_cache_and_checksum(tmp_path, policy):
    path, q = _table(tmp_path)
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy=policy, frequencies=_freq())
    hot = np.arange(5, dtype=np.int64)
    store.pooled_lookup(hot, np.arange(5))  # rows 0..4 now in DRAM under both policies
    new = np.random.default_rng(3).standard_normal((3, DIM)).astype(np.float32)
    rows = np.array([2, 2500, 0], dtype=np.int64)  # two cached, one on file only
    store.update_rows(rows, new)
    want = quantize(new, q.fmt).data
    for r, rec in zip(rows, want):
        assert np.array_equal(store.rows([r])[0], rec)
    assert not journal_path(path).exists()
    art = read_artifact(path, kind="table", verify="full")  # the CRC was kept exact
    assert np.array_equal(art.array("rows")[rows], want)
    assert art.section("rows").crc32 == zlib.crc32(art.array("rows").tobytes())
    # Lookups see the new rows; records can be given directly too.
    ref = q.data.copy()
    ref[rows] = want
    store.update_rows(np.array([7]), ref[[1]])
    ref[7] = ref[1]
    from embcompress.table import QuantizedTable

    idx, off = _zipf_batches(1)[0]
    full = QuantizedTable(ref, q.fmt, q.shape, block_size=q.block_size)
    assert np.array_equal(store.pooled_lookup(idx, off), pooled_lookup(full, idx, off))
    with pytest.raises(ConfigError, match="each row once"):
        store.update_rows(np.array([1, 1]), new[:2])
    with pytest.raises(ConfigError, match="'values'"):
        store.update_rows(np.array([1]), new[:, :3])


def test_reordered_file_serves_the_original_ids(tmp_path):
    path, q = _table(tmp_path, "int8_rowwise")
    labels = np.random.default_rng(0).integers(0, 50, N)
    batches = [np.flatnonzero(labels == k) for k in range(50)]  # each batch reads one cluster
    layout = reorder_rows(path, tmp_path / "re.embc", clusters=labels, replay=batches)
    assert np.array_equal(layout.order, coaccess_order(N, q.row_bytes, clusters=labels))
    # ~60 rows of 40 bytes a cluster: scattered over ~30 blocks before, 1 or 2 after.
    assert layout.blocks_per_batch_after <= 2 < 20 < layout.blocks_per_batch_before
    stored = read_artifact(layout.path, kind="table", verify="full")
    assert np.array_equal(stored.array("rows"), q.data[layout.order])
    store = TieredStore(layout.path, dram_bytes=64 * q.row_bytes, policy="frequency", frequencies=_freq())
    for idx, off in _zipf_batches(4):
        assert np.array_equal(store.pooled_lookup(idx, off), pooled_lookup(q, idx, off))
    store.update_rows(np.array([9]), q.data[[3]])
    assert np.array_equal(store.rows([9])[0], q.data[3])
    assert np.array_equal(read_artifact(layout.path).array("rows")[layout.new_row[9]], q.data[3])


def test_reordered_file_keeps_id_map_and_frequencies_consistent(tmp_path):
    from embcompress.idmap import IdMap
    from embcompress.tablefile import open_table, write_table

    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxint8")
    raw = np.arange(10_000, 10_000 + N, dtype=np.int64)
    m = IdMap.from_arrays(raw[:2000], np.arange(2000), N, seed=5)
    path = write_table(tmp_path / "t.embc", q, id_map=m, frequencies=np.arange(N)[::-1].copy())
    order = np.random.default_rng(1).permutation(N)
    labels = np.empty(N, np.int64)
    labels[order] = np.arange(N)  # clusters that spell out a random permutation
    layout = reorder_rows(path, tmp_path / "re.embc", clusters=labels)
    assert np.array_equal(layout.order, order)
    # open_table on the new file: raw ids still reach the same row contents.
    t = open_table(layout.path, verify="full")
    ids = np.concatenate([raw[:50], [123456789]])  # hot ids and one unseen id (fallback)
    assert np.array_equal(t.data[t.id_map.lookup(ids)], q.data[m.lookup(ids)])
    assert np.array_equal(t.frequencies[layout.new_row], np.arange(N)[::-1])
    # The store serves original row numbers, reads the file's frequencies and maps ids back.
    store = TieredStore(layout.path, dram_bytes=3 * q.row_bytes)
    store.warm_up()
    assert store.stats()["dram_rows"] == 3 and store.rows([0, 1, 2]).tolist() == q.data[:3].tolist()
    assert store.stats()["dram_hits"] == 3  # rows 0..2 have the highest frequencies
    assert np.array_equal(store.id_map.lookup(ids), m.lookup(ids))
    # Reordering a reordered file starts from the original ids again.
    again = reorder_rows(layout.path, tmp_path / "re2.embc", clusters=np.zeros(N, np.int64))
    assert np.array_equal(read_artifact(again.path).array("rows"), q.data)
    assert np.array_equal(open_table(again.path).id_map.lookup(ids), m.lookup(ids))


def test_readers_never_see_a_torn_row_while_rows_are_updated(tmp_path):
    path, q = _table(tmp_path, "fp32", n=400, dim=300)  # 1200-byte rows: a row spans blocks
    rows = np.arange(0, 400, 7, dtype=np.int64)
    store = TieredStore(path, dram_bytes=20 * q.row_bytes, policy="lru")
    store.update_rows(rows, np.zeros((len(rows), q.row_bytes), np.uint8))
    assert torn_reads_during_updates(store, rows, q.row_bytes) == []
    assert (store.rows(rows) == 8).all()
    assert read_artifact(path, verify="full").section("rows").crc32 == zlib.crc32(read_artifact(path).array("rows").tobytes())


def _tier_state(store):
    t = store._dram
    return [store.stats()["batches"], store.stats()["unique_rows"], t.clock, t.n_used, t.row_of.copy(), t.data.copy(),
            None if t.last_used is None else t.last_used.copy(), None if t.counts is None else t.counts.copy()]


@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_a_refused_batch_changes_neither_the_tier_nor_the_counters(tmp_path, backend, policy):
    # Options the kernel refuses must be refused before the batch is staged: a bad mode or offsets
    # used to be found by the kernel only after the policy had admitted, evicted and counted.
    path, q = _table(tmp_path, n=200)
    store = TieredStore(path, dram_bytes=5 * q.row_bytes, policy=policy, frequencies=_freq(200))
    store.pooled_lookup(np.arange(10), np.array([0]))
    idx = np.arange(20, 30, dtype=np.int64)
    w = np.ones(10, np.float32)
    bad = [
        (idx, dict(offsets=[0], mode="median")),
        (idx, dict(offsets=[1])),
        (idx, dict(offsets=[0, 5, 3])),
        (idx, dict(offsets=[0, 11])),
        (idx, dict(offsets=[0, 5], include_last_offset=True)),
        (idx, dict(offsets=[], include_last_offset=True)),
        (idx, dict(offsets=np.array([0.0]))),
        (idx, dict(offsets=np.array([[0]]))),
        (idx, dict(offsets=np.array([2**63], np.uint64))),
        (idx, dict(offsets=None)),
        (idx.reshape(2, 5), dict(offsets=[0])),
        (idx.reshape(2, 5), dict(offsets=None, include_last_offset=True)),
        (idx, dict(offsets=[0], per_sample_weights=w[:3])),
        (idx, dict(offsets=[0], per_sample_weights=w.reshape(10, 1))),
        (idx.reshape(2, 5), dict(offsets=None, per_sample_weights=w.reshape(5, 2))),
        (idx, dict(offsets=[0], per_sample_weights=np.ones(10, np.int64))),
        (idx, dict(offsets=[0], mode="max", per_sample_weights=w)),
        (idx, dict(offsets=[0], out=np.empty((2, DIM), np.float32))),
        (idx, dict(offsets=[0], out=np.empty((1, DIM), np.float64))),
        (idx, dict(offsets=[0], n_threads=0)),
    ]
    for i, kw in bad:
        with pytest.raises(ConfigError):
            pooled_lookup(q, i, **kw)  # the kernel refuses it
        before = _tier_state(store)
        with pytest.raises(ConfigError):
            store.pooled_lookup(i, **kw)
        after = _tier_state(store)
        assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(before, after)), kw
    # Refused as torch refuses them: a scalar offset, and offsets not starting at 0 with no bags.
    # And an out over an input (indices, offsets or weights), which the kernel would read after writing.
    mem = np.zeros(2 * DIM, np.float32)
    on_mem = mem[:DIM].reshape(1, DIM)
    for i, kw in [(idx, dict(offsets=np.int64(0))), (idx, dict(offsets=[10], include_last_offset=True)),
                  (mem[:20].view(np.int64), dict(offsets=[0], out=on_mem)),
                  (idx, dict(offsets=mem[:2].view(np.int64), out=on_mem)),
                  (idx, dict(offsets=[0], per_sample_weights=mem[DIM - 5 : DIM + 5], out=on_mem))]:
        before = _tier_state(store)
        with pytest.raises(ConfigError, match="'offsets'|'out'"):
            store.pooled_lookup(i, **kw)
        after = _tier_state(store)
        assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(before, after)), kw
    # What the kernel accepts, the store serves the same.
    for i, kw in [(idx, dict(offsets=[0, 0, 10], include_last_offset=True)), (idx.reshape(5, 2), dict(offsets=None)),
                  (idx, dict(offsets=np.array([0, 4], np.uint32), per_sample_weights=w.astype(np.float64))),
                  (np.zeros(0, np.int64), dict(offsets=np.zeros(0, np.int64))), (np.zeros(0, np.int64), dict(offsets=[0, 0])),
                  (np.zeros((3, 0), np.int64), dict(offsets=None, mode="max"))]:
        assert np.array_equal(store.pooled_lookup(i, **kw), pooled_lookup(q, i, **kw)), kw


def test_rows_refuses_ids_that_are_not_integers(tmp_path):
    path, q = _table(tmp_path, n=200)
    store = TieredStore(path, dram_bytes=5 * q.row_bytes, policy="lru")
    with pytest.raises(ConfigError, match="'rows'"):
        store.rows(np.array([1.7, 2.2]))  # was truncated to rows 1 and 2
    assert store.stats()["batches"] == 0
    assert np.array_equal(store.rows(np.array([3, 3, 199], np.uint16)), q.data[[3, 3, 199]])


def test_lru_records_a_batch_where_it_admits_so_threads_keep_it_sequential(tmp_path):
    # A batch's hits were stamped when copied, its misses admitted after its file read, against the
    # clock of then: a batch served by another thread in between made this batch's own hits look
    # old, and its misses evicted them, a state no sequential order of the two batches gives.
    path, q = _table(tmp_path, n=100)
    store = TieredStore(path, dram_bytes=2 * q.row_bytes, policy="lru")
    store.pooled_lookup(np.array([1, 2]), np.array([0]))  # the tier holds rows 1 and 2
    entered, go = threading.Event(), threading.Event()
    read = store._reader.read

    def paused_read(rows):
        if 10 in rows:  # batch A's miss: let batch B run meanwhile
            entered.set()
            go.wait(10)
        return read(rows)

    store._reader.read = paused_read
    a = threading.Thread(target=store.pooled_lookup, args=(np.array([1, 10]), np.array([0])))
    a.start()
    assert entered.wait(10)
    store.pooled_lookup(np.array([2]), np.array([0]))  # batch B: a hit on row 2
    go.set()
    a.join()
    # A then B, or B then A: A's miss 10 evicts row 2, never row 1 which A itself asked for.
    assert set(store._dram.held_rows.tolist()) == {1, 10}


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_a_batch_whose_read_fails_leaves_the_policy_state_unchanged(tmp_path, policy):
    path, q = _table(tmp_path, n=100)
    store = TieredStore(path, dram_bytes=3 * q.row_bytes, policy=policy)
    store.pooled_lookup(np.array([1, 2, 3, 1]), np.array([0]))
    read = store._reader.read

    def failing_read(rows):
        raise ArtifactError("the device went away")

    store._reader.read = failing_read
    before = _tier_state(store)
    with pytest.raises(ArtifactError, match="went away"):
        store.pooled_lookup(np.array([1, 50, 51]), np.array([0]))
    after = _tier_state(store)
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(before, after))
    store._reader.read = read
    assert np.array_equal(store.pooled_lookup(np.array([1, 50]), np.array([0])), pooled_lookup(q, np.array([1, 50]), np.array([0])))


def test_the_store_refuses_exactly_what_the_kernel_refuses_and_before_staging(tmp_path):
    # The store checks the kernel's options itself (the kernel checks only after staging): any
    # drift between the two checks shows here, over combinations of valid and invalid options.
    import itertools

    path, q = _table(tmp_path, n=60)
    store = TieredStore(path, dram_bytes=4 * q.row_bytes, policy="lru")
    ids = {"1d": np.array([3, 7, 7, 50, 1, 2], np.int64), "2d": np.array([[3, 7, 7], [50, 1, 2]], np.int64),
           "empty": np.zeros(0, np.int64)}
    offsets = {"none": None, "ok": np.array([0, 2]), "ok_last": np.array([0, 2, 6]), "late": np.array([1, 2]),
               "down": np.array([0, 4, 2]), "float": np.array([0.0]), "2d": np.array([[0]]), "scalar": np.int64(0),
               "zero": np.array([0]), "empty": np.zeros(0, np.int64), "end": np.array([6])}
    weights = {"none": None, "flat": np.ones(6, np.float32), "grid": np.ones((2, 3), np.float32),
               "col": np.ones((6, 1), np.float32), "int": np.ones(6, np.int64), "short": np.ones(2, np.float32)}
    outs = {"none": None, "1": np.empty((1, DIM), np.float32), "2": np.empty((2, DIM), np.float32),
            "f64": np.empty((2, DIM), np.float64)}
    n_checked = 0
    for (ik, i), (ok, o), (wk, w), (uk, out), mode, last, threads in itertools.product(
            ids.items(), offsets.items(), weights.items(), outs.items(), ("sum", "max", "median"), (False, True), (None, 0)):
        kw = dict(offsets=o, per_sample_weights=w, mode=mode, include_last_offset=last, n_threads=threads)
        try:
            want = pooled_lookup(q, i, out=None if out is None else out.copy(), **kw)
        except ConfigError:
            want = None
        before = _tier_state(store)
        try:
            got = store.pooled_lookup(i, out=None if out is None else out.copy(), **kw)
        except ConfigError:
            got = None
        case = (ik, ok, wk, uk, mode, last, threads)
        assert (got is None) == (want is None), case
        if got is None:
            after = _tier_state(store)
            assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(before, after)), case
        else:
            assert np.array_equal(got, want), case
            n_checked += 1
    assert n_checked > 10  # some combinations are valid


@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_a_closed_store_frees_its_dram_and_refuses_clearly(tmp_path, policy):
    # A module over a store keeps the store (nn's registry), so close() must give the hot rows'
    # memory back; and a lookup after it raised a raw "Bad file descriptor" on a miss.
    path, q = _table(tmp_path)
    kw = dict(frequencies=_freq(), refresh_every=2) if policy == "frequency" else {}
    s = TieredStore(path, dram_bytes=40 * q.row_bytes, policy=policy, **kw)
    s.pooled_lookup(np.arange(0, N, 3), np.array([0, 7]))
    s.close()
    s.close()  # twice is fine
    assert s._dram.data.nbytes == 0 and s._dram.slot_of.nbytes == 0
    assert s.stats()["dram_rows"] == 0 and s.stats()["batches"] == 1  # the counters stay readable
    for call in (lambda: s.pooled_lookup(np.arange(5), np.array([0])), lambda: s.rows([0, 1]),
                 lambda: s.warm_up(), lambda: s.update_rows(np.array([0]), np.zeros((1, DIM), np.float32))):
        with pytest.raises(ConfigError, match="closed"):
            call()
    with TieredStore(path, dram_bytes=40 * q.row_bytes, policy=policy, **kw) as s2:  # the file is untouched
        assert np.array_equal(s2.rows([0, 1]), q.data[[0, 1]])


def test_pickling_or_copying_a_store_names_the_fix(tmp_path):
    import copy
    import pickle

    import torch

    from embcompress.nn import MXEmbeddingBag

    x = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    path = quantize(x, "mxint8").save(tmp_path / "t.embc")
    with TieredStore(path, dram_bytes=1024, policy="lru") as store:
        for attempt in (lambda: pickle.dumps(store), lambda: copy.deepcopy(store),
                        lambda: copy.deepcopy(MXEmbeddingBag(store)), lambda: torch.save(MXEmbeddingBag(store), tmp_path / "m.pt")):
            with pytest.raises(ConfigError, match="cannot be pickled or copied.*Open a new TieredStore"):
                attempt()
