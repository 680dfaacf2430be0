# Compiled quantizer of the shared-microexponent formats (MX9, MX6, MX4): one row record per
# row, rows in parallel. The one hot loop is the prange over rows in quantize(); quantize_row
# encodes one row straight into its record. The NumPy twin is embcompress/formats/bdr.py (shared
# exponent floor(log2(amax)) from the bits, a microexponent per pair, round half to even of the
# float32 mantissa, sign-magnitude codes), and the two are tested to give the same bytes.

from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint32_t, int64_t
from libc.string cimport memset

from ._qbits cimport floor_log2_mag, rne_shift, pow2f, f32_from_bits, pack_codes

cdef enum:
    MAX_BLOCK = 16


cdef inline uint32_t rne_u32(uint32_t v, uint32_t s) noexcept nogil:
    # round_half_even(v / 2^s) for 1 <= s <= 31 and v < 2^31
    return (v + ((<uint32_t>1) << (s - 1)) - 1 + ((v >> s) & 1)) >> s


cdef inline uint32_t pow2_bits(int e) noexcept nogil:
    """float32 bits of 2^e (-149 <= e <= 127): |x| < 2^e iff its magnitude bits are below these."""
    return (<uint32_t>(e + 127) << 23) if e >= -126 else ((<uint32_t>1) << (e + 149))


cdef inline int encode_block(const uint32_t* xb, int block, int e, int b, bint exact,
                             uint8_t* codes, double* sse) noexcept nogil:
    """Codes of one block under shared exponent e; returns the microexponent byte.

    With sse != NULL, also the block's squared error (element order, exact terms)."""
    cdef int p, j, s, q, E, t
    cdef int micro = 0
    cdef int sj[MAX_BLOCK]
    cdef int64_t M64, n64
    cdef uint32_t top = (1u << (b - 1)) - 1, mag, expf, M, n
    cdef uint32_t thr = pow2_bits(e)  # an element's exponent is below e iff |x| < 2^e
    cdef double acc = 0.0, d
    cdef float v
    for p in range(block // 2):
        s = ((xb[2 * p] & 0x7FFFFFFF) < thr) & ((xb[2 * p + 1] & 0x7FFFFFFF) < thr)
        sj[2 * p] = s
        sj[2 * p + 1] = s
        micro |= s << p
    if exact:  # blocks holding fp32 subnormals: the general integer path
        for j in range(block):
            mag = xb[j] & 0x7FFFFFFF
            expf = mag >> 23
            M64 = (mag & 0x7FFFFF) | ((<int64_t>(expf != 0)) << 23)
            E = (<int>expf if expf else 1) - 150
            n64 = rne_shift(M64, e - sj[j] - (b - 2) - E)
            n64 = top if n64 > top else n64
            codes[j] = <uint8_t>(n64 | ((xb[j] >> 31) << (b - 1)))
    else:  # zeros and normals, no data-dependent branches: the loop vectorizes
        for j in range(block):
            mag = xb[j] & 0x7FFFFFFF
            expf = mag >> 23
            M = (mag & 0x7FFFFF) | ((<uint32_t>(expf != 0)) << 23)
            E = (<int>expf if expf else 1) - 150
            t = e - sj[j] - (b - 2) - E  # >= 15 here
            t = 31 if t > 31 else t
            n = rne_u32(M, <uint32_t>t)
            n = top if n > top else n
            codes[j] = <uint8_t>(n | ((xb[j] >> 31) << (b - 1)))
    if sse != NULL:
        for j in range(block):
            q = e - sj[j] - (b - 2)
            v = <float>(codes[j] & top) * pow2f(q)
            d = <double>f32_from_bits(xb[j] & 0x7FFFFFFF) - <double>v  # |x| - |x_hat|: same square
            acc += d * d
        sse[0] = acc
    return micro


cdef int quantize_row(const uint32_t* xrow, int dim, uint8_t* out, int block, int nb, int b,
                      bint mse, bint nan_block) noexcept nogil:
    """Encode one row; returns the number of blocks holding NaN or inf."""
    # Constant block and element widths give the compiler fixed-length loops and shifts.
    if block == 16:
        if b == 8:
            return quantize_row_blocks(xrow, dim, out, 16, nb, 8, mse, nan_block)
        if b == 5:
            return quantize_row_blocks(xrow, dim, out, 16, nb, 5, mse, nan_block)
        if b == 3:
            return quantize_row_blocks(xrow, dim, out, 16, nb, 3, mse, nan_block)
    return quantize_row_blocks(xrow, dim, out, block, nb, b, mse, nan_block)


cdef inline int quantize_row_blocks(const uint32_t* xrow, int dim, uint8_t* out, int block, int nb, int b,
                                    bint mse, bint nan_block) noexcept nogil:
    cdef uint32_t xb[MAX_BLOCK]
    cdef uint8_t c0[MAX_BLOCK]
    cdef uint8_t c1[MAX_BLOCK]
    cdef int blk, j, k, e, m0, m1, bad = 0
    cdef uint32_t mag, amax, minlow, low
    cdef bint nonfinite, sub
    cdef double sse0, sse1
    cdef int code_bytes = block * b // 8
    cdef uint8_t* codes_out = out + 2 * nb
    for blk in range(nb):
        k = dim - blk * block
        if k > block:
            k = block
        for j in range(block):
            xb[j] = xrow[blk * block + j] if j < k else 0
        amax = 0
        minlow = 0xFFFFFFFFu
        for j in range(block):  # unsigned reductions, so the scan vectorizes
            mag = xb[j] & 0x7FFFFFFF
            amax = mag if mag > amax else amax
            low = mag - 1u  # wraps for zero: the min is over nonzero elements
            minlow = low if low < minlow else minlow
        sub = minlow < 0x7FFFFF  # some nonzero element is an fp32 subnormal
        nonfinite = amax >= 0x7F800000
        if nonfinite:
            bad += 1
            if nan_block:
                out[blk] = 0xFF
                out[nb + blk] = 0
                memset(codes_out + blk * code_bytes, 0, code_bytes)
                continue
        if amax == 0:
            e = -127
        else:
            e = floor_log2_mag(amax)
            if e < -127:
                e = -127
            elif e > 127:
                e = 127
        if mse and amax != 0 and e < 127:
            m0 = encode_block(xb, block, e, b, sub, c0, &sse0)
            m1 = encode_block(xb, block, e + 1, b, sub, c1, &sse1)
            if sse1 < sse0:
                e = e + 1
                m0 = m1
                for j in range(block):
                    c0[j] = c1[j]
        else:
            m0 = encode_block(xb, block, e, b, sub, c0, NULL)
        out[blk] = <uint8_t>(e + 127)
        out[nb + blk] = <uint8_t>m0
        pack_codes(c0, block, b, codes_out + blk * code_bytes)
    return bad


def quantize(const float[:, ::1] x, uint8_t[:, ::1] out, spec, int block, bint mse, bint nan_block, int n_threads):
    """Quantize x (n, dim) into out (n, row_bytes); returns the count of non-finite blocks."""
    cdef int64_t n = x.shape[0], i
    cdef int dim = x.shape[1]
    cdef int nb = (dim + block - 1) // block
    cdef int b = spec.elem_bits
    cdef int bad = 0
    if block > MAX_BLOCK or block % 8:
        raise ValueError(f"block {block} not supported by the compiled BDR quantizer")
    if n == 0:
        return 0
    for i in prange(n, nogil=True, schedule="dynamic", chunksize=256, num_threads=n_threads):
        bad += quantize_row(<const uint32_t*>&x[i, 0], dim, &out[i, 0], block, nb, b, mse, nan_block)
    return bad
