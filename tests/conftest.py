import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBCOMPRESS_DATA", ROOT.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """Path into the shared real data sets; skips the test with the reason when absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set EMBCOMPRESS_DATA or place ../shared/data beside the repo)")
    return path


def need_spark(allow_module_level: bool = False) -> None:
    """Skip (the test, or the module) when pyspark or the Java it runs on is missing."""
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java (java not found on PATH)", allow_module_level=allow_module_level)


def by_reader(path, *, features, label=None, pairs=(), sequence_key=None, time_key=None, min_count=1, **kw):
    """The Python readers' counts of a log (an independent path through learned_hash.logs, to hold
    the mining engines against). String ids come as text (``hash_strings=False``), so that
    ``LogStats.from_rows`` orders ties of time by the text, as the engines do."""
    import numpy as np

    from learned_hash import LogStats
    from learned_hash.logs import iter_batches

    kw.setdefault("hash_strings", False)
    r = iter_batches(path, features=features, label=label, session_key=sequence_key, time_key=time_key, **kw)
    parts = list(r)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    s = LogStats.from_rows(cols, features=features, label=label, pairs=pairs, sequence_key=sequence_key,
                           time_key=time_key, min_count=min_count)
    s.bad_lines = r.bad_lines
    return s


def write(path, data):
    """Write ``data`` (text or bytes) to ``path``; returns ``path``."""
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def hide_modules(*names: str) -> str:
    """Source to prepend to a subprocess script: importing any of ``names`` (top-level packages)
    raises ImportError there, as on a machine where they are not installed. The script can read
    the set as ``HIDDEN``."""
    return (
        "import sys, importlib.abc\n"
        f"HIDDEN = {set(names)!r}\n"
        "class _Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in HIDDEN:\n"
        "            raise ImportError(f'{name} is hidden in this test')\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )


def pooled_lookup_on(backend: str, *args, **kw):
    """``pooled_lookup`` under ``EMBCOMPRESS_KERNELS=backend``, the variable restored after."""
    from embcompress.kernels.lookup import pooled_lookup

    old = os.environ.get("EMBCOMPRESS_KERNELS")
    os.environ["EMBCOMPRESS_KERNELS"] = backend
    try:
        return pooled_lookup(*args, **kw)
    finally:
        if old is None:
            del os.environ["EMBCOMPRESS_KERNELS"]
        else:
            os.environ["EMBCOMPRESS_KERNELS"] = old


def quantize_default(x, fmt, **kw):
    """The codec under its default backend (lookup tests choose the lookup's backend only)."""
    import embcompress

    saved = os.environ.pop("EMBCOMPRESS_KERNELS", None)
    try:
        return embcompress.quantize(x, fmt, **kw)
    finally:
        if saved is not None:
            os.environ["EMBCOMPRESS_KERNELS"] = saved


def fail_journal_pwrite(monkeypatch, fail_at: int, *, torn_header: bool = False):
    """The ``fail_at``-th pwrite of the store's journal module raises EIO: an update dies midway,
    after its journal (with ``torn_header``, a failing header write, at offset 0, first puts its
    first 40 bytes on disk). Returns the real pwrite, to restore before the next update."""
    from embcompress.store import journal

    real, count = journal.os.pwrite, [0]

    def failing(fd, b, off):
        count[0] += 1
        if count[0] == fail_at:
            if torn_header and off == 0:
                real(fd, bytes(b)[:40], off)
            raise OSError(5, "Input/output error")
        return real(fd, b, off)

    monkeypatch.setattr(journal.os, "pwrite", failing)
    return real


def deny_table_writes(monkeypatch) -> None:
    """The table file opens read-only (a read-only copy; tests run as root, so by patching)."""
    from embcompress.store import journal

    real_open = journal.os.open

    def read_only(p, flags, *a):
        if flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *a)

    monkeypatch.setattr(journal.os, "open", read_only)


def deny_journal_removal(monkeypatch) -> None:
    """A folder that is not writable (as root, tests cannot make one): the journal cannot be removed."""
    real = Path.unlink

    def unlink(self, *a, **k):
        if self.name.endswith(".journal"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", unlink)


def torn_reads_during_updates(store, rows, row_bytes: int, *, per_batch: bool = False) -> list:
    """Three threads read ``store.rows`` of ``rows`` while eight updates rewrite them, each with
    one repeated byte; returns the reads that were torn: a row of two values (or, with
    ``per_batch``, a batch of two versions). The final content is the last update's."""
    import threading

    import numpy as np

    stop, bad, errors = threading.Event(), [], []

    def read():
        rng = np.random.default_rng(threading.get_ident() % 1000)
        try:
            while not stop.is_set():
                got = store.rows(rng.choice(rows, min(30, len(rows))))
                if not (got == (got[0, 0] if per_batch else got[:, :1])).all():
                    bad.append(got)
        except BaseException as e:  # a reader that failed read nothing more: the test must say so
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for k in range(1, 9):
        store.update_rows(rows, np.full((len(rows), row_bytes), k, np.uint8))
    stop.set()
    for t in readers:
        t.join()
    if errors:
        raise errors[0]
    return bad


@pytest.fixture
def data_dir() -> Path:
    return data_path()


@pytest.fixture(params=["numpy", "cython"])
def backend(request, monkeypatch):
    """The lookup kernels' backend for one test: NumPy, then the compiled one (skipped when not
    built). Store tests that want the default backend define their own."""
    from embcompress.kernels import compiled

    if request.param == "cython" and compiled("_lookup") is None:
        pytest.skip("compiled kernel not built")
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", request.param)
    return request.param


@pytest.fixture
def rows_file(tmp_path):
    """A container file of 3,000 random 100-byte row records (they straddle 4 KiB blocks) on a
    4096-byte boundary: ``(path, records, byte offset of the rows)``, for RowReader tests."""
    import numpy as np

    from embcompress.container import read_artifact, write_artifact

    data = np.random.default_rng(0).integers(0, 256, (3000, 100), dtype=np.uint8)
    path = write_artifact(tmp_path / "t.embc", "table", {"rows": data}, align=4096)
    return path, data, read_artifact(path).section("rows").offset


# CI machines are shared and slow at times: no per-example deadline for property tests.
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("embcompress", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("embcompress")
except ImportError:  # hypothesis is a dev dependency; unit tests without it still run
    pass


@pytest.fixture(autouse=True)
def teams_on_small_inputs(monkeypatch):
    """Kernels run on the threads asked for even on the small inputs of tests, so that the tests
    of thread counts exercise OpenMP teams; calls with under MIN_THREAD_SECONDS of work a thread
    otherwise use fewer threads (tested with the real value in test_team_size.py)."""
    import embcompress.kernels

    monkeypatch.setattr(embcompress.kernels, "MIN_THREAD_SECONDS", 0.0)


# Updates rows 5 and 1500 of the table at argv[1] to 0xEE through a TieredStore, touching argv[2]
# and pausing 1 s after the first row write (its journal durable, one row new, one old, the header
# old): the update half applied, for tests that read or open the table meanwhile.
PAUSING_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from embcompress.store import TieredStore
    import embcompress.store.journal as journal

    path, mark = sys.argv[1], sys.argv[2]
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    real, count = journal._pwrite_all, [0]
    def pausing(fd, data, off):
        real(fd, data, off)
        count[0] += 1
        if count[0] == 1:  # one row of two written: the update is half applied
            open(mark, "w").close()
            time.sleep(1.0)
    journal._pwrite_all = pausing
    store.update_rows(np.array([5, 1500]), np.full((2, store.row_bytes), 0xEE, np.uint8))
    """
)


def run_cli(argv, capsys):
    """``embcompress <argv>`` in this process: ``(exit code, captured output)``."""
    from embcompress.cli.main import main

    try:
        code = main(argv) or 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()
