"""benchmarks/bench_*.py at tiny sizes, each in a subprocess: they run, print their ratio lines, and
stop with an error when ours and the anchor do not compute the same thing (a fault injected into
ours before the script runs)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"

# Adds 1 to what a pooled lookup returns: the benchmark must notice.
BREAK_LOOKUP = """
import embcompress
_orig = embcompress.pooled_lookup
def _broken(*a, **k):
    out = _orig(*a, **k)
    out += 1.0
    return out
embcompress.pooled_lookup = _broken
"""


def run_bench(script: str, *args: str, patch: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        f"{patch}\n"
        f"sys.argv = [{script!r}, *{list(args)!r}]\n"
        f"runpy.run_path({str(BENCH / script)!r}, run_name='__main__')\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
    return res.stdout


LOOKUP_ARGS = ("--rows", "64", "--dim", "32", "--bags", "4", "--bag-len", "2", "--repeat", "1")


def test_lookup_prints_ratios():
    pytest.importorskip("torch")
    out = ok(run_bench("bench_lookup.py", *LOOKUP_ARGS))
    for kernel, anchor in (("mxint8", "int8"), ("int8_rowwise", "int8"), ("mxfp4_e2m1", "int4"), ("fp32", "fp32")):
        lines = [ln for ln in out.splitlines() if f" {kernel} " in ln and f"x {anchor}" in ln]
        assert len(lines) == 4, (kernel, out)  # 2 id distributions x 2 thread counts


def test_lookup_fails_when_ours_computes_something_else():
    pytest.importorskip("torch")
    res = run_bench("bench_lookup.py", *LOOKUP_ARGS, patch=BREAK_LOOKUP)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH" in res.stdout + res.stderr


def test_ab_lookup_compares_two_builds_of_the_kernel(tmp_path):
    from embcompress.kernels import compiled

    kernel = compiled("_lookup")
    if kernel is None:
        pytest.skip("the compiled lookup kernel is not built (make install builds it)")
    copy = tmp_path / Path(kernel.__file__).name  # a second file: loaded as a module of its own
    copy.write_bytes(Path(kernel.__file__).read_bytes())
    out = ok(run_bench("ab_lookup.py", kernel.__file__, str(copy), "--rows", "200", "--rounds", "1",
                       "--formats", "mxint8", "mxfp4_e2m1"))
    assert len([ln for ln in out.splitlines() if " B / A " in ln]) == 2, out
    res = run_bench("ab_lookup.py", kernel.__file__, str(tmp_path / "nothing.so"), "--rows", "200")
    assert res.returncode != 0 and "not a loadable module file" in res.stdout + res.stderr, res.stderr[-2000:]


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_read_ceiling_torch_prints_each_reader_against_torch():
    pytest.importorskip("torch")
    for bits, ours in (("8", "mxint8"), ("4", "mxfp4_e2m1")):
        out = ok(run_bench("read_ceiling_torch.py", "--rows", "1000", "--rounds", "1", "--bits", bits))
        lines = [ln for ln in out.splitlines() if ln.endswith("x torch")]
        assert len(lines) == 8, out  # torch, ours, 6 readers
        assert lines[0].startswith(f"torch int{bits} operator") and lines[1].startswith(ours), out


LATENCY_ARGS = ("--rows", "256", "--dim", "32", "--bag-len", "2", "--bags", "1", "3", "--calls", "20",
                "--batches", "4")


def test_latency_prints_ratios():
    pytest.importorskip("torch")
    out = ok(run_bench("bench_latency.py", *LATENCY_ARGS))
    for pair in ("pooled_lookup mxint8 | torch int8 op", "pooled_lookup mxfp4_e2m1 | torch int4 op",
                 "MXEmbeddingBag mxfp4_e2m1 | nn.EmbeddingBag", "TieredStore, rows in DRAM | table in memory",
                 "TieredStore, Zipf ids | table in memory"):
        lines = [ln for ln in out.splitlines() if ln.startswith(pair)]
        assert len(lines) == 2 and all(ln.endswith("x") for ln in lines), (pair, out)  # 2 batch sizes


def test_latency_fails_when_ours_computes_something_else():
    pytest.importorskip("torch")
    res = run_bench("bench_latency.py", *LATENCY_ARGS, patch=BREAK_LOOKUP)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH" in res.stdout + res.stderr


COLLECTION_ARGS = ("--features", "5", "--max-rows", "2000", "--dim", "16", "--bags", "1", "4", "--calls", "20",
                   "--batches", "4")


def test_collection_prints_ratios():
    pytest.importorskip("torch")
    out = ok(run_bench("bench_collection.py", *COLLECTION_ARGS))
    for pair in ("MXEmbeddingBagCollection | nn.EmbeddingBag each", "MXEmbeddingBagCollection | torch int8 op each",
                 "MXEmbeddingBagCollection | MXEmbeddingBag each"):
        lines = [ln for ln in out.splitlines() if ln.startswith(pair)]
        assert len(lines) == 2 and all(ln.endswith("x") for ln in lines), (pair, out)  # 2 batch sizes


def test_collection_fails_when_ours_computes_something_else():
    pytest.importorskip("torch")
    patch = """
import embcompress.nn as enn
_orig = enn.pooled_lookup_many
def _broken(*a, **k):
    outs = _orig(*a, **k)
    for o in outs:
        o += 1.0
    return outs
enn.pooled_lookup_many = _broken
"""
    res = run_bench("bench_collection.py", *COLLECTION_ARGS, patch=patch)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH" in res.stdout + res.stderr


QUANTIZE_ARGS = ("--rows", "64", "--dim", "32", "--repeat", "1")


def test_quantize_prints_ratios():
    pytest.importorskip("torch")
    out = ok(run_bench("bench_quantize.py", *QUANTIZE_ARGS))
    for fmt in ("int8_rowwise", "int4_rowwise", "int2_rowwise"):
        (line,) = [ln for ln in out.splitlines() if ln.startswith(fmt)]
        assert "x" in line.split()[3] and "fbgemm" in line, line


def test_quantize_fails_when_ours_computes_something_else():
    pytest.importorskip("torch")
    patch = (
        "import embcompress\n"
        "_orig = embcompress.quantize\n"
        "embcompress.quantize = lambda x, fmt, **k: _orig(x * 1.5, fmt, **k)\n"
    )
    res = run_bench("bench_quantize.py", *QUANTIZE_ARGS, "--formats", "int8_rowwise", patch=patch)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH" in res.stdout + res.stderr


def test_idmap_prints_ratios():
    out = ok(run_bench("bench_idmap.py", "--ids", "10", "--queries", "10", "--rows", "4", "--repeat", "1"))
    assert out.count("x the anchor") == 4, out


def test_fit_hash_prints_ratio():
    pytest.importorskip("faiss")
    out = ok(run_bench("bench_fit_hash.py", "--ids", "1000", "--rows", "64", "--groups", "10"))
    assert "x the anchor" in out, out


MINING_ARGS = ("--rows", "1000", "--repeat", "1")


def test_mining_prints_ratio(tmp_path):
    for mod in ("duckdb", "pyarrow", "psutil"):
        pytest.importorskip(mod)
    out = ok(run_bench("bench_mining.py", *MINING_ARGS, "--data-dir", str(tmp_path)))
    assert "ratio ours/raw" in out and "counts identical" in out, out


def test_mining_fails_when_pair_counts_differ(tmp_path):
    for mod in ("duckdb", "pyarrow", "psutil"):
        pytest.importorskip(mod)
    patch = (
        "from learned_hash.mining.stats import LogStats\n"
        "_orig = LogStats.pair_counts\n"
        "def _broken(self, *a, **k):\n"
        "    ia, ib, c = _orig(self, *a, **k)\n"
        "    return ia, ib, c + 1\n"
        "LogStats.pair_counts = _broken\n"
    )
    res = run_bench("bench_mining.py", *MINING_ARGS, "--data-dir", str(tmp_path), patch=patch)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH" in res.stdout + res.stderr


def test_mining_multihot_prints_ratio(tmp_path):
    for mod in ("duckdb", "pyarrow", "psutil"):
        pytest.importorskip(mod)
    out = ok(run_bench("bench_mining_multihot.py", *MINING_ARGS, "--data-dir", str(tmp_path)))
    assert "ratio ours/raw" in out and "counts identical" in out, out


def test_mining_multihot_fails_when_list_counts_differ(tmp_path):
    for mod in ("duckdb", "pyarrow", "psutil"):
        pytest.importorskip(mod)
    patch = (
        "from learned_hash.mining.stats import LogStats\n"
        "_orig = LogStats.frequencies\n"
        "def _broken(self, f):\n"
        "    ids, c = _orig(self, f)\n"
        "    return ids, c + (f == 'items')\n"
        "LogStats.frequencies = _broken\n"
    )
    res = run_bench("bench_mining_multihot.py", *MINING_ARGS, "--data-dir", str(tmp_path), patch=patch)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH in items" in res.stdout + res.stderr


STORE_ARGS = ("--rows", "1000", "--batches", "4", "--batch", "64", "--throughput-batches", "2",
              "--skip-talkingdata", "--plan-rows", "1000")


def test_store_prints_ratios(tmp_path):
    out = ok(run_bench("bench_store.py", *STORE_ARGS, "--dir", str(tmp_path)))
    assert out.count("ratio to anchor") == 4, out
    assert out.count("refresh 1 - ideal") == 2, out


def test_store_runs_on_a_table_under_ten_rows(tmp_path):
    # 10 % of 5 rows is no whole row: the DRAM budget must still hold one, as section 1's does
    out = ok(run_bench("bench_store.py", "--rows", "5", "--batches", "2", "--batch", "32", "--throughput-batches", "1",
                       "--sections", "1,2", "--skip-talkingdata", "--dir", str(tmp_path)))
    assert out.count("ratio to anchor") == 4, out


def test_store_fails_when_the_store_computes_something_else(tmp_path):
    patch = (
        "from embcompress.store import TieredStore\n"
        "_orig = TieredStore.pooled_lookup\n"
        "def _broken(self, *a, **k):\n"
        "    out = _orig(self, *a, **k)\n"
        "    out += 1.0\n"
        "    return out\n"
        "TieredStore.pooled_lookup = _broken\n"
    )
    res = run_bench("bench_store.py", *STORE_ARGS, "--sections", "2", "--dir", str(tmp_path), patch=patch)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH" in res.stdout + res.stderr


def test_layout_prints_ratios():
    out = ok(run_bench("bench_layout.py", "--rows", "1000", "--batches", "4", "--samples", "8", "--skip-criteo"))
    assert "fewer blocks without DRAM" in out, out


def test_run_all_passes_arguments_and_reports_failures():
    # an option no benchmark knows: every one must fail, and run_all must say so with exit 1
    res = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--no-such-option"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "failed: " + ", ".join(sorted(p.name for p in BENCH.glob("bench_*.py"))) in res.stdout


@pytest.mark.parametrize("script, args", [
    ("bench_store.py", ("--rows", "100", "--batch", "32", "--skip-talkingdata", "--sections", "1")),
    ("bench_layout.py", ("--rows", "16", "--samples", "1", "--skip-criteo")),
])
def test_no_measured_batches_is_refused_not_printed_as_nan(script, args, tmp_path):
    # one batch all goes to mining: nothing is left to measure, so no figure can be printed
    res = run_bench(script, *args, "--batches", "1")
    assert res.returncode != 0, res.stdout[-2000:]
    assert "--batches" in res.stderr and "nan" not in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]


UNIQUE_ARGS = ("--sizes", "5", "300", "--rows", "1000", "--repeat", "1")


def test_unique_prints_ratios():
    out = ok(run_bench("bench_unique.py", *UNIQUE_ARGS))
    lines = [ln for ln in out.splitlines() if ln.strip().endswith("x")]
    assert len(lines) == 4, out  # 2 sizes x 2 distributions


def test_unique_fails_when_ours_computes_something_else():
    patch = ("import numpy as np, embcompress.kernels.unique as U\n"
             "_orig = U.unique_ids\n"
             "def _broken(ids):\n"
             "    u, inv, cnt = _orig(ids)\n"
             "    return u, inv, cnt + 1\n"
             "U.unique_ids = _broken\n")
    res = run_bench("bench_unique.py", *UNIQUE_ARGS, patch=patch)
    assert res.returncode != 0 and "MISMATCH" in res.stdout, res.stdout[-2000:]


REORDER_ARGS = ("--rows", "20000", "--rounds", "1", "--window", "0", "200000")


def test_reorder_prints_ratios():
    out = ok(run_bench("bench_reorder.py", *REORDER_ARGS))
    lines = [ln for ln in out.splitlines() if ln.startswith(("anchor:", "ours:")) and "x anchor" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["anchor", "ours", "ours"], out
    assert all("20,000 rows in" in ln for ln in lines[1:]), out  # ours copies the whole table


def test_reorder_fails_when_ours_puts_a_row_elsewhere():
    patch = (
        "from embcompress.store import placement\n"
        "_orig = placement._rows_in_order\n"
        "def _broken(rows, dest, memory_bytes):\n"
        "    for out in _orig(rows, dest, memory_bytes):\n"
        "        yield out[::-1]\n"
        "placement._rows_in_order = _broken\n"
    )
    res = run_bench("bench_reorder.py", *REORDER_ARGS, patch=patch)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "does not hold old row" in res.stdout + res.stderr


def test_coaccess_prints_ratio():
    out = ok(run_bench("bench_coaccess.py", "--rows", "5000", "--edges", "3000"))
    (line,) = [ln for ln in out.splitlines() if ln.startswith("ours:")]
    assert line.endswith("x anchor"), out


def test_coaccess_fails_when_ours_groups_otherwise():
    patch = (
        "import numpy as np\n"
        "from embcompress.kernels import compiled\n"
        "_mod = compiled('_groups')\n"
        "_orig = _mod.union_bounded\n"
        "class _Broken:\n"
        "    def union_bounded(self, a, b, cap, parent, size):\n"
        "        _orig(b, a, cap, parent, size)\n"  # ties now keep the other end's root
        "import embcompress.store.placement as P\n"
        "_c = P.compiled\n"
        "P.compiled = lambda name: _Broken() if name == '_groups' and _c(name) is not None else _c(name)\n"
    )
    res = run_bench("bench_coaccess.py", "--rows", "5000", "--edges", "3000", patch=patch)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "MISMATCH" in res.stdout + res.stderr
