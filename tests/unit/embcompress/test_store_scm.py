import numpy as np
import pytest

from embcompress.container import write_artifact
from embcompress.errors import ArtifactError
from embcompress.store.scm import BLOCK, RowReader


@pytest.fixture
def rows_file(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (3000, 100), dtype=np.uint8)  # 100-byte records straddle blocks
    path = write_artifact(tmp_path / "t.embc", "table", {"rows": data}, align=4096)
    from embcompress.container import read_artifact

    return path, data, read_artifact(path).section("rows").offset


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("in_flight", [1, 4])
def test_reads_match_the_records(rows_file, direct, in_flight):
    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=direct, max_in_flight=in_flight, max_read_bytes=2 * BLOCK)
    rows = np.array([2999, 0, 40, 41, 1234, 2000, 81], dtype=np.int64)
    got, n_blocks = r.read(rows)
    assert np.array_equal(got, data[rows])
    assert n_blocks == len(r.blocks_of(rows))
    # Row 40 spans bytes 4000..4100 of the section: two blocks; 40 and 41 share the second.
    assert len(r.blocks_of(np.array([40, 41]))) == 2
    empty, nb = r.read(np.zeros(0, np.int64))
    assert empty.shape == (0, 100) and nb == 0
    all_rows, _ = r.read(np.arange(len(data)))
    assert np.array_equal(all_rows, data)
    r.close()


def test_truncated_file_is_a_clear_error(rows_file, tmp_path):
    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=False)
    with open(path, "r+b") as fh:
        fh.truncate(base + 100 * 1000)
    with pytest.raises(ArtifactError, match="truncated"):
        r.read(np.array([2999]))
    r.close()
    with pytest.raises(ArtifactError, match="does not exist"):
        RowReader(tmp_path / "nope", 0, 100, 1)


@pytest.mark.parametrize("direct", [True, False])
def test_short_reads_are_resumed(rows_file, monkeypatch, direct):
    # POSIX lets a read return fewer bytes than asked (network and FUSE file systems do, mid-file):
    # the reader must go on from where it stopped, not call the file truncated.
    import os

    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=direct, max_in_flight=1, max_read_bytes=8 * BLOCK)
    real = os.preadv
    step = BLOCK if r.direct else 1000  # O_DIRECT reads stay block aligned

    def short(fd, bufs, off):
        return real(fd, [memoryview(bufs[0])[:step]], off)

    monkeypatch.setattr(os, "preadv", short)
    got, _ = r.read(np.arange(len(data)))
    assert np.array_equal(got, data)
    r.close()
