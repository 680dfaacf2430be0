"""Build the Cython + OpenMP kernels.

Every ``*.pyx`` under the three packages is compiled with the same directives, so a new kernel
needs no change here. OpenMP is probed once at build time: where the compiler lacks it the
kernels still build and run serially (``prange`` becomes ``range``).
"""

import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
PACKAGES = ("embcompress", "learned_hash", "analysis")
DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "nonecheck": False,
    "embedsignature": True,
}
PORTABLE = os.environ.get("EMBCOMPRESS_PORTABLE") == "1"
# A portable build (a wheel for other machines) compiles for the x86-64 baseline, where the lookup
# kernel has no vector decoders and runs 3-30x slower. So the lookup kernel, the serving hot path,
# is also built for CPUs with AVX2 (x86-64-v3), with AVX-512 (x86-64-v4: Skylake-SP and later,
# Zen 4) and with AVX-512's byte permutes and GF(2) affine maps as well (Ice Lake server,
# Sapphire Rapids, Zen 4); at import embcompress.kernels picks the best one the CPU runs.
LOOKUP_VARIANTS = {
    "avx2": ["-march=x86-64-v3"],  # Haswell and later, Zen 1-3: the AVX2 decoders
    "avx512": ["-march=x86-64-v4"],
    "avx512_vbmi": ["-march=x86-64-v4", "-mavx512vbmi", "-mgfni"],
}


def _has_openmp(compiler) -> bool:
    """Compile and link a tiny OpenMP program with the compiler the build will use."""
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "probe.c"
        c.write_text(src)
        try:
            objs = compiler.compile([str(c)], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objs, str(Path(tmp) / "probe"), extra_postargs=["-fopenmp"])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        openmp = os.environ.get("EMBCOMPRESS_NO_OPENMP") != "1" and _has_openmp(self.compiler)
        if not openmp:
            print("embcompress: OpenMP not found, kernels build serial", file=sys.stderr)
        # -march=native: the kernels are built on the machine that runs them (pip builds from
        # source); set EMBCOMPRESS_PORTABLE=1 to build a wheel for other machines.
        for ext in self.extensions:
            arch = getattr(ext, "variant_args", []) if PORTABLE else ["-march=native"]
            # No FMA contraction: every kernel must match its NumPy twin bit for bit.
            ext.extra_compile_args = ["-O3", "-ffp-contract=off", *arch, *(["-fopenmp"] if openmp else [])]
            ext.extra_link_args = ["-fopenmp"] if openmp else []
        super().build_extensions()
        if not PORTABLE and self.inplace:  # (a portable build's variants would outlive it beside this one)
            for stale in (ROOT / "embcompress" / "kernels").glob("_lookup_*.so"):
                stale.unlink()

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # (a compiler without these targets: the portable kernel serves alone)
            if not hasattr(ext, "variant_args"):
                raise
            print(f"embcompress: {ext.name} not built ({exc}); the portable lookup kernel serves", file=sys.stderr)


def _extensions():
    exts = []
    for pkg in PACKAGES:
        for pyx in sorted((ROOT / pkg).rglob("*.pyx")):
            rel = pyx.relative_to(ROOT).with_suffix("")
            exts.append(
                Extension(
                    ".".join(rel.parts),
                    [str(pyx.relative_to(ROOT))],
                    include_dirs=[np.get_include()],
                    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                )
            )
    exts = cythonize(exts, compiler_directives=DIRECTIVES, quiet=True)
    if PORTABLE and platform.machine().lower() in ("x86_64", "amd64"):
        for variant, args in LOOKUP_VARIANTS.items():
            # the same source as another module: its C goes to a folder of its own
            ext = Extension(f"embcompress.kernels._lookup_{variant}", ["embcompress/kernels/_lookup.pyx"],
                            include_dirs=[np.get_include()],
                            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
            (ext,) = cythonize([ext], compiler_directives=DIRECTIVES, quiet=True, build_dir=f"build/{variant}")
            ext.variant_args = args
            exts.append(ext)
    return exts


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
