"""The kernels as a wheel for other machines builds them (EMBCOMPRESS_PORTABLE=1: the x86-64
baseline, plus the lookup kernel for CPUs with AVX2 and with AVX-512, chosen at import): every
lookup kernel of that build compiles and matches the NumPy twins bit for bit (this CPU runs each
one it has the flags for), and the best one the CPU runs serves.
CI's own build is native, so the baseline loops would otherwise never be compiled alone. Also: a
native build on an AVX-512 machine has the vector decoders."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from embcompress.kernels import _LOOKUP_VARIANTS, _cpu_flags, compiled

ROOT = Path(__file__).resolve().parents[2]
# the kernels' own tests: every format, mode and path against the NumPy reference
LOOKUP_TESTS = ["tests/unit/embcompress/test_lookup.py", "tests/unit/embcompress/test_collection_fused.py"]
OTHER_TESTS = ["tests/unit/embcompress/test_formats_kernels.py", "tests/unit/embcompress/test_idmap.py"]


@pytest.mark.skipif(compiled("_lookup") is None, reason="compiled kernels not built")
@pytest.mark.skipif(not {"avx2", "fma", "f16c"} <= _cpu_flags(), reason="this CPU has neither AVX-512 nor AVX2")
def test_a_native_build_has_the_vector_decoders_of_this_cpu():
    # (-march=native lost from setup.py would leave every lookup on slower loops): AVX-512 where
    # the CPU has it, else AVX2 (an AMD EPYC without AVX-512 ran this suite, 2026-11-27)
    want = "avx512" if {"avx512f", "avx512bw", "avx512vl"} <= _cpu_flags() else "avx2"
    assert compiled("_lookup").vector_isa() == want


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

    def run(*args, isa="auto"):
        done = subprocess.run([sys.executable, *args], cwd=copy, env={**env, "EMBCOMPRESS_LOOKUP_ISA": isa},
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (isa, done.stdout[-3000:], done.stderr[-3000:])
        return done.stdout

    which = ("import embcompress; from embcompress.kernels import backend, compiled; m = compiled('_lookup'); "
             "print(embcompress.__file__, backend(), m.__name__.rsplit('.', 1)[1], m.vector_isa())")
    where, backend, name, simd = run("-c", which, isa="baseline").split()
    assert Path(where).is_relative_to(copy) and backend == "cython" and (name, simd) == ("_lookup", "none")
    flags = _cpu_flags()
    runs = ["baseline"] + [isa for isa, needs in reversed(_LOOKUP_VARIANTS.items()) if needs <= flags]
    # auto: the best variant this CPU runs (the baseline loops on a CPU without AVX2)
    best = runs[-1]
    assert run("-c", which).split()[2:] == ([f"_lookup_{best}", best.split("_")[0]] if runs[1:] else ["_lookup", "none"])
    for isa in runs:  # (the other kernels' tests once: they have one build)
        run("-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *LOOKUP_TESTS, *(OTHER_TESTS if isa == "baseline" else []),
            isa=isa)

