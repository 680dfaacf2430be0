"""The kernels as a wheel for other machines builds them (EMBCOMPRESS_PORTABLE=1: no -march=native,
so no AVX-512 paths): that build compiles and matches the NumPy twins bit for bit. CI's own build
is native, and the portable C loops' code outside the vector paths would otherwise never be
compiled alone. Also: a native build on an AVX-512 machine has the vector decoders."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from embcompress.kernels import compiled

ROOT = Path(__file__).resolve().parents[2]
# the kernels' own tests: every format, mode and path against the NumPy reference
KERNEL_TESTS = ["tests/unit/embcompress/test_lookup.py", "tests/unit/embcompress/test_formats_kernels.py",
                "tests/unit/embcompress/test_collection_fused.py", "tests/unit/embcompress/test_idmap.py"]


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


@pytest.mark.skipif(compiled("_lookup") is None, reason="compiled kernels not built")
@pytest.mark.skipif(not {"avx512f", "avx512bw", "avx512vl"} <= _cpu_flags(), reason="this CPU has no AVX-512")
def test_a_native_build_has_the_avx512_decoders():
    # (-march=native lost from setup.py would leave every lookup on the scalar loops, 1.5-2x slower)
    assert compiled("_lookup").have_simd()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_a_portable_build_compiles_and_matches_the_reference(tmp_path):
    copy = tmp_path / "src"
    skip = shutil.ignore_patterns("*.so", "__pycache__", "build", "*.egg-info")
    for name in ("embcompress", "learned_hash", "analysis", "tests"):
        shutil.copytree(ROOT / name, copy / name, ignore=skip)  # (the generated .c files, kept newer than their .pyx)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, copy / name)
    env = {**os.environ, "EMBCOMPRESS_PORTABLE": "1", "PYTHONPATH": str(copy)}
    env.pop("EMBCOMPRESS_KERNELS", None)
    built = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", "2"], cwd=copy, env=env,
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-4000:]
    check = subprocess.run(
        [sys.executable, "-c", "import embcompress; from embcompress.kernels import backend, compiled; "
                               "print(embcompress.__file__, backend(), compiled('_lookup').have_simd())"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-3000:]
    where, backend, simd = check.stdout.split()
    assert Path(where).is_relative_to(copy) and backend == "cython" and simd == "False"
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *KERNEL_TESTS],
                           cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert tests.returncode == 0, tests.stdout[-4000:]
