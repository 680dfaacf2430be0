"""Review of `embcompress mine` (round 5): an --out that names one of the logs is refused
before mining, so the stats file never replaces the log it was mined from."""

import pytest

from embcompress.cli.main import main


def test_out_naming_a_log_is_refused_and_the_log_kept(tmp_path, capsys, monkeypatch):
    log = tmp_path / "day_0.csv"
    text = "a,b\n1,2\n3,4\n"
    log.write_text(text)
    monkeypatch.chdir(tmp_path)
    for out in (str(log), "day_0.csv", "./day_0.csv"):
        with pytest.raises(SystemExit) as exc:
            main(["mine", "day_0.csv", "--features", "a", "--out", out, "--quiet"])
        assert exc.value.code == 1
        err = capsys.readouterr().err
        assert "--out" in err and "day_0.csv" in err and len(err.strip().splitlines()) == 1
        assert log.read_text() == text


def test_out_matched_by_a_log_glob_is_refused(tmp_path, capsys):
    (tmp_path / "day_0.csv").write_text("a,b\n1,2\n")
    (tmp_path / "day_1.csv").write_text("a,b\n3,4\n")
    with pytest.raises(SystemExit) as exc:
        main(["mine", str(tmp_path / "day_*.csv"), "--features", "a", "--out", str(tmp_path / "day_1.csv"), "--quiet"])
    assert exc.value.code == 1 and "one of the logs" in capsys.readouterr().err
    assert (tmp_path / "day_1.csv").read_text() == "a,b\n3,4\n"
    # a new file beside the logs is fine
    main(["mine", str(tmp_path / "day_*.csv"), "--features", "a", "--out", str(tmp_path / "s.embc"), "--quiet"])
    assert "2 rows mined" in capsys.readouterr().out


def test_a_quoted_glob_of_logs_under_the_home_folder(tmp_path, capsys, monkeypatch):
    # a glob is quoted so that mine expands it ('~/logs/day_*.csv'): the '~' stayed literal and
    # the glob matched no files
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "day_0.csv").write_text("a,b\n1,2\n")
    (tmp_path / "logs" / "day_1.csv").write_text("a,b\n3,4\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    main(["mine", "~/logs/day_*.csv", "--features", "a", "--out", str(tmp_path / "s.embc"), "--quiet"])
    assert "2 rows mined" in capsys.readouterr().out
