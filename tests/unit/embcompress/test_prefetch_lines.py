"""The lookup kernel's row prefetch asks for every cache line of a record exactly once.

A missed line costs a stall, a repeated one costs time too (benchmarks/README.md, "A line is
prefetched once"), and neither shows in the results, so the macro is compiled here with a
recording prefetch and checked for every record size up to 600 bytes at every alignment."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from kernel_harness import kernel_source  # noqa: E402  (the kernel's C code, as the harness builds it)

PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static uintptr_t seen[64];
static int n_seen;
static void record(const void *p) { if (n_seen < 64) seen[n_seen] = (uintptr_t)p >> 6; n_seen++; }
#define REC(p) record((const void *)(p))
int main(void) {
    static _Alignas(64) uint8_t buf[64 * 20];
    for (int64_t rb = 1; rb <= 600; rb++)
        for (int a = 0; a < 64; a++) {
            const uint8_t *p = buf + 64 + a;
            n_seen = 0;
            EMBC_PREFETCH_LINES(REC, p, rb);
            const uintptr_t first = (uintptr_t)p >> 6, last = ((uintptr_t)p + rb - 1) >> 6;
            if (n_seen != (int)(last - first + 1)) { printf("rb %ld align %d: %d prefetches for %d lines\n", (long)rb, a, n_seen, (int)(last - first + 1)); return 1; }
            for (int i = 0; i < n_seen; i++)
                for (int j = 0; j < i; j++)
                    if (seen[i] == seen[j]) { printf("rb %ld align %d: a line twice\n", (long)rb, a); return 1; }
            for (int i = 0; i < n_seen; i++)
                if (seen[i] < first || seen[i] > last) { printf("rb %ld align %d: a line outside the record\n", (long)rb, a); return 1; }
        }
    puts("ok");
    return 0;
}
"""


def test_every_line_of_a_record_is_prefetched_once(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on PATH (the kernel itself needs one to build)")
    (tmp_path / "kernel.h").write_text(kernel_source())
    (tmp_path / "t.c").write_text('#include "kernel.h"\n' + PROGRAM)
    exe = tmp_path / "t"
    subprocess.run([cc, "-O1", "-std=gnu11", f"-I{tmp_path}", str(tmp_path / "t.c"), "-lm", "-o", str(exe)],
                   check=True, capture_output=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout


def test_the_compiled_decoders_keep_their_prefetches(tmp_path):
    # GCC deleted every call to a prefetch helper it had not inlined early (a function holding only
    # prefetches has no effect it can see): the general decoders and the first rows of each run
    # went unprefetched, 2.8x slower on mxfp6 (benchmarks/README.md). Compiled here as the package
    # builds the kernel, the code outside the fast paths must still prefetch (into L2, the one
    # distance the general decoders use).
    import re

    from kernel_harness import FLAGS

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on PATH (the kernel itself needs one to build)")
    (tmp_path / "kernel.h").write_text(kernel_source())
    (tmp_path / "t.c").write_text(
        '#include "kernel.h"\n'
        "void drive(const embc_fmt *f, const uint8_t *d, const int64_t *i, const int64_t *o, float *out, long n)"
        " { embc_bags(f, d, i, o, 0, n, 0, 0, out); }\n"
    )
    asm = tmp_path / "t.s"
    subprocess.run([cc, *FLAGS, "-S", f"-I{tmp_path}", str(tmp_path / "t.c"), "-o", str(asm)],
                   check=True, capture_output=True)
    per_function, current = {}, None
    for line in asm.read_text().splitlines():
        label = re.match(r"^([A-Za-z_][\w.]*):", line)
        if label:
            current = label.group(1)
        elif current and re.match(r"\s+prefetcht[0-2]\b", line):
            kind = line.split()[0]
            per_function.setdefault(current, set()).add(kind)
    general = set().union(*[kinds for fn, kinds in per_function.items() if not fn.startswith("embc_bag_f")])
    assert "prefetcht2" in general, per_function
