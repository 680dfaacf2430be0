"""Tiered store: DRAM policies' hit rates on replayed logs, and lookups/s through the store.

    python benchmarks/bench_store.py                 # the sizes recorded in benchmarks/README.md
    python benchmarks/bench_store.py --rows 200000 --batches 100 --skip-talkingdata   # quick

1. Hit rate (on unique ids per batch) of the DRAM tier at budgets of 1 % and 10 % of the table,
   for: ``frequency`` with frequencies mined from a training prefix of the log (the first
   ``--train-frac`` of the batches), static; the same with the store's own refresh
   (``refresh_every`` 10 and 1 batches: the hot set re-ranked by mined plus served accesses, and
   ``--half-life`` for the decayed variant); the ideal static set (the top rows by true frequency:
   the Zipf law's own ranks, or for a real log the counts of the evaluated part itself); ``lru``
   and ``lfu``. LRU and LFU replay the prefix first (so they start warm); the frequency policies
   start from the counts mined from it. Then counters are reset and the rest of the log is
   measured. Logs: Zipf(1.05) over ``--rows`` rows (ids shuffled so hot rows are spread over the
   file), and the TalkingData sample sorted by click_time, its ip, app, device, os and channel ids
   in one table (each feature its own row range).
   For TalkingData, diagnostics of how far a causal policy can get from its hindsight ideal: the
   same-period static set (ranked on the odd batches of the measured part, measured on the even
   ones, and the other way round) against the in-sample ideal of those batches; the same split on
   the clicks shuffled out of time order (no drift at all); Belady's clairvoyant online cache;
   and a simulated hybrid (a refreshed frequency core plus an LRU tail admitting rows outside it).
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
from embcompress.store.placement import top_rows  # noqa: E402
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


RECOMMENDED = "refresh 1"  # the configuration the README recommends: refresh_every=1, no decay


def replay(path, budget, test, train=(), **store_args):
    """Hit rate of a store over ``test`` after replaying ``train`` (counters reset in between)."""
    with TieredStore(path, dram_bytes=budget, direct_io=False, **store_args) as s:
        s.warm_up()
        for b in train:
            s.rows(b)
        s.reset_stats()
        for b in test:
            s.rows(b)
        return s.stats()


def hit_rates(path, n_rows, row_bytes, log, train_frac, true_freq, label, half_life):
    n_train = max(1, int(len(log) * train_frac))
    train, test = log[:n_train], log[n_train:]
    mined = np.bincount(train.ravel(), minlength=n_rows).astype(np.float64)
    ideal = true_freq if true_freq is not None else np.bincount(test.ravel(), minlength=n_rows).astype(np.float64)
    rows_out = []
    for frac in (0.01, 0.10):
        budget = max(row_bytes, int(n_rows * frac) * row_bytes)
        runs = {"ideal": dict(frequencies=ideal), "frequency": dict(frequencies=mined),
                "refresh 10": dict(frequencies=mined, refresh_every=10),
                "refresh 1": dict(frequencies=mined, refresh_every=1),
                f"refresh 1, half-life {half_life:g}": dict(frequencies=mined, refresh_every=1, half_life=half_life),
                "lru": dict(policy="lru"), "lfu": dict(policy="lfu")}
        res, reads = {}, {}
        for name, kw in runs.items():
            st = replay(path, budget, test, train if "policy" in kw else (), **kw)
            res[name] = st["hit_rate"]
            reads[name] = st["refresh_rows"] / max(1, st["batches"])
        rows_out.append((frac, res))
        print(f"  {label:<12} DRAM {frac:>4.0%} of table: " + "  ".join(f"{k} {100 * v:6.2f}%" for k, v in res.items()))
        print(f"  {'':<12} rows read by refreshes a batch: "
              + ", ".join(f"{k} {v:.1f}" for k, v in reads.items() if k.startswith("refresh")))
        print(f"  {'':<12} frequency - ideal {100 * (res['frequency'] - res['ideal']):+.2f} pt; {RECOMMENDED} - ideal "
              f"{100 * (res[RECOMMENDED] - res['ideal']):+.2f} pt, - lru {100 * (res[RECOMMENDED] - res['lru']):+.2f} pt, "
              f"- lfu {100 * (res[RECOMMENDED] - res['lfu']):+.2f} pt")
    return rows_out


def _static_rate(sets, hot):
    held = np.zeros(max(int(hot.max(initial=0)) + 1, max(int(u.max(initial=0)) + 1 for u in sets)), bool)
    held[hot] = True
    return sum(int(held[u].sum()) for u in sets) / sum(len(u) for u in sets)


def belady(uniq, n_train, cap, n_rows):
    """Hit rate on batches ``n_train:`` of a clairvoyant cache of ``cap`` rows (keeps the rows used soonest)."""
    never = len(uniq)
    nxt, upcoming = [None] * len(uniq), np.full(n_rows, never)
    for k in range(len(uniq) - 1, -1, -1):
        nxt[k] = upcoming[uniq[k]].copy()
        upcoming[uniq[k]] = k
    next_use, held, hits = np.full(n_rows, never), np.zeros(0, np.int64), 0
    inside = np.zeros(n_rows, bool)
    for k, u in enumerate(uniq):
        if k >= n_train:
            hits += int(inside[u].sum())
        next_use[u] = nxt[k]
        cand = np.union1d(held, u)
        keep = cand[np.argsort(next_use[cand], kind="stable")[:cap]]
        inside[held] = False
        held = keep[next_use[keep] < never]
        inside[held] = True
    return hits / sum(len(u) for u in uniq[n_train:])


def core_and_tail(log, n_train, cap, n_rows, prior, tail_share, admit_after):
    """Simulated hybrid: a core of the top rows by prior plus served accesses (re-ranked every
    batch, as ``refresh_every=1``) and an LRU tail of ``tail_share`` of the rows, admitting a row
    outside the core on its ``admit_after``-th batch seen (the most seen first when room is short).
    The tail is warmed on the prefix; hit rate on the rest."""
    n_tail = int(round(cap * tail_share))
    score, seen = prior.astype(np.float64).copy(), np.zeros(n_rows, np.int64)
    core = np.zeros(n_rows, bool)
    core[top_rows(score, cap - n_tail)] = True
    tail_time = np.full(n_rows, -1)  # batch a tail row was last used, -1 when not in the tail
    hits = total = 0
    for k, b in enumerate(log):
        u, c = np.unique(b, return_counts=True)
        in_tail = tail_time[u] >= 0
        if k >= n_train:
            hits += int((core[u] | in_tail).sum())
            total += len(u)
            score[u] += c
        seen[u] += 1
        tail_time[u[in_tail]] = k
        new = u[~core[u] & ~in_tail & (seen[u] >= admit_after)]
        if n_tail and len(new):
            held = np.flatnonzero(tail_time >= 0)
            room = n_tail - len(held)
            if len(new) > room:
                old = held[tail_time[held] < k]  # rows used in this batch stay
                n_evict = min(len(old), len(new) - room)
                tail_time[old[np.argsort(tail_time[old], kind="stable")[:n_evict]]] = -1
                new = new[np.argsort(-seen[new], kind="stable")[: room + n_evict]]
            tail_time[new] = k
        if k >= n_train:
            core[:] = False
            core[top_rows(score, cap - n_tail)] = True
            tail_time[core] = -1
    return hits / total


def diagnose(log, n_rows, train_frac, seed=0):
    """Why the hindsight ideal is out of a causal policy's reach on the TalkingData sample."""
    n_train = max(1, int(len(log) * train_frac))
    first, second = (np.bincount(part.ravel(), minlength=n_rows) for part in (log[:n_train], log[n_train:]))
    print("  TalkingData regression to the mean: rows asked k times in the first half are asked, on average, in "
          "the second: " + ", ".join(f"k={k}: {second[(first == k) & (first + second > 0)].mean():.2f}" for k in range(7))
          + " (k=0: rows new in the second half)")
    uniq_all = [np.unique(b) for b in log]
    presence = [np.bincount(np.concatenate(u), minlength=n_rows).astype(np.float64)
                for u in (uniq_all[:n_train], uniq_all[n_train:])]
    whole = np.bincount(log.ravel(), minlength=n_rows).astype(np.float64)
    for frac in (0.01, 0.10):
        # Other readings of the ideal and the ranking: the metric counts unique ids per batch, so
        # rank by the batches a row is in; and "true frequency" as the whole log's counts.
        cap = int(n_rows * frac)
        test = uniq_all[n_train:]
        print(f"  TalkingData DRAM {frac:>4.0%}: ranked by batches present (the metric's unit): ideal "
              f"{100 * _static_rate(test, top_rows(presence[1], cap)):6.2f}%, static set from the first half "
              f"{100 * _static_rate(test, top_rows(presence[0], cap)):6.2f}%; ideal by the whole log's counts "
              f"{100 * _static_rate(test, top_rows(whole, cap)):6.2f}%")
        for order, lg in (("time order", log), ("clicks shuffled", None)):
            if lg is None:  # the same clicks in a random order: no drift, the same counts
                clicks = log.reshape(-1, 5)
                lg = clicks[np.random.default_rng(seed).permutation(len(clicks))].reshape(log.shape)
            uniq = [np.unique(b) for b in lg]
            test, raw = uniq[n_train:], lg[n_train:]
            odd, even = test[1::2], test[0::2]
            # Sets ranked by access counts, as the table's ideal is (the same rule, other batches).
            c_odd, c_even = (np.bincount(raw[s].ravel(), minlength=n_rows).astype(np.float64) for s in (np.s_[1::2], np.s_[0::2]))
            in_sample = (_static_rate(odd, top_rows(c_odd, cap)) + _static_rate(even, top_rows(c_even, cap))) / 2
            same_period = (_static_rate(odd, top_rows(c_even, cap)) + _static_rate(even, top_rows(c_odd, cap))) / 2
            mined = np.bincount(lg[:n_train].ravel(), minlength=n_rows).astype(np.float64)
            ideal = _static_rate(test, top_rows(np.bincount(raw.ravel(), minlength=n_rows).astype(np.float64), cap))
            static = _static_rate(test, top_rows(mined, cap))
            print(f"  TalkingData {order:<15} DRAM {frac:>4.0%}: ideal {100 * ideal:6.2f}%, frequency (static) "
                  f"{100 * static:6.2f}% ({100 * (static - ideal):+.2f} pt); half the measured batches against a "
                  f"set ranked on the other half, same period: in-sample {100 * in_sample:6.2f}%, same-period "
                  f"{100 * same_period:6.2f}% ({100 * (same_period - in_sample):+.2f} pt)")
            if order == "time order":
                print(f"  {'':<27} Belady (clairvoyant online) {100 * belady(uniq, n_train, cap, n_rows):6.2f}%; "
                      "refreshed core + LRU tail (simulated): " + ", ".join(
                          f"tail {share:.0%} admit on touch {t} {100 * core_and_tail(lg, n_train, cap, n_rows, mined, share, t):6.2f}%"
                          for share in (0.0, 0.1, 0.25) for t in ((1, 2) if share else (1,))))


def throughput(path, q, log, train_frac, n_threads, bag, n_batches):
    n_train = max(1, int(len(log) * train_frac))
    train, test = log[:n_train], log[n_train:][:n_batches]
    mined = np.bincount(train.ravel(), minlength=q.shape[0]).astype(np.float64)
    offsets = np.arange(0, log.shape[1], bag, dtype=np.int64)
    n_lookups = test.size
    # Anchor: the kernel on the whole table in memory.
    for b in test[:2]:
        pooled_lookup(q, b, offsets, n_threads=n_threads)
    want = pooled_lookup(q, test[0], offsets, n_threads=n_threads)
    t0 = time.perf_counter()
    for b in test:
        pooled_lookup(q, b, offsets, n_threads=n_threads)
    anchor = n_lookups / (time.perf_counter() - t0)
    print(f"  in-memory kernel (anchor): {anchor:,.0f} lookups/s")
    budget = max(q.row_bytes, int(q.shape[0] * 0.10) * q.row_bytes)  # at least one row, as in hit_rates
    for device, refresh in ((None, None), (None, 1), ("nand", None), ("3dxp", None)):
        with TieredStore(path, dram_bytes=budget, policy="frequency", frequencies=mined, device=device,
                         refresh_every=refresh) as s:
            s.warm_up()
            # the store must give the anchor's result (the same rows, the same kernel), or the ratio compares other work
            got = s.pooled_lookup(test[0], offsets, n_threads=n_threads)
            if not np.array_equal(got, want, equal_nan=True):
                raise SystemExit(f"MISMATCH: the store (device {device}, refresh_every={refresh}) pooled other values "
                                 f"than the in-memory kernel (max difference {np.nanmax(np.abs(got - want)):.3g})")
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
            how = "static hot set" if refresh is None else f"refresh_every={refresh}"
            print(f"  store, O_DIRECT={s.direct_io}, DRAM 10%, {how}: {rate:,.0f} lookups/s (ratio to anchor "
                  f"{rate / anchor:.3f}); hit rate {100 * st['hit_rate']:.2f}%, {st['blocks_per_batch']:.0f} "
                  f"blocks/batch, read amplification {st['read_amplification']:.1f}, file reads "
                  f"{st['scm_seconds']:.2f} s of {wall:.2f} s"
                  + ("" if refresh is None else f", refresh reads {st['refresh_seconds']:.2f} s "
                     f"({st['refresh_rows'] / st['batches']:.0f} rows a batch)"))
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
    ap.add_argument("--half-life", type=float, default=60.0, help="batches, for the decayed refresh row")
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
    n_train = max(1, int(args.batches * args.train_frac))  # as the replays split the log
    if args.batches - n_train < 1:
        ap.error(f"--batches {args.batches} with --train-frac {args.train_frac} leaves no batch to measure after the "
                 f"{n_train} mined; use --batches {n_train + 1} or more (or a smaller --train-frac)")
    if args.throughput_batches < 1:
        ap.error(f"--throughput-batches must be at least 1, got {args.throughput_batches}")
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
        hit_rates(path, args.rows, q.row_bytes, log, args.train_frac, true, f"Zipf({args.zipf})", args.half_life)
        if not args.skip_talkingdata:
            if TALKINGDATA.exists():
                td, n_td = talkingdata_log(args.batch)
                tpath = Path(d) / "talkingdata.embc"
                tq = make_table(tpath, n_td, args.dim, args.fmt)
                print(f"  TalkingData: {td.size:,} ids over {n_td:,} rows, {len(td)} batches, sorted by click_time")
                hit_rates(tpath, n_td, tq.row_bytes, td, args.train_frac, None, "TalkingData", args.half_life)
                diagnose(td, n_td, args.train_frac)
            else:
                print(f"  TalkingData: {TALKINGDATA} not found, skipped")


if __name__ == "__main__":
    main()
