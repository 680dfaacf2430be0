"""Review tests: a split without both classes is refused up front, with the fix, not deep in a run."""

import numpy as np
import pytest

from analysis.ctr.data import Splits
from analysis.ctr.synthetic import load_synthetic
from analysis.ctr.sweep import SweepConfig, run_sweep
from embcompress.errors import ConfigError


def _one_class_test(part="test"):
    s = load_synthetic(3000, seed=0, vocab=(300, 600, 20, 5), n_groups=(10, 12, 4, 2))
    parts = {"train": s.train, "validation": s.validation, "test": s.test}
    bad = parts[part]
    parts[part] = bad.take(np.flatnonzero(bad.label == 0))
    return Splits(s.name, parts["train"], parts["validation"], parts["test"], s.info)


@pytest.mark.parametrize("part", ["test", "validation"])
def test_sweep_refuses_a_split_without_positives_before_training(part, monkeypatch):
    import analysis.ctr.train as train

    def no_training(*a, **k):
        raise AssertionError("trained before checking the splits")

    monkeypatch.setattr(train, "fit", no_training)
    cfg = SweepConfig.from_dict({"methods": ["full", "hash"], "budgets": [0.1], "seeds": [0], "min_vocab": 100,
                                 "bootstrap": 10, "model": {"dim": 4}})
    with pytest.raises(ConfigError, match=rf"{part} split.*no positive.*n_rows"):
        run_sweep(cfg, splits=_one_class_test(part))


def test_demo_refuses_a_test_split_without_positives(tmp_path):
    from analysis.pipeline import DemoSettings, run_demo

    head = "..ip,app,device,os,channel,click_time,attributed_time,is_attributed"
    rows = [f"{i % 150},{i % 120},1,{i % 3},{i % 4},2017-11-07 {i // 60 % 24:02d}:{i % 60:02d}:00,,"
            f"{int(i % 4 == 0 and i < 800)}" for i in range(1000)]  # the latest 20 % has no positive
    csv = tmp_path / "td.csv"
    csv.write_text("\n".join([head, *rows]) + "\n")
    settings = DemoSettings.default(True, real=True)
    with pytest.raises(ConfigError, match=r"test split.*no positive"):
        run_demo(tmp_path / "out", data=csv, settings=settings)
