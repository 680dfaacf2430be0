"""How the `embcompress` command exits when a verb stops early: Ctrl-C and typer.Exit.

Run as real processes (`python -c` patches a verb to stop the way it would), because the exit
code is what a shell script sees.
"""

import subprocess
import sys

import pytest

pytest.importorskip("typer")


def _run_patched(raise_stmt: str, tmp_path):
    code = (
        "import embcompress.cli.inspect as v\n"
        "def stop(path):\n"
        f"    {raise_stmt}\n"
        "v.describe = stop\n"
        "from embcompress.cli.main import main\n"
        f"main(['inspect', {str(tmp_path / 'x')!r}])\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_ctrl_c_exits_130_without_traceback(tmp_path):
    p = _run_patched("raise KeyboardInterrupt", tmp_path)
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr


def test_typer_exit_code_reaches_the_shell(tmp_path):
    # `demo` raises typer.Exit(1) when served outputs differ from the in-memory kernel
    p = _run_patched("import typer; raise typer.Exit(1)", tmp_path)
    assert p.returncode == 1, (p.returncode, p.stderr)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "embcompress", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("below", [False, True])
def test_output_folder_that_is_a_file_names_the_fix(tmp_path, below):
    from pathlib import Path

    stats = Path(__file__).parents[2] / "fixtures" / "logstats" / "small_v1.logstats"
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker / "maps" if below else blocker
    p = _cli("fit-hash", stats, "-f", "user", "--rows", 5, "--method", "hash", "--out-dir", out, "--quiet")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "Errno" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(blocker) in lines[0] and "is a file" in lines[0], p.stderr


def test_export_of_a_file_that_is_not_a_state_dict_is_one_line(tmp_path):
    pytest.importorskip("torch")
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x" * 64)
    p = _cli("export", bad, "--fmt", "mxfp4_e2m1", "--out-dir", tmp_path / "out", "--quiet")
    assert p.returncode == 3, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in p.stderr, p.stderr


def _evaluate_tiny_without_its_sweep(*args):
    """`embcompress evaluate` of the tiny synthetic config in a subprocess whose sweep raises 'the
    sweep ran' if reached: what the command refuses before a sweep of many minutes."""
    from pathlib import Path

    config = Path(__file__).parents[3] / "examples" / "sweeps" / "synthetic_tiny.json"
    code = (
        "import analysis.ctr.sweep as s\n"
        "def ran(*a, **k):\n"
        "    raise RuntimeError('the sweep ran')\n"
        "s.run_sweep = ran\n"
        "from embcompress.cli.main import main\n"
        f"main(['evaluate', {str(config)!r}, *{[str(a) for a in args]!r}, '--quiet'])\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_evaluate_checks_out_before_the_sweep(tmp_path):
    # a sweep can take many minutes: a bad --out must fail before it, not after
    pytest.importorskip("torch")
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    p = _evaluate_tiny_without_its_sweep("--out", blocker)
    assert p.returncode == 1, p.stderr
    assert "the sweep ran" not in p.stderr and "is a file" in p.stderr, p.stderr


def test_permission_denied_names_the_fix(tmp_path):
    # e.g. an --out folder the user cannot write (not reproducible as root, so raised directly)
    p = _run_patched(f"raise PermissionError(13, 'Permission denied', {str(tmp_path / 'ro')!r})", tmp_path)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "ro") in lines[0] and "permission" in lines[0].lower(), p.stderr
    assert "Errno" not in lines[0] and "another path" in lines[0], p.stderr


def test_every_verb_has_help():
    from embcompress.cli.main import COMMANDS

    for verb in COMMANDS:
        p = _cli(verb, "--help")
        assert p.returncode == 0 and "Usage:" in p.stdout and "Traceback" not in p.stderr, (verb, p.stderr)


@pytest.mark.parametrize("kind", ["missing", "folder", "not_npy"])
def test_export_bad_frequencies_file_is_one_clear_line(tmp_path, kind):
    torch = pytest.importorskip("torch")
    sd = tmp_path / "sd.pt"
    torch.save({"emb.weight": torch.zeros(4, 8)}, sd)
    (tmp_path / "counts.txt").write_text("1 2 3 4\n")
    freq = {"missing": tmp_path / "nope.npy", "folder": tmp_path, "not_npy": tmp_path / "counts.txt"}[kind]
    p = _cli("export", sd, "--fmt", "fp32", "--out-dir", tmp_path / "out", "--frequencies", f"emb={freq}", "--quiet")
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(freq) in lines[0] and "--frequencies" in lines[0], p.stderr
    assert "Errno" not in lines[0] and "allow_pickle" not in lines[0], p.stderr


def test_evaluate_data_on_a_synthetic_config_is_refused(tmp_path):
    # --data overrides a real dataset's path; on a synthetic config it was ignored without a word
    pytest.importorskip("torch")
    p = _evaluate_tiny_without_its_sweep("--out", tmp_path / "o", "--data", tmp_path)
    assert p.returncode == 1, p.stderr
    assert "the sweep ran" not in p.stderr and "'synthetic'" in p.stderr and "dataset" in p.stderr, p.stderr


@pytest.mark.parametrize("verb", ["inspect", "verify", "export"])
def test_a_missing_file_or_a_directory_is_bad_input(tmp_path, verb):
    """No file at the path given, or a directory, is bad input (exit 1), as for every verb; export
    of a missing state dict and inspect / verify of a directory exited 3, a damaged file's code."""
    if verb == "export":
        pytest.importorskip("torch")
    extra = ["--fmt", "mxint8", "--out-dir", tmp_path / "out"] if verb == "export" else []
    for path, words in ((tmp_path / "nope.embc", "nope.embc"), (tmp_path, "is a directory")):
        p = _cli(verb, path, *extra)
        assert p.returncode == 1, (verb, path, p.returncode, p.stderr)
        assert words in p.stderr and "Traceback" not in p.stderr, p.stderr
