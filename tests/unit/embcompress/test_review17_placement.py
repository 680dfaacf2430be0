"""Review 17 of the co-access layout (store/placement.py): defects found and their fixes."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import embcompress
from embcompress.container import read_artifact, write_artifact
from embcompress.errors import ArtifactError, ConfigError
from embcompress.store import blocks_per_batch, coaccess_order, placement, reorder_rows
from embcompress.tablefile import open_table


def _reordered(tmp_path, n=50):
    x = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    q = embcompress.quantize(x, "mxint8", block_size=16)
    path = embcompress.write_table(tmp_path / "t.embc", q, frequencies=np.arange(n))
    return q, reorder_rows(path, tmp_path / "r.embc", clusters=np.arange(n) % 3).path


@pytest.mark.parametrize("how", ["repeat", "outside", "short"])
def test_reorder_rows_refuses_a_row_order_that_is_not_a_permutation(tmp_path, how):
    # A reordered file's row_order is read to find each row's original id. One that repeated a
    # row left new positions never written: the new file held uninitialized memory as rows, with
    # fresh checksums (verify="full" passed). One out of range or short raised a raw
    # IndexError / ValueError.
    q, r = _reordered(tmp_path)
    art = read_artifact(r, kind="table")
    secs = {name: np.array(art.array(name)) for name in art.section_names}
    order = secs["row_order"].copy()
    if how == "repeat":
        order[1] = order[0]
    elif how == "outside":
        order[1] = len(q) + 5
    else:
        order = order[:-1]
    secs["row_order"] = order
    h = art.header
    write_artifact(tmp_path / "bad.embc", h["kind"], secs, config=h["config"], inputs=h["inputs"],
                   meta=h["meta"], align=h["align"])
    with pytest.raises(ArtifactError, match="row_order"):
        reorder_rows(tmp_path / "bad.embc", tmp_path / "out.embc", clusters=np.zeros(len(q), np.int64))
    assert not (tmp_path / "out.embc").exists()


def test_reorder_rows_holds_one_window_of_memory_bytes_not_two(tmp_path, monkeypatch):
    # Each window was a new array: the writer still held the previous one while the next was
    # made, so the copy took twice memory_bytes (a budget set to fit a memory cgroup overran it).
    n = 4000
    x = np.random.default_rng(0).standard_normal((n, 256)).astype(np.float32)
    q = embcompress.quantize(x, "fp32")  # 1 KiB rows: 4 MiB of rows
    path = embcompress.write_table(tmp_path / "t.embc", q)
    monkeypatch.setattr(placement, "_COPY_BYTES", 16 << 10)  # (reads of 16 rows: small temporaries)
    labels = np.random.default_rng(2).integers(0, 50, n)
    reorder_rows(path, tmp_path / "warm.embc", clusters=labels)  # (lazy imports out of the peak)
    window = q.nbytes // 4
    tracemalloc.start()
    try:
        layout = reorder_rows(path, tmp_path / "r.embc", clusters=labels, memory_bytes=window)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * window, (peak, window)
    assert np.array_equal(open_table(layout.path, verify="full").data, q.data[layout.order])


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, None])
def test_row_bytes_is_checked(bad):
    # coaccess_order raised ZeroDivisionError for 0 and returned an order for -5 (or, with clusters,
    # for any value); blocks_per_batch counted blocks of rows of no (or negative) size.
    m = sp.csr_matrix(np.ones((4, 4)))
    with pytest.raises(ConfigError, match="row_bytes"):
        coaccess_order(4, bad, cooccurrence=m)
    with pytest.raises(ConfigError, match="row_bytes"):
        coaccess_order(4, bad, clusters=np.zeros(4, np.int64))
    with pytest.raises(ConfigError, match="row_bytes"):
        blocks_per_batch([np.array([0, 1])], bad)
