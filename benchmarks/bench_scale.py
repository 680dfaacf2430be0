"""Table files and the tiered store at scale, against plain NumPy on the same file.

    python benchmarks/bench_scale.py                       # 40,000,000 x 128 mxint8: a 5.6 GB file
    python benchmarks/bench_scale.py --rows 2000000        # quick (280 MB)
    python benchmarks/bench_scale.py --dir /mnt/nvme --cold

One process, phases in turn, each ours against an anchor, with the time, the speed ratio
(anchor time / ours: above 1 ours is faster) and the memory the process grew (its anonymous
resident memory, sampled every 20 ms; file pages of a mapping are not counted):

- write: ``write_table_stream`` of quantized pieces (checksummed, fsynced, with a frequencies
  section) against the same row bytes written with ``ndarray.tofile`` and fsynced;
- full verify: ``open_table(verify="full")`` against reading the file in 64 MiB pieces into
  ``zlib.crc32`` (the cost of checksumming the bytes once);
- header open: ``open_table(verify="header")`` against ``np.memmap`` of the file;
- store: a ``TieredStore`` of 1 % and 10 % of the table (frequency with ``refresh_every=1``,
  lru, lfu) serving Zipf(1.05) batches of 256 bags of 32 ids (``rows()``: the records, through
  the tiers), against fancy-indexing the same rows from an ``np.memmap`` of the rows section.
  The ratio is of the store reading its misses through the page cache (``direct_io=False``), as
  the anchor reads; its time with O_DIRECT (the device) is printed beside it, with the memory the
  open and warm-up grew against the budget and the slot index.

``--cold`` drops the file's pages from the page cache (``posix_fadvise``) before each verify and
each store. The table file (and the anchor's) are written in ``--dir`` and removed at the end
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

MULT = 2654435761  # Zipf rank -> row: rank * MULT mod n_rows (a prime: a bijection unless it divides n_rows)


class AnonPeak:
    """The process's anonymous resident memory (MiB), sampled every 20 ms, and its peak since start()."""

    def __init__(self):
        self.peak = self.base = 0.0
        self._on = False
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def now() -> float:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return math.nan

    def _run(self):
        while True:
            if self._on:
                self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def start(self):
        self.base = self.peak = self.now()
        self._on = True

    def grew(self) -> float:
        self._on = False
        return max(self.peak, self.now()) - self.base


def evict(path):
    """Drop the file's pages from the page cache (its own only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def row_of_rank(ranks, n):
    return (ranks.astype(np.int64) * MULT) % n


def pieces(n, dim, chunk, fmt):
    import embcompress

    rng = np.random.default_rng(0)
    for a in range(0, n, chunk):
        yield embcompress.quantize(rng.standard_normal((min(chunk, n - a), dim), dtype=np.float32), fmt)


def report(name, ours, anchor, grew, extra=""):
    print(f"{name:<38} ours {ours * 1e3:10.1f} ms   anchor {anchor * 1e3:10.1f} ms   {anchor / ours:5.2f}x   "
          f"grew {grew:6.0f} MiB{extra}", flush=True)


def store_phase(path, size, n, batches, rows_map, mem, cold):
    from embcompress.store import TieredStore

    for frac in (0.01, 0.1):
        for policy, refresh in (("frequency", 1), ("lru", None), ("lfu", None)):
            per_batch, grew_at = {}, {}
            for direct in (False, True):  # the page cache, as the anchor reads; then the device
                if cold:
                    evict(path)
                mem.start()
                t = time.perf_counter()
                store = TieredStore(path, dram_bytes=int(size * frac), policy=policy, refresh_every=refresh,
                                    direct_io=direct)
                store.warm_up()
                if not direct:  # (the second store reuses what the first gave back)
                    warm, grew_warm = time.perf_counter() - t, mem.grew()
                mem.start()
                t = time.perf_counter()
                for b in batches:
                    store.rows(b)
                per_batch[direct] = (time.perf_counter() - t) / len(batches)
                grew_at[direct] = mem.grew()
                hit = store.stats()["hit_rate"]
                used_direct = store.direct_io
                store.close()
            t = time.perf_counter()
            for b in batches:
                np.asarray(rows_map[b])
            anchor = (time.perf_counter() - t) / len(batches)
            report(f"store {frac:.0%} {policy}{' refresh 1' if refresh else ''} a batch", per_batch[False], anchor,
                   grew_at[False], f"   hit {hit:.3f}; O_DIRECT {per_batch[True] * 1e3:.1f} ms a batch"
                   f"{'' if used_direct else ' (refused: read through the page cache)'}; open+warm-up {warm:.1f} s, "
                   f"grew {grew_warm:.0f} MiB (budget {size * frac / 2**20:.0f} MiB, index {n * 4 / 2**20:.0f} MiB)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--fmt", default="mxint8")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    import embcompress

    n, dim, chunk = args.rows, args.dim, 1 << 16
    if math.gcd(MULT, n) != 1:
        ap.error(f"--rows must not be a multiple of {MULT}")
    mem = AnonPeak()
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="bench_scale-", dir=args.dir))
    path, raw = folder / "table.embc", folder / "anchor.bin"
    try:
        # frequencies: Zipf(1.05) weights by rank, on the rows the batches draw them from
        freq = np.empty(n, np.int64)
        for a in range(0, n, 1 << 22):
            ranks = np.arange(a, min(n, a + (1 << 22)), dtype=np.int64)
            freq[row_of_rank(ranks, n)] = (1e9 / (ranks + 1.0) ** 1.05).astype(np.int64)
        proto = embcompress.quantize(np.zeros((1, dim), np.float32), args.fmt)
        size = n * proto.row_bytes
        print(f"table: {n:,} x {dim} {args.fmt}, {proto.row_bytes} bytes a row, rows {size / 1e9:.2f} GB; "
              f"folder {folder}; {'cold' if args.cold else 'warm'} page cache", flush=True)

        mem.start()
        t = time.perf_counter()
        with open(raw, "wb") as fh:
            for q in pieces(n, dim, chunk, args.fmt):
                q.data.tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())
        anchor = time.perf_counter() - t
        mem.grew()
        raw.unlink()
        mem.start()
        t = time.perf_counter()
        embcompress.write_table_stream(path, args.fmt, (n, dim), pieces(n, dim, chunk, args.fmt), frequencies=freq)
        ours = time.perf_counter() - t
        report("write (quantize + write)", ours, anchor, mem.grew(), f"   file {path.stat().st_size / 1e9:.2f} GB")
        del freq

        def crc_anchor():
            crc = 0
            with open(path, "rb", buffering=0) as fh:
                while True:
                    b = fh.read(64 << 20)
                    if not b:
                        return crc
                    crc = zlib.crc32(b, crc)

        for label in ("full verify", "full verify again"):
            if args.cold:
                evict(path)
            t = time.perf_counter()
            crc_anchor()
            anchor = time.perf_counter() - t
            if args.cold:
                evict(path)
            mem.start()
            t = time.perf_counter()
            embcompress.open_table(path, verify="full")
            report(label, time.perf_counter() - t, anchor, mem.grew())

        t = time.perf_counter()
        np.memmap(path, mode="r", dtype=np.uint8)
        anchor = time.perf_counter() - t
        mem.start()
        t = time.perf_counter()
        tf = embcompress.open_table(path)
        report("header open (mmap)", time.perf_counter() - t, anchor, mem.grew())
        rows_map = np.memmap(path, mode="r", dtype=np.uint8, offset=tf.rows_offset, shape=(n, proto.row_bytes))
        del tf

        rng = np.random.default_rng(1)
        batches = []
        for _ in range(args.batches):
            z = rng.zipf(1.05, 4 * 256 * 32)
            batches.append(row_of_rank(z[z <= n][: 256 * 32] - 1, n))
        store_phase(path, size, n, batches, rows_map, mem, args.cold)
    finally:
        if not args.keep:
            for p in folder.glob("*"):
                p.unlink()
            folder.rmdir()


if __name__ == "__main__":
    main()
