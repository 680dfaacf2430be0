"""export, review 17: max_norm for a state dict of numpy arrays, norm_type / max_norm of inf
(recorded in the file and export.json), norm_type=None."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import embcompress  # noqa: E402
from embcompress import open_table  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402


def _renormed(rows, max_norm, norm_type):
    """``rows`` as torch's lookups return them under max_norm (on a copy)."""
    rows = rows.clone() if isinstance(rows, torch.Tensor) else torch.tensor(rows)
    torch.embedding_renorm_(rows, torch.arange(len(rows)), max_norm, norm_type)
    return rows.numpy()


def test_a_state_dict_of_numpy_arrays_takes_max_norm(tmp_path):
    # a state dict may hold numpy arrays (tables are found among them); max_norm scaled them with
    # tensor methods and failed with AttributeError: 'numpy.ndarray' object has no attribute 'detach'
    rows = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32) * 3
    (e,) = embcompress.export({"emb.weight": rows}, fmt="fp32", out_dir=tmp_path, max_norm=0.5)
    np.testing.assert_array_equal(open_table(e["path"]).dequantize(), _renormed(rows, 0.5, 2.0))
    assert (e["max_norm"], e["norm_type"]) == (0.5, 2.0)


def test_a_modules_norm_type_of_inf_is_applied_and_recorded(tmp_path):
    # torch takes norm_type=inf (the largest |x| of a row); its file refused it as "JSON with
    # finite numbers", an error naming neither the table nor the option
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(12, 4, mode="sum", max_norm=0.5, norm_type=float("inf"))
    with torch.no_grad():
        bag.weight.mul_(3)
    rows = _renormed(bag.weight.detach(), 0.5, float("inf"))
    (e,) = embcompress.export(nn.ModuleDict({"emb": bag}), fmt="fp32", out_dir=tmp_path)
    t = open_table(e["path"], verify="full")
    np.testing.assert_array_equal(t.dequantize(), rows)
    assert np.abs(rows).max() <= 0.5
    # recorded as "inf" (JSON has no infinity; float("inf") reads it back), in the report, the
    # file's inputs and export.json alike
    assert (e["max_norm"], e["norm_type"]) == (0.5, "inf")
    assert (t.header["inputs"]["max_norm"], t.header["inputs"]["norm_type"]) == (0.5, "inf")
    (j,) = json.loads((tmp_path / "export.json").read_text())
    assert (j["max_norm"], j["norm_type"]) == (0.5, "inf")
    ids = torch.arange(12)
    served = MXEmbeddingBag.from_file(e["path"])(ids, ids)
    np.testing.assert_array_equal(served.numpy(), rows)


def test_a_state_dicts_max_norm_and_norm_type_of_inf(tmp_path, capsys):
    from embcompress.cli.main import main

    rows = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 3
    sd = {"emb.weight": rows}
    (e,) = embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "api", max_norm=float("inf"))
    assert e["max_norm"] == "inf"  # (nothing is scaled, as torch scales nothing)
    np.testing.assert_array_equal(open_table(e["path"]).dequantize(), rows.numpy())
    torch.save(sd, tmp_path / "model.pt")
    try:
        code = main(["export", str(tmp_path / "model.pt"), "--fmt", "fp32", "--out-dir", str(tmp_path / "cli"),
                     "--mode", "sum", "--max-norm", "1", "--norm-type", "inf", "--quiet"])
    except SystemExit as exc:
        code = exc.code
    assert not code, capsys.readouterr().err
    t = open_table(tmp_path / "cli" / "emb.embc")
    assert t.header["inputs"]["norm_type"] == "inf"
    np.testing.assert_array_equal(t.dequantize(), _renormed(rows, 1.0, float("inf")))


def test_norm_type_none_is_refused_as_the_other_options_are(tmp_path):
    # it raised TypeError from float(None), after the checks
    sd = {"emb.weight": torch.randn(4, 3)}
    with pytest.raises(embcompress.ConfigError, match="'norm_type' parameter.*Got None"):
        embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "o", max_norm=1.0, norm_type=None)
    assert not (tmp_path / "o").exists()
