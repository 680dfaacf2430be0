"""Review of the tiered store (9): what a store over a table larger than memory holds of the file
and of memory (a closed store's file, the warm-up's and the reloads' peak), and clear errors."""

import gc
import os
import tracemalloc

import numpy as np
import pytest

import embcompress
from embcompress.kernels.lookup import pooled_lookup
from embcompress.store import TieredStore, reorder_rows, tiered, updlog
from embcompress.store.scm import RowReader

N, DIM = 3000, 16


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = embcompress.quantize(x, "fp32")  # 64-byte rows: 64 a 4 KiB block
    return embcompress.write_table(tmp_path / "t.embc", q), q


def _holds(path) -> tuple[int, int]:
    """Descriptors and memory mappings of this process that name ``path``."""
    real = os.path.realpath(path)
    fds = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds += os.readlink(f"/proc/self/fd/{fd}") == real
        except OSError:
            pass
    with open("/proc/self/maps") as f:
        maps = sum(line.rstrip("\n").endswith(" " + real) for line in f)
    return fds, maps


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
@pytest.mark.parametrize("reordered", [False, True])
def test_a_closed_store_holds_nothing_of_its_file(table, tmp_path, reordered, backend):
    # A store over a reordered file kept its row_order section mapped (a view of the file): the
    # file stayed open after close(), and after an update rewrote the table whole, the replaced
    # file's disk space stayed taken for as long as the store object lived (a module over it keeps
    # it for the life of the process).
    _, q = table
    raw = np.arange(10_000, 10_000 + N, dtype=np.int64)
    m = embcompress.IdMap.from_arrays(raw[:1000], np.arange(1000), N, seed=3)
    path = embcompress.write_table(tmp_path / "m.embc", q, id_map=m)
    if reordered:
        path = reorder_rows(path, tmp_path / "r.embc", clusters=np.arange(N) % 11).path
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy="lru")
    idx = np.arange(0, N, 7)
    assert np.array_equal(store.pooled_lookup(idx, np.array([0])),
                          pooled_lookup(q, idx, np.array([0])))
    store.close()
    gc.collect()
    assert _holds(path) == (0, 0)
    # the id map still sends raw ids to original row numbers after close (read from the file)
    ids = np.concatenate([raw[:40], [987654321]])
    assert np.array_equal(store.id_map.lookup(ids), m.lookup(ids))
    gc.collect()
    assert _holds(path) == (0, 0)


@pytest.mark.parametrize("policy", ["frequency", "lru"])
def test_the_warm_up_does_not_copy_the_hot_set_beside_the_tier(tmp_path, monkeypatch, policy):
    # The warm-up read the whole hot set into one array (and each read gathered its records into
    # a temporary first) before copying it into the tier: besides the tier's own dram_bytes it
    # took 3.4x dram_bytes at its peak, so a budget sized to half the memory failed to load. It now
    # reads a chunk at a time into the tier's slots.
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((N, 256)).astype(np.float32), "fp32")
    path = embcompress.write_table(tmp_path / "wide.embc", q)  # 1 KiB rows
    monkeypatch.setattr(tiered, "_WARM_CHUNK", 128)
    freq = np.random.default_rng(1).random(N)
    budget = 2500 * q.row_bytes
    store = TieredStore(path, dram_bytes=budget, policy=policy, frequencies=freq)
    store.warm_up()  # (once first: the first call's lazy imports are no part of the peak)
    tracemalloc.start()
    try:
        assert store.warm_up() == 2500
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < budget / 2
    hot = np.sort(np.argsort(-freq, kind="stable")[:2500])
    assert np.array_equal(np.sort(store._dram.held_rows), hot)
    store.reset_stats()
    assert np.array_equal(store.rows(hot), q.data[hot]) and store.stats()["dram_hits"] == 2500


def _read_sizes(monkeypatch):
    """The blocks of each file read from now on."""
    sizes = []
    real = RowReader.read

    def read(self, rows):
        out = real(self, rows)
        sizes.append(out[1])
        return out

    monkeypatch.setattr(RowReader, "read", read)
    return sizes


def test_reloading_every_held_row_reads_a_chunk_at_a_time(table, monkeypatch):
    # A new update log (one starts every 4 MiB of updates) or one that cannot be parsed makes a
    # store read every row it holds again; it read them in one read, into one buffer of every
    # block they lie in: for scattered hot rows of small records, about the whole table's size
    # (64 GiB for a 64 GiB table of 64-byte rows with a 1 GiB tier). Now a chunk at a time.
    path, q = table
    monkeypatch.setattr(tiered, "_WARM_CHUNK", 32)
    freq = np.zeros(N)
    held = np.arange(0, N, 64)[:40]  # one row a block: 40 blocks
    freq[held] = 1
    store = TieredStore(path, dram_bytes=len(held) * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    other = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    new = np.full((1, DIM), 0.5, np.float32)
    other.update_rows(held[:1], new)
    with open(updlog.log_path(path), "ab") as f:
        f.write(b"\x01\x02\x03")  # a log that cannot be parsed: every held row is read again
    want = other.rows(held)
    store.reset_stats()
    sizes = _read_sizes(monkeypatch)
    assert np.array_equal(store.rows(held), want)
    assert store.stats()["rows_reloaded"] == len(held) and store.stats()["blocks_read"] == len(held)
    assert sum(sizes) == len(held) and max(sizes) <= 32
    assert np.array_equal(store.rows(held[:1]).view(np.float32), new)


def test_a_refresh_reads_the_rows_entering_a_chunk_at_a_time(table, monkeypatch):
    # The rows entering the hot set at a refresh were read in one read too (up to the whole set
    # after a change of traffic with a long refresh_every).
    path, q = table
    monkeypatch.setattr(tiered, "_WARM_CHUNK", 32)
    store = TieredStore(path, dram_bytes=40 * q.row_bytes, policy="frequency", frequencies=np.zeros(N),
                        refresh_every=2)
    store.warm_up()  # rows 0..39 (ties to the lower row)
    sizes = []
    real = RowReader.read

    def read(self, rows):
        out = real(self, rows)
        if store._refreshing:
            sizes.append(out[1])
        return out

    monkeypatch.setattr(RowReader, "read", read)
    entering = np.arange(400, 400 + 64 * 40, 64)  # one a block
    for _ in range(2):
        store.pooled_lookup(np.repeat(entering, 3), np.array([0]))
    assert store.stats()["refreshes"] == 1 and store.stats()["refresh_rows"] == 40
    assert sum(sizes) == 40 and max(sizes) <= 32
    assert np.array_equal(np.sort(store._dram.held_rows), entering)
    store.reset_stats()
    assert np.array_equal(store.rows(entering), q.data[entering]) and store.stats()["dram_hits"] == 40


# --- errors that name the fix --------------------------------------------------------------------

@pytest.mark.parametrize("replay, match", [
    ([[1, 2], [N + 5]], r"'replay' parameter of reorder_rows must hold row ids in \[0, 3000\)"),
    ([[-1]], r"'replay' parameter of reorder_rows must hold row ids in \[0, 3000\)"),
    ([[1.5, 2.0]], r"'replay' parameter of reorder_rows must hold int row ids"),
    ([], r"'replay' parameter of reorder_rows must hold at least one batch"),
])
def test_reorder_rows_refuses_a_bad_replay_before_writing(table, tmp_path, replay, match):
    # An id out of range raised a raw IndexError (after the new file was written), a float id was
    # truncated to another row, and an empty replay gave NaN block counts with numpy warnings.
    path, _ = table
    out = tmp_path / "r.embc"
    with pytest.raises(embcompress.ConfigError, match=match):
        reorder_rows(path, out, clusters=np.arange(N) % 5, replay=replay)
    assert not out.exists()


def test_blocks_per_batch_refuses_ids_its_new_order_does_not_have():
    from embcompress.store import blocks_per_batch

    with pytest.raises(embcompress.ConfigError, match=r"'batches' parameter of blocks_per_batch must hold row ids in \[0, 4\)"):
        blocks_per_batch([[0, 9]], 64, new_row=np.arange(4))
    with pytest.raises(embcompress.ConfigError, match="'batches' parameter of blocks_per_batch must hold int row ids"):
        blocks_per_batch([[0.5]], 64)
    assert blocks_per_batch([[0, 1], [], [0, 64]], 64).tolist() == [1, 0, 2]


@pytest.mark.parametrize("kw, match", [
    (dict(frequencies=["a", "b"]), "'frequencies' parameter of plan must be"),
    (dict(frequencies=[{"row": 1}]), "'frequencies' parameter of plan must be"),
    (dict(fractions=0.1), "'fractions' parameter of plan must be a sequence"),
    (dict(fractions=None), "'fractions' parameter of plan must be a sequence"),
])
def test_plan_names_frequencies_and_fractions_it_cannot_use(kw, match):
    # Text frequencies raised numpy's raw ValueError ("could not convert string to float"), and a
    # single fraction (fractions=0.1) or None a raw TypeError ("'float' object is not iterable").
    from embcompress.store import plan

    args = dict(table_bytes=6400, row_bytes=64, frequencies=np.ones(100), lookups_per_s=1e3)
    args.update(kw)
    with pytest.raises(embcompress.ConfigError, match=match):
        plan(**args)


def test_a_device_model_takes_numpy_numbers_and_stays_serializable():
    # Figures computed with numpy (a measured mean latency in float32, a queue depth from an array)
    # were refused with a message that contradicted itself: "The 'queue_depth' parameter ... must
    # be a positive int. Got np.int64(16) instead."
    import json

    from embcompress.store import DeviceModel

    d = DeviceModel("measured", np.float32(12.5), np.float64(4e5), np.int64(4096), np.float32(2.0), np.int64(16),
                    np.float32(7.5), np.int32(800), np.float64(0.2))
    assert d.queue_depth == 16 and d.read_granularity == 4096 and d.read_latency_us == 12.5
    back = DeviceModel.from_dict(json.loads(json.dumps(d.to_dict())))
    assert back == d
    with pytest.raises(embcompress.ConfigError, match="'queue_depth' parameter of DeviceModel"):
        DeviceModel("x", 12.5, 4e5, 4096, 2.0, np.float64(16.5), 7.5, 800, 0.2)
    with pytest.raises(embcompress.ConfigError, match="'power_w' parameter of DeviceModel"):
        DeviceModel("x", 12.5, 4e5, 4096, 2.0, 16, np.bool_(True), 800, 0.2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300])
def test_update_rows_names_non_finite_values_and_its_own_fix(table, bad):
    # The error came from quantize ("The table passed to quantize has non-finite values ... in rows
    # [0]. ... pass nonfinite='nan_block'"): rows numbered within the update, and a parameter
    # update_rows does not have (1e300, beyond float32, also warned of an overflow in a cast).
    import warnings

    path, q = table
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru")
    values = np.zeros((3, DIM))
    values[2, 5] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(embcompress.ConfigError, match=r"'values' parameter of TieredStore.update_rows must be "
                           r"finite in float32.*uint8 records.*nonfinite='nan_block'.*rows \[42\]"):
            store.update_rows(np.array([7, 9, 42]), values)
    assert np.array_equal(store.rows([7, 9, 42]), q.data[[7, 9, 42]])  # nothing written
    values[2, 5] = np.nan
    nan_rows = embcompress.quantize(values.astype(np.float32), "fp32", nonfinite="nan_block").data
    store.update_rows(np.array([7, 9, 42]), nan_rows)  # the fix the message names
    assert np.isnan(store.rows([42]).view(np.float32)).any()


@pytest.mark.parametrize("inputs", ["criteo day 0", ["day_0.tsv"], 3])
def test_write_table_names_inputs_that_are_not_a_dict(tmp_path, inputs):
    # dict(inputs) raised Python's raw "dictionary update sequence element #0 has length 1".
    q = embcompress.quantize(np.ones((4, 8), np.float32), "fp16")
    with pytest.raises(embcompress.ConfigError, match="'inputs' parameter of write_table must be a dict"):
        embcompress.write_table(tmp_path / "t.embc", q, inputs=inputs)
    assert not (tmp_path / "t.embc").exists()
    path = embcompress.write_table(tmp_path / "t.embc", q, inputs={"log": "day_0.tsv"})
    assert embcompress.open_table(path).header["inputs"] == {"log": "day_0.tsv"}


def test_reorder_rows_does_not_load_the_table_into_memory(tmp_path, monkeypatch):
    # The new order's rows were gathered into one array (rows[src]): a table larger than memory
    # could not be reordered. They now stream into the writer a window of memory_bytes at a time.
    from embcompress.store import placement
    from embcompress.tablefile import open_table

    n = 4000
    x = np.random.default_rng(0).standard_normal((n, 256)).astype(np.float32)
    q = embcompress.quantize(x, "fp32")  # 1 KiB rows: 4 MB of rows
    freq = np.random.default_rng(1).integers(0, 100, n)
    m = embcompress.IdMap.from_arrays(np.arange(n) * 7, np.arange(n), n, seed=1)
    path = embcompress.write_table(tmp_path / "t.embc", q, frequencies=freq, id_map=m)
    monkeypatch.setattr(placement, "_COPY_BYTES", 64 << 10, raising=False)
    labels = np.random.default_rng(2).integers(0, 50, n)
    reorder_rows(path, tmp_path / "warm.embc", clusters=labels)  # (lazy imports out of the peak)
    tracemalloc.start()
    try:
        layout = reorder_rows(path, tmp_path / "r.embc", clusters=labels, memory_bytes=q.nbytes // 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < q.nbytes / 4
    t = open_table(layout.path, verify="full")
    assert np.array_equal(t.data, q.data[layout.order])
    assert np.array_equal(t.frequencies, freq[layout.order])
    assert np.array_equal(t.id_map.lookup(np.arange(0, 70, 7)), layout.new_row[np.arange(10)])
    assert sorted(os.listdir(tmp_path)) == ["r.embc", "t.embc", "warm.embc"]  # no temporary left


# --- a table replaced under a running store ------------------------------------------------------

def _other_table(path):
    """Another table written over ``path`` (write_table, as a new export would): fp16 (1500, 32),
    whose 64-byte rows are as long as the fp32 (3000, 16) table's."""
    x = np.random.default_rng(7).standard_normal((N // 2, 2 * DIM)).astype(np.float32)
    q2 = embcompress.quantize(x, "fp16")
    embcompress.write_table(path, q2)
    return q2


def test_update_rows_refuses_a_table_that_replaced_the_one_it_serves(table):
    # Before, the store wrote its fp32 record into the fp16 table now at the path (with the checksum
    # updated, so verify passed), then served that table's rows beside its own tier's.
    path, q = table
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy="lru")
    assert np.array_equal(store.rows([1, 2]), q.data[[1, 2]])
    q2 = _other_table(path)
    before = path.read_bytes()
    with pytest.raises(embcompress.ArtifactError, match="replaced by another table.*Open a new TieredStore"):
        store.update_rows(np.array([3]), np.ones((1, DIM), np.float32))
    assert path.read_bytes() == before
    rows = np.array([1, 2, 3, 2000])
    assert np.array_equal(store.rows(rows), q.data[rows])  # still the table it opened
    assert np.array_equal(embcompress.open_table(path, verify="full").data, q2.data)


def test_a_store_keeps_serving_its_table_when_another_replaced_it_is_updated(table, backend):
    # An update of the new table (through another store) changed the update log, and the store
    # then switched its reader to the new file: rows of a table of another format and shape
    # (row 2000 lies past its 1500 rows) beside its tier's copies of the old one.
    path, q = table
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy="lru")
    assert np.array_equal(store.rows([1, 2]), q.data[[1, 2]])
    q2 = _other_table(path)
    other = TieredStore(path, dram_bytes=10 * q2.row_bytes, policy="lru")
    other.update_rows(np.array([1]), np.ones((1, 2 * DIM), np.float32))
    rows = np.array([1, 2, 3, 2000, 2999])
    assert np.array_equal(store.rows(rows), q.data[rows])
    idx = np.arange(0, N, 3)
    assert np.array_equal(store.pooled_lookup(idx, np.array([0])), pooled_lookup(q, idx, np.array([0])))


# --- what a store keeps for every table row ------------------------------------------------------

@pytest.mark.parametrize("policy, kw, reordered, per_row", [
    ("frequency", {}, False, 4),  # the slot index (int32)
    ("lru", {}, False, 4),
    ("lfu", {}, False, 12),  # + int64 counts
    ("frequency", {"refresh_every": 1}, False, 13),  # + float64 score and a flag
    ("frequency", {}, True, 12),  # + the inverse row order (int64) of a reordered file
])
def test_a_store_keeps_no_copy_of_the_files_frequencies(tmp_path, policy, kw, reordered, per_row):
    # The README and plan() count 4 bytes a table row beside the budget (12 for lfu, 13 with
    # refresh_every); the store also kept a copy of the file's frequencies, 8 bytes a row more (for
    # a billion-row table, 8 GB the plan did not count). The file's frequencies are now read again
    # when a warm-up needs them.
    n = 100_000
    q = embcompress.quantize(np.zeros((n, 8), np.float32), "fp16")
    freq = np.random.default_rng(0).integers(0, 1000, n)
    path = embcompress.write_table(tmp_path / "t.embc", q, frequencies=freq)
    if reordered:
        path = reorder_rows(path, tmp_path / "r.embc", clusters=np.arange(n) % 17).path
    TieredStore(path, dram_bytes=q.row_bytes, policy=policy, **kw).rows([1])  # (lazy imports)
    gc.collect()
    tracemalloc.start()
    try:
        store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy=policy, **kw)
        store.rows([1, 2, 3])
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < n * (per_row + 0.5)
    # and the warm-up still ranks by the file's frequencies
    hot = np.sort(np.argsort(-freq, kind="stable")[:100])
    assert store.warm_up() == 100 and np.array_equal(np.sort(store._dram.held_rows), np.sort(store._positions(hot)))
    store.reset_stats()
    assert np.array_equal(store.rows(hot), q.data[hot]) and store.stats()["dram_hits"] == 100


def test_reorder_rows_copies_no_row_an_update_is_writing(table, tmp_path):
    # The rows were copied without the table's lock, so an update another process was writing (it
    # holds the table's exclusive lock while it writes) left a row half old, half new in the new
    # file, whose checksum then matched it. They are now copied under the shared lock, as a store
    # reads them.
    import fcntl
    import threading

    path, q = table
    new = np.full(q.row_bytes, 0xAB, np.uint8)
    base = embcompress.read_artifact(path).section("rows").offset
    fd = os.open(path, os.O_RDWR)
    out = {}
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, new[: q.row_bytes // 2].tobytes(), base + 5 * q.row_bytes)  # midway through a row
        t = threading.Thread(target=lambda: out.update(layout=reorder_rows(path, tmp_path / "r.embc",
                                                                           clusters=np.arange(N) % 7)))
        t.start()
        t.join(2.0)  # (without the lock it has copied the torn row by now; with it, it waits)
        os.pwrite(fd, new.tobytes(), base + 5 * q.row_bytes)
    finally:
        os.close(fd)  # releases the lock
    t.join()
    layout = out["layout"]
    got = embcompress.read_artifact(layout.path).array("rows")[layout.new_row[5]]
    assert np.array_equal(got, new)


def test_writing_a_table_over_one_with_a_pending_journal_makes_the_removal_durable(table, monkeypatch):
    # write_table removes the journal an interrupted update of the replaced file left, but did not
    # fsync the folder: after a power cut the journal could come back beside the new table, which
    # open_table and TieredStore then refuse ("does not belong"). Every other removal of a journal
    # is followed by a folder fsync.
    from embcompress import container
    from embcompress.store import journal

    path, q = table
    journal.journal_path(path).write_bytes(b"left by an interrupted update")
    synced = []
    real = container._fsync_dir

    def fsync_dir(folder):
        synced.append((folder, journal.journal_path(path).exists()))
        real(folder)

    monkeypatch.setattr(container, "_fsync_dir", fsync_dir)
    embcompress.write_table(path, q)
    assert not journal.journal_path(path).exists()
    assert (path.parent, False) in synced  # the folder synced once the journal was gone


@pytest.mark.parametrize("bad", [None, 3, b"t.embc"])
def test_a_table_path_that_is_not_a_path_is_named(bad):
    # TieredStore(None, ...) and open_table(None) raised Python's raw "expected str, bytes or
    # os.PathLike object, not NoneType".
    with pytest.raises(embcompress.ConfigError, match="'table_file' parameter of TieredStore must be a path"):
        TieredStore(bad, dram_bytes=1 << 20)
    with pytest.raises(embcompress.ConfigError, match="'path' parameter of open_table must be a path"):
        embcompress.open_table(bad)


def test_device_lookups_per_s_is_nan_before_any_lookup(table):
    # With no lookup counted (a new store, or after reset_stats) it said inf, a device that could
    # serve any rate, where every other rate of stats() says NaN (nothing measured).
    import math

    path, q = table
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru", device="nand")
    assert math.isnan(store.stats()["device_lookups_per_s"]) and math.isnan(store.stats()["hit_rate"])
    store.rows([1, 2, 3])
    assert 0 < store.stats()["device_lookups_per_s"] < math.inf
    store.reset_stats()
    assert math.isnan(store.stats()["device_lookups_per_s"])
    store.rows([1, 2, 3])  # all in DRAM now: no device read, any rate the device allows
    assert store.stats()["device_lookups_per_s"] == math.inf


@pytest.mark.parametrize("how", ["clusters", "cooccurrence"])
@pytest.mark.parametrize("freq", [np.ones(3), np.full(N, np.nan), -np.ones(N), np.array(["a"] * N)])
def test_coaccess_order_checks_its_frequencies_whatever_the_groups(how, freq):
    # With clusters, frequencies were not looked at (a wrong length passed unseen); with mined
    # co-access, NaN or negative counts were taken and ordered the blocks by nonsense, and text
    # raised numpy's raw ValueError.
    from embcompress.store import coaccess_order, mine_coaccess

    groups = (dict(clusters=np.arange(N) % 9) if how == "clusters"
              else dict(cooccurrence=mine_coaccess(np.arange(40), np.arange(0, 40, 4), N)))
    with pytest.raises(embcompress.ConfigError, match="'frequencies' parameter of coaccess_order must be"):
        coaccess_order(N, 64, frequencies=freq, **groups)


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc")
def test_a_store_reads_only_what_was_appended_to_the_update_log(table, monkeypatch):
    # Each time another process's update changed the log, a store read the whole log again (up to
    # its 4 MiB limit), under the lock that holds every lookup thread, to parse only the new end.
    path, q = table
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy="lru")
    other = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    for k in range(200):
        other.update_rows(np.array([k]), np.full((1, DIM), k, np.float32))
    store.rows([1])  # takes in the log so far
    size = os.path.getsize(updlog.log_path(path))
    read = []
    real, log = os.pread, str(updlog.log_path(path))

    def pread(fd, n, off):
        if os.readlink(f"/proc/self/fd/{fd}") == log:
            read.append(n)
        return real(fd, n, off)

    monkeypatch.setattr(os, "pread", pread)
    store.rows(np.arange(100))  # hold rows 0..99
    other.update_rows(np.array([7]), np.full((1, DIM), -1, np.float32))
    assert store.rows([7]).view(np.float32)[0, 0] == -1
    assert size > 3000 and sum(read) <= 64  # the new record (16 bytes) and the header, not the log


def test_clusters_with_frequencies_are_laid_out_hottest_first():
    """reorder_rows says frequencies order the groups hottest first; with clusters they were
    ignored (label order). Now clusters go hottest first, and so do the rows within one."""
    from embcompress.store.placement import coaccess_order

    clusters = np.array([0, 0, 1, 1, 2, 2])
    freq = np.array([1, 2, 10, 0, 3, 3])
    assert coaccess_order(6, 64, clusters=clusters).tolist() == [0, 1, 2, 3, 4, 5]
    # heats: cluster 1 = 10, cluster 2 = 6, cluster 0 = 3
    assert coaccess_order(6, 64, clusters=clusters, frequencies=freq).tolist() == [2, 3, 4, 5, 1, 0]
