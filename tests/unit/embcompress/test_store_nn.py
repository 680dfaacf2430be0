import numpy as np
import pytest

torch = pytest.importorskip("torch")

from embcompress.formats import quantize  # noqa: E402
from embcompress.idmap import IdMap  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402
from embcompress.store import TieredStore, reorder_rows  # noqa: E402
from embcompress.tablefile import write_table  # noqa: E402


@pytest.mark.parametrize("reordered", [False, True])
def test_mxembeddingbag_on_a_store_equals_the_in_memory_module(tmp_path, reordered):
    n, dim = 1000, 48
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    raw = np.arange(5_000, 5_000 + 800, dtype=np.int64)
    m = IdMap.from_arrays(raw, np.arange(800), n, seed=3)
    q = quantize(x, "mxfp8_e4m3")
    path = write_table(tmp_path / "t.embc", q, id_map=m, frequencies=np.arange(n)[::-1].copy())
    served = path
    if reordered:
        served = reorder_rows(path, tmp_path / "re.embc", clusters=np.random.default_rng(1).integers(0, 30, n)).path
    store = TieredStore(served, dram_bytes=40 * q.row_bytes)  # 40 hot rows by the file's frequencies
    on_store = MXEmbeddingBag(store, id_map=store.id_map, mode="sum")
    in_memory = MXEmbeddingBag.from_file(path, mode="sum")
    rng = np.random.default_rng(2)
    for _ in range(5):
        ids = torch.from_numpy(np.concatenate([rng.choice(raw, 300), [123_456_789]]))  # one unseen id
        offsets = torch.arange(0, 301, 7)
        w = torch.rand(301)
        assert torch.equal(on_store(ids, offsets, w), in_memory(ids, offsets, w))
    assert store.stats()["batches"] == 5 and store.stats()["dram_hits"] > 0
