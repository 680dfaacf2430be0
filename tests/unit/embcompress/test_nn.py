"""MXEmbeddingBag / MXEmbeddingBagCollection: nn.EmbeddingBag semantics, id maps, row sources,
torch.compile and torch.export."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import embcompress  # noqa: E402
from embcompress import ConfigError  # noqa: E402
from embcompress.idmap import IdMap  # noqa: E402
from embcompress.kernels import compiled  # noqa: E402
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection  # noqa: E402


@pytest.fixture(params=["numpy", "cython"])
def backend(request, monkeypatch):
    if request.param == "cython" and compiled("_lookup") is None:
        pytest.skip("compiled kernel not built")
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", request.param)
    return request.param


def trained_bag(n=120, dim=32, mode="sum", seed=0, **kw):
    torch.manual_seed(seed)
    return torch.nn.EmbeddingBag(n, dim, mode=mode, **kw)


def close(a, b):
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxint8", "mxfp4_e2m1", "mx6", "int8_rowwise", "int4_rowwise", "bf16"])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_matches_embedding_bag_on_decoded_weights(backend, fmt, mode):
    m = MXEmbeddingBag.from_embedding_bag(trained_bag(mode=mode), fmt)
    w = m.decoded_weight()
    ids = torch.randint(0, 120, (60,), generator=torch.Generator().manual_seed(1))
    offsets = torch.tensor([0, 7, 7, 30, 59])
    assert close(m(ids, offsets), F.embedding_bag(ids, w, offsets, mode=mode))
    ids2 = ids[:48].reshape(6, 8)  # 2-D input: fixed-length bags
    assert close(m(ids2), F.embedding_bag(ids2, w, mode=mode))
    if mode == "sum":
        psw = torch.rand(60)
        assert close(m(ids, offsets, psw), F.embedding_bag(ids, w, offsets, mode="sum", per_sample_weights=psw))


def test_include_last_offset_and_int32_ids(backend):
    emb = trained_bag(mode="mean", include_last_offset=True)
    m = MXEmbeddingBag.from_embedding_bag(emb, "mxfp6_e3m2")
    assert m.include_last_offset and m.mode == "mean"
    ids = torch.tensor([3, 4, 5, 100, 1], dtype=torch.int32)
    offsets = torch.tensor([0, 2, 5], dtype=torch.int32)
    ref = F.embedding_bag(ids.long(), m.decoded_weight(), offsets.long(), mode="mean", include_last_offset=True)
    assert close(m(ids, offsets), ref)


def test_id_map_sends_raw_ids_to_rows(backend, tmp_path):
    emb = trained_bag(n=10, mode="sum")
    raw = np.array([10**12, 77, -5, 123456789, 42, 7, 8, 9, 10, 11])
    idm = IdMap.from_arrays(raw, np.arange(10), 10, fallback_rows=[9])
    m = MXEmbeddingBag.from_embedding_bag(emb, "mxint8", id_map=idm)
    ids = torch.tensor([10**12, -5, 424242, 77])  # 424242 is unseen: the fallback row 9
    rows = torch.tensor([0, 2, 9, 1])
    offsets = torch.tensor([0, 2])
    assert close(m(ids, offsets), F.embedding_bag(rows, m.decoded_weight(), offsets, mode="sum"))
    # the same through a table file
    path = embcompress.write_table(tmp_path / "t.embc", m.source, id_map=idm)
    f = MXEmbeddingBag.from_file(path, mode="sum", verify="full")
    assert torch.equal(f(ids, offsets), m(ids, offsets))
    assert f.id_map is not None and "id_map" in repr(f)
    assert "records" in f.state_dict()


class ListSource:
    """A minimal row source: what the tiered store offers the module."""

    def __init__(self, q):
        self.q, self.shape, self.fmt, self.calls = q, q.shape, q.fmt, 0

    def pooled_lookup(self, indices, offsets, **opts):
        self.calls += 1
        return embcompress.pooled_lookup(self.q, indices, offsets, **opts)


def test_row_source_interface(backend):
    m = MXEmbeddingBag.from_embedding_bag(trained_bag(), "mxfp8_e5m2")
    src = ListSource(m.source)
    s = MXEmbeddingBag(src, mode="sum")
    ids, offsets = torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1])
    assert torch.equal(s(ids, offsets), m(ids, offsets)) and src.calls == 1
    assert "source=ListSource" in repr(s)
    with pytest.raises(ConfigError, match="in memory"):
        s.decoded_weight()


def test_collection_of_features(backend):
    a = MXEmbeddingBag.from_embedding_bag(trained_bag(n=50, dim=16, seed=1), "mxint8")
    b = MXEmbeddingBag.from_embedding_bag(trained_bag(n=70, dim=8, seed=2, mode="max"), "fp16")
    col = MXEmbeddingBagCollection({"user": a, "item": b})
    ids, offs = torch.tensor([1, 2, 3]), torch.tensor([0, 2])
    out = col({"item": torch.tensor([[1, 2], [3, 4]]), "user": (ids, offs, torch.ones(3))})
    assert list(out) == ["item", "user"]
    assert out["user"].shape == (2, 16) and out["item"].shape == (2, 8)
    assert torch.equal(out["user"], a(ids, offs, torch.ones(3)))
    with pytest.raises(ConfigError, match="name features of this collection"):
        col({"nope": (ids, offs)})
    with pytest.raises(ConfigError, match="without '.'"):
        MXEmbeddingBagCollection({"a.b": a})


def test_collection_from_files(tmp_path):
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32), "mxfp4_e2m1")
    paths = {f: embcompress.write_table(tmp_path / f"{f}.embc", q) for f in ("x", "y")}
    col = MXEmbeddingBagCollection.from_files(paths, mode="sum")
    assert col.features == ["x", "y"]
    out = col({"y": (torch.tensor([0, 19]), torch.tensor([0]))})
    assert close(out["y"], torch.from_numpy(embcompress.dequantize(q)[[0, 19]].sum(0, keepdims=True)))


def test_bad_construction_and_calls():
    q = embcompress.quantize(np.ones((4, 8), np.float32), "mxint8")
    with pytest.raises(ConfigError, match="'mode' parameter"):
        MXEmbeddingBag(q, mode="avg")
    with pytest.raises(ConfigError, match="row source"):
        MXEmbeddingBag(object())
    with pytest.raises(ConfigError, match="onto the table's 4 rows"):
        MXEmbeddingBag(q, id_map=IdMap.from_arrays([1], [0], 5))
    with pytest.raises(ConfigError, match="nn.EmbeddingBag"):
        MXEmbeddingBag.from_embedding_bag(torch.nn.Linear(2, 2), "mxint8")

    class Foreign:
        data, fmt, shape, block_size = q.data, "mxfp3", (4, 8), 32

    m = MXEmbeddingBag(q, mode="sum")
    with pytest.raises(ConfigError, match="in \\[0, 4\\)"):
        m(torch.tensor([0, 4]), torch.tensor([0]))
    with pytest.raises(ConfigError, match="'offsets' parameter"):
        m(torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="does not know the format"):
        from embcompress.kernels.lookup import pooled_lookup

        pooled_lookup(Foreign(), [0], [0])


class Model(torch.nn.Module):
    def __init__(self, bag):
        super().__init__()
        self.bag = bag
        self.head = torch.nn.Linear(bag.embedding_dim, 1)

    def forward(self, ids, offsets):
        return self.head(self.bag(ids, offsets))


def small_model():
    emb = trained_bag(n=30, dim=16)
    idm = IdMap.from_arrays(np.arange(100, 130), np.arange(30), 30)
    return Model(MXEmbeddingBag.from_embedding_bag(emb, "mxfp8_e4m3", id_map=idm)).eval()


def test_torch_export():
    model = small_model()
    ids, offsets = torch.tensor([100, 101, 129, 5000]), torch.tensor([0, 1])
    ep = torch.export.export(model, (ids, offsets))
    names = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("embcompress.pooled_lookup" in n for n in names) and any("embcompress.map_ids" in n for n in names)
    with torch.no_grad():
        assert torch.equal(ep.module()(ids, offsets), model(ids, offsets))


def test_torch_compile_fullgraph():
    model = small_model()
    ids, offsets = torch.tensor([100, 101, 129, 5000, 7]), torch.tensor([0, 1, 3])
    compiled_model = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled_model(ids, offsets), model(ids, offsets))
