# Pooled embedding lookup over compressed row records: gather, decode on the fly, pool.
#
# The one hot loop is the prange over bags at the bottom; everything above it is C that decodes
# one row record straight into the bag's accumulator (no decoded row is ever stored). The
# NumPy twin is embcompress/kernels/reference.py and this kernel must match it bit for bit, so:
# - every value is decoded exactly as the reference decodes it (element lookup tables times an
#   exact power-of-two scale: one correctly rounded product; row-wise: code * scale, then + bias);
# - each output element accumulates in float32 in index order, starting from +0.0 (sum, mean)
#   or from the first row (max), and a mean divides the sum by the count at the end;
# - floating-point contraction is off (no fused multiply-add), as in NumPy, and the build never
#   uses -ffast-math.
# The public entry point, with its checks, is embcompress.kernels.lookup.pooled_lookup.

from libc.stdint cimport uint8_t, int64_t
from cython.parallel cimport prange

cdef extern from *:
    """
    #pragma GCC optimize("fp-contract=off")
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
    } embc_fmt;

    #if defined(__GNUC__) || defined(__clang__)
    #define EMBC_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 0)
    #else
    #define EMBC_PREFETCH(p) ((void)0)
    #endif
    /* Rows ahead to prefetch: enough to cover DRAM latency at a few ns of work per row. */
    #define EMBC_PREFETCH_ROWS 12

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
    #define EMBC_OP_MAX(a, v) do { float v_ = (v); (a) = ((a) >= v_ || (a) != (a)) ? (a) : v_; } while (0)

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

    static inline void embc_prefetch_row(const uint8_t *p, int64_t row_bytes) {
        for (int64_t o = 0; o < row_bytes; o += 64) EMBC_PREFETCH(p + o);
        EMBC_PREFETCH(p + row_bytes - 1);
    }

    /* Pool one bag, indices [start, end), into out[0:dim]. Rows EMBC_PREFETCH_ROWS ahead are
       prefetched, across the end of the bag too (the next bag is this thread's next work). */
    static void embc_bag(const embc_fmt *f, const uint8_t *data, const int64_t *idx,
                         int64_t start, int64_t end, int64_t n_idx, const float *w, int mode,
                         float *restrict out) {
        const int64_t rb = f->row_bytes;
        const int dim = f->dim;
        for (int i = 0; i < dim; i++) out[i] = 0.0f;
        for (int64_t j = start; j < end && j < start + EMBC_PREFETCH_ROWS && j < n_idx; j++)
            embc_prefetch_row(data + idx[j] * rb, rb);
        for (int64_t j = start; j < end; j++) {
            if (j + EMBC_PREFETCH_ROWS < n_idx)
                embc_prefetch_row(data + idx[j + EMBC_PREFETCH_ROWS] * rb, rb);
            const uint8_t *rec = data + idx[j] * rb;
            if (mode == EMBC_MAX) {
                if (j == start) embc_row_set(f, rec, 0.0f, out);
                else embc_row_max(f, rec, 0.0f, out);
            } else if (w) {
                embc_row_wadd(f, rec, w[j], out);
            } else {
                embc_row_add(f, rec, 0.0f, out);
            }
        }
        if (mode == EMBC_MEAN && end > start) {
            const float n = (float)(end - start);
            for (int i = 0; i < dim; i++) out[i] = out[i] / n;
        }
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
    void embc_bag(const embc_fmt *f, const uint8_t *data, const int64_t *idx, int64_t start,
                  int64_t end, int64_t n_idx, const float *w, int mode, float *out) noexcept nogil


def pool(
    const uint8_t[:, ::1] data,
    int kind,
    int dim,
    int block,
    int n_blocks,
    int bits,
    const float[::1] lut,
    const int64_t[::1] indices,
    const int64_t[::1] offsets,
    const float[::1] weights,
    bint weighted,
    int mode,
    float[:, ::1] out,
    int n_threads,
):
    """Pool bags ``offsets[b]:offsets[b+1]`` of ``indices`` into ``out[b]`` (trusted inputs)."""
    cdef embc_fmt f
    cdef Py_ssize_t b, n_bags = offsets.shape[0] - 1
    cdef int64_t n_idx = indices.shape[0]
    cdef const uint8_t *base = &data[0, 0] if data.shape[0] > 0 else NULL
    cdef const int64_t *idx = &indices[0] if n_idx > 0 else NULL
    cdef const float *w = &weights[0] if weighted and weights.shape[0] > 0 else NULL
    f.kind = kind
    f.dim = dim
    f.block = block
    f.nb = n_blocks
    f.bits = bits
    f.row_bytes = data.shape[1]
    f.lut = &lut[0]
    if n_bags <= 0 or dim == 0:
        return
    with nogil:
        for b in prange(n_bags, schedule="static", num_threads=n_threads):
            embc_bag(&f, base, idx, offsets[b], offsets[b + 1], n_idx, w, mode, &out[b, 0])
