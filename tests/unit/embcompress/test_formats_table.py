"""QuantizedTable: views, take, sections and the file round-trip through the container."""

import numpy as np
import pytest

import embcompress as ec
from embcompress.container import read_artifact, write_artifact
from embcompress.errors import ArtifactError, ChecksumError, ConfigError
from embcompress.formats import FORMATS, get_format
from embcompress.table import QuantizedTable
from tests.unit.embcompress.formats_inputs import random_table


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_save_load_roundtrip(fmt, tmp_path):
    q = ec.quantize(random_table(1, n=30, dim=50), fmt)
    path = q.save(tmp_path / f"{fmt}.embc")
    for verify in ("header", "full"):
        r = QuantizedTable.load(path, verify=verify)
        assert r == q and r.fmt == fmt and r.shape == q.shape and r.block_size == q.block_size
        np.testing.assert_array_equal(ec.dequantize(r), ec.dequantize(q))
    art = read_artifact(path)
    assert art.kind == "table" and art.align == 4096 and art.section_names == ["rows"]
    assert art.section("rows").offset % 4096 == 0
    assert art.config["format"] == fmt and art.config["version"] == 1


def test_sections_and_config():
    q = ec.quantize(random_table(2, n=5, dim=40), "mx6", scale_mode="mse")
    sections, config = q.to_sections()
    assert set(sections) == {"rows"} and sections["rows"] is q.data
    assert config == {
        "version": 1, "format": "mx6", "shape": [5, 40], "block_size": 16, "scale_mode": "mse",
        "row_bytes": get_format("mx6").row_bytes(40),
    }
    assert QuantizedTable.from_sections(config, sections) == q


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(format="mxfp5"), "format 'mxfp5' is unknown"),
        (dict(version=99), "newer than this embcompress reads"),
        (dict(version="1"), "positive int 'version'"),
        (dict(shape=[5, 70]), "inconsistent"),
        (dict(shape=[6, 40]), "inconsistent"),
        (dict(block_size=16), "inconsistent"),
        (dict(row_bytes=7), "row_bytes=7"),
    ],
)
def test_from_sections_refuses_inconsistent_input(change, match):
    q = ec.quantize(random_table(3, n=5, dim=40), "mxfp4_e2m1")
    sections, config = q.to_sections()
    with pytest.raises(ArtifactError, match=match):
        QuantizedTable.from_sections({**config, **change}, sections)
    with pytest.raises(ArtifactError, match="'rows' section"):
        QuantizedTable.from_sections(config, {})
    with pytest.raises(ArtifactError, match="inconsistent"):
        QuantizedTable.from_sections(config, {"rows": sections["rows"][:, :-1]})


def test_load_detects_corruption_and_wrong_kind(tmp_path):
    q = ec.quantize(random_table(4, n=8, dim=32), "int8_rowwise")
    path = q.save(tmp_path / "t.embc")
    raw = bytearray(path.read_bytes())
    off = read_artifact(path).section("rows").offset
    raw[off + 5] ^= 1
    path.write_bytes(bytes(raw))
    QuantizedTable.load(path)  # header checks pass
    with pytest.raises(ChecksumError):
        QuantizedTable.load(path, verify="full")
    other = write_artifact(tmp_path / "o.embc", "idmap", {"a": np.zeros(3)})
    with pytest.raises(ArtifactError, match=r"holds an id map \(kind 'idmap'\), not a compressed table \(kind 'table'\)"):
        QuantizedTable.load(other)


def test_take_scales_codes_and_immutability():
    x = random_table(5, n=10, dim=40)
    q = ec.quantize(x, "mxfp6_e2m3")
    t = q.take(np.array([9, 0, 0]))
    assert t.shape == (3, 40)
    np.testing.assert_array_equal(t.data, q.data[[9, 0, 0]])
    np.testing.assert_array_equal(q.take(np.arange(10) % 2 == 0).data, q.data[::2])
    assert q.scales.shape == (10, 2) and q.codes.shape == (10, 64) and q.codes.max() < 64
    assert not q.data.flags.writeable
    with pytest.raises(ConfigError, match="ids in \\[0, 10\\)"):
        q.take(np.array([10]))
    with pytest.raises(ConfigError, match="1-D array of int row ids"):
        q.take(np.array([0.5]))
    with pytest.raises(ConfigError, match="be uint8 of shape"):
        QuantizedTable(np.zeros((2, 3), np.uint8), "mxfp6_e2m3", (2, 40))
    assert "mxfp6_e2m3" in repr(q)
