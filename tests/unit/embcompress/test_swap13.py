"""embcompress.nn.swap_embedding_bags: a trained model served from the table files export wrote,
its nn.EmbeddingBag modules replaced in place (round 13: serving a whole model took a hand-written
walk over its modules)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import embcompress  # noqa: E402
from embcompress import ConfigError  # noqa: E402
from embcompress.nn import MXEmbeddingBag, swap_embedding_bags  # noqa: E402


class TinyDLRM(nn.Module):
    """Bags in a ModuleList (DLRM's emb_l), a named bag with a padding id, an nn.Embedding and an MLP."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb_l = nn.ModuleList([nn.EmbeddingBag(100, 8, mode="sum"), nn.EmbeddingBag(50, 8, mode="max")])
        self.user_emb = nn.EmbeddingBag(40, 8, mode="mean", include_last_offset=True, padding_idx=3)
        self.pos_emb = nn.Embedding(6, 8)
        self.top = nn.Linear(32, 1)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x0, o0, x1, o1, xu, ou, pos):
        z = [self.emb_l[0](x0, o0), self.emb_l[1](x1, o1), self.user_emb(xu, ou), self.pos_emb(pos)]
        return self.top(torch.cat(z, dim=1))


def inputs():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randint(0, 100, (40,), generator=g), torch.randint(0, 50, (30,), generator=g)
    xu = torch.tensor([3, 1, 3, 3, 7, 39, 0, 3])
    return (x0, torch.arange(0, 40, 5), x1, torch.tensor([0, 3, 3, 9, 20, 22, 25, 28]), xu,
            torch.tensor([0, 1, 3, 3, 5, 6, 7, 7, 8]), torch.arange(8) % 6)


def test_a_model_served_from_fp32_files_gives_the_trained_models_outputs(tmp_path):
    model = TinyDLRM().eval()
    with torch.no_grad():
        want = model(*inputs())
    embcompress.export(model, fmt="fp32", out_dir=tmp_path)
    assert swap_embedding_bags(model, tmp_path) == ["emb_l.0", "emb_l.1", "user_emb"]
    assert isinstance(model.emb_l[1], MXEmbeddingBag) and isinstance(model.user_emb, MXEmbeddingBag)
    assert isinstance(model.pos_emb, nn.Embedding)  # (no bag: its lookups are no pooled bags)
    assert not any(isinstance(p, torch.Tensor) and p.numel() >= 100 * 8 for p in model.emb_l.parameters())
    with torch.no_grad():
        got = model(*inputs())
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_model_served_from_mx_files_equals_the_bags_on_the_decoded_rows(tmp_path):
    model = TinyDLRM().eval()
    embcompress.export(model, fmt="mxfp8_e4m3", out_dir=tmp_path)
    decoded = TinyDLRM().eval()
    with torch.no_grad():
        for name in ("emb_l.0", "emb_l.1", "user_emb"):
            rows = embcompress.dequantize(embcompress.open_table(tmp_path / f"{name}.embc").table)
            decoded.get_submodule(name).weight.copy_(torch.from_numpy(np.asarray(rows)))
        want = decoded(*inputs())
    swap_embedding_bags(model, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs()), want, rtol=1e-6, atol=1e-6)


def test_a_state_dict_export_is_served_with_the_models_own_pooling(tmp_path):
    # a state dict records no pooling (served as mean unless told); the model says how each bag pools
    model = TinyDLRM().eval()
    with torch.no_grad():
        want = model(*inputs())
    embcompress.export(model.state_dict(), fmt="fp32", out_dir=tmp_path, tables=["emb_l.0", "emb_l.1", "user_emb"])
    swap_embedding_bags(model, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs()), want, rtol=0, atol=0)


def test_wrappers_are_looked_through_and_missing_or_foreign_files_are_named(tmp_path):
    model = TinyDLRM().eval()
    embcompress.export(model, fmt="fp32", out_dir=tmp_path / "all")
    wrapped = nn.DataParallel(TinyDLRM().eval())
    assert swap_embedding_bags(wrapped, tmp_path / "all") == ["emb_l.0", "emb_l.1", "user_emb"]
    assert isinstance(wrapped.module.user_emb, MXEmbeddingBag)
    # only some tables exported: named, unless strict=False, which leaves the others as they are
    embcompress.export(model, fmt="fp32", out_dir=tmp_path / "some", tables=["emb_l.0"])
    other = TinyDLRM()
    with pytest.raises(ConfigError, match=r"(?s)no table file for 'emb_l.1', 'user_emb' in .*some"):
        swap_embedding_bags(other, tmp_path / "some")
    assert isinstance(other.emb_l[0], nn.EmbeddingBag)  # (nothing replaced before the check)
    assert swap_embedding_bags(other, tmp_path / "some", strict=False) == ["emb_l.0"]
    assert isinstance(other.emb_l[1], nn.EmbeddingBag)
    # files of another model: a table of another width or row count is refused by name
    class Wider(TinyDLRM):
        def __init__(self):
            super().__init__()
            self.user_emb = nn.EmbeddingBag(40, 16, mode="mean")

    with pytest.raises(ConfigError, match=r"'user_emb'.*40 x 8.*40 x 16"):
        swap_embedding_bags(Wider(), tmp_path / "all")
    with pytest.raises(ConfigError, match="holds no table files"):
        swap_embedding_bags(TinyDLRM(), tmp_path / "none")
    # a bare bag cannot be replaced in place: the error names the file to serve it from
    bare = nn.EmbeddingBag(10, 4)
    embcompress.export(bare, fmt="fp32", out_dir=tmp_path / "bare")
    with pytest.raises(ConfigError, match=r"MXEmbeddingBag.from_file\(.*weight.embc"):
        swap_embedding_bags(bare, tmp_path / "bare")
    assert (tmp_path / "bare" / "weight.embc").is_file()
