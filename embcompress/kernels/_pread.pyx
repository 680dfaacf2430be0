# The tiered store's file reads of one batch, in one call without the GIL: the loop of
# RowReader.read (embcompress/store/scm.py), one pread(2) an extent (a run of adjacent 4 KiB
# blocks, cut every max_blocks) into the batch's page-aligned buffer. In Python each read cost
# about 4 us from the page cache, 2 of them the interpreter's (os.preadv, the loop, the clock),
# and a 256-bag Zipf batch misses several hundred blocks. The Python twin is that loop
# (RowReader._read_python), which runs under EMBCOMPRESS_KERNELS=numpy; tests run both.
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport pread

cdef enum:
    BLOCK = 4096  # = embcompress.store.scm.BLOCK
    _DONE = 0
    _END_OF_FILE = -1

# What read_extents reports besides the mean: the batch read, the end of the file before the
# records (a truncated table), or another errno (positive).
DONE = _DONE
END_OF_FILE = _END_OF_FILE


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def plan(const int64_t[::1] rows, const int64_t[::1] order, int64_t base, int64_t row_bytes,
         int64_t[::1] blocks, int64_t[::1] at):
    """The distinct blocks (sorted) holding the records of ``rows`` (distinct; ``order`` sorts
    them) into ``blocks``, and into ``at`` each record's byte in the buffer those blocks are read
    into (block ``blocks[i]`` at byte ``i * BLOCK``); returns the number of blocks.
    ``blocks`` holds at least ``len(rows) * (row_bytes // BLOCK + 2)``. (RowReader.blocks_of and
    the searchsorted of RowReader.read are the NumPy twin.)"""
    cdef Py_ssize_t n = rows.shape[0], i, k, nb = 0
    cdef int64_t start, f, l, b, last = -1
    if order.shape[0] != n or at.shape[0] < n or blocks.shape[0] < n * (row_bytes // BLOCK + 2):
        raise ValueError("plan: arrays too short")
    with nogil:
        for i in range(n):
            k = order[i]
            start = base + rows[k] * row_bytes
            f = start // BLOCK
            l = (start + row_bytes - 1) // BLOCK
            # Rows ascend and do not overlap, so f >= last: the record starts in the last block
            # taken or in a new one.
            at[k] = ((nb - 1) if f == last else nb) * BLOCK + start % BLOCK
            b = f if f > last else last + 1
            while b <= l:
                blocks[nb] = b
                nb += 1
                b += 1
            if l > last:
                last = l
    return nb


def gather(const unsigned char[::1] buf, const int64_t[::1] at, unsigned char[:, ::1] out):
    """``out[k] = buf[at[k] : at[k] + out.shape[1]]`` (the records from the read blocks)."""
    cdef Py_ssize_t k, n = out.shape[0], width = out.shape[1]
    if at.shape[0] < n:
        raise ValueError("gather: at too short")
    for k in range(n):
        if at[k] < 0 or at[k] + width > buf.shape[0]:
            raise ValueError("gather: a record beyond the buffer")
    if n == 0 or width == 0:
        return
    with nogil:
        for k in range(n):
            memcpy(&out[k, 0], &buf[at[k]], width)


def n_extents(const int64_t[::1] blocks, Py_ssize_t max_blocks):
    """The extents of ``blocks`` (sorted, distinct): runs of consecutive blocks, each cut every
    ``max_blocks`` blocks from its start."""
    cdef Py_ssize_t i, run = 1, n = 0
    if blocks.shape[0] == 0:
        return 0
    with nogil:
        n = 1
        for i in range(1, blocks.shape[0]):
            if blocks[i] == blocks[i - 1] + 1 and run < max_blocks:
                run += 1
            else:
                run = 1
                n += 1
    return n


def read_extents(int fd, unsigned char[::1] buf, const int64_t[::1] blocks, Py_ssize_t max_blocks,
                 int64_t end, bint direct, Py_ssize_t first, Py_ssize_t step, double mean):
    """Read the extents ``first``, ``first + step``, ... of ``blocks`` (sorted, distinct file
    blocks) from ``fd``: block ``blocks[i]`` into bytes ``i * BLOCK`` of ``buf``.

    Each extent is read until the bytes before ``end`` (the end of the records) are in; a read
    that returns short goes on from where it stopped (from that block's start when ``direct``:
    O_DIRECT reads stay block aligned); EINTR is retried after the signal handlers ran (a handler
    that raises, Ctrl-C, ends the call). ``mean``: the running mean of a read's time, updated by
    each read as ``mean += 0.05 * (seconds - mean)``.

    Returns ``(mean, reads, status, pos, got, want)``: ``status`` is ``DONE``, ``END_OF_FILE``
    (a read made no progress before ``end``) or an errno, and then ``pos``, ``got`` and
    ``want`` are the failed extent's file offset, bytes read and bytes asked.
    """
    cdef Py_ssize_t n = blocks.shape[0], i = 0, j, k = 0, reads = 0
    cdef int64_t want = 0, need, pos = 0, got = 0, at
    cdef ssize_t r
    cdef int status = _DONE, err
    cdef double t0
    cdef unsigned char *p
    if buf.shape[0] < n * BLOCK or max_blocks < 1 or step < 1 or first < 0:
        raise ValueError("read_extents: buffer too short or bad extent arguments")
    if n == 0:
        return mean, 0, _DONE, 0, 0, 0
    p = &buf[0]
    with nogil:
        while i < n and status == _DONE:
            j = i + 1
            while j < n and blocks[j] == blocks[j - 1] + 1 and j - i < max_blocks:
                j += 1
            if k >= first and (k - first) % step == 0:
                want = (j - i) * BLOCK
                pos = blocks[i] * BLOCK
                # The last block of the file may be short; the records inside it must not be.
                need = want if want < end - pos else end - pos
                got = 0
                while got < need:
                    at = got - got % BLOCK if direct else got
                    t0 = _now()
                    r = pread(fd, p + i * BLOCK + at, want - at, pos + at)
                    if r < 0:
                        err = errno
                        if err == EINTR:  # as os.preadv (PEP 475): the handlers run, then again
                            with gil:
                                PyErr_CheckSignals()
                            continue
                        status = err
                        break
                    mean += 0.05 * (_now() - t0 - mean)
                    reads += 1
                    if at + r <= got:  # no progress: the end of the file
                        status = _END_OF_FILE
                        break
                    got = at + r
            k += 1
            i = j
    return mean, reads, status, pos, got, want
