"""The main job end to end on tiny data: ``run_demo(quick=True)`` and ``embcompress demo --quick``."""

import json
import os
from dataclasses import asdict
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import data_path

pytest.importorskip("torch")

from analysis.pipeline import FORMATS, METHODS, DemoSettings, detect_dataset, run_demo  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    calls = []
    result = run_demo(out, quick=True, seed=3, progress=lambda done, total: calls.append((done, total)))
    return result, out, calls


def test_table_has_every_method_and_format(demo):
    result, _, _ = demo
    assert [(r["method"], r["format"]) for r in result.rows] == [(m, f) for m in METHODS for f in FORMATS]
    for r in result.rows:
        assert 0.5 < r["auc"] <= 1.0 and 0 < r["logloss"] < 5
        assert r["bytes"] == r["table_bytes"] + r["map_bytes"]
        assert r["file_bytes"] >= r["table_bytes"]
    text = result.table()
    for word in ("full", "hashing trick", "learned", "fp32", "MXFP4", "bytes", "compression", "AUC", "logloss"):
        assert word in text


def test_bytes_and_compression(demo):
    result, _, _ = demo
    full = result.row("full", "fp32")
    assert full["compression"] == 1.0
    ds = result.dataset
    for method in ("hash", "learned"):
        r = result.row(method, "fp32")
        # the compressed features fit their budget (maps included); the small ones are the full run's
        small = [f for f in ds["features"] if f not in ds["compressed"]]
        assert all(r["rows"][f] < full["rows"][f] for f in ds["compressed"])
        assert set(r["rows"]) == set(ds["compressed"]) and small
        assert r["bytes"] < full["bytes"] and r["compression"] > 2
    for method in METHODS:
        fp32, fp4 = result.row(method, "fp32"), result.row(method, "mxfp4_e2m1")
        assert fp4["rows"] == fp32["rows"] and fp4["map_bytes"] == fp32["map_bytes"]
        assert fp4["table_bytes"] < fp32["table_bytes"] / 2
        assert fp4["compression"] > fp32["compression"]


def test_served_outputs_equal_the_kernel(demo):
    result, _, _ = demo
    test_rows = result.dataset["rows"]["test"]
    n_features = len(result.dataset["features"])
    for key, s in result.serving.items():
        assert s["lookups"] == test_rows * n_features, key
        assert s["mismatches"] == 0, key
        if key.endswith("/fp32"):
            assert s["max_abs_diff_vs_torch"] == 0.0, key  # served fp32 rows are the trained rows


def test_files_written(demo):
    result, out, calls = demo
    assert result.report == out / "report.md"
    for name in ("report.md", "results.json", "bytes_vs_auc.png", "format_report.md", "format_report.png", "artifacts/train.stats"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for method in METHODS:
        for fmt in FORMATS:
            folder = out / "tables" / f"{method}-{fmt}"
            assert sorted(p.stem for p in folder.glob("*.embc")) == sorted(f"embedding.{f}" for f in result.dataset["features"])
            assert (folder / "export.json").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["kind"] == "embcompress.demo_results" and saved["seed"] == 3
    assert [(r["method"], r["format"], r["auc"]) for r in saved["rows"]] == [(r["method"], r["format"], r["auc"]) for r in result.rows]
    report = (out / "report.md").read_text()
    assert "| hashing trick | MXFP4 |" in report and "mxfp4_e2m1" in (out / "format_report.md").read_text()
    # progress reaches its total and never goes back
    assert calls and calls[-1][0] == calls[-1][1] and all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))


def test_table_files_open_with_the_core(demo):
    from embcompress.tablefile import open_table

    result, out, _ = demo
    big = result.dataset["compressed"][0]
    with open_table(out / "tables" / "learned-mxfp4_e2m1" / f"embedding.{big}.embc", verify="full") as t:
        assert t.fmt == "mxfp4_e2m1" and t.shape[0] == result.row("learned", "mxfp4_e2m1")["rows"][big]
        assert t.id_map is not None and t.frequencies is not None and t.frequencies.sum() > 0


def test_bad_inputs(tmp_path):
    from embcompress.errors import ConfigError

    with pytest.raises(ConfigError, match="seed"):
        run_demo(tmp_path, quick=True, seed=-1)
    with pytest.raises(ConfigError, match="does not exist"):
        run_demo(tmp_path, quick=True, data=tmp_path / "nothing-here")
    with pytest.raises(ConfigError, match="'budget' parameter of DemoSettings"):
        DemoSettings(**{**asdict(DemoSettings.default(quick=True)), "budget": 1.5})
    with pytest.raises(ConfigError, match="settings"):
        run_demo(tmp_path, settings={"dim": 8})


def test_detect_dataset(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "frappe.test.libfm").write_text("1 0:1 1:1\n")
    (tmp_path / "t.csv").write_text("ip,app\n")
    (tmp_path / "c.txt").write_text("")
    assert detect_dataset(tmp_path / "f") == "frappe"
    assert detect_dataset(tmp_path / "t.csv") == "talkingdata"
    assert detect_dataset(tmp_path / "c.txt") == "criteo"


@pytest.mark.data
def test_demo_on_frappe(tmp_path):
    result = run_demo(tmp_path, quick=True, data=data_path("frappe"))
    assert result.dataset["name"] == "frappe"
    assert {"user", "item"} <= set(result.dataset["compressed"])
    assert all(s["mismatches"] == 0 for s in result.serving.values())
    assert result.row("full", "fp32")["auc"] > 0.8


def test_cli(tmp_path):
    out = tmp_path / "cli_out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "embcompress", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "hashing trick" in proc.stdout and "MXFP4" in proc.stdout and "compression" in proc.stdout
    assert "all equal to the in-memory kernel" in proc.stdout
    assert str(out.resolve()) in proc.stdout
    assert (out / "report.md").is_file() and (out / "format_report.md").is_file()
