"""Export of a trained table to a table file, against torch's own compression of the same table.

    python benchmarks/bench_export.py                    # a 2,000,000 x 128 fp32 table (977 MiB)
    python benchmarks/bench_export.py --rows 200000      # quick

The anchor is torch's in-memory prepack of the table to its row-wise formats
(``torch.ops.quantized.embedding_bag_byte_prepack``, ``embedding_bag_4bit_prepack``: what a torch
user runs to compress a table for ``embedding_bag_byte_rowwise_offsets``); ours is
``embcompress.export`` of an ``nn.EmbeddingBag`` holding the same table to mxint8 and mxfp4_e2m1,
which also measures the QSNR and writes and fsyncs the file. Each job runs in a fresh process
that first makes the table, so "grew" is the job's own peak memory (``ru_maxrss``) beyond the
table. One run each, jobs in turn; the prepack uses torch's default threads, ours one piece at a
time on the calling thread plus the kernels' threads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

JOB = textwrap.dedent("""
    import json, resource, sys, time, torch
    import embcompress
    rows, dim, job, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    emb = torch.nn.EmbeddingBag(rows, dim, mode="sum")
    with torch.no_grad():
        emb.weight.normal_(generator=torch.Generator().manual_seed(0))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if job.startswith("torch"):
        op = torch.ops.quantized.embedding_bag_byte_prepack if job == "torch int8" else torch.ops.quantized.embedding_bag_4bit_prepack
        packed = op(emb.weight.detach())
        nbytes = packed.numel() * packed.element_size()
    else:
        (entry,) = embcompress.export(emb, fmt=job, out_dir=out)
        nbytes = entry["bytes_after"]
    seconds = time.perf_counter() - t
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"seconds": seconds, "grew_mib": grew / 1024, "bytes": nbytes}))
""")


def run(job: str, rows: int, dim: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", JOB, str(rows), str(dim), job, out],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=128)
    args = ap.parse_args(argv)
    mib = args.rows * args.dim * 4 / 2**20
    print(f"machine: {machine()}")
    print(f"table: {args.rows} x {args.dim} fp32 ({mib:.0f} MiB), one fresh process a job\n")
    print(f"{'job':<28} {'seconds':>8} {'grew MiB':>9} {'output MiB':>11} {'vs torch (time)':>16}")
    pairs = [("torch int8", "mxint8"), ("torch int4", "mxfp4_e2m1")]
    for anchor, ours in pairs:
        a, o = run(anchor, args.rows, args.dim), run(ours, args.rows, args.dim)
        print(f"{anchor + ' row-wise prepack':<28} {a['seconds']:8.2f} {a['grew_mib']:9.0f} {a['bytes'] / 2**20:11.0f}")
        print(f"{'export ' + ours + ' to a file':<28} {o['seconds']:8.2f} {o['grew_mib']:9.0f} {o['bytes'] / 2**20:11.0f}"
              f" {a['seconds'] / o['seconds']:15.2f}x")


if __name__ == "__main__":
    main()
