"""The storage-class-memory tier: batched direct reads of row records from a table file.

A batch's rows (unique, sorted) become the distinct 4 KiB blocks that hold them; runs of adjacent
blocks are merged into one read of up to ``max_read_bytes``; the reads go into one page-aligned
buffer (each thread's own, kept between batches), at most ``max_in_flight`` at a time, and the
records are gathered from it. A batch's reads are one call of a compiled loop
(``kernels/_pread.pyx``: ``pread`` an extent, without the GIL; under the NumPy backend the same
loop in Python, one ``os.preadv`` an extent). Reads that wait on a device overlap in a small thread
pool (each share of the extents one call of the loop, which releases the GIL); reads served at
memory speed (the page cache, tmpfs) run in the
caller's thread, where a pool would only add its hand-offs: the reader keeps a running mean of
the time a read takes and chooses by it, batch by batch. The bound on reads in flight holds for
all the threads reading through one reader together. The file is opened with ``O_DIRECT`` where
the file system allows it (the page cache is bypassed, as a server reading an SSD would);
elsewhere (tmpfs, macOS) with plain positional reads. Every read is block aligned either way.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import struct
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ..errors import ArtifactError, MissingArtifactError
from ..kernels import compiled

BLOCK = 4096  # I/O unit: the page size and the logical block of NVMe drives formatted for 4 KiB
# A read taking less than this is served from memory: threads cannot overlap a copy on these few
# cores, and handing reads to a pool cost 400 us a batch where they took 60 (32 rows, page cache).
MEMORY_READ_SECONDS = 10e-6
# A batch whose reads would take less than this in one thread is read there: the pool's hand-offs
# cost about as much. (O_DIRECT reads on this VM's disk take 35-80 us: 4 of them run inline, 32
# in the pool, 1.4x faster.)
POOL_SECONDS = 300e-6
KEEP_BUFFER_BYTES = 8 << 20  # a thread keeps its read buffer up to this size between batches


# The byte of the table file whose OFD lock (a byte-range lock of the open file, apart from flock)
# an update holds while it waits for the readers' shared flock to go: a batch arriving meanwhile
# waits behind it. Linux's flock lets new shared holders pass a waiting exclusive one, and a store
# busy on several threads holds its shared flock from the first batch in to the last out, so
# another process's update waited for as long as the lookups went on.
TURNSTILE = 1 << 62
_LOCK_ERRNOS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


_LOCKS = {}  # kind -> the packed struct flock of the TURNSTILE byte (packing it cost a microsecond)


def turnstile(fd: int, kind: int) -> bool:
    """Wait for and take (``fcntl.F_WRLCK``, ``F_RDLCK``) or drop (``F_UNLCK``) ``fd``'s OFD lock
    of the ``TURNSTILE`` byte; False where the system has no OFD locks (then nothing is taken)."""
    if not hasattr(fcntl, "F_OFD_SETLKW"):
        return False
    arg = _LOCKS.get(kind)
    if arg is None:
        arg = _LOCKS[kind] = struct.pack("hhqqi4x", kind, os.SEEK_SET, TURNSTILE, 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, arg)
    except OSError as e:
        if e.errno not in _LOCK_ERRNOS:
            raise
        return False
    return True


_PROBE = struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, TURNSTILE, 1, 0)


def update_waiting(fd: int) -> bool:
    """Whether an update holds the ``TURNSTILE`` byte (it waits for, or holds, the file): one
    ``F_OFD_GETLK``, where taking and dropping the byte's read lock took two calls a batch."""
    if not hasattr(fcntl, "F_OFD_GETLK"):
        return False
    try:
        got = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _PROBE)
    except OSError as e:
        if e.errno not in _LOCK_ERRNOS:
            raise
        return False
    return struct.unpack_from("h", got)[0] != fcntl.F_UNLCK


# Readers open in this process: a forked child gives each its own open file and fresh threads.
_READERS: "weakref.WeakSet[RowReader]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reader in list(_READERS):
        reader._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# The compiled read loop (kernels/_pread.pyx) calls pread(2) itself. Where os.preadv has been
# replaced (a wrapper that injects faults or traces reads), reads go through the Python loop, and
# so through the wrapper, as they did before the loop was compiled.
_PREADV = os.preadv


def _compiled_loop():
    """The compiled read loop, or None: the NumPy backend, or os.preadv replaced (see above)."""
    loop = compiled("_pread")
    return loop if loop is not None and os.preadv is _PREADV else None


def _aligned_buffer(nbytes: int) -> mmap.mmap:
    # Anonymous mappings are page aligned, which O_DIRECT needs for the memory side of a read.
    return mmap.mmap(-1, max(BLOCK, -(-nbytes // BLOCK) * BLOCK))


class _Slots:
    """At most ``n`` holders at once, as a ``threading.BoundedSemaphore`` (which is Python code: a
    take and a give cost 1.5 us, a tenth of a small batch's read); SimpleQueue's get and put are C."""

    __slots__ = ("_tokens",)

    def __init__(self, n: int):
        self._tokens = queue.SimpleQueue()
        for _ in range(n):
            self._tokens.put(None)

    def __enter__(self) -> None:
        self._tokens.get()

    def __exit__(self, *exc) -> None:
        self._tokens.put(None)


class _Locked:
    """The context of :meth:`RowReader.locked` (an object, not two generator context managers:
    they cost about 4 us a batch, a fifth of a small read)."""

    __slots__ = ("reader", "depth")

    def __init__(self, reader: "RowReader"):
        self.reader = reader

    def __enter__(self) -> None:
        r = self.reader
        self.depth = depth = getattr(r._local, "depth", 0)
        if depth == 0:  # this thread's first: an update waiting goes first, then the shared flock
            if r._flock and update_waiting(r._fd) and turnstile(r._fd, fcntl.F_RDLCK):
                turnstile(r._fd, fcntl.F_UNLCK)
            r._share()
        # (a batch inside this thread's reading batch: the flock is held until that one ends)
        r._local.depth = depth + 1

    def __exit__(self, *exc) -> None:
        r = self.reader
        r._local.depth = self.depth
        if self.depth == 0:
            r._unshare()


class RowReader:
    """Reads row records of ``row_bytes`` stored from byte ``base`` of ``path`` (``n_rows`` of them)."""

    def __init__(self, path, base: int, row_bytes: int, n_rows: int, *, direct: bool = True,
                 max_in_flight: int = 8, max_read_bytes: int = 128 << 10):
        self.path, self.base, self.row_bytes, self.n_rows = str(path), base, row_bytes, n_rows
        self.max_in_flight, self.max_read_blocks = max_in_flight, max(1, max_read_bytes // BLOCK)
        self.direct = False
        self._fd = -1
        if direct and hasattr(os, "O_DIRECT"):
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
            except OSError:
                fd = -1
            if fd >= 0:
                probe = _aligned_buffer(BLOCK)
                try:
                    os.preadv(fd, [probe], 0)
                    self._fd, self.direct = fd, True
                except OSError:  # EINVAL: the file system refuses direct I/O
                    os.close(fd)
        if self._fd < 0:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise MissingArtifactError(f"No table file at {self.path!r}: the file does not exist. Check the path.") from None
        self._pool = None
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's read buffer: a fresh mapping cost 17 us a batch
        self.read_seconds = 100e-6  # running mean of one read; a device's until measured
        # Bounds the reads of every caller together (threads sharing a store share its reader), not
        # only the pool's: a batch too small for the pool is read in its caller's thread.
        self._in_flight = _Slots(max_in_flight)
        self._sharers = 0  # batches reading under the shared flock (it belongs to the open file)
        self._flock = True  # False where the file system refuses flock
        self._share_lock = threading.Lock()
        _READERS.add(self)

    def _after_fork(self) -> None:
        """In a forked child: an open file of its own and no inherited threads or locks.

        The inherited descriptor shares its open file, and so its flock, with the parent: the
        child's last batch out unlocked it while the parent's batch still read. The inherited
        pool has no threads in the child (its first pooled batch waited forever), and a lock a
        parent thread held at the fork stays held.
        """
        if self._fd >= 0:
            old = self._fd
            flags = os.O_RDONLY | (os.O_DIRECT if self.direct else 0)
            for name in (f"/proc/self/fd/{old}", self.path):  # the same file first, even if
                try:                                          # the path names a rewritten one
                    self._fd = os.open(name, flags)
                except OSError:
                    continue
                os.close(old)
                break
        self._pool = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._in_flight = _Slots(self.max_in_flight)
        self._sharers = 0
        self._share_lock = threading.Lock()

    @property
    def file_id(self) -> int:
        """The inode of the file this reader reads (an update may rename a new file over the path)."""
        return os.fstat(self._fd).st_ino

    def locked(self) -> "_Locked":
        """A shared ``flock`` on the file while a batch reads it: an update (in any process: see
        ``journal.apply_update``) holds it exclusively, so a batch reads every row of an update
        new, or every row old, and none torn. The lock belongs to the open file, which this
        reader's threads share: taken by the first batch in, released by the last out. A batch
        arriving while an update waits for it lets the update go first (see ``TURNSTILE``)."""
        return _Locked(self)

    def _share(self) -> None:
        with self._share_lock:
            if self._sharers == 0 and self._flock:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_SH)
                except OSError as e:  # a file system without flock takes no update either
                    if e.errno not in _LOCK_ERRNOS:
                        raise
                    self._flock = False
            self._sharers += 1

    def _unshare(self) -> None:
        with self._share_lock:
            self._sharers -= 1
            if self._sharers == 0 and self._flock:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def head(self, nbytes: int) -> bytes:
        """The first ``nbytes`` (at most a block) of the file this reader reads (an aligned read,
        as ``O_DIRECT`` needs)."""
        buf = _aligned_buffer(BLOCK)
        try:
            return bytes(buf[: min(nbytes, os.preadv(self._fd, [buf], 0))])
        finally:
            buf.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._local = threading.local()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def blocks_of(self, rows: np.ndarray) -> np.ndarray:
        """The distinct file blocks (sorted) that hold ``rows``."""
        start = self.base + rows.astype(np.int64) * self.row_bytes
        first, last = start // BLOCK, (start + self.row_bytes - 1) // BLOCK
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        span = int((last - first).max()) + 1
        if span == 1:
            return np.unique(first)
        blocks = first[:, None] + np.arange(span, dtype=np.int64)[None, :]
        return np.unique(blocks[blocks <= last[:, None]])

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, int]:
        """Records of ``rows`` (unique, any order) as uint8 ``(len(rows), row_bytes)``, and blocks read."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.row_bytes), dtype=np.uint8)
        if len(rows) == 0:
            return out, 0
        loop = _compiled_loop()
        if loop is None:
            blocks = self.blocks_of(rows)
        else:  # the blocks and each record's place among them in one pass over the sorted rows
            rows = np.ascontiguousarray(rows)
            blocks = np.empty(len(rows) * (self.row_bytes // BLOCK + 2), np.int64)
            at = np.empty(len(rows), np.int64)
            order = rows.argsort().astype(np.int64, copy=False)
            blocks = blocks[: loop.plan(rows, order, self.base, self.row_bytes, blocks, at)]
        buf = getattr(self._local, "buf", None)
        if buf is None or len(buf) < len(blocks) * BLOCK:
            buf = _aligned_buffer(len(blocks) * BLOCK)  # unmapped when the last reference goes
            if len(buf) <= KEEP_BUFFER_BYTES:
                self._local.buf = buf
        try:
            with self.locked():
                if loop is None:
                    self._read_python(blocks, buf)
                else:
                    self._read_compiled(loop, blocks, buf)
        except BaseException:
            # A read may still be running into the buffer (a share, after Ctrl-C): never reuse it.
            if getattr(self._local, "buf", None) is buf:
                self._local.buf = None
            raise
        if loop is not None:
            loop.gather(buf, at, out)
            return out, len(blocks)
        start = self.base + rows * self.row_bytes
        at = np.searchsorted(blocks, start // BLOCK) * BLOCK + start % BLOCK
        # A window view of the buffer's bytes read (window i starts at byte i): row k is window
        # at[k], gathered without an index matrix.
        n_windows = len(blocks) * BLOCK - self.row_bytes + 1
        windows = np.ndarray((n_windows, self.row_bytes), dtype=np.uint8, buffer=buf, strides=(1, 1))
        out[:] = windows[at]
        return out, len(blocks)

    def _truncated(self, pos: int, got: int, want: int) -> ArtifactError:
        return ArtifactError(
            f"The table file {self.path!r} was truncated: a read at byte {pos} got "
            f"{got} of {want} bytes. Restore the file from a good copy."
        )

    def _read_compiled(self, loop, blocks: np.ndarray, buf) -> None:
        """Read ``blocks`` into ``buf`` with the compiled loop (``_pread.read_extents``): in this
        thread, or in shares over the pool, each share one call that releases the GIL."""
        mean = self.read_seconds
        if self.max_in_flight == 1 or mean < MEMORY_READ_SECONDS:  # (as _read_extents decides)
            self._read_share(loop, blocks, buf, (0, 1))
            return
        self._read_extents(lambda: loop.n_extents(blocks, self.max_read_blocks),
                           lambda share: self._read_share(loop, blocks, buf, share),
                           lambda k: [(i, k) for i in range(k)], [(0, 1)])

    def _read_share(self, loop, blocks: np.ndarray, buf, share: tuple[int, int]) -> None:
        """The extents ``first``, ``first + step``, ... (``share``) of ``blocks``, in one call."""
        first, step = share
        # One place among the reads in flight for the whole share, as in _read_python.
        with self._in_flight:
            start = self.read_seconds
            mean, reads, status, pos, got, want = loop.read_extents(
                self._fd, buf, blocks, self.max_read_blocks, self.base + self.n_rows * self.row_bytes, self.direct,
                first, step, start)
            # The share's reads applied after whatever other threads' reads moved the mean
            # meanwhile (the update is linear in the mean it starts from).
            self.read_seconds = mean + 0.95 ** reads * (self.read_seconds - start)
        if status == loop.END_OF_FILE:
            raise self._truncated(pos, got, want)
        if status:
            raise OSError(status, os.strerror(status))

    def _read_python(self, blocks: np.ndarray, buf) -> None:
        """Read ``blocks`` into ``buf``, one ``os.preadv`` an extent (the compiled loop's twin)."""
        view = memoryview(buf)
        # Extents: runs of consecutive blocks, cut at max_read_blocks.
        brk = np.flatnonzero(np.diff(blocks) != 1) + 1
        starts = np.concatenate([[0], brk])
        stops = np.concatenate([brk, [len(blocks)]])
        extents = []
        for s, e in zip(starts.tolist(), stops.tolist()):
            for a in range(s, e, self.max_read_blocks):
                extents.append((a, min(e, a + self.max_read_blocks)))
        fd = self._fd

        def read_extent(ext):
            a, b = ext
            want = (b - a) * BLOCK
            pos = int(blocks[a]) * BLOCK
            # The last block of the file may be short; the records inside it must not be.
            need = min(want, self.base + self.n_rows * self.row_bytes - pos)
            got = 0
            while got < need:
                # A read may return short mid-file (POSIX allows it; network and FUSE file systems
                # do): go on from where it stopped, from that block's start under O_DIRECT.
                at = got - got % BLOCK if self.direct else got
                t0 = time.perf_counter()
                n = os.preadv(fd, [view[a * BLOCK + at : b * BLOCK]], pos + at)
                # (a mean over all threads' reads; a lost update between two of them is harmless)
                self.read_seconds += 0.05 * (time.perf_counter() - t0 - self.read_seconds)
                if at + n <= got:  # no progress: the end of the file
                    raise self._truncated(pos, got, want)
                got = at + n
            return got

        def read_all(part):
            # One read at a time: one place among the reads in flight for the whole part (taking
            # it for each read cost 2 us of the 4 us a page-cached read took)
            with self._in_flight:
                for ext in part:
                    read_extent(ext)

        self._read_extents(lambda: len(extents), read_all, lambda k: [extents[i::k] for i in range(k)], [extents])
        view.release()

    def _read_extents(self, n_extents, read_all, shares, whole) -> None:
        """Run ``read_all(whole)`` in this thread, or ``read_all`` over ``shares(k)`` in the pool
        (``n_extents()``: the batch's extents, asked only where the choice needs it)."""
        mean = self.read_seconds
        if self.max_in_flight == 1 or mean < MEMORY_READ_SECONDS or n_extents() * mean < POOL_SECONDS:
            read_all(*whole)
            return
        # One task a worker, each a share of the extents: a pool task costs far more Python time
        # than a read, and the reads release the GIL, so the workers' reads overlap.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="embc-scm")
            pool = self._pool
        k = self.max_in_flight
        futures = [pool.submit(read_all, share) for share in shares(k)]
        # Every share ends before the batch does, failed or not: a share still reading would write
        # into this thread's buffer after its next batch had taken it.
        wait(futures)
        for share in futures:
            share.result()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
