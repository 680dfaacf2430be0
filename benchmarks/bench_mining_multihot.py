"""Mining a multi-hot column: ``learned_hash.mine`` on DuckDB against the same counts as raw DuckDB SQL.

The log: a Parquet file of ``--rows`` rows (default 5 million) with a user id (Zipf over 1 million
users) and a list of items (0 to 2 * ``--mean-len`` ids a row, uniform; each id Zipf over 10
million items), generated once and cached in ``--data-dir`` (default: the system temp directory,
never the repository). The jobs: the frequencies of both columns and the co-occurrence of
(items, user), every item of a list paired with the row's user. The anchor is that work written
by hand as DuckDB SQL over ``read_parquet`` (a ``GROUP BY`` of the users, and one ``GROUPING SETS``
query over the lists unnested), fetched as Arrow; ours is ``mine(...)``, which also validates,
infers column kinds, applies the missing-id rule and sorts everything into LogStats. Both run in
this process with the same memory limit and threads; each is timed ``--repeat`` times
(interleaved) and the best run is reported, with the peak resident memory seen while it ran.

    python benchmarks/bench_mining_multihot.py                  # 5M rows, about 50M item ids
    python benchmarks/bench_mining_multihot.py --rows 500000    # smaller
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_mining import report, time_interleaved  # noqa: E402
from machine import cpu_model  # noqa: E402

USERS, ITEMS = 1_000_000, 10_000_000
ZIPF_A = 1.2
CHUNK = 1_000_000


def make_log(rows: int, mean_len: int, data_dir: Path, seed: int = 0) -> Path:
    """The log as Parquet, generated in chunks (bounded memory) and cached by size and seed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = data_dir / f"multihot_{rows}_len{mean_len}_s{seed}.parquet"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    writer = None
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        lengths = rng.integers(0, 2 * mean_len + 1, n)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        # Zipf ranks folded into the vocabulary, then scattered so hot ids are not the small ones
        items = (rng.zipf(ZIPF_A, int(offsets[-1])) % ITEMS) * 2654435761 % (1 << 40)
        users = (rng.zipf(ZIPF_A, n) % USERS) * 40503 % (1 << 40)
        table = pa.table({"user": users, "items": pa.ListArray.from_arrays(offsets, items)})
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=1 << 18)
        done += n
    writer.close()
    os.replace(tmp, path)
    return path


def raw_queries(path: Path, memory_limit: str, threads: int, tmp: str):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET temp_directory = '{tmp}'")
    con.execute("SET preserve_insertion_order = false")

    def fetch(sql):
        rel = con.sql(sql)
        return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

    users = fetch(f"SELECT user, count(*) AS n FROM read_parquet('{path}') GROUP BY user")
    items = fetch(
        f"SELECT e, user, GROUPING_ID(e, user) AS g, count(*) AS n FROM "
        f"(SELECT unnest(items) AS e, user FROM read_parquet('{path}')) GROUP BY GROUPING SETS ((e), (e, user))"
    )
    con.close()
    return users, items


def ours(path: Path, memory_limit: str, threads: int, tmp: str):
    from learned_hash import mine  # imported by main before the timing, as duckdb is for the raw query

    return mine(path, features=["user", "items"], pairs=[("items", "user")],
                memory_limit=memory_limit, threads=threads, temp_directory=tmp)


def _same_freqs(ids, n, stats, feature) -> bool:
    o = np.lexsort((ids, -n))  # frequencies are sorted by count (descending), then id
    got_ids, got_n = stats.frequencies(feature)
    return np.array_equal(ids[o], got_ids) and np.array_equal(n[o], got_n)


def check_same(raw, stats) -> None:
    """Ours and the raw queries agree on every count (the benchmark compares equal work)."""
    users, items = raw
    col = lambda t, c: t.column(c).to_numpy(zero_copy_only=False)  # noqa: E731
    if not _same_freqs(col(users, "user").astype(np.int64), col(users, "n"), stats, "user"):
        raise SystemExit("MISMATCH in user: the benchmark is not comparing equal work")
    g = col(items, "g")
    one = g == 1  # (e) alone: user aggregated away
    if not _same_freqs(col(items, "e")[one].astype(np.int64), col(items, "n")[one], stats, "items"):
        raise SystemExit("MISMATCH in items: the benchmark is not comparing equal work")
    both = g == 0
    a, b = col(items, "e")[both].astype(np.int64), col(items, "user")[both].astype(np.int64)
    n = col(items, "n")[both]
    o = np.lexsort((b, a))  # pair_counts is sorted by (ids_a, ids_b)
    got_a, got_b, got_n = stats.pair_counts("items", "user")
    if not (np.array_equal(a[o], got_a) and np.array_equal(b[o], got_b) and np.array_equal(n[o], got_n)):
        raise SystemExit("MISMATCH in the pair (items, user): the benchmark is not comparing equal work")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--mean-len", type=int, default=10, help="mean ids a list (lengths 0 to twice this)")
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "embcompress-bench")
    args = ap.parse_args(argv)

    import duckdb
    import learned_hash  # noqa: F401  (ours' import, outside its first timed run)

    t0 = time.perf_counter()
    path = make_log(args.rows, args.mean_len, args.data_dir)
    print(f"log: {path} ({args.rows:,} rows, lists of {args.mean_len} ids on average, "
          f"{path.stat().st_size / 2**20:.0f} MiB; ready in {time.perf_counter() - t0:.1f} s)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cpus; threads {args.threads}; memory limit {args.memory_limit}; "
          f"duckdb {duckdb.__version__}; python {platform.python_version()}")
    best, (raw, stats) = time_interleaved((raw_queries, ours), (path, args.memory_limit, args.threads), args.repeat)
    check_same(raw, stats)
    n_ids = stats.summary("items")["accesses"]
    print(f"item ids in lists: {n_ids:,} ({n_ids / best[1][0] / 1e6:.1f} M/s through mine)")
    report(best, "raw DuckDB SQL   ")

if __name__ == "__main__":
    main()
