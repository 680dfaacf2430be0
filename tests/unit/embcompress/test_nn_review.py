"""MXEmbeddingBag, review: construction errors and nn.EmbeddingBag equivalence."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from embcompress import ConfigError  # noqa: E402
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection  # noqa: E402


def test_from_embedding_bag_refuses_meta_weights_clearly():
    with torch.device("meta"):
        bag = nn.EmbeddingBag(10, 4)
    with pytest.raises(ConfigError, match="'emb' parameter.*meta device"):
        MXEmbeddingBag.from_embedding_bag(bag, "fp32")


def test_from_files_serves_each_table_with_the_pooling_its_bag_was_trained_with(tmp_path):
    # A DLRM with sum and max bags: export records each bag's mode and include_last_offset, and
    # from_file / from_files take them unless told otherwise (one mode for all was wrong for some).
    import embcompress

    torch.manual_seed(0)
    model = nn.ModuleDict({"user": nn.EmbeddingBag(20, 4, mode="sum"),
                           "item": nn.EmbeddingBag(15, 4, mode="max", include_last_offset=True),
                           "ctx": nn.Embedding(8, 4)})
    embcompress.export(model, fmt="fp32", out_dir=tmp_path)
    coll = MXEmbeddingBagCollection.from_files({f: tmp_path / f"{f}.embc" for f in model})
    ids, offs = torch.tensor([1, 2, 3, 7, 0]), torch.tensor([0, 2, 5])
    out = coll({"user": (ids, offs[:2]), "item": (ids, offs), "ctx": ids.reshape(1, 5)})
    assert torch.equal(out["user"], model["user"](ids, offs[:2]))
    assert torch.equal(out["item"], model["item"](ids, offs))
    # nn.Embedding has no pooling: nn.EmbeddingBag's default, mean
    assert coll.bags["ctx"].mode == "mean"
    assert torch.allclose(out["ctx"], model["ctx"](ids).mean(0, keepdim=True))
    # given explicitly, the caller's choice wins
    assert MXEmbeddingBag.from_file(tmp_path / "item.embc", mode="mean", include_last_offset=False).mode == "mean"
    with pytest.raises(ConfigError, match="'mode' parameter"):
        MXEmbeddingBag.from_file(tmp_path / "item.embc", mode="avg")
