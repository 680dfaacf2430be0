"""The update log of a table file: which rows updates changed, for stores in other processes.

A store keeps copies of rows in DRAM; an update made through another store (another process, or
another store object in this one) changes the file under them. Every update appends the file
positions of the rows it wrote to ``<table>.updates`` (beside the table's real path, symlinks
resolved: see :func:`real_path`), under the table's exclusive ``flock`` (see
:mod:`.journal`), and each store reads what was appended since it last looked: one ``stat`` a
batch while nothing changes, and when something did, it reads those rows again from the file.

Decision: a sidecar log of positions, not a counter in the table's header. A counter says that
something changed, not what: every store would have to reload its whole DRAM tier (gigabytes) on
any update. The log is not made durable (no fsync): it matters only to stores that are running,
and a machine that crashes restarts them with empty tiers. An update interrupted by a process
crash is replayed from its journal, which appends its rows again (a repeat is harmless). An update
logs its rows before writing them (still under the exclusive lock, so no store reads the log
sooner): a writer killed midway leaves the log changed, and a running store that sees it finishes
the journal left behind, as opening the file would, before reading the rows again. A store's own
updates are passed over by its cursor (``LogCursor.skip``): they reached its DRAM copies at once.

Format: 16 bytes of header, ``b"EMBCUPD1"`` and the log's epoch (uint64 little-endian), then
records of ``n`` (uint64) and ``n`` positions (int64). Past ``LOG_LIMIT`` bytes the next update
starts a new log, epoch + 1, renamed over the old one: a store that sees another file or another
epoch than its own reloads every row it holds, as it does for a log it cannot parse.
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np

MAGIC = b"EMBCUPD1"
HEADER = struct.Struct("<8sQ")
LOG_LIMIT = 4 << 20  # bytes: about 500,000 updated rows before a new log starts


def real_path(table_path) -> Path:
    """The table's real path (symlinks and ``..`` resolved, absolute), which names its companion
    files: the update log here and the journal (:func:`.journal.journal_path`).

    One table reached through several names (a symlink and its target, two symlinks, a relative
    and an absolute path) must have one log and one journal, or a store opened through one name
    misses the updates made through another, and an update interrupted through one name is not
    finished when the table is opened through another. Every writer and reader of the companion
    files derives them from this path (a hard link is another name for the file and is not
    resolved: use one of its names)."""
    return Path(os.path.realpath(table_path))


def log_path(table_path) -> Path:
    """``<real path of the table>.updates`` (see :func:`real_path`)."""
    p = real_path(table_path)
    return p.with_name(p.name + ".updates")


def append(table_path, positions: np.ndarray) -> None:
    """Log that the rows at ``positions`` were rewritten (the caller holds the table's exclusive lock)."""
    path = log_path(table_path)
    rec = struct.pack("<Q", len(positions)) + np.ascontiguousarray(positions, dtype="<i8").tobytes()
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = None
    # A log without its header (not fsynced: a power cut can leave it empty) starts anew, else
    # every store takes it for a log it cannot parse and reloads its whole tier at each update.
    if size is not None and size <= LOG_LIMIT and _epoch(path) is not None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            _write_all(fd, rec)
        except BaseException:
            # Part of the record written (a full disk): cut it, or every later record would
            # follow torn bytes that readers parse as positions. (No other writer appends now.)
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise
        finally:
            os.close(fd)
        return
    epoch = 0 if size is None else (_epoch(path) or 0) + 1
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, HEADER.pack(MAGIC, epoch) + rec)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def file_state(table_path) -> tuple[int, int] | None:
    """``(inode, size)`` of the table's log, or None when there is none."""
    try:
        st = os.stat(log_path(table_path))
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _epoch(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            magic, epoch = HEADER.unpack(f.read(HEADER.size))
    except (OSError, struct.error):
        return None
    return epoch if magic == MAGIC else None


class LogCursor:
    """A store's place in its table's update log."""

    def __init__(self, table_path):
        self.path = log_path(table_path)
        self._spath = str(self.path)  # (a Path is converted at every stat: a batch looks once)
        self._fd = None  # the log file, once there is one: fstat costs a third of a stat by path
        self._lock = threading.Lock()  # a batch's changed() while another thread's read() reopens
        self.state = (None, 0)  # (inode, bytes read); what exists now is history
        self.epoch = None
        if self._open():
            self.state = (os.fstat(self._fd).st_ino, os.fstat(self._fd).st_size)
            self.epoch = _epoch(self.path)

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        return True

    def changed(self) -> bool:
        """Whether anything was logged since the last :meth:`read` (one ``fstat``, or one ``stat``
        while there is no log)."""
        with self._lock:
            if self._fd is None:
                try:
                    os.stat(self._spath)
                except (OSError, ValueError):  # (what os.path.exists calls no file)
                    return False
                return True
            st = os.fstat(self._fd)
            return st.st_nlink == 0 or st.st_size != self.state[1]  # (nlink 0: a new log replaced it)

    def read(self) -> np.ndarray | None:
        """Positions logged since the last read (unique), or None: reload every row held (a new
        log, another epoch, or one that cannot be parsed). Call under the table's shared lock."""
        with self._lock:
            self._close()
            if not self._open():
                return np.zeros(0, np.int64)
            st = os.fstat(self._fd)
            ino, off = self.state
            head = os.pread(self._fd, HEADER.size, 0)
            # Only what was appended since the last read, where the file is the one read then (the
            # whole log, up to LOG_LIMIT, was read again at each change, under the lock that holds
            # every lookup thread); the header and all of a new log.
            same = st.st_ino == ino and HEADER.size <= off <= st.st_size
            base = off if same else 0
            data = os.pread(self._fd, st.st_size - base, base)
            self.state = (st.st_ino, base + len(data))
        epoch = HEADER.unpack(head)[1] if len(head) == HEADER.size and head[:8] == MAGIC else None
        fresh = ino is None and epoch == 0  # created since this cursor began: all of it is new
        known, self.epoch = self.epoch, epoch
        if epoch is None or not (fresh or (st.st_ino == ino and epoch == known)):
            return None
        start = HEADER.size if fresh else off
        start -= base  # (data starts at byte base of the log)
        out = []
        while start < len(data):
            if start + 8 > len(data):
                return None
            (n,) = struct.unpack_from("<Q", data, start)
            end = start + 8 + 8 * n
            if end > len(data):
                return None
            out.append(np.frombuffer(data, dtype="<i8", count=n, offset=start + 8))
            start = end
        return np.unique(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, np.int64)

    def skip(self, before, after) -> None:
        """Pass over what the caller's own update appended (``file_state`` before and after it,
        taken under the table's exclusive lock): when this cursor had read everything before it,
        the update's rows need no reading again. (A new log since is read as usual.)"""
        with self._lock:
            if after is None:
                return
            if before is None and self._fd is None and self.state == (None, 0) and self._open():
                # the update started the log
                if os.fstat(self._fd).st_ino == after[0]:
                    self.state, self.epoch = after, _epoch(self.path)
                else:
                    self._close()
            elif before is not None and before[0] == after[0] and self._fd is not None and self.state == before:
                self.state = after

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
