# Id -> row lookup of embcompress.IdMap: an open-addressing (linear probing) hash table, or a
# direct array when the mapped ids are dense, with a seeded splitmix64 fallback into the cold rows
# for ids the map does not hold. The NumPy twin is embcompress.idmap._lookup_numpy; the two must
# agree bit for bit (tests/unit/embcompress/test_idmap.py runs both).
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

ctypedef fused row_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t


cdef inline uint64_t mix64(uint64_t x, uint64_t seed) noexcept nogil:
    # splitmix64's finalizer on x + (seed + 1) * golden ratio; see embcompress.idmap.mix64.
    cdef uint64_t z = x + (seed + 1) * <uint64_t>0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


def lookup(const int64_t[::1] ids, const int64_t[::1] keys, const row_t[::1] vals,
           int64_t base, uint64_t seed, const row_t[::1] fallback,
           int64_t fb_start, int64_t fb_count, int64_t[::1] out, int n_threads):
    """Rows of ``ids`` into ``out``.

    Layout by shapes: ``keys`` non-empty: hash table of ``cap = keys.shape[0]`` (< 2**32) slots,
    first slot of an id ``((mix64(id, seed) >> 32) * cap) >> 32``, then the next slots (wrapping),
    empty slots hold the row dtype's maximum in ``vals``; else ``vals`` non-empty: direct array,
    ``vals[id - base]``; else no mapped ids.
    Unmapped ids go to ``fallback[h % fb_count]`` (or ``fb_start + h % fb_count`` when
    ``fallback`` is empty), ``h = mix64(id, seed)``.
    """
    cdef Py_ssize_t i, n = ids.shape[0]
    cdef uint64_t cap = keys.shape[0], h, slot, j
    cdef uint64_t span = vals.shape[0]
    cdef row_t empty = <row_t>(-1), v
    cdef int64_t x, r
    cdef bint has_fb = fallback.shape[0] > 0
    cdef int mode = 2 if cap > 0 else (1 if span > 0 else 0)
    for i in prange(n, nogil=True, num_threads=n_threads, schedule="static"):
        x = ids[i]
        h = mix64(<uint64_t>x, seed)
        r = -1
        if mode == 2:
            slot = ((h >> 32) * cap) >> 32
            while True:
                v = vals[slot]
                if v == empty:
                    break
                if keys[slot] == x:
                    r = <int64_t>v
                    break
                slot = slot + 1
                if slot == cap:
                    slot = 0
        elif mode == 1:
            j = <uint64_t>x - <uint64_t>base  # unsigned: wraps instead of overflowing
            if j < span:
                v = vals[j]
                if v != empty:
                    r = <int64_t>v
        if r < 0:
            if has_fb:
                r = <int64_t>fallback[h % <uint64_t>fb_count]
            else:
                r = fb_start + <int64_t>(h % <uint64_t>fb_count)
        out[i] = r
