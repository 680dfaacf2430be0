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
