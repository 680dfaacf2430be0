"""Review tests: the artifact container, table files, and the inspect / verify commands."""

import os
import stat

import numpy as np
import pytest

import embcompress
from embcompress.cli.main import main
from embcompress.container import read_artifact, write_artifact
from embcompress.errors import ArtifactError, ConfigError


def _q(n=10, dim=8):
    return embcompress.quantize(np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32), "mxint8")


def _name_max(folder) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def test_a_long_but_legal_file_name_can_be_written(tmp_path):
    # The temporary file's name is the user's plus '.tmp-<host>-<pid>-<hex>': a legal name near
    # the limit (255 bytes) made it too long, and the write failed with "File name too long".
    # (12 bytes short of it: the longest a table may be, see the test below)
    name = "t" * (_name_max(tmp_path) - 17) + ".embc"
    q = _q()
    path = embcompress.write_table(tmp_path / name, q)
    assert np.array_equal(np.asarray(embcompress.open_table(path, verify="full").data), q.data)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_a_long_name_rewrite_keeps_the_old_file_on_failure(tmp_path):
    name = "u" * (_name_max(tmp_path) - 17) + ".embc"
    path = embcompress.write_table(tmp_path / name, _q())
    old = path.read_bytes()

    def boom(done, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        embcompress.write_table(path, _q(dim=16), progress=boom)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("content", [b"hello", b"PK\x03\x04", b"# some text notes\n"])
@pytest.mark.parametrize("verb", ["inspect", "verify"])
def test_a_short_foreign_file_is_not_called_truncated(tmp_path, capsys, verb, content):
    # A few bytes of another kind of file were "shorter than the 32-byte prefix. It may be
    # truncated; re-create it": it is not an artifact at all, as a longer foreign file is called.
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        main([verb, str(path)])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert "not an embcompress artifact" in err and "truncated" not in err


def test_a_truncated_prefix_of_an_artifact_is_still_called_truncated(tmp_path):
    path = write_artifact(tmp_path / "a.art", "x", {"a": np.arange(3)})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ArtifactError, match="truncated"):
        read_artifact(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_a_pipe_or_device_in_the_way_is_refused_not_replaced(tmp_path):
    # The write renames a temporary file over the path: a pipe (or, as root, /dev/null) there
    # was silently replaced by a regular file holding the table.
    fifo = tmp_path / "out.embc"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        embcompress.write_table(fifo, _q())
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.embc"]


def test_a_table_name_leaves_room_for_its_update_files(tmp_path):
    # <name>.journal and <name>.updates.tmp are kept beside a table by its updates: a name with no
    # room for them was written, then raised "File name too long" (drop_replaced's look for an
    # old journal), and could never be updated
    from embcompress.store import TieredStore

    longest = "v" * (255 - 12 - 5) + ".embc"
    path = embcompress.write_table(tmp_path / longest, _q(), frequencies=np.arange(10))
    with TieredStore(path, dram_bytes=2 * _q().row_bytes) as store:
        store.update_rows(np.array([3]), np.ones((1, 8), np.float32))
        assert np.array_equal(store.rows([3])[0], embcompress.quantize(np.ones((1, 8), np.float32), "mxint8").data[0])
    with pytest.raises(ConfigError, match=r"244 bytes long.*room for the files its updates.*at most 243 bytes"):
        embcompress.write_table(tmp_path / ("w" + longest), _q())
    assert not (tmp_path / ("w" + longest)).exists()


def test_every_writer_of_a_table_leaves_room_for_its_update_files(tmp_path):
    # write_table checked the name; QuantizedTable.save and reorder_rows wrote such a table anyway
    from embcompress.store import reorder_rows

    too_long = tmp_path / ("x" * (255 - 12 - 4) + ".embc")  # 244 bytes
    with pytest.raises(ConfigError, match="at most 243 bytes"):
        _q().save(too_long)
    src = embcompress.write_table(tmp_path / "t.embc", _q())
    with pytest.raises(ConfigError, match="at most 243 bytes"):
        reorder_rows(src, too_long, clusters=np.zeros(10, np.int64))
    assert not too_long.exists()
