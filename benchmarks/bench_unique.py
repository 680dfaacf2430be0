"""The tiered store's batch dedup against np.unique, on the same ids.

    python benchmarks/bench_unique.py                       # the sizes recorded in benchmarks/README.md
    python benchmarks/bench_unique.py --sizes 32 4096 --repeat 5   # quick

Every lookup through a ``TieredStore`` first finds a batch's unique ids, how often each is asked
and where each lookup lands among them. The anchor is ``np.unique(ids, return_inverse=True,
return_counts=True)`` (what the store called before: it sorts); ours is
``embcompress.kernels.unique.unique_ids`` (one pass over a hash table; first-seen order), checked
to give the same sets, counts and inverse. Ids: ``--sizes`` lookups drawn uniformly or by
Zipf(``--zipf``) over ``--rows`` randomly placed rows, as ``bench_lookup.py`` draws them. One
thread (neither runs more). Best of ``--repeat`` runs, each size and distribution in turn.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

from embcompress.kernels import backend  # noqa: E402
from embcompress.kernels.unique import unique_ids  # noqa: E402


def best(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def same(ids, ours, anchor) -> bool:
    """Same unique set, counts and inverse, whatever the order of the unique ids."""
    (u, inv, cnt), (au, ainv, acnt) = ours, anchor
    order = np.argsort(u)
    return (np.array_equal(u[order], au) and np.array_equal(cnt[order], acnt)
            and np.array_equal(u[inv], ids) and np.array_equal(au[ainv.reshape(-1)], ids))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 4096, 262144])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--zipf", type=float, default=1.05)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"machine: {machine()}; backend {backend()}; 1 thread; best of {args.repeat}")
    place = rng.permutation(args.rows)
    p = 1.0 / np.arange(1, args.rows + 1) ** args.zipf
    p /= p.sum()
    print(f"{'ids':>8} {'distribution':<12} {'np.unique us':>13} {'ours us':>9} {'ratio':>7}")
    for n in args.sizes:
        for dist in ("uniform", f"zipf{args.zipf:g}"):
            ids = (rng.integers(0, args.rows, n) if dist == "uniform" else place[rng.choice(args.rows, n, p=p)]).astype(np.int64)
            t_anchor, want = best(lambda: np.unique(ids, return_inverse=True, return_counts=True), args.repeat)
            t_ours, got = best(lambda: unique_ids(ids), args.repeat)
            if not same(ids, got, want):
                print(f"MISMATCH: unique_ids and np.unique disagree on {n} {dist} ids")
                return 1
            print(f"{n:>8} {dist:<12} {t_anchor * 1e6:>13.1f} {t_ours * 1e6:>9.1f} {t_anchor / t_ours:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
