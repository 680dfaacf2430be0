"""Two names of one table in tables= (a module and its weight, a key with and without
'.weight') are refused: they would write the same table to two files."""

import pytest
import torch
from torch import nn

from embcompress.errors import ConfigError
from embcompress.export import export


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.user = nn.EmbeddingBag(10, 8, mode="sum")
        self.item = nn.Embedding(12, 8)


@pytest.mark.parametrize("source", ["module", "state_dict"])
def test_one_table_named_twice_is_refused(tmp_path, source):
    m = Model()
    src = m if source == "module" else m.state_dict()
    with pytest.raises(ConfigError, match=r"'user' and 'user.weight' are the same tensor"):
        export(src, fmt="mxint8", out_dir=tmp_path / "out", tables=["user", "user.weight"])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_name_repeated_and_tied_tables_still_export(tmp_path):
    m = Model()
    report = export(m, fmt="mxint8", out_dir=tmp_path / "a", tables=["user", "user", "item"])
    assert sorted(r["name"] for r in report) == ["item", "user"]
    # tied modules are two tables to serve (their files record each one's pooling)
    m.item.weight = m.user.weight
    m.item.num_embeddings = 10
    assert sorted(r["name"] for r in export(m, fmt="mxint8", out_dir=tmp_path / "b")) == ["item", "user"]
