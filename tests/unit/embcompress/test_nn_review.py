"""MXEmbeddingBag, review: construction errors and nn.EmbeddingBag equivalence."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from embcompress import ConfigError  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402


def test_from_embedding_bag_refuses_meta_weights_clearly():
    with torch.device("meta"):
        bag = nn.EmbeddingBag(10, 4)
    with pytest.raises(ConfigError, match="'emb' parameter.*meta device"):
        MXEmbeddingBag.from_embedding_bag(bag, "fp32")
