"""Tiered store: DRAM policies' hit rates on replayed logs, and lookups/s through the store.

    python benchmarks/bench_store.py                 # the sizes recorded in benchmarks/README.md
    python benchmarks/bench_store.py --rows 200000 --batches 100 --skip-talkingdata   # quick

1. Hit rate (on unique ids per batch) of the DRAM tier at budgets of 1 % and 10 % of the table,
   for: ``frequency`` with frequencies mined from a training prefix of the log (the first
   ``--train-frac`` of the batches), the ideal static set (the top rows by true frequency: the
   Zipf law's own ranks, or for a real log the counts of the evaluated part itself), ``lru`` and
   ``lfu``, and ``frequency+refresh`` (the static hot set re-mined from every id served so far and
   reloaded every ``--refresh-every`` batches). Every policy replays the prefix first (so LRU/LFU
   start warm), then counters are reset and the rest of the log is measured. Logs: Zipf(1.05) over ``--rows`` rows (ids shuffled so hot
   rows are spread over the file), and the TalkingData sample sorted by click_time, its ip, app,
   device, os and channel ids in one table (each feature its own row range).
2. Lookups/s (pooled, bags of 32) on the Zipf log at the 10 % budget: the anchor is the kernel on
   the whole table in memory; the store reads its misses from the file with O_DIRECT; "with a
   device model" replaces the measured read time by the time the device would take for the same
   reads (NAND PM9A3, 3D XPoint P4800X): lookups / (wall - scm_seconds + device_seconds).
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

from embcompress.formats import quantize  # noqa: E402
from embcompress.kernels import resolve_threads  # noqa: E402
from embcompress.kernels.lookup import pooled_lookup  # noqa: E402
from embcompress.store import TieredStore  # noqa: E402
from embcompress.tablefile import write_table  # noqa: E402

TALKINGDATA = Path(os.environ.get("EMBCOMPRESS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "talkingdata_sample" / "train_sample.csv"




def zipf_log(n_rows: int, n_batches: int, batch: int, a: float, seed: int):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_rows + 1) ** a
    p /= p.sum()
    perm = rng.permutation(n_rows)  # rank -> row id
    ranks = rng.choice(n_rows, size=n_batches * batch, p=p)
    true = np.empty(n_rows)
    true[perm] = p
    return perm[ranks].reshape(n_batches, batch).astype(np.int64), true


def talkingdata_log(batch: int):
    import pandas as pd

    df = pd.read_csv(TALKINGDATA)
    df.columns = [c.lstrip(".") for c in df.columns]  # the header starts with "..ip"
    df = df.sort_values("click_time", kind="stable")
    cols = ["ip", "app", "device", "os", "channel"]
    ids, offset = [], 0
    for c in cols:
        codes, uniques = pd.factorize(df[c], sort=True)
        ids.append(codes.astype(np.int64) + offset)
        offset += len(uniques)
    flat = np.stack(ids, axis=1).reshape(-1)  # sample-major: a sample's 5 ids together
    per = batch // len(cols) * len(cols)
    n_batches = len(flat) // per
    return flat[: n_batches * per].reshape(n_batches, per), offset


def make_table(path: Path, n_rows: int, dim: int, fmt: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    chunks = [quantize(rng.standard_normal((min(1 << 18, n_rows - a), dim)).astype(np.float32), fmt).data
              for a in range(0, n_rows, 1 << 18)]
    from embcompress.table import QuantizedTable

    q0 = quantize(np.zeros((1, dim), np.float32), fmt)
    q = QuantizedTable(np.concatenate(chunks), fmt, (n_rows, dim), block_size=q0.block_size)
    write_table(path, q)
    return q


def hit_rates(path, n_rows, row_bytes, log, train_frac, true_freq, label, refresh_every):
    n_train = max(1, int(len(log) * train_frac))
    train, test = log[:n_train], log[n_train:]
    mined = np.bincount(train.ravel(), minlength=n_rows).astype(np.float64)
    ideal = true_freq if true_freq is not None else np.bincount(test.ravel(), minlength=n_rows).astype(np.float64)
    rows_out = []
    for frac in (0.01, 0.10):
        budget = max(row_bytes, int(n_rows * frac) * row_bytes)
        res = {}
        for name, policy, freq in (("ideal", "frequency", ideal), ("frequency", "frequency", mined),
                                   ("frequency+refresh", "frequency", mined),
                                   ("lru", "lru", None), ("lfu", "lfu", None)):
            with TieredStore(path, dram_bytes=budget, policy=policy, frequencies=freq, direct_io=False) as s:
                s.warm_up()
                if policy != "frequency":
                    for b in train:
                        s.rows(b)
                s.reset_stats()
                seen = mined.copy()
                for k, b in enumerate(test):
                    s.rows(b)
                    if name == "frequency+refresh":
                        # Re-mine from every id served so far and reload the hot set.
                        seen += np.bincount(b, minlength=n_rows)
                        if (k + 1) % refresh_every == 0:
                            s.warm_up(seen)
                res[name] = s.stats()["hit_rate"]
        rows_out.append((frac, res))
        print(f"  {label:<12} DRAM {frac:>4.0%} of table: " + "  ".join(f"{k} {100 * v:6.2f}%" for k, v in res.items()))
        print(f"  {'':<12} frequency - ideal {100 * (res['frequency'] - res['ideal']):+.2f} pt, "
              f"frequency - lru {100 * (res['frequency'] - res['lru']):+.2f} pt, "
              f"frequency+refresh - ideal {100 * (res['frequency+refresh'] - res['ideal']):+.2f} pt")
    return rows_out


def throughput(path, q, log, train_frac, n_threads, bag, n_batches):
    n_train = max(1, int(len(log) * train_frac))
    train, test = log[:n_train], log[n_train:][:n_batches]
    mined = np.bincount(train.ravel(), minlength=q.shape[0]).astype(np.float64)
    offsets = np.arange(0, log.shape[1], bag, dtype=np.int64)
    n_lookups = test.size
    # Anchor: the kernel on the whole table in memory.
    for b in test[:2]:
        pooled_lookup(q, b, offsets, n_threads=n_threads)
    t0 = time.perf_counter()
    for b in test:
        pooled_lookup(q, b, offsets, n_threads=n_threads)
    anchor = n_lookups / (time.perf_counter() - t0)
    print(f"  in-memory kernel (anchor): {anchor:,.0f} lookups/s")
    budget = int(q.shape[0] * 0.10) * q.row_bytes
    for device in (None, "nand", "3dxp"):
        with TieredStore(path, dram_bytes=budget, policy="frequency", frequencies=mined, device=device) as s:
            s.warm_up()
            for b in test[:2]:
                s.pooled_lookup(b, offsets, n_threads=n_threads)
            s.reset_stats()
            t0 = time.perf_counter()
            for b in test:
                s.pooled_lookup(b, offsets, n_threads=n_threads)
            wall = time.perf_counter() - t0
            st = s.stats()
        if device is None:
            rate = n_lookups / wall
            print(f"  store, O_DIRECT={s.direct_io}, DRAM 10%: {rate:,.0f} lookups/s (ratio to anchor "
                  f"{rate / anchor:.3f}); hit rate {100 * st['hit_rate']:.2f}%, {st['blocks_per_batch']:.0f} "
                  f"blocks/batch, read amplification {st['read_amplification']:.1f}, file reads "
                  f"{st['scm_seconds']:.2f} s of {wall:.2f} s")
        else:
            sim = wall - st["scm_seconds"] + st["device_seconds"]
            rate = n_lookups / sim
            print(f"  store with device model {st['device']}: {rate:,.0f} lookups/s (ratio to anchor "
                  f"{rate / anchor:.3f}); modeled device time {st['device_seconds']:.3f} s + compute "
                  f"{wall - st['scm_seconds']:.2f} s")


def planner(n_rows: int, row_bytes: int, a: float):
    from embcompress.store.devices import plan

    # The Zipf law by rank, in groups of `per` ranks (the integral of x^-a over each group).
    per = max(1, n_rows // 10_000_000)
    edges = np.arange(0, n_rows + 1, per, dtype=np.float64) + 0.5
    freq = (edges[:-1] ** (1 - a) - edges[1:] ** (1 - a)) / (a - 1)
    tb = n_rows * row_bytes
    print(f"[3] planner: {n_rows:,} rows x {row_bytes} B = {tb / 1e9:.2f} GB, Zipf({a}) accesses, at most 70% "
          f"device utilization; cost and power against all-DRAM (DDR4 RDIMM)")
    for device in ("nand", "3dxp"):
        for rate in (1e6, 1e7):
            for lat in (None, 5.0):
                p = plan(tb, row_bytes, freq, rate, device=device, max_latency_us=lat)
                print(f"  {p.device:<16} {rate:>12,.0f} lookups/s, mean latency <= {str(lat) + ' us' if lat else 'any':<8}: "
                      f"DRAM {p.dram_fraction:>5.1%} ({p.dram_bytes / 1e9:.2f} GB), hit rate {100 * p.hit_rate:5.1f}%, "
                      f"{p.iops_needed:>10,.0f} IOPS on {p.n_devices:.3f} device(s), mean latency "
                      f"{p.mean_read_latency_us:5.1f} us, {p.power_w:6.1f} W vs {p.all_dram_power_w:6.1f} W, "
                      f"${p.cost_usd:,.0f} vs ${p.all_dram_cost_usd:,.0f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--fmt", default="mxfp8_e4m3")
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--throughput-batches", type=int, default=200)
    ap.add_argument("--refresh-every", type=int, default=10, help="batches between hot-set refreshes")
    ap.add_argument("--batch", type=int, default=4096, help="lookups a batch")
    ap.add_argument("--bag", type=int, default=32)
    ap.add_argument("--zipf", type=float, default=1.05)
    ap.add_argument("--train-frac", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-talkingdata", action="store_true")
    ap.add_argument("--sections", default="1,2,3", help="which parts to run (1 hit rates, 2 lookups/s, 3 planner)")
    ap.add_argument("--plan-rows", type=int, default=2_000_000_000)
    ap.add_argument("--plan-row-bytes", type=int, default=512)
    ap.add_argument("--dir", default=None, help="where to write the table file (default: a temporary directory)")
    args = ap.parse_args(argv)
    threads = resolve_threads(args.threads)
    sections = {int(x) for x in args.sections.split(",")}
    print(f"machine: {machine()}; kernel threads {threads}")
    if 3 in sections:
        planner(args.plan_rows, args.plan_row_bytes, args.zipf)
    if not sections & {1, 2}:
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / "zipf.embc"
        q = make_table(path, args.rows, args.dim, args.fmt)
        print(f"table: {args.rows:,} x {args.dim} {args.fmt}, {q.row_bytes} B rows, {q.nbytes / 1e6:.1f} MB file")
        log, true = zipf_log(args.rows, args.batches, args.batch, args.zipf, seed=1)
        if 2 in sections:
            print(f"[2] lookups/s, bags of {args.bag}, {threads} kernel thread(s), {args.throughput_batches} batches of the measured part")
            throughput(path, q, log, args.train_frac, threads, args.bag, args.throughput_batches)
        if 1 not in sections:
            return
        print(f"[1] hit rate on unique ids per batch; {args.batches} batches of {args.batch} ids, "
              f"first {args.train_frac:.0%} mine the frequencies, the rest are measured")
        hit_rates(path, args.rows, q.row_bytes, log, args.train_frac, true, f"Zipf({args.zipf})", args.refresh_every)
        if not args.skip_talkingdata:
            if TALKINGDATA.exists():
                td, n_td = talkingdata_log(args.batch)
                tpath = Path(d) / "talkingdata.embc"
                tq = make_table(tpath, n_td, args.dim, args.fmt)
                print(f"  TalkingData: {td.size:,} ids over {n_td:,} rows, {len(td)} batches, sorted by click_time")
                hit_rates(tpath, n_td, tq.row_bytes, td, args.train_frac, None, "TalkingData", args.refresh_every)
            else:
                print(f"  TalkingData: {TALKINGDATA} not found, skipped")


if __name__ == "__main__":
    main()
