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


def test_time_split_leaves_out_rows_without_a_time_and_counts_them():
    # NaT sorts last, so a row with no click_time landed in the test split as if it were the latest
    from analysis.ctr.data import CTRData, split_by_time

    n = 20
    data = CTRData(("a",), np.arange(n, dtype=np.int64)[:, None], (np.arange(n) % 2).astype(np.float32))
    time = np.datetime64("2017-11-07T00:00:00") + np.arange(n).astype("timedelta64[s]")
    time[[3, 17]] = np.datetime64("NaT")
    with pytest.warns(UserWarning, match="2 rows without a time"):
        s = split_by_time(data, time, (0.5, 0.2, 0.3))
    kept = np.concatenate([s.train.column("a"), s.validation.column("a"), s.test.column("a")])
    assert 3 not in kept and 17 not in kept and kept.size == n - 2
    assert np.all(np.diff(kept) > 0)  # still in time order
    assert s.info["rows_without_time"] == 2


def test_time_split_records_zero_when_every_row_has_a_time():
    from analysis.ctr.data import CTRData, split_by_time

    data = CTRData(("a",), np.arange(10, dtype=np.int64)[:, None], (np.arange(10) % 2).astype(np.float32))
    s = split_by_time(data, np.arange(10.0)[::-1])
    assert s.info["rows_without_time"] == 0 and s.test.column("a").tolist() == [0]


def test_report_note_counts_rows_without_time():
    from analysis.ctr.report import bad_lines_note

    assert bad_lines_note({"rows_without_time": 2, "bad_lines": {"x.csv": 1}}) == (
        "1 malformed line skipped (x.csv 1). 2 rows without a time left out of the time split.")
    assert bad_lines_note({"rows_without_time": 0, "bad_lines": {"x.csv": 0}}) == ""
