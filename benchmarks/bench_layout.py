"""Co-access layout: 4 KiB blocks read per batch, id order against the layout of reorder_rows.

    python benchmarks/bench_layout.py                  # the sizes recorded in benchmarks/README.md
    python benchmarks/bench_layout.py --rows 100000 --batches 200   # quick

Two replayed logs, each split in time: the first ``--train-frac`` of the batches is mined for
co-access (pairs of rows in one sample) and frequencies, the rest is measured.

1. Synthetic, planted groups: ``--rows`` rows in groups of ``--group`` rows scattered at random
   over the id space; each sample reads ``--per-sample`` rows of one group, groups drawn by
   Zipf(1.05) popularity.
2. Criteo sample (lapis_train.txt), in file (time) order: one table holding the 26 categorical
   features, each feature's values in sorted order in its own row range ("id order"); a sample is
   its 26 ids.

Layouts compared on the same table (``int8_rowwise``, dim 56: 64-byte rows, 64 a block): id order,
frequency order (hottest rows first, mined), and the co-access layout. Figures: distinct blocks
per batch with no DRAM tier (every row read from the file), and blocks read per batch through a
TieredStore with a 1 % DRAM budget (frequency policy), measured from the store's counters.
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

from bench_store import machine, make_table  # noqa: E402

from embcompress.store import TieredStore, blocks_per_batch, mine_coaccess, reorder_rows  # noqa: E402
from embcompress.store.placement import invert  # noqa: E402

CRITEO = Path(os.environ.get("EMBCOMPRESS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "criteo_sample" / "lapis_train.txt"


def planted_log(n_rows, group, per_sample, samples_per_batch, n_batches, seed=0):
    rng = np.random.default_rng(seed)
    groups = rng.permutation(n_rows)[: n_rows // group * group].reshape(-1, group)
    p = 1.0 / np.arange(1, len(groups) + 1) ** 1.05
    g = rng.choice(len(groups), size=n_batches * samples_per_batch, p=p / p.sum())
    pick = np.argsort(rng.random((len(g), group)), axis=1)[:, :per_sample]
    samples = np.take_along_axis(groups[g], pick, axis=1)
    return samples.reshape(n_batches, samples_per_batch, per_sample)


def criteo_log(samples_per_batch):
    import pandas as pd

    cols = [f"C{i}" for i in range(1, 27)]
    df = pd.read_csv(CRITEO, sep="\t", header=None, names=["label"] + [f"I{i}" for i in range(1, 14)] + cols,
                     dtype={c: str for c in cols})
    ids, offset = [], 0
    for c in cols:
        codes, uniques = pd.factorize(df[c].fillna(""), sort=True)  # a missing value is one more id
        ids.append(codes.astype(np.int64) + offset)
        offset += len(uniques)
    samples = np.stack(ids, axis=1)
    n_batches = len(samples) // samples_per_batch
    return samples[: n_batches * samples_per_batch].reshape(n_batches, samples_per_batch, len(cols)), offset


def compare(label, log, n_rows, train_frac, tmp: Path, fmt="int8_rowwise", dim=56):
    n_train = max(1, int(len(log) * train_frac))
    train, test = log[:n_train], log[n_train:]
    flat = train.reshape(-1, train.shape[-1])
    t0 = time.perf_counter()
    co = mine_coaccess(flat.ravel(), np.arange(0, flat.size, flat.shape[1]), n_rows)
    freq = np.bincount(train.ravel(), minlength=n_rows).astype(np.float64)
    mine_s = time.perf_counter() - t0
    path = tmp / f"{label}.embc"
    q = make_table(path, n_rows, dim, fmt)
    t0 = time.perf_counter()
    layout = reorder_rows(path, tmp / f"{label}.coaccess.embc", cooccurrence=co, frequencies=freq)
    reorder_s = time.perf_counter() - t0
    hot = reorder_rows(path, tmp / f"{label}.hot.embc", clusters=invert(np.argsort(-freq, kind="stable")))
    batches = [b.ravel() for b in test]
    print(f"{label}: {n_rows:,} rows of {q.row_bytes} B, {len(log)} batches of {log.shape[1]} samples x "
          f"{log.shape[2]} ids; first {n_train} batches mined ({co.nnz:,} co-access pairs, {mine_s:.1f} s), "
          f"reorder_rows {reorder_s:.1f} s; {len(batches)} batches measured")
    res = {}
    for name, new_row, fpath in (("id order", None, path), ("frequency order", hot.new_row, hot.path),
                                 ("co-access", layout.new_row, layout.path)):
        nocache = blocks_per_batch(batches, q.row_bytes, new_row=new_row).mean()
        with TieredStore(fpath, dram_bytes=max(q.row_bytes, n_rows // 100 * q.row_bytes), frequencies=freq) as s:
            s.warm_up()
            s.reset_stats()
            for b in batches:
                s.rows(b)
            st = s.stats()
        res[name] = (nocache, st["blocks_per_batch"])
        print(f"  {name:<16} blocks/batch, no DRAM: {nocache:8.1f}   with 1% DRAM: {st['blocks_per_batch']:8.1f} "
              f"(hit rate {100 * st['hit_rate']:.1f}%, read amplification {st['read_amplification']:.1f})")
    base = res["id order"]
    co_ = res["co-access"]
    print(f"  co-access vs id order: {base[0] / co_[0]:.2f}x fewer blocks without DRAM, "
          f"{base[1] / co_[1]:.2f}x fewer with 1% DRAM")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--group", type=int, default=16)
    ap.add_argument("--per-sample", type=int, default=8)
    ap.add_argument("--samples", type=int, default=256, help="samples a batch")
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--criteo-samples", type=int, default=128, help="samples a batch on Criteo")
    ap.add_argument("--train-frac", type=float, default=0.5)
    ap.add_argument("--skip-criteo", action="store_true")
    args = ap.parse_args(argv)
    n_train = max(1, int(args.batches * args.train_frac))  # as the replays split the log
    if args.batches - n_train < 1:
        ap.error(f"--batches {args.batches} with --train-frac {args.train_frac} leaves no batch to measure after the "
                 f"{n_train} mined; use --batches {n_train + 1} or more (or a smaller --train-frac)")
    print(f"machine: {machine()}; single-threaded (layout and replay are I/O accounting, not kernel time)")
    with tempfile.TemporaryDirectory() as d:
        log = planted_log(args.rows, args.group, args.per_sample, args.samples, args.batches)
        compare("synthetic", log, args.rows, args.train_frac, Path(d))
        if not args.skip_criteo:
            if CRITEO.exists():
                clog, n = criteo_log(args.criteo_samples)
                compare("criteo", clog, n, args.train_frac, Path(d))
            else:
                print(f"criteo: {CRITEO} not found, skipped")


if __name__ == "__main__":
    main()
