"""`embcompress mine`: logs -> stats file, one summary line per feature, exit codes."""

import numpy as np
import pytest

from embcompress.cli.main import main
from learned_hash import LogStats, mine


@pytest.fixture
def log(tmp_path):
    rng = np.random.default_rng(2)
    p = tmp_path / "log.csv"
    lines = ["user,item,y"] + [f"{rng.integers(0, 20)},{rng.zipf(1.5) % 100},{rng.integers(0, 2)}" for _ in range(500)]
    p.write_text("\n".join(lines) + "\nbad,line\n")
    return p


def test_mine_writes_stats_and_summarizes(log, tmp_path, capsys):
    out = tmp_path / "s.embc"
    main(["mine", str(log), "--features", "user,item", "--label", "y", "--pair", "user:item",
          "--on-bad-line", "skip", "--min-count", "1", "--memory-limit", "256MB", "--out", str(out), "--quiet"])
    lines = capsys.readouterr().out.strip().splitlines()
    stats = LogStats.load(out, verify="full")
    assert stats == mine(log, features=["user", "item"], label="y", pairs=["user:item"], on_bad_line="skip")
    assert stats.bad_lines == 1 and stats.pairs == [("user", "item")]
    s = stats.summary("item")
    assert lines[1] == f"item: {s['ids']:,} ids seen, 500 accesses, {s['once_share']:.1%} of ids seen once"
    assert lines[2].startswith("500 rows mined on duckdb, 1 malformed lines skipped -> ")


def test_mine_errors_exit_with_one_line(log, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["mine", str(log), "--features", "user,nope", "--out", str(tmp_path / "s.embc"), "--quiet"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "no column 'nope'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        main(["mine", str(log), "--features", "user", "--out", str(tmp_path / "s.embc"), "--quiet"])
    assert exc.value.code == 1 and "on_bad_line='skip'" in capsys.readouterr().err
