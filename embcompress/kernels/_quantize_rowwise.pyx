# Compiled row-wise quantizer (int8 / int4 / int2 with a per-row scale and bias), fbgemm's
# arithmetic. The one hot loop is the prange over rows in quantize(); quantize_row encodes one
# row straight into its record (scale, bias, then packed codes). The NumPy twin is
# embcompress/formats/rowwise.py, and both are tested against torch's fbgemm prepack bytes:
# - min/max reduce as fbgemm's AVX2 code does (8 lanes that keep the later of equal values, then
#   lanes and tail that keep the earlier), which decides the sign of a zero min or max;
# - every operation is the same float32 operation in the same order (no contraction applies:
#   there is no a * b + c), round half to even (rintf in the default rounding mode), and
#   float -> fp16 conversion rounds to nearest even in software.

from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int64_t
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #pragma GCC optimize("fp-contract=off")
    #include <math.h>
    #include <float.h>
    #include <string.h>
    #include <stdint.h>

    static inline uint32_t embc_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
    static inline float embc_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
    static inline float embc_nan(void) { return embc_float(0x7FC00000u); }  /* numpy's float32 NaN */

    /* float32 -> IEEE half, round to nearest even; overflow -> inf; NaN -> quiet NaN. */
    static inline uint16_t embc_f2h(float f) {
        uint32_t x = embc_bits(f), sign = (x >> 16) & 0x8000u, mag = x & 0x7FFFFFFFu;
        uint32_t e = mag >> 23, m, s, h;
        if (mag >= 0x7F800000u) return (uint16_t)(sign | (mag > 0x7F800000u ? 0x7E00u | ((mag >> 13) & 0x3FFu) : 0x7C00u));
        if (e >= 113) {                 /* half normal range (or overflow) */
            h = (mag >> 13) - (112u << 10);
            m = mag & 0x1FFFu;
            h += (m > 0x1000u) || (m == 0x1000u && (h & 1u));
            return (uint16_t)(sign | (h >= 0x7C00u ? 0x7C00u : h));
        }
        if (e < 102) return (uint16_t)sign;  /* below 2^-25: rounds to zero */
        m = (mag & 0x7FFFFFu) | 0x800000u;   /* half subnormal: units of 2^-24 */
        s = 126 - e;                          /* 14 .. 24 */
        h = (m + (1u << (s - 1)) - 1u + ((m >> s) & 1u)) >> s;
        return (uint16_t)(sign | h);
    }

    static inline float embc_h2f(uint16_t h) {
        uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
        if (e == 31) return embc_float(sign | 0x7F800000u | (m << 13));
        if (e) return embc_float(sign | ((e + 112u) << 23) | (m << 13));
        return sign ? -((float)m * 5.9604644775390625e-08f) : (float)m * 5.9604644775390625e-08f;  /* m * 2^-24, exact */
    }

    /* fbgemm's _mm256_cvtps_epi32 (+ saturating packs) then clamp to [0, top]. */
    static inline uint8_t embc_code(float t, int top) {
        /* NaN, inf and anything outside int32 become 0 (INT_MIN, then the saturating packs);
           negatives clamp to 0 (int4/int2: x below its fp16-rounded bias; rint(-0.7) is -1, which
           must not reach the uint8 cast as 0xFF). Branch-free, so the code loops vectorize. */
        float r;
        t = ((t > -1.0f) & (t < 2147483648.0f)) ? t : 0.0f;
        r = rintf(t);
        r = r < 0.0f ? 0.0f : r;
        r = r > (float)top ? (float)top : r;
        return (uint8_t)(int)r;
    }

    /* min and max in fbgemm's AVX2 reduction order: 8 lanes over the first dim / 8 * 8 values
       (vminps / vmaxps(acc, v) keep v on ties), then the lanes in order and the tail (std::min /
       std::max keep the running value on ties). */
    #ifdef __AVX__
    #include <immintrin.h>
    #endif
    static inline void embc_min_max(const float *x, int dim, float *mn_out, float *mx_out) {
        float lmin[8], lmax[8], mn = FLT_MAX, mx = -FLT_MAX, v;
        int c, l, vec = dim / 8 * 8;
    #ifdef __AVX__
        __m256 vmin = _mm256_set1_ps(FLT_MAX), vmax = _mm256_set1_ps(-FLT_MAX);
        for (c = 0; c < vec; c += 8) {
            __m256 in = _mm256_loadu_ps(x + c);
            vmin = _mm256_min_ps(vmin, in);
            vmax = _mm256_max_ps(vmax, in);
        }
        _mm256_storeu_ps(lmin, vmin);
        _mm256_storeu_ps(lmax, vmax);
    #else
        for (l = 0; l < 8; l++) { lmin[l] = FLT_MAX; lmax[l] = -FLT_MAX; }
        for (c = 0; c < vec; c += 8)
            for (l = 0; l < 8; l++) {
                v = x[c + l];
                lmin[l] = lmin[l] < v ? lmin[l] : v;
                lmax[l] = lmax[l] > v ? lmax[l] : v;
            }
    #endif
        for (l = 0; l < 8; l++) {
            mn = lmin[l] < mn ? lmin[l] : mn;
            mx = mx < lmax[l] ? lmax[l] : mx;
        }
        for (c = vec; c < dim; c++) {
            v = x[c];
            mn = v < mn ? v : mn;
            mx = mx < v ? v : mx;
        }
        *mn_out = mn; *mx_out = mx;
    }
    """
    float embc_nan() noexcept nogil
    uint16_t embc_f2h(float f) noexcept nogil
    float embc_h2f(uint16_t h) noexcept nogil
    uint8_t embc_code(float t, int top) noexcept nogil
    void embc_min_max(const float* x, int dim, float* mn, float* mx) noexcept nogil
    float rintf(float) noexcept nogil
    bint isinf(float) noexcept nogil


cdef enum:
    MAX_DIM = 4096  # rows up to this wide pack from a stack buffer; wider ones in place


cdef int quantize_row(const float* x, int dim, uint8_t* out, int bits, int code_bytes, bint nan_block) noexcept nogil:
    """Encode one row; returns 1 when it holds NaN or inf."""
    cdef int c, top = (1 << bits) - 1, per = 8 // bits, meta = 8 if bits == 8 else 4
    cdef float mn, mx, rng, scale, inv
    cdef float sb[2]
    cdef uint16_t hb[2]
    cdef uint8_t code
    cdef uint8_t* codes = out + meta
    cdef bint bad = False
    cdef uint32_t nonfinite = 0
    cdef uint8_t buf[MAX_DIM]
    for c in range(dim):  # branch-free so it vectorizes
        nonfinite |= ((<const uint32_t*>x)[c] & 0x7F800000u) == 0x7F800000u
    bad = nonfinite != 0
    if bad and nan_block:
        memset(codes, 0, code_bytes)
        if bits == 8:
            sb[0] = embc_nan()
            sb[1] = sb[0]
            memcpy(out, sb, 8)
        else:
            hb[0] = 0x7E00
            hb[1] = 0x7E00
            memcpy(out, hb, 4)
        return 1
    embc_min_max(x, dim, &mn, &mx)
    if bits == 8:
        rng = mx - mn
        sb[0] = rng / <float>255.0
        sb[1] = mn
        inv = <float>255.0 / (rng + <float>1e-8)
        memcpy(out, sb, 8)
        for c in range(dim):
            codes[c] = embc_code((x[c] - mn) * inv, 255)
        return bad
    hb[1] = embc_f2h(mn)
    mn = embc_h2f(hb[1])
    rng = mx - mn
    scale = <float>1.0 if rng == 0 else rng / <float>top
    scale = embc_h2f(embc_f2h(scale))
    if scale == 0:
        scale = 1.0
    inv = <float>1.0 / scale
    if isinf(inv):
        scale = 1.0
        inv = 1.0
    hb[0] = embc_f2h(scale)
    memcpy(out, hb, 4)
    if dim > MAX_DIM:
        memset(codes, 0, code_bytes)
        for c in range(dim):
            code = embc_code((x[c] - mn) * inv, top)
            codes[c // per] |= <uint8_t>(code << ((c % per) * bits))
        return bad
    for c in range(dim):
        buf[c] = embc_code((x[c] - mn) * inv, top)
    for c in range(dim, code_bytes * per):
        buf[c] = 0
    if bits == 4:
        for c in range(code_bytes):
            codes[c] = buf[2 * c] | (buf[2 * c + 1] << 4)
    else:
        for c in range(code_bytes):
            codes[c] = buf[4 * c] | (buf[4 * c + 1] << 2) | (buf[4 * c + 2] << 4) | (buf[4 * c + 3] << 6)
    return bad


def quantize(const float[:, ::1] x, uint8_t[:, ::1] out, spec, bint nan_block, int n_threads):
    """Quantize x (n, dim) into out (n, row_bytes); returns the count of rows with NaN or inf."""
    cdef int64_t n = x.shape[0], i
    cdef int dim = x.shape[1]
    cdef int bits = spec.elem_bits
    cdef int code_bytes = out.shape[1] - (8 if bits == 8 else 4)
    cdef int bad = 0
    if n == 0:
        return 0
    for i in prange(n, nogil=True, schedule="dynamic", chunksize=256, num_threads=n_threads):
        bad += quantize_row(&x[i, 0], dim, &out[i, 0], bits, code_bytes, nan_block)
    return bad


def f32_to_f16_bits(const float[::1] x):
    """The kernel's float -> fp16 conversion, exposed for tests against numpy's cast."""
    import numpy as np

    out = np.empty(x.shape[0], np.uint16)
    cdef uint16_t[::1] o = out
    cdef int64_t i
    for i in range(x.shape[0]):
        o[i] = embc_f2h(x[i])
    return out
