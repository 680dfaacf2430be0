"""`embcompress verify` checks each byte of a file once (a table was read twice: the container's
full verify, then open_table's)."""

import numpy as np
import pytest

import embcompress
from embcompress import container
from embcompress.cli.verify import verify_file
from embcompress.idmap import IdMap


@pytest.fixture
def full_reads(monkeypatch):
    """The paths read_artifact fully verified."""
    seen = []
    real = container.read_artifact

    def spy(path, *args, **kw):
        if kw.get("verify") == "full":
            seen.append(str(path))
        return real(path, *args, **kw)

    for mod in ("embcompress.container", "embcompress.tablefile", "embcompress.idmap"):
        monkeypatch.setattr(f"{mod}.read_artifact", spy)
    return seen


def test_a_table_is_read_once(tmp_path, full_reads):
    x = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    idm = IdMap.from_arrays(np.arange(100, 120), np.arange(20) % 50, 50)
    path = embcompress.write_table(tmp_path / "t.embc", embcompress.quantize(x, "mxint8"), id_map=idm,
                                   frequencies=np.ones(50, np.int64))
    out = verify_file(path)
    assert out.startswith(f"ok: {path}: mxint8 table 50 x 16,") and out.endswith("every byte checked")
    assert full_reads == [str(path)]


def test_an_id_map_is_read_once(tmp_path, full_reads):
    path = tmp_path / "m.idmap"
    IdMap.from_arrays(np.arange(5), np.arange(5), 5).save(path)
    assert verify_file(path).startswith(f"ok: {path}: idmap artifact,")
    assert len(full_reads) == 1


def test_a_damaged_table_is_still_found(tmp_path):
    x = np.random.default_rng(1).standard_normal((50, 16)).astype(np.float32)
    path = embcompress.write_table(tmp_path / "t.embc", embcompress.quantize(x, "mxint8"))
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(embcompress.errors.ArtifactError):
        verify_file(path)
