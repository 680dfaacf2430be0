"""IdMap.lookup against np.searchsorted on the same sorted ids.

    python benchmarks/bench_idmap.py                          # 1M ids, 10M Zipf queries (README figures)
    python benchmarks/bench_idmap.py --ids 100000 --queries 1000000   # quick

The map holds ``--ids`` distinct int64 ids scattered over 2^40 (so it is a hash table, not a
direct array), each with a row in [0, 65536). Queries are drawn from those ids by a Zipf law
(exponent ``--zipf``) over a random popularity order. The anchor is what a sorted-array map does:
``np.searchsorted`` on the sorted ids, then the row of the found position (one process, same
queries, same answers checked). Ours runs at 1 and 2 threads. A second line times a map over the
dense ids 0..n-1 (the direct-array layout). Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

from embcompress.idmap import IdMap  # noqa: E402
from embcompress.kernels import backend  # noqa: E402




def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def run(n_ids, n_queries, zipf, n_rows, repeat, seed):
    rng = np.random.default_rng(seed)
    results = []
    for layout in ("hash", "direct"):
        ids = rng.choice(2**40, n_ids, replace=False).astype(np.int64) if layout == "hash" else np.arange(n_ids, dtype=np.int64)
        rows = rng.integers(0, n_rows, n_ids)
        t0 = time.perf_counter()
        m = IdMap.from_arrays(ids, rows, n_rows, seed=seed)
        build = time.perf_counter() - t0
        p = 1.0 / np.arange(1, n_ids + 1) ** zipf
        queries = ids[rng.permutation(n_ids)][rng.choice(n_ids, n_queries, p=p / p.sum())]
        order = np.argsort(ids)
        sorted_ids, sorted_rows = ids[order], rows[order]

        def anchor():
            pos = np.searchsorted(sorted_ids, queries)
            return sorted_rows[pos]  # every query is a mapped id here

        t_anchor, want = best(anchor, repeat)
        line = {"layout": m.layout, "build_s": build, "anchor_s": t_anchor, "nbytes": m.nbytes,
                "sorted_bytes": sorted_ids.nbytes + sorted_rows.astype(m.row_dtype).nbytes}
        for threads in (1, 2):
            t, got = best(lambda: m.lookup(queries, n_threads=threads), repeat)
            if not np.array_equal(got, want):
                raise SystemExit("IdMap.lookup and searchsorted disagree")
            line[f"ours_{threads}t_s"] = t
        results.append(line)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=10_000_000)
    ap.add_argument("--zipf", type=float, default=1.05)
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}; kernels: {backend()}")
    print(f"{args.ids:,} mapped ids, {args.queries:,} Zipf({args.zipf}) queries, rows in [0, {args.rows})")
    for r in run(args.ids, args.queries, args.zipf, args.rows, args.repeat, args.seed):
        print(f"[{r['layout']}] build {r['build_s']:.2f}s, map {r['nbytes'] / 2**20:.1f} MiB (sorted arrays {r['sorted_bytes'] / 2**20:.1f} MiB)")
        print(f"  np.searchsorted (anchor): {r['anchor_s']:.3f}s")
        for t in (1, 2):
            s = r[f"ours_{t}t_s"]
            print(f"  IdMap.lookup, {t} thread{'s' if t > 1 else ''}: {s:.3f}s  ({args.queries / s / 1e6:.0f} M lookups/s, "
                  f"{r['anchor_s'] / s:.1f}x the anchor)")


if __name__ == "__main__":
    main()
