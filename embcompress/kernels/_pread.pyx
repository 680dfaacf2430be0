# The tiered store's file reads of one batch, in one call without the GIL: the loop of
# RowReader.read (embcompress/store/scm.py), one pread(2) an extent (a run of adjacent 4 KiB
# blocks, cut every max_blocks) into the batch's page-aligned buffer. In Python each read cost
# about 4 us from the page cache, 2 of them the interpreter's (os.preadv, the loop, the clock),
# and a 256-bag Zipf batch misses several hundred blocks. The Python twin is that loop
# (RowReader._read_python), which runs under EMBCOMPRESS_KERNELS=numpy; tests run both.
cimport numpy as cnp
from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport pread

cnp.import_array()

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


# The entry points take ndarrays (and the buffer through the buffer protocol), not typed
# memoryviews: acquiring one costs about half a microsecond, and a small batch passed nine (as
# in _lookup.pyx). _int64s checks what a memoryview would; n is the length the caller needs.
cdef int64_t *_int64s(cnp.ndarray a, Py_ssize_t n, bint writable, str name) except NULL:
    if (cnp.PyArray_TYPE(a) != cnp.NPY_INT64 or not cnp.PyArray_ISNOTSWAPPED(a) or cnp.PyArray_NDIM(a) != 1
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)
            or (writable and not cnp.PyArray_ISWRITEABLE(a)) or cnp.PyArray_DIM(a, 0) < n):
        raise ValueError(f"_pread: {name} must be a C-contiguous native int64 array of at least {n} "
                         f"entries{' (writable)' if writable else ''}")
    return <int64_t *>cnp.PyArray_DATA(a)


def plan(cnp.ndarray rows, cnp.ndarray order, int64_t base, int64_t row_bytes, cnp.ndarray blocks,
         cnp.ndarray at):
    """The distinct blocks (sorted) holding the records of ``rows`` (distinct; ``order`` sorts
    them) into ``blocks``, and into ``at`` each record's byte in the buffer those blocks are read
    into (block ``blocks[i]`` at byte ``i * BLOCK``); returns the number of blocks.
    ``blocks`` holds at least ``len(rows) * (row_bytes // BLOCK + 2)``. (RowReader.blocks_of and
    the searchsorted of RowReader.read are the NumPy twin.)"""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(rows), i, k, nb = 0
    cdef const int64_t *r = _int64s(rows, n, False, "rows")
    cdef const int64_t *o = _int64s(order, n, False, "order")
    cdef int64_t *b_out = _int64s(blocks, n * (row_bytes // BLOCK + 2), True, "blocks")
    cdef int64_t *a_out = _int64s(at, n, True, "at")
    cdef int64_t start, f, l, b, last = -1
    if row_bytes < 1 or base < 0:
        raise ValueError("plan: bad record layout")
    for i in range(n):
        if o[i] < 0 or o[i] >= n:
            raise ValueError("plan: order is not a permutation")
    with nogil:
        for i in range(n):
            k = o[i]
            start = base + r[k] * row_bytes
            f = start // BLOCK
            l = (start + row_bytes - 1) // BLOCK
            # Rows ascend and do not overlap, so f >= last: the record starts in the last block
            # taken or in a new one.
            a_out[k] = ((nb - 1) if f == last else nb) * BLOCK + start % BLOCK
            b = f if f > last else last + 1
            while b <= l:
                b_out[nb] = b
                nb += 1
                b += 1
            if l > last:
                last = l
    return nb


def gather(object buf, cnp.ndarray at, cnp.ndarray out):
    """``out[k] = buf[at[k] : at[k] + out.shape[1]]`` (the records from the read blocks; ``out``
    a C-contiguous uint8 matrix)."""
    cdef Py_buffer view
    cdef Py_ssize_t k, n, width
    cdef const int64_t *a
    cdef unsigned char *o
    cdef const unsigned char *src
    if (cnp.PyArray_TYPE(out) != cnp.NPY_UINT8 or cnp.PyArray_NDIM(out) != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(out)
            or not cnp.PyArray_ISWRITEABLE(out)):
        raise ValueError("gather: out must be a writable C-contiguous uint8 matrix")
    n, width = cnp.PyArray_DIM(out, 0), cnp.PyArray_DIM(out, 1)
    a = _int64s(at, n, False, "at")
    o = <unsigned char *>cnp.PyArray_DATA(out)
    PyObject_GetBuffer(buf, &view, 0)
    try:
        src = <const unsigned char *>view.buf
        for k in range(n):
            if a[k] < 0 or a[k] + width > view.len:
                raise ValueError("gather: a record beyond the buffer")
        with nogil:
            for k in range(n):
                memcpy(o + k * width, src + a[k], width)
    finally:
        PyBuffer_Release(&view)


def n_extents(cnp.ndarray blocks, Py_ssize_t max_blocks):
    """The extents of ``blocks`` (sorted, distinct): runs of consecutive blocks, each cut every
    ``max_blocks`` blocks from its start."""
    cdef Py_ssize_t i, run = 1, n = 0, nb = cnp.PyArray_SIZE(blocks)
    cdef const int64_t *b = _int64s(blocks, nb, False, "blocks")
    if nb == 0:
        return 0
    with nogil:
        n = 1
        for i in range(1, nb):
            if b[i] == b[i - 1] + 1 and run < max_blocks:
                run += 1
            else:
                run = 1
                n += 1
    return n


def read_extents(int fd, object buf, cnp.ndarray blocks, Py_ssize_t max_blocks, int64_t end, bint direct,
                 Py_ssize_t first, Py_ssize_t step, double mean):
    """Read the extents ``first``, ``first + step``, ... of ``blocks`` (sorted, distinct file
    blocks) from ``fd``: block ``blocks[i]`` into bytes ``i * BLOCK`` of ``buf`` (a writable
    buffer).

    Each extent is read until the bytes before ``end`` (the end of the records) are in; a read
    that returns short goes on from where it stopped (from that block's start when ``direct``:
    O_DIRECT reads stay block aligned); EINTR is retried after the signal handlers ran (a handler
    that raises, Ctrl-C, ends the call). ``mean``: the running mean of a read's time, updated by
    each read as ``mean += 0.05 * (seconds - mean)``.

    Returns ``(mean, reads, status, pos, got, want)``: ``status`` is ``DONE``, ``END_OF_FILE``
    (a read made no progress before ``end``) or an errno, and then ``pos``, ``got`` and
    ``want`` are the failed extent's file offset, bytes read and bytes asked.
    """
    cdef Py_ssize_t n = cnp.PyArray_SIZE(blocks), i = 0, j, k = 0, reads = 0
    cdef const int64_t *bl = _int64s(blocks, n, False, "blocks")
    cdef int64_t want = 0, need, pos = 0, got = 0, at
    cdef ssize_t r
    cdef int status = _DONE, err
    cdef double t0
    cdef unsigned char *p
    cdef Py_buffer view
    if max_blocks < 1 or step < 1 or first < 0:
        raise ValueError("read_extents: bad extent arguments")
    if n == 0:
        return mean, 0, _DONE, 0, 0, 0
    PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    try:
        if view.len < n * BLOCK:
            raise ValueError("read_extents: buffer too short")
        p = <unsigned char *>view.buf
        with nogil:
            while i < n and status == _DONE:
                j = i + 1
                while j < n and bl[j] == bl[j - 1] + 1 and j - i < max_blocks:
                    j += 1
                if k >= first and (k - first) % step == 0:
                    want = (j - i) * BLOCK
                    pos = bl[i] * BLOCK
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
    finally:
        PyBuffer_Release(&view)
    return mean, reads, status, pos, got, want
