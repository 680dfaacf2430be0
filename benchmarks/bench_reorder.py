"""reorder_rows's copy of the rows: reads in file order (ours) against a gather in the new order.

    python benchmarks/bench_reorder.py                     # the sizes recorded in benchmarks/README.md
    python benchmarks/bench_reorder.py --rows 200000 --rounds 1   # quick
    # a table larger than memory: the same in a cgroup of 600 MiB (cgroup v1, as root)
    mkdir /sys/fs/cgroup/memory/embc && echo $((600 << 20)) > /sys/fs/cgroup/memory/embc/memory.limit_in_bytes
    sh -c 'echo $$ > /sys/fs/cgroup/memory/embc/cgroup.procs && exec python benchmarks/bench_reorder.py --window 134217728'

A table file of ``--rows`` rows of 66 bytes (``mxfp8_e4m3``, dim 64) is written, and its rows are
copied into a random new order (what a co-access layout is to id order) without writing them
(4,096 random positions of each copy are checked against the rows they must hold):
the anchor gathers them in the new order (``rows[src[a:b]]``, what reorder_rows did before, 64
MiB at a time there, 4,096 rows here), ours is ``placement._rows_in_order`` (each window of ``--window`` bytes by one read
of the file in order; 0: the whole table in one window). Before each copy the file is dropped from
the page cache (``posix_fadvise(DONTNEED)``), so both read it from the device; the bytes the process
read from the device (``/proc/self/io``) are printed beside the rates. The anchor stops after
``--anchor-seconds`` and reports the rate of what it copied: run in a memory cgroup smaller than
the table (benchmarks/README.md has the command), its random reads thrash the page cache: a
whole copy was stopped unfinished after 12 minutes, where ours took 3 seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

import embcompress  # noqa: E402
from embcompress.container import read_artifact  # noqa: E402
from embcompress.store import placement  # noqa: E402
from embcompress.tablefile import write_table_stream  # noqa: E402


ANCHOR = "anchor: gather in the new order"


def device_read_bytes() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("read_bytes:"))


def drop_from_cache(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def gather_in_new_order(rows, src, step=4096):
    """The anchor: what reorder_rows did before, rows gathered in the new order a chunk at a time
    (64 MiB there; 4,096 rows here, so that it can be stopped in time: the size of a chunk does not
    change the order of the reads)."""
    for a in range(0, len(src), step):
        yield rows[src[a : a + step]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8_000_000)
    ap.add_argument("--window", type=int, nargs="+", default=[0, 128 << 20],
                    help="ours' window(s) in bytes; 0 is the whole table")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--anchor-seconds", type=float, default=60.0,
                    help="stop the anchor after this long (it reports rows per second of what it copied)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    def pieces(step=1 << 20):  # (a piece at a time: the benchmark may run in a small memory cgroup)
        for a in range(0, args.rows, step):
            data = rng.integers(0, 256, (min(step, args.rows - a), 66), dtype=np.uint8)
            data[:, :2] = 127  # plain block scales (the copy does not decode; a readable table all the same)
            yield embcompress.QuantizedTable(data, "mxfp8_e4m3", (len(data), 64))

    print(machine())
    # (/var/tmp rather than /tmp, which may be a tmpfs: its pages cannot be dropped from memory)
    folder = os.environ.get("TMPDIR") or ("/var/tmp" if os.access("/var/tmp", os.W_OK) else None)
    with tempfile.TemporaryDirectory(prefix="embc-bench-reorder-", dir=folder) as tmp:
        path = write_table_stream(Path(tmp) / "t.embc", "mxfp8_e4m3", (args.rows, 64), pieces())
        src = rng.permutation(args.rows)  # new position k holds old row src[k]
        new_of_old = placement.invert(src)
        check = np.sort(rng.choice(args.rows, size=min(args.rows, 4096), replace=False))  # positions checked
        table_mb = args.rows * 66 / 2**20
        print(f"table {args.rows} rows x 66 bytes ({table_mb:.0f} MiB) in {tmp}; the rows copied into a random "
              f"order, the file dropped from the page cache before each copy; best of {args.rounds}")
        runs = {ANCHOR: lambda rows: gather_in_new_order(rows, src)}
        for w in args.window:
            name = f"ours: file order, window {'whole table' if w == 0 else f'{w >> 20} MiB'}"
            runs[name] = lambda rows, w=w: placement._rows_in_order(rows, lambda a, b: new_of_old[a:b], w or rows.nbytes)
        best: dict[str, tuple[float, int, float, int]] = {}  # rate, rows, seconds, bytes read
        for _ in range(args.rounds):
            for name, make in runs.items():
                # (the file is mapped afresh each time: pages still mapped would stay in the cache)
                drop_from_cache(path)
                with read_artifact(path, kind="table") as art:
                    rows = art.array("rows")
                    before, start = device_read_bytes(), time.perf_counter()
                    got, seen = 0, []
                    for chunk in make(rows):
                        k = check[(check >= got) & (check < got + len(chunk))]  # a sample, checked below
                        seen.append((k, chunk[k - got].copy()))
                        got += len(chunk)
                        if name == ANCHOR and time.perf_counter() - start > args.anchor_seconds:
                            break  # (a rate, not a whole copy: thrashing, the anchor can take hours)
                    took, read = time.perf_counter() - start, device_read_bytes() - before
                    for k, got_rows in seen:
                        if not np.array_equal(got_rows, rows[src[k]]):
                            raise SystemExit(f"{name}: new position {k[0]} does not hold old row {src[k[0]]}")
                    del rows
                assert got == args.rows or name == ANCHOR
                rate = got / took
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, got, took, read)
        anchor = best[ANCHOR][0]
        for name, (rate, got, took, read) in best.items():
            print(f"{name:<42} {rate:12,.0f} rows/s ({got:,} rows in {took:.2f} s, {read / 2**20:,.0f} MiB "
                  f"read from the device)  {rate / anchor:8.2f}x anchor")

if __name__ == "__main__":
    main()
