"""Review tests (a newcomer's walk through the README and the notebooks): analysis. (Not named
test_review_user11.py: tests/unit/embcompress has that name, and test folders are no packages, so
one pytest run cannot import both.)"""

import matplotlib
import pytest

from analysis.plots import plot_format_report, plot_pareto
from analysis.quant_error import ReportTable

SUMMARY = [{"method": "full", "format": "fp32", "budget": None, "bytes": 1000.0, "auc": {"mean": 0.8, "std": 0.0}},
           {"method": "hash", "format": "fp32", "budget": 0.1, "bytes": 100.0, "auc": {"mean": 0.7, "std": 0.01}}]
REPORT = ReportTable([{"format": "fp16", "bits_per_element": 16.0, "bytes_per_row": 8, "compression": 2.0,
                       "qsnr_db": 70.0, "max_rel_err": 1e-3, "bag_qsnr_db": 71.0}], title="t")


@pytest.fixture
def svg_backend():
    """pyplot on a backend other than Agg (as a Jupyter kernel's inline one is), restored after."""
    import matplotlib.pyplot as plt

    old = matplotlib.get_backend()
    plt.close("all")
    matplotlib.use("svg", force=True)
    yield plt
    plt.close("all")
    matplotlib.use(old, force=True)


def test_plots_leave_the_callers_pyplot_backend_and_figures_alone(tmp_path, svg_backend):
    # Notebooks 03 and 04 plot with analysis.plots, then draw their own figures with plt.show():
    # the plots switched the kernel to Agg (matplotlib.use("Agg", force=True)), so those later
    # figures were never shown.
    plt = svg_backend
    mine = plt.figure()
    plot_pareto(SUMMARY, tmp_path / "pareto.png")
    plot_format_report(REPORT, tmp_path / "formats.png")
    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == [mine.number]  # the user's figure kept, none of ours left open
    for name in ("pareto.png", "formats.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_rows_note_explains_a_max_rel_err_of_one_from_rows_left_at_zero():
    # The demo's format explorer showed fp16 'max rel err 1' beside 73.7 dB QSNR (int8_rowwise 1.62)
    # with no word why: the trained table's unseen-id row holds values near 1e-23.
    import numpy as np

    from analysis.pipeline import tiny_rows_note
    from analysis.quant_error import format_report

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    assert tiny_rows_note(w) == ""
    w[63] = rng.standard_normal(32).astype(np.float32) * 1e-23
    rep = {r["format"]: r for r in format_report(w, formats=["fp16", "int8_rowwise", "mxint8"]).rows}
    assert rep["fp16"]["max_rel_err"] >= 0.99 and rep["int8_rowwise"]["max_rel_err"] >= 0.99
    assert rep["fp16"]["qsnr_db"] > 60
    note = tiny_rows_note(w)
    assert note.startswith("`max rel err` is the worst row's") and "Row 63 of this table holds only values below 1e-06" in note


def test_demo_report_carries_the_note(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import analysis.pipeline as pipeline

    real = pipeline.tiny_rows_note
    monkeypatch.setattr(pipeline, "tiny_rows_note", lambda w: real(w, below=1e9))  # every row counts as tiny
    pipeline.run_demo(tmp_path / "out", quick=True)
    report = (tmp_path / "out" / "report.md").read_text()
    explorer = report.split("## The format explorer on the trained table", 1)[1].split("## Files", 1)[0]
    assert "`max rel err` is the worst row's largest error" in explorer and "below 1e+09" in explorer


def test_findings_call_a_gain_over_the_full_table_a_gain():
    # synthetic_tiny.json printed "learned: AUC 0.7982 (loss -0.0269 against full 0.7713); hashing trick
    # loses +0.0557: learned loses at most half of it"
    from analysis.ctr.report import findings

    def row(method, budget, auc):
        return {"method": method, "format": "fp32", "budget": budget, "auc": {"mean": auc, "std": 0.0}}

    results = {"config": {"variants": {}}, "summary": [
        row("full", None, 0.7713), row("hash", 0.1, 0.7156), row("frequency", 0.1, 0.7325), row("learned", 0.1, 0.7982)]}
    (line,) = [f for f in findings(results) if "learned" in f]
    assert "a gain of 0.0269 against full 0.7713" in line and "loss -" not in line, line
    assert "learned loses at most half of it (none: it beats the full table)" in line, line
    results["summary"][3] = row("learned", 0.1, 0.7600)  # a loss is still graded with its share
    (line,) = [f for f in findings(results) if "learned" in f]
    assert "(loss +0.0113 against full 0.7713)" in line and "loses at most half of it (20% of it)" in line, line


def test_reports_say_one_thread_not_one_threads(tmp_path):
    # the demo report and the sweep report ended "torch 2.13.0+cpu with 1 threads"
    import dataclasses
    import json

    torch = pytest.importorskip("torch")
    from analysis.ctr import SweepConfig, run_sweep, write_report
    from analysis.pipeline import _machine
    from tests.conftest import ROOT

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert _machine().endswith("with 1 thread")
    finally:
        torch.set_num_threads(old)
    cfg = SweepConfig.from_json(ROOT / "examples" / "sweeps" / "synthetic_tiny.json")
    cfg = dataclasses.replace(cfg, methods=["full"], seeds=[0], extra=[], requantize=[], formats=["fp32"])
    write_report(run_sweep(cfg), tmp_path)
    n = json.loads((tmp_path / "results.json").read_text())["environment"]["torch_threads"]
    machine = (tmp_path / "report.md").read_text().split("## Machine", 1)[1]
    assert f"with {n} thread{'' if n == 1 else 's'}, " in machine, machine
