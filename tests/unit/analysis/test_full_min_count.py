"""`full_min_count`: a full table whose rarest training ids share the unseen-id row, so that row
is trained. With a row for every training id the unseen-id row never gets a gradient, yet a
quarter to half of the Criteo sample's test lookups on its big features read it."""

import json

import numpy as np
import pytest

from analysis.ctr.compression import full_map
from analysis.ctr.data import split_by_time
from analysis.ctr.sweep import SweepConfig, run_sweep, train_stats
from analysis.ctr.synthetic import synthetic_log
from embcompress.errors import ConfigError
from tests.conftest import ROOT

TINY = ROOT / "examples" / "sweeps" / "synthetic_tiny.json"


@pytest.fixture(scope="module")
def stats():
    log = synthetic_log(4000, vocab=(300, 600, 20), n_groups=(10, 12, 4), seed=0)
    return train_stats(split_by_time(log.data, None), ["user", "item"])


def test_ids_seen_fewer_times_share_the_unseen_row(stats):
    ids, counts = stats.frequencies("item")
    assert (counts == 1).any() and (counts >= 2).any()
    m = full_map("item", stats, min_count=2)
    kept = ids[counts >= 2]
    assert m.shape.rows == (kept.size + 1,) and m.info["n_ids"] == kept.size
    rows = m.index(ids)[:, 0]
    unseen_row = m.index(np.array([-12345]))[0, 0]
    assert unseen_row == kept.size
    np.testing.assert_array_equal(rows[counts == 1], unseen_row)
    assert np.unique(rows[counts >= 2]).size == kept.size and (rows[counts >= 2] < kept.size).all()
    # the default is a row per training id, as before
    assert full_map("item", stats).shape.rows == (ids.size + 1,)


def _tiny(**changes):
    d = json.loads(TINY.read_text())
    d.update(changes)
    return d


def test_a_sweep_with_full_min_count_trains_the_unseen_row_for_every_method():
    d = _tiny(methods=["full", "hash", "learned_trained"], extra=[], requantize=[], seeds=[0])
    base = run_sweep(SweepConfig.from_dict(d))
    fewer = run_sweep(SweepConfig.from_dict({**d, "full_min_count": 2}))
    assert fewer.config.full_min_count == 2 and fewer.to_dict()["config"]["full_min_count"] == 2
    full_a, full_b = base.row("full"), fewer.row("full")
    assert full_b["bytes"] < full_a["bytes"]  # fewer rows in the full tables
    # the budget is still a share of a row per training id, so compressed runs get the same bytes
    assert base.reference_bytes == fewer.reference_bytes
    for method in ("hash", "learned_trained"):
        a, b = base.row(method, budget=0.1), fewer.row(method, budget=0.1)
        assert b["bytes"] <= a["bytes"] * 1.001 and np.isfinite(b["auc"]["mean"])
    # the tables kept full (features below min_vocab) have fewer rows in compressed runs too
    runs = {r["method"]: r for r in fewer.runs}
    kept_full = [f for f in fewer.dataset["features"] if f not in fewer.dataset["compressed"]]
    base_runs = {r["method"]: r for r in base.runs}
    assert kept_full and all(runs["hash"]["rows"][f] <= base_runs["hash"]["rows"][f] for f in kept_full)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_full_min_count_is_an_integer_of_at_least_one(bad):
    with pytest.raises(ConfigError, match="full_min_count"):
        SweepConfig.from_dict(_tiny(full_min_count=bad))


def test_readme_table_matches_the_committed_full_min2_results():
    # the README's rows for full_min_count 2 are the mean AUCs of docs/results/*_full_min2_sweep.json
    readme = (ROOT / "README.md").read_text()
    for log, name in (("Criteo", "criteo"), ("TalkingData", "talkingdata")):
        res = json.loads((ROOT / "docs" / "results" / f"{name}_full_min2_sweep.json").read_text())
        assert res["config"]["full_min_count"] == 2 and len(res["runs"]) == 35
        auc = {(r["method"], r["budget"]): r["auc"]["mean"] for r in res["summary"]}
        cells = [auc[("full", None)]] + [auc[(m, b)] for b in (0.1, 0.02) for m in ("hash", "frequency", "learned")]
        row = f"| {log} | 2 | " + " | ".join(f"{a:.4f}" for a in cells) + " |"
        assert row in readme, row


def test_findings_say_when_the_full_baseline_reads_an_untrained_row():
    from analysis.ctr.report import findings

    d = _tiny(methods=["full", "hash"], extra=[], requantize=[], seeds=[0])
    res = run_sweep(SweepConfig.from_dict(d))
    out = res.to_dict()
    shares = out["dataset"]["unseen_test_share"]
    assert set(shares) == set(out["dataset"]["compressed"]) and all(0 <= v < 0.05 for v in shares.values())
    assert not any(f.startswith("full baseline") for f in findings(out))  # few unseen ids: nothing to say
    out["dataset"]["unseen_test_share"] = {"user": 0.02, "item": 0.25}
    said = [f for f in findings(out) if f.startswith("full baseline")]
    assert len(said) == 1 and "25% of the test lookups of item" in said[0] and '"full_min_count": 2' in said[0]
    out["config"]["full_min_count"] = 2  # the row is trained: nothing to say
    assert not any(f.startswith("full baseline") for f in findings(out))
