"""Review of the analysis path (round 9): sweep configs accepted then failing late or with raw
Python errors, and the numbers the reports print.

Fast: configs only, or tiny synthetic data.
"""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from embcompress.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "examples" / "sweeps" / "synthetic_tiny.json"


def _tiny(**changes) -> dict:
    cfg = json.loads(TINY.read_text())
    cfg.update(changes)
    return cfg


# --------------------------------------------------------------------------- extra / requantize


@pytest.mark.parametrize("name", ["extra", "requantize"])
@pytest.mark.parametrize("value", [5, [5], [["learned", ["fp32"]]], [["learned", {}]], [{"method": "learned", "format": 4}],
                                   {"method": "learned", "format": "fp32"}])
def test_extra_and_requantize_of_the_wrong_shape_are_named(name, value):
    # 5 and [5] raised the raw "TypeError: 'int' object is not iterable", a list or object as the
    # format "TypeError: unhashable type" (from the format lookup); an object instead of a list of
    # them was read as its keys
    from analysis.ctr.sweep import SweepConfig

    with pytest.raises(ConfigError, match=f"'{name}'"):
        SweepConfig.from_dict(_tiny(**{name: value}))


def test_extra_and_requantize_still_take_pairs_and_objects():
    from analysis.ctr.sweep import SweepConfig

    cfg = SweepConfig.from_dict(_tiny(extra=[["learned", "mxfp4_e2m1"]], requantize=[{"method": "learned", "format": "mxfp4_e2m1"}]))
    assert cfg.extra == (("learned", "mxfp4_e2m1"),)
    assert cfg.requantize == (("learned", "mxfp4_e2m1"),)


# --------------------------------------------------------------------------- fit_hash parameters


def _no_training(monkeypatch):
    import analysis.ctr.train as train

    def ran(*a, **k):
        raise AssertionError("training ran before the config was refused")

    monkeypatch.setattr(train, "fit", ran)


@pytest.mark.parametrize("params", [{"hash": {"hot_rows": "x"}}, {"frequency": {"n_threads": 0}},
                                    {"learned": {"embedding": "spectral"}}, {"learned": {"max_map_share": 2}},
                                    {"learned": {"n_components": 0}}, {"learned": {"partners": "C1"}},
                                    {"frequency": {"max_mapped_ids": -1}}])
def test_fit_hash_parameters_of_the_wrong_kind_are_refused_by_the_config(params):
    # accepted, then refused by fit_hash (or not at all) once a run reached it: after the full
    # model of the first seed trained, minutes into a real sweep
    from analysis.ctr.sweep import SweepConfig

    with pytest.raises(ConfigError, match="method_params"):
        SweepConfig.from_dict(_tiny(method_params=params))


@pytest.mark.parametrize("params", [{"hash": {"hot_rows": 5}}, {"frequency": {"hot_rows": 10**7}},
                                    {"learned": {"partners": ["no_such_feature"]}}])
def test_fit_hash_parameters_the_data_refuse_stop_the_sweep_before_training(params, monkeypatch):
    from analysis.ctr.sweep import SweepConfig, load_sweep_data, run_sweep

    _no_training(monkeypatch)
    cfg = SweepConfig.from_dict(_tiny(method_params=params, extra=[], requantize=[]))
    splits = load_sweep_data(cfg)
    with pytest.raises(ConfigError, match="method_params") as exc:
        run_sweep(cfg, splits=splits)
    assert "AssertionError" not in repr(exc.value)


def test_variants_parameters_are_checked_and_named_as_variants(monkeypatch):
    from analysis.ctr.sweep import SweepConfig

    with pytest.raises(ConfigError, match="variants"):
        SweepConfig.from_dict(_tiny(variants={"lc": {"method": "learned", "embedding": 3}}, methods=["full", "lc"],
                                    extra=[], requantize=[]))


@pytest.mark.parametrize("where", ["method_params", "variants"])
def test_qr_parameters_are_refused_not_ignored(where):
    # qr builds its map with fit_hash(method="hash") and none of the method's parameters: they were
    # accepted and silently had no effect (the sweep even skipped its own n_threads for qr)
    from analysis.ctr.sweep import SweepConfig

    if where == "method_params":
        d = _tiny(method_params={"qr": {"n_threads": 2}})
    else:
        d = _tiny(variants={"qr2": {"method": "qr", "max_mapped_ids": 10}}, methods=["full", "qr2"], extra=[], requantize=[])
    with pytest.raises(ConfigError, match=f"'{where}'.*qr"):
        SweepConfig.from_dict(d)
    SweepConfig.from_dict(_tiny(method_params={"qr": {}}))  # nothing given is fine


# --------------------------------------------------------------------------- split_seed


@pytest.mark.parametrize("name", ["criteo", "talkingdata"])
def test_a_split_seed_that_changes_nothing_is_refused(name, tmp_path):
    # the Criteo and TalkingData loaders split by time (or by a folder's files) and ignore the
    # seed: a config with split_seed 1 ran the very split of split_seed 0 and said nothing
    from analysis.ctr.sweep import DatasetConfig

    with pytest.raises(ConfigError, match="split_seed"):
        DatasetConfig(name=name, path=str(tmp_path), split_seed=1)
    assert DatasetConfig(name=name, path=str(tmp_path), split_seed=0).split_seed == 0
    assert DatasetConfig(name="frappe", path=str(tmp_path), split_seed=3).split_seed == 3  # a random split
    assert DatasetConfig(name="synthetic", split_seed=3).split_seed == 3  # the generator's seed


def test_the_talkingdata_split_does_not_depend_on_the_seed(tmp_path):
    # what the check above rests on
    from analysis.ctr.datasets import load_talkingdata

    lines = ["ip,app,device,os,channel,click_time,is_attributed"]
    lines += [f"{i % 7},{i % 5},1,{i % 3},{i % 11},2017-11-07 0{i // 20}:00:{i % 60:02d},{int(i % 4 == 0)}" for i in range(100)]
    f = tmp_path / "td.csv"
    f.write_text("\n".join(lines) + "\n")
    a, b = load_talkingdata(f, split_seed=0), load_talkingdata(f, split_seed=5)
    assert (a.test.cat == b.test.cat).all() and (a.train.label == b.train.label).all()


# --------------------------------------------------------------------------- report findings


def test_findings_do_not_claim_equal_bytes_that_the_runs_did_not_spend():
    # docs/results/frappe_sweep.json, 1/50: learned in fp32 took 12,589 bytes, in MXFP4 10,681
    # (the map-share rule kept 255 rows on one-byte entries), and the findings said "learned with
    # mxfp4_e2m1 rows at the same bytes (10.4 KiB ...)", printing only the second
    from analysis.ctr.report import findings

    def row(fmt, auc_mean, nbytes):
        return {"method": "learned", "format": fmt, "budget": 0.02, "bytes": nbytes, "auc": {"mean": auc_mean, "std": 0.0}}

    results = {"config": {"variants": {}}, "summary": [
        {"method": "full", "format": "fp32", "budget": None, "bytes": 646106, "auc": {"mean": 0.95, "std": 0.0}},
        row("fp32", 0.9072, 12589), row("mxfp4_e2m1", 0.9312, 10681)]}
    (line,) = [f for f in findings(results) if "mxfp4_e2m1 rows" in f]
    assert "same bytes" not in line, line
    assert "12.3 KiB" in line and "10.4 KiB" in line, line


# --------------------------------------------------------------------------- max_mapped_ids 0


@pytest.mark.parametrize("method", ["learned", "learned_trained"])
def test_max_mapped_ids_0_maps_no_id_for_the_learned_methods(method):
    # `params.get("max_mapped_ids") or ids.size` read 0 as "no cap": the learned map then held
    # every id (358 here) and paid their bytes, where fit_hash and the frequency method map none
    import numpy as np

    from analysis.ctr.compression import compressed_map
    from analysis.ctr.data import split_by_time
    from analysis.ctr.sweep import train_stats
    from analysis.ctr.synthetic import synthetic_log

    log = synthetic_log(2000, vocab=(300, 600, 20), n_groups=(10, 12, 4), seed=0)
    stats = train_stats(split_by_time(log.data, None), ["user", "item"])
    ids = stats.frequencies("item")[0]
    trained = np.random.default_rng(0).standard_normal((ids.size, 16)).astype(np.float32) if method == "learned_trained" else None
    m = compressed_map(method, "item", stats, 4000, dim=16, fmt="fp32", seed=0, params={"max_mapped_ids": 0}, trained_rows=trained)
    assert m.info["mapped_ids"] == 0 and m.info["mapped_ids_cap"] == 0, m.info
    assert m.total_bytes("fp32", 16) <= 4000
    five = compressed_map(method, "item", stats, 4000, dim=16, fmt="fp32", seed=0, params={"max_mapped_ids": 5}, trained_rows=trained)
    assert five.info["mapped_ids"] == 5


# --------------------------------------------------------------------------- synthetic feature names


@pytest.mark.parametrize("features", ["ab", ["user", "user"], ["user", 3], ["user", ""]])
def test_synthetic_feature_names_must_be_distinct_text(features):
    # "ab" became the features ('a', 'b'); ["user", "user"] made two columns that both read the
    # first (CTRData.column takes the first name) and one map for both in a sweep
    from analysis.ctr.synthetic import synthetic_log

    with pytest.raises(ConfigError, match="'features'"):
        synthetic_log(100, vocab=(20, 30), n_groups=(2, 3), features=features)
    assert synthetic_log(100, vocab=(20, 30), n_groups=(2, 3), features=["u", "i"]).data.features == ("u", "i")


@pytest.mark.parametrize("version", [2, "1", True])
def test_a_train_section_of_another_version_is_refused(version):
    # SweepConfig refused a version it does not know, its 'train' section took any
    from analysis.ctr.sweep import SweepConfig

    with pytest.raises(ConfigError, match="'version'.*TrainConfig"):
        SweepConfig.from_dict(_tiny(train={"epochs": 1, "version": version}))
    SweepConfig.from_dict(_tiny(train={"epochs": 1, "version": 1}))


# --------------------------------------------------------------------------- paired_bootstrap


def test_paired_bootstrap_names_one_run_given_without_its_list():
    # paired_bootstrap(y, probs_a, probs_b) with two arrays said "'probs_a' must be a 1-d array of
    # the labels' length (6,). Got () instead", of a 1-d array of that very length
    import numpy as np

    from analysis.ctr.metrics import paired_bootstrap

    y = np.array([0, 1, 0, 1, 1, 0.0])
    a = np.linspace(0.1, 0.9, 6)
    b = a[::-1].copy()
    with pytest.raises(ConfigError, match=r"'probs_a'.*list of runs.*\[probs\]"):
        paired_bootstrap(y, a, b, n_boot=20)
    with pytest.raises(ConfigError, match=r"'probs_b'.*list of runs"):
        paired_bootstrap(y, [a], b, n_boot=20)
    out = paired_bootstrap(y, [a], [b], n_boot=20)
    assert out["auc"].mean > 0
    two = paired_bootstrap(y, np.stack([a, a]), np.stack([b, b]), n_boot=20)  # a 2-d array of runs still works
    assert two["auc"].mean == pytest.approx(out["auc"].mean)


# --------------------------------------------------------------------------- report = results.json


def test_the_report_reads_the_same_from_the_result_and_from_its_results_json(tmp_path):
    # to_dict kept the config's tuples: report.md said "Seeds: (0, 1)" while the same report
    # rendered from results.json said "Seeds: [0, 1]"
    from analysis.ctr.report import to_markdown
    from analysis.ctr.sweep import SweepConfig, SweepResult

    cfg = SweepConfig.from_dict(_tiny())
    summary = [{"method": "full", "format": "fp32", "budget": None, "bytes": 100.0, "ratio": 1.0, "seeds": [0, 1],
                "auc": {"mean": 0.7, "std": 0.0}, "logloss": {"mean": 0.5, "std": 0.0}}]
    dataset = {"name": "synthetic", "info": {"split": "time"}, "features": ["user"], "compressed": ["user"],
               "vocab": {"user": 10}, "rows": {"train": 8, "validation": 1, "test": 1}, "positive_rate_test": 0.5}
    env = {"cpu": "x", "cores": 1, "torch_threads": 1, "torch": "t", "numpy": "n", "python": "p", "date": "d"}
    result = SweepResult(cfg, dataset, 100, [], summary, env)
    d = result.to_dict()
    assert d == json.loads(json.dumps(d))
    assert to_markdown(d) == to_markdown(json.loads(json.dumps(d)))
    assert "Seeds: [0, 1]" in to_markdown(d)


# --------------------------------------------------------------------------- DemoSettings


@pytest.mark.parametrize("changes", [{"vocab": 5}, {"vocab": (300, "a", 20, 5)}, {"n_groups": (10, 12, 4, 0)},
                                     {"vocab": (300, 600, 20, 5.5)}, {"lr": float("nan")}, {"lr": float("inf")}])
def test_demo_settings_refuse_what_failed_raw_or_late(changes):
    # vocab=5 raised "TypeError: object of type 'int' has no len()"; lr NaN or inf was refused by
    # TrainConfig only once the demo had made its folder, mined and fitted the maps
    from dataclasses import replace

    from analysis.pipeline import DemoSettings

    with pytest.raises(ConfigError, match=f"'{next(iter(changes))}'.*DemoSettings"):
        replace(DemoSettings.default(True), **changes)


# --------------------------------------------------------------------------- format_report


@pytest.mark.parametrize("formats", ["mx6", 5])
def test_format_report_names_formats_that_are_not_a_list(formats):
    # "mx6" was read letter by letter ("Unknown format 'm'"); 5 raised "TypeError: 'int' object is not iterable"
    import numpy as np

    from analysis.quant_error import format_report

    x = np.random.default_rng(0).standard_normal((20, 32)).astype(np.float32)
    with pytest.raises(ConfigError, match="'formats'.*list of format names"):
        format_report(x, formats=formats)
    assert [r["format"] for r in format_report(x, formats=["mx6"])] == ["mx6"]


# --------------------------------------------------------------------------- collision_report


def test_collision_report_names_stats_maps_and_features_of_the_wrong_kind():
    # a stats path raised "AttributeError: 'str' object has no attribute 'features'", a mapping to
    # a path "... has no attribute 'n_rows'", feature=['item'] "TypeError: unhashable type: 'list'"
    from analysis.collisions import collision_report
    from analysis.ctr.compression import compressed_map
    from analysis.ctr.data import split_by_time
    from analysis.ctr.sweep import train_stats
    from analysis.ctr.synthetic import synthetic_log

    log = synthetic_log(2000, vocab=(300, 600, 20), n_groups=(10, 12, 4), seed=0)
    stats = train_stats(split_by_time(log.data, None), ["user", "item"])
    m = compressed_map("hash", "item", stats, 4000, dim=16, fmt="fp32", seed=0).id_map
    with pytest.raises(ConfigError, match="'stats'.*LogStats.load"):
        collision_report(m, "train.stats", "item")
    with pytest.raises(ConfigError, match="'id_map'.*'item' maps to a str"):
        collision_report({"item": "item.idmap"}, stats)
    with pytest.raises(ConfigError, match="'feature'"):
        collision_report(m, stats, ["item"])
    assert collision_report(m, stats, "item")["item"].n_rows == m.n_rows


def test_true_is_no_version_and_a_negative_bootstrap_seed_is_named():
    """JSON's true equals 1, so {"version": true} passed the version checks; paired_bootstrap with
    seed=-1 raised numpy's raw 'expected non-negative integer'."""
    import numpy as np
    import pytest

    from analysis.ctr.metrics import paired_bootstrap
    from analysis.ctr.sweep import SweepConfig
    from analysis.pipeline import DemoSettings
    from embcompress.errors import ConfigError

    import dataclasses

    with pytest.raises(ConfigError, match="'version'"):
        dataclasses.replace(DemoSettings.default(quick=True), version=True)
    with pytest.raises(ConfigError, match="'version'"):
        SweepConfig.from_dict({"version": True, "dataset": {"name": "synthetic"}, "methods": ["full"],
                               "budgets": [0.1], "formats": ["fp32"], "seeds": [0]})
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.linspace(0.1, 0.9, 6)
    with pytest.raises(ConfigError, match="'seed'"):
        paired_bootstrap(y, [p], [p[::-1]], seed=-1)
