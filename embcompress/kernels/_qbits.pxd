# Bit-exact helpers shared by the compiled quantizers (_quantize_mx.pyx, _quantize_bdr.pyx).
# Each mirrors a NumPy function of embcompress/formats/scale.py and packing.py; the quantizers
# must match the NumPy reference bit for bit, so everything here is integer arithmetic except
# exact float32 products.

from libc.stdint cimport uint8_t, uint32_t, int64_t, uint64_t
from libc.string cimport memcpy

cdef extern from *:
    """
    static inline int embc_clz32(uint32_t v) { return __builtin_clz(v); }
    """
    int embc_clz32(uint32_t v) noexcept nogil


cdef inline int floor_log2_mag(uint32_t mag) noexcept nogil:
    """floor(log2) of the nonzero float32 with magnitude bits mag (normals and subnormals)."""
    cdef uint32_t e = mag >> 23
    if e:
        return <int>e - 127
    return (31 - embc_clz32(mag)) - 149


cdef inline int64_t rne_shift(int64_t M, int s) noexcept nogil:
    """round_half_even(M / 2^s) for 0 <= M < 2^24; s < 0 shifts left (by at most a few bits)."""
    cdef int64_t n, rem, half
    if s <= 0:
        return M << (-s)
    if s > 40:
        return 0
    n = M >> s
    rem = M - (n << s)
    half = (<int64_t>1) << (s - 1)
    if rem > half or (rem == half and (n & 1)):
        n += 1
    return n


cdef inline float f32_from_bits(uint32_t bits) noexcept nogil:
    cdef float f
    memcpy(&f, &bits, 4)
    return f


cdef inline float pow2f(int e) noexcept nogil:
    """2^e as float32 for -149 <= e <= 127, exact (subnormal below -126)."""
    if e >= -126:
        return f32_from_bits(<uint32_t>(e + 127) << 23)
    return f32_from_bits((<uint32_t>1) << (e + 149))


cdef inline uint64_t pack8(const uint8_t* c, int bits) noexcept nogil:
    """8 codes as one little-endian word (inlined with a constant width: constant shifts)."""
    return ((<uint64_t>c[0]) | (<uint64_t>c[1] << bits) | (<uint64_t>c[2] << (2 * bits))
            | (<uint64_t>c[3] << (3 * bits)) | (<uint64_t>c[4] << (4 * bits)) | (<uint64_t>c[5] << (5 * bits))
            | (<uint64_t>c[6] << (6 * bits)) | (<uint64_t>c[7] << (7 * bits)))


cdef inline void pack_codes(const uint8_t* codes, int count, int bits, uint8_t* dst) noexcept nogil:
    """Little-endian bit stream of count codes (count a multiple of 8): 8 codes -> bits bytes."""
    cdef int g, j
    cdef uint64_t word
    cdef uint32_t w
    if bits == 8:
        memcpy(dst, codes, count)
        return
    if bits == 4:  # the common widths get loops with constant shifts
        for g in range(count // 2):
            dst[g] = <uint8_t>(codes[2 * g] | (codes[2 * g + 1] << 4))
        return
    if bits == 6:
        for g in range(count // 4):
            w = (<uint32_t>codes[4 * g]) | (<uint32_t>codes[4 * g + 1] << 6) | (<uint32_t>codes[4 * g + 2] << 12) | (<uint32_t>codes[4 * g + 3] << 18)
            dst[3 * g] = <uint8_t>(w & 0xFF)
            dst[3 * g + 1] = <uint8_t>((w >> 8) & 0xFF)
            dst[3 * g + 2] = <uint8_t>(w >> 16)
        return
    if bits == 5:
        for g in range(count // 8):
            word = pack8(codes + 8 * g, 5)
            for j in range(5):
                dst[5 * g + j] = <uint8_t>((word >> (8 * j)) & 0xFF)
        return
    if bits == 3:
        for g in range(count // 8):
            word = pack8(codes + 8 * g, 3)
            for j in range(3):
                dst[3 * g + j] = <uint8_t>((word >> (8 * j)) & 0xFF)
        return
    for g in range(count // 8):
        word = pack8(codes + 8 * g, bits)
        for j in range(bits):
            dst[bits * g + j] = <uint8_t>((word >> (8 * j)) & 0xFF)
