"""max_norm: torch scales every looked-up row longer than max_norm to it; a table built from such
a module (from_embedding_bag, export) stores its rows scaled so, and serves what the module's
lookups return, without touching the module's weight."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import embcompress  # noqa: E402
from embcompress import IdMap, open_table  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402


def _trained(cls, norm_type=2.0, dtype=torch.float32, **kw):
    """A module whose rows are mostly longer than its max_norm (so lookups rescale them)."""
    torch.manual_seed(0)
    m = cls(12, 8, max_norm=0.5, norm_type=norm_type, **kw).to(dtype)
    with torch.no_grad():
        m.weight.mul_(3)
    return m


IDS, OFFSETS = torch.tensor([1, 2, 3, 11, 0, 2, 7]), torch.tensor([0, 2, 4])


def _expected(m):
    """The trained module's output on (IDS, OFFSETS), from a copy of it (torch's lookups rescale
    the weight they read in place)."""
    import copy

    c = copy.deepcopy(m).eval()
    with torch.no_grad():
        if isinstance(c, nn.EmbeddingBag):
            return c(IDS, OFFSETS)
        rows = c(IDS)  # (an nn.Embedding is served as mean bags)
        ends = [*OFFSETS.tolist()[1:], len(IDS)]
        return torch.stack([rows[a:b].mean(0) for a, b in zip(OFFSETS.tolist(), ends)])


@pytest.mark.parametrize("cls, kw", [(nn.EmbeddingBag, {"mode": "sum"}), (nn.EmbeddingBag, {"mode": "mean"}),
                                     (nn.EmbeddingBag, {"mode": "max"}), (nn.Embedding, {})])
@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_from_embedding_bag_serves_the_rows_max_norm_gives(cls, kw, norm_type):
    m = _trained(cls, norm_type, **kw)
    before = m.weight.detach().clone()
    served = MXEmbeddingBag.from_embedding_bag(m, "fp32")(IDS, OFFSETS)
    expected = _expected(m)
    assert not torch.allclose(served, MXEmbeddingBag.from_embedding_bag(_plain(m), "fp32")(IDS, OFFSETS))
    torch.testing.assert_close(served, expected, rtol=0, atol=1e-6)
    assert torch.equal(m.weight, before)  # the module's weight is left as it was
    norms = torch.linalg.vector_norm(MXEmbeddingBag.from_embedding_bag(m, "fp32").decoded_weight(), norm_type, dim=1)
    assert norms.max() <= 0.5 * (1 + 1e-6)  # (scaled to 0.5 up to float rounding)


def _plain(m):
    """The module without max_norm (its rows read as stored)."""
    import copy

    c = copy.deepcopy(m)
    c.max_norm = None
    return c


def test_from_embedding_bag_renormalizes_in_the_weights_dtype():
    # torch rescales a bf16 module's rows in bf16: the stored rows are those, bit for bit
    m = _trained(nn.EmbeddingBag, dtype=torch.bfloat16, mode="sum")
    rows = m.weight.detach().clone()
    with torch.no_grad():
        torch.embedding_renorm_(rows, torch.arange(12), 0.5, 2.0)
    served = MXEmbeddingBag.from_embedding_bag(m, "fp32")
    assert torch.equal(served.decoded_weight(), rows.float())
    out = served(IDS, OFFSETS)  # (pooled in float32, then cast: within a bf16 step of torch's sums)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, _expected(m), rtol=0, atol=2e-3)


@pytest.mark.parametrize("cls", [nn.Embedding, nn.EmbeddingBag])
def test_export_stores_rows_as_max_norm_gives_them_and_records_it(tmp_path, cls):
    m = nn.ModuleDict({"emb": _trained(cls, norm_type=1.0), "other": nn.Embedding(5, 4)})
    before = m["emb"].weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (served as trained: nothing to warn about)
        report = embcompress.export(m, fmt="fp32", out_dir=tmp_path)
    by = {e["name"]: e for e in report}
    assert (by["emb"]["max_norm"], by["emb"]["norm_type"]) == (0.5, 1.0) and "max_norm" not in by["other"]
    t = open_table(tmp_path / "emb.embc", verify="full")
    assert t.header["inputs"]["max_norm"] == 0.5 and t.header["inputs"]["norm_type"] == 1.0
    served = MXEmbeddingBag.from_file(tmp_path / "emb.embc")(IDS, OFFSETS)
    torch.testing.assert_close(served, _expected(m["emb"]), rtol=0, atol=1e-6)
    assert torch.equal(m["emb"].weight, before)
    assert np.abs(t.dequantize()).sum(axis=1).max() <= 0.5 * (1 + 1e-6)
    # QSNR against the rows the module serves (exact here), not its stored weight
    assert by["emb"]["qsnr_db"] == float("inf")


def test_export_folds_the_rows_max_norm_gives(tmp_path):
    # a full-size table folded through a map: each row the mean of its ids' rows as torch's
    # lookups return them (a hot id's row exactly that)
    m = nn.ModuleDict({"emb": _trained(nn.EmbeddingBag, mode="sum")})
    ids = np.arange(12)
    assign = np.r_[0, 1, 2 + (ids[2:] % 3)]
    (e,) = embcompress.export(m, fmt="fp32", id_maps={"emb": IdMap.from_arrays(ids, assign, 5)}, out_dir=tmp_path)
    rows = m["emb"].weight.detach().clone()
    with torch.no_grad():
        torch.embedding_renorm_(rows, torch.arange(12), 0.5, 2.0)
    dec = open_table(e["path"]).dequantize()
    np.testing.assert_array_equal(dec[:2], rows[:2].numpy())
    np.testing.assert_allclose(dec[3], rows[assign == 3].double().mean(0).numpy(), rtol=1e-6)
    assert e["qsnr_vs_trained_db"] < 40  # folding is lossy; measured against the rescaled rows


def test_a_state_dicts_tables_take_max_norm_from_the_caller(tmp_path, capsys):
    # a state dict does not say: export(max_norm=...) and --max-norm apply it as the module did
    from embcompress.cli.main import main

    m = _trained(nn.EmbeddingBag, norm_type=1.0, mode="sum")
    sd = {"emb.weight": m.weight.detach().clone()}
    (e,) = embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "api", mode="sum", max_norm=0.5, norm_type=1.0)
    assert (e["max_norm"], e["norm_type"]) == (0.5, 1.0)
    torch.save(sd, tmp_path / "model.pt")
    code = main(["export", str(tmp_path / "model.pt"), "--fmt", "fp32", "--out-dir", str(tmp_path / "cli"),
                 "--mode", "sum", "--max-norm", "0.5", "--norm-type", "1", "--quiet"])
    assert not code, capsys.readouterr().err
    for folder in ("api", "cli"):
        served = MXEmbeddingBag.from_file(tmp_path / folder / "emb.embc")(IDS, OFFSETS)
        torch.testing.assert_close(served, _expected(m), rtol=0, atol=1e-6)
    (plain,) = embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "plain", mode="sum")
    assert "max_norm" not in plain and not torch.allclose(
        MXEmbeddingBag.from_file(plain["path"])(IDS, OFFSETS), _expected(m))


def test_max_norm_is_checked(tmp_path):
    sd = {"emb.weight": torch.randn(4, 3)}
    for bad in (0, -1.0, "1", True):
        with pytest.raises(embcompress.ConfigError, match="'max_norm' parameter.*above 0"):
            embcompress.export(sd, fmt="fp32", out_dir=tmp_path, max_norm=bad)
    with pytest.raises(embcompress.ConfigError, match="'norm_type' parameter.*above 0"):
        embcompress.export(sd, fmt="fp32", out_dir=tmp_path, max_norm=1.0, norm_type=0)
    # a module says its own: told another, export refuses rather than choose
    model = nn.ModuleDict({"emb": nn.EmbeddingBag(4, 3, max_norm=2.0)})
    for told in (dict(max_norm=1.0), dict(max_norm=2.0, norm_type=1.0)):
        with pytest.raises(embcompress.ConfigError, match="max_norm of the module of table 'emb'.*max_norm=2.0"):
            embcompress.export(model, fmt="fp32", out_dir=tmp_path, **told)
    assert embcompress.export(model, fmt="fp32", out_dir=tmp_path / "same", max_norm=2.0)[0]["max_norm"] == 2.0
    with pytest.raises(embcompress.ConfigError, match="max_norm of the module of table 'emb'.*max_norm=None"):
        embcompress.export(nn.ModuleDict({"emb": nn.EmbeddingBag(4, 3)}), fmt="fp32", out_dir=tmp_path, max_norm=1.0)
    assert not any(tmp_path.glob("*.embc"))  # (refused before writing)


def test_swap_embedding_bags_serves_a_max_norm_bag_only_from_rows_scaled_for_it(tmp_path):
    # a state dict exported without --max-norm holds unscaled rows: swapped in for a bag with
    # max_norm, they were served silently where the bag scaled them
    from embcompress.nn import swap_embedding_bags

    model = nn.ModuleDict({"emb": _trained(nn.EmbeddingBag, mode="sum")})
    sd = {"emb.weight": model["emb"].weight.detach().clone()}
    embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "plain", mode="sum")
    with pytest.raises(embcompress.ConfigError, match=r"'emb' was exported with no max_norm.*--max-norm 0.5"):
        swap_embedding_bags(model, tmp_path / "plain")
    embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "scaled", mode="sum", max_norm=0.5)
    expected = _expected(model["emb"])
    assert swap_embedding_bags(model, tmp_path / "scaled") == ["emb"]
    torch.testing.assert_close(model["emb"](IDS, OFFSETS), expected, rtol=0, atol=1e-6)
    # and a file scaled for a bag that has no max_norm
    plain = nn.ModuleDict({"emb": nn.EmbeddingBag(12, 8, mode="sum")})
    with pytest.raises(embcompress.ConfigError, match=r"exported with max_norm=0.5, norm_type=2, this bag has no max_norm"):
        swap_embedding_bags(plain, tmp_path / "scaled")
