"""Row offsets past 4 GiB: a table file of 4.6 GB (sparse, so it takes no disk) whose last rows
are real records, read through open_table's mapping by both kernels and through the tiered store
by both read paths (the compiled pread loop and the Python one, O_DIRECT or not). Offsets are
int64 throughout (checked on a real 5.6 GB table too: see the session-12 scale report); this
keeps them so. Row ids of every integer width are taken, int32 ones included."""

import json
import os
import struct
import zlib

import numpy as np
import pytest

import embcompress
from embcompress.container import MAGIC, MAJOR, MINOR, PREFIX, PREFIX_SIZE, write_artifact
from embcompress.formats import dequantize, quantize
from embcompress.kernels.lookup import pooled_lookup
from embcompress.store import TieredStore
from embcompress.table import QuantizedTable

N_ROWS, DIM, FMT = 1_100_000, 4096, "mxint8"  # 4224-byte rows (two blocks each): 4.65e9 bytes, past 2**32


def _sparse_table(path, tail: QuantizedTable):
    """A table file of N_ROWS rows whose last ``len(tail)`` rows are ``tail`` and the rest zero
    bytes never written (a hole). Its header is the one write_table writes for N_ROWS rows, but
    for the rows section's checksum, which only a full verify reads."""
    small = quantize(np.zeros((1, DIM), np.float32), FMT)
    write_artifact(path, "table", {"rows": small.data}, config={**small.config(), "shape": [N_ROWS, DIM]},
                   meta={"table_file": {"version": 1, "frequencies": False, "id_map": None}}, align=4096)
    with open(path, "r+b") as fh:
        head = fh.read(PREFIX_SIZE)
        header_len = PREFIX.unpack(head)[4]
        header = json.loads(fh.read(header_len))
        (sec,) = header["sections"]
        sec["shape"] = [N_ROWS, tail.row_bytes]
        sec["nbytes"] = N_ROWS * tail.row_bytes
        header["file_size"] = sec["offset"] + sec["nbytes"]
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        text += b" " * (header_len - len(text))
        crc = zlib.crc32(text, zlib.crc32(struct.pack("<HHIQ", MAJOR, MINOR, 0, header_len)))
        fh.seek(0)
        fh.write(PREFIX.pack(MAGIC, MAJOR, MINOR, 0, header_len, crc, 0) + text)
        fh.truncate(header["file_size"])
        fh.seek(sec["offset"] + (N_ROWS - len(tail)) * tail.row_bytes)
        fh.write(tail.data.tobytes())
    return sec["offset"]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("offsets") / "big.embc"
    tail = quantize(np.random.default_rng(0).standard_normal((64, DIM)).astype(np.float32), FMT)
    try:
        base = _sparse_table(path, tail)
    except OSError as exc:  # (a file system without holes or room for a 5 GiB file)
        pytest.skip(f"no sparse 4.6 GB file here: {exc}")
    assert base + (N_ROWS - 64) * tail.row_bytes > 2**32  # the tail lies past 4 GiB
    yield path, tail
    os.unlink(path)


@pytest.fixture(params=["numpy", "auto"])
def backend(request, monkeypatch):
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", request.param)
    return request.param


def _rows_and_want(tail):
    local = np.array([63, 0, 31, 62], dtype=np.int64)
    return N_ROWS - 64 + local, dequantize(tail.take(local)), tail.data[local]


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32])
def test_scale12_lookups_past_4_gib_of_a_mapped_table(big, backend, dtype):
    path, tail = big
    rows, want, _ = _rows_and_want(tail)
    t = embcompress.open_table(path)
    assert t.shape == (N_ROWS, DIM)
    got = pooled_lookup(t, rows.astype(dtype), np.arange(len(rows)))
    assert np.array_equal(got, want)
    pair = pooled_lookup(t, rows.astype(dtype).reshape(2, 2), mode="max")
    assert np.array_equal(pair, np.maximum(want[0::2], want[1::2]))
    assert np.array_equal(pooled_lookup(t, np.array([0, rows[0]]), np.arange(2))[1], want[0])  # (row 0: the hole)


@pytest.mark.parametrize("direct_io", [True, False])
@pytest.mark.parametrize("policy", ["frequency", "lru"])
def test_scale12_store_reads_past_4_gib(big, backend, direct_io, policy):
    path, tail = big
    rows, want, records = _rows_and_want(tail)
    freq = np.zeros(N_ROWS, np.float32)
    freq[rows[:2]] = 1  # the first two held in DRAM, the others read from the file
    with TieredStore(path, dram_bytes=2 * tail.row_bytes, policy=policy, frequencies=freq,
                     direct_io=direct_io) as s:
        assert np.array_equal(s.pooled_lookup(rows.astype(np.int32), np.arange(len(rows))), want)
        assert np.array_equal(s.rows(rows), records)
        assert s.stats()["scm_rows"] >= 2
