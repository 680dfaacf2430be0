"""Latency of small lookups, as an inference server makes them: ours against torch's, in one process.

``bench_lookup.py`` measures throughput on 8192 bags; a server answering requests calls a lookup
per request, or per small batch of them, so a fixed cost per call counts as much as the rows.
This times one call at a time, on 1, 16 and 256 bags of 32 uniform ids over a float32 table
(default 1,000,000 x 128), one thread, each call a different batch (cycling through
``--batches`` drawn in advance), the two sides of each pair taking turns call by call:

- ``embcompress.pooled_lookup`` on mxint8 against ``torch.ops.quantized.embedding_bag_byte_rowwise_offsets``
  and on mxfp4_e2m1 against ``embedding_bag_4bit_rowwise_offsets`` (the same float table,
  prepacked by torch);
- ``embcompress.nn.MXEmbeddingBag`` (mxfp4_e2m1) against ``torch.nn.EmbeddingBag`` (fp32), the
  module it drops in for, both under ``torch.inference_mode``;
- ``TieredStore.pooled_lookup`` (the mxfp4_e2m1 table file, 10 % DRAM, frequency policy) against
  ``pooled_lookup`` on the table in memory: with ids drawn from the rows in DRAM (the store's own
  cost per call), and with Zipf(1.05) ids over the placement the store's hot set was chosen by,
  the rows missing DRAM read from the file (here from the page cache: ``direct_io=False``, so the
  figure is the store's work, not a device's). The store's DRAM hit rate on each size's batches
  is printed under its pairs.

Prints the median and 99th percentile of the per-call wall time and the ratio of medians (anchor
/ ours: above 1, ours is faster). Before timing, each pair is checked to compute the same
pooling (``MISMATCH`` otherwise).

    python benchmarks/bench_latency.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_lookup import check_pooled
from machine import machine

ZIPF_A = 1.05


def zipf_rows(rng, order: np.ndarray, size: int, a: float = ZIPF_A) -> np.ndarray:
    """Zipf(a) ids, rank r on row ``order[r]``: the same placement in every batch and in the
    frequencies the store's hot set is chosen from (``bench_lookup.zipf_ids`` draws a new one
    each call, which would make the hot set a random tenth of the rows to these batches)."""
    cdf = np.cumsum(np.arange(1, len(order) + 1, dtype=np.float64) ** -a)
    ranks = np.searchsorted(cdf, rng.random(size) * cdf[-1])
    return order[np.minimum(ranks, len(order) - 1)].astype(np.int64)


def dram_hit_rate(store, batches: list, offs: np.ndarray) -> float:
    """The share of the batches' unique rows the store served from DRAM (counters reset after)."""
    store.reset_stats()
    for b in batches:
        store.pooled_lookup(b, offs, n_threads=1)
    rate = store.stats()["dram_hit_rate"]
    store.reset_stats()
    return rate


def time_pair(fns: dict, batches: list, calls: int) -> dict:
    """Per-call wall times (seconds) of each function in ``fns``, called in turn on each batch."""
    for fn in fns.values():  # warm-up: first-call costs (imports, allocations) are not latency
        for b in batches[:8]:
            fn(b)
    times = {name: np.empty(calls) for name in fns}
    for i in range(calls):
        b = batches[i % len(batches)]
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(b)
            times[name][i] = time.perf_counter() - t0
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--bag-len", type=int, default=32)
    ap.add_argument("--bags", type=int, nargs="+", default=[1, 16, 256])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=64, help="distinct batches drawn per size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", choices=("all", "store"), default="all",
                    help="'store': time only the two TieredStore pairs")
    args = ap.parse_args()

    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as bench_lookup.py: both sides on huge pages
    import torch

    import embcompress
    from embcompress.nn import MXEmbeddingBag
    from embcompress.store import TieredStore
    from embcompress.store.placement import top_rows

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    xt = torch.from_numpy(x)
    q8, q4 = embcompress.quantize(x, "mxint8"), embcompress.quantize(x, "mxfp4_e2m1")
    t8 = torch.ops.quantized.embedding_bag_byte_prepack(xt)
    t4 = torch.ops.quantized.embedding_bag_4bit_prepack(xt)
    rows8 = embcompress.quantize(x, "int8_rowwise")
    rows4 = embcompress.quantize(x, "int4_rowwise")
    emb = torch.nn.EmbeddingBag(args.rows, args.dim, mode="sum", _weight=xt)
    mx = MXEmbeddingBag.from_embedding_bag(emb, "mxfp4_e2m1")

    print(f"machine: {machine()}")
    print(f"torch {torch.__version__}, embcompress backend: {embcompress.kernels.backend()}, 1 thread")
    print(f"table {args.rows} x {args.dim}; bags of {args.bag_len} ids; {args.calls} calls per kernel and size, "
          f"cycling through {args.batches} batches; per-call wall time in microseconds")
    print()
    print(f"{'pair':<46} {'bags':>5} {'ours p50':>9} {'ours p99':>9} {'anchor p50':>10} {'anchor p99':>10} "
          f"{'anchor/ours':>11}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.embc"
        embcompress.write_table(path, q4)
        order = np.random.default_rng(args.seed + 1).permutation(args.rows)  # Zipf rank -> row
        freq = np.empty(args.rows)
        freq[order] = np.arange(1, args.rows + 1, dtype=np.float64) ** -ZIPF_A  # the mined counts, exactly
        cap = max(1, args.rows // 10)
        store = TieredStore(path, dram_bytes=cap * q4.row_bytes, frequencies=freq, direct_io=False)
        store.warm_up()
        in_dram = top_rows(freq, cap)  # the rows the frequency policy holds
        try:
            for n_bags in args.bags:
                n = n_bags * args.bag_len
                offs = np.arange(n_bags, dtype=np.int64) * args.bag_len
                ot = torch.from_numpy(offs)
                uni = [rng.integers(0, args.rows, n, dtype=np.int64) for _ in range(args.batches)]
                zipf = [zipf_rows(rng, order, n) for _ in range(args.batches)]
                hot = [rng.choice(in_dram, n) for _ in range(args.batches)]
                uni_t = [torch.from_numpy(b) for b in uni]
                pairs = {
                    "pooled_lookup mxint8 | torch int8 op": (
                        lambda i: embcompress.pooled_lookup(q8, uni[i], offs, n_threads=1),
                        lambda i: torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
                            t8, uni_t[i], ot, False, 0, False, None, None, False),
                        (q8, rows8)),
                    "pooled_lookup mxfp4_e2m1 | torch int4 op": (
                        lambda i: embcompress.pooled_lookup(q4, uni[i], offs, n_threads=1),
                        lambda i: torch.ops.quantized.embedding_bag_4bit_rowwise_offsets(
                            t4, uni_t[i], ot, False, 0, False, None, None, False),
                        (q4, rows4)),
                    "MXEmbeddingBag mxfp4_e2m1 | nn.EmbeddingBag": (
                        lambda i: mx(uni_t[i], ot),
                        lambda i: emb(uni_t[i], ot),
                        (q4, None)),
                }
                if args.pairs == "store":
                    pairs = {}
                pairs |= {
                    "TieredStore, rows in DRAM | table in memory": (
                        lambda i: store.pooled_lookup(hot[i], offs, n_threads=1),
                        lambda i: embcompress.pooled_lookup(q4, hot[i], offs, n_threads=1),
                        None),
                    "TieredStore, Zipf ids | table in memory": (
                        lambda i: store.pooled_lookup(zipf[i], offs, n_threads=1),
                        lambda i: embcompress.pooled_lookup(q4, zipf[i], offs, n_threads=1),
                        None),
                }
                # What the store pairs measure: every row from DRAM, or Zipf ids' misses read too.
                hits = dram_hit_rate(store, hot, offs), dram_hit_rate(store, zipf, offs)
                if hits[0] != 1.0:
                    raise SystemExit(f"MISMATCH: the store served only {hits[0]:.1%} of the rows meant to be in DRAM from DRAM")
                with torch.inference_mode():
                    for name, (ours, anchor, tables) in pairs.items():
                        if tables is None:  # the store: the very values of the kernel on the whole table
                            if not np.array_equal(ours(0), anchor(0), equal_nan=True):
                                raise SystemExit(f"MISMATCH: {name}: the store pooled other values than the table")
                        else:
                            ids = uni[0]
                            check_pooled(f"{name} (ours)", np.asarray(ours(0)), lambda u, t=tables[0]: t.take(u).dequantize(),
                                         ids, n_bags, args.bag_len)
                            check_pooled(f"{name} (anchor)", np.asarray(anchor(0)),
                                         (lambda u: x[u]) if tables[1] is None else
                                         (lambda u, t=tables[1]: t.take(u).dequantize()), ids, n_bags, args.bag_len)
                        t = time_pair({"ours": ours, "anchor": anchor}, list(range(args.batches)), args.calls)
                        p50 = {k: np.percentile(v, 50) * 1e6 for k, v in t.items()}
                        p99 = {k: np.percentile(v, 99) * 1e6 for k, v in t.items()}
                        print(f"{name:<46} {n_bags:>5} {p50['ours']:>9.1f} {p99['ours']:>9.1f} "
                              f"{p50['anchor']:>10.1f} {p99['anchor']:>10.1f} {p50['anchor'] / p50['ours']:>10.2f}x",
                              flush=True)
                print(f"  (the store's DRAM hit rate on {n_bags} bags, unique rows: {hits[0]:.0%} with rows in DRAM, "
                      f"{hits[1]:.0%} with Zipf ids)", flush=True)
        finally:
            store.close()


if __name__ == "__main__":
    main()
