"""How fast this machine reads the rows, against torch's row-wise operator and ours, in one process.

    python benchmarks/read_ceiling_torch.py [--rows 2000000] [--zipf 0] [--rounds 12] [--bits 8|4]

The serving issue asks for mxint8 at 1.3x torch's int8 row-wise operator, and mxfp4_e2m1 at 1.3x
its int4 one. With ``--bits 8`` (default) both sides read three cache lines a row (132- and
136-byte records), with ``--bits 4`` two (68-byte records each), from a table far larger than the
caches, so the machine's random reads bound both. This script times, taking turns round after
round with a 512 MiB sweep before each turn (as ``bench_lookup.py`` does): torch's
``embedding_bag_byte_rowwise_offsets`` (or ``embedding_bag_4bit_rowwise_offsets``),
``embcompress.pooled_lookup`` on mxint8 (or mxfp4_e2m1), and a loop that
only reads one byte of every line of each row (no decoding, no pooling), with software prefetches
of the rows 8 to 48 ids ahead into L1 or L2, or none. The loop is compiled here from the C below
(``cc``). Medians of the rounds and ratios to torch's median are printed: a loop that does nothing
but read the rows bounds what any kernel pools on this machine.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

TOUCH_C = r"""
#include <stdint.h>
/* One byte of every 64-byte line of each row idx[j] (rows of rb bytes); rows dist ids ahead
   prefetched line by line (hint 3: into L1, 1: into L2; dist 0: no prefetch). */
uint64_t touch_rows(const uint8_t *data, const int64_t *idx, int64_t n, int64_t rb, int dist, int hint) {
    uint64_t s = 0;
    for (int64_t j = 0; j < n; j++) {
        if (dist && j + dist < n) {
            const uint8_t *p = data + idx[j + dist] * rb;
            for (uintptr_t q = (uintptr_t)p & ~(uintptr_t)63; q <= (uintptr_t)(p + rb - 1); q += 64) {
                if (hint == 3) __builtin_prefetch((const void *)q, 0, 3);
                else __builtin_prefetch((const void *)q, 0, 1);
            }
        }
        const uint8_t *r = data + idx[j] * rb;
        s += r[0];
        for (uintptr_t q = ((uintptr_t)r & ~(uintptr_t)63) + 64; q <= (uintptr_t)(r + rb - 1); q += 64)
            s += *(const uint8_t *)q;
    }
    return s;
}
"""


def build_touch(tmp: Path):
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise SystemExit(f"no C compiler ({cc}): install one (apt install gcc) or name it in CC")
    (tmp / "touch.c").write_text(TOUCH_C)
    subprocess.run([cc, "-O2", "-shared", "-fPIC", str(tmp / "touch.c"), "-o", str(tmp / "touch.so")], check=True)
    lib = ctypes.CDLL(str(tmp / "touch.so"))
    lib.touch_rows.restype = ctypes.c_uint64
    lib.touch_rows.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_int]
    return lib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--zipf", type=float, default=0.0, help="Zipf exponent of the ids, 0 for uniform")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--bits", type=int, choices=(8, 4), default=8,
                    help="8: torch's int8 operator against mxint8; 4: its int4 operator against mxfp4_e2m1")
    args = ap.parse_args()
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # torch's table on huge pages, as NumPy's
    import torch

    import embcompress
    from bench_lookup import times_interleaved, zipf_ids

    torch.set_num_threads(1)
    dim, n_bags, bag = 128, 8192, 32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, dim), dtype=np.float32)
    if args.bits == 8:
        tq = torch.ops.quantized.embedding_bag_byte_prepack(torch.from_numpy(x))
        op, ours = torch.ops.quantized.embedding_bag_byte_rowwise_offsets, "mxint8"
    else:
        tq = torch.ops.quantized.embedding_bag_4bit_prepack(torch.from_numpy(x))
        op, ours = torch.ops.quantized.embedding_bag_4bit_rowwise_offsets, "mxfp4_e2m1"
    rows = tq.numpy()  # torch's own records: 136 bytes (int8) or 68 (int4)
    rb = rows.shape[1]
    q = embcompress.quantize(x, ours)
    ids = zipf_ids(rng, args.rows, n_bags * bag, args.zipf) if args.zipf > 0 else \
        rng.integers(0, args.rows, n_bags * bag, dtype=np.int64)
    offsets = np.arange(n_bags, dtype=np.int64) * bag
    it, ot = torch.from_numpy(ids), torch.from_numpy(offsets)
    out = np.empty((n_bags, dim), dtype=np.float32)
    sweep = np.ones(1 << 27, dtype=np.float32)
    print(machine())
    print(f"table {args.rows} x {dim}, {n_bags} bags of {bag}, {'zipf' + str(args.zipf) if args.zipf else 'uniform'} "
          f"ids, 1 thread, median of {args.rounds} rounds; Mrows/s")
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_touch(Path(tmp))
        fns = {
            f"torch int{args.bits} operator": lambda: op(tq, it, ot, False, 0, False, None, None, False),
            f"{ours} pooled_lookup": lambda: embcompress.pooled_lookup(q, ids, offsets, n_threads=1, out=out),
            "read rows, no prefetch": lambda: lib.touch_rows(rows.ctypes.data, ids.ctypes.data, ids.size, rb, 0, 3),
        }
        for dist, hint in ((8, 3), (16, 3), (24, 3), (32, 1), (48, 1)):
            fns[f"read rows, {dist} ahead to {'L1' if hint == 3 else 'L2'}"] = (
                lambda d=dist, h=hint: lib.touch_rows(rows.ctypes.data, ids.ctypes.data, ids.size, rb, d, h))
        times = times_interleaved(fns, args.rounds, sweep.sum)
    base = float(np.median(times[f"torch int{args.bits} operator"]))
    for name, ts in times.items():
        med = float(np.median(ts))
        print(f"{name:<26} {ids.size / med / 1e6:7.1f}  {base / med:5.2f}x torch")


if __name__ == "__main__":
    main()
