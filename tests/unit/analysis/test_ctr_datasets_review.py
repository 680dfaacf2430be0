"""Review tests of the real-data loaders: malformed lines are skipped, counted and reported."""

import warnings

import pytest

from analysis.ctr.datasets import load_criteo, load_dataset, load_frappe, load_talkingdata
from analysis.ctr.sweep import DatasetConfig, SweepConfig
from embcompress.errors import ConfigError


def _frappe(folder, n=60):
    folder.mkdir()
    good = [f"{1 if i % 3 == 0 else -1} " + " ".join(f"{(i * 7 + j) % 50 + 100 * j}:1" for j in range(10)) for i in range(n)]
    lines = good[:10] + ["1 garbage line", "x 1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 9:1 10:1"] + good[10:]
    (folder / "frappe.test.libfm").write_text("\n".join(lines) + "\n")
    return folder


def _criteo_line(i):
    ints = [str(i % 7)] * 13
    cats = [f"{(i * 31 + j) % 97:08x}" for j in range(26)]
    return "\t".join([str(i % 2), *ints, *cats])


def test_frappe_malformed_lines_are_skipped_counted_and_recorded(tmp_path):
    folder = _frappe(tmp_path / "frappe")
    with pytest.warns(UserWarning, match="2 malformed lines"):
        s = load_frappe(folder)
    assert s.train.n_rows + s.validation.n_rows + s.test.n_rows == 60  # every good row kept
    assert s.info["bad_lines"] == {"frappe.test.libfm": 2}


def test_on_bad_line_error_still_stops_at_the_first(tmp_path):
    folder = _frappe(tmp_path / "frappe")
    with pytest.raises(ConfigError, match="line 11"):
        load_frappe(folder, on_bad_line="error")


def test_criteo_folder_counts_bad_lines_per_file(tmp_path):
    folder = tmp_path / "criteo"
    folder.mkdir()
    for name, n in (("x_train.txt", 80), ("x_dev.txt", 20), ("x_test.txt", 20)):
        lines = [_criteo_line(i) for i in range(n)]
        if name == "x_dev.txt":
            lines.insert(3, "1\tonly\tthree")
        (folder / name).write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="1 malformed line"):
        s = load_criteo(folder)
    assert s.validation.n_rows == 20 and s.test.n_rows == 20 and s.train.n_rows == 80
    assert s.info["bad_lines"] == {"x_train.txt": 0, "x_dev.txt": 1, "x_test.txt": 0}


def test_talkingdata_bad_lines_and_clean_file_records_zero(tmp_path):
    head = "..ip,app,device,os,channel,click_time,attributed_time,is_attributed"
    rows = [f"{i},{i % 5},1,{i % 3},{i % 4},2017-11-07 0{i % 10}:00:{i % 60:02d},,{int(i % 9 == 0)}" for i in range(50)]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([head, *rows[:20], "1,2,3", "5,3,1,13,379,notatime,,0", *rows[20:]]) + "\n")
    with pytest.warns(UserWarning, match="2 malformed lines"):
        s = load_talkingdata(bad)
    assert s.info["bad_lines"] == {"bad.csv": 2}
    assert s.train.n_rows + s.validation.n_rows + s.test.n_rows == 50
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join([head, *rows]) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = load_talkingdata(clean)
    assert s.info["bad_lines"] == {"clean.csv": 0}


def test_dataset_config_passes_on_bad_line_and_validates_it(tmp_path):
    folder = _frappe(tmp_path / "frappe")
    with pytest.raises(ConfigError, match="line 11"):
        load_dataset(DatasetConfig(name="frappe", path=str(folder), on_bad_line="error"))
    with pytest.raises(ConfigError, match="'on_bad_line'.*'skip'"):
        DatasetConfig(name="frappe", path=str(folder), on_bad_line="drop")
    cfg = SweepConfig.from_dict({"dataset": {"name": "frappe", "path": str(folder), "on_bad_line": "error"}})
    assert cfg.to_dict()["dataset"]["on_bad_line"] == "error"


def test_report_states_skipped_lines():
    from analysis.ctr.report import to_markdown

    results = {
        "dataset": {"name": "frappe", "vocab": {"user": 10}, "compressed": ["user"],
                    "rows": {"train": 7, "validation": 1, "test": 2}, "positive_rate_test": 0.5,
                    "info": {"split": "random", "bad_lines": {"a.libfm": 3, "b.libfm": 0}}},
        "environment": {"cpu": "x", "cores": 1, "torch": "t", "torch_threads": 1, "date": "d"},
        "config": {"model": {"dim": 4}, "seeds": [0], "bootstrap": 10},
        "reference_bytes": 100, "summary": [],
    }
    assert "3 malformed lines skipped (a.libfm 3)" in to_markdown(results)
    results["dataset"]["info"]["bad_lines"] = {"a.libfm": 0}
    assert "malformed" not in to_markdown(results)


def test_demo_report_states_skipped_lines():
    from analysis.pipeline import DemoSettings, _describe_data

    ds = {"name": "frappe", "info": {"files": ["a.libfm"], "split": "random", "bad_lines": {"a.libfm": 1}},
          "rows": {"train": 7, "validation": 1, "test": 2}, "compressed": ["user"], "vocab": {"user": 10},
          "features": ["user"], "budget": 0.1, "budget_bytes": 10, "reference_bytes": 100}
    assert "1 malformed line skipped (a.libfm 1)." in _describe_data(ds, DemoSettings.default(True, real=True), 0)
