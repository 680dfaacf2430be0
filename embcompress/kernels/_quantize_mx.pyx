# Compiled MX quantizer (OCP MX v1.0: MXFP8/6/4, MXINT8): one row record per row, rows in
# parallel. The one hot loop is the prange over rows in quantize(); quantize_row encodes one row
# straight into its record. The NumPy twin is embcompress/formats/mx.py (same integer steps:
# exact floor(log2(amax)) from the bits, clamp, round half to even from the float32 mantissa,
# subnormals, saturation, kept sign), and the two are tested to give the same bytes.

import numpy as np

from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint32_t, int64_t
from libc.string cimport memset

from ._qbits cimport floor_log2_mag, rne_shift, pow2f, f32_from_bits, pack_codes

cdef enum:
    MAX_BLOCK = 4096

cdef struct MXFmt:
    int is_int      # MXINT8: two's complement k / 64
    int bits        # element code width
    int mbits       # mantissa bits (FP elements)
    int emin        # exponent of the smallest normal element
    int emax        # exponent of the largest normal element
    int maxcode     # magnitude code of the largest normal (saturation)
    int bias        # exponent bias of the element format
    const float* lut  # code -> element value (for the mse error)


cdef inline uint8_t encode_exact(uint32_t bits, int X, int is_int, int nbits, int mbits, int emin,
                                  int maxcode) noexcept nogil:
    # The general integer path (any float32, fp32 subnormals included): mx.py's steps literally.
    cdef uint32_t sign = bits >> 31
    cdef uint32_t mag = bits & 0x7FFFFFFF
    cdef uint32_t expf = mag >> 23
    cdef int64_t M, n
    cdef int E, e
    if mag == 0:
        return 0 if is_int else <uint8_t>(sign << (nbits - 1))
    if expf:
        M = (mag & 0x7FFFFF) | 0x800000
        E = <int>expf - 150
    else:
        M = mag
        E = -149
    if is_int:
        n = rne_shift(M, X - 6 - E)
        if n > 127:
            n = 127
        return <uint8_t>((-n) & 0xFF) if sign else <uint8_t>n
    e = floor_log2_mag(mag) - X
    if e < emin:
        e = emin
    n = rne_shift(M, e - mbits + X - E)
    n += (<int64_t>(e - emin)) << mbits
    if n > maxcode:
        n = maxcode
    return <uint8_t>(n | (sign << (nbits - 1)))


cdef inline uint32_t rne_u32(uint32_t v, uint32_t s) noexcept nogil:
    # round_half_even(v / 2^s) for 1 <= s <= 31 and v < 2^31: the carry may reach the exponent.
    return (v + ((<uint32_t>1) << (s - 1)) - 1 + ((v >> s) & 1)) >> s


cdef inline uint8_t encode_int(uint32_t bits, int X) noexcept nogil:
    """MXINT8 code of a zero or normal float32 under shared exponent X (two's complement k)."""
    cdef uint32_t mag = bits & 0x7FFFFFFF
    cdef int s = X + 144 - <int>(mag >> 23)  # value * 64 / 2^X = M >> s, s >= 17 in this block
    cdef uint32_t n
    s = 31 if s > 31 else s
    n = rne_u32((mag & 0x7FFFFF) | 0x800000, <uint32_t>s)
    n = 127 if n > 127 else n
    n = 0 if mag == 0 else n
    n = (0u - n) if (bits >> 31) else n
    return <uint8_t>(n & 0xFF)


cdef inline uint8_t encode_elem(uint32_t bits, int X, int nbits, int mbits, int emin,
                                int bias, int maxcode) noexcept nogil:
    """FP element code of float32 bits under shared exponent X: the value of encode_exact, for
    zeros and normal float32 inputs (the caller sends blocks with fp32 subnormals to encode_exact).

    No data-dependent branches, so the block loop vectorizes: the element-normal result rounds the
    re-biased bits (exponent | mantissa) in one integer add, the element-subnormal result rounds
    the significand by a variable shift, and selects pick one."""
    cdef uint32_t sign = bits >> 31
    cdef uint32_t mag = bits & 0x7FFFFFFF
    cdef int expf = <int>(mag >> 23)
    cdef uint32_t M = (mag & 0x7FFFFF) | 0x800000
    cdef int e_el = expf - 127 - X
    cdef int s_sub
    cdef uint32_t v, r_norm, r_sub, n
    # element-normal: bits of x / 2^X with the exponent field re-biased to the element's
    v = ((<uint32_t>(e_el + bias) & 0xFF) << 23) | (mag & 0x7FFFFF)
    r_norm = rne_u32(v, <uint32_t>(23 - mbits))
    # element-subnormal: M * 2^(expf - 150 - X) in units of 2^(emin - mbits)
    s_sub = emin - mbits + 150 + X - expf
    s_sub = 31 if s_sub > 31 else s_sub
    s_sub = 1 if s_sub < 1 else s_sub
    r_sub = rne_u32(M, <uint32_t>s_sub)
    n = r_norm if e_el >= emin else r_sub
    n = <uint32_t>maxcode if n > <uint32_t>maxcode else n
    n = 0 if mag == 0 else n
    return <uint8_t>(n | (sign << (nbits - 1)))


cdef inline uint8_t encode_normal(uint32_t bits, int X, int nbits, int mbits, int bias, int maxcode) noexcept nogil:
    """encode_elem for an FP element known to land in the element's normal range (or zero)."""
    cdef uint32_t mag = bits & 0x7FFFFFFF
    cdef int e_el = <int>(mag >> 23) - 127 - X
    cdef uint32_t n = rne_u32(((<uint32_t>(e_el + bias) & 0xFF) << 23) | (mag & 0x7FFFFF), <uint32_t>(23 - mbits))
    n = <uint32_t>maxcode if n > <uint32_t>maxcode else n
    n = 0 if mag == 0 else n
    return <uint8_t>(n | ((bits >> 31) << (nbits - 1)))


cdef inline void encode_block(const uint32_t* xb, uint8_t* c, int block, int X, int path, int is_int,
                              int nbits, int mbits, int emin, int bias, int maxcode) noexcept nogil:
    # path 2: the block holds fp32 subnormals (the general integer path); otherwise MXINT8, or
    # FP elements where none (path 1, the common case for FP8) or some (path 0) fall below the
    # element format's normals. One simple loop each, so each vectorizes.
    cdef int j
    if path == 2:
        for j in range(block):
            c[j] = encode_exact(xb[j], X, is_int, nbits, mbits, emin, maxcode)
    elif is_int:
        for j in range(block):
            c[j] = encode_int(xb[j], X)
    elif path == 1:
        for j in range(block):
            c[j] = encode_normal(xb[j], X, nbits, mbits, bias, maxcode)
    else:
        for j in range(block):
            c[j] = encode_elem(xb[j], X, nbits, mbits, emin, bias, maxcode)


cdef inline double block_sse(const uint32_t* xb, const uint8_t* codes, int k, int X, const MXFmt* f) noexcept nogil:
    # Same order as formats/mx.py::_block_sse; differences and squares are exact in double.
    cdef double acc = 0.0, d
    cdef float scale = pow2f(X)
    cdef int j
    for j in range(k):
        d = <double>f32_from_bits(xb[j]) - <double>(f.lut[codes[j]] * scale)
        acc += d * d
    return acc


cdef int quantize_row(const uint32_t* xrow, int dim, uint8_t* out, int block, int nb,
                      const MXFmt* f, bint mse, bint nan_block) noexcept nogil:
    """Encode one row; returns the number of blocks holding NaN or inf."""
    # The default block gets its own copy of the loops with a constant trip count (no vector
    # epilogues): a third of the time at block 32.
    if block == 32:
        return quantize_row_blocks(xrow, dim, out, 32, nb, f, mse, nan_block)
    return quantize_row_blocks(xrow, dim, out, block, nb, f, mse, nan_block)


cdef inline int quantize_row_blocks(const uint32_t* xrow, int dim, uint8_t* out, int block, int nb,
                                    const MXFmt* f, bint mse, bint nan_block) noexcept nogil:
    cdef int is_int = f.is_int, nbits = f.bits, mbits = f.mbits, emin = f.emin, emax = f.emax
    cdef int bias = f.bias, maxcode = f.maxcode
    cdef uint32_t xb[MAX_BLOCK]
    cdef uint8_t c0[MAX_BLOCK]
    cdef uint8_t c1[MAX_BLOCK]
    cdef int b, j, k, X, X1, bad = 0
    cdef uint32_t mag, amax, sub, minmag, low, minlow
    cdef int path
    cdef const uint32_t* xp
    cdef bint nonfinite
    cdef int code_bytes = block * nbits // 8
    cdef uint8_t* codes_out = out + nb
    for b in range(nb):
        k = dim - b * block
        if k > block:
            k = block
        amax = 0
        minlow = 0xFFFFFFFFu
        if k == block:
            xp = xrow + b * block
        else:  # the last, partial block: zero padding
            for j in range(block):
                xb[j] = xrow[b * block + j] if j < k else 0
            xp = xb
        for j in range(block):  # three unsigned reductions, so the scan vectorizes
            mag = xp[j] & 0x7FFFFFFF
            amax = mag if mag > amax else amax
            low = mag - 1u  # wraps for zero: the min of mag - 1 is over nonzero elements
            minlow = low if low < minlow else minlow
        sub = minlow < 0x7FFFFF  # some nonzero element is an fp32 subnormal
        minmag = minlow + 1u
        nonfinite = amax >= 0x7F800000
        if nonfinite:
            bad += 1
            if nan_block:
                out[b] = 0xFF
                memset(codes_out + b * code_bytes, 0, code_bytes)
                continue
        if amax == 0:
            X = -127
        else:
            X = floor_log2_mag(amax) - emax
            if X < -127:
                X = -127
            elif X > 127:
                X = 127
        # the smallest nonzero element decides whether any element falls below the normals
        path = 2 if sub else (1 if (not is_int and <int>(minmag >> 23) - 127 - X >= emin) else 0)
        encode_block(xp, c0, block, X, path, is_int, nbits, mbits, emin, bias, maxcode)
        if mse and amax != 0 and X < 127:
            X1 = X + 1
            encode_block(xp, c1, block, X1, 2 if sub else 0, is_int, nbits, mbits, emin, bias, maxcode)
            if block_sse(xp, c1, block, X1, f) < block_sse(xp, c0, block, X, f):
                X = X1
                for j in range(block):
                    c0[j] = c1[j]
        out[b] = <uint8_t>(X + 127)
        pack_codes(c0, block, nbits, codes_out + b * code_bytes)
    return bad


def quantize(const float[:, ::1] x, uint8_t[:, ::1] out, spec, int block, bint mse, bint nan_block, int n_threads):
    """Quantize x (n, dim) into out (n, row_bytes); returns the count of non-finite blocks."""
    from embcompress.formats import mx as _mx

    cdef MXFmt f
    cdef int64_t n = x.shape[0], i
    cdef int dim = x.shape[1]
    cdef int nb = (dim + block - 1) // block
    cdef int bad = 0
    cdef const float[::1] lut = _mx.element_lut(spec)
    if block > MAX_BLOCK or block % 8:
        raise ValueError(f"block {block} not supported by the compiled MX quantizer")
    f.is_int = 1 if _mx.is_int(spec) else 0
    f.bits = spec.elem_bits
    f.mbits = spec.mbits
    f.emin = _mx.emin(spec)
    f.emax = spec.emax
    f.bias = spec.bias
    f.maxcode = _mx.max_code(spec)
    f.lut = &lut[0]
    if n == 0:
        return 0
    for i in prange(n, nogil=True, schedule="dynamic", chunksize=256, num_threads=n_threads):
        bad += quantize_row(<const uint32_t*>&x[i, 0], dim, &out[i, 0], block, nb, &f, mse, nan_block)
    return bad
