# Pooled embedding lookup over compressed row records: gather, decode on the fly, pool.
#
# The one hot loop is the prange over bags at the bottom; everything above it is C that decodes
# one row record straight into the bag's accumulator (no decoded row is ever stored). The
# NumPy twin is embcompress/kernels/reference.py and this kernel must match it bit for bit, so:
# - every value is decoded exactly as the reference decodes it (element lookup tables times an
#   exact power-of-two scale: one correctly rounded product; row-wise: code * scale, then + bias);
# - each output element accumulates in float32 in index order, starting from +0.0 (sum, mean)
#   or from the first row (max), and a mean divides the sum by the count at the end;
# - floating-point contraction is off, as in NumPy, and the build never uses -ffast-math; the one
#   fused multiply-add, in the fast path's sum, is written out where its product is exact (see
#   EMBC_FP4_FMA_MAX_SCALE), so it rounds as the reference's multiply, then add.
# The public entry point, with its checks, is embcompress.kernels.lookup.pooled_lookup.

from libc.stdint cimport uint8_t, int64_t
from libc.stdlib cimport malloc, free
from cython.parallel cimport prange
cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize("fp-contract=off")
    #endif
    #include <stdint.h>
    #include <string.h>

    /* Family codes; embcompress/kernels/lookup.py maps format names onto them. */
    enum { EMBC_FP32 = 0, EMBC_FP16, EMBC_BF16, EMBC_INT8_ROW, EMBC_INT4_ROW, EMBC_INT2_ROW,
           EMBC_MX_LUT8, EMBC_MXINT8, EMBC_MX_LUT_BITS, EMBC_BDR };
    enum { EMBC_SUM = 0, EMBC_MEAN = 1, EMBC_MAX = 2 };

    typedef struct {
        int kind;            /* EMBC_* family code */
        int dim;             /* values per row */
        int block;           /* elements per block (MX, BDR) */
        int nb;              /* blocks per row */
        int bits;            /* element code width: MX sub-byte codes, BDR elements */
        int64_t row_bytes;   /* bytes of one row record */
        const float *lut;    /* MX element code -> value (2^bits entries) */
        int simd;            /* 0: scalar decoders; 1: vector decoders (AVX-512, or AVX2); 2: also the
                                AVX-512 fast paths */
        int cshift;          /* MX fast path: chunk of 16 c lies in block c >> cshift */
        int fast;            /* fast-path kind, or -1 (set by embc_prepare); AVX2 builds: 1 where the
                                AVX2 row decoder takes the layout, else -1 */
        int fp8_arith;       /* FP8 decoded by shifts (checked against lut by the caller), with: */
        int fp8_shift;       /*   23 - mantissa bits */
        int fp8_scale_adj;   /*   scale bytes >= fp8_special + fp8_scale_adj do not fold (incl. NaN) */
        const float *scales8;  /*   E8M0 byte v -> 2^(v - bias): 2^(127 - bias) folded into the scale */
        int fp8_special;     /*   first magnitude code of Inf/NaN (codes at or above it) */
        const float *scales;   /* E8M0 byte v -> 2^(v - 127), NaN for 0xFF (256 entries) */
        const float *scales6;  /* E8M0 byte v -> 2^(v - 133), NaN for 0xFF: mxint8's k / 64 folded in */
    } embc_fmt;

    /* EMBC_NO_PREFETCH: only for benchmarks/kernel_harness.py, which times the kernel without them */
    /* The prefetch distances and the far prefetch's locality can be set (-D) by
       benchmarks/kernel_harness.py's experiments; the package builds with these values. */
    #ifndef EMBC_FAR_LOCALITY
    #define EMBC_FAR_LOCALITY 1
    #endif
    #if (defined(__GNUC__) || defined(__clang__)) && !defined(EMBC_NO_PREFETCH)
    #define EMBC_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, EMBC_FAR_LOCALITY)
    #define EMBC_PREFETCH_NEAR(p) __builtin_prefetch((const void *)(p), 0, 3)
    #else
    #define EMBC_PREFETCH(p) ((void)0)
    #define EMBC_PREFETCH_NEAR(p) ((void)0)
    #endif
    /* Two prefetch distances: rows 32 indices ahead are fetched into L2 (prefetcht2: L2 can
       track more outstanding misses than L1's fill buffers, so more rows are in flight), and
       rows 8 ahead are pulled on into L1. Measured best on the 2M-row benchmark against one
       distance (8 to 32 rows, into L1 or L2). The fast paths use both; the others the far one. */
    #ifndef EMBC_PREFETCH_ROWS
    #define EMBC_PREFETCH_ROWS 32
    #endif
    #ifndef EMBC_PREFETCH_NEAR_ROWS
    #define EMBC_PREFETCH_NEAR_ROWS 8
    #endif

    static inline float embc_f32(uint32_t bits) { float f; memcpy(&f, &bits, 4); return f; }

    /* 2^e as a float32 for -149 <= e <= 127 (subnormal below -126): exact. */
    static inline float embc_pow2(int e) {
        return e >= -126 ? embc_f32((uint32_t)(e + 127) << 23) : embc_f32(1u << (e + 149));
    }

    /* E8M0 scale byte -> 2^(v - 127 - shift); 0xFF is NaN. */
    static inline float embc_e8m0(uint8_t v, int shift) {
        return v == 0xFF ? embc_f32(0x7FC00000u) : embc_pow2((int)v - 127 - shift);
    }

    /* IEEE half -> float32, exact: shift the exponent and mantissa into place and rescale by
       2^112 (an exact product, which also normalizes half subnormals); Inf/NaN get exponent 255. */
    static inline float embc_half(uint16_t h) {
        uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
        uint32_t rest = (uint32_t)(h & 0x7FFFu);
        float mag = embc_f32(rest << 13) * 0x1p112f;
        uint32_t bits;
        memcpy(&bits, &mag, 4);
        if (rest >= 0x7C00u) bits = 0x7F800000u | (rest & 0x3FFu) << 13;
        return embc_f32(bits | sign);
    }

    static inline uint16_t embc_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
    static inline uint32_t embc_u32(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }

    /* Code j of a little-endian bit stream of `bits`-wide codes (bits <= 8). */
    static inline unsigned embc_code(const uint8_t *s, int64_t j, int bits) {
        int64_t bit = j * bits;
        unsigned u = s[bit >> 3];
        if ((bit & 7) + bits > 8) u |= (unsigned)s[(bit >> 3) + 1] << 8;
        return (u >> (bit & 7)) & ((1u << bits) - 1u);
    }

    /* One decoder body per family, expanded once per pooling operation OP(acc, value):
       ADD (acc += v), WADD (acc += w * v), SET (acc = v, first row of a max), MAX. */
    #define EMBC_OP_ADD(a, v) ((a) += (v))
    #define EMBC_OP_WADD(a, v) ((a) += w * (v))
    #define EMBC_OP_SET(a, v) ((a) = (v))
    /* max as torch's CPU kernel takes it: a row replaces the running max only where it is greater,
       so a NaN is kept from a bag's first row and never taken from a later one */
    #define EMBC_OP_MAX(a, v) do { float v_ = (v); (a) = v_ > (a) ? v_ : (a); } while (0)

    #define EMBC_DEFINE_ROW(NAME, OP)                                                          \
    static void embc_row_##NAME(const embc_fmt *f, const uint8_t *restrict rec, float w,       \
                                float *restrict acc) {                                         \
        const int dim = f->dim;                                                                \
        (void)w;                                                                               \
        switch (f->kind) {                                                                     \
        case EMBC_FP32: {                                                                      \
            for (int i = 0; i < dim; i++) OP(acc[i], embc_f32(embc_u32(rec + 4 * i)));         \
            break; }                                                                           \
        case EMBC_FP16: {                                                                      \
            for (int i = 0; i < dim; i++) OP(acc[i], embc_half(embc_u16(rec + 2 * i)));        \
            break; }                                                                           \
        case EMBC_BF16: {                                                                      \
            for (int i = 0; i < dim; i++) OP(acc[i], embc_f32((uint32_t)embc_u16(rec + 2 * i) << 16)); \
            break; }                                                                           \
        case EMBC_INT8_ROW: {                                                                  \
            const float s = embc_f32(embc_u32(rec)), b = embc_f32(embc_u32(rec + 4));          \
            const uint8_t *c = rec + 8;                                                        \
            for (int i = 0; i < dim; i++) OP(acc[i], (float)c[i] * s + b);                     \
            break; }                                                                           \
        case EMBC_INT4_ROW: {                                                                  \
            const float s = embc_half(embc_u16(rec)), b = embc_half(embc_u16(rec + 2));        \
            const uint8_t *c = rec + 4;                                                        \
            for (int i = 0; i < dim; i++)                                                      \
                OP(acc[i], (float)((c[i >> 1] >> ((i & 1) * 4)) & 15) * s + b);                \
            break; }                                                                           \
        case EMBC_INT2_ROW: {                                                                  \
            const float s = embc_half(embc_u16(rec)), b = embc_half(embc_u16(rec + 2));        \
            const uint8_t *c = rec + 4;                                                        \
            for (int i = 0; i < dim; i++)                                                      \
                OP(acc[i], (float)((c[i >> 2] >> ((i & 3) * 2)) & 3) * s + b);                 \
            break; }                                                                           \
        case EMBC_MX_LUT8: {                                                                   \
            const uint8_t *c = rec + f->nb;                                                    \
            const float *lut = f->lut;                                                         \
            for (int k = 0, i0 = 0; k < f->nb; k++, i0 += f->block) {                          \
                const float s = embc_e8m0(rec[k], 0);                                          \
                const int i1 = i0 + f->block < dim ? i0 + f->block : dim;                      \
                for (int i = i0; i < i1; i++) OP(acc[i], lut[c[i]] * s);                       \
            }                                                                                  \
            break; }                                                                           \
        case EMBC_MXINT8: {                                                                    \
            /* code k means k / 64: fold the 2^-6 into the exact power-of-two scale */         \
            const int8_t *c = (const int8_t *)(rec + f->nb);                                   \
            for (int k = 0, i0 = 0; k < f->nb; k++, i0 += f->block) {                          \
                const float s = embc_e8m0(rec[k], 6);                                          \
                const int i1 = i0 + f->block < dim ? i0 + f->block : dim;                      \
                for (int i = i0; i < i1; i++) OP(acc[i], (float)c[i] * s);                     \
            }                                                                                  \
            break; }                                                                           \
        case EMBC_MX_LUT_BITS: {                                                               \
            const uint8_t *c = rec + f->nb;                                                    \
            const float *lut = f->lut;                                                         \
            const int bits = f->bits;                                                          \
            for (int k = 0, i0 = 0; k < f->nb; k++, i0 += f->block) {                          \
                const float s = embc_e8m0(rec[k], 0);                                          \
                const int i1 = i0 + f->block < dim ? i0 + f->block : dim;                      \
                if (bits == 4) {                                                               \
                    for (int i = i0; i < i1; i++)                                              \
                        OP(acc[i], lut[(c[i >> 1] >> ((i & 1) * 4)) & 15] * s);                \
                } else {                                                                       \
                    for (int i = i0; i < i1; i++) OP(acc[i], lut[embc_code(c, i, bits)] * s);  \
                }                                                                              \
            }                                                                                  \
            break; }                                                                           \
        case EMBC_BDR: {                                                                       \
            /* value = (-1)^sign * mag * 2^(e - micro - (b - 2)), e the block's shared        \
               exponent, micro the pair's microexponent bit */                                 \
            const int b = f->bits, nb = f->nb;                                                 \
            const unsigned mag_mask = (1u << (b - 1)) - 1u;                                    \
            const int64_t block_bytes = (int64_t)b * f->block / 8;                             \
            for (int k = 0, i0 = 0; k < nb; k++, i0 += f->block) {                             \
                const uint8_t *c = rec + 2 * nb + k * block_bytes;                             \
                const uint8_t micro = rec[nb + k];                                             \
                const float s0 = embc_e8m0(rec[k], b - 2), s1 = embc_e8m0(rec[k], b - 1);      \
                const int n = (i0 + f->block < dim ? i0 + f->block : dim) - i0;                \
                for (int i = 0; i < n; i++) {                                                  \
                    const unsigned code = embc_code(c, i, b);                                  \
                    const float m = (float)(code & mag_mask);                                  \
                    const float v = (code >> (b - 1)) ? -m : m;                                \
                    OP(acc[i0 + i], v * ((micro >> (i >> 1)) & 1 ? s1 : s0));                  \
                }                                                                              \
            }                                                                                  \
            break; }                                                                           \
        }                                                                                      \
    }

    EMBC_DEFINE_ROW(add, EMBC_OP_ADD)
    EMBC_DEFINE_ROW(wadd, EMBC_OP_WADD)
    EMBC_DEFINE_ROW(set, EMBC_OP_SET)
    EMBC_DEFINE_ROW(max, EMBC_OP_MAX)

    /* Sum pooling fuses each MX chunk's block scale into the accumulation, acc = x * s + acc in
       one fused multiply-add (AVX-512 and AVX2 paths), where the product x * s is exact and so rounds nowhere: then the
       fused result is the sum of the rounded product, as the reference computes it. The product
       of an element and a power-of-two scale is exact unless it overflows or falls below the
       float32 subnormal grid. FP8 rows on the shifts path have scale bytes at most 127 + bias
       (larger ones take the element table), so their products stay below 2^(9 + 7) (E4M3) or
       2^(16 + 15) (E5M2); an mxint8 row qualifies when its scale bytes are at most 253
       (128 / 64 * 2^126 = 2^127), an FP4 row at most 252 (6 * 2^125 < 2^128); NaN scale bytes
       (255) multiply, then add, too. The smallest products are 2^-133 (mxint8), 2^-136 (E4M3),
       2^-143 (E5M2) and 2^-128 (FP4), all on the grid. */
    #define EMBC_MXINT8_FMA_MAX_SCALE 253
    #define EMBC_FP4_FMA_MAX_SCALE 252

    /* The pooling operation a vector decoder applies (AVX-512 and AVX2 alike). */
    #define EMBC_V_ADD 0
    #define EMBC_V_WADD 1
    #define EMBC_V_SET 2
    #define EMBC_V_MAX 3

    /* ---- AVX-512 decoders: 16 values at a time, the same IEEE operations as the scalar
       decoders above (exact conversions, then one multiply by an exact power-of-two scale, or
       code * scale then + bias), so every path gives the same bits. Masked loads never read
       past a row record; masked stores never write past dim. */
    #if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    #include <immintrin.h>
    #define EMBC_HAVE_SIMD 1

    static inline __mmask16 embc_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

    /* Lane i of the result: code i of a little-endian stream of `bits`-wide codes (bits <= 8)
       starting at p, for the lanes in m; reads only the bytes those codes occupy. */
    static inline __m512i embc_codes(const uint8_t *p, int bits, __mmask16 m) {
        const int n = 32 - __builtin_clz((unsigned)m);           /* lanes used: codes 0..n-1 */
        const int nbytes = (n * bits + 7) >> 3;
        const __m128i raw = _mm_maskz_loadu_epi8(embc_mask(nbytes), p);
        const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i bit = _mm512_mullo_epi32(lane, _mm512_set1_epi32(bits));
        /* bytes byte(i) and byte(i) + 1 of each lane, via a 16-byte table lookup */
        const __m512i byte = _mm512_srli_epi32(bit, 3);
        const __m128i b0 = _mm512_cvtepi32_epi8(byte);
        const __m128i b1 = _mm_add_epi8(b0, _mm_set1_epi8(1));
        const __m512i lo = _mm512_cvtepu8_epi32(_mm_shuffle_epi8(raw, b0));
        const __m512i hi = _mm512_cvtepu8_epi32(_mm_shuffle_epi8(raw, b1));
        const __m512i word = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 8));
        const __m512i sh = _mm512_and_si512(bit, _mm512_set1_epi32(7));
        return _mm512_and_si512(_mm512_srlv_epi32(word, sh), _mm512_set1_epi32((1 << bits) - 1));
    }

    static inline __attribute__((always_inline)) void embc_vop(float *acc, __m512 v, __m512 wv, __mmask16 m, const int op) {
        /* Full chunks use plain loads and stores: a masked store does not forward to the next
           row's load of the same accumulator, which would stall every row. */
        const int full = m == (__mmask16)0xFFFF;
        if (op == EMBC_V_SET) {
            if (full) _mm512_storeu_ps(acc, v); else _mm512_mask_storeu_ps(acc, m, v);
            return;
        }
        const __m512 a = full ? _mm512_loadu_ps(acc) : _mm512_maskz_loadu_ps(m, acc);
        __m512 r;
        if (op == EMBC_V_ADD) r = _mm512_add_ps(a, v);
        else if (op == EMBC_V_WADD) r = _mm512_add_ps(a, _mm512_mul_ps(wv, v));
        else {  /* v where v > a (ordered: never a NaN v), else a */
            r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, a, _CMP_GT_OQ), a, v);
        }
        if (full) _mm512_storeu_ps(acc, r); else _mm512_mask_storeu_ps(acc, m, r);
    }

    static inline __attribute__((always_inline)) void embc_row_simd(const embc_fmt *f, const uint8_t *restrict rec,
                                                                    __m512 wv, float *restrict acc, const int op) {
        const int dim = f->dim;
        switch (f->kind) {
        case EMBC_FP32:
            for (int i = 0; i < dim; i += 16) {
                const __mmask16 m = embc_mask(dim - i);
                embc_vop(acc + i, _mm512_maskz_loadu_ps(m, rec + 4 * i), wv, m, op);
            }
            break;
        case EMBC_FP16:
            for (int i = 0; i < dim; i += 16) {
                const __mmask16 m = embc_mask(dim - i);
                embc_vop(acc + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, rec + 2 * i)), wv, m, op);
            }
            break;
        case EMBC_BF16:
            for (int i = 0; i < dim; i += 16) {
                const __mmask16 m = embc_mask(dim - i);
                const __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, rec + 2 * i));
                embc_vop(acc + i, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)), wv, m, op);
            }
            break;
        case EMBC_INT8_ROW: case EMBC_INT4_ROW: case EMBC_INT2_ROW: {
            const int bits = f->kind == EMBC_INT8_ROW ? 8 : f->kind == EMBC_INT4_ROW ? 4 : 2;
            const float s_ = bits == 8 ? embc_f32(embc_u32(rec)) : embc_half(embc_u16(rec));
            const float b_ = bits == 8 ? embc_f32(embc_u32(rec + 4)) : embc_half(embc_u16(rec + 2));
            const __m512 s = _mm512_set1_ps(s_), b = _mm512_set1_ps(b_);
            const uint8_t *c = rec + (bits == 8 ? 8 : 4);
            for (int i = 0; i < dim; i += 16) {
                const __mmask16 m = embc_mask(dim - i);
                const __m512i k = bits == 8 ? _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, c + i))
                                            : embc_codes(c + i * bits / 8, bits, m);
                embc_vop(acc + i, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(k), s), b), wv, m, op);
            }
            break; }
        case EMBC_MX_LUT8: case EMBC_MXINT8: case EMBC_MX_LUT_BITS: {
            const uint8_t *c = rec + f->nb;
            const int bits = f->kind == EMBC_MX_LUT_BITS ? f->bits : 8;
            const __m512 lut16 = bits == 4 ? _mm512_loadu_ps(f->lut) : _mm512_setzero_ps();
            for (int k = 0, i0 = 0; k < f->nb; k++, i0 += f->block) {
                const __m512 s = _mm512_set1_ps(embc_e8m0(rec[k], f->kind == EMBC_MXINT8 ? 6 : 0));
                const int i1 = i0 + f->block < dim ? i0 + f->block : dim;
                for (int i = i0; i < i1; i += 16) {
                    const __mmask16 m = embc_mask(i1 - i);
                    __m512 v;
                    if (f->kind == EMBC_MXINT8) {
                        v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, c + i)));
                    } else if (bits == 8) {
                        const __m512i k8 = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, c + i));
                        v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, k8, f->lut, 4);
                    } else if (bits == 4) {
                        v = _mm512_permutexvar_ps(embc_codes(c + i / 2, 4, m), lut16);
                    } else {
                        v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, embc_codes(c + (int64_t)i * bits / 8, bits, m), f->lut, 4);
                    }
                    embc_vop(acc + i, _mm512_mul_ps(v, s), wv, m, op);
                }
            }
            break; }
        case EMBC_BDR: {
            const int b = f->bits, nb = f->nb;
            const int64_t block_bytes = (int64_t)b * f->block / 8;
            const __m512i mag_mask = _mm512_set1_epi32((1 << (b - 1)) - 1);
            for (int k = 0, i0 = 0; k < nb; k++, i0 += f->block) {
                const uint8_t *c = rec + 2 * nb + k * block_bytes;
                const unsigned micro = rec[nb + k];
                unsigned spread = 0;  /* lane mask: lanes 2j and 2j + 1 take microexponent bit j */
                for (int j = 0; j < 8; j++) spread |= ((micro >> j) & 1u) * (3u << (2 * j));
                const __m512 sc = _mm512_mask_blend_ps((__mmask16)spread, _mm512_set1_ps(embc_e8m0(rec[k], b - 2)),
                                                       _mm512_set1_ps(embc_e8m0(rec[k], b - 1)));
                const int n = (i0 + f->block < dim ? i0 + f->block : dim) - i0;
                const __mmask16 m = embc_mask(n);  /* blocks are 8 or 16 elements */
                const __m512i code = embc_codes(c, b, m);
                const __m512i sign = _mm512_slli_epi32(_mm512_srli_epi32(code, b - 1), 31);
                const __m512 mag = _mm512_cvtepi32_ps(_mm512_and_si512(code, mag_mask));
                const __m512 v = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(mag), sign));
                embc_vop(acc + i0, _mm512_mul_ps(v, sc), wv, m, op);
            }
            break; }
        }
    }
    #else
    #define EMBC_HAVE_SIMD 0
    #endif

    /* ---- AVX2 row decoder, for CPUs without AVX-512 (AMD Zen 2 and 3, Intel client cores): 8
       values at a time, the scalar decoders' own operations (exact conversions, code * scale,
       or code * scale + bias, then the pooling's add), so the same bits. Only for layouts whose
       dim and blocks are whole chunks of 8 (embc_prepare), and the common families; the others
       keep the scalar decoders. */
    #if !EMBC_HAVE_SIMD && defined(__AVX2__) && defined(__F16C__)
    #include <immintrin.h>
    #define EMBC_HAVE_AVX2 1
    #if defined(__FMA__)
    #define EMBC_AVX2_FMA 1
    #else
    #define EMBC_AVX2_FMA 0
    /* (where fuse is 0, never taken; row-wise int4's exact products round the same either way) */
    #define _mm256_fmadd_ps(a, b, c) _mm256_add_ps(_mm256_mul_ps((a), (b)), (c))
    #endif
    static inline __attribute__((always_inline)) void embc_vop8(float *acc, __m256 v, __m256 wv, const int op) {
        if (op == EMBC_V_SET) { _mm256_storeu_ps(acc, v); return; }
        const __m256 a = _mm256_loadu_ps(acc);
        __m256 r;
        if (op == EMBC_V_ADD) r = _mm256_add_ps(a, v);
        else if (op == EMBC_V_WADD) r = _mm256_add_ps(a, _mm256_mul_ps(wv, v));
        else r = _mm256_blendv_ps(a, v, _mm256_cmp_ps(v, a, _CMP_GT_OQ));  /* v where v > a (never a NaN v) */
        _mm256_storeu_ps(acc, r);
    }
    /* 8 nibbles of 4 bytes, low nibble first, one a lane */
    static inline __m256i embc_nibbles8(const uint8_t *p) {
        const __m128i x = _mm_cvtsi32_si128((int)embc_u32(p));
        const __m256i b = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(x, x));
        return _mm256_and_si256(_mm256_srlv_epi32(b, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)), _mm256_set1_epi32(15));
    }
    static inline __m256 embc_load8_i8(const uint8_t *p) {
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    }
    static inline __m256i embc_load8_u8(const uint8_t *p) {
        return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    }
    static int embc_avx2_takes(const embc_fmt *f) {
        if (f->dim % 8) return 0;
        switch (f->kind) {
        case EMBC_FP32: case EMBC_FP16: case EMBC_BF16: case EMBC_INT8_ROW: case EMBC_INT4_ROW: return 1;
        case EMBC_MX_LUT8: case EMBC_MXINT8: return f->block % 8 == 0;
        case EMBC_MX_LUT_BITS: return f->bits == 4 && f->block % 8 == 0;
        default: return 0;
        }
    }
    static inline __attribute__((always_inline)) void embc_row_avx2(const embc_fmt *f, const uint8_t *restrict rec,
                                                                    float w, float *restrict acc, const int op) {
        const int dim = f->dim;
        const __m256 wv = _mm256_set1_ps(w);
        switch (f->kind) {
        case EMBC_FP32:
            for (int i = 0; i < dim; i += 8) embc_vop8(acc + i, _mm256_loadu_ps((const float *)(rec + 4 * i)), wv, op);
            break;
        case EMBC_FP16:
            for (int i = 0; i < dim; i += 8)
                embc_vop8(acc + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rec + 2 * i))), wv, op);
            break;
        case EMBC_BF16:
            for (int i = 0; i < dim; i += 8) {
                const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(rec + 2 * i)));
                embc_vop8(acc + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)), wv, op);
            }
            break;
        case EMBC_INT8_ROW: case EMBC_INT4_ROW: {
            const int eight = f->kind == EMBC_INT8_ROW;
            const __m256 s = _mm256_set1_ps(eight ? embc_f32(embc_u32(rec)) : embc_half(embc_u16(rec)));
            const __m256 b = _mm256_set1_ps(eight ? embc_f32(embc_u32(rec + 4)) : embc_half(embc_u16(rec + 2)));
            const uint8_t *c = rec + (eight ? 8 : 4);
            for (int i = 0; i < dim; i += 8) {
                const __m256i k = eight ? embc_load8_u8(c + i) : embc_nibbles8(c + i / 2);
                embc_vop8(acc + i, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(k), s), b), wv, op);
            }
            break; }
        case EMBC_MX_LUT8: case EMBC_MXINT8: case EMBC_MX_LUT_BITS: {
            const uint8_t *c = rec + f->nb;
            /* (4-bit codes: 16 entries; the other families' tables are shorter or absent) */
            const __m256 lo = f->kind == EMBC_MX_LUT_BITS ? _mm256_loadu_ps(f->lut) : _mm256_setzero_ps();
            const __m256 hi = f->kind == EMBC_MX_LUT_BITS ? _mm256_loadu_ps(f->lut + 8) : lo;
            for (int k = 0, i0 = 0; k < f->nb; k++, i0 += f->block) {
                const __m256 s = _mm256_set1_ps(embc_e8m0(rec[k], f->kind == EMBC_MXINT8 ? 6 : 0));
                const int i1 = i0 + f->block < dim ? i0 + f->block : dim;
                for (int i = i0; i < i1; i += 8) {
                    __m256 v;
                    if (f->kind == EMBC_MXINT8) {
                        v = embc_load8_i8(c + i);
                    } else if (f->kind == EMBC_MX_LUT8) {
                        v = _mm256_i32gather_ps(f->lut, embc_load8_u8(c + i), 4);
                    } else {  /* entry code & 7 of the low or (bit 3, moved to the sign) the high half */
                        const __m256i code = embc_nibbles8(c + i / 2);
                        v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, code), _mm256_permutevar8x32_ps(hi, code),
                                             _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));
                    }
                    embc_vop8(acc + i, _mm256_mul_ps(v, s), wv, op);
                }
            }
            break; }
        }
    }
    #else
    #define EMBC_HAVE_AVX2 0
    #endif

    /* Prefetch each cache line of a row record exactly once: the lines at p, p + 64, ... (one per
       64 bytes of the record), and the line of its last byte only when the record's offset in
       its first line pushes it into one line more (a predictable branch: records of one table
       share their offsets' pattern). A second prefetch of a line already asked for is not free:
       with it (68- and 132-byte records took 3 and 4 prefetches instead of 2 and 3) the kernel
       harness measured 5-10 % fewer rows a second on a 2,000,000-row table. */
    #define EMBC_PREFETCH_LINES(PF, p, row_bytes) do {                                          \
            const uint8_t *p_ = (const uint8_t *)(p);                                           \
            const int64_t rb_ = (row_bytes);                                                    \
            PF(p_);                                                                             \
            if (rb_ > 64) PF(p_ + 64);                                                          \
            if (rb_ > 128) PF(p_ + 128);                                                        \
            for (int64_t o_ = 192; o_ < rb_; o_ += 64) PF(p_ + o_);                             \
            if ((int64_t)((uintptr_t)p_ & 63) + rb_ - 1 >= ((rb_ + 63) & ~(int64_t)63))          \
                PF(p_ + rb_ - 1);                                                               \
        } while (0)
    /* always_inline: a function holding only prefetches has no effect GCC can see, so where it
       was not inlined before GCC's pure-function analysis, every call to it was deleted as dead
       code (the general decoders' loop and embc_bags' first rows ran without prefetching). */
    static inline __attribute__((always_inline)) void embc_prefetch_row(const uint8_t *p, int64_t row_bytes) {
        EMBC_PREFETCH_LINES(EMBC_PREFETCH, p, row_bytes);
    }
    static inline __attribute__((always_inline)) void embc_prefetch_row_near(const uint8_t *p, int64_t row_bytes) {
        EMBC_PREFETCH_LINES(EMBC_PREFETCH_NEAR, p, row_bytes);
    }

    /* The fast paths' prefetches at index j: the row EMBC_PREFETCH_ROWS ahead into L2, the row
       EMBC_PREFETCH_NEAR_ROWS ahead on into L1 (up to n_idx, the end of this thread's run). */
    static inline __attribute__((always_inline)) void embc_prefetch_ahead(const uint8_t *data, const int64_t *idx,
                                                                          int64_t j, int64_t n_idx, int64_t rb) {
        if (j + EMBC_PREFETCH_ROWS < n_idx) embc_prefetch_row(data + idx[j + EMBC_PREFETCH_ROWS] * rb, rb);
        if (j + EMBC_PREFETCH_NEAR_ROWS < n_idx) embc_prefetch_row_near(data + idx[j + EMBC_PREFETCH_NEAR_ROWS] * rb, rb);
    }

    #if EMBC_HAVE_SIMD

    /* ---- Fast paths (dim a multiple of 16; MX blocks of 16 * 2^k): the bag's accumulators for
       G = 1, 2, 4 or 8 chunks of 16 values stay in registers while all its rows stream past, the
       row data of later chunk groups coming from L1. Same per-element operation order. */
    #define EMBC_K_FP4 100  /* mxfp4_e2m1: MX_LUT_BITS with 4-bit codes */
    #define EMBC_K_FP8 101  /* MX_LUT8 decoded by shifts (fp8_arith), 3 mantissa bits (E4M3) */
    #define EMBC_K_FP8_M2 102  /* the same, 2 mantissa bits (E5M2) */

    /* FP8 by shifts: the sign-extended code shifted left by 23 - mbits and masked keeps the sign
       at bit 31 and puts the magnitude bits under a float32's exponent field, which reads as
       2^(bias - 127) times the element value (exponent field 0 gives float subnormals, which
       scale exactly); times sc = 2^(127 - bias) times the block scale (f->scales8), that is the
       element value times the block scale in one exact product, as the table path gives.
       Inf/NaN codes, and scale bytes whose sc would overflow, are the caller's. */
    static inline __attribute__((always_inline)) __m512 embc_fp8_bits(__m128i x, const int SH) {
        return _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(_mm512_cvtepi8_epi32(x), SH),
                                                    _mm512_set1_epi32((int)(0x80000000u | (0x7Fu << SH)))));
    }

    #if defined(__GFNI__) && defined(__AVX512VBMI__)
    #define EMBC_HAVE_FP8_GF 1
    /* The same float32 bits by a GF(2) affine map and a byte permute: those bits are zero but
       for bytes 2 and 3, and each of their bits is one bit of the code (a bit permutation), so
       one affine instruction maps 32 codes to byte 2's bits in the low 256 bits of a vector and
       to byte 3's in the high 256, and one byte permute a chunk puts them in place. Three vector
       operations a chunk (half an affine, a permute, the multiply-add) instead of four (widen,
       shift, mask, multiply-add) on the two vector ports. Matrix row 7 - i gives output bit i. */
    static inline __attribute__((always_inline)) uint64_t embc_fp8_gf_matrix(const int SH, const int byte) {
        uint64_t a = 0;
        for (int i = 0; i < 8; i++) {
            const int fb = 8 * byte + i, p = fb == 31 ? 7 : (fb >= SH && fb < SH + 7 ? fb - SH : -1);
            if (p >= 0) a |= (uint64_t)1 << (8 * (7 - i) + p);
        }
        return a;
    }
    /* Chunks 0 .. G - 1 (16 codes each, from cb) as embc_fp8_bits gives them. */
    static inline __attribute__((always_inline)) void embc_fp8_gf(const uint8_t *cb, const int G, const int SH, __m512 *v) {
        const uint64_t m2 = embc_fp8_gf_matrix(SH, 2), m3 = embc_fp8_gf_matrix(SH, 3);
        const __m512i A = _mm512_set_epi64((long long)m3, (long long)m3, (long long)m3, (long long)m3,
                                           (long long)m2, (long long)m2, (long long)m2, (long long)m2);
        /* dword i of chunk 0 (1): byte 2 from byte i (16 + i), byte 3 from byte 32 + i (48 + i) */
        const __m512i i0 = _mm512_setr_epi32(0x20000000, 0x21010000, 0x22020000, 0x23030000, 0x24040000, 0x25050000,
                                             0x26060000, 0x27070000, 0x28080000, 0x29090000, 0x2A0A0000, 0x2B0B0000,
                                             0x2C0C0000, 0x2D0D0000, 0x2E0E0000, 0x2F0F0000);
        const __m512i i1 = _mm512_add_epi8(i0, _mm512_set1_epi32(0x10100000));
        const __mmask64 hi2 = 0xCCCCCCCCCCCCCCCCull;  /* bytes 2 and 3 of every dword */
        int g = 0;
        for (; g + 1 < G; g += 2) {
            const __m512i t = _mm512_gf2p8affine_epi64_epi8(
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(cb + 16 * g))), A, 0);
            v[g] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi8(hi2, i0, t));
            v[g + 1] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi8(hi2, i1, t));
        }
        if (g < G) {  /* one chunk: its 16 codes in every 128-bit lane, so bytes i and 32 + i again */
            const __m512i t = _mm512_gf2p8affine_epi64_epi8(
                _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(cb + 16 * g))), A, 0);
            v[g] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi8(hi2, i0, t));
        }
    }
    #endif

    /* The block scale of chunk g of a pass: sb points at the scale byte of the pass's first
       block; CS is log2(block / 16) when known at compile time (block 32: 1), else -1 (read
       from f). */
    #define EMBC_SCALE_OF(g) sarr[sb[CS >= 0 ? (g) >> (CS >= 0 ? CS : 0) : (g) >> f->cshift]]
    /* Chunk g of a pass (16 values) of a row, cb pointing at the pass's first code byte (see
       embc_pass_base); for the MX kinds the element values before their block scale. */
    static inline __attribute__((always_inline)) __m512 embc_dec(const embc_fmt *f, const uint8_t *cb, const int g,
                                                                 const int kind, __m512 s, __m512 b, __m512 lut16) {
        switch (kind) {
        case EMBC_FP32: return _mm512_loadu_ps(cb + 64 * g);
        case EMBC_FP16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(cb + 32 * g)));
        case EMBC_BF16:
            return _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(cb + 32 * g))), 16));
        case EMBC_INT8_ROW:
            return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                _mm_loadu_si128((const __m128i *)(cb + 16 * g)))), s), b);
        case EMBC_INT4_ROW: {
            /* 4-bit kinds keep each group of 32 values as two chunks, the even elements (low
               nibbles, chunk 2m) and the odd ones (high nibbles, chunk 2m + 1), so one byte load
               serves both; the bag's output is interleaved back when stored. */
            const __m512i k = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cb + 16 * (g >> 1))));
            const __m512i nib = _mm512_and_si512(g & 1 ? _mm512_srli_epi32(k, 4) : k, _mm512_set1_epi32(15));
            return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(nib), s), b); }
        case EMBC_MXINT8:
            return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(cb + 16 * g))));
        case EMBC_MX_LUT8:
            return _mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cb + 16 * g))), f->lut, 4);
        default: { /* EMBC_K_FP4: even / odd chunks as for EMBC_INT4_ROW; the table permute reads
                      only the low 4 bits of each lane */
            const __m512i k = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(cb + 16 * (g >> 1))));
            return _mm512_permutexvar_ps(g & 1 ? _mm512_srli_epi32(k, 4) : k, lut16); }
        }
    }

    /* Where the code bytes of chunk c0 (a pass's first) start in a row record. */
    static inline __attribute__((always_inline)) const uint8_t *embc_pass_base(const embc_fmt *f, const uint8_t *rec,
                                                                               int c0, const int kind) {
        switch (kind) {
        case EMBC_FP32: return rec + (int64_t)64 * c0;
        case EMBC_FP16: case EMBC_BF16: return rec + (int64_t)32 * c0;
        case EMBC_INT8_ROW: return rec + 8 + (int64_t)16 * c0;
        case EMBC_INT4_ROW: return rec + 4 + (int64_t)8 * c0;
        case EMBC_K_FP4: return rec + f->nb + (int64_t)8 * c0;
        default: return rec + f->nb + (int64_t)16 * c0;  /* MXINT8, MX_LUT8, K_FP8, K_FP8_M2 */
        }
    }

    /* Chunks c0 .. c0 + G - 1 of an FP8 row decoded by the element table, for passes holding
       Inf/NaN codes (kept out of line: the hot loop then keeps its accumulators in registers). */
    static __attribute__((noinline)) void embc_fp8_table(const embc_fmt *f, const uint8_t *rec, const float *sarr,
                                                         int c0, int G, __m512 *v) {
        const uint8_t *cb = rec + f->nb + (int64_t)16 * c0, *sb = rec + (c0 >> f->cshift);
        const __m512 z = _mm512_setzero_ps();
        for (int g = 0; g < G; g++)
            v[g] = _mm512_mul_ps(embc_dec(f, cb, g, EMBC_MX_LUT8, z, z, z), _mm512_set1_ps(sarr[sb[g >> f->cshift]]));
    }


    /* OPM: 0 for sum and mean, 1 for weighted sums and max (a run-time choice by mode and w). */
    static inline __attribute__((always_inline)) void embc_bag_fast(
            const embc_fmt *f, const uint8_t *data, const int64_t *idx, int64_t start, int64_t end,
            int64_t n_idx, const float *w, int mode, float *restrict out, const int kind, const int G,
            const int CS, const int OPM) {
        const int64_t rb = f->row_bytes;
        const int nc = f->dim / 16;
        const int mx = kind == EMBC_MXINT8 || kind == EMBC_MX_LUT8 || kind == EMBC_K_FP4
                       || kind == EMBC_K_FP8 || kind == EMBC_K_FP8_M2;
        const int nsb = CS >= 0 ? ((G - 1) >> (CS >= 0 ? CS : 0)) + 1 : ((G - 1) >> f->cshift) + 1;  /* scale bytes a pass */
        const __m512 lut16 = kind == EMBC_K_FP4 ? _mm512_loadu_ps(f->lut) : _mm512_setzero_ps();
        /* E8M0 byte -> block scale, by table: a load and a broadcast per chunk instead of vector
           arithmetic per row (mxint8 folds its 2^-6 in; FP8 on shifts 2^(127 - bias)) */
        const float *sarr = kind == EMBC_MXINT8 ? f->scales6
                          : (kind == EMBC_K_FP8 || kind == EMBC_K_FP8_M2) ? f->scales8 : f->scales;
        for (int c0 = 0; c0 < nc; c0 += G) {
            __m512 acc[8];
            for (int g = 0; g < G; g++) acc[g] = _mm512_setzero_ps();
            for (int64_t j = start; j < end; j++) {
                if (c0 == 0) embc_prefetch_ahead(data, idx, j, n_idx, rb);
                const uint8_t *rec = data + idx[j] * rb;
                __m512 s = _mm512_setzero_ps(), b = _mm512_setzero_ps();
                if (kind == EMBC_INT8_ROW) {
                    s = _mm512_set1_ps(embc_f32(embc_u32(rec)));
                    b = _mm512_set1_ps(embc_f32(embc_u32(rec + 4)));
                } else if (kind == EMBC_INT4_ROW) {
                    s = _mm512_set1_ps(embc_half(embc_u16(rec)));
                    b = _mm512_set1_ps(embc_half(embc_u16(rec + 2)));
                }
                /* v: the chunks' values; for the MX kinds (scaled = 0) before their block scales sc */
                __m512 v[8], sc[8];
                int scaled = !mx;
                const uint8_t *cb = embc_pass_base(f, rec, c0, kind);
                const uint8_t *sb = rec + (c0 >> (CS >= 0 ? CS : f->cshift));
                if (mx)
                    for (int g = 0; g < G; g++) sc[g] = _mm512_set1_ps(EMBC_SCALE_OF(g));
                if (kind == EMBC_K_FP8 || kind == EMBC_K_FP8_M2) {
                    /* decode by shifts; a pass holding an Inf/NaN code, or a scale byte too
                       large to fold (or NaN: shifted so that it compares as an Inf/NaN code), is
                       decoded again through the element table. The codes are checked 64 at a
                       time, not per chunk: two vector operations a 64 instead of eight. */
                    const __m512i special = _mm512_set1_epi8((char)f->fp8_special);
                    __mmask64 bad = _mm_cmpge_epu8_mask(
                        _mm_subs_epu8(_mm_maskz_loadu_epi8(embc_mask(nsb), sb), _mm_set1_epi8((char)f->fp8_scale_adj)),
                        _mm512_castsi512_si128(special));
                    for (int o = 0; o < 16 * G; o += 64) {
                        const __mmask64 m = 16 * G - o >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (16 * G - o)) - 1);
                        const __m512i x = _mm512_maskz_loadu_epi8(m, cb + o);
                        bad |= _mm512_cmpge_epu8_mask(_mm512_and_si512(x, _mm512_set1_epi8(0x7F)), special);
                    }
                    #ifdef EMBC_HAVE_FP8_GF
                    embc_fp8_gf(cb, G, kind == EMBC_K_FP8 ? 20 : 21, v);
                    #else
                    for (int g = 0; g < G; g++)
                        v[g] = embc_fp8_bits(_mm_loadu_si128((const __m128i *)(cb + 16 * g)), kind == EMBC_K_FP8 ? 20 : 21);
                    #endif
                    if (bad) {
                        __m512 vt[8];  /* not v itself: its address taken, v would live in memory */
                        embc_fp8_table(f, rec, f->scales, c0, G, vt);
                        for (int g = 0; g < G; g++) v[g] = vt[g];
                        scaled = 1;
                    }
                } else {
                    for (int g = 0; g < G; g++) v[g] = embc_dec(f, cb, g, kind, s, b, lut16);
                }
                int fuse = OPM == 0 && !scaled && kind != EMBC_MX_LUT8;
                if (fuse && (kind == EMBC_K_FP4 || kind == EMBC_MXINT8))
                    fuse = !_mm_cmpgt_epu8_mask(_mm_maskz_loadu_epi8(embc_mask(nsb), sb), _mm_set1_epi8(
                        (char)(kind == EMBC_K_FP4 ? EMBC_FP4_FMA_MAX_SCALE : EMBC_MXINT8_FMA_MAX_SCALE)));
                if (fuse) {
                    for (int g = 0; g < G; g++) acc[g] = _mm512_fmadd_ps(v[g], sc[g], acc[g]);
                    continue;
                }
                if (!scaled)
                    for (int g = 0; g < G; g++) v[g] = _mm512_mul_ps(v[g], sc[g]);
                if (OPM == 0) {
                    for (int g = 0; g < G; g++) acc[g] = _mm512_add_ps(acc[g], v[g]);
                } else if (mode == EMBC_MAX) {
                    if (j == start) {
                        for (int g = 0; g < G; g++) acc[g] = v[g];
                    } else {
                        for (int g = 0; g < G; g++)
                            acc[g] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v[g], acc[g], _CMP_GT_OQ), acc[g], v[g]);
                    }
                } else {
                    const __m512 wv = _mm512_set1_ps(w[j]);
                    for (int g = 0; g < G; g++) acc[g] = _mm512_add_ps(acc[g], _mm512_mul_ps(wv, v[g]));
                }
            }
            if (mode == EMBC_MEAN && end > start) {
                const __m512 n = _mm512_set1_ps((float)(end - start));
                for (int g = 0; g < G; g++) acc[g] = _mm512_div_ps(acc[g], n);
            }
            if ((kind == EMBC_INT4_ROW || kind == EMBC_K_FP4) && G >= 2) {  /* even / odd chunks back to element order */
                const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
                const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
                for (int g = 0; g < G; g += 2) {
                    _mm512_storeu_ps(out + 16 * (c0 + g), _mm512_permutex2var_ps(acc[g], lo, acc[g + 1]));
                    _mm512_storeu_ps(out + 16 * (c0 + g + 1), _mm512_permutex2var_ps(acc[g], hi, acc[g + 1]));
                }
            } else {
                for (int g = 0; g < G; g++) _mm512_storeu_ps(out + 16 * (c0 + g), acc[g]);
            }
        }
    }

    #if defined(__AVX512VBMI__)
    #define EMBC_HAVE_FP4T 1
    /* mxfp4_e2m1 sum and mean, blocks of 32, dim a multiple of 128, by whole 64-byte code lines:
       a pass takes 128 values, 16 code dwords of 8 nibbles each, as 8 vectors: vector k holds
       nibble k of every dword (the dwords shifted right by 4k; the table permute reads the low
       4 bits), so lane i of vector k is value 8i + k. One load and 8 permutes a row, against 4
       loads, 4 widenings and 8 permutes in even/odd chunks; every lane of every vector lies in
       block i / 4, so one scale vector serves the row. The same operations as the chunked path
       per value (see EMBC_FP4_FMA_MAX_SCALE), in another lane order, undone when stored. */
    static __attribute__((noinline)) __m512 embc_fp4t_scales(const float *sarr, const uint8_t *sb) {
        /* scale bytes outside [1, 252]: 0 (2^-127, subnormal), 253-254 (too large to fuse), NaN */
        const __m512i lane = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        return _mm512_permutexvar_ps(lane, _mm512_castps128_ps512(
            _mm_setr_ps(sarr[sb[0]], sarr[sb[1]], sarr[sb[2]], sarr[sb[3]])));
    }
    static void embc_bag_fp4t(const embc_fmt *f, const uint8_t *data, const int64_t *idx, int64_t start,
                              int64_t end, int64_t n_idx, int mode, float *restrict out) {
        const int64_t rb = f->row_bytes;
        const __m512 lut16 = _mm512_loadu_ps(f->lut);
        /* dword lane i <- scale byte i >> 2, zero-extended (the other bytes masked off) */
        const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        for (int p = 0; p < f->dim / 128; p++) {
            __m512 acc[8];
            for (int k = 0; k < 8; k++) acc[k] = _mm512_setzero_ps();
            for (int64_t j = start; j < end; j++) {
                if (p == 0) embc_prefetch_ahead(data, idx, j, n_idx, rb);
                const uint8_t *rec = data + idx[j] * rb;
                const uint8_t *sb = rec + 4 * p;
                const __m512i x = _mm512_loadu_si512((const void *)(rec + f->nb + 64 * p));
                const __m128i sv = _mm_cvtsi32_si128((int)embc_u32(sb));
                /* scale bytes in [1, 252]: 2^(b - 127) has the float bits b << 23, and every
                   product is exact, so the fused multiply-add rounds as multiply, then add */
                if (__builtin_expect(!_mm_mask_cmpgt_epu8_mask(0xF, _mm_sub_epi8(sv, _mm_set1_epi8(1)),
                                                               _mm_set1_epi8((char)251)), 1)) {
                    const __m512 sc = _mm512_castsi512_ps(_mm512_slli_epi32(
                        _mm512_maskz_permutexvar_epi8(0x1111111111111111ULL, spread, _mm512_castsi128_si512(sv)), 23));
                    for (int k = 0; k < 8; k++)
                        acc[k] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(x, 4 * k), lut16), sc, acc[k]);
                } else {
                    const __m512 sc = embc_fp4t_scales(f->scales, sb);
                    for (int k = 0; k < 8; k++)
                        acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(x, 4 * k), lut16), sc));
                }
            }
            if (mode == EMBC_MEAN && end > start) {
                const __m512 n = _mm512_set1_ps((float)(end - start));
                for (int k = 0; k < 8; k++) acc[k] = _mm512_div_ps(acc[k], n);
            }
            float tmp[8][16] __attribute__((aligned(64)));
            for (int k = 0; k < 8; k++) _mm512_store_ps(tmp[k], acc[k]);
            float *o = out + 128 * p;
            for (int i = 0; i < 16; i++)
                for (int k = 0; k < 8; k++) o[8 * i + k] = tmp[k][i];
        }
    }
    #endif

    /* The fast kind of f, or -1 when only the general decoders apply. */
    static int embc_fast_kind(const embc_fmt *f) {
        if (f->dim % 16) return -1;
        switch (f->kind) {
        case EMBC_FP32: case EMBC_FP16: case EMBC_BF16: case EMBC_INT8_ROW:
            return f->kind;
        case EMBC_INT4_ROW:  /* even / odd chunk pairs: groups of 32 */
            return f->dim % 32 ? -1 : f->kind;
        case EMBC_MXINT8: case EMBC_MX_LUT8: case EMBC_MX_LUT_BITS:
            if (f->block % 16 || ((f->block / 16) & (f->block / 16 - 1))) return -1;
            if (f->kind == EMBC_MX_LUT_BITS)
                return f->bits == 4 && f->dim % 32 == 0 && f->block % 32 == 0 ? EMBC_K_FP4 : -1;
            if (f->kind == EMBC_MX_LUT8 && f->fp8_arith && (f->fp8_shift == 20 || f->fp8_shift == 21))
                return f->fp8_shift == 20 ? EMBC_K_FP8 : EMBC_K_FP8_M2;
            return f->kind;
        default:
            return -1;
        }
    }

    /* The loop over a run's bags sits inside each specialization: a bag of one or a few rows
       (one-hot features) paid the dispatch to its specialization as much as its rows. */
    #define EMBC_FAST_BAGS(K, G_, CS, OPM) \
        for (int64_t b = b0; b < b1; b++) \
            embc_bag_fast(f, data, idx, offsets[b], offsets[b + 1], n_idx, w, mode, out + b * (int64_t)f->dim, \
                          K, G_, CS, OPM);
    #define EMBC_FAST_GCO(K, CS, OPM) \
        if (G == 8) { EMBC_FAST_BAGS(K, 8, CS, OPM) } \
        else if (G == 4) { EMBC_FAST_BAGS(K, 4, CS, OPM) } \
        else if (G == 2) { EMBC_FAST_BAGS(K, 2, CS, OPM) } \
        else { EMBC_FAST_BAGS(K, 1, CS, OPM) }
    #define EMBC_FAST_GC(K, CS) if (opm) { EMBC_FAST_GCO(K, CS, 1) } else { EMBC_FAST_GCO(K, CS, 0) }
    /* no block scales */
    #define EMBC_FAST_G(K) case K: EMBC_FAST_GC(K, 0) break;
    /* block scales: blocks of 32 (the MX default) with the chunk -> block shift known */
    #define EMBC_FAST_GS(K) case K: if (f->cshift == 1) { EMBC_FAST_GC(K, 1) } else { EMBC_FAST_GC(K, -1) } break;
    /* Bags [b0, b1) of a run (rows up to n_idx, the run's end, prefetched) by the fast path. */
    static void embc_bags_fast_any(const embc_fmt *f, int fast, const uint8_t *data, const int64_t *idx,
                                   const int64_t *offsets, int64_t b0, int64_t b1, int64_t n_idx, const float *w,
                                   int mode, float *out) {
        const int nc = f->dim / 16;
        const int G = nc % 8 == 0 ? 8 : nc % 4 == 0 ? 4 : nc % 2 == 0 ? 2 : 1;
        const int opm = mode == EMBC_MAX || w != NULL;
        switch (fast) {
        EMBC_FAST_G(EMBC_FP32) EMBC_FAST_G(EMBC_FP16) EMBC_FAST_G(EMBC_BF16) EMBC_FAST_G(EMBC_INT8_ROW)
        EMBC_FAST_G(EMBC_INT4_ROW) EMBC_FAST_GS(EMBC_MXINT8) EMBC_FAST_GS(EMBC_MX_LUT8) EMBC_FAST_GS(EMBC_K_FP4)
        EMBC_FAST_GS(EMBC_K_FP8) EMBC_FAST_GS(EMBC_K_FP8_M2)
        }
    }
    #endif

    /* ---- AVX2 bags: a bag's sums stay in G registers of 8 values (a pass over its rows a group
       of 8G values: AVX2 has 16 registers) rather than in memory a row at a time, which was
       3-4x slower. The scalar decoders' operations in the scalar order (each row's value added
       to the running sum, weighted as w * v, the mean divided at the end): the same bits. Max
       keeps the row decoder. K: the family, known at compile time. */
    #if EMBC_HAVE_AVX2
    /* Whether any of the n codes at p (n a multiple of 8) has magnitude code >= first (Inf/NaN):
       FP8 by shifts (see lookup._fp8_params) leaves those to the element table. A magnitude
       (0-127) plus 128 - first (first 0-127: no wrap) has its top bit set exactly when it is
       >= first; the sums are or-ed and their top bits read once. */
    static inline int embc_fp8_special8(const uint8_t *p, int n, int first) {
        const __m256i m7 = _mm256_set1_epi8(0x7F), up = _mm256_set1_epi8((char)(128 - first));
        __m256i any = _mm256_setzero_si256();
        int o = 0;
        for (; o + 32 <= n; o += 32)
            any = _mm256_or_si256(any, _mm256_add_epi8(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + o)), m7), up));
        int bad = _mm256_movemask_epi8(any);
        for (; o < n; o += 8) {
            const __m128i a = _mm_and_si128(_mm_loadl_epi64((const __m128i *)(p + o)), _mm256_castsi256_si128(m7));
            bad |= _mm_movemask_epi8(_mm_add_epi8(a, _mm256_castsi256_si128(up))) & 0xFF;
        }
        return bad;
    }
    /* 16 4-bit codes (8 bytes, low nibble first) -> two chunks of their table values, from tab2,
       the 16 values times 2 as int8 (the E2M1 values times 2 are the integers 0 to 12): a byte
       shuffle a 16 values instead of two float permutes and a blend a chunk. Times half the
       block scale, that is the product the table path takes (the same real number, rounded once). */
    static inline __attribute__((always_inline)) void embc_fp4x16(const uint8_t *p, __m128i tab2, __m256 *v0, __m256 *v1) {
        const __m128i x = _mm_loadl_epi64((const __m128i *)p), m = _mm_set1_epi8(0x0F);
        const __m128i codes = _mm_unpacklo_epi8(_mm_and_si128(x, m), _mm_and_si128(_mm_srli_epi16(x, 4), m));
        const __m128i vals = _mm_shuffle_epi8(tab2, codes);
        *v0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(vals));
        *v1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(vals, 8)));
    }
    /* Hides a pointer's value from the optimizer. Each chunk's bytes are then read at a constant
       displacement from the pass's base pointer (p + 8g): without it GCC reassociated
       rec + (pass offset + 8g), hoisted the G sums out of the row loop, kept them in stack slots
       and reloaded each one a row, which ran 1.5-2x slower (kernel harness, AVX2). */
    #define EMBC_OPAQUE(p) __asm__("" : "+r"(p))
    /* 32 4-bit codes (16 bytes) as embc_fp4x16 decodes 16: four chunks of their table values
       times 2. Where four chunks share a block scale it takes 12 operations a 16 values instead
       of 15 (the and, shift and scale shared by 32): FP4 pooled 1.06-1.17x as fast (ab_lookup,
       five runs; mxint8's unchanged code 0.92-1.02x in the same runs). */
    static inline __attribute__((always_inline)) void embc_fp4x32(const uint8_t *p, __m128i tab2, __m256 *v) {
        const __m128i x = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(0x0F);
        const __m128i lo = _mm_and_si128(x, m), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
        const __m128i a = _mm_shuffle_epi8(tab2, _mm_unpacklo_epi8(lo, hi)), b = _mm_shuffle_epi8(tab2, _mm_unpackhi_epi8(lo, hi));
        v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(a));
        v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(a, 8)));
        v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
    }
    /* Sums in the order of the 4-bit decoder by 64 codes (embc_pass_avx2, AR & 4) -> 64 floats
       in element order. Sum k (0-3) holds, in lane L, the values 32L + 8k + 0, 2, 4, 6 and sum
       k + 4 the odd ones after them: interleaved, their lanes are chunks k and k + 4. */
    static inline __attribute__((always_inline)) void embc_codes64_store(const __m256 *acc, float *out) {
        for (int k = 0; k < 4; k++) {
            const __m256 p = _mm256_unpacklo_ps(acc[k], acc[k + 4]), q = _mm256_unpackhi_ps(acc[k], acc[k + 4]);
            _mm256_storeu_ps(out + 8 * k, _mm256_permute2f128_ps(p, q, 0x20));
            _mm256_storeu_ps(out + 32 + 8 * k, _mm256_permute2f128_ps(p, q, 0x31));
        }
    }
    /* A 4-bit table's forms for the two byte-shuffle decoders, made once a run (not a bag); for
       row-wise int4 the 16 values are the codes themselves. */
    typedef struct {
        __m128i tab2;     /* the 16 values times 2 as int8, where fp4b: they all are such integers */
        __m256i th, tl;   /* the two top bytes of each value's float, in both lanes, where bf: every
                             value is the top 16 bits of its float */
        int fp4b, bf;
    } embc_fp4_tabs;
    static void embc_fp4_tables(const embc_fmt *f, embc_fp4_tabs *t) {
        int8_t t2[16] = {0};
        uint8_t h8[16] = {0}, l8[16] = {0};
        const int lut4 = f->kind == EMBC_MX_LUT_BITS && f->bits == 4;
        t->fp4b = lut4;
        t->bf = lut4 || f->kind == EMBC_INT4_ROW;
        for (int q = 0; q < 16 && t->fp4b; q++) {
            const float d = 2.0f * f->lut[q];
            t->fp4b = d >= -128.0f && d <= 127.0f && d == (float)(int)d;
            t2[q] = t->fp4b ? (int8_t)(int)d : 0;
        }
        for (int q = 0; q < 16 && t->bf; q++) {
            const float val = lut4 ? f->lut[q] : (float)q;  /* row-wise int4: the code itself */
            const uint32_t u = embc_u32((const uint8_t *)&val);
            t->bf = (u & 0xFFFFu) == 0;
            h8[q] = (uint8_t)(u >> 24);
            l8[q] = (uint8_t)(u >> 16);
        }
        t->tab2 = _mm_loadu_si128((const __m128i *)t2);
        t->th = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)h8));
        t->tl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)l8));
    }
    /* One row's chunks of a pass (8G values) decoded and added to the sums. c: the pass's first
       code byte; chunk g's block scale byte: sb[g >> CS] (CS >= 0, blocks of 8 << CS values) or
       rec[kb[g]]. AR: FP8 by shifts (the row's codes and block scales checked by the caller), or
       4-bit codes by embc_fp4x16 / embc_fp4x32 (G even, blocks a multiple of 16, the table checked
       by the caller); AR & 4: 4-bit codes 64 a pass (G 8, the sums in another order). */
    #define EMBC_SB8(g) (CS >= 0 ? sb[(g) >> (CS >= 0 ? CS : 0)] : rec[kb[g]])
    static inline __attribute__((always_inline)) void embc_pass_avx2(
            const uint8_t *rec, const uint8_t *c, const uint8_t *sb, const int *kb, const float *lut, __m256 s,
            __m256 b, int weighted, __m256 wv, __m256 lo, __m256 hi, const float *tab, __m128i tab2,
            __m256i th, __m256i tl, __m256 *acc,
            const int K, const int G, const int CS, const int AR, const int SH) {
        const int FUSE = AR & 2;  /* (AR & 1: FP8 by shifts, or 4-bit codes by bytes; AR & 4: by 64 codes, below) */
        if ((K == EMBC_MX_LUT_BITS || K == EMBC_INT4_ROW) && (AR & 4) && G == 8) {
            /* two blocks' scales, one a lane, for the values as they are (not times 2); row-wise
               int4: the row's scale (s) and bias (b) */
            const __m256 sc = K == EMBC_INT4_ROW ? s : _mm256_set_m128(_mm_broadcast_ss(tab + sb[1]), _mm_broadcast_ss(tab + sb[0]));
            const __m256i x = _mm256_loadu_si256((const __m256i *)c), m = _mm256_set1_epi8(0x0F);
            const __m256i z = _mm256_setzero_si256();
            /* 64 codes, one block (mxfp4) a 128-bit lane: the low nibbles (the even values) then the high
               ones; each value the top 16 bits of its float (th: their high bytes, tl: the next),
               so two byte shuffles and two in-lane unpacks give 16 floats, with no widening across
               lanes and no conversion (27 operations a 64 values, 46 by embc_fp4x32). The sums
               keep the order this gives (see embc_codes64_store); each is used as soon as it is
               made, which keeps the sums in registers. */
            for (int h = 0; h < 2; h++) {
                const __m256i q = h ? _mm256_and_si256(_mm256_srli_epi16(x, 4), m) : _mm256_and_si256(x, m);
                const __m256i el = _mm256_shuffle_epi8(tl, q), eh = _mm256_shuffle_epi8(th, q);
                for (int k = 0; k < 2; k++) {
                    const __m256i wd = k ? _mm256_unpackhi_epi8(el, eh) : _mm256_unpacklo_epi8(el, eh);
                    for (int u = 0; u < 2; u++) {
                        const __m256 v = _mm256_castsi256_ps(u ? _mm256_unpackhi_epi16(z, wd) : _mm256_unpacklo_epi16(z, wd));
                        const int g = 4 * h + 2 * k + u;
                        if (FUSE) {
                            acc[g] = _mm256_fmadd_ps(v, sc, acc[g]);
                        } else {
                            /* (row-wise int4: a code times an fp16 scale is exact in a float, so
                               the fused q * s + b rounds as the reference's multiply, then add) */
                            const __m256 t = K == EMBC_INT4_ROW ? _mm256_fmadd_ps(v, sc, b) : _mm256_mul_ps(v, sc);
                            acc[g] = _mm256_add_ps(acc[g], weighted ? _mm256_mul_ps(wv, t) : t);
                        }
                    }
                }
            }
            return;
        }
        if (K == EMBC_MX_LUT_BITS && (AR & 1)) {
            /* 32 values a step where four chunks share a block (blocks of 32 or more known at
               compile time), else 16 */
            const int STEP = CS >= 2 && G % 4 == 0 ? 4 : 2;
            for (int g = 0; g < G; g += STEP) {  /* (chunks g to g + STEP - 1 lie in one block) */
                const __m256 sc = _mm256_mul_ps(_mm256_broadcast_ss(tab + EMBC_SB8(g)), _mm256_set1_ps(0.5f));
                __m256 v[4];
                if (STEP == 4) embc_fp4x32(c + 4 * g, tab2, v); else embc_fp4x16(c + 4 * g, tab2, &v[0], &v[1]);
                for (int h = 0; h < STEP; h++) {
                    if (FUSE) {
                        acc[g + h] = _mm256_fmadd_ps(v[h], sc, acc[g + h]);
                    } else {
                        const __m256 u = _mm256_mul_ps(v[h], sc);
                        acc[g + h] = _mm256_add_ps(acc[g + h], weighted ? _mm256_mul_ps(wv, u) : u);
                    }
                }
            }
            return;
        }
        for (int g = 0; g < G; g++) {
            __m256 v;
            if (K == EMBC_FP32) {
                v = _mm256_loadu_ps((const float *)(c + 32 * g));
            } else if (K == EMBC_FP16) {
                v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(c + 16 * g)));
            } else if (K == EMBC_BF16) {
                const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(c + 16 * g)));
                v = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
            } else if (K == EMBC_INT8_ROW) {
                v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(embc_load8_u8(c + 8 * g)), s), b);
            } else if (K == EMBC_INT4_ROW) {
                v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(embc_nibbles8(c + 4 * g)), s), b);
            } else {
                const __m256 sc = _mm256_broadcast_ss(tab + EMBC_SB8(g));
                if (K == EMBC_MXINT8) {
                    v = embc_load8_i8(c + 8 * g);
                } else if (K == EMBC_MX_LUT8 && (AR & 1)) {
                    const __m256i x = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + 8 * g)));
                    v = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(x, SH),
                                                             _mm256_set1_epi32((int)(0x80000000u | (0x7Fu << SH)))));
                } else if (K == EMBC_MX_LUT8) {
                    v = _mm256_i32gather_ps(lut, embc_load8_u8(c + 8 * g), 4);
                } else {
                    const __m256i code = embc_nibbles8(c + 4 * g);
                    v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, code), _mm256_permutevar8x32_ps(hi, code),
                                         _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));
                }
                if (FUSE) {
                    acc[g] = _mm256_fmadd_ps(v, sc, acc[g]);
                    continue;
                }
                v = _mm256_mul_ps(v, sc);
            }
            acc[g] = _mm256_add_ps(acc[g], weighted ? _mm256_mul_ps(wv, v) : v);
        }
    }
    /* CS: blocks of 8 << CS values known at compile time (the scale bytes of a pass then lie at
       constant offsets), or -1: any multiple of 8, through kb. BF: 4-bit codes by 64 codes only
       (G 8; mxfp4 in blocks of 32 or row-wise int4; t4->bf), a loop of its own: with the other
       decoders' tables live beside its two, GCC kept sums on the stack. */
    static inline __attribute__((always_inline)) void embc_bag_avx2(
            const embc_fmt *f, const uint8_t *data, const int64_t *idx, int64_t start, int64_t end, int64_t n_idx,
            const float *w, int mode, float *restrict out, const embc_fp4_tabs *t4,
            const int K, const int G, const int CS, const int W, const int BF) {
        const int64_t rb = f->row_bytes;
        const int dim = f->dim, nb = f->nb, block = f->block;
        const int mx = K == EMBC_MXINT8 || K == EMBC_MX_LUT8 || K == EMBC_MX_LUT_BITS;
        const int fp8 = K == EMBC_MX_LUT8 && f->fp8_arith && (f->fp8_shift == 20 || f->fp8_shift == 21)
                        && f->fp8_special >= 1;  /* (lookup._fp8_params: code 0 is never Inf/NaN) */
        /* FP8 by shifts takes a row's pass when its largest scale byte v has v - adjust < first
           (saturating; first >= 1), that is v < fp8_top, and no code is Inf/NaN */
        const int fp8_top = f->fp8_scale_adj + f->fp8_special, fp8_first = f->fp8_special;
        const int e5 = K == EMBC_MX_LUT8 && f->fp8_shift == 21;
        const float *scales8 = f->scales8, *lut = f->lut;
        const float *tab = K == EMBC_MXINT8 ? f->scales6 : f->scales;  /* E8M0 byte -> the row's block scale */
        /* the 16 values of 4-bit codes (the other families' tables are shorter or absent) */
        const __m256 lo = K == EMBC_MX_LUT_BITS ? _mm256_loadu_ps(f->lut) : _mm256_setzero_ps();
        const __m256 hi = K == EMBC_MX_LUT_BITS ? _mm256_loadu_ps(f->lut + 8) : lo;
        const __m128i tab2 = K == EMBC_MX_LUT_BITS ? t4->tab2 : _mm_setzero_si128();
        const __m256i th = BF ? t4->th : _mm256_setzero_si256(), tl = BF ? t4->tl : th;
        const int fp4b = K == EMBC_MX_LUT_BITS && t4->fp4b && G % 2 == 0 && block % 16 == 0;
        /* the scale bytes a pass's chunks use (CS >= 0) */
        const int nsb = ((G - 1) >> (CS >= 0 ? CS : 0)) + 1;
        for (int d0 = 0; d0 < dim; d0 += 8 * G) {
            __m256 acc[8];
            int kb[8];  /* chunk g's block (a division a pass, not a row) */
            for (int g = 0; g < G; g++) {
                acc[g] = _mm256_setzero_ps();
                kb[g] = block > 0 ? (d0 + 8 * g) / block : 0;
            }
            /* the pass's first code byte in a record */
            const int64_t cofs = K == EMBC_FP32 ? 4 * (int64_t)d0 : (K == EMBC_FP16 || K == EMBC_BF16) ? 2 * (int64_t)d0
                               : K == EMBC_INT8_ROW ? 8 + d0 : K == EMBC_INT4_ROW ? 4 + d0 / 2
                               : K == EMBC_MX_LUT_BITS ? nb + d0 / 2 : nb + d0;
            for (int64_t j = start; j < end; j++) {
                if (d0 == 0) embc_prefetch_ahead(data, idx, j, n_idx, rb);
                const uint8_t *rec = data + idx[j] * rb, *c = rec + cofs, *sb = rec + kb[0];
                EMBC_OPAQUE(c);
                __m256 s = _mm256_setzero_ps(), b = s;
                if (K == EMBC_INT8_ROW) {
                    s = _mm256_set1_ps(embc_f32(embc_u32(rec)));
                    b = _mm256_set1_ps(embc_f32(embc_u32(rec + 4)));
                } else if (K == EMBC_INT4_ROW) {
                    s = _mm256_set1_ps(embc_half(embc_u16(rec)));
                    b = _mm256_set1_ps(embc_half(embc_u16(rec + 2)));
                }
                const __m256 wv = _mm256_set1_ps(W ? w[j] : 0.0f);
                /* the largest scale byte of the pass: it decides whether the scales fold (FP8) and fuse */
                int top = 0;
                if (mx && CS >= 0) {
                    for (int q = 0; q < nsb; q++) top = sb[q] > top ? sb[q] : top;
                } else if (mx) {
                    for (int k = kb[0]; k <= kb[G - 1]; k++) top = rec[k] > top ? rec[k] : top;
                }
                /* FP8 by shifts and the folded scales8, unless the pass holds an Inf/NaN code or a
                   scale byte too large to fold (NaN included): then the element table */
                const int arith = fp8 && top < fp8_top && !embc_fp8_special8(c, 8 * G, fp8_first);
                /* a sum fuses the block scale where every product is exact (see
                   EMBC_MXINT8_FMA_MAX_SCALE): FP8 by shifts, mxint8 and 4-bit codes by bytes
                   under their largest scale byte */
                const int alt = arith || (K == EMBC_MX_LUT_BITS && (fp4b || BF));
                const int fuse = EMBC_AVX2_FMA && !W && (arith || (K == EMBC_MXINT8 && top <= EMBC_MXINT8_FMA_MAX_SCALE)
                                                         || (alt && top <= EMBC_FP4_FMA_MAX_SCALE));
                /* (one call a case, not a flag tested a chunk: each is its own loop; two calls,
                   not one with a flag: GCC would compute both decodes, gathers included) */
                #define EMBC_PASS(WEIGHTED, AR, SH) embc_pass_avx2(rec, c, sb, kb, lut, s, b, WEIGHTED, wv, lo, hi, \
                    K == EMBC_MX_LUT8 && (AR & 1) ? scales8 : tab, tab2, th, tl, acc, K, G, CS, AR, SH)
                /* FP8 by shifts of 20 (E4M3) or 21 (E5M2) bits, a constant: an immediate shift */
                if (BF) { if (fuse) EMBC_PASS(0, 6, 20); else EMBC_PASS(W, 4, 20); }
                else if (fuse && alt) { if (e5) EMBC_PASS(0, 3, 21); else EMBC_PASS(0, 3, 20); }
                else if (fuse) EMBC_PASS(0, 2, 20);
                else if (alt) { if (e5) EMBC_PASS(W, 1, 21); else EMBC_PASS(W, 1, 20); }
                else EMBC_PASS(W, 0, 20);
                #undef EMBC_PASS
            }
            if (mode == EMBC_MEAN && end > start) {
                const __m256 n = _mm256_set1_ps((float)(end - start));
                for (int g = 0; g < G; g++) acc[g] = _mm256_div_ps(acc[g], n);
            }
            if (BF) embc_codes64_store(acc, out + d0);
            else for (int g = 0; g < G; g++) _mm256_storeu_ps(out + d0 + 8 * g, acc[g]);
        }
    }
    #define EMBC_AVX2_BAGS_W(K, G_, CS, W, BF) \
        for (int64_t b = b0; b < b1; b++) \
            embc_bag_avx2(f, data, idx, offsets[b], offsets[b + 1], n_idx, w, mode, out + b * (int64_t)f->dim, &t4, \
                          K, G_, CS, W, BF);
    /* weighted or not known at compile time: the row loop then tests nothing for it */
    #define EMBC_AVX2_BAGS(K, G_, CS) if (w) { EMBC_AVX2_BAGS_W(K, G_, CS, 1, 0) } else { EMBC_AVX2_BAGS_W(K, G_, CS, 0, 0) }
    #define EMBC_AVX2_GC(K, CS) \
        if (G == 8) { EMBC_AVX2_BAGS(K, 8, CS) } else if (G == 4) { EMBC_AVX2_BAGS(K, 4, CS) } \
        else if (G == 2) { EMBC_AVX2_BAGS(K, 2, CS) } else { EMBC_AVX2_BAGS(K, 1, CS) }
    /* 4-bit codes by 64 codes (embc_pass_avx2, AR & 4) */
    #define EMBC_AVX2_BF(K, CS) if (w) { EMBC_AVX2_BAGS_W(K, 8, CS, 1, 1) } else { EMBC_AVX2_BAGS_W(K, 8, CS, 0, 1) }
    /* no block scales */
    #define EMBC_AVX2_K(K) case K: EMBC_AVX2_GC(K, 0) break;
    /* block scales: blocks of 32 (the MX default) at constant offsets, others through kb */
    #define EMBC_AVX2_S(K) if (f->block == 32) { EMBC_AVX2_GC(K, 2) } else { EMBC_AVX2_GC(K, -1) }
    /* Bags [b0, b1) of a run (rows up to n_idx, the run's end, prefetched), sum or mean. */
    static void embc_bags_avx2(const embc_fmt *f, const uint8_t *data, const int64_t *idx, const int64_t *offsets,
                               int64_t b0, int64_t b1, int64_t n_idx, const float *w, int mode, float *out) {
        const int nc = f->dim / 8;
        const int G = nc % 8 == 0 ? 8 : nc % 4 == 0 ? 4 : nc % 2 == 0 ? 2 : 1;
        embc_fp4_tabs t4;
        embc_fp4_tables(f, &t4);
        switch (f->kind) {
        EMBC_AVX2_K(EMBC_FP32) EMBC_AVX2_K(EMBC_FP16) EMBC_AVX2_K(EMBC_BF16) EMBC_AVX2_K(EMBC_INT8_ROW)
        case EMBC_INT4_ROW:
            if (G == 8 && t4.bf) { EMBC_AVX2_BF(EMBC_INT4_ROW, 0) } else { EMBC_AVX2_GC(EMBC_INT4_ROW, 0) }
            break;
        case EMBC_MXINT8: EMBC_AVX2_S(EMBC_MXINT8) break;
        case EMBC_MX_LUT8: EMBC_AVX2_S(EMBC_MX_LUT8) break;
        case EMBC_MX_LUT_BITS:
            if (f->block == 32 && G == 8 && t4.bf) { EMBC_AVX2_BF(EMBC_MX_LUT_BITS, 2) } else { EMBC_AVX2_S(EMBC_MX_LUT_BITS) }
            break;
        }
    }
    #endif

    /* Pool one bag, indices [start, end), into out[0:dim]. Rows EMBC_PREFETCH_ROWS ahead are
       prefetched, across the end of the bag too (up to n_idx, the end of this thread's run). */
    #if EMBC_HAVE_SIMD
    #define EMBC_ROW(NAME, OPV) do { if (f->simd) embc_row_simd(f, rec, wv, out, OPV); \
                                     else embc_row_##NAME(f, rec, wj, out); } while (0)
    #elif EMBC_HAVE_AVX2
    #define EMBC_ROW(NAME, OPV) do { if (f->simd && f->fast > 0) embc_row_avx2(f, rec, wj, out, OPV); \
                                     else embc_row_##NAME(f, rec, wj, out); } while (0)
    #else
    #define EMBC_ROW(NAME, OPV) embc_row_##NAME(f, rec, wj, out)
    #endif
    static void embc_bag(const embc_fmt *f, const uint8_t *data, const int64_t *idx,
                         int64_t start, int64_t end, int64_t n_idx, const float *w, int mode,
                         float *restrict out) {
        const int64_t rb = f->row_bytes;
        const int dim = f->dim;
        for (int i = 0; i < dim; i++) out[i] = 0.0f;
        for (int64_t j = start; j < end; j++) {
            if (j + EMBC_PREFETCH_ROWS < n_idx)
                embc_prefetch_row(data + idx[j + EMBC_PREFETCH_ROWS] * rb, rb);
            const uint8_t *rec = data + idx[j] * rb;
            const float wj = w ? w[j] : 0.0f;
    #if EMBC_HAVE_SIMD
            const __m512 wv = _mm512_set1_ps(wj);
    #endif
            if (mode == EMBC_MAX) {
                if (j == start) EMBC_ROW(set, EMBC_V_SET);
                else EMBC_ROW(max, EMBC_V_MAX);
            } else if (w) {
                EMBC_ROW(wadd, EMBC_V_WADD);
            } else {
                EMBC_ROW(add, EMBC_V_ADD);
            }
        }
        if (mode == EMBC_MEAN && end > start) {
            const float n = (float)(end - start);
            for (int i = 0; i < dim; i++) out[i] = out[i] / n;
        }
    }
    /* Pool the run of bags [b0, b1) (a thread's unit of work) into out (dim floats a bag). The
       first rows of the run are prefetched here; later bags find theirs prefetched by the bags
       before, and nothing past the run's last row is (another thread may take the next run). */
    static void embc_bags(const embc_fmt *f, const uint8_t *data, const int64_t *idx, const int64_t *offsets,
                          int64_t b0, int64_t b1, const float *w, int mode, float *out) {
        const int64_t rb = f->row_bytes, first = offsets[b0], last = offsets[b1];
        for (int64_t j = first; j < last && j < first + EMBC_PREFETCH_ROWS; j++) embc_prefetch_row(data + idx[j] * rb, rb);
    #if EMBC_HAVE_SIMD
    #ifdef EMBC_HAVE_FP4T
        if (f->simd >= 2 && f->fast == EMBC_K_FP4 && f->cshift == 1 && f->dim % 128 == 0 && !w && mode != EMBC_MAX) {
            for (int64_t b = b0; b < b1; b++)
                embc_bag_fp4t(f, data, idx, offsets[b], offsets[b + 1], last, mode, out + b * (int64_t)f->dim);
            return;
        }
    #endif
        if (f->simd >= 2 && f->fast >= 0) {
            embc_bags_fast_any(f, f->fast, data, idx, offsets, b0, b1, last, w, mode, out);
            return;
        }
    #elif EMBC_HAVE_AVX2
        if (f->simd >= 2 && f->fast > 0 && mode != EMBC_MAX) {
            embc_bags_avx2(f, data, idx, offsets, b0, b1, last, w, mode, out);
            return;
        }
    #endif
        for (int64_t b = b0; b < b1; b++)
            embc_bag(f, data, idx, offsets[b], offsets[b + 1], last, w, mode, out + b * (int64_t)f->dim);
    }

    /* The least and the greatest of idx[0:n), n > 0, in one pass (vectorized by the compiler). */
    static void embc_bounds(const int64_t *idx, int64_t n, int64_t *lo, int64_t *hi) {
        int64_t a = idx[0], b = idx[0];
        for (int64_t i = 1; i < n; i++) {
            a = idx[i] < a ? idx[i] : a;
            b = idx[i] > b ? idx[i] : b;
        }
        *lo = a;
        *hi = b;
    }

    /* Whether offsets o[0:n) describe bags over n_idx indices: they start at 0, never decrease and
       end within n_idx (at it when include_last). No offsets (and no include_last) is no bags. */
    static int embc_offsets_ok(const int64_t *o, int64_t n, int64_t n_idx, int include_last) {
        if (include_last && (n == 0 || o[n - 1] != n_idx)) return 0;
        if (n == 0) return 1;
        if (o[0] != 0) return 0;
        for (int64_t i = 1; i < n; i++)
            if (o[i] < o[i - 1]) return 0;
        return o[n - 1] <= n_idx;
    }

    /* The vector decoders compiled in: 2 AVX-512, 1 AVX2, 0 none. */
    static int embc_have_simd(void) { return EMBC_HAVE_SIMD ? 2 : EMBC_HAVE_AVX2 ? 1 : 0; }
    static void embc_prepare(embc_fmt *f) {
        f->cshift = 0;
        while (f->block >= 32 && (16 << f->cshift) < f->block) f->cshift++;
    #if EMBC_HAVE_SIMD
        f->fast = embc_fast_kind(f);
    #elif EMBC_HAVE_AVX2
        f->fast = embc_avx2_takes(f) ? 1 : -1;
    #else
        f->fast = -1;
    #endif
    }
    """
    ctypedef struct embc_fmt:
        int kind
        int dim
        int block
        int nb
        int bits
        int64_t row_bytes
        const float *lut
        int simd
        int fp8_arith
        int fp8_shift
        int fp8_scale_adj
        const float *scales8
        int fp8_special
        const float *scales
        const float *scales6
    int embc_have_simd() noexcept nogil
    void embc_bounds(const int64_t *idx, int64_t n, int64_t *lo, int64_t *hi) noexcept nogil
    int embc_offsets_ok(const int64_t *o, int64_t n, int64_t n_idx, int include_last) noexcept nogil
    void embc_prepare(embc_fmt *f) noexcept nogil
    void embc_bags(const embc_fmt *f, const uint8_t *data, const int64_t *idx, const int64_t *offsets,
                   int64_t b0, int64_t b1, const float *w, int mode, float *out) noexcept nogil


cdef enum:
    _RUN = 32  # bags a thread takes at a time


# The entry points take ndarrays, not typed memoryviews: acquiring a memoryview costs about half
# a microsecond, and a one-bag call passed ten of them (6 us of a 11 us lookup). _carray checks
# what a memoryview would (type, byte order, dimensions, contiguity, alignment, writability).
cdef char *_carray(cnp.ndarray a, int typenum, int ndim, bint writable, str name) except? NULL:
    if (cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISNOTSWAPPED(a) or cnp.PyArray_NDIM(a) != ndim
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)
            or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(f"_lookup: {name} must be a C-contiguous native {cnp.PyArray_DescrFromType(typenum)} "
                         f"array of {ndim} dimensions{' (writable)' if writable else ''}")
    return <char *>cnp.PyArray_DATA(a)


cdef class Plan:
    """How ``pool`` decodes the rows of one table layout (format family, dim, block, record
    size), prepared once: ``embcompress.kernels.lookup`` keeps one per layout. ``lut``: the
    element table (float32); ``scales`` / ``scales6``: the E8M0 tables (256 float32 each);
    ``fp8`` and ``scales8``: FP8 decoding by shifts (see lookup._fp8_params), or None; ``simd``:
    2 the fast paths, 1 the general AVX-512 decoders, 0 scalar (tests force the lower ones)."""
    cdef embc_fmt f
    cdef object keep  # the arrays f points into

    def __init__(self, int kind, int dim, int block, int n_blocks, int bits, int64_t row_bytes,
                 cnp.ndarray lut not None, cnp.ndarray scales not None, cnp.ndarray scales6 not None,
                 tuple fp8=None, cnp.ndarray scales8=None, int simd=2):
        if cnp.PyArray_SIZE(scales) != 256 or cnp.PyArray_SIZE(scales6) != 256:
            raise ValueError("Plan needs the two 256-entry E8M0 scale tables")
        self.f.kind = kind
        self.f.dim = dim
        self.f.block = block
        self.f.nb = n_blocks
        self.f.bits = bits
        self.f.row_bytes = row_bytes
        self.f.lut = <const float *>_carray(lut, cnp.NPY_FLOAT32, 1, False, "lut")
        self.f.simd = simd if embc_have_simd() else 0
        self.f.scales = <const float *>_carray(scales, cnp.NPY_FLOAT32, 1, False, "scales")
        self.f.scales6 = <const float *>_carray(scales6, cnp.NPY_FLOAT32, 1, False, "scales6")
        self.f.fp8_arith = fp8 is not None and scales8 is not None and cnp.PyArray_SIZE(scales8) == 256
        self.f.scales8 = (<const float *>_carray(scales8, cnp.NPY_FLOAT32, 1, False, "scales8")
                          if self.f.fp8_arith else NULL)
        if self.f.fp8_arith:
            self.f.fp8_shift, self.f.fp8_special, self.f.fp8_scale_adj = fp8
        embc_prepare(&self.f)
        self.keep = (lut, scales, scales6, scales8)


def pool(Plan plan not None, cnp.ndarray data not None, cnp.ndarray indices not None,
         cnp.ndarray offsets not None, cnp.ndarray weights, int mode, cnp.ndarray out not None, int n_threads):
    """Pool bags ``offsets[b]:offsets[b+1]`` of ``indices`` into ``out[b]`` over the row records
    ``data`` of ``plan``'s layout; ``weights`` (one per index) or None. Trusted bags: the offsets
    and index range are the caller's checks (``checked_offsets``); the arrays' kinds and shapes
    are checked here."""
    cdef const embc_fmt *f = &plan.f
    cdef const uint8_t *base = <const uint8_t *>_carray(data, cnp.NPY_UINT8, 2, False, "data")
    cdef const int64_t *idx = <const int64_t *>_carray(indices, cnp.NPY_INT64, 1, False, "indices")
    cdef const int64_t *offs = <const int64_t *>_carray(offsets, cnp.NPY_INT64, 1, False, "offsets")
    cdef float *o = <float *>_carray(out, cnp.NPY_FLOAT32, 2, True, "out")
    cdef const float *w = NULL
    cdef Py_ssize_t b, n_bags = cnp.PyArray_DIM(offsets, 0) - 1
    if weights is not None:
        w = <const float *>_carray(weights, cnp.NPY_FLOAT32, 1, False, "weights")
        if cnp.PyArray_DIM(weights, 0) != cnp.PyArray_DIM(indices, 0):
            raise ValueError("pool: one weight per index")
    if cnp.PyArray_DIM(data, 1) != f.row_bytes:
        raise ValueError("pool: the records are not of the plan's size")
    if n_bags <= 0 or f.dim == 0:
        return
    if cnp.PyArray_DIM(out, 0) != n_bags or cnp.PyArray_DIM(out, 1) != f.dim:
        raise ValueError("pool: out must have one row of dim values a bag")
    cdef Py_ssize_t n_runs = (n_bags + _RUN - 1) // _RUN
    with nogil:
        # runs of _RUN bags handed out dynamically: when another process takes a core from one
        # thread, the other carries on with the remaining runs instead of waiting for a fixed half
        for b in prange(n_runs, schedule="dynamic", num_threads=n_threads):
            embc_bags(f, base, idx, offs, b * _RUN, min(b * _RUN + _RUN, n_bags), w, mode, o)



cdef struct _Run:
    # one thread's unit of work in pool_many: bags [b0, b1) of one table
    const embc_fmt *f
    const uint8_t *data
    const int64_t *idx
    const int64_t *offs
    const float *w
    float *out
    int mode
    int64_t b0
    int64_t b1


def pool_many(list jobs not None, list plans not None, int n_threads):
    """Several lookups in one call, one a table: ``jobs`` holds a tuple ``(data, fmt, dim,
    block, indices, offsets, weights or None, mode, include_last, keep or None)`` a table (``Job``
    in lookup.py; ``keep``, bool a index, leaves out the entries it is False for: a padding id),
    ``plans`` each job's ``Plan``. Every job's bags and indices are checked first; if all hold,
    the bags of all jobs are pooled in one parallel region (runs of ``_RUN`` bags) and the list of
    outputs (float32 ``(n_bags, dim)`` a job) is returned; else nothing is pooled and the position
    of the first job that fails is returned, for the caller's checks to name the problem (arrays
    of the wrong kind raise ValueError). One call costs a collection of small lookups a
    microsecond a table, where a lookup's own call costs several. Same bits as ``pool`` on each
    job (with ``keep``, on the entries kept)."""
    cdef Py_ssize_t n = len(jobs), i, r, j, n_runs = 0, n_ext = 0, n_kept = 0, at = 0, t = 0, kat = 0
    cdef Py_ssize_t n_idx, n_offs, n_bags, cnt
    cdef tuple job
    cdef Plan plan
    cdef cnp.ndarray data, idx, offs, w, out, keep
    cdef const int64_t *o
    cdef const int64_t *ix
    cdef const float *wp
    cdef const uint8_t *kp
    cdef int64_t lo, hi
    cdef cnp.npy_intp shape[2]
    cdef bint last
    cdef list outs = []
    if len(plans) != n:
        raise ValueError("pool_many: one plan a job")
    # pass 1: check every job, make its output and count its runs, offsets and kept entries
    for i in range(n):
        # (checked: this module indexes without bounds checks, and a short tuple would be read past its end)
        if not isinstance(jobs[i], tuple) or not 9 <= len(<tuple>jobs[i]) <= 10:
            raise ValueError("pool_many: a job is a tuple of 9 or 10 entries (lookup.Job)")
        job = <tuple>jobs[i]
        plan, data, idx, offs, w, last = plans[i], job[0], job[4], job[5], job[6], job[8]
        keep = job[9] if len(job) == 10 else None
        if plan is None or data is None or idx is None or offs is None:
            raise ValueError("pool_many: a job needs a plan, records, indices and offsets")
        _carray(data, cnp.NPY_UINT8, 2, False, "data")
        ix = <const int64_t *>_carray(idx, cnp.NPY_INT64, 1, False, "indices")
        o = <const int64_t *>_carray(offs, cnp.NPY_INT64, 1, False, "offsets")
        if cnp.PyArray_DIM(data, 1) != plan.f.row_bytes:
            raise ValueError("pool_many: the records are not of the plan's size")
        if job[7] != "sum" and (w is not None or (job[7] != "mean" and job[7] != "max")):
            return i
        if w is not None:
            _carray(w, cnp.NPY_FLOAT32, 1, False, "weights")
            if cnp.PyArray_DIM(w, 0) != cnp.PyArray_DIM(idx, 0):
                return i
        n_idx, n_offs = cnp.PyArray_DIM(idx, 0), cnp.PyArray_DIM(offs, 0)
        if not embc_offsets_ok(o if n_offs else NULL, n_offs, n_idx, last):
            return i
        if n_idx:
            embc_bounds(ix, n_idx, &lo, &hi)
            if lo < 0 or hi >= cnp.PyArray_DIM(data, 0):
                return i
        n_bags = n_offs - 1 if last else n_offs
        if keep is not None:
            kp = <const uint8_t *>_carray(keep, cnp.NPY_BOOL, 1, False, "keep")
            if cnp.PyArray_DIM(keep, 0) != n_idx:
                return i
            if n_bags > 0:
                for j in range(n_idx):
                    n_kept += kp[j] != 0
        shape[0], shape[1] = n_bags, plan.f.dim
        outs.append(cnp.PyArray_EMPTY(2, shape, cnp.NPY_FLOAT32, 0))
        if n_bags > 0 and plan.f.dim > 0:
            n_runs += (n_bags + _RUN - 1) // _RUN
            n_ext += n_bags + 1
    if n_runs == 0:
        return outs
    cdef _Run *runs = <_Run *>malloc(n_runs * sizeof(_Run))
    cdef int64_t *ext = <int64_t *>malloc(n_ext * sizeof(int64_t))
    # the kept entries of the jobs with a keep mask, and their weights
    cdef int64_t *kidx = <int64_t *>malloc(max(n_kept, 1) * sizeof(int64_t))
    cdef float *kw = <float *>malloc(max(n_kept, 1) * sizeof(float))
    cdef int64_t *bidx
    cdef float *bw
    if runs == NULL or ext == NULL or kidx == NULL or kw == NULL:
        free(runs)
        free(ext)
        free(kidx)
        free(kw)
        raise MemoryError()
    try:
        # pass 2: the kernel's offsets (n_bags + 1 entries, the last the entries pooled) and the runs
        for i in range(n):
            job = <tuple>jobs[i]
            plan, idx, offs, w, out, last = plans[i], job[4], job[5], job[6], outs[i], job[8]
            keep = job[9] if len(job) == 10 else None
            n_offs = cnp.PyArray_DIM(offs, 0)
            n_bags = n_offs - 1 if last else n_offs
            if n_bags <= 0 or plan.f.dim == 0:
                continue
            o = <const int64_t *>cnp.PyArray_DATA(offs)
            ix = <const int64_t *>cnp.PyArray_DATA(idx)
            wp = <const float *>cnp.PyArray_DATA(w) if w is not None else NULL
            n_idx = cnp.PyArray_DIM(idx, 0)
            if keep is None:
                bidx, bw = <int64_t *>ix, <float *>wp
                for r in range(n_bags):
                    ext[at + r] = o[r]
                ext[at + n_bags] = n_idx
            else:
                # the kept entries, in order; a bag's offset counts the kept entries before it
                kp = <const uint8_t *>cnp.PyArray_DATA(keep)
                bidx, bw = &kidx[kat], (&kw[kat] if wp != NULL else NULL)
                cnt, j = 0, 0
                for r in range(n_bags + 1):
                    while j < (o[r] if r < n_bags else n_idx):
                        if kp[j]:
                            bidx[cnt] = ix[j]
                            if wp != NULL:
                                bw[cnt] = wp[j]
                            cnt += 1
                        j += 1
                    ext[at + r] = cnt
                kat += cnt
            for r in range(0, n_bags, _RUN):
                runs[t].f = &plan.f
                runs[t].data = <const uint8_t *>cnp.PyArray_DATA(<cnp.ndarray>job[0])
                runs[t].idx = bidx
                runs[t].offs = &ext[at]
                runs[t].w = bw
                runs[t].out = <float *>cnp.PyArray_DATA(out)
                runs[t].mode = 0 if job[7] == "sum" else 1 if job[7] == "mean" else 2  # (lookup.MODES)
                runs[t].b0 = r
                runs[t].b1 = min(r + _RUN, n_bags)
                t += 1
            at += n_bags + 1
        with nogil:
            if n_threads <= 1 or n_runs == 1:
                for r in range(n_runs):
                    embc_bags(runs[r].f, runs[r].data, runs[r].idx, runs[r].offs, runs[r].b0, runs[r].b1,
                              runs[r].w, runs[r].mode, runs[r].out)
            else:
                for r in prange(n_runs, schedule="dynamic", num_threads=n_threads):
                    embc_bags(runs[r].f, runs[r].data, runs[r].idx, runs[r].offs, runs[r].b0, runs[r].b1,
                              runs[r].w, runs[r].mode, runs[r].out)
    finally:
        free(runs)
        free(ext)
        free(kidx)
        free(kw)
    return outs


cdef void _bounds(const int64_t *idx, Py_ssize_t n, int n_threads, int64_t *lo_out, int64_t *hi_out) noexcept:
    """Least and greatest of ``idx[:n]`` (``n > 0``) in one pass, split over up to ``n_threads``
    threads (parts of at least 32,768 indices: a thread's start-up costs about as much as reading
    those; one part starts no OpenMP team, which costs a small lookup a microsecond)."""
    cdef Py_ssize_t k
    cdef int64_t lo[16]
    cdef int64_t hi[16]
    cdef int parts = <int>max(1, min(n_threads, 16, n // 32768))
    with nogil:
        if parts == 1:
            embc_bounds(idx, n, &lo[0], &hi[0])
        else:
            for k in prange(parts, schedule="static", num_threads=parts):
                embc_bounds(&idx[k * n // parts], (k + 1) * n // parts - k * n // parts, &lo[k], &hi[k])
    lo_out[0], hi_out[0] = lo[0], hi[0]
    for k in range(1, parts):
        lo_out[0] = min(lo_out[0], lo[k])
        hi_out[0] = max(hi_out[0], hi[k])


def index_bounds(cnp.ndarray idx not None, int n_threads):
    """``(min, max)`` of a non-empty int64 ``idx`` in one pass, split over up to ``n_threads``
    threads: the range check of every lookup, which ``idx.min()`` and ``idx.max()`` made two
    serial passes (about 0.1 ms for 262,144 indices, 3-5 % of a 2-thread lookup)."""
    cdef const int64_t *p = <const int64_t *>_carray(idx, cnp.NPY_INT64, 1, False, "idx")
    cdef int64_t lo, hi
    if cnp.PyArray_DIM(idx, 0) == 0:
        raise ValueError("index_bounds needs at least one index")
    _bounds(p, cnp.PyArray_DIM(idx, 0), n_threads, &lo, &hi)
    return lo, hi


def checked_offsets(cnp.ndarray idx not None, cnp.ndarray offsets not None, bint include_last, int64_t n_rows,
                    int n_threads, cnp.ndarray out_offsets not None):
    """Every bag check of a lookup in one compiled call: ``offsets`` start at 0, never decrease
    and end within ``len(idx)`` (at it with ``include_last``), and every index lies in
    ``[0, n_rows)``. When all hold, writes the offsets the kernel takes into ``out_offsets``
    (``n_bags + 1`` int64 entries: ``offsets``, then ``len(idx)`` unless ``include_last``) and
    returns True; else returns False, and the caller's NumPy checks name the problem. (A dozen
    NumPy calls did this in about 20 us, most of a one-bag lookup.) All three are int64, 1-D."""
    cdef const int64_t *ix = <const int64_t *>_carray(idx, cnp.NPY_INT64, 1, False, "idx")
    cdef const int64_t *o = <const int64_t *>_carray(offsets, cnp.NPY_INT64, 1, False, "offsets")
    cdef int64_t *ext = <int64_t *>_carray(out_offsets, cnp.NPY_INT64, 1, True, "out_offsets")
    cdef Py_ssize_t n = cnp.PyArray_DIM(offsets, 0), n_idx = cnp.PyArray_DIM(idx, 0), i
    cdef int64_t lo, hi
    if cnp.PyArray_DIM(out_offsets, 0) != (n if include_last else n + 1):
        raise ValueError("checked_offsets: out_offsets has the wrong length")
    if not embc_offsets_ok(o if n else NULL, n, n_idx, include_last):
        return False
    if n_idx:
        _bounds(ix, n_idx, n_threads, &lo, &hi)
        if lo < 0 or hi >= n_rows:
            return False
    for i in range(n):
        ext[i] = o[i]
    if not include_last:
        ext[n] = n_idx
    return True


def have_simd():
    """Whether vector decoders were compiled in (AVX-512 or AVX2; the scalar ones always are)."""
    return bool(embc_have_simd())


def vector_isa():
    """The vector decoders compiled in: ``"avx512"``, ``"avx2"`` or ``"none"``."""
    return ("none", "avx2", "avx512")[embc_have_simd()]
