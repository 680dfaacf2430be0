"""Review of `embcompress fit-hash` (round 5): '~' in its paths means the home folder, as in
`embcompress mine --out` ('--out-dir=~/maps' reaches the command unexpanded)."""

import numpy as np

from embcompress.cli.main import main
from embcompress.idmap import IdMap
from learned_hash import LogStats


def test_tilde_paths_are_the_home_folder(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "out").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    rng = np.random.default_rng(0)
    cols = {"a": rng.integers(0, 30, 400), "b": rng.integers(0, 10, 400)}
    LogStats.from_rows(cols, features=["a", "b"], pairs=[("a", "b")]).save(home / "out" / "log.stats")
    main(["fit-hash", "~/out/log.stats", "-f", "a", "--rows", "8", "--out-dir=~/maps", "--quiet"])
    assert IdMap.load(home / "maps" / "a.idmap").n_rows == 8
    main(["fit-hash", "~/out/log.stats", "-f", "a", "--rows", "8", "--previous-dir=~/maps",
          "--out-dir=~/maps2", "--quiet"])
    assert "0 seen and 0 stored ids moved" in capsys.readouterr().out
    assert not (work / "~").exists()
