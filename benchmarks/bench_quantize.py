"""Quantize a float32 table to every format: ours against the anchors, in one process.

Anchors: torchao's CPU MX cast (``torchao.prototype.mx_formats.mx_tensor.to_mx``, floor scale,
the function ``MXTensor.to_mx`` calls) for the MXFP formats, and torch's fbgemm prepack
(``torch.ops.quantized.embedding_bag_{byte,4bit,2bit}_prepack``) for the row-wise formats.
Formats no anchor implements (MXINT8, MX9/6/4, fp16/bf16) print our time only.

    python benchmarks/bench_quantize.py                  # 1,048,576 x 128, every format
    python benchmarks/bench_quantize.py --rows 65536     # smaller
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from machine import machine  # noqa: E402

# issue 2, section 3: speedup targets against torchao on a 2-core machine
TARGETS = {"mxfp4_e2m1": 10.0, "mxfp6_e3m2": 10.0, "mxfp6_e2m3": 10.0, "mxfp8_e4m3": 3.0, "mxfp8_e5m2": 3.0}




def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all threads) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def best_interleaved(fns, repeat: int) -> list[tuple[float, float]]:
    """Best (wall, cpu) of each function, the functions run in turn so load hits them alike."""
    best = [(float("inf"), float("inf"))] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            w, c = timed(fn)
            best[i] = (min(best[i][0], w), min(best[i][1], c))
    return best


def check_same(fmt: str, q, theirs: np.ndarray) -> None:
    """Stop unless our table equals the anchor's (torch's prepack bytes, or torchao's decoded values)."""
    from embcompress.formats import to_torch_packed

    ours = to_torch_packed(q) if fmt.endswith("_rowwise") else q.dequantize()
    if not np.array_equal(ours, theirs.reshape(ours.shape), equal_nan=ours.dtype.kind == "f"):
        raise SystemExit(f"MISMATCH in {fmt}: ours and the anchor made different tables; the benchmark would "
                         "compare different work")


def anchors():
    """format -> (name, callable(torch tensor), its result as an array comparable to ours) for the
    anchors that are installed."""
    out = {}
    try:
        import torch
    except ImportError:
        return out, None
    for fmt, op in (("int8_rowwise", "embedding_bag_byte_prepack"), ("int4_rowwise", "embedding_bag_4bit_prepack"),
                    ("int2_rowwise", "embedding_bag_2bit_prepack")):
        if hasattr(torch.ops.quantized, op):
            # what the anchor made, as comparable to ours: the fused row bytes our to_torch_packed gives
            out[fmt] = ("torch fbgemm prepack", getattr(torch.ops.quantized, op), lambda r: r.numpy())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2
            from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
    except Exception as exc:  # torchao missing or broken: ours still runs
        print(f"torchao not available ({type(exc).__name__}: {exc}); MX rows print ours only")
        return out, torch
    for fmt, dtype in (("mxfp8_e4m3", torch.float8_e4m3fn), ("mxfp8_e5m2", torch.float8_e5m2),
                       ("mxfp6_e3m2", DTYPE_FP6_E3M2), ("mxfp6_e2m3", DTYPE_FP6_E2M3),
                       ("mxfp4_e2m1", torch.float4_e2m1fn_x2)):
        # to_mx returns (scale, data); torchao's own decode gives the values, as our dequantize does
        out[fmt] = ("torchao to_mx", lambda t, d=dtype: to_mx(t, d, 32),
                    lambda r, d=dtype: to_dtype(r[1], r[0], d, 32, torch.float32).numpy())
    return out, torch


def main(argv=None) -> int:
    import embcompress
    from embcompress.formats import FORMATS
    from embcompress.kernels import backend, resolve_threads

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_048_576)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--formats", nargs="*", default=list(FORMATS))
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs, ours and the anchor in turn")
    p.add_argument("--threads", type=int, default=None, help="threads for ours and torch (default: all)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    threads = resolve_threads(args.threads)
    anchor, torch = anchors()
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"bench_quantize: {args.rows} x {args.dim} float32 (N(0,1), seed {args.seed}), best of {args.repeat}; "
          f"seconds are wall clock, cpu is the CPU time of all threads (less sensitive to other load)")
    print(f"machine: {machine()}")
    print(f"threads: {threads} (ours, OpenMP; torch set_num_threads), kernels: {backend()}, "
          f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch is not None else ""))
    x = np.random.default_rng(args.seed).standard_normal((args.rows, args.dim), dtype=np.float32)
    xt = torch.from_numpy(x) if torch is not None else None

    header = (f"{'format':<14}{'ours s':>9}{'anchor s':>10}{'speedup':>9}{'target':>8}"
              f"{'ours cpu':>10}{'anchor cpu':>11}{'cpu ratio':>10}  anchor")
    print(header)
    print("-" * len(header))
    ok = True
    for fmt in args.formats:
        ours_fn = lambda: embcompress.quantize(x, fmt, n_threads=threads)  # noqa: E731
        if fmt in anchor:
            name, fn, comparable = anchor[fmt]
            # one untimed call of each on a slice: the check, and the same warm-up for both sides
            check_same(fmt, embcompress.quantize(x[:4096], fmt, n_threads=threads), comparable(fn(xt[:4096])))
            (ours, ours_cpu), (theirs, theirs_cpu) = best_interleaved([ours_fn, lambda: fn(xt)], args.repeat)
            ratio = theirs / ours
            target = TARGETS.get(fmt)
            mark = "" if target is None else (" ok" if ratio >= target else " MISSED")
            ok &= target is None or ratio >= target
            tgt = f"{target:.0f}x" if target else "-"
            print(f"{fmt:<14}{ours:>9.3f}{theirs:>10.3f}{ratio:>8.1f}x{tgt:>8}"
                  f"{ours_cpu:>10.3f}{theirs_cpu:>11.3f}{theirs_cpu / ours_cpu:>9.1f}x  {name}{mark}")
        else:
            embcompress.quantize(x[:4096], fmt, n_threads=threads)  # the same untimed warm-up
            (ours, ours_cpu), = best_interleaved([ours_fn], args.repeat)
            print(f"{fmt:<14}{ours:>9.3f}{'-':>10}{'-':>9}{'-':>8}{ours_cpu:>10.3f}{'-':>11}{'-':>10}  (no anchor implements it)")
        sys.stdout.flush()
    print("all targets met" if ok else "some targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
