import json
import os
import struct
import zlib

import numpy as np
import pytest

from embcompress.container import MAGIC, PREFIX_SIZE, Artifact, read_artifact, write_artifact
from embcompress.errors import ArtifactError, ConfigError, VersionError


def _write(tmp_path, n_rows=37, seed=0, **kw):
    rng = np.random.default_rng(seed)
    sections = {
        "rows": rng.integers(0, 255, size=(n_rows, 13), dtype=np.uint8),
        "scales": rng.standard_normal(n_rows).astype(np.float32),
        "empty": np.zeros((0, 4), dtype=np.int64),
    }
    path = write_artifact(tmp_path / "a.embc", "test", sections, config={"fmt": "x"}, inputs={"seed": 3}, **kw)
    return path, sections


def test_round_trip_mmap_and_copy(tmp_path):
    path, sections = _write(tmp_path)
    for mmap in (True, False):
        art = read_artifact(path, kind="test", mmap=mmap, verify="full")
        assert art.kind == "test" and art.config == {"fmt": "x"} and art.inputs == {"seed": 3}
        assert art.section_names == list(sections)
        for name, arr in sections.items():
            got = art.array(name)
            assert got.dtype == arr.dtype and got.shape == arr.shape
            np.testing.assert_array_equal(got, arr)
            assert not got.flags.writeable


def test_sections_are_aligned(tmp_path):
    path, _ = _write(tmp_path, align=4096)
    art = read_artifact(path)
    for name in art.section_names:
        assert art.section(name).offset % 4096 == 0


def test_every_byte_flip_is_detected_by_full_verify(tmp_path):
    path, sections = _write(tmp_path)
    good = path.read_bytes()
    # every byte of a small file: prefix, header, padding and data
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x41
        path.write_bytes(bytes(bad))
        with pytest.raises(ArtifactError):
            read_artifact(path, verify="full")


def test_truncation_is_detected_at_open(tmp_path):
    path, _ = _write(tmp_path)
    good = path.read_bytes()
    for cut in (0, 5, PREFIX_SIZE, PREFIX_SIZE + 10, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:cut])
        with pytest.raises(ArtifactError, match="truncated|shorter|malformed"):
            read_artifact(path)


def test_appended_bytes_are_detected(tmp_path):
    path, _ = _write(tmp_path)
    with open(path, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError):
        read_artifact(path)


def test_wrong_magic_names_the_problem(tmp_path):
    p = tmp_path / "foreign.bin"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ArtifactError, match="not an embcompress artifact"):
        read_artifact(p)


def test_newer_major_version_is_refused(tmp_path):
    path, _ = _write(tmp_path)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<H", raw, len(MAGIC), 2)
    path.write_bytes(bytes(raw))
    with pytest.raises(VersionError, match="Upgrade embcompress"):
        read_artifact(path)


def test_wrong_kind_is_refused(tmp_path):
    path, _ = _write(tmp_path)
    with pytest.raises(ArtifactError, match="holds a 'test' artifact"):
        read_artifact(path, kind="table")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        read_artifact(tmp_path / "nope")
    with pytest.raises(ArtifactError, match="directory"):
        read_artifact(tmp_path)


def test_object_dtype_and_nonfinite_config_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="numeric dtype"):
        write_artifact(tmp_path / "x", "t", {"a": np.array(["a"], dtype=object)})
    with pytest.raises(ConfigError, match="JSON"):
        write_artifact(tmp_path / "x", "t", {"a": np.zeros(1)}, meta={"v": float("nan")})
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temporary file left behind"


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path, sections = _write(tmp_path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_artifact(path, "test", {"rows": np.ones(10)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.embc"]


def test_big_endian_input_is_stored_little_endian(tmp_path):
    arr = np.arange(5, dtype=">i4")
    path = write_artifact(tmp_path / "b", "t", {"a": arr})
    got = read_artifact(path, verify="full").array("a")
    assert got.dtype == np.dtype("<i4")
    np.testing.assert_array_equal(got, arr)


def test_large_header_is_laid_out(tmp_path):
    meta = {"long": "x" * 5000}
    path = write_artifact(tmp_path / "c", "t", {"a": np.arange(3.0)}, meta=meta)
    art = read_artifact(path, verify="full")
    assert art.meta == meta
    assert json.loads(json.dumps(art.meta)) == meta


def _rewrite_header(path, change):
    """Apply ``change`` to the JSON header of ``path`` and store it with a valid checksum, as a
    crafted or foreign-but-well-formed file would be (the header keeps its length)."""
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[16:24], "little")
    header = json.loads(raw[PREFIX_SIZE : PREFIX_SIZE + header_len])
    header = change(header)
    text = json.dumps(header).encode()
    assert len(text) <= header_len
    text += b" " * (header_len - len(text))
    head = struct.pack("<HHIQ", 1, 0, 0, header_len)
    struct.pack_into("<I", raw, 24, zlib.crc32(text, zlib.crc32(head)))
    raw[PREFIX_SIZE : PREFIX_SIZE + header_len] = text
    path.write_bytes(bytes(raw))


def _section(header, name):
    return next(s for s in header["sections"] if s["name"] == name)


@pytest.mark.parametrize(
    "shape,nbytes",
    [
        ([2**32, 2**32], 0),  # 2^64 elements: wraps to 0 in int64 arithmetic
        ([64, 2**58 + 1], 64),  # 2^64 + 64 elements: wraps to 64, which fits in the file
        ([2**70, 1], 2**70),  # does not fit int64 at all
    ],
)
@pytest.mark.parametrize("mmap", [True, False])
def test_section_shape_overflow_is_refused(tmp_path, shape, nbytes, mmap):
    path, _ = _write(tmp_path)

    def change(h):
        _section(h, "rows").update(shape=shape, nbytes=nbytes)
        return h

    _rewrite_header(path, change)
    with pytest.raises(ArtifactError, match="malformed"):
        read_artifact(path, mmap=mmap).array("rows")


@pytest.mark.parametrize(
    "change",
    [
        lambda h: {k: v for k, v in h.items() if k != "kind"},
        lambda h: {k: v for k, v in h.items() if k != "meta"},
        lambda h: {k: v for k, v in h.items() if k != "config"},
        lambda h: {**h, "inputs": [1, 2]},
        lambda h: {**h, "kind": ["test"]},
        lambda h: [h],
    ],
)
def test_header_without_its_fields_is_refused(tmp_path, change):
    path, _ = _write(tmp_path)
    _rewrite_header(path, change)
    with pytest.raises(ArtifactError, match="malformed"):
        read_artifact(path, kind="test")


def test_deeply_nested_header_is_refused(tmp_path):
    # parsing fails on the nesting before any field is looked at
    text = b'{"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    head = struct.pack("<HHIQ", 1, 0, 0, len(text))
    p = tmp_path / "deep.embc"
    p.write_bytes(MAGIC + head + struct.pack("<II", zlib.crc32(text, zlib.crc32(head)), 0) + text)
    with pytest.raises(ArtifactError, match="malformed"):
        read_artifact(p)


# -- a writer renames a new file over the path while a reader opens it -----------------------------
# The reader must use the one file whose header it checked: never mix that header with another
# file's bytes (wrong rows, a bare ValueError, or a false "corrupted" error).


def _replace_with_other(path, n_rows):
    """Rename a valid file over ``path``: the same layout with other bytes (37 rows), or smaller."""
    _write(path.parent, n_rows=n_rows, seed=9)


@pytest.mark.parametrize("n_rows", [37, 5])
def test_copy_reads_come_from_the_verified_file(tmp_path, monkeypatch, n_rows):
    path, sections = _write(tmp_path)
    real_verify = Artifact.verify

    def verify_then_replace(self):
        real_verify(self)
        _replace_with_other(path, n_rows)

    monkeypatch.setattr(Artifact, "verify", verify_then_replace)
    art = read_artifact(path, mmap=False, verify="full")
    np.testing.assert_array_equal(art.array("rows"), sections["rows"])
    np.testing.assert_array_equal(art.array("scales"), sections["scales"])


@pytest.mark.parametrize("n_rows", [37, 5])
@pytest.mark.parametrize("verify", ["header", "full"])
def test_mapping_is_of_the_checked_file(tmp_path, monkeypatch, verify, n_rows):
    path, sections = _write(tmp_path)
    real_memmap = np.memmap

    def replace_then_map(*args, **kwargs):
        _replace_with_other(path, n_rows)
        return real_memmap(*args, **kwargs)

    monkeypatch.setattr(np, "memmap", replace_then_map)
    art = read_artifact(path, verify=verify)
    np.testing.assert_array_equal(art.array("rows"), sections["rows"])
    np.testing.assert_array_equal(art.array("scales"), sections["scales"])


@pytest.mark.parametrize("mmap", [True, False])
def test_zero_dimensional_section_keeps_its_shape(tmp_path, mmap):
    path = write_artifact(tmp_path / "s.embc", "t", {"count": np.asarray(5, dtype=np.int64)})
    got = read_artifact(path, mmap=mmap, verify="full").array("count")
    assert got.shape == () and int(got) == 5


@pytest.mark.parametrize("name", [None, 5, ""])
def test_section_name_that_is_not_a_string_is_refused(tmp_path, name):
    # as write_artifact refuses it; `embcompress inspect` formatted a null name with a TypeError
    path, _ = _write(tmp_path)

    def change(h):
        _section(h, "scales")["name"] = name
        return h

    _rewrite_header(path, change)
    with pytest.raises(ArtifactError, match="malformed"):
        read_artifact(path)


def test_full_verify_checks_a_huge_gap_in_bounded_memory(tmp_path):
    # A crafted header may place a section far into a (sparse) file: the zero padding before it
    # is checked piece by piece, as checksums are, not read into memory whole.
    import tracemalloc

    path = write_artifact(tmp_path / "gap.embc", "t", {"a": np.arange(8, dtype=np.int64)})
    art = read_artifact(path)
    data_start, data = art.header["_data_start"], art.array("a").tobytes()
    offset = 256 << 20

    def change(h):
        h["sections"][0]["offset"] = offset
        h["file_size"] = offset + len(data)
        return h

    _rewrite_header(path, change)
    with open(path, "r+b") as fh:
        fh.truncate(data_start)
        fh.seek(offset)
        fh.write(data)
    tracemalloc.start()
    try:
        np.testing.assert_array_equal(read_artifact(path, verify="full").array("a"), np.arange(8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 160 << 20, peak  # one 64 MiB piece at a time, not the 256 MiB gap


def test_writing_into_a_missing_folder_names_the_path_and_the_fix(tmp_path):
    # it raised FileNotFoundError naming a hidden temporary file ('.x.embc.tmp-123-abcd')
    import numpy as np

    from embcompress import quantize
    from embcompress.container import write_file_atomic
    from embcompress.errors import ConfigError

    target = tmp_path / "nodir" / "x.embc"
    for write in (lambda: write_file_atomic(target, b"x"),
                  lambda: quantize(np.ones((2, 32), np.float32), "mxint8").save(target)):
        with pytest.raises(ConfigError, match=r"nodir.*does not exist.*Create it"):
            write()
    assert not (tmp_path / "nodir").exists()
