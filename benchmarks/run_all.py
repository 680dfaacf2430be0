"""Run every benchmarks/bench_*.py with its default arguments, one after another (`make bench`).

Each benchmark prints its own machine, thread count, seconds and ratios; this only sequences them
and reports which failed. Extra arguments are passed to every benchmark (e.g. none, usually).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    failed = []
    for bench in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {bench.name} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(bench), *argv], cwd=HERE.parent)
        print(f"=== {bench.name}: exit {code}, {time.perf_counter() - start:.1f}s ===", flush=True)
        if code:
            failed.append(bench.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
