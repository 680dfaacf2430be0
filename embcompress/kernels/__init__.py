"""Compiled kernels and their NumPy twins.

Every kernel has a NumPy reference in the package; the compiled (Cython + OpenMP) one must match it
bit for bit. ``backend()`` says which runs: the compiled one when it is built, else NumPy.
Override with the environment variable ``EMBCOMPRESS_KERNELS`` = ``auto`` (default), ``cython``
(fail if not built) or ``numpy``. ``n_threads=None`` everywhere means the machine's thread count,
honouring ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import importlib
import os

from ..errors import BackendUnavailableError, ConfigError

_CHOICES = ("auto", "cython", "numpy")


def backend() -> str:
    """``"cython"`` or ``"numpy"``: the backend kernels use, by ``EMBCOMPRESS_KERNELS``."""
    want = os.environ.get("EMBCOMPRESS_KERNELS", "auto").lower()
    if want not in _CHOICES:
        raise ConfigError(
            f"The environment variable EMBCOMPRESS_KERNELS must be one of {_CHOICES}. Got {want!r} instead."
        )
    if want == "numpy":
        return "numpy"
    try:
        importlib.import_module(f"{__name__}._threads")
    except ImportError:
        if want == "cython":
            raise BackendUnavailableError(
                "EMBCOMPRESS_KERNELS=cython but the compiled kernels are not built. "
                "Reinstall with `pip install -e .` (needs a C compiler) or unset the variable."
            ) from None
        return "numpy"
    return "cython"


def compiled(module: str):
    """The compiled module ``embcompress.kernels.<module>``, or None when the NumPy backend runs."""
    if backend() == "numpy":
        return None
    try:
        return importlib.import_module(f"{__name__}.{module}")
    except ImportError:
        if os.environ.get("EMBCOMPRESS_KERNELS", "auto").lower() == "cython":
            raise BackendUnavailableError(
                f"The compiled kernel {module!r} is not built. Reinstall with `pip install -e .`."
            ) from None
        return None


def resolve_threads(n_threads: int | None) -> int:
    """Threads to use: ``n_threads``, or the OpenMP default (``OMP_NUM_THREADS`` or all cores)."""
    if n_threads is None:
        mod = compiled("_threads")
        return mod.max_threads() if mod is not None else (os.cpu_count() or 1)
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 1:
        raise ConfigError(f"The 'n_threads' parameter must be a positive int or None. Got {n_threads!r} instead.")
    return n_threads
