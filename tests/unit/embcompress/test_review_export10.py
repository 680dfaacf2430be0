"""Review 10 of embcompress.export and `embcompress export`, as a demanding user exporting
trained models: each test names the defect it caught."""

import pytest

torch = pytest.importorskip("torch")

import embcompress  # noqa: E402
from embcompress import ConfigError  # noqa: E402
from tests.conftest import run_cli  # noqa: E402


# -- export -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, big", [("fp16", 1e6), ("int4_rowwise", 1e6), ("int8_rowwise", 3e38)])
def test_a_table_beyond_the_formats_range_is_refused_by_name_before_any_file(tmp_path, fmt, big):
    # The format's range was checked only as each table was quantized and written: the tables
    # before it were written and export.json was not, so the folder mixed this export's files
    # with an older export.json. The error named no table ("The table passed to quantize has
    # rows [0] ...") and told export's caller to pass nonfinite='nan_block', which export does
    # not take. Now refused before any file, naming the table and what to do.
    torch.manual_seed(0)
    sd = {"a_emb.weight": torch.randn(10, 8), "b_emb.weight": torch.randn(10, 8), "c_emb.weight": torch.randn(10, 8)}
    sd["b_emb.weight"][3, 1], sd["b_emb.weight"][3, 2] = big, -big  # (int8_rowwise: a range beyond float32's)
    sd["b_emb.weight"][7, 0], sd["b_emb.weight"][7, 5] = -big, big
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        embcompress.export(sd, fmt=fmt, out_dir=out, mode="sum")
    msg = str(info.value)
    assert "'b_emb'" in msg and fmt in msg and "[3, 7]" in msg, msg
    assert "nonfinite" not in msg, msg
    assert not out.exists()


def test_export_cli_on_a_state_dict_of_meta_tensors_names_no_option(tmp_path, capsys, monkeypatch):
    # The refusal named the 'tables' parameter, so the command added "(on the command line:
    # --table)": no --table was given, and none would load the weights.
    monkeypatch.chdir(tmp_path)
    torch.save({"emb_user.weight": torch.empty(10, 4, device="meta")}, "sd.pt")
    code, out = run_cli(["export", "sd.pt", "--fmt", "mxint8", "--out-dir", "out", "--quiet", "--mode", "sum"], capsys)
    assert code == 1
    assert "meta device" in out.err and "--table" not in out.err, out.err


def test_folding_leaves_the_padding_id_out_of_the_mean_of_its_row(tmp_path):
    # A bag's padding_idx row is zeros and never trained, and the served module leaves that raw
    # id out of its bags. Folded with the ids sharing its row, it still weighed in: with ids 0
    # (the padding) and 1 on one row, the row became W[1] / 2 and every bag with id 1 was served
    # half its trained row (with frequencies, as much as the padding's count weighed).
    import numpy as np

    from embcompress.formats import dequantize
    from embcompress.idmap import IdMap
    from embcompress.nn import MXEmbeddingBag
    from embcompress.tablefile import open_table

    torch.manual_seed(0)
    emb = torch.nn.EmbeddingBag(6, 8, mode="sum", padding_idx=0)
    W = emb.weight.detach().numpy().astype(np.float64)
    assert not W[0].any()
    # ids 0, 1 -> row 0; 2 -> row 1 (hot); 3, 4, 5 -> row 2
    idm = IdMap.from_arrays(np.arange(6), np.array([0, 0, 1, 2, 2, 2]), 3, fallback_rows=[2])
    freq = np.array([50, 3, 9, 1, 2, 5])
    for counts in (freq, None):
        out = tmp_path / ("f" if counts is not None else "eq")
        (entry,) = embcompress.export(torch.nn.ModuleDict({"user": emb}), fmt="fp32", id_maps={"user": idm},
                                      frequencies=None if counts is None else {"user": counts}, out_dir=out)
        t = open_table(entry["path"])
        got = dequantize(t.table)
        w = np.ones(6) if counts is None else counts.astype(np.float64)
        want = np.stack([W[1], W[2], (w[3] * W[3] + w[4] * W[4] + w[5] * W[5]) / (w[3] + w[4] + w[5])])
        np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-7)
        # the QSNR of the served rows: over the ids a bag serves (the padding id's is never served)
        served_rows, trained = got[[0, 1, 2, 2, 2]].astype(np.float64), W[1:]
        qsnr = 10 * np.log10((trained ** 2).sum() / ((trained - served_rows) ** 2).sum())
        assert entry["qsnr_vs_trained_db"] == pytest.approx(qsnr, rel=1e-9)
        if counts is not None:  # the padding's count is not the row's traffic either
            assert t.frequencies.tolist() == [3, 9, 8]
        served = MXEmbeddingBag.from_file(entry["path"])
        ids, offsets = torch.tensor([1, 0, 2, 0]), torch.tensor([0, 2])
        with torch.no_grad():
            assert torch.equal(served(ids, offsets), emb(ids, offsets))


def test_frequencies_and_tables_given_as_torch_tensors_of_any_kind_are_read(tmp_path):
    # Counts kept as a tensor that requires grad (or on the meta device) raised torch's raw
    # "Can't call numpy() on Tensor that requires grad"; a sparse table in a state dict raised
    # "can't convert Sparse layout tensor to numpy".
    import numpy as np

    from embcompress.formats import dequantize
    from embcompress.tablefile import open_table

    torch.manual_seed(0)
    w = torch.randn(10, 8)
    counts = torch.arange(10, dtype=torch.float32).requires_grad_()
    (entry,) = embcompress.export({"emb.weight": w.to_sparse()}, fmt="fp32", out_dir=tmp_path / "a",
                                  frequencies={"emb": counts})
    t = open_table(entry["path"])
    assert np.array_equal(dequantize(t.table), w.numpy())
    assert t.frequencies.tolist() == list(range(10))
    with pytest.raises(ConfigError, match="'frequencies' parameter of export.*meta device"):
        embcompress.export({"emb.weight": w}, fmt="fp32", out_dir=tmp_path / "b",
                           frequencies={"emb": torch.ones(10, device="meta")})
    assert not (tmp_path / "b").exists()


def test_no_tables_found_names_the_weights_that_may_be_tables(tmp_path, capsys, monkeypatch):
    # "export found no embedding tables ... Name them with tables=[...]" left the user to find
    # the names: a state dict of 'sparse.user.weight' (no 'emb' in it) needs --table sparse.user.
    nn = torch.nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.user = nn.Parameter(torch.randn(10, 4))  # a table used with F.embedding_bag
            self.fc = nn.Linear(4, 4, bias=False)

    with pytest.raises(ConfigError, match=r"found no embedding tables.*may be tables: user\.$"):
        embcompress.export(Model(), fmt="mxint8", out_dir=tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    torch.save({"sparse.user.weight": torch.randn(10, 4), "sparse.item.weight": torch.randn(5, 4),
                "fc.weight": torch.randn(3, 4), "fc.bias": torch.randn(3)}, "sd.pt")
    from embcompress.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["export", "sd.pt", "--fmt", "mxint8", "--out-dir", "out", "--quiet"])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert "may be tables: sparse.user, sparse.item." in err and "fc" not in err.split("may be tables")[1], err
    assert "--table" in err
