"""MXEmbeddingBag / MXEmbeddingBagCollection: nn.EmbeddingBag semantics, id maps, row sources,
torch.compile and torch.export (programs saved and loaded in a new process), state_dict."""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import embcompress  # noqa: E402
from embcompress import ConfigError  # noqa: E402
from embcompress.idmap import IdMap  # noqa: E402
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


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


@pytest.mark.parametrize("with_map", [False, True])
def test_torch_export_of_a_bare_module(with_map):
    """The module itself, not a model around it: torch.export numbers a root module's buffers
    counting None ones (an id map's, when there is none) and failed with an IndexError when a
    buffer came after them."""
    idm = IdMap.from_arrays(np.arange(100, 130), np.arange(30), 30) if with_map else None
    bag = MXEmbeddingBag.from_embedding_bag(trained_bag(n=30, dim=16), "mxint8", id_map=idm).eval()
    ids, offsets = torch.tensor([0, 1, 29, 5]) + (100 if with_map else 0), torch.tensor([0, 1])
    ep = torch.export.export(bag, (ids, offsets))
    with torch.no_grad():
        assert torch.equal(ep.module()(ids, offsets), bag(ids, offsets))


def test_torch_compile_fullgraph():
    model = small_model()
    ids, offsets = torch.tensor([100, 101, 129, 5000, 7]), torch.tensor([0, 1, 3])
    compiled_model = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled_model(ids, offsets), model(ids, offsets))


def test_eager_calls_skip_the_dispatcher_and_everything_that_watches_ops_sees_them(monkeypatch):
    """An eager call on CPU tensors runs the ops' work on arrays directly (the dispatcher cost a
    one-bag call about 5 us, and each tensor's .numpy() about 1); a dispatch mode, a device
    context, the profiler and meta tensors still see the ops, and every path returns the same
    values."""
    from torch.utils._python_dispatch import TorchDispatchMode

    import embcompress.nn as enn

    model = small_model()
    ids, offsets = torch.tensor([100, 101, 129, 5000]), torch.tensor([0, 1])
    calls = []
    # the ops' kernels (which the dispatcher holds unpatched) and the functions on arrays they call
    for name in ("_lookup_op", "_map_op", "_pool", "_map", "pooled_lookup_many"):
        real = getattr(enn, name)
        monkeypatch.setattr(enn, name, lambda *a, _f=real, _n=name: (calls.append(_n), _f(*a))[1])
    with torch.no_grad():
        want = model(ids, offsets)
        assert calls == ["_map", "pooled_lookup_many"]  # no op: neither through the dispatcher nor its kernels
        calls.clear()

        class Seen(TorchDispatchMode):
            ops = []

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                Seen.ops.append(str(func))
                return func(*args, **(kwargs or {}))

        calls.clear()
        with Seen():
            assert torch.equal(model(ids, offsets), want)
        assert any("embcompress.pooled_lookup" in o for o in Seen.ops) and any("map_ids" in o for o in Seen.ops)
        with torch.device("cpu"):
            assert torch.equal(model(ids, offsets), want)
        with torch.profiler.profile() as prof:
            assert torch.equal(model(ids, offsets), want)
        assert any("embcompress::pooled_lookup" in e.name for e in prof.events())
        assert calls == ["_map", "_pool", "pooled_lookup_many"] * 3  # (from the dispatcher's kernels)
        calls.clear()
        # a torch without the private names _direct asks: every call through the dispatcher
        monkeypatch.setattr(enn, "_CAN_SKIP_DISPATCH", False)
        assert torch.equal(model(ids, offsets), want) and calls == ["_map", "_pool", "pooled_lookup_many"]
        assert model.to("meta")(ids.to("meta"), offsets.to("meta")).device.type == "meta"


# -- portability: what travels with the module (state_dict, torch.export programs) ------------


def layout_maps(n=40):
    """One id map per layout, with the awkward cases: a seed above 2**63, scattered and ranged
    cold rows, rows of two dtypes' widths."""
    rng = np.random.default_rng(3)
    sparse = rng.choice(2**62, 25, replace=False) - 2**61  # far apart: the hash table
    return {
        "hash": IdMap.from_arrays(sparse, rng.integers(0, n, 25), n, fallback_rows=[3, 31, 7, 12], seed=2**64 - 5),
        "direct": IdMap.from_arrays(np.arange(-10, 20), np.arange(30), n, seed=1),  # cold rows 30..39: a range
        "none": IdMap.from_arrays([], [], n, seed=7),  # the hashing trick: every id hashed
    }


class Tower(torch.nn.Module):
    """A model over a collection: every feature looks up the same bags, outputs side by side."""

    def __init__(self, col):
        super().__init__()
        self.col = col

    def forward(self, ids, offsets, weights):
        out = self.col({f: (ids, offsets, weights) for f in self.col.features})
        return torch.cat(list(out.values()), dim=1)


def tower(tmp_path, n=40):
    x = np.random.default_rng(4).standard_normal((n, 16)).astype(np.float32)
    maps = layout_maps(n)
    bags = {
        name: MXEmbeddingBag(embcompress.quantize(x, fmt), id_map=idm, mode="sum")
        for (name, idm), fmt in zip(maps.items(), ["mxfp8_e4m3", "mxint8", "mxfp4_e2m1"])
    }
    # and a table file: rows and id map memory-mapped
    path = embcompress.write_table(tmp_path / "t.embc", embcompress.quantize(-x, "mx6"), id_map=maps["hash"])
    bags["file"] = MXEmbeddingBag.from_file(path, mode="sum")
    return Tower(MXEmbeddingBagCollection(bags)).eval()


def tower_inputs(model):
    maps = [b.id_map for b in model.col.bags.values()]
    known = np.concatenate([m.ids for m in maps])
    ids = np.concatenate([known, np.random.default_rng(5).integers(-(2**63), 2**63 - 1, 40), [-(2**63), 2**63 - 1]])
    return torch.from_numpy(ids), torch.tensor([0, 3, 3, 40, 71]), torch.rand(ids.size, generator=torch.Generator().manual_seed(6))


def run_python(code: str, env_backend: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_backend:
        env["EMBCOMPRESS_KERNELS"] = env_backend
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_exported_program_with_id_maps_runs_in_a_new_process(backend, tmp_path):
    model = tower(tmp_path)
    ids, offsets, weights = tower_inputs(model)
    with torch.no_grad():
        expected = model(ids, offsets, weights)
    for i, bag in enumerate(model.col.bags.values()):  # the op maps ids as IdMap.lookup does
        rows = torch.from_numpy(bag.id_map.lookup(ids.numpy()))
        ref = F.embedding_bag(rows, bag.decoded_weight(), offsets, mode="sum", per_sample_weights=weights)
        assert close(expected[:, 16 * i: 16 * (i + 1)], ref)
    ep = torch.export.export(model, (ids, offsets, weights))
    assert {"records", "id_map_keys", "id_map_vals", "id_map_fallback", "id_map_params"} <= {
        k.rsplit(".", 1)[-1] for k in ep.state_dict
    }
    torch.export.save(ep, tmp_path / "tower.pt2")
    torch.save((ids, offsets, weights), tmp_path / "inputs.pt")
    # a fresh interpreter: nothing of this process (no registry, no IdMap object) is there
    done = run_python(
        "import numpy as np, torch, embcompress.nn\n"
        "from embcompress.kernels import backend\n"
        f"ep = torch.export.load({str(tmp_path / 'tower.pt2')!r})\n"
        f"ids, offsets, weights = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
        "with torch.no_grad():\n"
        "    out = ep.module()(ids, offsets, weights)\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out.numpy())\n"
        "print(backend())\n",
        backend,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [backend]
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "out.npy")), expected)


def test_state_dict_carries_the_id_map(backend, tmp_path):
    x = np.random.default_rng(7).standard_normal((40, 16)).astype(np.float32)
    q = embcompress.quantize(x, "mxint8")
    maps = layout_maps()
    ids, offsets = torch.tensor([-10, 5, 19, 20, 123456789, 2**62]), torch.tensor([0, 2, 4])
    for idm in maps.values():
        src = MXEmbeddingBag(q, id_map=idm, mode="sum")
        for fresh in (MXEmbeddingBag(q, mode="sum"), MXEmbeddingBag(q, id_map=maps["none"], mode="sum")):
            fresh.load_state_dict(src.state_dict())
            assert torch.equal(fresh(ids, offsets), src(ids, offsets))
            assert fresh.id_map.layout == idm.layout and fresh.id_map.seed == idm.seed
    # a module over a memory-mapped (read-only) file takes another table's rows without writing the file
    path = embcompress.write_table(tmp_path / "t.embc", q, id_map=maps["hash"])
    other = MXEmbeddingBag(embcompress.quantize(2 * x, "mxint8"), id_map=maps["direct"], mode="sum")
    mapped = MXEmbeddingBag.from_file(path, mode="sum")
    mapped.load_state_dict(other.state_dict())
    assert torch.equal(mapped(ids, offsets), other(ids, offsets))
    assert torch.equal(mapped.decoded_weight(), other.decoded_weight())
    assert np.array_equal(embcompress.open_table(path, verify="full").table.data, q.data)
    # an id map that does not fit the table is refused as IdMap.load refuses a file
    state = MXEmbeddingBag(q, id_map=maps["hash"], mode="sum").state_dict()
    state["id_map_vals"] = torch.full_like(state["id_map_vals"], 41)  # rows past the table's 40
    with pytest.raises(embcompress.ArtifactError, match="id_map_.*outside"):
        MXEmbeddingBag(q, mode="sum").load_state_dict(state)


def test_custom_ops_pass_torch_opcheck():
    idm = layout_maps()["hash"]
    m = MXEmbeddingBag(embcompress.quantize(np.ones((40, 16), np.float32), "mxint8"), id_map=idm, mode="sum")
    ids = torch.from_numpy(idm.ids[:6].reshape(2, 3).copy())
    torch.library.opcheck(torch.ops.embcompress.map_ids.default,
                          (ids, m.id_map_keys, m.id_map_vals, m.id_map_fallback, m.id_map_params, 40, 0))
    torch.library.opcheck(torch.ops.embcompress.pooled_lookup.default,
                          (m.records, torch.tensor([1, 2, 3]), torch.tensor([0, 1]), None, "mxint8", 16, 32, "sum", False, 0))


def test_program_over_a_row_source_says_why_it_cannot_run_elsewhere(tmp_path):
    q = embcompress.quantize(np.ones((40, 16), np.float32), "mxint8")
    model = Model(MXEmbeddingBag(ListSource(q), id_map=layout_maps()["direct"], mode="sum")).eval()
    ids, offsets = torch.tensor([1, 2, 3]), torch.tensor([0, 1])
    torch.export.save(torch.export.export(model, (ids, offsets)), tmp_path / "src.pt2")
    done = run_python(
        "import torch, embcompress.nn\n"
        f"ep = torch.export.load({str(tmp_path / 'src.pt2')!r})\n"
        "ep.module()(torch.tensor([1, 2, 3]), torch.tensor([0, 1]))\n"
    )
    assert done.returncode != 0
    assert "No row source is registered" in done.stderr and "MXEmbeddingBag.from_file(path)" in done.stderr


def test_state_dict_with_part_of_an_id_map_is_refused_and_writes_nothing(backend, tmp_path):
    # Its buffers share memory with the IdMap (a user's object, other modules, or a read-only
    # mapping of an id-map file): copying part of another map into them would alias or crash.
    q = embcompress.quantize(np.random.default_rng(8).standard_normal((40, 16)).astype(np.float32), "mxint8")
    maps = layout_maps()
    other = MXEmbeddingBag(q, id_map=IdMap.from_arrays(maps["hash"].ids, maps["hash"].rows[::-1].copy(), 40,
                                                       fallback_rows=[1, 2, 5, 9], seed=11), mode="sum").state_dict()
    ids, offsets = torch.tensor([*maps["hash"].ids[:4].tolist(), 5, 123456789]), torch.tensor([0, 3])
    idm = maps["hash"]
    expected_rows = idm.lookup(ids.numpy()).copy()
    mapped = MXEmbeddingBag(q, id_map=IdMap.load(idm.save(tmp_path / "m.idmap")), mode="sum")  # read-only mapping
    for m in (MXEmbeddingBag(q, id_map=idm, mode="sum"), mapped):
        before = m(ids, offsets)
        for keep in (["id_map_fallback"], ["id_map_keys", "id_map_vals", "id_map_fallback"]):
            state = {k: v for k, v in other.items() if k in keep}
            for strict in (False, True):
                with pytest.raises(embcompress.ArtifactError, match="id_map_params"):
                    m.load_state_dict(state, strict=strict)
        # all four, one not a tensor: torch would skip it and copy the other three
        with pytest.raises(embcompress.ArtifactError, match="id_map_params"):
            m.load_state_dict({**other, "id_map_params": other["id_map_params"].numpy()})
        assert torch.equal(m(ids, offsets), before)
    np.testing.assert_array_equal(idm.lookup(ids.numpy()), expected_rows)
    with pytest.raises(embcompress.ArtifactError, match="id_map_"):  # a module without a map refuses it too
        MXEmbeddingBag(q, mode="sum").load_state_dict({"id_map_params": other["id_map_params"]}, strict=False)



def test_map_ids_fake_gives_the_real_strides(backend):
    # The op is registered for any ids tensor: under torch.compile the fake's strides are trusted.
    idm = layout_maps()["direct"]
    m = MXEmbeddingBag(embcompress.quantize(np.ones((40, 16), np.float32), "mxint8"), id_map=idm, mode="sum")
    ids = torch.arange(-12, 12).reshape(4, 6).t()  # 2-D, not contiguous
    torch.library.opcheck(torch.ops.embcompress.map_ids.default,
                          (ids, m.id_map_keys, m.id_map_vals, m.id_map_fallback, m.id_map_params, 40, 0))
    out = torch.ops.embcompress.map_ids(ids, m.id_map_keys, m.id_map_vals, m.id_map_fallback, m.id_map_params, 40, 0)
    np.testing.assert_array_equal(out.numpy(), idm.lookup(ids.numpy()))


def test_map_ids_op_takes_narrow_ids_as_idmap_lookup_does(backend):
    # int32 ids called straight into the op: the NumPy path read their bytes as int64 ids.
    idm = layout_maps()["direct"]
    m = MXEmbeddingBag(embcompress.quantize(np.ones((40, 16), np.float32), "mxint8"), id_map=idm, mode="sum")
    ids = torch.tensor([-10, 0, 5, 19, 100, 7], dtype=torch.int32)
    out = torch.ops.embcompress.map_ids(ids, m.id_map_keys, m.id_map_vals, m.id_map_fallback, m.id_map_params, 40, 0)
    assert out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), idm.lookup(ids.numpy()))


def test_state_dict_records_of_another_dtype_do_not_write_into_a_mapped_table(backend, tmp_path):
    # torch copies a same-shape tensor of another dtype by casting it: into fresh memory, never
    # into the read-only mapping of the file (that crashed the process).
    q = embcompress.quantize(np.random.default_rng(9).standard_normal((40, 16)).astype(np.float32), "mxint8")
    other = MXEmbeddingBag(embcompress.quantize(np.full((40, 16), 0.5, np.float32), "mxint8"), mode="sum")
    mapped = MXEmbeddingBag.from_file(embcompress.write_table(tmp_path / "t.embc", q), mode="sum")
    state = other.state_dict()
    state["records"] = state["records"].to(torch.int16)  # every uint8 value survives the casts
    mapped.load_state_dict(state)
    assert mapped.records.dtype == torch.uint8
    ids, offsets = torch.tensor([0, 5, 39]), torch.tensor([0, 1])
    assert torch.equal(mapped(ids, offsets), other(ids, offsets))
    assert np.array_equal(embcompress.open_table(tmp_path / "t.embc", verify="full").table.data, q.data)


def test_forward_refuses_float_ids_and_offsets_instead_of_truncating(backend):
    # forward cast input and offsets to int64 before the kernel's dtype check, so float ids were
    # truncated (2.9 -> row 2) and float offsets too; nn.EmbeddingBag refuses both.
    m = MXEmbeddingBag.from_embedding_bag(trained_bag(), "mxint8")
    ids, offsets = torch.tensor([1, 2, 3]), torch.tensor([0, 2])
    with pytest.raises(ConfigError, match="'input' parameter of MXEmbeddingBag.forward.*integer"):
        m(ids.float() + 0.9, offsets)
    with pytest.raises(ConfigError, match="'offsets' parameter of MXEmbeddingBag.forward.*integer"):
        m(ids, offsets.double())
    assert torch.equal(m(ids.int(), offsets.int()), m(ids, offsets))  # integer widths stay fine


def test_forward_input_shapes_as_nn_embedding_bag_takes_them(backend):
    m = MXEmbeddingBag.from_embedding_bag(trained_bag(mode="mean"), "mxint8")
    # a 0-d id passed as a bag of one, and a 3-D input was told to give offsets "when 1-D"
    with pytest.raises(ConfigError, match="'input' parameter .* 2-D .*Got '0-D'"):
        m(torch.tensor(3), torch.tensor([0]))
    with pytest.raises(ConfigError, match="'input' parameter .* 2-D .*Got '3-D'"):
        m(torch.zeros(2, 2, 2, dtype=torch.long))
    # 2-D bags of length 0 are empty bags (torch.arange(0, 0, 0) raised 'step must be nonzero')
    out = m(torch.zeros(3, 0, dtype=torch.long))
    assert out.shape == (3, 32) and not out.any()


def test_forward_per_sample_weights_must_have_the_shape_of_input(backend):
    # forward flattened 2-D input and weights alike, so (4, 3) weights for a (3, 4) input were
    # paired with the wrong ids; nn.EmbeddingBag refuses any shape but the input's.
    m = MXEmbeddingBag.from_embedding_bag(trained_bag(), "mxint8")
    ids = torch.arange(12).reshape(3, 4)
    w = torch.rand(3, 4)
    assert close(m(ids, None, w), F.embedding_bag(ids, m.decoded_weight(), mode="sum", per_sample_weights=w))
    with pytest.raises(ConfigError, match="'per_sample_weights' parameter of MXEmbeddingBag.forward"):
        m(ids, None, w.reshape(4, 3))


def test_collection_refuses_inputs_it_cannot_read_by_name():
    a = MXEmbeddingBag.from_embedding_bag(trained_bag(n=50, dim=16, seed=1), "mxint8")
    col = MXEmbeddingBagCollection({"user": a})
    ids, offs = torch.tensor([1, 2, 3]), torch.tensor([0, 2])

    class Jagged:  # keyed-jagged-like: keys and values, but not a mapping
        def keys(self):
            return ["user"]

    for bad in ([("user", (ids, offs))], None, Jagged()):
        with pytest.raises(ConfigError, match="'features' parameter.*mapping"):
            col(bad)
    for bad in ((ids, offs, None, None), (), "ids", 3):
        with pytest.raises(ConfigError, match="feature 'user'"):
            col({"user": bad})
    assert torch.equal(col({"user": [ids, offs]})["user"], a(ids, offs))  # a list is a tuple
