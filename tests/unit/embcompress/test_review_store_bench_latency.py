"""Review test of bench_latency.py's store pairs (commit 8dfbcf8): they measure what they say."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "benchmarks"


def test_the_zipf_store_pair_hits_the_hot_set_its_frequencies_chose():
    # The store's hot set came from Zipf frequencies over one random placement of the rows and
    # each batch drew its Zipf ids over another (bench_lookup.zipf_ids permutes per call): to the
    # batches the hot set was a random tenth of the rows, so "Zipf ids" measured about 90 % misses.
    pytest.importorskip("torch")
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        "sys.argv = ['bench_latency.py', '--rows', '2000', '--dim', '32', '--bag-len', '8', '--bags', '1', '16',"
        " '--calls', '4', '--batches', '4']\n"
        f"runpy.run_path({str(BENCH / 'bench_latency.py')!r}, run_name='__main__')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rates = re.findall(r"(\d+)% with rows in DRAM, (\d+)% with Zipf ids", res.stdout)
    assert len(rates) == 2, res.stdout
    for in_dram, zipf in rates:
        # 10 % of the rows in DRAM: Zipf(1.05) ids over the hot set's placement hit it for about
        # 60-70 % of a batch's unique rows here; a random tenth would be hit by about 10 %.
        assert int(in_dram) == 100 and int(zipf) >= 40, res.stdout
