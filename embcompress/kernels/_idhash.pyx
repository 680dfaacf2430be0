# The string-id hash (FNV-1a 64 over the bytes, then MurmurHash3 fmix64), one string per
# iteration in parallel. NumPy twin: embcompress.idhash.fnv1a_fmix_numpy (bit-exact, tested).
from cython.parallel import prange
from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef inline uint64_t _hash(const uint8_t[::1] data, int64_t start, int64_t stop) noexcept nogil:
    cdef uint64_t h = 0xCBF29CE484222325ULL
    cdef int64_t j
    for j in range(start, stop):
        h = (h ^ data[j]) * 0x100000001B3ULL
    h = h ^ (h >> 33)
    h = h * 0xFF51AFD7ED558CCDULL
    h = h ^ (h >> 33)
    h = h * 0xC4CEB9FE1A85EC53ULL
    return h ^ (h >> 33)


def fnv1a_fmix(const int64_t[::1] offsets, const uint8_t[::1] data, uint64_t[::1] out, int n_threads):
    """out[i] = hash of data[offsets[i]:offsets[i+1]]."""
    cdef Py_ssize_t i, n = offsets.shape[0] - 1
    for i in prange(n, nogil=True, num_threads=n_threads, schedule="static"):
        out[i] = _hash(data, offsets[i], offsets[i + 1])
