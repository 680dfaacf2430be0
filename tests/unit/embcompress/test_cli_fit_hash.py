import numpy as np
import pytest

from embcompress.cli.fit_hash import _parse_rows, fit_hash_files
from embcompress.cli.main import main
from embcompress.errors import ArtifactError, ConfigError
from embcompress.idmap import IdMap
from learned_hash.mining.stats import LogStats


@pytest.fixture(scope="module")
def stats_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 5000
    cols = {"a": rng.zipf(1.4, n) % 300, "b": rng.integers(0, 50, n), "c": rng.zipf(1.2, n) % 80, "y": rng.integers(0, 2, n)}
    stats = LogStats.from_rows(cols, features=["a", "b", "c"], label="y", pairs=[("a", "b"), ("a", "c"), ("b", "c")])
    return stats.save(tmp_path_factory.mktemp("stats") / "log.stats"), stats


def test_cli_writes_one_map_per_feature_and_summarizes(stats_file, tmp_path, capsys):
    path, stats = stats_file
    out = tmp_path / "maps"
    main(["fit-hash", str(path), "--feature", "a", "--feature", "b", "--rows", "40",
          "--rows-per-feature", "b=20", "--seed", "3", "--out-dir", str(out), "--quiet"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("a: ") and lines[1].startswith("b: ")
    a = IdMap.load(out / "a.idmap", verify="full")
    b = IdMap.load(out / "b.idmap")
    assert (a.n_rows, b.n_rows, a.seed) == (40, 20, 3)
    ids_seen = stats.frequencies("a")[0].size
    assert f"{ids_seen:,} ids seen -> 40 rows ({a.meta['hot_ids']} hot)" in lines[0]
    assert f"{a.meta['collision_share']:.1%} of accesses collide" in lines[0] and "map " in lines[0]
    assert a.inputs["stats_file"] == str(path)


def test_cli_baselines_and_refit(stats_file, tmp_path, capsys):
    path, _ = stats_file
    for method in ("hash", "frequency"):
        main(["fit-hash", str(path), "-f", "c", "--rows", "16", "--method", method, "--out-dir", str(tmp_path / method), "--quiet"])
        assert IdMap.load(tmp_path / method / "c.idmap").config["method"] == method
    main(["fit-hash", str(path), "-f", "c", "--rows", "16", "--method", "frequency", "--previous-dir",
          str(tmp_path / "frequency"), "--out-dir", str(tmp_path / "again"), "--quiet"])
    assert "0 seen and 0 stored ids moved" in capsys.readouterr().out


@pytest.mark.parametrize(
    "features, rows, match",
    [
        (["zzz"], {"zzz": 8}, "'feature' parameter of LogStats.frequencies"),
        (["a"], {"a": 0}, "'n_rows' parameter of fit_hash"),
        ([], {}, "at least one --feature"),
        (["a", "b", "a"], {"a": 8, "b": 8}, "--feature 'a' is given twice"),  # was fitted and written twice
    ],
)
def test_errors_name_the_problem(stats_file, tmp_path, features, rows, match):
    path, _ = stats_file
    with pytest.raises(ConfigError, match=match):
        list(fit_hash_files(path, features, rows, tmp_path))


def test_missing_stats_file_is_an_integrity_error(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        list(fit_hash_files(tmp_path / "nope", ["a"], {"a": 8}, tmp_path))


def test_library_function_and_row_parsing(stats_file, tmp_path):
    path, _ = stats_file
    seen = []
    out = list(fit_hash_files(path, ["b"], {"b": 10}, tmp_path, progress_for=lambda f: (lambda d, t: seen.append((f, d, t)))))
    assert out[0]["feature"] == "b" and out[0]["rows"] == 10 and seen and seen[-1][1] == seen[-1][2]
    assert _parse_rows(["a", "b"], 5, ["b=7"]) == {"a": 5, "b": 7}
    with pytest.raises(ConfigError, match="not given with --feature"):
        _parse_rows(["a"], 5, ["b=7"])
    with pytest.raises(ConfigError, match="FEATURE=N"):
        _parse_rows(["a"], 5, ["a:7"])
    with pytest.raises(ConfigError, match="No row count for feature 'a'"):
        _parse_rows(["a"], None, [])
    with pytest.raises(ConfigError, match="cannot name a file"):
        list(fit_hash_files(path, ["../x"], {"../x": 4}, tmp_path))


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["-f", "a", "--out-dir", "OUT"], 1, "No row count for feature 'a'"),
        (["-f", "a", "--rows", "8", "--method", "qr", "--out-dir", "OUT"], 1, "'method' parameter of fit_hash"),
    ],
)
def test_cli_errors_are_one_line_with_exit_codes(stats_file, tmp_path, capsys, args, code, message):
    path, _ = stats_file
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(path), *[a.replace("OUT", str(tmp_path)) for a in args]])
    err = capsys.readouterr().err
    assert exc.value.code == code and message in err and len(err.strip().splitlines()) == 1


def test_cli_missing_stats_file_is_bad_input_exit_1(tmp_path, capsys):
    # exit 3 means a damaged artifact (scripts running `verify` act on it); a wrong path is bad input
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(tmp_path / "nope"), "-f", "a", "--rows", "8", "--out-dir", str(tmp_path)])
    assert exc.value.code == 1 and "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--rows", "0"], "--rows or --rows-per-feature"),
        (["--rows", "8", "--hot-rows", "9"], "--hot-rows"),
        (["--rows", "8", "--max-share", "2"], "--max-share"),
        (["--rows", "8", "--threads", "0"], "--threads"),
        (["--rows", "8", "--method", "nope"], "--method"),
    ],
)
def test_cli_errors_name_the_flag_to_change(stats_file, tmp_path, capsys, args, flag):
    # the library's message names its parameter (n_rows of fit_hash); a command-line user needs the flag
    path, _ = stats_file
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(path), "-f", "a", *args, "--out-dir", str(tmp_path / "maps"), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and f"(on the command line: {flag})" in err, err
    assert not (tmp_path / "maps").exists()  # a refused run leaves no --out-dir behind


def test_cli_feature_not_mined_names_the_flag_and_leaves_no_folder(stats_file, tmp_path, capsys):
    path, _ = stats_file
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(path), "-f", "a", "-f", "C99", "--rows", "8", "--out-dir", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "'C99'" in err and "(on the command line: --feature)" in err, err
    assert not (tmp_path / "m").exists()


def test_demo_errors_name_the_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--seed", "-1", "--quick", "--quiet"])
    assert exc.value.code == 1 and "(on the command line: --seed)" in capsys.readouterr().err
