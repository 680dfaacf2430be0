"""export, review: which tensors are tables (Linear layers, parameters used with F.embedding,
a bare embedding module, DDP prefixes), file names that collide, padding_idx tables."""

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import embcompress  # noqa: E402
from embcompress import ConfigError, open_table  # noqa: E402
from embcompress.export import find_tables  # noqa: E402


def test_state_dict_linear_layer_with_emb_in_its_name_is_not_a_table():
    # A Linear layer's weight is 2-D float too, but it has a bias beside it; an embedding never does.
    torch.manual_seed(0)
    sd = {"emb.user.weight": torch.randn(10, 4), "user_embedding_proj.weight": torch.randn(4, 4),
          "user_embedding_proj.bias": torch.randn(4)}
    assert sorted(find_tables(sd)) == ["emb.user"]
    # named explicitly, it is still exported
    assert sorted(find_tables(sd, tables=["user_embedding_proj"])) == ["user_embedding_proj"]


def test_a_bare_embedding_module_is_exported_under_the_name_its_state_dict_uses(tmp_path):
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(10, 4, mode="sum")
    report = embcompress.export(bag, fmt="fp32", out_dir=tmp_path)
    assert [e["name"] for e in report] == ["weight"]
    np.testing.assert_array_equal(open_table(tmp_path / "weight.embc").table.data.view(np.float32).reshape(10, 4),
                                  bag.weight.detach().numpy())
    # the same name as its state dict names it
    assert sorted(find_tables(bag.state_dict(), tables=["weight"])) == ["weight"]


class RawTables(nn.Module):
    """A DLRM-style model whose tables are parameters used with F.embedding / F.embedding_bag."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.user_table = nn.Parameter(torch.randn(12, 4))
        self.sparse = nn.Module()
        self.sparse.item = nn.Parameter(torch.randn(9, 4))
        self.mlp = nn.Linear(4, 1)


def test_tables_may_name_parameters_of_a_model(tmp_path):
    m = RawTables()
    found = find_tables(m, tables=["user_table", "sparse.item"])
    np.testing.assert_array_equal(found["user_table"], m.user_table.detach().numpy())
    np.testing.assert_array_equal(found["sparse.item"], m.sparse.item.detach().numpy())
    report = embcompress.export(m, fmt="fp32", out_dir=tmp_path, tables=["user_table", "sparse.item"])
    assert {e["name"]: e["bytes_before"] for e in report} == {"user_table": 12 * 4 * 4, "sparse.item": 9 * 4 * 4}
    # the model and its state dict name the same tables alike
    assert sorted(find_tables(m.state_dict(), tables=["user_table", "sparse.item"])) == ["sparse.item", "user_table"]
    with pytest.raises(ConfigError, match="'tables' parameter.*'nope'"):
        find_tables(m, tables=["nope"])


def test_ddp_prefix_of_a_state_dict_is_dropped_so_names_match_the_model(tmp_path):
    torch.manual_seed(0)
    m = nn.ModuleDict({"emb_user": nn.EmbeddingBag(10, 4), "mlp": nn.Linear(4, 1)})
    ddp_sd = {"module." + k: v for k, v in m.state_dict().items()}
    assert sorted(find_tables(ddp_sd)) == ["emb_user"] == sorted(find_tables(m))
    assert sorted(find_tables(ddp_sd, tables=["emb_user"])) == ["emb_user"]
    assert sorted(find_tables(ddp_sd, tables=["module.emb_user"])) == ["module.emb_user"]
    # torch.compile's wrapper prefix likewise
    assert sorted(find_tables({"_orig_mod." + k: v for k, v in m.state_dict().items()})) == ["emb_user"]
    # a DataParallel-wrapped model too
    assert sorted(find_tables(nn.DataParallel(m))) == ["emb_user"]
    report = embcompress.export(ddp_sd, fmt="fp32", out_dir=tmp_path)
    assert [e["name"] for e in report] == ["emb_user"] and (tmp_path / "emb_user.embc").is_file()
    # a prefix only some keys have is part of the names
    mixed = {"module.emb.weight": torch.ones(3, 2), "emb.weight": torch.ones(4, 2)}
    assert sorted(find_tables(mixed)) == ["emb", "module.emb"]


def test_names_that_differ_only_in_case_are_refused_before_writing(tmp_path):
    # on a case-insensitive file system (macOS, Windows) both would be one file, the second
    # silently replacing the first
    m = nn.ModuleDict({"User": nn.EmbeddingBag(10, 4), "user": nn.EmbeddingBag(12, 4)})
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="'User'.*'user'|'user'.*'User'"):
        embcompress.export(m, fmt="fp32", out_dir=out)
    assert not out.exists()


def test_padding_idx_table_is_exported_and_recorded(tmp_path):
    # nn.EmbeddingBag(padding_idx=...) skips its padding id; the file records it, and bags served
    # from it skip it too (test_padding.py), so there is nothing to warn about.
    torch.manual_seed(0)
    m = nn.ModuleDict({"emb": nn.EmbeddingBag(10, 4, mode="mean", padding_idx=0), "other": nn.Embedding(5, 4)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = embcompress.export(m, fmt="fp32", out_dir=tmp_path)
    by = {e["name"]: e for e in report}
    assert by["emb"]["padding_idx"] == 0 and "padding_idx" not in by["other"]
    assert json.loads((tmp_path / "export.json").read_text())[0]["padding_idx"] == 0
    # nn.Embedding's padding_idx only stops its gradient: its lookups return the padding row as
    # any other, so pooling them (or serving them) includes it and there is nothing to warn about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = embcompress.export(nn.ModuleDict({"emb": nn.Embedding(5, 4, padding_idx=0)}), fmt="fp32",
                                    out_dir=tmp_path / "b")
    assert "padding_idx" not in report[0]



def _cli(args, capsys):
    from embcompress.cli.main import main

    try:
        code = main(args) or 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_reads_the_state_dict_inside_a_training_checkpoint(tmp_path, capsys):
    # torch.save({"model": model.state_dict(), "epoch": 3}) is how many training loops save (and
    # Lightning's {"state_dict": ..., "optimizer_states": [...]}); the export asked the user to
    # save the state dict alone first, a second copy of a checkpoint that may be hundreds of GB
    torch.manual_seed(0)
    table = torch.randn(10, 4)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"emb_user.weight": table}, "epoch": 3,
                "optimizer": {"state": {0: {"exp_avg": torch.zeros(10, 4)}}, "param_groups": [{"lr": 0.1}]}}, path)
    code, out, err = _cli(["export", str(path), "--fmt", "fp32", "--out-dir", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 0, err
    assert "state dict under 'model'" in out
    np.testing.assert_array_equal(open_table(tmp_path / "out" / "emb_user.embc").table.data.view(np.float32).reshape(10, 4),
                                  table.numpy())


def test_cli_asks_which_state_dict_of_a_checkpoint_that_holds_several(tmp_path, capsys):
    torch.manual_seed(0)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"emb_user.weight": torch.randn(10, 4)}, "ema": {"emb_user.weight": torch.randn(10, 4)},
                "run": {"best": {"emb_user.weight": torch.randn(10, 4)}}}, path)
    code, _, err = _cli(["export", str(path), "--fmt", "fp32", "--out-dir", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 1 and "'model'" in err and "'ema'" in err and "--key" in err, err
    code, _, err = _cli(["export", str(path), "--key", "ema", "--fmt", "fp32", "--out-dir", str(tmp_path / "ema"), "--quiet"], capsys)
    assert code == 0, err
    # a nested one by its path; a key that is not there names those that are
    code, _, err = _cli(["export", str(path), "--key", "run.best", "--fmt", "fp32", "--out-dir", str(tmp_path / "b"),
                         "--quiet"], capsys)
    assert code == 0 and (tmp_path / "b" / "emb_user.embc").exists(), err
    code, _, err = _cli(["export", str(path), "--key", "modle", "--fmt", "fp32", "--out-dir", str(tmp_path / "x"), "--quiet"],
                        capsys)
    assert code == 1 and "--key" in err and "'modle'" in err and "'model'" in err, err
    code, _, err = _cli(["export", str(path), "--key", "run", "--fmt", "fp32", "--out-dir", str(tmp_path / "x"), "--quiet"],
                        capsys)
    assert code == 1 and "'run.best'" in err, err


class HyperParameters(dict):
    """A class of the training code's, as Lightning saves its hyper-parameters in a checkpoint."""


def test_cli_explains_a_checkpoint_holding_objects_of_the_training_code(tmp_path, capsys):
    # 'is not a readable torch state dict (UnpicklingError: Weights only load failed)' and exit 3,
    # the code of a damaged file: the file is whole, export only does not run its pickled code
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"emb.weight": torch.randn(5, 4)}, "hyper_parameters": HyperParameters(lr=0.1)}, path)
    code, _, err = _cli(["export", str(path), "--fmt", "fp32", "--out-dir", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 1, err
    assert "HyperParameters" in err and "weights_only=False" in err and "trust" in err and "torch.save(" in err, err


def test_an_embeddings_padding_row_is_left_out_of_the_folded_row_it_shares(tmp_path):
    # nn.Embedding(padding_idx=0) never trains row 0 (zeros); padding is often the most frequent
    # id, and in the frequency-weighted mean of a row it shares it pulled its partners to zero
    from embcompress import IdMap

    torch.manual_seed(0)
    emb = nn.Embedding(12, 4, padding_idx=0)
    weight = emb.weight.detach().numpy()
    ids = np.arange(12)
    freq = np.r_[10**6, np.arange(1, 12)]
    shared = np.r_[0, 1, 2, ids[3:] % 5]  # ids 0, 5 and 10 share row 0
    with pytest.warns(UserWarning, match=r"padding_idx=0.*row 0 with other ids.*a row of its own"):
        (e,) = embcompress.export(nn.ModuleDict({"emb": emb}), fmt="fp32", out_dir=tmp_path / "a",
                                  id_maps={"emb": IdMap.from_arrays(ids, shared, 5)}, frequencies={"emb": freq})
    t = open_table(e["path"])
    expect = (weight[[5, 10]].astype(np.float64) * freq[[5, 10], None]).sum(0) / freq[[5, 10]].sum()
    np.testing.assert_allclose(t.dequantize()[0], expect, rtol=1e-6)
    assert t.frequencies[0] == freq[[0, 5, 10]].sum()  # (its lookups are served by the row)
    # a row of its own: the padding row exactly, and nothing to warn about
    own = np.r_[0, 1 + ids[1:] % 4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (e,) = embcompress.export(nn.ModuleDict({"emb": emb}), fmt="fp32", out_dir=tmp_path / "b",
                                  id_maps={"emb": IdMap.from_arrays(ids, own, 5)}, frequencies={"emb": freq})
    assert np.array_equal(open_table(e["path"]).dequantize()[0], np.zeros(4, np.float32))
