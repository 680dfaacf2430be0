"""Log readers, ninth-session fixes. First: Arrow's CSV reader lets go of its Python bad-row
handler before the reading call returns.

Arrow's streaming reader can outlive its Python object on an I/O thread; where that thread dropped
the handler during interpreter shutdown, the process aborted after its work was done (exit 134,
3 of 12 runs reading a malformed log three times with torch imported). Every way a read ends
(exhausted, stopped early, failed) must leave no handler held by Arrow."""

import weakref

import pytest

import learned_hash.logs as logs
from learned_hash.logs import iter_batches
from tests.conftest import write

GOOD = "a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(5000))
BAD = GOOD + "1,2\n" + "".join(f"{i},{i % 5},1\n" for i in range(5000))


@pytest.fixture
def handlers(monkeypatch):
    made = []

    class Tracked(logs._RowHandler):
        __slots__ = ()

        def __init__(self, fn):
            super().__init__(fn)
            made.append(weakref.ref(self))

    monkeypatch.setattr(logs, "_RowHandler", Tracked)
    return made


def held(made):
    return sum(r() is not None for r in made)


def test_a_read_to_the_end_releases_its_handlers(tmp_path, handlers):
    path = write(tmp_path / "log.csv", BAD)
    reader = iter_batches(str(path), features=["a", "b"], label="label", on_bad_line="skip", block_bytes=4096)
    assert sum(len(b["a"]) for b in reader) == 10000 and reader.bad_lines == 1
    assert len(handlers) >= 2 and held(handlers) == 0  # (kinds inferred by one reader, rows read by another)


def test_a_read_stopped_early_releases_its_handler(tmp_path, handlers):
    path = write(tmp_path / "log.csv", GOOD)
    batches = iter(iter_batches(str(path), features=["a", "b"], label="label", block_bytes=4096))
    next(batches)
    batches.close()
    assert handlers and held(handlers) == 0


def test_a_failed_read_releases_its_handlers(tmp_path, handlers):
    path = write(tmp_path / "log.csv", BAD)
    with pytest.raises(logs.ConfigError, match="line 5002"):
        for _ in iter_batches(str(path), features=["a", "b"], label="label", on_bad_line="error", block_bytes=4096):
            pass
    assert handlers and held(handlers) == 0


def test_a_malformed_first_line_is_named_with_the_flag_that_skips_it(tmp_path):
    """A headerless log whose first line is malformed: the error names line 1 (it was Arrow's raw
    'Empty CSV file', from looking for a bad value on the lines before it, of which there are
    none), and the command line adds --on-bad-line."""
    import subprocess
    import sys

    from tests.conftest import data_path

    src = data_path("criteo_sample", "lapis_train.txt")
    log = write(tmp_path / "day.txt", b"bad line\n" + b"".join(src.open("rb").readlines()[:3]))
    with pytest.raises(logs.BadLineError, match=r"\(line 1\).*on_bad_line='skip'"):
        list(iter_batches(str(log), format="criteo", features=["C3"]))
    p = subprocess.run([sys.executable, "-m", "embcompress", "mine", str(log), "--format", "criteo", "--features",
                        "C3", "--out", str(tmp_path / "o.stats")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "(line 1)" in p.stderr and "--on-bad-line" in p.stderr, p.stderr


def test_stats_with_a_path_as_their_source_save_and_load(tmp_path):
    """LogStats(source=Path(...)) could not be saved (a Path is not JSON), nor a map fitted from it."""
    from pathlib import Path

    import numpy as np

    from learned_hash.mining.stats import LogStats

    s = LogStats.from_rows({"a": np.array([1, 2, 2])}, features=["a"], source=[Path("/logs/day_0.csv"), "x"])
    back = LogStats.load(s.save(tmp_path / "s.stats"))
    assert back.source == ["/logs/day_0.csv", "x"] and back.frequencies("a")[1].tolist() == [2, 1]
