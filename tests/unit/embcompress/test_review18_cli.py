"""Review 18 of the command line (inspect, verify, export, the app, the progress bar): each test
failed before its fix."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import embcompress
from embcompress.cli.main import main
from embcompress.cli.progress import Bar, progress_bar
from embcompress.idmap import IdMap

pytest.importorskip("typer")


def run(argv, capsys):
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def table_file(tmp_path):
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32), "mxint8")
    return embcompress.write_table(tmp_path / "t.embc", q, id_map=IdMap.from_arrays([5, 6, 7], [0, 1, 1], 64))


# -- '~' is the home folder, as mine and fit-hash take it ---------------------------------------


def test_export_inspect_verify_expand_tilde(tmp_path, monkeypatch, capsys):
    """'--out-dir=~/x' (bash leaves a '~' after '=' as is; zsh and scripts pass it quoted) wrote
    the tables into a folder literally named '~' under the current folder, and inspect / verify of
    '~/t.embc' said there is no such file. mine and fit-hash expand it."""
    torch = pytest.importorskip("torch")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    torch.save({"emb_user.weight": torch.randn(100, 16)}, home / "sd.pt")
    IdMap.from_arrays(np.arange(100), np.arange(100) % 10, 10).save(home / "u.idmap")
    np.save(home / "f.npy", np.arange(100))
    code, out, err = run(["export", "~/sd.pt", "--fmt", "mxint8", "--out-dir=~/out", "--mode", "sum",
                          "--id-map", "emb_user=~/u.idmap", "--frequencies", "emb_user=~/f.npy", "--quiet"], capsys)
    assert code == 0, err
    assert not (work / "~").exists(), "a folder named '~' was made in the current folder"
    assert (home / "out" / "emb_user.embc").is_file() and (home / "out" / "export.json").is_file()
    assert embcompress.open_table(home / "out" / "emb_user.embc").shape == (10, 16)
    for verb in ("inspect", "verify"):
        code, out, err = run([verb, "~/out/emb_user.embc"], capsys)
        assert code == 0, (verb, err)


# -- a pipe or a device is no artifact file: bad input (1), not a damaged file (3) ----------------


def _pipe_holding(data: bytes) -> str:
    """A path that reads ``data`` from a pipe, as `embcompress verify <(cat t.embc)` gives one."""
    r, w = os.pipe()
    os.write(w, data)  # (small: fits in the pipe's buffer)
    os.close(w)
    return f"/dev/fd/{r}"


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
@pytest.mark.parametrize("verb", ["inspect", "verify"])
def test_a_pipe_or_device_is_refused_as_bad_input(table_file, verb, capsys):
    """`embcompress verify <(cat t.embc)` said 'truncated: its header needs 4064 bytes but only -32
    follow the prefix' and exited 3 (damaged) for a sound table; /dev/null was 'truncated; re-create
    it'. A pipe cannot be mapped or read at offsets: say so, exit 1."""
    path = _pipe_holding(table_file.read_bytes())
    try:
        code, out, err = run([verb, path], capsys)
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
    assert code == 1, (code, err)
    assert err.count("\n") == 1 and "pipe" in err and "-32" not in err and "truncated" not in err, err
    code, out, err = run([verb, "/dev/null"], capsys)
    assert code == 1 and err.count("\n") == 1 and "device" in err and "re-create" not in err, err


def test_a_fifo_is_refused_not_waited_on(table_file, tmp_path):
    """A named pipe with no writer: the command waited forever in open()."""
    fifo = tmp_path / "t.fifo"
    os.mkfifo(fifo)
    code = f"from embcompress.cli.main import main\nmain(['verify', {str(fifo)!r}])\n"
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("embcompress verify of a FIFO hung")
    assert p.returncode == 1 and "pipe" in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_export_id_map_from_a_pipe_is_bad_input(tmp_path, capsys):
    """--id-map NAME=<(cat u.idmap) exited 3 ('truncated ... only -32 follow the prefix')."""
    torch = pytest.importorskip("torch")
    torch.save({"emb_user.weight": torch.randn(100, 16)}, tmp_path / "sd.pt")
    IdMap.from_arrays(np.arange(100), np.arange(100) % 10, 10).save(tmp_path / "u.idmap")
    path = _pipe_holding((tmp_path / "u.idmap").read_bytes())
    try:
        code, out, err = run(["export", tmp_path / "sd.pt", "--fmt", "mxint8", "--out-dir", tmp_path / "out",
                              "--mode", "sum", "--id-map", f"emb_user={path}", "--quiet"], capsys)
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
    assert code == 1, (code, err)
    assert err.count("\n") == 1 and "pipe" in err and "--id-map" in err and "-32" not in err, err
    assert not (tmp_path / "out").exists()


# -- usage errors exit 2 wherever the click package is installed too ------------------------------


@pytest.mark.parametrize("args", [["nope"], ["export", "sd.pt"], ["inspect"]])
def test_usage_errors_exit_2_with_click_installed(tmp_path, args):
    """typer >= 0.2x vendors click and raises its own exceptions; main caught `click.ClickException`
    whenever the click package could be imported (installed by many other tools), so an unknown
    verb or a missing flag was an 'unexpected UsageError' with exit 1, not a usage error (2)."""
    fake = tmp_path / "site" / "click"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("class ClickException(Exception):\n    exit_code = 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *sys.path])}
    p = subprocess.run([sys.executable, "-m", "embcompress", *args], capture_output=True, text=True, timeout=120,
                       env=env, cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "unexpected" not in p.stderr and "Traceback" not in p.stderr, p.stderr


# -- the progress bar with no stderr to draw on -------------------------------------------------


def test_bar_without_stderr_stays_quiet(monkeypatch):
    """With stderr closed (`2>&-`, a daemon) sys.stderr is None: Bar called None.isatty() and
    every verb with a bar (export, mine, fit-hash, evaluate, demo) stopped with an
    'unexpected AttributeError' before doing its work."""
    monkeypatch.setattr(sys, "stderr", None)
    with progress_bar("export") as bar:
        bar(1, 2)
        bar(2, 2)
    closed = io.StringIO()
    closed.close()
    bar = Bar("mine", enabled=True, stream=closed)  # isatty() of a closed stream raises ValueError
    bar(1, 1)
    bar.close()


def test_export_with_stderr_closed_writes_its_tables(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"emb_user.weight": torch.randn(10, 16)}, tmp_path / "sd.pt")
    code = ("from embcompress.cli.main import main\n"
            f"main(['export', {str(tmp_path / 'sd.pt')!r}, '--fmt', 'mxint8', '--out-dir', "
            f"{str(tmp_path / 'out')!r}, '--mode', 'sum'])\n")
    # stderr closed before Python starts, as `2>&-` leaves it: sys.stderr is None
    p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       timeout=300, preexec_fn=lambda: os.close(2))
    assert p.returncode == 0, (p.returncode, p.stdout)
    assert (tmp_path / "out" / "emb_user.embc").is_file()
