"""Review 10: crash consistency and concurrency of table files and the tiered store, by fault
injection: other processes updating, rewriting or replacing a table while it is read, children
killed with SIGKILL at random points, a full disk (RLIMIT_FSIZE), threads sharing a store.

Other processes are real subprocesses; a hook in this process only chooses the moment (e.g. a
read paused while another process's update is half written), never the outcome.
"""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import embcompress
from embcompress import container
from embcompress.container import read_artifact
from embcompress.errors import ArtifactError
from embcompress.store import TieredStore
from embcompress.store.journal import journal_path
from tests.conftest import PAUSING_WRITER

ROOT = Path(__file__).resolve().parents[3]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
N, DIM = 2000, 32


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = embcompress.quantize(x, "mxint8")
    return embcompress.write_table(tmp_path / "t.embc", q, frequencies=np.arange(N)), q


def _flock_waiter(path) -> bool:
    """Whether a process waits for a flock on ``path`` (a blocked entry in /proc/locks)."""
    ino = os.stat(path).st_ino
    return any("-> FLOCK" in line and line.split()[6].endswith(f":{ino}")
               for line in Path("/proc/locks").read_text().splitlines())


def _start_half_update(path, mark):
    """Start PAUSING_WRITER on ``path`` and return once it is half way through its update, or
    waits for the table's lock (a reader holds it), or has ended."""
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_WRITER, str(path), str(mark)], env=ENV)
    deadline = time.time() + 60
    while not mark.exists() and proc.poll() is None and not _flock_waiter(path):
        assert time.time() < deadline, "the writer neither started its update nor waited for the lock"
        time.sleep(0.005)
    return proc


def _hook_once(monkeypatch, owner, name, before):
    """Run ``before()`` the first time ``owner.name`` is called, then the real one."""
    real, fired = getattr(owner, name), []

    def hooked(*a, **k):
        if not fired:
            fired.append(before())
        return real(*a, **k)

    monkeypatch.setattr(owner, name, hooked)
    return fired


# --- a full verify while another process updates the table ---------------------------------------

needs_proc_locks = pytest.mark.skipif(not Path("/proc/locks").exists(), reason="Linux /proc/locks")


@needs_proc_locks
@pytest.mark.parametrize("how", ["open_table", "read_artifact", "cli verify"])
def test_a_full_verify_while_another_process_updates_does_not_call_the_table_corrupted(table, monkeypatch, how):
    # The verify read the header (the rows' old checksum) and then rows that another process's
    # update had half rewritten meanwhile: ChecksumError "the file is corrupted" (exit 3 from
    # `embcompress verify`) for a healthy table, about 1 full verify in 40 beside a writer updating
    # in a loop. The verify starts here before the update and reads its rows while it is half done.
    path, q = table
    procs = _hook_once(monkeypatch, container.Artifact, "verify",
                       lambda: _start_half_update(path, path.with_name("mid")))
    if how == "open_table":
        t = embcompress.open_table(path, verify="full")
        got = t.data[[5, 1500]]
    elif how == "read_artifact":
        got = read_artifact(path, kind="table", verify="full").array("rows")[[5, 1500]]
    else:
        from embcompress.cli.verify import verify_file

        assert verify_file(path).startswith("ok:")
        got = None
    assert procs and procs[0].wait(timeout=60) == 0
    if got is not None:  # what was read is one state of the file: all old or all new
        assert np.array_equal(got, q.data[[5, 1500]]) or (got == 0xEE).all()
    assert (embcompress.open_table(path, verify="full").data[[5, 1500]] == 0xEE).all()


@needs_proc_locks
@pytest.mark.parametrize("how", ["open_table", "QuantizedTable.load"])
def test_a_copy_of_the_rows_taken_while_another_process_updates_is_never_half_of_the_update(table, monkeypatch, how):
    # mmap=False copies the rows at open: a copy taken while another process's update was half
    # written held row 5 new and row 1500 old, a table no update ever made (and no check of a
    # header-only open can tell). The copy starts here once that update is half done.
    path, q = table
    procs = _hook_once(monkeypatch, container.Artifact, "array",
                       lambda: _start_half_update(path, path.with_name("mid")))
    if how == "open_table":
        got = embcompress.open_table(path, mmap=False).data[[5, 1500]]
    else:
        got = embcompress.QuantizedTable.load(path, mmap=False).data[[5, 1500]]
    assert procs and procs[0].wait(timeout=60) == 0
    assert np.array_equal(got, q.data[[5, 1500]]) or (got == 0xEE).all(), "a copy holds half an update"


def test_an_update_of_a_table_whose_header_was_damaged_under_a_store_fails_rather_than_waits(table):
    # The update reads the header holding the table's exclusive flock; a read that fails its
    # checksum must not wait for the shared flock, which that same update holds exclusively.
    path, q = table
    script = textwrap.dedent(
        """
        import sys, numpy as np
        from embcompress.store import TieredStore
        from embcompress.errors import ChecksumError
        path = sys.argv[1]
        store = TieredStore(path, dram_bytes=4096, policy="lru")
        with open(path, "r+b") as f:  # a space of the header's padding becomes an 'x'
            f.seek(4000); assert f.read(1) == b" "; f.seek(4000); f.write(b"x")
        try:
            store.update_rows(np.array([3]), np.zeros((1, store.row_bytes), np.uint8))
        except ChecksumError as e:
            print("refused:", e)
        """
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], env=ENV, timeout=30, capture_output=True, text=True)
    assert out.returncode == 0 and "refused: The header of" in out.stdout, out.stderr


# --- a table of the same format and shape written over the path of a running store ---------------

def _retrained(path, q):
    """A retrained table written over ``path`` (a new export): the same format and shape, other rows."""
    x = np.random.default_rng(99).standard_normal(q.shape).astype(np.float32)
    q2 = embcompress.quantize(x, q.fmt)
    embcompress.write_table(path, q2, frequencies=np.arange(N))
    return q2


@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_a_store_refuses_to_update_a_retrained_table_written_over_its_path(table, policy):
    # The store told a replaced table from its own by format, shape and row order only: a retrained
    # table (same format and shape, every row different) passed, so update_rows wrote into it and
    # the store then read its misses from it beside its DRAM copies of the old table's rows.
    path, q = table
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy=policy)
    hot = np.arange(N - 100, N)  # the file's hottest rows: the frequency policy's hot set
    assert np.array_equal(store.rows(hot), q.data[hot])
    q2 = _retrained(path, q)
    before = path.read_bytes()
    with pytest.raises(ArtifactError, match="replaced by another table.*Open a new TieredStore"):
        store.update_rows(np.array([3]), np.ones((1, DIM), np.float32))
    assert path.read_bytes() == before
    rows = np.array([1, 3, 5, 2000 - 1, 1000])
    assert np.array_equal(store.rows(rows), q.data[rows]), "the store serves rows of two tables"
    # Another store's update of the new table does not move this one onto it either.
    with TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru") as other:
        other.update_rows(np.array([1, N - 1]), np.zeros((2, DIM), np.float32))
    assert np.array_equal(store.rows(rows), q.data[rows])
    if policy == "frequency":  # the warm-up ranks by the frequencies of the file the store opened
        with pytest.raises(ArtifactError, match="replaced by another table"):
            store.warm_up()
    store.close()
    assert np.array_equal(embcompress.open_table(path, verify="full").data[[5, 1000]], q2.data[[5, 1000]])


def test_a_store_follows_its_own_table_rewritten_whole_by_updates_in_other_processes(table, monkeypatch):
    # What the check above must still let through: an update whose checksum does not fit the
    # header's padding renames a new file over the path (twice here, the second time of the first's
    # file); the store reads its misses from the newest and its held rows are reloaded.
    from embcompress.store import journal

    path, q = table
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru")
    store.rows(np.array([1, 2]))  # held (lru admits)
    monkeypatch.setattr(journal, "_header_bytes", lambda *a: None)
    ino = os.stat(path).st_ino
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as writer:
        writer.update_rows(np.array([2, 3]), np.full((2, q.row_bytes), 0xD5, np.uint8))
        writer.update_rows(np.array([4]), np.full((1, q.row_bytes), 0xD6, np.uint8))
    assert os.stat(path).st_ino != ino  # rewritten whole
    got = store.rows(np.array([1, 2, 3, 4]))
    assert np.array_equal(got[0], q.data[1]) and (got[1:3] == 0xD5).all() and (got[3] == 0xD6).all()
    store.update_rows(np.array([5]), np.full((1, q.row_bytes), 0xD7, np.uint8))  # its own, rewritten whole too
    assert (store.rows(np.array([5, 4])) == np.array([[0xD7], [0xD6]], np.uint8)).all()
    monkeypatch.undo()
    t = embcompress.open_table(path, verify="full")
    assert (t.data[5] == 0xD7).all() and np.array_equal(t.data[6], q.data[6])
    store.close()


@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_a_store_whose_table_and_update_log_were_removed_serves_on_and_names_the_fix(table, policy):
    # A store holds its table open, and served on when the file was removed (a deployed version
    # cleaned up under a server still serving it), but once its update log went too every lookup
    # raised the raw "FileNotFoundError: [Errno 2] No such file or directory" of a stat of the path,
    # as did update_rows.
    path, q = table
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy=policy)
    store.update_rows(np.array([1]), np.zeros((1, DIM), np.float32))  # (the update log exists)
    want = store.rows(np.arange(N))
    for f in path.parent.iterdir():  # rm t.embc*
        if f.name.startswith(path.name):
            f.unlink()
    rows = np.array([1, 2, 1500, N - 1])
    assert np.array_equal(store.rows(rows), want[rows])
    with pytest.raises(ArtifactError, match="removed or moved.*Open a new TieredStore"):
        store.update_rows(np.array([3]), np.zeros((1, DIM), np.float32))
    assert np.array_equal(store.rows(rows), want[rows])
    store.close()


# --- threads sharing a store: lookups, updates, refreshes, reset_stats and close at once ---------

@pytest.mark.parametrize("policy, kw", [("frequency", {"refresh_every": 1}), ("frequency", {}), ("lru", {}),
                                        ("lfu", {})])
def test_threads_looking_up_updating_resetting_and_closing_at_once(table, backend, policy, kw):
    # Three threads serve batches while a fourth updates the rows of U version by version (and
    # resets the counters), then the store is closed under them. Each batch must equal the kernel
    # on the table as one version left it (all rows of U of one version, never torn), and a batch
    # after the close must fail with the store's own error, never a raw one or garbage.
    import threading

    from embcompress.errors import ConfigError
    from embcompress.kernels.lookup import pooled_lookup
    from embcompress.table import QuantizedTable

    path, q = table
    U = np.arange(0, N, 13)
    versions = [q.data.copy()]
    for v in range(1, 12):
        d = q.data.copy()
        d[U] = np.random.default_rng(v).integers(0, 120, (len(U), q.row_bytes), dtype=np.uint8)
        versions.append(d)
    tables = [QuantizedTable(d, q.fmt, q.shape, block_size=q.block_size) for d in versions]
    store = TieredStore(path, dram_bytes=150 * q.row_bytes, policy=policy, **kw)
    errors, stop, served = [], threading.Event(), [0] * 3

    def serve(t):
        rng = np.random.default_rng(t)
        try:
            while not stop.is_set():
                idx = np.concatenate([rng.choice(U, 24), rng.zipf(1.2, 40) % N])
                off = np.arange(0, len(idx), 8)
                out = store.pooled_lookup(idx, off, n_threads=1)
                if not any(np.array_equal(out, pooled_lookup(tb, idx, off, n_threads=1)) for tb in tables):
                    errors.append(f"thread {t}: a batch no version of the table gives")
                sel = rng.choice(U, 16, replace=False)
                if not any(np.array_equal(store.rows(sel), d[sel]) for d in versions):
                    errors.append(f"thread {t}: rows of several versions, or torn")
                served[t] += 1
        except ConfigError as exc:
            if "closed" not in str(exc):
                errors.append(repr(exc))
        except Exception as exc:  # noqa: BLE001 (any other error is a finding)
            errors.append(repr(exc))

    def update():
        try:
            for v in range(1, len(versions)):
                store.update_rows(U, versions[v][U])
                store.reset_stats()
                store.stats()
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=serve, args=(t,), daemon=True) for t in range(3)]
    writer = threading.Thread(target=update, daemon=True)
    for t in threads + [writer]:
        t.start()
    writer.join(timeout=60)
    deadline = time.time() + 60
    while min(served) < 3 and not errors and time.time() < deadline:
        time.sleep(0.01)
    store.close()  # while the threads serve
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert min(served) >= 3 and all(not t.is_alive() for t in threads + [writer])
    with pytest.raises(ConfigError, match="closed"):
        store.pooled_lookup(U[:3], np.array([0]))
    t = embcompress.open_table(path, verify="full")
    assert np.array_equal(t.data, versions[-1])


# --- a table this process may only read (a child that drops root, which passes every permission) ---

AS_NOBODY = textwrap.dedent(
    """
    import errno, os, sys, json, numpy as np
    import embcompress, embcompress.tablefile, embcompress.kernels.lookup, embcompress.store.journal
    from embcompress.store import TieredStore
    embcompress.quantize(np.zeros((1, 32), np.float32), "mxint8")  # (imports done before dropping root)
    os.setgid(65534); os.setuid(65534)
    path = sys.argv[1]
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    print("served", bool(np.array_equal(store.rows([1, 2]), embcompress.open_table(path).data[[1, 2]])))
    try:
        store.update_rows(np.array([3]), np.zeros((1, 32), np.float32))
    except PermissionError as e:
        print("refused", e.errno == errno.EACCES, e.filename == path)
        print(e)
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="drops root in a child to be refused by real permissions")
def test_update_rows_on_a_table_this_process_may_only_read_names_the_fix(tmp_path_factory):
    import tempfile

    d = Path(tempfile.mkdtemp(dir="/tmp"))  # (pytest's folders are root's alone: the child could not enter)
    try:
        os.chmod(d, 0o755)
        x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
        path = embcompress.write_table(d / "t.embc", embcompress.quantize(x, "mxint8"))
        before = path.read_bytes()
        out = subprocess.run([sys.executable, "-c", AS_NOBODY, str(path)], env=ENV, capture_output=True, text=True,
                             timeout=60)
        lines = out.stdout.splitlines()
        if len(lines) < 2 and "No module named" in out.stderr:
            pytest.skip("the interpreter is not readable by an unprivileged user here")
        assert lines[:2] == ["served True", "refused True True"], out.stderr
        # what is wrong, that nothing changed, and the fix (it said only "[Errno 13] Permission denied: path")
        assert "writes the table file in place" in lines[2] and "unchanged" in lines[2] and "permission" in lines[2]
        assert path.read_bytes() == before
    finally:
        import shutil

        shutil.rmtree(d)


# --- damaged companions and sections that only a full verify reads -------------------------------

def test_a_store_over_a_file_whose_frequencies_are_damaged_blames_the_file(table):
    # A header-only open does not read the frequencies section; a flipped sign bit in it made the
    # store raise "The 'frequencies' parameter of TieredStore must be 2000 finite non-negative
    # counts ... Got 'int64 of shape (2000,)' instead": a ConfigError (exit 1, bad input) about a
    # parameter the caller never gave.
    path, q = table
    off = read_artifact(path).section("frequencies").offset
    with open(path, "r+b") as f:
        f.seek(off + 8 * 17 + 7)  # row 17's count: its top byte
        f.write(b"\xff")
    with pytest.raises(ArtifactError, match=r"(?s)frequencies section of .*t\.embc.*corrupted.*embcompress verify"):
        TieredStore(path, dram_bytes=10 * q.row_bytes, policy="frequency")
    with TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru", frequencies=np.ones(N)) as s:  # (not read)
        assert np.array_equal(s.rows([1]), q.data[[1]])


def test_a_damaged_journal_says_what_it_is_and_how_to_tell_whether_the_table_is_whole(table, monkeypatch):
    # An update failed after its journal was written; the journal was then damaged (a bad sector).
    # Opening the table said only "Section 'rows' of '.../t.embc.journal' does not match its
    # checksum: the file is corrupted. Restore it from a good copy or re-create it.", as if the
    # journal were a file the user made.
    from tests.conftest import fail_journal_pwrite

    path, q = table
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru")
    real = fail_journal_pwrite(monkeypatch, 2)
    with pytest.raises(OSError):
        store.update_rows(np.array([1, 2, 3]), np.zeros((3, DIM), np.float32))
    monkeypatch.setattr("embcompress.store.journal.os.pwrite", real)
    store.close()
    jp = journal_path(path)
    raw = bytearray(jp.read_bytes())
    raw[-10] ^= 0x40
    jp.write_bytes(bytes(raw))
    for opener in (lambda: embcompress.open_table(path), lambda: TieredStore(path, dram_bytes=4096, policy="lru")):
        with pytest.raises(ArtifactError, match=r"(?s)interrupted update.*journal.*damaged.*embcompress verify"):
            opener()


def test_fuzzed_journals_are_never_applied_and_fail_clearly(table, monkeypatch):
    # A journal left by a failed update, then flipped, overwritten, cut or extended: opening the
    # table either finishes the update whole (a mutation that changed nothing it reads) or raises
    # the damaged-journal error; never anything else, never rows of neither the old nor the new.
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from test_fuzz_tablefile import mutate

    from tests.conftest import fail_journal_pwrite

    path, q = table
    rows = np.array([1, 2, 3])
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru")
    real = fail_journal_pwrite(monkeypatch, 2)
    with pytest.raises(OSError):
        store.update_rows(rows, np.zeros((3, DIM), np.float32))
    monkeypatch.setattr("embcompress.store.journal.os.pwrite", real)
    store.close()
    jp = journal_path(path)
    table_raw, journal_raw = path.read_bytes(), jp.read_bytes()
    new = embcompress.quantize(np.zeros((3, DIM), np.float32), q.fmt).data
    rng = np.random.default_rng(4)
    refused = 0
    for case in range(120):
        path.write_bytes(table_raw)
        jp.write_bytes(mutate(journal_raw, rng))
        try:
            t = embcompress.open_table(path, verify="full")
        except ArtifactError as exc:
            assert "interrupted update" in str(exc) and "damaged" in str(exc), str(exc)
            refused += 1
        else:
            assert np.array_equal(t.data[rows], new) and not jp.exists(), case
    assert refused > 100


def test_fuzzed_table_files_under_a_store_fail_clearly_or_serve(tmp_path):
    # The store opens with a header check only: a flipped, overwritten, cut or extended file either
    # raises an ArtifactError (never another error: a damaged frequencies section raised a
    # ConfigError about a parameter nobody gave) or serves lookups and updates without faulting.
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from test_fuzz_tablefile import mutate

    rng = np.random.default_rng(0)
    q = embcompress.quantize(rng.standard_normal((300, 24)).astype(np.float32), "mx6")
    raw = embcompress.write_table(tmp_path / "t.embc", q, frequencies=np.arange(300)).read_bytes()
    f = tmp_path / "c.embc"
    refused = 0
    for case in range(150):
        f.write_bytes(mutate(raw, rng))
        for extra in (journal_path(f), f.with_name(f.name + ".updates")):
            extra.unlink(missing_ok=True)
        try:
            with TieredStore(f, dram_bytes=20 * q.row_bytes, policy=("frequency", "lru", "lfu")[case % 3]) as s:
                assert s.pooled_lookup(np.arange(0, 300, 7), np.array([0, 10])).shape == (2, 24)
                s.update_rows(np.array([3]), np.zeros((1, 24), np.float32))
                assert s.rows(np.arange(300)).shape == (300, q.row_bytes)
        except ArtifactError:
            refused += 1
    assert refused > 100


def test_the_id_map_of_a_store_whose_table_was_replaced_is_not_the_new_tables(tmp_path):
    # The id map is read from the file on first use: after a new export of the table (same shape,
    # its own id map) was written over the path, store.id_map was the new table's map over the old
    # table's rows (raw id 100 went to row 99 instead of row 0).
    from embcompress.idmap import IdMap

    x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    q = embcompress.quantize(x, "fp32")
    ids = np.arange(100, 200)
    path = embcompress.write_table(tmp_path / "t.embc", q, id_map=IdMap.from_arrays(ids, np.arange(100), 300, seed=1))
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru")
    other = IdMap.from_arrays(ids, np.arange(100)[::-1].copy(), 300, seed=1)
    embcompress.write_table(path, embcompress.quantize(x[::-1].copy(), "fp32"), id_map=other)
    with pytest.raises(ArtifactError, match="replaced by another table.*Open a new TieredStore"):
        store.id_map
    with TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru") as fresh:
        assert fresh.id_map.lookup(np.array([100])).tolist() == [99]
    store.close()


def test_a_table_written_over_the_path_while_an_update_applies_leaves_the_store_whole(table, monkeypatch):
    # write_table removes the journal an interrupted update of the replaced file left; here that
    # update was not interrupted but running (its rows half written into the replaced file). Its
    # final removal of its own journal then raised the raw FileNotFoundError of the journal, after
    # the rows were in the file the store reads but before its DRAM copies were replaced: the store
    # served the update's rows old from DRAM and new from the file.
    from embcompress.store import journal

    path, q = table
    freq = np.zeros(N)
    freq[[5, 7]] = 1
    store = TieredStore(path, dram_bytes=2 * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()  # rows 5 and 7 in DRAM
    q2 = _retrained(path.with_name("other.embc"), q)

    def replace_table():
        embcompress.write_table(path, q2)  # a new export lands mid-update

    fired = _hook_once(monkeypatch, journal, "_pwrite_all", replace_table)
    store.update_rows(np.array([5, 1500]), np.full((2, q.row_bytes), 0xEE, np.uint8))
    assert fired
    got = store.rows(np.array([5, 1500, 7]))
    assert (got[:2] == 0xEE).all() and np.array_equal(got[2], q.data[7])
    assert np.array_equal(embcompress.open_table(path, verify="full").data, q2.data)  # the new table untouched
    store.close()


@pytest.mark.parametrize("what", ["another kind", "a damaged table"])
def test_a_store_serves_on_when_its_path_names_a_file_that_is_no_table(table, what):
    # The store looks at the file at its path when its update log changes (here: removed, as a
    # cleanup of t.embc* would). A file there that is not a table, or is damaged, made every
    # lookup raise that file's ArtifactError, though the store serves the file it holds open.
    from embcompress.container import write_artifact

    path, q = table
    store = TieredStore(path, dram_bytes=100 * q.row_bytes, policy="lru")
    store.update_rows(np.array([1]), np.zeros((1, DIM), np.float32))  # (the update log exists)
    want = store.rows(np.arange(N))
    if what == "another kind":
        write_artifact(path, "idmap", {"ids": np.arange(5)})
    else:
        _retrained(path, q)
        raw = bytearray(path.read_bytes())
        raw[40] ^= 1  # in the header
        tmp = path.with_name("x.tmp")
        tmp.write_bytes(bytes(raw))
        os.replace(tmp, path)
    path.with_name(path.name + ".updates").unlink()
    rows = np.array([1, 2, 1500])
    assert np.array_equal(store.rows(rows), want[rows])
    with pytest.raises(ArtifactError):
        store.update_rows(np.array([3]), np.zeros((1, DIM), np.float32))
    assert np.array_equal(store.rows(rows), want[rows])
    store.close()


def test_reads_take_no_lock_where_there_is_no_flock(table, monkeypatch):
    # (a system without fcntl: the container stays readable, and a damaged file still fails)
    path, q = table
    monkeypatch.setattr(container, "fcntl", None)
    assert np.array_equal(embcompress.open_table(path, mmap=False, verify="full").data, q.data)
    raw = bytearray(path.read_bytes())
    raw[read_artifact(path).section("rows").offset + 5] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        read_artifact(path, verify="full", mmap=False)
