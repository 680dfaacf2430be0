"""The co-access layout's union-find: the compiled kernel against its Python twin, in one process.

    python benchmarks/bench_coaccess.py                        # the sizes recorded in benchmarks/README.md
    python benchmarks/bench_coaccess.py --rows 100000 --edges 50000   # quick

``coaccess_order`` merges rows along co-access edges, heaviest first, while a group fits a 4 KiB
block (``--cap`` rows). This times that step (``placement._union_groups``: the rows with an edge
numbered, then the capacity-bounded union-find) on ``--edges`` random edges over ``--rows`` rows,
with the compiled ``_groups`` kernel and with ``EMBCOMPRESS_KERNELS=numpy`` (the Python twin the
kernel replaced), checks that both give the same roots, and prints seconds and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

from embcompress.kernels import compiled  # noqa: E402
from embcompress.store import placement  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--edges", type=int, default=3_000_000)
    ap.add_argument("--cap", type=int, default=62, help="rows a block holds (62: 66-byte rows in 4 KiB)")
    args = ap.parse_args()
    if compiled("_groups") is None:
        raise SystemExit("the compiled kernels are not built (make install)")
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, args.rows, args.edges), rng.integers(0, args.rows, args.edges)
    keep = i != j
    i, j = i[keep], j[keep]
    print(machine())
    print(f"{len(i)} random edges over {args.rows} rows, groups of at most {args.cap} rows, 1 thread")
    got = {}
    for name, setting in (("ours: compiled _groups", "cython"), ("anchor: Python twin", "numpy")):
        os.environ["EMBCOMPRESS_KERNELS"] = setting
        start = time.perf_counter()
        got[name] = (placement._union_groups(i, j, args.cap, args.rows), time.perf_counter() - start)
    (r1, n1), ours = got["ours: compiled _groups"]
    (r2, n2), anchor = got["anchor: Python twin"]
    if not (np.array_equal(r1, r2) and np.array_equal(n1, n2)):
        raise SystemExit("MISMATCH: the compiled union-find gives other groups than the Python twin")
    print(f"anchor: Python twin      {anchor:8.2f} s")
    print(f"ours: compiled _groups   {ours:8.2f} s   {anchor / ours:5.1f}x anchor")


if __name__ == "__main__":
    main()
