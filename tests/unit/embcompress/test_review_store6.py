"""Review of the store's update log, shared flock and reader (this session's changes)."""


import numpy as np
import pytest

from embcompress.formats import quantize
from embcompress.store import TieredStore, journal

N, DIM = 500, 32


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxint8")
    return q.save(tmp_path / "t.embc"), q


def _holding(path, q, rows):
    freq = np.zeros(N)
    freq[rows] = 1
    store = TieredStore(path, dram_bytes=len(rows) * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    return store


def test_a_whole_file_rewrite_between_the_log_check_and_the_reload_is_not_missed(table, monkeypatch):
    # Store A holds row 5. Another store's update rewrites the file whole (the path now names a
    # new file) after A saw the file unchanged but before A locked it to read the log and reload:
    # A read the log (row 5 included) but reloaded row 5 from the replaced file, and served the
    # old row from then on (its log cursor had moved past the update).
    path, q = table
    a = _holding(path, q, np.array([5]))
    b = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    b.update_rows(np.array([7]), np.full((1, q.row_bytes), 0x11, np.uint8))  # A's log check will fire
    real_locked, fired = a._reader.locked, []

    def locked():
        if not fired:
            fired.append(1)
            monkeypatch.setattr(journal, "_header_bytes", lambda *args: None)  # forces the rewrite
            b.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x22, np.uint8))
            monkeypatch.undo()
        return real_locked()

    a._reader.locked = locked
    a.rows(np.array([5]))
    assert fired
    assert (a.rows(np.array([5])) == 0x22).all()
    assert (a.rows(np.array([5, 7])) == np.array([[0x22], [0x11]], np.uint8)).all()
    a.close()
    b.close()
