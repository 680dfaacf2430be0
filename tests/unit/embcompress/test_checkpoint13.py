"""embcompress.load_state_dict: the files a trained model's weights come in (torch.save state dicts,
training checkpoints, .safetensors written by Hugging Face's library), read as export needs them."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

import embcompress  # noqa: E402
from embcompress import ArtifactError, ConfigError, MissingArtifactError, load_state_dict, open_table  # noqa: E402


def tensors():
    g = torch.Generator().manual_seed(0)
    return {"emb.user.weight": torch.randn(50, 8, generator=g), "emb.item.weight": torch.randn(30, 16, generator=g).half(),
            "emb.tag.weight": torch.randn(20, 4, generator=g).bfloat16(), "mlp.0.weight": torch.randn(4, 24, generator=g),
            "mlp.0.bias": torch.randn(4, generator=g), "steps": torch.tensor(7), "mask": torch.tensor([True, False]),
            "empty": torch.zeros(0, 8)}


@pytest.mark.parametrize("name", ["model.safetensors", "weights.bin"])
def test_a_safetensors_file_gives_every_tensor_bit_for_bit(tmp_path, name):
    # by its name, or by its bytes (a safetensors file named as torch's .bin)
    want = tensors()
    safetensors_torch.save_file(want, tmp_path / name, metadata={"format": "pt"})
    got = load_state_dict(tmp_path / name)
    assert set(got) == set(want)
    for k, t in want.items():
        assert got[k].dtype == t.dtype and got[k].shape == t.shape, k
        assert torch.equal(got[k], t), k


def test_export_of_a_safetensors_file_equals_export_of_the_torch_file(tmp_path, capsys):
    from embcompress.cli.main import main

    want = tensors()
    safetensors_torch.save_file(want, tmp_path / "model.safetensors")
    torch.save(want, tmp_path / "model.pt")
    for src in ("model.safetensors", "model.pt"):
        main(["export", str(tmp_path / src), "--fmt", "mxfp8_e4m3", "--out-dir", str(tmp_path / src.replace(".", "_")),
              "--quiet"])
    for table in ("emb.user", "emb.item", "emb.tag"):
        a = open_table(tmp_path / "model_safetensors" / f"{table}.embc").table
        b = open_table(tmp_path / "model_pt" / f"{table}.embc").table
        np.testing.assert_array_equal(a.data, b.data)
    assert not (tmp_path / "model_safetensors" / "mlp.0.embc").exists()


def test_the_state_dict_of_a_training_checkpoint(tmp_path):
    sd = {"emb.weight": torch.randn(5, 4)}
    torch.save({"model": sd, "ema": {"emb.weight": torch.randn(5, 4)}, "epoch": 3}, tmp_path / "ckpt.pt")
    assert torch.equal(load_state_dict(tmp_path / "ckpt.pt", key="model")["emb.weight"], sd["emb.weight"])
    with pytest.raises(ConfigError, match=r"several state dicts \('model', 'ema'\)") as err:
        load_state_dict(tmp_path / "ckpt.pt")
    assert err.value.param == "key"
    torch.save({"model": sd, "epoch": 3}, tmp_path / "one.pt")
    assert torch.equal(load_state_dict(tmp_path / "one.pt")["emb.weight"], sd["emb.weight"])


def damaged_files(tmp_path):
    good = tmp_path / "good.safetensors"
    safetensors_torch.save_file({"emb.weight": torch.randn(5, 4)}, good)
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8:8 + n].decode()
    yield "truncated", raw[: len(raw) - 7]
    yield "header length past the end", (len(raw)).to_bytes(8, "little") + raw[8:]
    yield "header not JSON", raw[:8] + b"{" + b"x" * (n - 1) + raw[8 + n:]
    yield "range past the end", raw[:8] + header.replace("[0,80]", "[0,96]").encode() + raw[8 + n:]
    yield "shape against range", raw[:8] + header.replace("[5,4]", "[6,4]").encode() + raw[8 + n:]
    yield "no dtype", raw[:8] + header.replace('"dtype"', '"dtupe"').encode() + raw[8 + n:]


def test_damaged_safetensors_files_are_clear_errors(tmp_path):
    cases = list(damaged_files(tmp_path))
    assert len({data for _, data in cases}) == len(cases)  # each edit changed the file
    for what, data in cases:
        path = tmp_path / "bad.safetensors"
        path.write_bytes(data)
        with pytest.raises(ArtifactError, match=r"not a readable \.safetensors file .*Write it again") as err:
            load_state_dict(path)
        assert not isinstance(err.value, MissingArtifactError), what


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(MissingArtifactError, match="no state-dict file there"):
        load_state_dict(tmp_path / "none.safetensors")
    assert embcompress.load_state_dict is load_state_dict
