"""Build the Cython + OpenMP kernels.

Every ``*.pyx`` under the three packages is compiled with the same directives, so a new kernel
needs no change here. OpenMP is probed once at build time: where the compiler lacks it the
kernels still build and run serially (``prange`` becomes ``range``).
"""

import os
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
        arch = [] if os.environ.get("EMBCOMPRESS_PORTABLE") == "1" else ["-march=native"]
        for ext in self.extensions:
            # No FMA contraction: every kernel must match its NumPy twin bit for bit.
            ext.extra_compile_args = ["-O3", "-ffp-contract=off", *arch, *(["-fopenmp"] if openmp else [])]
            ext.extra_link_args = ["-fopenmp"] if openmp else []
        super().build_extensions()


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
    return cythonize(exts, compiler_directives=DIRECTIVES, quiet=True)


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
