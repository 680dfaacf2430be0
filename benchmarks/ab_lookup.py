"""Two builds of the lookup kernel against each other, taking turns in one process.

    python benchmarks/ab_lookup.py A.so B.so [--rows 1000] [--zipf 0] [--rounds 15] [--formats ...]

A and B are compiled ``_lookup`` modules, for instance the package's own and a variant built
elsewhere with other flags:

    CFLAGS=-DEMBC_PREFETCH_ROWS=16 python setup.py build_ext -b /tmp/variant
    python benchmarks/ab_lookup.py embcompress/kernels/_lookup.*.so \\
        /tmp/variant/embcompress/kernels/_lookup.*.so --rows 2000000

Why it exists: on a shared virtual machine a kernel's speed drifts by up to 2x within minutes, so
two builds timed one after the other compare the machine's moods, not the builds. Here the two
run the same bags on the same table in alternation, round after round (a 512 MiB sweep between
turns when the table is larger than the caches), and the median ratio B / A is printed with both
medians and bests. Identical builds measured 0.98-1.02 this way; two builds of different code
can differ by up to 10 % from code placement alone, so read smaller ratios as no difference.
The outputs of A and B must be the same bits, or it exits with an error.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402


def load(path: str):
    """A compiled ``_lookup`` module from its file, under the name its file gives (``_lookup``, or
    ``_lookup_avx2`` and the like of a portable build: the init function is named for it); each
    file loads as a module of its own."""
    spec = importlib.util.spec_from_file_location(Path(path).name.split(".")[0], path)
    try:
        if spec is None or spec.loader is None:
            raise ImportError("not a Python extension module's file name")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except ImportError as exc:
        raise SystemExit(f"{path}: not a loadable module file ({exc}); give a built _lookup*.so, "
                         "as the docstring's build_ext -b line makes") from None
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rows", type=int, default=1000, help="table rows (1000: in L2, the decoding's own speed)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--zipf", type=float, default=0.0, help="Zipf exponent of the ids, 0 for uniform")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--formats", nargs="+", default=["mxint8", "mxfp8_e4m3", "mxfp4_e2m1"])
    args = ap.parse_args()

    from bench_lookup import times_interleaved, zipf_ids

    import embcompress
    from embcompress.kernels.lookup import _plan

    mods = [load(args.a), load(args.b)]
    print(machine())
    print(f"A {args.a}\nB {args.b}")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    n_bags, bag = 8192, 32
    ids = zipf_ids(rng, args.rows, n_bags * bag, args.zipf) if args.zipf > 0 else \
        rng.integers(0, args.rows, n_bags * bag, dtype=np.int64)
    offsets = np.arange(n_bags + 1, dtype=np.int64) * bag  # the kernel's form: n_bags + 1 bounds
    sweep = np.ones(1 << 27, dtype=np.float32) if args.rows * args.dim > 1 << 22 else None
    print(f"table {args.rows} x {args.dim}, {n_bags} bags of {bag}, {'zipf' + str(args.zipf) if args.zipf else 'uniform'}"
          f" ids, sum, 1 thread, {args.rounds} rounds; Mrows/s")
    for fmt in args.formats:
        q = embcompress.quantize(x, fmt)
        data = np.ascontiguousarray(q.data)
        plans = [_plan(m, fmt, args.dim, q.block_size, data.shape[1]) for m in mods]
        outs = [np.empty((n_bags, args.dim), dtype=np.float32) for _ in mods]
        fns = {k: (lambda m=m, plan=plan, out=out: m.pool(plan, data, ids, offsets, None, 0, out, 1))
               for k, (m, plan, out) in enumerate(zip(mods, plans, outs))}
        times = times_interleaved(fns, args.rounds, None if sweep is None else sweep.sum)
        if not np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32)):
            raise SystemExit(f"MISMATCH: {fmt}: A and B pool different bits")
        rate = [(ids.size / np.median(t) / 1e6, ids.size / min(t) / 1e6) for t in times.values()]
        print(f"{fmt:<12} A median {rate[0][0]:6.1f} best {rate[0][1]:6.1f} | "
              f"B median {rate[1][0]:6.1f} best {rate[1][1]:6.1f} | B / A {rate[1][0] / rate[0][0]:5.2f}")


if __name__ == "__main__":
    main()
