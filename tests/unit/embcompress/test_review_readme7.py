"""Review of README.md (round 7): a reader running its commands from their own folder.

`embcompress evaluate examples/sweeps/frappe.json` reads the config's dataset path
("../shared/data/frappe") from the current folder, so it finds the data only when run from the
repository's root. Run from anywhere else, the error said only "Point 'path' at the data": it
named neither the folder a relative path is read from nor --data, the flag that overrides it.
"""

import os
from pathlib import Path

import pytest

from embcompress.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
FRAPPE_SWEEP = ROOT / "examples" / "sweeps" / "frappe.json"


def test_missing_relative_data_path_names_the_current_folder_and_data(tmp_path, monkeypatch):
    from analysis.ctr.datasets import load_dataset
    from analysis.ctr.sweep import DatasetConfig

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        load_dataset(DatasetConfig(name="frappe", path="../shared/data/frappe"))
    msg = str(exc.value)
    assert "'../shared/data/frappe'" in msg and "does not exist" in msg
    assert str(tmp_path) in msg and "current folder" in msg  # where a relative path is read from
    assert "--data" in msg  # the command line's way round it


def test_missing_absolute_data_path_does_not_talk_of_the_current_folder(tmp_path, monkeypatch):
    from analysis.ctr.datasets import load_dataset
    from analysis.ctr.sweep import DatasetConfig

    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere" / "frappe"
    with pytest.raises(ConfigError) as exc:
        load_dataset(DatasetConfig(name="frappe", path=str(missing)))
    msg = str(exc.value)
    assert str(missing) in msg and "current folder" not in msg and "--data" in msg


def test_evaluate_from_another_folder_says_how_to_find_the_data(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("typer")
    from embcompress.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert not (tmp_path / "../shared/data/frappe").exists()
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(FRAPPE_SWEEP), "--out", "report", "--quiet"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and os.fspath(tmp_path) in err[0] and "--data" in err[0], err


# --- fit-hash --previous-dir --------------------------------------------------------------------
# The README's refit: `embcompress fit-hash ... --feature C3 --feature C4 ... --previous-dir DIR`.
# The earlier maps were opened one feature at a time, just before that feature's fit: a map missing
# from DIR (a feature new in this run), or one fitted into another row count, stopped the command
# only after every feature before it had been fitted and written, leaving --out-dir half refitted,
# and a missing file exited 3 (a damaged artifact) instead of 1 (bad input).

STATS = ROOT / "tests" / "fixtures" / "logstats" / "small_v1.logstats"  # features user, item


def _fit(*args):
    from embcompress.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(STATS), *map(str, args), "--quiet"])
    return exc.value.code


def test_previous_dir_without_a_features_map_stops_before_any_fit(tmp_path, capsys):
    pytest.importorskip("typer")
    from embcompress.cli.main import main

    main(["fit-hash", str(STATS), "-f", "user", "--rows", "3", "--out-dir", str(tmp_path / "old"), "--quiet"])
    capsys.readouterr()
    code = _fit("-f", "user", "-f", "item", "--rows", "3", "--previous-dir", tmp_path / "old",
                "--out-dir", tmp_path / "new")
    assert code == 1
    out, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert len(err) == 1 and "'item'" in err[0] and str(tmp_path / "old" / "item.idmap") in err[0], err
    assert "--previous-dir" in err[0]
    assert out == "" and not list((tmp_path / "new").glob("*.idmap"))  # nothing fitted, nothing written


def test_previous_map_of_another_row_count_stops_before_any_fit(tmp_path, capsys):
    pytest.importorskip("typer")
    from embcompress.cli.main import main

    main(["fit-hash", str(STATS), "-f", "user", "-f", "item", "--rows", "3", "--out-dir", str(tmp_path / "old"), "--quiet"])
    capsys.readouterr()
    code = _fit("-f", "user", "-f", "item", "--rows", "3", "--rows-per-feature", "item=2",
                "--previous-dir", tmp_path / "old", "--out-dir", tmp_path / "new")
    assert code == 1
    out, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert len(err) == 1 and "'item'" in err[0] and str(tmp_path / "old" / "item.idmap") in err[0], err
    assert "3 rows" in err[0] and "2" in err[0]
    assert out == "" and not list((tmp_path / "new").glob("*.idmap"))


def test_previous_dir_with_every_map_still_refits(tmp_path, capsys):
    pytest.importorskip("typer")
    from embcompress.cli.main import main

    main(["fit-hash", str(STATS), "-f", "user", "-f", "item", "--rows", "3", "--out-dir", str(tmp_path / "old"), "--quiet"])
    capsys.readouterr()
    main(["fit-hash", str(STATS), "-f", "user", "-f", "item", "--rows", "3", "--seed", "1",
          "--previous-dir", str(tmp_path / "old"), "--out-dir", str(tmp_path / "new"), "--quiet"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(" ids moved -> " in line for line in lines)
    assert sorted(p.name for p in (tmp_path / "new").glob("*.idmap")) == ["item.idmap", "user.idmap"]


# --- a TalkingData folder -----------------------------------------------------------------------
# The evaluate configs point at a TalkingData folder and the demo's --data takes one. The loader
# read the folder's first *.csv by name and ignored the rest: Kaggle's TalkingData download holds
# sample_submission.csv beside train.csv, so it read the submission template and failed with
# "has no column 'ip'", naming a file the user never chose. (A Criteo folder already refuses
# anything but one train, one dev and one test file.)

_TD_HEADER = "ip,app,device,os,channel,click_time,attributed_time,is_attributed\n"


def _talkingdata_csv(path, n=40):
    lines = [f"{i % 7},{i % 3},1,{i % 5},{i % 4},2017-11-07 09:{i // 60:02d}:{i % 60:02d},,{int(i % 9 == 0)}\n"
             for i in range(n)]
    path.write_text(_TD_HEADER + "".join(lines))
    return path


def test_talkingdata_folder_with_several_csv_files_is_refused_by_name(tmp_path):
    from analysis.ctr.datasets import load_talkingdata

    _talkingdata_csv(tmp_path / "train.csv")
    (tmp_path / "sample_submission.csv").write_text("click_id,is_attributed\n0,0\n")
    with pytest.raises(ConfigError) as exc:
        load_talkingdata(tmp_path)
    msg = str(exc.value)
    assert "sample_submission.csv" in msg and "train.csv" in msg and str(tmp_path) in msg


def test_talkingdata_folder_with_one_csv_and_a_file_still_load(tmp_path):
    from analysis.ctr.datasets import load_talkingdata

    _talkingdata_csv(tmp_path / "train_sample.csv")
    (tmp_path / "SOURCE.md").write_text("where the data came from\n")  # not a CSV: not a candidate
    one = load_talkingdata(tmp_path)
    assert one.info["files"] == ["train_sample.csv"]
    assert load_talkingdata(tmp_path / "train_sample.csv").info["files"] == ["train_sample.csv"]
