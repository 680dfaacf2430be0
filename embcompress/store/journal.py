"""Crash-safe in-place row updates of a table file, with its checksums kept exact.

Decision: the rows section stays one section with one CRC-32 in the container header (so
``verify="full"`` and every reader keep working unchanged), and an update recomputes that CRC
without reading the table: CRC-32 is affine in the data, so replacing row ``i`` changes the
section's CRC by the raw CRC of ``old ^ new`` shifted past the ``(n_rows - 1 - i) * row_bytes``
bytes that follow it (a multiplication by ``x^(8z)`` modulo the CRC polynomial, as zlib's
``crc32_combine`` does). The cost is a few hundred vector operations per update, whatever the
table's size.

An update is a write-ahead journal (``<table>.journal`` beside the table's real path, symlinks
resolved, as the update log's: see :func:`.updlog.real_path`; itself a container artifact, written
atomically: temporary file, fsync, rename, directory fsync) holding the new row records and the
table's complete new header bytes, then the row writes, the header write and an fsync, then the
journal's removal. Opening the table with a journal present (``TieredStore`` or ``open_table``)
re-applies it (idempotent; :func:`replay` does it alone; where it cannot, :func:`replay_before_open`
refuses the table with an error naming the fix), so a
crash at any point leaves every row either old (journal not yet durable) or new (journal
replayed), and the header's checksum matches the rows. Updates and replays hold an exclusive
``flock`` on the table throughout, so writers in several threads or processes take turns and
none loses another's rows; callers exclude concurrent readers of the same rows (the store holds
its lock while applying). Each applied update appends its rows' positions to the table's update
log (:mod:`.updlog`), from which stores in other processes learn which of their DRAM copies to
read again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import container
from ..container import PREFIX, PREFIX_SIZE, read_artifact, write_artifact
from ..errors import ArtifactError, ChecksumError, MissingArtifactError, VersionError
from . import scm, updlog

JOURNAL_KIND = "row_journal"
_POLY = np.uint64(0xEDB88320)  # reflected CRC-32 polynomial of zlib
_M32 = np.uint64(0xFFFFFFFF)


def journal_path(table_path) -> Path:
    """``<real path of the table>.journal``: one journal whatever name the table is reached by
    (see :func:`.updlog.real_path`)."""
    p = updlog.real_path(table_path)
    return p.with_name(p.name + ".journal")


# --- CRC-32 arithmetic in GF(2)[x] mod P, bit-reflected as zlib keeps it (bit 31 = x^0) ---------

def _mult(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a(x) * b(x) mod P, elementwise over uint64 arrays holding 32-bit values."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.array(b, dtype=np.uint64, copy=True)
    a, b = np.broadcast_arrays(a, b)
    b = b.copy()
    p = np.zeros_like(b)
    one = np.uint64(1)
    for k in range(31, -1, -1):
        p ^= b * ((a >> np.uint64(k)) & one)
        b = (b >> one) ^ (_POLY * (b & one))
    return p


def _x2n_table() -> np.ndarray:
    t = np.zeros(32, dtype=np.uint64)
    t[0] = 1 << 30  # x^1
    for k in range(1, 32):
        t[k] = _mult(t[k - 1], t[k - 1])
    return t


_X2N = _x2n_table()


def _shift_zeros(crc_raw: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    """The raw CRC registers after feeding ``nbytes`` zero bytes: crc * x^(8 n) mod P."""
    n = np.asarray(nbytes, dtype=np.uint64)
    p = np.full(n.shape, 1 << 31, dtype=np.uint64)  # x^0
    j = 0
    while np.any(n >> np.uint64(j)):
        sel = ((n >> np.uint64(j)) & np.uint64(1)).astype(bool)
        if sel.any():
            p[sel] = _mult(_X2N[(j + 3) & 31], p[sel])
        j += 1
    return _mult(p, crc_raw)


def updated_crc(old_crc: int, old_records: np.ndarray, new_records: np.ndarray, rows: np.ndarray, n_rows: int) -> int:
    """The CRC-32 of a rows section after replacing ``rows`` (unique) by ``new_records``."""
    row_bytes = old_records.shape[1]
    zeros_crc = zlib.crc32(bytes(row_bytes))
    delta = np.bitwise_xor(old_records, new_records)
    raw = np.array([zlib.crc32(d.tobytes()) ^ zeros_crc for d in delta], dtype=np.uint64)
    after = (n_rows - 1 - rows.astype(np.int64)) * row_bytes
    change = np.bitwise_xor.reduce(_shift_zeros(raw, after.astype(np.uint64))) if len(rows) else np.uint64(0)
    return int(np.uint64(old_crc) ^ change) & 0xFFFFFFFF


# --- header bytes --------------------------------------------------------------------------------

def _read_header(fd) -> tuple[tuple, dict, int]:
    prefix = os.pread(fd, PREFIX_SIZE, 0)
    fields = PREFIX.unpack(prefix)
    header_len = fields[4]
    return fields, json.loads(os.pread(fd, header_len, PREFIX_SIZE)), header_len


def _header_bytes(fields: tuple, header: dict, header_len: int) -> bytes | None:
    """Prefix + JSON header padded to ``header_len``, as the container writes them; None if too long."""
    text = json.dumps(header, sort_keys=True, allow_nan=False, separators=(",", ":")).encode()
    if len(text) > header_len:
        return None
    text += b" " * (header_len - len(text))
    magic, major, minor, _, _, _, _ = fields
    crc = zlib.crc32(text, zlib.crc32(struct.pack("<HHIQ", major, minor, 0, header_len)))
    return PREFIX.pack(magic, major, minor, 0, header_len, crc, 0) + text


# --- update and replay ---------------------------------------------------------------------------

def apply_update(path, section: str, rows: np.ndarray, records: np.ndarray, on_replay=None, on_logged=None,
                 check=None) -> None:
    """Replace ``rows`` (unique int64) of the 2-D uint8 section ``section`` by ``records``, crash-safely.

    Writers of one file (threads or processes) take turns on an exclusive ``flock`` held from
    reading the header to removing the journal, so each update starts from the rows and checksum
    the previous one left and none is lost. ``on_replay(rows, records)`` is told the rows of an
    earlier update this one had to finish first. ``on_logged(before, after)`` is told the update
    log's ``updlog.file_state`` before and after this call's appends (the caller's own rows).
    ``path`` may be any name of the table: the update, its journal and its log go to its real path
    (a whole-file rewrite replaces the file a symlink names, not the symlink). ``check(artifact)``,
    given the file found under the lock (an earlier update finished), may raise to refuse it:
    then nothing of this update is written and ``on_replay`` is not told.
    """
    path = updlog.real_path(path)
    with _locked(path) as fd:
        logged = updlog.file_state(path)
        # An earlier update that failed after its journal was durable (an I/O error, an interrupt,
        # a crash) left rows half written: finish it first. The new journal would replace it, and
        # this update's checksum would start from rows that do not match the header's.
        done = _apply_journal(path, journal_path(path), fd)
        # (not read_artifact, which reads again under the shared flock when a checksum fails:
        # this descriptor holds the exclusive one, so it would wait for itself)
        art = container._read(path, None, True, "header", shared=False)
        if check is not None:
            check(art)
        if done is not None and on_replay is not None:
            on_replay(*done)
        sec = art.section(section)
        n_rows, row_bytes = sec.shape
        base = sec.offset
        old = np.empty_like(records)
        for i, r in enumerate(rows.tolist()):
            old[i] = np.frombuffer(os.pread(fd, row_bytes, base + r * row_bytes), dtype=np.uint8)
        new_crc = updated_crc(sec.crc32, old, records, rows, n_rows)
        fields, header, header_len = _read_header(fd)
        before = os.pread(fd, PREFIX_SIZE + header_len, 0)
        for e in header["sections"]:
            if e["name"] == section:
                e["crc32"] = new_crc
        head = _header_bytes(fields, header, header_len)
        if head is None:
            # The new checksum needs more digits than the header's padding holds (under 1 file in
            # 400): rewrite the whole file atomically instead, which needs no journal. (A writer
            # waiting for the lock on the replaced file finds it replaced and locks the new one.)
            if section == "rows":  # logged first, as a journal's rows are: see _apply_journal
                updlog.append(path, rows)
            _rewrite_whole(art, fd, section, rows, records)
        else:
            jpath = journal_path(path)
            write_artifact(
                jpath, JOURNAL_KIND, {"rows": rows.astype(np.int64), "records": records, "header": np.frombuffer(head, dtype=np.uint8),
                       "old_header": np.frombuffer(before, dtype=np.uint8)},
                meta={"table": path.name, "section": section, "base": base, "row_bytes": row_bytes, "n_rows": n_rows},
            )
            _apply_journal(path, jpath, fd)
        if on_logged is not None:  # (not after a failure: its rows were not served new)
            on_logged(logged, updlog.file_state(path))


def _open_locked(path: Path, exclusive: bool) -> int:
    """A descriptor of the file now at ``path`` holding its flock: exclusive (O_RDWR, for an
    update) or shared (O_RDONLY, with no update pending; where the file system has no flock,
    none is held).

    flock belongs to the open file, so threads with their own descriptors exclude each other as
    processes do. A whole-file rewrite renames a new file over the path, and a writer may be
    interrupted: a descriptor locked on a replaced file (or, shared, beside a journal) is dropped
    and the path opened again. Batches arriving during an update wait behind it (``scm.turnstile``).
    """
    while True:
        if not exclusive:
            replay_before_open(path)  # an interrupted update: finished, or refused with the fix named
        fd = os.open(path, os.O_RDWR if exclusive else os.O_RDONLY)
        try:
            if exclusive:
                scm.turnstile(fd, fcntl.F_WRLCK)  # batches arriving from now wait behind this update
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                if scm.turnstile(fd, fcntl.F_RDLCK):  # (an update waiting goes first)
                    scm.turnstile(fd, fcntl.F_UNLCK)
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH)
                except OSError as e:
                    if e.errno not in scm._LOCK_ERRNOS:
                        raise
            try:
                # (a journal the table already holds whole, left where it cannot be removed, is
                # served as replay_before_open serves it: waiting for its removal spun forever)
                jpath = journal_path(path)
                same = os.stat(path).st_ino == os.fstat(fd).st_ino and (
                    exclusive or not jpath.exists() or _applied(path, jpath))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


@contextmanager
def _locked(path: Path):
    """An O_RDWR descriptor of ``path`` holding its exclusive flock (see ``_open_locked``)."""
    fd = _open_locked(path, exclusive=True)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def reading(path):
    """Hold the table's shared ``flock`` (as a store's reads do) on the file now at ``path``, with
    no update pending: a copy taken meanwhile has every row of every update old or new, none torn.
    An update waiting for the lock goes first (see ``scm.TURNSTILE``). Where the file system has no
    flock, nothing is held."""
    fd = _open_locked(updlog.real_path(path), exclusive=False)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


# meta key of a file an update rewrote whole: ``[inode, header CRC-32]`` of each file it replaced
# (the last REWRITES_KEPT, oldest first), so that a store reading one of them knows the file now at
# the path is its own table with later updates, not another table written over the path.
REWRITTEN_FROM = "rewritten_from"
REWRITES_KEPT = 64


def rewritten_from(fd: int) -> list:
    """``[inode, header CRC-32]`` of the file open as ``fd``, as a rewrite of it records it."""
    return [os.fstat(fd).st_ino, PREFIX.unpack(os.pread(fd, PREFIX_SIZE, 0))[5]]


def _rewrite_whole(art, fd: int, section: str, rows: np.ndarray, records: np.ndarray) -> None:
    # Without copying the table into memory (the tiered store serves tables larger than memory):
    # the sections stay mapped from the file, the updated one copy-on-write, so only the pages of
    # the changed rows are copied.
    arrays = {name: art.array(name) for name in art.section_names}
    s = art.section(section)
    arrays[section] = np.memmap(art.path, dtype=s.dtype, mode="c", offset=s.offset, shape=s.shape)
    arrays[section][rows] = records
    h = art.header
    meta = dict(h["meta"])
    kept = meta.get(REWRITTEN_FROM)
    meta[REWRITTEN_FROM] = ((kept if isinstance(kept, list) else []) + [rewritten_from(fd)])[-REWRITES_KEPT:]
    write_artifact(art.path, h["kind"], arrays, config=h["config"], inputs=h["inputs"], meta=meta, align=h["align"])


def _header_matches(fd, j, head: bytes) -> bool:
    """Whether the table's header is this update's old or new one, or a torn write of one over the other.

    The name and size alone do not tell a table re-created under the same name from the one the
    journal was written for. Byte by byte, since a crash may tear the header write at any sector.
    """
    if "old_header" not in j.section_names:  # a journal from before old headers were kept
        return True
    old = j.array("old_header")
    cur = np.frombuffer(os.pread(fd, len(head), 0), dtype=np.uint8)
    new = np.frombuffer(head, dtype=np.uint8)
    return len(cur) == len(new) == len(old) and bool(np.all((cur == old) | (cur == new)))


def _pwrite_all(fd, data: bytes, offset: int) -> None:
    # pwrite may store only part (a full copy-on-write disk, a quota): write the rest, or fail.
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _apply_journal(path: Path, jpath: Path, fd: int):
    """Apply the journal (``fd`` holds the table's lock) and remove it.

    Returns its ``(rows, records)``, or None when there was none (another writer finished it).
    """
    if not jpath.exists():
        return None
    try:
        j = read_artifact(jpath, kind=JOURNAL_KIND, verify="full", mmap=False)
    except (MissingArtifactError, VersionError):
        raise
    except ArtifactError as exc:  # corrupted or truncated (it is written atomically: damaged on disk since)
        raise ChecksumError(
            f"The table {str(path)!r} has an interrupted update whose journal {str(jpath)!r} is damaged ({exc}), so "
            f"it cannot be finished. The table's rows are either untouched by it, or partly written: move the "
            f"journal away and run `embcompress verify` on the table; if the table passes, every row is whole "
            f"(the update's old or new), else restore the table from a good copy."
        ) from None
    meta = j.meta
    rows, records, head = j.array("rows"), j.array("records"), j.array("header").tobytes()
    base, row_bytes = int(meta["base"]), int(meta["row_bytes"])
    size = os.fstat(fd).st_size
    if (meta.get("table") != path.name or base + int(meta["n_rows"]) * row_bytes > size
            or records.shape[1:] != (row_bytes,) or not _header_matches(fd, j, head)):
        raise ArtifactError(
            f"The update journal {str(jpath)!r} does not belong to {str(path)!r} (it names "
            f"{meta.get('table')!r}, its rows lie outside the file, or the file's header is neither the "
            f"one it updates nor the one it writes). Move the journal away if "
            f"the table was replaced on purpose."
        )
    if meta.get("section") == "rows":
        # Stores elsewhere read these rows again (a replay logs them again). Logged before the
        # rows are written: a writer killed midway leaves the log saying so, and a running store
        # finishes the update (see TieredStore._sync_updates) instead of serving its old copies
        # beside the new rows it reads from the file. (Nobody reads the log before this lock goes.)
        updlog.append(path, rows)
    for r, rec in zip(rows.tolist(), records):
        _pwrite_all(fd, rec.tobytes(), base + r * row_bytes)
    _pwrite_all(fd, head, 0)
    os.fsync(fd)
    # Only this journal: a table written whole over the path meanwhile removed it (drop_replaced:
    # this update went to the replaced file), and an update of the new file may have written its own.
    try:
        if os.stat(jpath).st_ino == os.fstat(j._fd).st_ino:
            jpath.unlink()
    except FileNotFoundError:
        pass
    container._fsync_dir(jpath.parent)
    return np.array(rows), np.array(records)


_CANNOT_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS)


def drop_replaced(path) -> None:
    """A table was just written whole to ``path`` (``write_table``, ``QuantizedTable.save``): a
    journal beside it is an interrupted update of the file it replaced, whose rows must not reach
    the new one (nor refuse it), so it is removed, under the table's lock so that an update of
    the new file that has begun finishes first."""
    path = updlog.real_path(path)
    jpath = journal_path(path)
    if jpath.exists():
        with _locked(path):
            jpath.unlink(missing_ok=True)
        container._fsync_dir(jpath.parent)  # (else a power cut could bring it back beside the new table)


def replay_before_open(path) -> None:
    """Finish an interrupted update before a table is opened (``open_table``, ``TieredStore``).

    Where it cannot be finished (a table file or folder this process may not write, a full disk)
    the table is refused with an :class:`~embcompress.errors.ArtifactError` naming the fix, since
    it may hold the update's rows half written, unless the table already holds all of the
    journal's rows and header (only the journal's removal failed: a folder that is not writable),
    which is served as it is. (A store already running serves on instead: see
    ``TieredStore._sync_updates``.)
    """
    path = updlog.real_path(path)
    jpath = journal_path(path)
    if not jpath.exists() or not path.exists():  # (no table: the opener says it is missing)
        return
    try:
        replay(path)
    except OSError as exc:
        if _applied(path, jpath):
            return
        why = exc.strerror or str(exc)
        if exc.errno in _CANNOT_WRITE:
            fix = (f"({why}: this process may not write the table file or its folder). Open the table once "
                   f"where the table and its folder are writable (with write permission to both, e.g. as the "
                   f"table's owner) so the journal is replayed")
        else:
            fix = f"({why}). Remove the cause (e.g. free disk space) and open the table again so the journal is replayed"
        raise ArtifactError(
            f"The table {str(path)!r} has an unfinished update: an interrupted update left its journal "
            f"{str(jpath)!r}, which must be applied before the table is read (some rows may be half "
            f"written), and it could not be applied here {fix}; or restore the table from a good copy and "
            f"delete the journal."
        ) from None


def _applied(path: Path, jpath: Path) -> bool:
    """Whether the table already holds every row record and the header of its pending journal
    (read only: the journal cannot be removed where the folder is not writable)."""
    try:
        j = read_artifact(jpath, kind=JOURNAL_KIND, verify="full", mmap=False)
        head = j.array("header").tobytes()
        rows, records = j.array("rows"), j.array("records")
        base, row_bytes = int(j.meta["base"]), int(j.meta["row_bytes"])
        with open(path, "rb") as fh:
            if os.pread(fh.fileno(), len(head), 0) != head:
                return False
            return all(os.pread(fh.fileno(), row_bytes, base + r * row_bytes) == rec.tobytes()
                       for r, rec in zip(rows.tolist(), records))
    except (ArtifactError, OSError, KeyError, TypeError, ValueError):
        return False


def replay(path) -> bool:
    """Finish an update interrupted by a crash; True when a journal was applied."""
    path = updlog.real_path(path)
    if not journal_path(path).exists():
        return False
    # Every process opening the table replays: one at a time, and a later one finds it done
    # (else it rewrites rows an update made since, or fails when the first removes the journal).
    with _locked(path) as fd:
        return _apply_journal(path, journal_path(path), fd) is not None
