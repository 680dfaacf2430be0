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
    ZERO_EXP = -1048576  # stands for floor(log2(0)): below every shared exponent


cdef inline uint32_t rne_u32(uint32_t v, uint32_t s) noexcept nogil:
    # round_half_even(v / 2^s) for 1 <= s <= 31 and v < 2^31
    return (v + ((<uint32_t>1) << (s - 1)) - 1 + ((v >> s) & 1)) >> s


cdef inline int encode_block(const uint32_t* xb, const int* fl2, int block, int e, int b, bint exact,
                             uint8_t* codes, double* sse) noexcept nogil:
    """Codes of one block under shared exponent e; returns the microexponent byte.

    With sse != NULL, also the block's squared error (element order, exact terms)."""
    cdef int p, j, s, q, E, t
    cdef int micro = 0
    cdef int64_t M, n
    cdef int64_t top = (1 << (b - 1)) - 1
    cdef uint32_t mag, expf
    cdef double acc = 0.0, d
    cdef float v
    for p in range(block // 2):
        s = 1 if (fl2[2 * p] < e and fl2[2 * p + 1] < e) else 0
        micro |= s << p
        q = e - s - (b - 2)
        for j in range(2 * p, 2 * p + 2):
            mag = xb[j] & 0x7FFFFFFF
            expf = mag >> 23
            # branch-free for zeros and normals: (M, E) with |x| = M * 2^E; fp32 subnormals
            # (rare) take rne_shift, which also shifts left
            M = (mag & 0x7FFFFF) | ((<int64_t>(expf != 0)) << 23)
            E = (<int>expf if expf else 1) - 150
            if exact:
                n = rne_shift(M, q - E)
            else:
                t = q - E
                t = 31 if t > 31 else t
                n = rne_u32(<uint32_t>M, <uint32_t>t)
            n = top if n > top else n
            codes[j] = <uint8_t>(n | ((xb[j] >> 31) << (b - 1)))
            if sse != NULL:
                v = <float>n * pow2f(q)
                d = <double>f32_from_bits(mag) - <double>v  # |x| - |x_hat|: same square
                acc += d * d
    if sse != NULL:
        sse[0] = acc
    return micro


cdef int quantize_row(const uint32_t* xrow, int dim, uint8_t* out, int block, int nb, int b,
                      bint mse, bint nan_block) noexcept nogil:
    """Encode one row; returns the number of blocks holding NaN or inf."""
    cdef uint32_t xb[MAX_BLOCK]
    cdef int fl2[MAX_BLOCK]
    cdef uint8_t c0[MAX_BLOCK]
    cdef uint8_t c1[MAX_BLOCK]
    cdef int blk, j, k, e, m0, m1, bad = 0
    cdef uint32_t mag, amax, sub
    cdef bint nonfinite
    cdef double sse0, sse1
    cdef int code_bytes = block * b // 8
    cdef uint8_t* codes_out = out + 2 * nb
    for blk in range(nb):
        k = dim - blk * block
        if k > block:
            k = block
        amax = 0
        sub = 0
        nonfinite = False
        for j in range(block):
            xb[j] = xrow[blk * block + j] if j < k else 0
            mag = xb[j] & 0x7FFFFFFF
            if mag >= 0x7F800000:
                nonfinite = True
            elif mag > amax:
                amax = mag
            fl2[j] = floor_log2_mag(mag) if mag else ZERO_EXP
            sub |= (mag != 0) & (mag < 0x800000)
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
            m0 = encode_block(xb, fl2, block, e, b, sub, c0, &sse0)
            m1 = encode_block(xb, fl2, block, e + 1, b, sub, c1, &sse1)
            if sse1 < sse0:
                e = e + 1
                m0 = m1
                for j in range(block):
                    c0[j] = c1[j]
        else:
            m0 = encode_block(xb, fl2, block, e, b, sub, c0, NULL)
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
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        bad += quantize_row(<const uint32_t*>&x[i, 0], dim, &out[i, 0], block, nb, b, mse, nan_block)
    return bad
