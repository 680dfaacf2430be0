/* The lookup kernel timed from C, without Python, with or without its software prefetches.
 * Built and run by benchmarks/kernel_harness.py, which extracts the kernel's C code from
 * embcompress/kernels/_lookup.pyx into kernel.h beside this file's build.
 *
 *   harness <rows> <zipf exponent, 0 = uniform> <rounds>
 *
 * An mxint8 table of <rows> x 128 (random codes, scale bytes 120-129) on huge pages; 8192 bags of
 * 32 ids drawn once (uniform, or Zipf over randomly placed rows, as bench_lookup.py draws them);
 * sum pooling on one thread through embc_bags, runs of 32 bags as the compiled module hands
 * them out. Before each round a 512 MiB buffer is swept, as the other kernels' turns sweep the
 * caches in bench_lookup.py. Prints the best round's rows per second. */
#include "kernel.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t state = 88172645463325252ull;
static uint64_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: harness rows zipf rounds\n"); return 2; }
    const long rows = atol(argv[1]), n_bags = 8192, bag = 32, n = n_bags * bag;
    const double a = atof(argv[2]);
    const int rounds = atoi(argv[3]);
    static float scales[256], scales6[256];
    for (int v = 0; v < 256; v++) { scales[v] = ldexpf(1.f, v - 127); scales6[v] = ldexpf(1.f, v - 133); }
    scales[255] = scales6[255] = NAN;
    static const float lut[1] = {0};
    embc_fmt f;
    memset(&f, 0, sizeof f);
    f.kind = EMBC_MXINT8; f.dim = 128; f.block = 32; f.nb = 4; f.bits = 8; f.simd = 2;
    f.row_bytes = 4 + 128; f.lut = lut; f.scales = scales; f.scales6 = scales6;
    embc_prepare(&f);

    const size_t bytes = ((size_t)rows * f.row_bytes + (2u << 20)) & ~(size_t)((2u << 20) - 1);
    uint8_t *data = aligned_alloc(2u << 20, bytes), *sweep = aligned_alloc(2u << 20, (size_t)1 << 29);
    int64_t *idx = malloc(sizeof(int64_t) * n), *offsets = malloc(sizeof(int64_t) * (n_bags + 1));
    float *out = aligned_alloc(64, sizeof(float) * n_bags * 128);
    if (!data || !sweep || !idx || !offsets || !out) return 1;
    madvise(data, bytes, MADV_HUGEPAGE);
    madvise(sweep, (size_t)1 << 29, MADV_HUGEPAGE);
    memset(sweep, 1, (size_t)1 << 29);
    for (size_t i = 0; i < bytes; i++) data[i] = (uint8_t)next();
    for (long r = 0; r < rows; r++) for (int k = 0; k < 4; k++) data[r * f.row_bytes + k] = 120 + next() % 10;

    if (a > 0) {  /* Zipf(a) ranks by inverse CDF, sent to a random permutation of the rows */
        double *cdf = malloc(sizeof(double) * rows), total = 0;
        int64_t *perm = malloc(sizeof(int64_t) * rows);
        for (long i = 0; i < rows; i++) { total += pow(i + 1, -a); cdf[i] = total; perm[i] = i; }
        for (long i = rows - 1; i > 0; i--) { long j = next() % (i + 1); int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
        for (long i = 0; i < n; i++) {
            const double u = (next() >> 11) * (1.0 / 9007199254740992.0) * total;
            long lo = 0, hi = rows - 1;
            while (lo < hi) { const long m = (lo + hi) / 2; if (cdf[m] < u) lo = m + 1; else hi = m; }
            idx[i] = perm[lo];
        }
        free(cdf); free(perm);
    } else {
        for (long i = 0; i < n; i++) idx[i] = next() % rows;
    }
    for (long b = 0; b <= n_bags; b++) offsets[b] = b * bag;

    double best = 1e9;
    volatile uint64_t sink = 0;
    volatile int mode = EMBC_SUM;  /* a run-time mode, as the compiled module passes it */
    for (int r = 0; r < rounds; r++) {
        for (size_t k = 0; k < ((size_t)1 << 29); k += 64) sink += sweep[k];
        const double t0 = now();
        for (long b = 0; b < n_bags; b += 32) embc_bags(&f, data, idx, offsets, b, b + 32, NULL, mode, out);
        const double t = now() - t0;
        if (t < best) best = t;
    }
    double check = 0;
    for (long i = 0; i < n_bags * 128; i++) check += out[i];
    printf("%.1f\t%g\n", n / best / 1e6, check);
    return 0;
}
