"""Compiled kernels and their NumPy twins.

Every kernel has a NumPy reference in the package; the compiled (Cython + OpenMP) one must match it
bit for bit. ``backend()`` says which runs: the compiled one when it is built, else NumPy.
Override with the environment variable ``EMBCOMPRESS_KERNELS`` = ``auto`` (default), ``cython``
(fail if not built) or ``numpy``. ``n_threads=None`` everywhere means the machine's thread count,
honouring ``OMP_NUM_THREADS``; in a forked child process kernels run on one thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import operator
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


# os.environ.get costs about a microsecond (it encodes the key and decodes the value), and every
# lookup asks which backend runs; so compiled() reads os.environ's own raw mapping (os.environ
# and monkeypatch.setenv write it; on POSIX its keys are bytes), falling back where it is absent.
_RAW_ENV = getattr(os.environ, "_data", None)
try:
    _RAW_KEY = os.environ.encodekey("EMBCOMPRESS_KERNELS")  # type: ignore[attr-defined]
except AttributeError:
    _RAW_ENV = None


def _raw_setting():
    if _RAW_ENV is not None:
        return _RAW_ENV.get(_RAW_KEY)
    return os.environ.get("EMBCOMPRESS_KERNELS")


# (raw EMBCOMPRESS_KERNELS value, module) -> the module or None: every lookup asks, and answering
# afresh (two imports) cost 2 us a call, a seventh of a one-bag lookup.
_COMPILED: dict[tuple[object, str], object] = {}


def compiled(module: str):
    """The compiled module ``embcompress.kernels.<module>``, or None when the NumPy backend runs."""
    key = (_raw_setting(), module)
    try:
        return _COMPILED[key]
    except KeyError:
        pass
    if backend() == "numpy":
        mod = None
    else:
        try:
            mod = importlib.import_module(f"{__name__}.{_variant(module)}")
        except ImportError:
            if os.environ.get("EMBCOMPRESS_KERNELS", "auto").lower() == "cython":
                raise BackendUnavailableError(
                    f"The compiled kernel {module!r} is not built. Reinstall with `pip install -e .`."
                ) from None
            mod = None
    _COMPILED[key] = mod
    return mod


# A portable build (EMBCOMPRESS_PORTABLE=1, a wheel for other machines) compiles for the x86-64
# baseline, and also builds the lookup kernel for CPUs with AVX2 and with AVX-512 (setup.py's
# LOOKUP_VARIANTS):
# the best one this CPU runs serves, by the flags /proc/cpuinfo lists (which the kernel clears for
# features the OS does not enable). A native build has one lookup kernel, for the machine that built it.
_AVX2 = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm"})  # x86-64-v3 ("abm": lzcnt)
_AVX512 = _AVX2 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}  # x86-64-v4
_LOOKUP_VARIANTS = {  # best first
    "avx512_vbmi": _AVX512 | {"avx512vbmi", "gfni"},
    "avx512": _AVX512,
    "avx2": _AVX2,
}
_ISA_CHOICES = ("auto", "baseline", *_LOOKUP_VARIANTS)


def _cpu_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo") as fh:
            line = next((ln for ln in fh if ln.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def _variant(module: str) -> str:
    """The build of ``module`` to import: for the lookup kernel of a portable build, the variant
    ``EMBCOMPRESS_LOOKUP_ISA`` names (``auto``, the default: the best this CPU runs)."""
    if module != "_lookup":
        return module
    want = os.environ.get("EMBCOMPRESS_LOOKUP_ISA", "auto").lower()
    if want not in _ISA_CHOICES:
        raise ConfigError(f"The environment variable EMBCOMPRESS_LOOKUP_ISA must be one of {_ISA_CHOICES}. "
                          f"Got {want!r} instead.")
    built = [v for v in _LOOKUP_VARIANTS if importlib.util.find_spec(f"{__name__}._lookup_{v}") is not None]
    if built and importlib.import_module(f"{__name__}.{module}").have_simd():
        built = []  # (a native build with its vector decoders: variants beside it are another build's)
    if want == "auto":
        flags = _cpu_flags()
        return next((f"_lookup_{v}" for v in built if _LOOKUP_VARIANTS[v] <= flags), module)
    if not built:
        raise ConfigError(f"EMBCOMPRESS_LOOKUP_ISA={want} chooses among the lookup kernels of a portable build "
                          f"(EMBCOMPRESS_PORTABLE=1); this build has one, compiled for the machine that built it. "
                          f"Unset the variable.")
    if want == "baseline":
        return module
    missing = sorted(_LOOKUP_VARIANTS[want] - _cpu_flags())
    if want not in built or missing:
        raise ConfigError(f"EMBCOMPRESS_LOOKUP_ISA={want}: " + (
            f"this CPU lacks {', '.join(missing)}" if missing else "that kernel is not built (the compiler lacked the target)")
            + f". Use one of: auto, baseline{''.join(', ' + v for v in built if not _LOOKUP_VARIANTS[v] - _cpu_flags())}.")
    return f"_lookup_{want}"


# GNU OpenMP (libgomp) is not fork-safe: in a process forked after its parent ran a team of
# threads (our kernels, or torch's), the first team of more than one thread waits forever for
# threads that fork did not copy. So a forked child (a DataLoader or multiprocessing worker) runs
# every kernel on one thread, as torch's DataLoader sets its workers to; the results are the same
# bits for any thread count.
_forked_child = False


def _after_fork_in_child() -> None:
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def resolve_threads(n_threads: int | None) -> int:
    """Threads to use: ``n_threads``, or the OpenMP default (``OMP_NUM_THREADS`` or all cores);
    1 in a forked child process (see above)."""
    if n_threads is not None:
        try:  # (a NumPy integer too: counts computed with numpy are common)
            count = operator.index(n_threads) if not isinstance(n_threads, bool) else 0
        except TypeError:
            count = 0
        if count < 1:
            raise ConfigError(f"The 'n_threads' parameter (of every kernel call) must be a positive int or None. "
                              f"Got {n_threads!r} instead.")
        n_threads = count
    if _forked_child:
        return 1
    if n_threads is None:
        mod = compiled("_threads")
        return mod.max_threads() if mod is not None else (os.cpu_count() or 1)
    return n_threads


# A thread of a kernel gets at least this much work (by the caller's estimate of an item's time).
# Waking an OpenMP team costs a few microseconds, more than a small call's work: on this 2-core
# machine, idle, 1,024 lookups took 19 us on one thread and 20-22 on two, 4,096 took 55 against 38.
# (And a team waits for its slowest thread: with other jobs on the cores, 4,096 lookups on two
# threads took 8 ms in one pass, a time slice. Pass n_threads=1 on a host whose cores are shared.)
MIN_THREAD_SECONDS = 25e-6
# More than a few threads a core only contend; unclamped, OpenMP set up every thread asked for
# (200,000 crashed the process; 2**31 overflowed a kernel's int). (os.cpu_count() costs 3 us.)
MAX_THREADS = 4 * (os.cpu_count() or 1)


def team_size(n_threads: int | None, n_items: int, item_seconds: float) -> int:
    """Threads for ``n_items`` items of about ``item_seconds`` each: ``resolve_threads(n_threads)``
    at most (so ``n_threads`` is an upper bound, as torch's is), one per ``MIN_THREAD_SECONDS`` of
    work, and at most ``MAX_THREADS``. Kernels give the same bits for any count."""
    by_work = int(n_items * item_seconds / MIN_THREAD_SECONDS + 1e-9) if MIN_THREAD_SECONDS > 0 else n_items
    if by_work <= 1 and (n_threads is None or (type(n_threads) is int and n_threads >= 1)):
        return 1  # (a small call: no need to ask OpenMP for its default, a microsecond)
    return max(1, min(resolve_threads(n_threads), by_work, MAX_THREADS))
