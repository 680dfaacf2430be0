"""Review of the analysis path (round 8): `embcompress evaluate` / `demo` on bad input, the sweep
config's checks, the loaders' recorded splits, metrics against their definitions, determinism.

Fast: tiny synthetic data or a few rows; the CLI runs in this process (``main`` raises SystemExit).
"""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("typer")

from embcompress.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "examples" / "sweeps" / "synthetic_tiny.json"


def _evaluate(capsys, *args):
    """Run `embcompress evaluate ... --quiet` in this process: (exit code, stderr)."""
    from embcompress.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", *map(str, args), "--quiet"])
        raise SystemExit(0)
    return exc.value.code, capsys.readouterr().err


def _config(tmp_path, **changes) -> Path:
    cfg = json.loads(TINY.read_text())
    cfg.update(changes)
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    return path


def _no_sweep(monkeypatch):
    """Training, reached by a run that should have stopped on its input, raises."""
    import analysis.ctr.train as train

    def ran(*a, **k):
        raise AssertionError("the sweep ran")

    monkeypatch.setattr(train, "fit", ran)


# --------------------------------------------------------------------------- evaluate: --out


@pytest.mark.parametrize("case", ["missing_folder", "empty_folder", "nothing_to_compress"])
def test_evaluate_bad_input_leaves_no_out_folder(tmp_path, capsys, monkeypatch, case):
    # --out was made before the data were loaded, so every run stopped by its input left an
    # empty folder (and its parents) behind
    _no_sweep(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    if case == "missing_folder":
        cfg = _config(tmp_path, dataset={"name": "frappe", "path": str(tmp_path / "no-such-folder")})
        want = "does not exist"
    elif case == "empty_folder":
        cfg = _config(tmp_path, dataset={"name": "frappe", "path": str(empty)})
        want = "No data files"
    else:
        cfg = _config(tmp_path, min_vocab=10**6)
        want = "min_vocab"
    out = tmp_path / "results" / "run1"
    code, err = _evaluate(capsys, cfg, "--out", out)
    assert code == 1, err
    assert want in err and "Traceback" not in err and "the sweep ran" not in err, err
    assert not out.exists() and not out.parent.exists()


def test_evaluate_out_that_is_a_file_is_refused_before_the_data_are_read(tmp_path, capsys, monkeypatch):
    import analysis.ctr.datasets as datasets

    def read(*a, **k):
        raise AssertionError("the data were read")

    monkeypatch.setattr(datasets, "load_dataset", read)
    _no_sweep(monkeypatch)
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    for out in (blocker, blocker / "below"):
        code, err = _evaluate(capsys, TINY, "--out", out)
        assert code == 1 and "is a file" in err and "--out" in err, err
        assert "the data were read" not in err
    assert blocker.read_text() == "a file"


def test_evaluate_failed_sweep_removes_the_out_folder_it_made(tmp_path, capsys, monkeypatch):
    # a sweep stopped by its input after it started (a budget too small for a map, say) leaves
    # no empty folder either; a folder that was there before stays, with its files
    import analysis.ctr.sweep as sweep

    def fails(*a, **k):
        raise ConfigError("The budget of 10 bytes cannot hold even one row. Raise the budget.")

    monkeypatch.setattr(sweep, "_run_sweep", fails)
    out = tmp_path / "new" / "out"
    code, err = _evaluate(capsys, TINY, "--out", out)
    assert code == 1 and "Raise the budget" in err, err
    assert not out.exists() and not out.parent.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "old.txt").write_text("old")
    code, _ = _evaluate(capsys, TINY, "--out", kept)
    assert code == 1 and (kept / "old.txt").read_text() == "old"


# --------------------------------------------------------------------------- demo: --out


def test_demo_bad_data_leaves_no_out_folder(tmp_path):
    from analysis.pipeline import run_demo

    out = tmp_path / "demo" / "out"
    with pytest.raises(ConfigError, match="does not exist"):
        run_demo(out, quick=True, data=tmp_path / "no-such-log")
    assert not out.exists() and not out.parent.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.libfm").write_text("")
    with pytest.raises(ConfigError, match="has no rows"):
        run_demo(out, quick=True, data=empty)
    assert not out.exists() and not out.parent.exists()


def test_demo_out_under_a_file_is_refused_before_the_data_are_read(tmp_path, monkeypatch):
    import analysis.pipeline as pipeline

    def read(*a, **k):
        raise AssertionError("the data were read")

    monkeypatch.setattr(pipeline, "_load", read)
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    with pytest.raises(ConfigError, match="is a file.*--out"):
        pipeline.run_demo(blocker / "out", quick=True)
    assert blocker.read_text() == "a file"
