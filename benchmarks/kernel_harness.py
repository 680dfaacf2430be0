"""The lookup kernel timed from C, with and without its software prefetches.

    python benchmarks/kernel_harness.py [--rows 2000000] [--rounds 15]

Extracts the kernel's C code from ``embcompress/kernels/_lookup.pyx`` (the block Cython compiles
verbatim), builds ``benchmarks/kernel_harness.c`` against it twice with the package's flags (once
with ``-DEMBC_NO_PREFETCH``), and runs both on an mxint8 table with uniform and Zipf(1.05) ids,
in turn. What it answers: how much of the kernel's speed its prefetching provides, apart from
Python and from torch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine  # noqa: E402

HERE = Path(__file__).resolve().parent
PYX = HERE.parent / "embcompress" / "kernels" / "_lookup.pyx"
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fwrapv"]


def kernel_source() -> str:
    text = PYX.read_text()
    start = text.index('cdef extern from *:\n    """') + len('cdef extern from *:\n    """')
    return textwrap.dedent(text[start:text.index('    """', start)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each build, in turn")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.h").write_text(kernel_source())
        builds = {}
        for name, extra in (("prefetch", []), ("no prefetch", ["-DEMBC_NO_PREFETCH"])):
            exe = Path(tmp) / name.replace(" ", "_")
            subprocess.run(["cc", *FLAGS, *extra, f"-I{tmp}", str(HERE / "kernel_harness.c"), "-lm", "-o", str(exe)],
                           check=True)
            builds[name] = exe
        print(f"mxint8, {args.rows} x 128, 8192 bags of 32, sum, 1 thread, best of {args.rounds} rounds; Mrows/s")
        for ids, zipf in (("uniform", "0"), ("zipf1.05", "1.05")):
            for _ in range(args.repeat):
                for name, exe in builds.items():
                    res = subprocess.run([str(exe), str(args.rows), zipf, str(args.rounds)], check=True,
                                         capture_output=True, text=True).stdout.split()
                    print(f"{ids:<9} {name:<12} {float(res[0]):7.1f}")


if __name__ == "__main__":
    main()
