"""export: finding tables, folding full-size tables through an id map, report, files."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import embcompress  # noqa: E402
from embcompress import ConfigError, open_table  # noqa: E402
from embcompress.export import find_tables, fold_rows, qsnr_db  # noqa: E402
from embcompress.idmap import IdMap  # noqa: E402


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.user = torch.nn.EmbeddingBag(40, 16)
        self.sparse = torch.nn.ModuleDict({"item": torch.nn.Embedding(30, 8)})
        self.mlp = torch.nn.Linear(24, 4)


def test_find_tables_in_models_and_state_dicts():
    m = Model()
    assert sorted(find_tables(m)) == ["sparse.item", "user"]
    # a state dict has no module types: '*emb*' path components name the tables
    sd = {"emb_user.weight": torch.ones(4, 3), "embeddings.0.weight": torch.ones(5, 2, dtype=torch.float16),
          "mlp.weight": torch.ones(3, 3), "emb.bias": torch.ones(3), "emb_ids.weight": torch.ones(4, 3, dtype=torch.int64)}
    with pytest.warns(UserWarning, match="left out .* mlp"):  # mlp.weight: 2-D, no bias, no "emb"
        found = find_tables(sd)
    assert sorted(found) == ["emb_user", "embeddings.0"] and found["embeddings.0"].dtype == np.float32
    assert sorted(find_tables(sd, tables=["mlp"])) == ["mlp"]
    with pytest.raises(ConfigError, match="'tables' parameter"):
        find_tables(sd, tables=["nope"])
    with pytest.raises(ConfigError, match="nn.Module or a state dict"):
        find_tables([1, 2])


def test_export_model_writes_files_and_report(tmp_path):
    m = Model()
    report = embcompress.export(m, fmt="mxfp8_e4m3", out_dir=tmp_path)
    assert [e["name"] for e in report] == ["user", "sparse.item"]
    user = report[0]
    assert user["bytes_before"] == 40 * 16 * 4 and user["shape"] == [40, 16]
    t = open_table(user["path"], verify="full")
    w = m.user.weight.detach().numpy()
    assert t.fmt == "mxfp8_e4m3" and t.id_map is None
    # E4M3 steps are 1/8 relative; OCP floor scaling saturates the top of a block at 448 * 2^X (-12.5%)
    np.testing.assert_allclose(t.dequantize(), w, rtol=0.125, atol=1e-3)
    assert user["qsnr_db"] == pytest.approx(qsnr_db(w, t.dequantize()))
    assert 25 < user["qsnr_db"] < 40  # E4M3: 3 mantissa bits, about 6 dB per bit
    assert user["bytes_after"] == (tmp_path / "user.embc").stat().st_size
    assert user["compression"] == pytest.approx(user["bytes_before"] / user["bytes_after"])
    assert json.loads((tmp_path / "export.json").read_text())[1]["name"] == "sparse.item"
    # fp32 export is exact
    exact = embcompress.export(m.state_dict(), fmt="fp32", out_dir=tmp_path / "f", tables=["user"])
    assert exact[0]["qsnr_db"] == float("inf")


def test_fold_rows_is_frequency_weighted_and_keeps_hot_ids():
    w = np.array([[1.0, 0.0], [3.0, 4.0], [5.0, 8.0], [0.1, 0.2], [7.0, 7.0]], dtype=np.float32)
    rows = np.array([0, 0, 1, 2, 0])
    freq = np.array([1.0, 3.0, 9.0, 0.0, 0.0])
    table, wsum, counts = fold_rows(w, rows, 4, freq)
    # row 0: (1*[1,0] + 3*[3,4] + 0*[7,7]) / 4 = [2.5, 3]; rows 1, 2 have one member (copied);
    # row 3 has no member (zeros)
    np.testing.assert_array_equal(table, np.array([[2.5, 3.0], [5.0, 8.0], [0.1, 0.2], [0.0, 0.0]], np.float32))
    assert wsum.tolist() == [4.0, 9.0, 0.0, 0.0] and counts.tolist() == [3, 1, 1, 0]
    # members all of weight 0: their plain mean
    table, _, _ = fold_rows(w, rows, 4, np.zeros(5))
    np.testing.assert_allclose(table[0], [11 / 3, 11 / 3])


def test_export_folds_full_size_table_through_id_map(tmp_path):
    rng = np.random.default_rng(0)
    n_ids, n_rows, dim = 200, 20, 16
    # two "hot" ids own rows 0 and 1; the other ids share rows 2..19 in pairs of clusters
    centers = rng.standard_normal((n_rows, dim)).astype(np.float32)
    ids = np.arange(n_ids)
    assign = np.r_[0, 1, 2 + (ids[2:] % (n_rows - 2))]
    weight = centers[assign] + 0.01 * rng.standard_normal((n_ids, dim)).astype(np.float32)
    idm = IdMap.from_arrays(ids, assign, n_rows)
    freq = rng.integers(1, 50, n_ids)
    sd = {"emb.weight": torch.from_numpy(weight)}
    (e,) = embcompress.export(sd, fmt="fp32", id_maps={"emb": idm}, frequencies={"emb": freq}, out_dir=tmp_path)
    t = open_table(e["path"], verify="full")
    assert t.shape == (n_rows, dim) and e["trained_shape"] == [n_ids, dim]
    dec = t.dequantize()
    np.testing.assert_array_equal(dec[:2], weight[:2])  # hot ids keep their own rows exactly
    members = assign == 5
    expect = (weight[members].astype(np.float64) * freq[members, None]).sum(0) / freq[members].sum()
    np.testing.assert_allclose(dec[5], expect, rtol=1e-6)
    assert t.frequencies.tolist() == np.bincount(assign, weights=freq).astype(np.int64).tolist()
    np.testing.assert_array_equal(t.id_map.lookup(ids), assign)
    assert e["qsnr_db"] == float("inf") and 30 < e["qsnr_vs_trained_db"] < 50  # 1% noise: ~40 dB
    # a table already at the map's size is quantized as it is, with the map stored
    (e2,) = embcompress.export({"emb.weight": torch.from_numpy(centers)}, fmt="mxint8", id_maps={"emb": idm}, out_dir=tmp_path / "b")
    assert "qsnr_vs_trained_db" not in e2 and open_table(e2["path"]).id_map is not None


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"fmt": "mxfp3"}, "Unknown format"),
        ({"id_maps": {"nope": None}}, "keyed by table names"),
        ({"id_maps": {"emb": {1: 2}}}, "embcompress.IdMap"),
        ({"frequencies": {"emb": np.ones(3)}}, "one non-negative count per trained row"),
        ({"frequencies": {"emb": -np.ones(10)}}, "non-negative"),
    ],
)
def test_export_refuses_bad_input(tmp_path, kw, match):
    args = {"fmt": "mxint8", "out_dir": tmp_path, **kw}
    with pytest.raises(ConfigError, match=match):
        embcompress.export({"emb.weight": torch.ones(10, 4)}, **args)


def test_export_refuses_no_tables_and_nonfinite(tmp_path):
    with pytest.raises(ConfigError, match="found no embedding tables"):
        embcompress.export({"fc.weight": torch.ones(3, 3)}, fmt="mxint8", out_dir=tmp_path)
    bad = torch.ones(4, 4)
    bad[1, 1] = float("nan")
    with pytest.raises(ConfigError, match="non-finite"):
        embcompress.export({"emb.weight": bad}, fmt="mxint8", out_dir=tmp_path)


def test_export_json_is_strict_json_when_qsnr_is_infinite(tmp_path):
    # fp32 (and an all-zero table in any format) is exact: QSNR +inf, which JSON cannot hold
    report = embcompress.export({"emb.weight": torch.zeros(8, 4), "emb2.weight": torch.ones(8, 4)}, fmt="fp32", out_dir=tmp_path)
    assert report[0]["qsnr_db"] == float("inf")

    def refuse(const):
        raise ValueError(f"not JSON: {const}")

    written = json.loads((tmp_path / "export.json").read_text(), parse_constant=refuse)
    assert [e["qsnr_db"] for e in written] == [None, None]
    assert written[0]["bytes_before"] == report[0]["bytes_before"]


@pytest.mark.parametrize("bad", ["frequencies", "nonfinite"])
def test_export_refuses_bad_input_before_writing_any_file(tmp_path, bad):
    # a later table's bad input must not leave earlier tables written beside an older export.json
    (tmp_path / "export.json").write_text("[]\n")
    b = torch.ones(6, 4)
    kw = {}
    if bad == "frequencies":
        kw["frequencies"] = {"emb_b": np.ones(3)}
        match = r"'frequencies' parameter.*'emb_b'"
    else:
        b[2, 1] = float("inf")
        match = r"'emb_b' holds non-finite"
    with pytest.raises(ConfigError, match=match):  # refused for emb_b's input, not for anything else
        embcompress.export({"emb_a.weight": torch.ones(8, 4), "emb_b.weight": b}, fmt="mxint8", out_dir=tmp_path, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]
    assert (tmp_path / "export.json").read_text() == "[]\n"


@pytest.mark.parametrize("ids", [np.arange(100, 120), np.arange(-1, 19)])
def test_export_refuses_a_map_with_ids_outside_a_full_size_table(tmp_path, ids):
    # a full-size table has a row for ids 0 .. n-1 only: a map of other ids was built for another
    # table, and folding would give its ids the mean of unrelated rows
    idm = IdMap.from_arrays(ids, np.arange(20) % 5, 5)
    with pytest.raises(ConfigError, match=r"'id_maps' parameter of export.*ids 0 \.\. 19.*id (100|-1)"):
        embcompress.export({"emb.weight": torch.randn(20, 4)}, fmt="fp32", id_maps={"emb": idm}, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_export_refuses_meta_tensors_clearly(tmp_path):
    # a model built on the meta device has shapes but no weights to export
    with torch.device("meta"):
        m = torch.nn.Embedding(10, 4)
    for src in (m, {"emb.weight": m.weight}):
        with pytest.raises(ConfigError, match="meta device"):
            embcompress.export(src, fmt="mxint8", out_dir=tmp_path)


def test_export_json_replaced_atomically(tmp_path, monkeypatch):
    # a crash while the report is written leaves the previous export.json whole: the new text
    # only appears through a rename
    import os

    (tmp_path / "export.json").write_text("[]\n")
    real = os.replace

    def crash(src, dst):
        if str(dst).endswith("export.json"):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        embcompress.export({"emb.weight": torch.ones(8, 4)}, fmt="mxint8", out_dir=tmp_path)
    assert (tmp_path / "export.json").read_text() == "[]\n"
    # no temporary left, and no table moved: export.json is staged with the tables and moves last
    # after a check of every place, so a crash writing it leaves the old export whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]


@pytest.mark.parametrize("freq,got", [(np.r_[np.ones(9), np.nan], "nan"), (np.r_[np.ones(9), -2.0], "-2"),
                                      (np.r_[np.ones(9), np.inf], "inf")])
def test_export_frequency_errors_say_which_value_is_wrong(tmp_path, freq, got):
    # the shape is right here: the message must point at the value, and ask for finite counts
    with pytest.raises(ConfigError, match=rf"non-negative count per trained row \(10\), all finite\. Got '{got}\S* at position 9'"):
        embcompress.export({"emb.weight": torch.ones(10, 4)}, fmt="mxint8", frequencies={"emb": freq}, out_dir=tmp_path)
