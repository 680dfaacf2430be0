"""Review 17: the update journal, the update log and the device planner, each test failing first."""

import errno
import threading
from pathlib import Path

import numpy as np
import pytest

import embcompress
from embcompress.container import write_artifact
from embcompress.errors import MissingArtifactError
from embcompress.store import journal, updlog
from embcompress.store.devices import plan


def _file(tmp_path, n=300, rb=24):
    data = np.random.default_rng(0).integers(0, 256, (n, rb), dtype=np.uint8)
    return write_artifact(tmp_path / "t.embc", "table", {"rows": data}, align=4096)


def _update_whose_journal_cannot_be_removed(path, monkeypatch):
    """An update that wrote all its rows and header, then could not remove its journal (as in a
    folder this process may not write), and a process that may not write the table (replay fails)."""
    real = Path.unlink

    def unlink(self, *a, **k):
        if self.name.endswith(".journal"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", unlink)
        with pytest.raises(PermissionError):
            journal.apply_update(path, "rows", np.array([3]), np.full((1, 24), 7, np.uint8))
    assert journal.journal_path(path).exists()

    def cannot_write(p):
        raise PermissionError(errno.EACCES, "Permission denied", str(p))

    monkeypatch.setattr(journal, "replay", cannot_write)


def test_reading_a_table_whose_applied_journal_cannot_be_removed_does_not_spin(tmp_path, monkeypatch):
    # replay_before_open serves such a table as it is (it holds the whole update), but reading()
    # (reorder_rows' copy) took the journal beside it for a pending update and looped forever.
    path = _file(tmp_path)
    _update_whose_journal_cannot_be_removed(path, monkeypatch)
    journal.replay_before_open(path)  # served as it is
    done = []

    def read():
        with journal.reading(path):
            done.append(True)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    returned = bool(done)
    monkeypatch.undo()  # (a spinning thread then replays the journal and ends)
    t.join(20)
    assert returned, "journal.reading() never returned"


def test_a_log_left_without_its_header_starts_a_new_one(tmp_path):
    # The log is not fsynced: a power cut after it was created can leave it empty. Updates then
    # appended records to a log without a header, which every store took for a log it cannot
    # parse, reloading its whole DRAM tier at every update until the log reached LOG_LIMIT.
    path = tmp_path / "t.embc"
    path.write_bytes(b"table")
    updlog.log_path(path).write_bytes(b"")
    updlog.append(path, np.array([1]))
    cursor = updlog.LogCursor(path)
    updlog.append(path, np.array([2]))
    got = cursor.read()
    assert got is not None and got.tolist() == [2]
    updlog.append(path, np.array([3, 4]))
    assert cursor.read().tolist() == [3, 4]
    cursor.close()


def test_open_table_of_a_removed_table_beside_a_stale_journal_says_it_is_missing(tmp_path, monkeypatch):
    # It said the table has an unfinished update that could not be applied ("No such file or
    # directory ... e.g. free disk space"), an integrity failure, where TieredStore says the file
    # does not exist.
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((50, 32)).astype(np.float32), "mxint8")
    path = embcompress.write_table(tmp_path / "t.embc", q)
    real, calls = journal._apply_journal, []

    def interrupted(*a):  # the update's own journal: durable, never applied
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a)

    with monkeypatch.context() as m:
        m.setattr(journal, "_apply_journal", interrupted)
        with pytest.raises(KeyboardInterrupt):
            journal.apply_update(path, "rows", np.array([1]), np.zeros((1, q.row_bytes), np.uint8))
    assert journal.journal_path(path).exists()
    path.unlink()
    with pytest.raises(MissingArtifactError, match="does not exist"):
        embcompress.open_table(path)


def test_a_budget_raised_to_one_row_reports_the_fraction_it_holds():
    # 0.1 % of 100 rows is raised to one row (1 %): the plan said dram_fraction 0.001 beside
    # dram_bytes and a hit rate of 1 % of the table.
    p = plan(6400, 64, np.ones(100), 1.0, fractions=(0.001,))
    assert p.dram_bytes == 64 and p.hit_rate == pytest.approx(0.01)
    assert p.dram_fraction == pytest.approx(0.01)
    assert p.candidates[0]["dram_fraction"] == pytest.approx(0.01)
    # A budget of whole rows keeps the fraction asked for.
    assert plan(6400, 64, np.ones(100), 1.0, fractions=(0.05,)).dram_fraction == 0.05
