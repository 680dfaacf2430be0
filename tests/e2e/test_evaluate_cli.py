"""`embcompress evaluate` end to end: a tiny synthetic sweep from a config file to its report."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "embcompress", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_evaluate_writes_report_html_results_and_plot(tmp_path):
    cfg = json.loads((ROOT / "examples" / "sweeps" / "synthetic_tiny.json").read_text())
    cfg.update(methods=["full", "hash", "learned"], seeds=[0], extra=[], requantize=[], bootstrap=20)
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "out"
    proc = _cli("evaluate", str(path), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert str(out.resolve()) in proc.stdout
    assert proc.stderr == ""  # no progress bar in a pipe
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["runs"]} == {"full", "hash", "learned"}
    assert results["environment"]["torch_threads"] == 1
    assert "| budget | method |" in (out / "report.md").read_text()
    assert "<table>" in (out / "report.html").read_text()
    assert (out / "pareto.png").stat().st_size > 1000


def test_evaluate_bad_config_exits_1_with_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"methods": ["full", "nope"]}))
    proc = _cli("evaluate", str(path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: The 'methods' parameter of SweepConfig")
    assert "Traceback" not in proc.stderr
    missing = _cli("evaluate", str(tmp_path / "none.json"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 1 and "Cannot read the sweep config" in missing.stderr
