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


@pytest.mark.parametrize("case", ["missing_folder", "empty_folder", "nothing_to_compress", "budget_too_small"])
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
    elif case == "nothing_to_compress":
        cfg = _config(tmp_path, min_vocab=10**6)
        want = "min_vocab"
    else:
        cfg = _config(tmp_path, budgets=[0.1, 0.0005])
        want = "raise it to at least"
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


# --------------------------------------------------------------------------- datasets


def _criteo_line(i):
    return "\t".join([str(i % 2), *[str(i % 7)] * 13, *[f"{(i * 31 + j) % 97:08x}" for j in range(26)]])


def test_criteo_folder_split_is_recorded_as_given_not_as_a_time_cut(tmp_path):
    # The shared sample's lapis_train/dev/test files are a random split of one stretch of the log
    # (dev and test rows sit among the first 999 lines of train.txt, between train rows), yet the
    # loader recorded "time (pre-split files)" and every report printed "split: time ...". The
    # loader cannot tell how a folder's files were cut: it records that it kept them as given.
    from analysis.ctr.datasets import load_criteo

    folder = tmp_path / "criteo"
    folder.mkdir()
    for name, n in (("a_train.txt", 40), ("a_dev.txt", 10), ("a_test.txt", 10)):
        (folder / name).write_text("\n".join(_criteo_line(i) for i in range(n)) + "\n")
    s = load_criteo(folder)
    assert "time" not in s.info["split"] and "as given" in s.info["split"], s.info
    one = load_criteo(folder / "a_train.txt")  # one file: cut in file order, which is time order
    assert one.info["split"] == "time"


@pytest.mark.data
def test_the_criteo_samples_files_are_not_cut_by_time():
    # the evidence for the test above: rows of every lapis file among the first 999 lines of the log
    from tests.conftest import data_path

    folder = data_path("criteo_sample")
    head = {line: i for i, line in enumerate((folder / "pytorchfm_head999.txt").read_text().splitlines())}
    spans = {}
    for name in ("lapis_train.txt", "lapis_dev.txt", "lapis_test.txt"):
        at = [head[ln] for ln in (folder / name).read_text().splitlines() if ln in head]
        spans[name] = (min(at), max(at))
    assert spans["lapis_dev.txt"][0] < spans["lapis_train.txt"][1]
    assert spans["lapis_test.txt"][0] < spans["lapis_train.txt"][1]


# --------------------------------------------------------------------------- the sweep config


def _tiny(**changes):
    from analysis.ctr.sweep import SweepConfig

    cfg = json.loads(TINY.read_text())
    cfg.update(changes)
    return SweepConfig.from_dict(cfg)


@pytest.mark.parametrize("where", ["method_params", "variants"])
def test_unknown_fit_hash_parameter_is_refused_by_the_config(where):
    # it reached fit_hash as a raw TypeError ("unexpected keyword argument"), after the full
    # model of the first seed had trained
    if where == "method_params":
        changes = {"method_params": {"hash": {"n_iters": 5}}}
    else:
        changes = {"variants": {"mine": {"method": "learned", "n_iters": 5}}, "methods": ["full", "mine"], "requantize": [],
                   "extra": []}
    with pytest.raises(ConfigError, match=r"must give 'mine' \(learned\)|must give 'hash' \(hash\)") as exc:
        _tiny(**changes)
    assert "Got 'n_iters'" in str(exc.value) and "'n_iter'" in str(exc.value)


def test_max_map_share_is_refused_for_methods_without_a_map_share():
    # only the learned methods read it; the others passed it on to fit_hash (a late TypeError)
    with pytest.raises(ConfigError, match=r"max_map_share.*learned"):
        _tiny(method_params={"hash": {"max_map_share": 0.3}})
    with pytest.raises(ConfigError, match="seed"):  # the sweep sets it from 'seeds'
        _tiny(method_params={"learned": {"seed": 3}})
    assert _tiny(method_params={"learned": {"max_map_share": 0.3, "n_iter": 5}}).method_params["learned"]["n_iter"] == 5


@pytest.mark.parametrize("seed", [-1, 2**31])
def test_seeds_out_of_the_maps_range_are_refused_by_the_config(seed):
    # fit_hash takes seeds in [0, 2**31): -1 failed after the first full model trained, 2**70
    # as a raw 'Overflow when unpacking long long'
    with pytest.raises(ConfigError, match=r"'seeds'.*2147483647"):
        _tiny(seeds=[0, seed])


@pytest.mark.parametrize("layers", [[-3], [0], [16, 2.5], [True]])
def test_layer_sizes_must_be_positive_integers(layers):
    # a raw torch RuntimeError ("negative dimension") when the first model was made
    from analysis.ctr.sweep import ModelConfig

    with pytest.raises(ConfigError, match="'top' parameter of ModelConfig"):
        ModelConfig(top=layers)


@pytest.mark.parametrize("changes, match", [
    ({"path": 5}, "'path' parameter of DatasetConfig"),
    ({"name": "synthetic", "path": None, "options": {"vocabb": [600, 900]}}, r"'vocab'.*Got 'vocabb'"),
    ({"name": "synthetic", "path": None, "options": {"seed": 3}}, r"split_seed.*Got 'seed'"),
    ({"options": {"vocab": [10, 20]}}, r"options.*synthetic"),
])
def test_dataset_config_refuses_what_the_loaders_met_as_type_errors(tmp_path, changes, match):
    from analysis.ctr.sweep import DatasetConfig

    kw = {"name": "frappe", "path": str(tmp_path), **changes}
    with pytest.raises(ConfigError, match=match):
        DatasetConfig(**kw)


def test_dataset_path_given_as_a_path_is_kept_as_text(tmp_path):
    # a pathlib.Path went into results.json's config, whose json.dumps then failed after the sweep
    from analysis.ctr.sweep import DatasetConfig

    d = DatasetConfig(name="frappe", path=tmp_path)
    assert d.path == str(tmp_path)
    json.dumps(_tiny().to_dict() | {"dataset": __import__("dataclasses").asdict(d)})


def test_requantize_without_fp32_runs_is_refused():
    # requantize stores the fp32 runs' rows in a narrower format; with no fp32 runs it was
    # silently dropped
    with pytest.raises(ConfigError, match=r"requantize.*fp32"):
        _tiny(formats=["mxfp4_e2m1"], extra=[])


# --------------------------------------------------------------------------- a log in another format


def _td_csv(path, n=40):
    head = "..ip,app,device,os,channel,click_time,attributed_time,is_attributed"
    rows = [f"{i},{i % 5},1,{i % 3},{i % 4},2017-11-07 0{i % 10}:00:{i % 60:02d},,{int(i % 9 == 0)}" for i in range(n)]
    path.write_text("\n".join([head, *rows]) + "\n")
    return path


def _libfm(path, n=40):
    path.write_text("\n".join(f"{1 if i % 3 else -1} " + " ".join(f"{i % 7 + 10 * j}:1" for j in range(10))
                              for i in range(n)) + "\n")
    return path


@pytest.mark.parametrize("name, make", [
    ("frappe", lambda d: _td_csv(d / "log.csv")),          # a TalkingData CSV read as libFM
    ("criteo", lambda d: _libfm(d / "log.libfm")),         # a libFM file read as Criteo TSV
    ("talkingdata", lambda d: _libfm(d / "log.csv")),      # libFM lines in a file named .csv
    ("talkingdata", lambda d: (d / "c.csv").write_text("\n".join(_criteo_line(i).replace("\t", ",") for i in range(20)))
     and d / "c.csv"),                                      # Criteo rows, comma-separated, no header
])
def test_a_log_in_another_format_names_the_format_and_the_fix(tmp_path, name, make):
    # the error said "Point 'path' at a log with data in this format" (which format?) or, for
    # TalkingData, "Pass names from that list" (the sweep passes no names)
    import warnings

    from analysis.ctr.datasets import load_dataset
    from analysis.ctr.sweep import DatasetConfig

    path = make(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError) as exc:
            load_dataset(DatasetConfig(name=name, path=str(path)))
    msg = str(exc.value)
    assert str(path) in msg and "'name'" in msg, msg
    hint = {"frappe": "libFM", "criteo": "tab-separated", "talkingdata": "click_time"}[name]
    assert hint in msg and "Pass names" not in msg and "this format" not in msg, msg


@pytest.mark.parametrize("changes, name", [
    ({"methods": ["full", "hash", "learned", "hash"]}, "methods"),
    ({"budgets": [0.1, 0.1]}, "budgets"),
    ({"formats": ["fp32", "fp32"]}, "formats"),
    ({"extra": [{"method": "learned", "format": "mxfp4_e2m1"}] * 2}, "extra"),
    ({"requantize": [{"method": "learned", "format": "mxfp4_e2m1"}] * 2}, "requantize"),
])
def test_a_run_named_twice_is_refused(changes, name):
    # methods ["full", "hash", "hash"] with budgets [0.1, 0.1] trained the same hash run four
    # times on seed 0 and summarised it as n=4, sd 0, seeds [0, 0, 0, 0]: a spread over copies
    with pytest.raises(ConfigError, match=rf"'{name}' parameter of SweepConfig.*twice"):
        _tiny(**changes)


def test_the_demo_on_a_log_in_another_format_names_its_own_fix(tmp_path):
    # the demo has no dataset 'name': it reads a log by its extension, and the error says so
    import warnings

    from analysis.pipeline import run_demo

    log = _libfm(tmp_path / "log.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match=r"not a criteo log.*embcompress demo.*\*\.libfm \(frappe\)"):
            run_demo(tmp_path / "out", quick=True, data=log)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- report findings


def _row(method, budget, auc_mean, fmt="fp32"):
    return {"method": method, "format": fmt, "budget": budget, "auc": {"mean": auc_mean, "std": 0.0}}


def test_findings_do_not_grade_against_a_hashing_loss_that_is_not_there():
    # Criteo, 1/10 (README): full 0.6845, hash 0.6893, learned 0.6852. The hashing trick lost
    # nothing (-0.0048), and the findings said the learned map "loses MORE than half of it"
    from analysis.ctr.report import findings

    results = {"config": {"variants": {}}, "summary": [
        _row("full", None, 0.6845), _row("hash", 0.1, 0.6893), _row("frequency", 0.1, 0.6994), _row("learned", 0.1, 0.6852)]}
    (line,) = [f for f in findings(results) if "learned" in f]
    assert "MORE than half" not in line and "at most half" not in line, line
    assert "hashing trick loses nothing" in line and "bar" in line, line
    # where the hashing trick does lose, the bar is read as before
    results["summary"][1] = _row("hash", 0.1, 0.6500)
    (line,) = [f for f in findings(results) if "learned" in f]
    assert "loses at most half of it" in line, line


@pytest.mark.parametrize("seed", [-1, True])
def test_split_seed_must_be_a_non_negative_integer(seed):
    # -1 reached numpy's default_rng as a raw "ValueError: expected non-negative integer"
    from analysis.ctr.sweep import DatasetConfig

    with pytest.raises(ConfigError, match="'split_seed' parameter of DatasetConfig.*>= 0"):
        DatasetConfig(name="synthetic", split_seed=seed)


# --------------------------------------------------------------------------- side effects


def test_run_sweep_and_fit_leave_torchs_thread_count_as_they_found_it():
    # train.threads set torch's threads for the rest of the process: a notebook that ran a sweep
    # with "threads": 1 trained everything after it on one thread
    import torch

    from analysis.ctr.synthetic import load_synthetic
    from analysis.ctr.sweep import run_sweep

    before = torch.get_num_threads()
    want = 3 if before != 3 else 2
    torch.set_num_threads(want)
    try:
        cfg = _tiny(methods=["full", "hash"], extra=[], requantize=[], seeds=[0], bootstrap=10)
        assert cfg.train.threads == 1
        splits = load_synthetic(1500, seed=0, vocab=(300, 400, 20), n_groups=(6, 8, 4))
        result = run_sweep(cfg, splits=splits)
        assert result.environment["torch_threads"] == 1  # the sweep ran on its threads
        assert torch.get_num_threads() == want
        from analysis.ctr.compression import full_map
        from analysis.ctr.model import DLRM
        from analysis.ctr.sweep import _encode, train_stats
        from analysis.ctr.train import fit

        stats = train_stats(splits, [])
        maps = {f: full_map(f, stats) for f in splits.features}
        model = DLRM([maps[f].shape for f in splits.features], 4, bottom=(), top=(4,))
        tr, va = _encode(maps, splits.train, splits.features), _encode(maps, splits.validation, splits.features)
        fit(model, tr, va, cfg.train, seed=0)
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(before)


def test_a_config_that_is_not_text_names_the_file_and_the_fix(tmp_path):
    # a binary file (a results .png passed by mistake) gave "'utf-8' codec can't decode byte ..."
    from analysis.ctr.sweep import SweepConfig

    bad = tmp_path / "pareto.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"pareto\.png.*not a JSON text file.*examples/sweeps"):
        SweepConfig.from_json(bad)


@pytest.mark.parametrize("kw, name", [
    ({"zipf": "a"}, "zipf"), ({"zipf": -1.0}, "zipf"), ({"affinity": "x"}, "affinity"),
    ({"vocab": (10, "a"), "n_groups": (2, 2)}, "vocab"), ({"vocab": (10, 0), "n_groups": (2, 1)}, "vocab"),
    ({"n_groups": (2, 2.5), "vocab": (10, 10)}, "n_groups"),
    ({"n_dense": -1}, "n_dense"), ({"signal": "s"}, "signal"), ({"signal": float("nan")}, "signal"),
])
def test_synthetic_generator_options_are_checked(kw, name):
    # the options of a synthetic sweep config reached numpy as raw TypeErrors ("ufunc 'power' not
    # supported", "'<=' not supported between 'float' and 'str'") or ValueErrors
    from analysis.ctr.synthetic import synthetic_log

    with pytest.raises(ConfigError, match=f"'{name}' parameter of synthetic_log"):
        synthetic_log(200, **kw)


@pytest.mark.parametrize("name, value", [
    ("lr", True), ("lr", float("inf")), ("finetune_lr", float("nan")), ("weight_decay", True),
    ("finetune_epochs", True), ("threads", True),
])
def test_train_config_refuses_booleans_and_non_finite_numbers(name, value):
    # "lr": true trained with Adam at lr 1.0 without a word; an infinite lr diverged minutes later
    from analysis.ctr.train import TrainConfig

    with pytest.raises(ConfigError, match=f"'{name}' parameter of TrainConfig"):
        TrainConfig(**{name: value})


def test_min_vocab_refuses_a_boolean():
    with pytest.raises(ConfigError, match="'min_vocab' parameter of SweepConfig"):
        _tiny(min_vocab=True)


def test_a_budget_too_small_for_one_row_is_refused_before_any_training(monkeypatch):
    # 1/2000 left 7 bytes for a feature: the sweep trained every run of the budgets before it (on
    # Frappe, minutes) and then stopped at the first map of this one, with nothing written
    from analysis.ctr.sweep import run_sweep

    _no_sweep(monkeypatch)
    cfg = _tiny(budgets=[0.1, 0.0005], seeds=[0], bootstrap=10)
    with pytest.raises(ConfigError, match=r"'budgets'.*0\.0005.*raise it to at least"):
        run_sweep(cfg)


@pytest.mark.parametrize("where", ["extra", "requantize"])
def test_an_unknown_format_names_the_key_that_holds_it(where):
    # a bad format in 'extra' or 'requantize' was reported as "The 'formats' parameter", which held none
    with pytest.raises(ConfigError, match=rf"'{where}' parameter of SweepConfig.*mxfp4_e2m1.*Got 'mxfp5'"):
        _tiny(**{where: [{"method": "learned", "format": "mxfp5"}]})


def test_html_report_intro_holds_no_markdown_table_line():
    # the intro took every other markdown line from the third to the seventh, and the seventh is
    # the table's header: "<p>| budget | method | ...</p>" stood above the HTML table
    import re

    from analysis.ctr.report import to_html

    results = {
        "dataset": {"name": "synthetic", "compressed": ["user"], "vocab": {"user": 600}, "info": {"split": "time"},
                    "rows": {"train": 80, "validation": 10, "test": 10}, "positive_rate_test": 0.3},
        "environment": {"cpu": "cpu", "cores": 2, "torch": "2", "torch_threads": 1, "date": "today"},
        "config": {"model": {"dim": 8}, "seeds": [0], "bootstrap": 10, "variants": {}},
        "reference_bytes": 1000,
        "summary": [{**_row("full", None, 0.7), "bytes": 1000.0, "ratio": 1.0, "logloss": {"mean": 0.5, "std": 0.0}}],
    }
    paragraphs = re.findall(r"<p>(.*?)</p>", to_html(results), flags=re.S)
    assert not any(p.lstrip().startswith("|") for p in paragraphs), paragraphs
    assert any(p.startswith("Rows: train 80") for p in paragraphs) and any(p.startswith("Budgets are") for p in paragraphs)


def test_load_sweep_data_is_exported_beside_run_sweep():
    import analysis.ctr as ctr
    from analysis.ctr.sweep import load_sweep_data

    assert ctr.load_sweep_data is load_sweep_data and "load_sweep_data" in dir(ctr)


# --------------------------------------------------------------------------- metrics against scikit-learn


def test_auc_and_logloss_equal_scikit_learns_values():
    # Literal values from scikit-learn 1.9.1 (roc_auc_score, log_loss) on these rows; scikit-learn
    # is not a dependency, so they are written down. AUC: 6 positives x 6 negatives, 23.5 pairs won
    # (ties count half) -> 23.5 / 36. Every probability is inside [1e-7, 1 - 1e-7], where this
    # logloss and scikit-learn's (which clips at float64's eps) agree; outside it they differ by
    # design (analysis/ctr/metrics.py clips at 1e-7).
    from analysis.ctr.metrics import auc, logloss

    y = [0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0]
    s = [0.2, 0.2, 0.9, 0.5, 0.5, 0.5, 0.1, 0.7, 0.7, 0.3, 0.2, 0.0]
    p = [0.1, 0.6, 0.999, 0.4, 0.5, 0.5, 1e-3, 0.7, 0.65, 0.3, 0.25, 2e-7]
    assert auc(y, s) == pytest.approx(0.6527777777777778, abs=1e-15) == 23.5 / 36
    assert logloss(y, p) == pytest.approx(0.5426726299050102, rel=1e-14)


# --------------------------------------------------------------------------- report files


def test_a_report_that_fails_to_render_replaces_none_of_the_previous_files(tmp_path, monkeypatch):
    # results.json was replaced first, then the plot failed: the folder held the new results
    # beside the previous run's report.md, report.html and pareto.png
    import analysis.plots as plots
    from analysis.ctr.report import write_report

    results = json.loads((ROOT / "docs" / "results" / "frappe_sweep.json").read_text())
    out = tmp_path / "report"
    out.mkdir()
    old = {name: f"previous {name}" for name in ("results.json", "report.md", "report.html", "pareto.png")}
    for name, text in old.items():
        (out / name).write_text(text)

    def broken(*a, **k):
        raise RuntimeError("no plot today")

    monkeypatch.setattr(plots, "plot_pareto", broken)
    with pytest.raises(RuntimeError, match="no plot today"):
        write_report(results, out)
    assert {p.name: p.read_text() for p in out.iterdir()} == old
