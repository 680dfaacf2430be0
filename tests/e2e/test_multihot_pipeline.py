"""A multi-hot feature end to end: a Parquet log of item lists -> mine (the lists paired with
themselves) -> fit-hash -> export of a trained full-size nn.EmbeddingBag folded into the learned
rows -> MXEmbeddingBag serving bags of raw item ids, as nn.EmbeddingBag serves them on the
decoded rows."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

import embcompress  # noqa: E402
from embcompress import open_table  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402
from learned_hash import mine  # noqa: E402
from learned_hash.build import fit_hash  # noqa: E402


def test_item_lists_mined_mapped_exported_and_served(tmp_path):
    rng = np.random.default_rng(3)
    n_items, n_groups, n = 600, 30, 5000
    groups = rng.integers(0, n_groups, n)
    size = n_items // n_groups
    lists = [(g * size + rng.choice(size, rng.integers(1, 6), replace=False)).tolist() for g in groups]
    pq.write_table(pa.table({"clicked": rng.integers(0, 2, n), "items": lists}), tmp_path / "log.parquet")

    stats = mine(tmp_path / "log.parquet", features=["items"], label="clicked", pairs=[("items", "items")])
    assert stats.summary("items")["accesses"] == sum(map(len, lists))
    idmap = fit_hash(stats, "items", 64, hot_rows=8)

    ids, counts = stats.frequencies("items")
    freq = np.zeros(n_items, np.int64)
    freq[ids] = counts
    trained = torch.nn.EmbeddingBag(n_items, 16, mode="sum")
    (entry,) = embcompress.export(trained, fmt="mxint8", id_maps={"weight": idmap}, frequencies={"weight": freq},
                                  out_dir=tmp_path / "tables")
    table = open_table(entry["path"], verify="full")
    assert table.shape == (64, 16) and table.frequencies.sum() == freq.sum()

    served = MXEmbeddingBag.from_file(entry["path"])
    flat = torch.tensor([i for items in lists[:200] for i in items])
    offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(x) for x in lists[:199]])]))
    decoded = torch.nn.EmbeddingBag.from_pretrained(torch.from_numpy(table.dequantize()), mode="sum")
    rows = torch.from_numpy(idmap.lookup(flat.numpy()))
    torch.testing.assert_close(served(flat, offsets), decoded(rows, offsets), rtol=0, atol=0)
    # the most accessed items (ids of lists counted one by one) own the hot rows
    hot = ids[:8]
    assert sorted(idmap.lookup(hot).tolist()) == list(range(8))
