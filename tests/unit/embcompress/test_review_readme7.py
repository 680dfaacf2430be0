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
