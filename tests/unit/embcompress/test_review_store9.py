"""Review of the tiered store (9): what a store over a table larger than memory holds of the file
and of memory (a closed store's file, the warm-up's and the reloads' peak), and clear errors."""

import gc
import os
import tracemalloc

import numpy as np
import pytest

import embcompress
from embcompress.kernels.lookup import pooled_lookup
from embcompress.store import TieredStore, reorder_rows, tiered

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
def test_a_closed_store_holds_nothing_of_its_file(table, tmp_path, reordered):
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
