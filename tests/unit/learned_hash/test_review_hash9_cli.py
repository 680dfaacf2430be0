"""Review of `embcompress fit-hash` (round 9): what it reads is checked before it builds on it,
and every per-feature mistake is found before the first map is written."""

import numpy as np
import pytest

from embcompress.cli.main import main
from embcompress.idmap import IdMap
from learned_hash import LogStats


@pytest.fixture(scope="module")
def stats_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 4000
    cols = {"a": rng.zipf(1.3, n) % 400, "b": rng.integers(0, 40, n), "c": rng.zipf(1.5, n) % 90}
    stats = LogStats.from_rows(cols, features=["a", "b", "c"], pairs=[("a", "b"), ("a", "c"), ("b", "c")])
    return stats.save(tmp_path_factory.mktemp("stats") / "log.stats")


def _flip_a_row(path):
    """Change one stored row of the map file to another valid row (a bit flip on disk)."""
    from embcompress.container import read_artifact

    sections = read_artifact(path, kind="idmap", verify="header").header["sections"]
    section = next(s for s in sections if s["name"] == "vals")
    m = IdMap.load(path)
    vals = np.array(m.parts()["vals"])
    empty = np.iinfo(vals.dtype).max
    slot = int(np.flatnonzero((vals != empty) & (vals ^ 1 != empty) & ((vals ^ 1) < m.n_rows))[0])
    del m
    data = bytearray(path.read_bytes())
    data[section["offset"] + slot * vals.dtype.itemsize] ^= 1
    path.write_bytes(bytes(data))


def test_a_corrupted_earlier_map_is_refused_not_refitted_on(stats_path, tmp_path, capsys):
    old = tmp_path / "old"
    main(["fit-hash", str(stats_path), "-f", "a", "--rows", "64", "--out-dir", str(old), "--quiet"])
    _flip_a_row(old / "a.idmap")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(stats_path), "-f", "a", "--rows", "64", "--previous-dir", str(old),
              "--out-dir", str(tmp_path / "new"), "--quiet"])
    assert exc.value.code == 3  # integrity failure
    err = capsys.readouterr().err
    assert "a.idmap" in err and "checksum" in err
    assert not (tmp_path / "new" / "a.idmap").exists()


@pytest.mark.parametrize("args,flag", [
    (["--rows-per-feature", "c=0"], "--rows"),             # no rows for the last feature
    (["--rows-per-feature", "c=6", "--hot-rows", "8"], "--hot-rows"),  # more hot rows than it has
    (["--rows-per-feature", "c=6", "--max-share", "0.1"], "--max-share"),  # 6 rows cannot carry it
])
def test_a_mistake_for_the_last_feature_is_found_before_the_first_map_is_written(stats_path, tmp_path, capsys,
                                                                                    args, flag):
    # README: every --feature is checked before the first map is fitted, so a mistake in the last
    # one does not leave --out-dir half written; a row count, hot count or traffic cap that only
    # the last feature's rows refuse stopped the command after 'a' was fitted and written.
    out = tmp_path / "maps"
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(stats_path), "-f", "a", "-f", "c", "--rows", "64", *args,
              "--out-dir", str(out), "--quiet"])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert flag in captured.err and captured.out == ""
    assert not (out / "a.idmap").exists()


def test_the_checks_up_front_let_good_runs_through(stats_path, tmp_path, capsys):
    out = tmp_path / "maps"
    main(["fit-hash", str(stats_path), "-f", "a", "-f", "c", "--rows", "64", "--rows-per-feature", "c=12",
          "--hot-rows", "4", "--max-share", "0.2", "--out-dir", str(out), "--quiet"])
    assert IdMap.load(out / "c.idmap").n_rows == 12 and IdMap.load(out / "a.idmap").hot_rows == 4


def test_a_feature_without_pairs_is_found_before_the_first_map_is_written(tmp_path, capsys):
    # 'd' was mined without a pair: the learned fit of 'd' refused it only after 'a' was written
    rng = np.random.default_rng(2)
    cols = {"a": rng.zipf(1.3, 3000) % 300, "b": rng.integers(0, 30, 3000), "d": rng.integers(0, 200, 3000)}
    stats = LogStats.from_rows(cols, features=["a", "b", "d"], pairs=[("a", "b")])
    path = stats.save(tmp_path / "log.stats")
    out = tmp_path / "maps"
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(path), "-f", "a", "-f", "d", "--rows", "32", "--out-dir", str(out), "--quiet"])
    assert exc.value.code == 1
    assert "'d' has no mined co-occurrence pairs" in capsys.readouterr().err
    assert not (out / "a.idmap").exists()
    # a feature whose ids all own rows embeds none, and needs no pair (as before)
    from learned_hash.build import check_fit_hash, fit_hash

    check_fit_hash(stats, "d", 400, hot_rows=200)
    m = fit_hash(stats, "d", 400, hot_rows=200)
    assert m.n_mapped == m.hot_rows == stats.frequencies("d")[0].size


def test_rows_given_twice_for_a_feature_are_refused(stats_path, tmp_path, capsys):
    # the last of '--rows-per-feature a=16 --rows-per-feature a=64' won without a word, as
    # '--feature a' twice is refused
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(stats_path), "-f", "a", "--rows-per-feature", "a=16", "--rows-per-feature", "a=64",
              "--out-dir", str(tmp_path / "maps"), "--quiet"])
    assert exc.value.code == 1
    assert "--rows-per-feature" in capsys.readouterr().err and not (tmp_path / "maps").exists()


def test_a_label_aware_fit_on_session_sequences_is_refused_before_any_map_is_written(tmp_path, capsys):
    # '--partner app --embedding label_aware' is fine for 'channel' (mined with app) but asks
    # 'app' for its own session sequences, which are not split by label: refused only after
    # channel.idmap was written
    rng = np.random.default_rng(3)
    n = 3000
    cols = {"app": rng.integers(0, 60, n), "channel": rng.integers(0, 80, n), "user": rng.integers(0, 200, n),
            "t": np.arange(n), "y": rng.integers(0, 2, n)}
    path = LogStats.from_rows(cols, features=["app", "channel"], label="y", pairs=[("app", "channel")],
                              sequence_key="user", time_key="t").save(tmp_path / "log.stats")
    out = tmp_path / "maps"
    with pytest.raises(SystemExit) as exc:
        main(["fit-hash", str(path), "-f", "channel", "-f", "app", "--partner", "app", "--embedding", "label_aware",
              "--rows", "40", "--out-dir", str(out), "--quiet"])
    assert exc.value.code == 1
    assert "not split by label" in capsys.readouterr().err
    assert not (out / "channel.idmap").exists()
