"""Review 18 of export (the library function and `embcompress export`): each test failed before
its fix."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("typer")
nn = torch.nn

import embcompress  # noqa: E402
from embcompress import open_table  # noqa: E402
from embcompress.cli.main import main  # noqa: E402
from embcompress.errors import ConfigError  # noqa: E402
from embcompress.export import find_tables  # noqa: E402
from embcompress.nn import swap_embedding_bags  # noqa: E402


def run(argv, capsys):
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def _sd(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a_emb.weight": torch.randn(6, 4, generator=g), "b_emb.weight": torch.randn(5, 4, generator=g)}


def _snapshot(folder):
    """What a folder holds: file name -> bytes (a folder's name -> None)."""
    return {p.name: (p.read_bytes() if p.is_file() else None) for p in sorted(folder.iterdir())}


# -- 1. a destination that cannot be replaced: refused before any table moves, naming it ---------


def test_a_folder_in_a_tables_place_is_refused_before_any_table_moves(tmp_path):
    # a_emb moved into place, then the rename onto the folder b_emb.embc failed: a half-done
    # export (a new a_emb beside the old export.json), with an error naming the hidden staging file
    out = tmp_path / "out"
    embcompress.export(_sd(0), fmt="fp32", out_dir=out)
    (out / "b_emb.embc").unlink()
    (out / "b_emb.embc").mkdir()
    before = _snapshot(out)
    with pytest.raises(ConfigError) as info:
        embcompress.export(_sd(1), fmt="fp32", out_dir=out)
    msg = str(info.value)
    assert str(out / "b_emb.embc") in msg and "folder" in msg, msg
    assert ".export-" not in msg, msg
    assert _snapshot(out) == before  # (no staging folder left either)


def test_a_pipe_in_a_tables_place_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "b_emb.embc")
    with pytest.raises(ConfigError, match=r"b_emb\.embc.*not a regular file"):
        embcompress.export(_sd(), fmt="fp32", out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["b_emb.embc"]


def test_the_command_names_the_destination(tmp_path, capsys):
    torch.save(_sd(), tmp_path / "sd.pt")
    (tmp_path / "out" / "a_emb.embc").mkdir(parents=True)
    code, _, err = run(["export", tmp_path / "sd.pt", "--fmt", "fp32", "--out-dir", tmp_path / "out", "--quiet",
                        "--mode", "sum"], capsys)
    assert code == 1
    assert str(tmp_path / "out" / "a_emb.embc") in err and ".export-" not in err, err
    assert err.count("\n") == 1, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_emb.embc"]


def test_a_move_that_fails_names_the_destination(tmp_path, monkeypatch):
    # (a folder made after the checks: the rename's error named the hidden staged file)
    import sys

    monkeypatch.setattr(sys.modules["embcompress.export"], "_check_replaceable", lambda paths: None)
    (tmp_path / "out" / "b_emb.embc").mkdir(parents=True)
    with pytest.raises(OSError) as info:
        embcompress.export(_sd(), fmt="fp32", out_dir=tmp_path / "out")
    assert info.value.filename == str(tmp_path / "out" / "b_emb.embc") and ".export-" not in str(info.value)
    assert not list((tmp_path / "out").glob(".export-*"))


# -- 2. export.json: checked up front and moved with the tables ---------------------------------


def test_an_export_json_that_cannot_be_written_leaves_the_tables_as_they_were(tmp_path):
    # the tables were replaced, then writing export.json (a folder) failed: new tables beside no report
    out = tmp_path / "out"
    embcompress.export(_sd(0), fmt="fp32", out_dir=out)
    (out / "export.json").unlink()
    (out / "export.json").mkdir()
    before = _snapshot(out)
    with pytest.raises(ConfigError, match=r"export\.json.*folder"):
        embcompress.export(_sd(1), fmt="fp32", out_dir=out)
    assert _snapshot(out) == before


def test_export_json_names_the_final_paths(tmp_path):
    out = tmp_path / "out"
    report = embcompress.export(_sd(), fmt="fp32", out_dir=out)
    written = json.loads((out / "export.json").read_text())
    assert [e["path"] for e in written] == [e["path"] for e in report] == [str(out / "a_emb.embc"),
                                                                           str(out / "b_emb.embc")]
    assert sorted(p.name for p in out.iterdir()) == ["a_emb.embc", "b_emb.embc", "export.json"]


# -- 3. a table named by its weight is written under its module's name --------------------------


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb_user = nn.EmbeddingBag(10, 4, mode="sum")
        self.emb_item = nn.EmbeddingBag(8, 4, mode="sum")
        self.head = nn.Linear(4, 1)


def test_a_table_named_by_its_state_dict_key_is_served_by_swap(tmp_path, capsys):
    # --table emb_user.weight wrote emb_user.weight.embc, which swap_embedding_bags (looking for
    # emb_user.embc, the module's name, as export names a table it finds) did not find
    m = _Model()
    torch.save(m.state_dict(), tmp_path / "sd.pt")
    code, _, err = run(["export", tmp_path / "sd.pt", "--fmt", "fp32", "--out-dir", tmp_path / "out", "--quiet",
                        "--mode", "sum", "--table", "emb_user.weight", "--table", "emb_item.weight"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["emb_item.embc", "emb_user.embc", "export.json"]
    assert swap_embedding_bags(m, tmp_path / "out") == ["emb_user", "emb_item"]


@pytest.mark.parametrize("source", ["module", "state_dict"])
def test_a_weights_name_gives_the_modules_name(tmp_path, source):
    m = _Model()
    src = m if source == "module" else m.state_dict()
    report = embcompress.export(src, fmt="fp32", out_dir=tmp_path, tables=["emb_user.weight"], mode="sum")
    assert [e["name"] for e in report] == ["emb_user"]
    assert report[0]["path"] == str(tmp_path / "emb_user.embc")
    assert sorted(find_tables(src, tables=["emb_user.weight"])) == ["emb_user"]
    # an id map (and counts) keyed by the name given in tables= still reach the table
    idm = embcompress.IdMap.from_arrays(np.arange(20), np.arange(20) % 10, 10)
    (e,) = embcompress.export(src, fmt="fp32", out_dir=tmp_path / "m", tables=["emb_user.weight"], mode="sum",
                              id_maps={"emb_user.weight": idm}, frequencies={"emb_user.weight": np.ones(10)})
    assert open_table(e["path"]).id_map is not None
    # the same table named twice is refused still, by the names given
    with pytest.raises(ConfigError, match=r"'emb_user' and 'emb_user.weight' are the same tensor"):
        embcompress.export(src, fmt="fp32", out_dir=tmp_path / "x", tables=["emb_user", "emb_user.weight"])


# -- 4. an unknown format names --fmt ----------------------------------------------------------


def test_an_unknown_format_names_the_fmt_option(tmp_path, capsys):
    torch.save(_sd(), tmp_path / "sd.pt")
    code, _, err = run(["export", tmp_path / "sd.pt", "--fmt", "bogus", "--out-dir", tmp_path / "out"], capsys)
    assert code == 1
    assert "Unknown format 'bogus'" in err and "(on the command line: --fmt)" in err, err
    with pytest.raises(ConfigError) as info:
        embcompress.export(_sd(), fmt="bogus", out_dir=tmp_path / "o")
    assert info.value.param == "fmt"


# -- 5. --norm-type without --max-norm ----------------------------------------------------------


def test_norm_type_without_max_norm_is_refused(tmp_path, capsys):
    # it was ignored without a word (the default 2.0 could not be told from a value typed)
    torch.save(_sd(), tmp_path / "sd.pt")
    code, _, err = run(["export", tmp_path / "sd.pt", "--fmt", "fp32", "--out-dir", tmp_path / "out", "--quiet",
                        "--norm-type", "1"], capsys)
    assert code == 1
    assert "--max-norm" in err and "--norm-type" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
    # with --max-norm, --norm-type is taken; without either, nothing is scaled (norm_type 2 by default)
    code, _, err = run(["export", tmp_path / "sd.pt", "--fmt", "fp32", "--out-dir", tmp_path / "ok", "--quiet",
                        "--max-norm", "0.5"], capsys)
    assert code == 0, err
    assert open_table(tmp_path / "ok" / "a_emb.embc").header["inputs"]["norm_type"] == 2.0
