"""Mining speed: ``learned_hash.mine`` on DuckDB against the same counts as one raw DuckDB query.

The log: a Parquet file of ``--rows`` rows (default 20 million) and 8 integer features with Zipf
ids (vocabularies from 100 to 10 million), generated once and cached in ``--data-dir`` (default:
the system temp directory, never the repository). The jobs: the frequencies of all 8 features and
the co-occurrence of the pair (f0, f1). The anchor is that work written by hand as one DuckDB
``GROUP BY GROUPING SETS`` query over ``read_parquet`` fetched as Arrow; ours is ``mine(...)``,
which also validates, infers column kinds, applies the missing-id rule and min_count, and sorts
everything into LogStats. Both run in this process with the same memory limit and threads;
each is timed ``--repeat`` times (interleaved) and the best run is reported, with the peak
resident memory of the process seen while it ran (sampled every 10 ms) and its growth during the
run (the first run of each is the cleanest memory figure: freed memory may stay resident).

    python benchmarks/bench_mining.py                  # 20M rows (about 1 GB of Parquet)
    python benchmarks/bench_mining.py --rows 2000000   # smaller
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_model  # noqa: E402

N_FEATURES = 8
VOCAB = [100, 1_000, 10_000, 100_000, 1_000_000, 3_000_000, 10_000_000, 10_000_000]
ZIPF_A = 1.2
CHUNK = 2_000_000




def make_log(rows: int, data_dir: Path, seed: int = 0) -> Path:
    """The Zipf log as Parquet, generated in chunks (bounded memory) and cached by size and seed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = data_dir / f"zipf_{rows}_{N_FEATURES}f_s{seed}.parquet"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    writer = None
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        cols = {}
        for f in range(N_FEATURES):
            # Zipf ranks folded into the vocabulary, then scattered so hot ids are not the small ones
            rank = rng.zipf(ZIPF_A, n) % VOCAB[f]
            cols[f"f{f}"] = (rank * 2654435761 + f) % (1 << 40)
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=1 << 20)
        done += n
    writer.close()
    os.replace(tmp, path)
    return path


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 10 ms)."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        """Peak above the resident size at entry (earlier runs' freed memory may stay resident)."""
        return self.peak - self.start


def raw_query(path: Path, memory_limit: str, threads: int, tmp: str):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET temp_directory = '{tmp}'")
    con.execute("SET preserve_insertion_order = false")
    keys = ", ".join(f"f{i}" for i in range(N_FEATURES))
    sets = ", ".join([f"(f{i})" for i in range(N_FEATURES)] + ["(f0, f1)"])
    rel = con.sql(
        f"SELECT {keys}, GROUPING_ID({keys}) AS g, count(*) AS n "
        f"FROM read_parquet('{path}') GROUP BY GROUPING SETS ({sets})"
    )
    table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
    con.close()
    return table


def ours(path: Path, memory_limit: str, threads: int, tmp: str):
    from learned_hash import mine  # imported by main before the timing, as duckdb is for the raw query

    return mine(path, features=[f"f{i}" for i in range(N_FEATURES)], pairs=[("f0", "f1")],
                memory_limit=memory_limit, threads=threads, temp_directory=tmp)


def check_same(table, stats) -> None:
    """Ours and the raw query agree on every count (the benchmark compares equal work)."""
    g = table.column("g").to_numpy()
    for i in range(N_FEATURES):
        mask = (1 << N_FEATURES) - 1 - (1 << (N_FEATURES - 1 - i))
        sel = g == mask
        ids = table.column(f"f{i}").to_numpy(zero_copy_only=False)[sel].astype(np.int64)
        n = table.column("n").to_numpy()[sel]
        o = np.lexsort((ids, -n))
        got_ids, got_n = stats.frequencies(f"f{i}")
        if not (np.array_equal(ids[o], got_ids) and np.array_equal(n[o], got_n)):
            raise SystemExit(f"MISMATCH in f{i}: the benchmark is not comparing equal work")
    mask = (1 << N_FEATURES) - 1 - (1 << (N_FEATURES - 1)) - (1 << (N_FEATURES - 2))
    sel = g == mask
    a, b = (table.column(c).to_numpy(zero_copy_only=False)[sel].astype(np.int64) for c in ("f0", "f1"))
    n = table.column("n").to_numpy()[sel]
    o = np.lexsort((b, a))  # pair_counts is sorted by (ids_a, ids_b)
    got_a, got_b, got_n = stats.pair_counts("f0", "f1")
    if not (np.array_equal(a[o], got_a) and np.array_equal(b[o], got_b) and np.array_equal(n[o], got_n)):
        raise SystemExit("MISMATCH in the pair (f0, f1): the benchmark is not comparing equal work")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "embcompress-bench")
    args = ap.parse_args(argv)

    import duckdb
    import learned_hash  # noqa: F401  (ours' import, outside its first timed run)

    t0 = time.perf_counter()
    path = make_log(args.rows, args.data_dir)
    print(f"log: {path} ({args.rows:,} rows x {N_FEATURES} features, {path.stat().st_size / 2**20:.0f} MiB; "
          f"ready in {time.perf_counter() - t0:.1f} s)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cpus; threads {args.threads}; memory limit {args.memory_limit}; "
          f"duckdb {duckdb.__version__}; python {platform.python_version()}")
    best, (table, stats) = time_interleaved((raw_query, ours), (path, args.memory_limit, args.threads), args.repeat)
    check_same(table, stats)
    report(best, "raw DuckDB query ")


def time_interleaved(runs, args, repeat: int):
    """Run the anchor and ours (``runs``) ``repeat`` times, interleaved, each as ``run(*args, tmp)``
    with ``tmp`` one temporary directory; print each run. Returns ``(best, results)``: the best
    (seconds, peak RSS) of each, and the last result of each."""
    best = [(float("inf"), 0), (float("inf"), 0)]
    results = [None, None]
    with tempfile.TemporaryDirectory(prefix="embc-bench-mine-") as tmp:
        for r in range(repeat):
            for k, (name, run) in enumerate(zip(("raw", "ours"), runs)):
                with PeakRSS() as mem:
                    t = time.perf_counter()
                    results[k] = run(*args, tmp)
                    dt = time.perf_counter() - t
                print(f"  run {r + 1} {name:4s}: {dt:7.2f} s, peak RSS {mem.peak / 2**20:6.0f} MiB "
                      f"(+{mem.growth / 2**20:.0f} MiB during the run)")
                best[k] = min(best[k], (dt, mem.peak))
    return best, results


def report(best, anchor: str) -> None:
    """Print the best runs and their ratio (after the counts were checked identical)."""
    (raw_s, raw_mem), (our_s, our_mem) = best
    print(f"{anchor}: {raw_s:7.2f} s  peak RSS {raw_mem / 2**20:6.0f} MiB")
    print(f"learned_hash.mine: {our_s:7.2f} s  peak RSS {our_mem / 2**20:6.0f} MiB")
    print(f"ratio ours/raw   : {our_s / raw_s:.2f}x (target <= 1.3x); counts identical")


if __name__ == "__main__":
    main()
