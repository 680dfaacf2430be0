"""fit_hash at scale: 1,000,000 distinct ids with 16-dimensional embeddings into 65,536 rows.

    python benchmarks/bench_fit_hash.py                       # the README figures
    python benchmarks/bench_fit_hash.py --ids 100000 --rows 8192     # quick

Ids are scattered int64 values with Zipf access counts (rank r: ``1e8 / r^zipf``); their embeddings are drawn
around ``--groups`` planted centres (so the clustering has structure to find) and passed to
``fit_hash(..., embedding=(ids, vectors))``: the timed work is choosing hot rows, FAISS k-means
(two levels at this size) and building the map. The anchor, in the same process, is the
frequency baseline on the same stats (hot ids own rows, the rest hashed: no learning). Also
printed: the map's bytes and the share of accesses whose id shares its row, for both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

from embcompress.kernels import resolve_threads  # noqa: E402
from learned_hash import LogStats, fit_hash  # noqa: E402




def size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--groups", type=int, default=20000)
    ap.add_argument("--zipf", type=float, default=1.05)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-share", type=float, default=None, help="also balance bucket traffic to this share")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    threads = resolve_threads(args.threads)
    print(f"machine: {machine()}; threads: {threads}")
    rng = np.random.default_rng(args.seed)
    ids = rng.choice(2**40, args.ids, replace=False).astype(np.int64)
    # the id of popularity rank r is accessed about 1e8 / r^zipf times (at least once)
    counts = (1e8 / np.arange(1, args.ids + 1) ** args.zipf).astype(np.int64) + 1
    centres = rng.standard_normal((args.groups, args.dim)).astype(np.float32)
    vectors = centres[rng.integers(0, args.groups, args.ids)] + 0.3 * rng.standard_normal((args.ids, args.dim)).astype(np.float32)
    stats = LogStats.from_arrays({"item": (ids, counts)}, source="bench_fit_hash synthetic")
    print(f"{args.ids:,} ids ({int(counts.sum()):,} accesses, Zipf {args.zipf}), {args.dim}-dim embeddings -> {args.rows:,} rows")

    t = time.perf_counter()
    base = fit_hash(stats, "item", args.rows, method="frequency", seed=args.seed)
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    m = fit_hash(stats, "item", args.rows, embedding=(ids, vectors), max_share=args.max_share,
                 n_threads=threads, seed=args.seed)
    t_ours = time.perf_counter() - t
    km = m.config["cluster"]
    print(f"anchor, frequency baseline: {t_base:.2f}s; map {size(base.nbytes)}, "
          f"{base.meta['collision_share']:.1%} of accesses collide")
    print(f"fit_hash learned: {t_ours:.1f}s ({t_ours / t_base:.0f}x the anchor); {m.meta['hot_ids']:,} hot rows, "
          f"{km['algorithm']} with {km['coarse_clusters']} coarse clusters, {km['n_iter']} iterations, "
          f"moved by balancing {km['moved_by_balance']:,}; map {size(m.nbytes)}, "
          f"{m.meta['collision_share']:.1%} of accesses collide")


if __name__ == "__main__":
    main()
