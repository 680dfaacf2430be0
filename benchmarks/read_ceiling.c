/* The random-row read ceiling of this machine, for benchmarks/README.md ("Pooled lookup").
 *
 *   cc -O2 -march=native -o /tmp/read_ceiling benchmarks/read_ceiling.c -lm
 *   /tmp/read_ceiling          (uniform ids)
 *   /tmp/read_ceiling 1.05     (Zipf(1.05) ids over randomly placed rows, as bench_lookup.py draws)
 *
 * Reads rows of 68, 132 and 136 bytes (mxfp4 / torch int4, MX8, torch int8 records) at random
 * from a 2,000,000-row table on huge pages, prefetching each line of a row once, rows 32 ahead
 * into L2 and 8 ahead into L1, as the lookup kernel does, with fresh random ids every round (16
 * rounds of 262,144 ids, the best round counts). "touch" reads one byte of every cache line of a
 * row; "decode" widens the row's bytes to floats and adds them into eight accumulators, the
 * lookup kernel's work without the scales. No pooling, no output: what a kernel reading these
 * rows cannot beat. Each is run twice: "warm", round after round on the same table (part of it
 * stays in this machine's large L3), and "swept", with 512 MiB read between rounds, as the other
 * kernels' turns in bench_lookup.py sweep the caches. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* the decode's vectors: AVX-512 (16 bytes widened at a time), else AVX2 (8 at a time) */
#ifdef __AVX512F__
#define VACC __m512
#define VW 16
#define VZERO _mm512_setzero_ps()
#define VADD _mm512_add_ps
#define VWIDEN(q) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q))))
#define VSUM _mm512_reduce_add_ps
#else
#define VACC __m256
#define VW 8
#define VZERO _mm256_setzero_ps()
#define VADD _mm256_add_ps
#define VWIDEN(q) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q))))
static float VSUM(__m256 v) { float f[8]; _mm256_storeu_ps(f, v); return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7]; }
#endif

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

/* one prefetch per line of the row at p: lines p, p + 64, ..., and the last byte's if it lies
   beyond them (inlined: a call would spill the accumulators) */
#define PREFETCH_ROW(p, rb, hint) do {                                                            \
        const char *p_ = (p);                                                                    \
        for (int o_ = 0; o_ < (rb); o_ += 64) _mm_prefetch(p_ + o_, hint);                       \
        if ((int)((uintptr_t)p_ & 63) + (rb) - 1 >= (((rb) + 63) & ~63)) _mm_prefetch(p_ + (rb) - 1, hint); \
    } while (0)

static void run(const uint8_t *d, int rb, const int64_t *ids, long n, int rounds, int decode, const uint8_t *sweep) {
    const int lines = (rb + 63) / 64;
    double best = 1e9;
    float sink[16] = {0};
    uint64_t swept = 0;
    for (int r = 0; r < rounds; r++) {
        if (sweep) for (size_t k = 0; k < ((size_t)1 << 29); k += 64) swept += sweep[k];
        const int64_t *idx = ids + (size_t)r * n;
        VACC acc[8];
        for (int c = 0; c < 8; c++) acc[c] = VZERO;
        uint64_t touched = 0;
        const double t0 = now();
        for (long i = 0; i < n; i++) {
            if (i + 32 < n) PREFETCH_ROW((const char *)d + idx[i + 32] * rb, rb, _MM_HINT_T2);
            if (i + 8 < n) PREFETCH_ROW((const char *)d + idx[i + 8] * rb, rb, _MM_HINT_T0);
            const uint8_t *p = d + idx[i] * rb;
            if (decode) {
                for (int c = 0; c < 128 / VW && 4 + VW * c + VW <= rb; c++)
                    acc[c % 8] = VADD(acc[c % 8], VWIDEN(p + 4 + VW * c));
            } else {
                for (int l = 0; l < lines; l++) touched += p[l * 64 < rb ? l * 64 : rb - 1];
            }
        }
        const double t = now() - t0;
        if (t < best) best = t;
        for (int c = 0; c < 8; c++) sink[0] += VSUM(acc[c]);
        sink[1] += (float)touched;
    }
    printf("%3d B rows (%d lines), %-5s %-6s: %6.1f M rows/s, %6.1f M lines/s   (%g)\n", rb, lines,
           sweep ? "swept" : "warm", decode ? "decode" : "touch", n / best / 1e6, n * (double)lines / best / 1e6,
           sink[0] + sink[1] + (float)(swept & 1));
}

static uint64_t state = 88172645463325252ull;
static uint64_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }

int main(int argc, char **argv) {
    const long rows = 2000000, n = 262144;
    const int rounds = 16, sizes[] = {68, 132, 136};
    const double a = argc > 1 ? atof(argv[1]) : 0;
    int64_t *ids = malloc(sizeof(int64_t) * n * rounds);
    if (!ids) return 1;
    if (a > 0) {  /* Zipf(a) ranks by inverse CDF, sent to a random permutation of the rows */
        double *cdf = malloc(sizeof(double) * rows), total = 0;
        int64_t *perm = malloc(sizeof(int64_t) * rows);
        if (!cdf || !perm) return 1;
        for (long i = 0; i < rows; i++) { total += pow(i + 1, -a); cdf[i] = total; perm[i] = i; }
        for (long i = rows - 1; i > 0; i--) { const long j = next() % (i + 1); const int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        for (long i = 0; i < n * rounds; i++) {
            const double u = (next() >> 11) * (1.0 / 9007199254740992.0) * total;
            long lo = 0, hi = rows - 1;
            while (lo < hi) { const long m = (lo + hi) / 2; if (cdf[m] < u) lo = m + 1; else hi = m; }
            ids[i] = perm[lo];
        }
        free(cdf); free(perm);
    } else {
        for (long i = 0; i < n * rounds; i++) ids[i] = (int64_t)(next() % rows);
    }
    printf("%s ids, 2,000,000 rows, best of %d rounds of %ld\n", a > 0 ? "Zipf" : "uniform", rounds, n);
    uint8_t *sweep = aligned_alloc(2u << 20, (size_t)1 << 29);
    if (!sweep) return 1;
    madvise(sweep, (size_t)1 << 29, MADV_HUGEPAGE);
    memset(sweep, 1, (size_t)1 << 29);
    for (int k = 0; k < 3; k++) {
        const int rb = sizes[k];
        const size_t bytes = ((size_t)rows * rb + (2u << 20)) & ~(size_t)((2u << 20) - 1);
        uint8_t *d = aligned_alloc(2u << 20, bytes);
        if (!d) return 1;
        madvise(d, bytes, MADV_HUGEPAGE);
        memset(d, 1, bytes);
        for (int swept = 0; swept < 2; swept++) {
            run(d, rb, ids, n, rounds, 0, swept ? sweep : NULL);
            run(d, rb, ids, n, rounds, 1, swept ? sweep : NULL);
        }
        free(d);
    }
    free(ids);
    free(sweep);
    return 0;
}
