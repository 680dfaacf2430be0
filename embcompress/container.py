"""The one container every artifact is stored in (tables, id maps, log stats, ...).

Layout (little endian)::

    0   magic       8 bytes  b"\\x89EMBC\\r\\n\\x1a" (the PNG trick: text-mode mangling breaks it)
    8   major       u16      readers refuse a newer major version
    10  minor       u16      readers accept any minor version of their major
    12  reserved    u32      zero
    16  header_len  u64      bytes of the JSON header
    24  header_crc  u32      CRC-32 of bytes 8..24 and of the JSON header
    28  reserved    u32      zero
    32  JSON header (UTF-8): kind, config, inputs, meta, align, file_size, sections
        zero padding to ``align``
        sections, each starting at a multiple of ``align``, zero padding between them

Each section entry records ``name, dtype, shape, offset, nbytes, crc32``. Opening a file checks
the magic, the version, the header checksum, the file size and every section's bounds before any
data is touched; ``verify()`` also checks every section's CRC-32 and that every padding byte is
zero, so a change to any byte of the file is detected. Writes are atomic: a temporary file in the
same directory, fsync, rename, fsync of the directory. The sections are written first, each
checksummed as it is written (a :class:`Streamed` section arrives in pieces, so it never has to
be in memory whole), and the header last.
"""

from __future__ import annotations

import glob
import json
import math
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # (no flock: reads take no lock, as on a file system without it)
    fcntl = None

from .errors import ArtifactError, ChecksumError, ConfigError, MissingArtifactError, VersionError

MAGIC = b"\x89EMBC\r\n\x1a"
MAJOR = 1
MINOR = 0
PREFIX = struct.Struct("<8sHHIQII")  # magic, major, minor, reserved, header_len, crc, reserved
PREFIX_SIZE = PREFIX.size  # 32
DEFAULT_ALIGN = 64  # a cache line; table files ask for 4096 so a row block is one aligned read
_CHUNK = 64 << 20  # checksum and copy in 64 MiB pieces so huge sections need no extra memory
# Numeric dtypes only: an artifact never holds Python objects.
_KINDS = set("biuf")

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Section:
    """Where one array lives in the file."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    crc32: int


def _align_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _check_dtype(dtype: np.dtype, where: str) -> np.dtype:
    if dtype.kind not in _KINDS or dtype.fields is not None:
        raise ConfigError(
            f"Section {where!r} must hold a numeric dtype (bool, int, uint or float). "
            f"Got {dtype} instead."
        )
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


def _pieces(arr: np.ndarray):
    mv = memoryview(arr).cast("B") if arr.nbytes else memoryview(b"")
    for start in range(0, len(mv), _CHUNK):
        yield mv[start : start + _CHUNK]


class Streamed:
    """A section written from pieces as they are made, so an array larger than memory never has to
    exist whole: ``chunks`` is an iterable of arrays of ``dtype`` whose bytes, in order, are the
    section's (``shape`` says how many). A short or long stream is an error and, since writes go
    through a temporary file, leaves any old file unchanged."""

    def __init__(self, dtype, shape, chunks):
        self.dtype = _check_dtype(np.dtype(dtype), "streamed")
        self.shape = tuple(int(v) for v in shape)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        self._chunks = chunks

    def pieces(self):
        done = 0
        for chunk in self._chunks:
            chunk = np.ascontiguousarray(chunk)
            if chunk.dtype != self.dtype:
                raise ConfigError(f"A streamed section of {self.dtype} was given a chunk of {chunk.dtype}.")
            done += chunk.nbytes
            if done > self.nbytes:
                break
            yield from _pieces(chunk)
        if done != self.nbytes:
            raise ConfigError(f"A streamed section of shape {self.shape} ({self.nbytes} bytes) was given "
                              f"{'at least ' if done > self.nbytes else ''}{done} bytes.")


def write_artifact(
    path: str | os.PathLike,
    kind: str,
    sections: Mapping[str, np.ndarray],
    *,
    config: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    align: int = DEFAULT_ALIGN,
    progress: ProgressFn | None = None,
) -> Path:
    """Write ``sections`` (name -> numeric array) to ``path`` atomically and return the path.

    ``config`` is the configuration that produced the artifact, ``inputs`` names what it was made
    from (files, seeds), ``meta`` holds anything else; all three must be JSON-serializable.
    ``progress(done_bytes, total_bytes)`` is called as data is written.
    """
    path = Path(path)
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"The 'kind' parameter of write_artifact must be a non-empty str. Got {kind!r} instead.")
    if not isinstance(align, int) or align < 8 or align & (align - 1):
        raise ConfigError(
            f"The 'align' parameter of write_artifact must be a power of two of at least 8. Got {align!r} instead."
        )
    for what, value in (("config", config), ("inputs", inputs), ("meta", meta)):
        if value is not None and not isinstance(value, Mapping):  # (dict() of a list: a raw TypeError)
            raise ConfigError(
                f"The '{what}' parameter of write_artifact must be a mapping (a dict of names to "
                f"JSON values) or None. Got {type(value).__name__} {value!r:.80} instead."
            )
    arrays: list[tuple[str, np.ndarray | Streamed]] = []
    for name, arr in sections.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Section names must be non-empty strings. Got {name!r} instead.")
        if isinstance(arr, Streamed):
            arrays.append((name, arr))
            continue
        arr = np.asarray(arr)
        dtype = _check_dtype(arr.dtype, name)
        # ascontiguousarray makes a 0-d array 1-d: keep the caller's shape
        arrays.append((name, np.ascontiguousarray(arr, dtype=dtype).reshape(arr.shape)))

    # The header holds every offset and checksum, so it is laid out first, with each checksum at
    # its widest, and written last, when the data has been written and checksummed once.
    def header_bytes(data_start: int, crcs) -> tuple[bytes, list[dict]]:
        entries, offset = [], data_start
        for (name, arr), crc in zip(arrays, crcs):
            entries.append(
                {
                    "name": name,
                    "dtype": arr.dtype.str,
                    "shape": list(arr.shape),
                    "offset": offset,
                    "nbytes": arr.nbytes,
                    "crc32": crc,
                }
            )
            offset = _align_up(offset + arr.nbytes, align)
        file_size = entries[-1]["offset"] + entries[-1]["nbytes"] if entries else data_start
        header = {
            "kind": kind,
            "align": align,
            "file_size": file_size,
            "config": dict(config or {}),
            "inputs": dict(inputs or {}),
            "meta": dict(meta or {}),
            "sections": entries,
        }
        try:
            text = json.dumps(header, sort_keys=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"The config, inputs and meta of a {kind!r} artifact must be JSON-serializable "
                f"with finite numbers. Got an error: {exc}."
            ) from None
        return text.encode(), entries

    # The data start depends on the header's length, which depends on the offsets: iterate to a
    # fixed point (two rounds at most in practice, since offsets only grow by alignment steps).
    widest = [0xFFFFFFFF] * len(arrays)
    data_start = _align_up(PREFIX_SIZE + 1024, align)
    for _ in range(8):
        hdr, entries = header_bytes(data_start, widest)
        need = _align_up(PREFIX_SIZE + len(hdr), align)
        if need <= data_start:
            break
        data_start = need
    total = sum(a.nbytes for _, a in arrays)

    def write(fh) -> None:
        fh.seek(data_start)
        done, crcs = 0, []
        for (name, arr), entry in zip(arrays, entries):
            pad = entry["offset"] - fh.tell()
            if pad:
                fh.write(b"\0" * pad)
            crc = 0
            for piece in (arr.pieces() if isinstance(arr, Streamed) else _pieces(arr)):
                fh.write(piece)
                crc = zlib.crc32(piece, crc)
                done += len(piece)
                if progress is not None:
                    progress(done, total)
            crcs.append(crc)
        hdr, _ = header_bytes(data_start, crcs)
        # Pad the JSON with spaces to the data start: a reader parses it unchanged, and every byte
        # of the file is then either header, section data, or zero padding between sections.
        hdr = hdr + b" " * (data_start - PREFIX_SIZE - len(hdr))
        head = struct.pack("<HHIQ", MAJOR, MINOR, 0, len(hdr))
        fh.seek(0)
        fh.write(PREFIX.pack(MAGIC, MAJOR, MINOR, 0, len(hdr), zlib.crc32(hdr, zlib.crc32(head)), 0))
        fh.write(hdr)

    return write_file_atomic(path, write)


def file_in_the_way(path) -> Path | None:
    """The first of ``path`` and its parents that exists and is not a folder, if any."""
    p = Path(path)
    return next((q for q in (p, *p.parents) if q.exists() and not q.is_dir()), None)


def check_output_folder(out: str | Path, name: str = "--out") -> None:
    """Refuse an output folder that cannot be made or written, without making anything (so a run
    stopped by bad input leaves no folder behind). ``name``: what sets it, for the fix."""
    out = Path(out)
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise ConfigError(f"The output folder {str(out)!r} (--out) cannot be made: {str(blocker)!r} is a file. "
                          f"Pass another {name}, or move the file away.")
    existing = next((q for q in (out, *out.parents) if q.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"The output folder {str(out)!r} (--out) cannot be written: {str(existing)!r} is not writable. "
                          f"Pass another {name}, or change the folder's permissions.")


def owner() -> str:
    """``<host>-<pid>``: which process a temporary file or folder is of."""
    return f"{socket.gethostname()}-{os.getpid()}"


def gone(tag: str) -> bool:
    """Whether ``tag`` (an :func:`owner`) names a process of this host that has ended: what it left
    (a temporary file a kill cut short) is no one's and can go. Other hosts' are never gone."""
    host, _, pid = tag.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # (another user's live process; no such pid number)
        pass
    return False


def write_file_atomic(path: str | Path, data) -> Path:
    """Write ``path`` through a temporary file in its directory, fsync, rename, then fsync the
    directory: a crash leaves the old file or the new one, never half of either. ``data`` is
    ``bytes``, ``str`` (UTF-8) or a function that writes into the open binary file. Every file
    the project writes goes through here (artifacts by ``write_artifact``)."""
    path = Path(path)
    if not path.parent.is_dir():  # else open() names the hidden temporary file, not the user's path
        raise ConfigError(f"Cannot write {path}: its folder {path.parent} does not exist (or is not a folder). "
                          f"Create it first, or write somewhere else.")
    if path.is_dir():  # else the rename names the hidden temporary file
        raise ConfigError(f"Cannot write {path}: it is a folder. Give a file name (e.g. {path / 'name'}), "
                          f"or move the folder away.")
    if path.exists() and not path.is_file():  # the rename would replace a pipe or device (/dev/null, as root)
        raise ConfigError(f"Cannot write {path}: it is not a regular file (a device, pipe or socket), which "
                          f"the write would replace. Give a file's path, or move it away.")
    # The temporary name adds ~40 bytes to the user's: shorten the name part so that a legal name
    # near NAME_MAX still gets a legal temporary one (else "File name too long" for a good path).
    stem, room = path.name, 255 - len(os.fsencode(f"..tmp-{owner()}-00000000"))
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    prefix = f".{stem}.tmp-"
    for old in path.parent.glob(glob.escape(prefix) + "*"):  # what writers killed on this host left
        if gone(old.name[len(prefix):].rpartition("-")[0]):
            old.unlink(missing_ok=True)
    tmp = path.with_name(f"{prefix}{owner()}-{os.urandom(4).hex()}")
    try:
        with open(tmp, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno is None or exc.filename not in (None, str(tmp)):
            raise  # (not the system's error, or about another file, e.g. one the writer function reads)
        # the user's path, not the hidden temporary one (which the CLI would print as the culprit);
        # ENOSPC from a write or fsync names no file at all. Same class and errno.
        raise type(exc)(
            exc.errno, f"{exc.strerror} (writing through a temporary file in the folder {path.parent}; the old "
            f"file, if any, is unchanged. Check the folder's permissions and free space, or write somewhere else)",
            str(path),
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not allow opening a directory; the rename still stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Artifact:
    """An opened artifact: its header, and its sections as arrays (memory-mapped by default).

    Use :func:`read_artifact` to open one.
    """

    def __init__(self, path: Path, header: dict, sections: dict[str, Section], version, mmap: bool, fh):
        self.path = path
        self.header = header
        self.version = version
        self._sections = sections
        self._mmap = mmap
        # The mapping, copies and verify() all use ``fh``, the file whose header was checked, never
        # the path again: a file renamed over the path meanwhile (an atomic rewrite) must not mix
        # its bytes with this header.
        self._mm = np.memmap(fh, mode="r", dtype=np.uint8) if mmap else None
        self._fd = os.dup(fh.fileno())
        self._lock = threading.Lock()  # copies and verify() share the descriptor's file position

    kind = property(lambda self: self.header["kind"])
    config = property(lambda self: self.header["config"])
    inputs = property(lambda self: self.header["inputs"])
    meta = property(lambda self: self.header["meta"])
    align = property(lambda self: self.header["align"])

    @property
    def section_names(self) -> list[str]:
        return list(self._sections)

    def section(self, name: str) -> Section:
        """Where section ``name`` lives in the file (for direct reads of part of it)."""
        try:
            return self._sections[name]
        except KeyError:
            raise ArtifactError(
                f"The {self.kind!r} artifact {str(self.path)!r} has no section {name!r}; "
                f"it has {self.section_names}. Re-create it with this version of embcompress."
            ) from None

    def array(self, name: str) -> np.ndarray:
        """Section ``name`` as a read-only array: a view of the mapping, or a fresh copy."""
        s = self.section(name)
        if self._mm is not None:
            out = self._mm[s.offset : s.offset + s.nbytes].view(s.dtype).reshape(s.shape)
        else:
            out = np.empty(s.shape, dtype=s.dtype)
            with self._lock, self._file() as fh, _shared_flock(fh):
                fh.seek(s.offset)
                if s.nbytes and fh.readinto(out.reshape(-1).view(np.uint8)) != s.nbytes:
                    raise ArtifactError(f"The artifact {str(self.path)!r} was truncated while being read.")
            out.flags.writeable = False
        return out

    def verify(self) -> None:
        """Check every section's CRC-32 and every padding byte; raise ChecksumError on a mismatch."""
        with self._lock, self._file() as fh:
            pos = self.header["_data_start"]
            for s in sorted(self._sections.values(), key=lambda s: s.offset):
                _check_zero(fh, pos, s.offset, self.path)
                fh.seek(s.offset)
                crc, left = 0, s.nbytes
                while left:
                    chunk = fh.read(min(_CHUNK, left))
                    if not chunk:
                        raise ArtifactError(f"The artifact {str(self.path)!r} is truncated in section {s.name!r}.")
                    crc = zlib.crc32(chunk, crc)
                    left -= len(chunk)
                if crc != s.crc32:
                    raise ChecksumError(
                        f"Section {s.name!r} of {str(self.path)!r} does not match its checksum "
                        f"(stored {s.crc32:#010x}, computed {crc:#010x}): the file is corrupted. "
                        f"Restore it from a good copy or re-create it."
                    )
                pos = s.offset + s.nbytes
            _check_zero(fh, pos, self.header["file_size"], self.path)

    def _file(self):
        if self._fd is None:
            raise ArtifactError(f"The artifact {str(self.path)!r} is closed. Open it again with read_artifact.")
        return os.fdopen(os.dup(self._fd), "rb")

    def close(self) -> None:
        """Release the file (arrays handed out keep their mapping alive)."""
        self._mm = None
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "Artifact":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Artifact(kind={self.kind!r}, path={str(self.path)!r}, sections={self.section_names})"


@contextmanager
def _shared_flock(fh):
    """Hold the file's shared flock while a copy is read: an update in place (a table's rows:
    TieredStore.update_rows, in any process) holds it exclusively from its first row write to its
    last, so the copy has every row of it old or new. (Nothing held where there is no flock.)"""
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
    except (OSError, AttributeError):  # (AttributeError: no fcntl module)
        yield
        return
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _check_zero(fh, start: int, stop: int, path: Path) -> None:
    if stop <= start:
        return
    fh.seek(start)
    for pos in range(start, stop, _CHUNK):  # in pieces: a crafted header may claim a huge gap
        if fh.read(min(_CHUNK, stop - pos)).strip(b"\0"):
            raise ChecksumError(
                f"Padding bytes {start}..{stop} of {str(path)!r} are not zero: the file is corrupted. "
                f"Restore it from a good copy or re-create it."
            )


# What each kind of artifact is, and what writes it, for the error that meets another kind.
_ARTIFACT_KINDS = {
    "table": ("a compressed table", "`embcompress export` or embcompress.write_table"),
    "idmap": ("an id map", "`embcompress fit-hash` or IdMap.save"),
    "logstats": ("mined log statistics", "`embcompress mine` or LogStats.save"),
    "row_journal": ("a table update's journal", None),
}


def _kind_name(kind: str) -> str:
    return f"{_ARTIFACT_KINDS[kind][0]} (kind {kind!r})" if kind in _ARTIFACT_KINDS else f"a {kind!r} artifact"


def read_artifact(
    path: str | os.PathLike,
    *,
    kind: str | tuple[str, ...] | None = None,
    mmap: bool = True,
    verify: str = "header",
) -> Artifact:
    """Open an artifact, checking its header; with ``verify="full"`` also every data byte.

    ``kind`` (one or several) is what the caller expects; another kind is refused with an error
    that says what the file holds.
    """
    if verify not in ("header", "full"):
        raise ConfigError(f"The 'verify' parameter of read_artifact must be 'header' or 'full'. Got {verify!r} instead.")
    path = Path(path)
    try:
        return _read(path, kind, mmap, verify, shared=False)
    except ChecksumError:
        # An update in place (a table's rows and header: TieredStore.update_rows, in any process)
        # may have changed the file between this read's steps (the header, then the rows): a
        # healthy table was called corrupted. Updates hold the file's exclusive flock throughout,
        # so read it again holding the flock shared; a damaged file fails again.
        return _read(path, kind, mmap, verify, shared=True)


def _open_shared(path: Path):
    """``path`` opened, holding its shared flock (none where the file system has no flock), and
    the file now at the path (an update may rename a new file over it while this waits)."""
    while True:
        fh = open(path, "rb")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        except (OSError, AttributeError):  # (AttributeError: no fcntl module)
            return fh
        try:
            if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                return fh
        except FileNotFoundError:
            pass
        fh.close()


def _read(path: Path, kind, mmap: bool, verify: str, shared: bool) -> Artifact:
    where = str(path)
    try:
        fh = _open_shared(path) if shared else open(path, "rb")
    except FileNotFoundError:
        raise MissingArtifactError(f"No artifact at {where!r}: the file does not exist. Check the path.") from None
    except IsADirectoryError:  # (bad input, as a missing file is: exit 1)
        raise MissingArtifactError(f"{where!r} is a directory, not an artifact file. Pass the file's path.") from None
    with fh:  # the Artifact keeps its own descriptor of this file (closing fh drops no flock: see below)
        size = os.fstat(fh.fileno()).st_size
        prefix = fh.read(PREFIX_SIZE)
        if len(prefix) < PREFIX_SIZE and not MAGIC.startswith(prefix[: len(MAGIC)]):
            # a few bytes of another kind of file: foreign, not a truncated artifact
            raise ArtifactError(
                f"{where!r} is not an embcompress artifact (its first bytes are {prefix[:8]!r}, "
                f"expected {MAGIC!r}). Pass a file written by embcompress."
            )
        if len(prefix) < PREFIX_SIZE:
            raise ArtifactError(
                f"{where!r} is not an embcompress artifact: it is {size} bytes long, shorter than "
                f"the {PREFIX_SIZE}-byte prefix. It may be truncated; re-create it."
            )
        magic, major, minor, res1, header_len, crc, res2 = PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise ArtifactError(
                f"{where!r} is not an embcompress artifact (its first bytes are {magic!r}, "
                f"expected {MAGIC!r}). Pass a file written by embcompress."
            )
        if major > MAJOR:
            # The header checksum covers the version: a flipped bit there is damage, not a newer file.
            newer = header_len <= size - PREFIX_SIZE and not res1 and not res2 and zlib.crc32(
                fh.read(header_len), zlib.crc32(struct.pack("<HHIQ", major, minor, res1, header_len))) == crc
            if not newer:  # a newer writer may checksum differently: name both causes
                raise VersionError(
                    f"The header of {where!r} records container format {major}.{minor}, newer than this "
                    f"embcompress reads ({MAJOR}.x), and does not match its checksum: the file is corrupted "
                    f"or was written by a newer embcompress. Restore it from a good copy if it is damaged. "
                    f"Upgrade embcompress to read it if it is newer."
                )
            raise VersionError(
                f"{where!r} was written in container format {major}.{minor}, newer than this "
                f"embcompress reads ({MAJOR}.x). Upgrade embcompress to read it."
            )
        if header_len > size - PREFIX_SIZE:
            raise ArtifactError(
                f"{where!r} is truncated: its header needs {header_len} bytes but only "
                f"{size - PREFIX_SIZE} follow the prefix. Re-create it from a good copy."
            )
        hdr = fh.read(header_len)
        head = struct.pack("<HHIQ", major, minor, res1, header_len)
        if zlib.crc32(hdr, zlib.crc32(head)) != crc or res1 or res2 or major < 1:
            raise ChecksumError(
                f"The header of {where!r} does not match its checksum: the file is corrupted. "
                f"Restore it from a good copy or re-create it."
            )
        try:
            header = json.loads(hdr)
            # Every later access (kind, config, inputs, meta) trusts these fields: check them here.
            if not isinstance(header["kind"], str) or not all(isinstance(header[k], dict) for k in ("config", "inputs", "meta")):
                raise ValueError("its 'kind' must be a string and its 'config', 'inputs' and 'meta' objects")
            sections = _parse_sections(header, PREFIX_SIZE + header_len, size)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ArtifactError(f"The header of {where!r} is malformed ({exc}). Re-create the file.") from None
        header["_data_start"] = PREFIX_SIZE + header_len
        if kind is not None:
            kinds = (kind,) if isinstance(kind, str) else tuple(kind)
            if header["kind"] not in kinds:
                made = " or ".join(_ARTIFACT_KINDS[k][1] for k in kinds if _ARTIFACT_KINDS.get(k, (0, None))[1])
                raise ArtifactError(
                    f"{where!r} holds {_kind_name(header['kind'])}, not {' or '.join(map(_kind_name, kinds))}. "
                    f"Pass a file of the expected kind" + (f" (written by {made})." if made else ".")
                )
        art = Artifact(path, header, sections, (major, minor), mmap, fh)
        try:
            if verify == "full":
                art.verify()
        finally:
            if shared and fcntl is not None:  # (the Artifact's descriptor shares the open file, and so the flock: drop it)
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                except OSError:
                    pass
    return art


def _int(v, what: str) -> int:
    # JSON ints only: 1e400 parses as infinity (int() raises OverflowError) and a float
    # file_size equal to the size passed the checks, then broke verify()'s byte ranges.
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} must be an integer, not {v!r}")
    return v


def _parse_sections(header: dict, data_start: int, size: int) -> dict[str, Section]:
    if _int(header["file_size"], "file_size") != size:
        raise ValueError(f"the header records {header['file_size']} bytes but the file has {size}; it is truncated or extended")
    align = header["align"]
    if not isinstance(align, int) or align < 8 or align & (align - 1):
        raise ValueError(f"alignment {align!r} is not a power of two")
    out: dict[str, Section] = {}
    end = data_start
    for e in header["sections"]:
        if not isinstance(e["name"], str) or not e["name"]:
            raise ValueError(f"a section name must be a non-empty string, not {e['name']!r}")
        dtype = np.dtype(e["dtype"])
        if dtype.kind not in _KINDS or dtype.fields is not None:
            raise ValueError(f"section {e['name']!r} has non-numeric dtype {e['dtype']!r}")
        shape = tuple(_int(d, f"section {e['name']!r}'s shape") for d in e["shape"])
        if any(d < 0 for d in shape):
            raise ValueError(f"section {e['name']!r} has a negative dimension")
        nbytes = math.prod(shape) * dtype.itemsize  # exact: int64 would wrap on a crafted shape
        offset = _int(e["offset"], f"section {e['name']!r}'s offset")
        if nbytes != e["nbytes"] or offset % align or offset < end or offset + nbytes > size:
            raise ValueError(f"section {e['name']!r} lies outside the file or overlaps another")
        if e["name"] in out:
            raise ValueError(f"section {e['name']!r} appears twice")
        out[e["name"]] = Section(e["name"], dtype, shape, offset, nbytes, _int(e["crc32"], f"section {e['name']!r}'s crc32"))
        end = offset + nbytes
    return out
