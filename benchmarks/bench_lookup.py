"""Pooled lookup: embcompress's kernel against torch's own CPU kernels, in one process.

A float32 table (default 2,000,000 x 128) is quantized to each format; 8192 bags of 32 ids each
(uniform, or Zipf(1.05) over randomly placed hot rows) are pooled (sum) with 1 and 2 threads by

- ours: ``embcompress.pooled_lookup`` on mxint8, mxfp8_e4m3, mxfp8_e5m2, mxfp4_e2m1, int8_rowwise,
  int4_rowwise and fp32 tables;
- torch: ``torch.ops.quantized.embedding_bag_byte_rowwise_offsets`` and
  ``embedding_bag_4bit_rowwise_offsets`` on the same float table prepacked by
  ``embedding_bag_byte_prepack`` / ``embedding_bag_4bit_prepack``, and ``F.embedding_bag`` on fp32.

Prints rows per second, GB/s of row records read, and the ratios (ours / torch's int8 operator for
8-bit formats, / torch's int4 operator for 4-bit formats, / F.embedding_bag for fp32), the
machine and thread counts. Times are the best of ``--repeat`` rounds after a warm-up, the kernels
taking turns within each round so that load from other processes falls on all of them alike.

    python benchmarks/bench_lookup.py                # the issue's size
    python benchmarks/bench_lookup.py --rows 200000  # quicker
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from machine import machine  # benchmarks/machine.py: the description every benchmark prints

OURS_8BIT = ["mxint8", "mxfp8_e4m3", "mxfp8_e5m2", "int8_rowwise"]
OURS_4BIT = ["mxfp4_e2m1", "int4_rowwise"]


def zipf_ids(rng, n_rows: int, size: int, a: float) -> np.ndarray:
    """Zipf(a) ranks over n_rows (bounded, by inverse CDF), sent to a random permutation of rows."""
    cdf = np.cumsum(np.arange(1, n_rows + 1, dtype=np.float64) ** -a)
    ranks = np.searchsorted(cdf, rng.random(size) * cdf[-1])
    return rng.permutation(n_rows)[np.minimum(ranks, n_rows - 1)].astype(np.int64)


def check_pooled(name: str, got, rows_of, ids: np.ndarray, bags: int, bag_len: int) -> None:
    """Stop unless ``got`` is the sum pooling of the decoded rows ``rows_of(unique ids)`` over the
    bags (a float64 reference): the timed kernels must compute what the ratios compare."""
    u, inv = np.unique(ids, return_inverse=True)
    rows = np.asarray(rows_of(u), dtype=np.float32)[inv]
    want = rows.reshape(bags, bag_len, -1).sum(axis=1, dtype=np.float64)
    err = np.abs(np.asarray(got, dtype=np.float64) - want).max(initial=0.0)
    # float32 accumulation of bag_len rows stays far inside this bound; NaN fails it
    if not err <= 1e-5 * bag_len * max(1.0, float(np.abs(rows).max(initial=0.0))):
        raise SystemExit(f"MISMATCH: {name} is not the sum pooling of its table's rows (max error {err:.3g}); "
                         "the benchmark would compare different work")


def best_interleaved(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Best wall time and best thread CPU time of each callable over ``repeat`` rounds, the
    callables taking turns within a round so that load from other processes falls on all alike.

    With one thread both kernels run on the calling thread, so its CPU time leaves out the time
    other processes hold the core: the steadier figure on a shared machine."""
    for fn in fns.values():
        fn()
    wall = dict.fromkeys(fns, float("inf"))
    cpu = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            c0, t0 = time.thread_time(), time.perf_counter()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], time.thread_time() - c0)
    return wall, cpu


def times_interleaved(fns: dict, rounds: int, sweep=None) -> dict:
    """Wall times of each callable over ``rounds`` rounds after a warm-up round, the callables
    taking turns within a round (``sweep``, if given, called before each turn: the caches swept),
    for medians: ``benchmarks/ab_lookup.py`` and ``read_ceiling_torch.py``."""
    times: dict = {name: [] for name in fns}
    for r in range(rounds + 1):
        for name, fn in fns.items():
            if sweep is not None:
                sweep()
            t0 = time.perf_counter()
            fn()
            if r:  # (round 0 warms up)
                times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--bags", type=int, default=8192)
    ap.add_argument("--bag-len", type=int, default=32)
    ap.add_argument("--zipf", type=float, default=1.05)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--formats", nargs="+", default=OURS_8BIT + OURS_4BIT + ["fp32"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    # Our tables are NumPy arrays, which NumPy backs with transparent huge pages where the kernel
    # allows it (THP "madvise"); ask torch's allocator for the same, so both kernels see the same
    # TLB behaviour on the same table.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    import torch
    import torch.nn.functional as F

    import embcompress
    from embcompress.formats import to_torch_packed
    from embcompress.kernels import backend, compiled

    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    xt = torch.from_numpy(x)
    n_idx = args.bags * args.bag_len
    offsets = np.arange(args.bags, dtype=np.int64) * args.bag_len
    id_sets = {
        "uniform": rng.integers(0, args.rows, n_idx, dtype=np.int64),
        f"zipf{args.zipf}": zipf_ids(rng, args.rows, n_idx, args.zipf),
    }

    print(f"machine: {machine()}")
    kernel = compiled("_lookup")
    isa = "" if kernel is None else f" ({kernel.__name__.rsplit('.', 1)[1]}: {kernel.vector_isa()} decoders)"
    print(f"torch {torch.__version__}, embcompress backend: {backend()}{isa}, "
          f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE')}")
    print(f"table {args.rows} x {args.dim}, {args.bags} bags of {args.bag_len} ids, mode sum, best of {args.repeat}")

    torch_tables = {
        "torch_int8": torch.ops.quantized.embedding_bag_byte_prepack(xt),
        "torch_int4": torch.ops.quantized.embedding_bag_4bit_prepack(xt),
    }
    ours = {}
    for fmt in args.formats:
        t0 = time.perf_counter()
        ours[fmt] = embcompress.quantize(x, fmt)
        print(f"  quantized {fmt:<13} {ours[fmt].row_bytes:4d} B/row in {time.perf_counter() - t0:6.1f} s")
    # The rows torch's kernels decode: our row-wise tables hold the bytes of torch's prepack.
    torch_rows = {"torch_fp32": lambda u: x[u]}
    for name, fmt in (("torch_int8", "int8_rowwise"), ("torch_int4", "int4_rowwise")):
        q = ours[fmt] if fmt in ours else embcompress.quantize(x, fmt)
        if not np.array_equal(to_torch_packed(q), torch_tables[name].numpy()):
            raise SystemExit(f"MISMATCH: {fmt} bytes differ from torch's prepack; the anchor's table is not ours")
        torch_rows[name] = lambda u, q=q: q.take(u).dequantize()

    rows = []
    for dist, ids in id_sets.items():
        it, ot = torch.from_numpy(ids), torch.from_numpy(offsets)
        for threads in args.threads:
            torch.set_num_threads(threads)
            out = np.empty((args.bags, args.dim), dtype=np.float32)
            fns = {
                "torch_int8": lambda: torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
                    torch_tables["torch_int8"], it, ot, False, 0, False, None, None, False),
                "torch_int4": lambda: torch.ops.quantized.embedding_bag_4bit_rowwise_offsets(
                    torch_tables["torch_int4"], it, ot, False, 0, False, None, None, False),
                "torch_fp32": lambda: F.embedding_bag(it, xt, ot, mode="sum"),
            }
            for fmt, q in ours.items():
                fns[fmt] = lambda q=q: embcompress.pooled_lookup(q, ids, offsets, n_threads=threads, out=out)
            for name, fn in fns.items():
                rows_of = torch_rows[name] if name in torch_rows else lambda u, q=ours[name]: q.take(u).dequantize()
                check_pooled(f"{name} ({dist}, {threads} threads)", np.asarray(fn()), rows_of, ids, args.bags, args.bag_len)
            res, cpu = best_interleaved(fns, args.repeat)
            for name, sec in res.items():
                row_bytes = (
                    torch_tables[name].shape[1] if name in torch_tables else
                    args.dim * 4 if name == "torch_fp32" else ours[name].row_bytes
                )
                anchor = (
                    "torch_int8" if name in OURS_8BIT else "torch_int4" if name in OURS_4BIT else
                    "torch_fp32" if name == "fp32" else None
                )
                cpu_ratio = cpu[anchor] / cpu[name] if anchor and threads == 1 else None
                rows.append((dist, threads, name, sec, n_idx / sec, n_idx * row_bytes / sec / 1e9,
                             res[anchor] / sec if anchor else None, anchor, cpu[name] if threads == 1 else None, cpu_ratio))
    base = {(d, n): s for d, t, n, s, *_ in rows if t == min(args.threads)}
    print("\nwall: best wall-clock time; cpu: best CPU time of the calling thread (1 thread only: both")
    print("kernels then run on it), which leaves out time other processes hold the core.")

    print()
    print(f"{'ids':<10} {'thr':>3} {'kernel':<14} {'wall ms':>8} {'Mrows/s':>8} {'GB/s':>6} {'vs torch':>9} "
          f"{'vs 1 thr':>8} {'cpu ms':>8} {'cpu vs torch':>12}")
    for dist, threads, name, sec, rps, gbs, ratio, anchor, cpu_s, cpu_ratio in rows:
        scale = base[(dist, name)] / sec if threads != min(args.threads) else None
        print(
            f"{dist:<10} {threads:>3} {name:<14} {sec * 1e3:8.2f} {rps / 1e6:8.1f} {gbs:6.2f} "
            f"{'' if ratio is None else f'{ratio:5.2f}x ' + anchor.removeprefix('torch_'):>9} "
            f"{'' if scale is None else f'{scale:5.2f}x':>8} "
            f"{'' if cpu_s is None else f'{cpu_s * 1e3:8.2f}':>8} "
            f"{'' if cpu_ratio is None else f'{cpu_ratio:5.2f}x ' + anchor.removeprefix('torch_'):>12}"
        )


if __name__ == "__main__":
    main()
