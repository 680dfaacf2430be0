"""MXEmbeddingBagCollection looks its in-memory tables up in one call (``pooled_lookup_many``,
the op ``embcompress::pooled_lookup_many``): same bits and errors as each bag's own call, on
both kernel backends, in eager mode, under the dispatcher, torch.compile and torch.export."""

import numpy as np
import pytest
import torch

import embcompress.nn as enn
from embcompress import quantize
from embcompress.errors import ConfigError
from embcompress.idmap import IdMap
from embcompress.kernels.lookup import Job, pooled_lookup, pooled_lookup_many
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection

FORMATS = ["mxint8", "mxfp4_e2m1", "mxfp8_e4m3", "mx6", "int8_rowwise", "fp32", "bf16", "mxfp6_e2m3"]


def bits(t):
    return t.detach().float().numpy().view(np.uint32)


def random_bags(rng, n_rows, n_bags, max_len=6, last=False):
    lens = rng.integers(0, max_len, n_bags)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    ids = rng.integers(0, n_rows, int(lens.sum())).astype(np.int64)
    return ids, offsets if last else offsets[:-1]


def test_pooled_lookup_many_gives_each_tables_lookup_bit_for_bit(backend):
    rng = np.random.default_rng(1)
    jobs, want = [], []
    for k in range(40):
        fmt = FORMATS[k % len(FORMATS)]
        n, dim = int(rng.integers(1, 200)), int(rng.choice([8, 16, 32, 48, 64, 128, 100]))
        q = quantize(rng.standard_normal((n, dim)).astype(np.float32), fmt)
        last = bool(k % 3 == 0)
        ids, offsets = random_bags(rng, n, int(rng.integers(0, 90)), last=last)
        mode = ("sum", "mean", "max")[k % 3]
        w = rng.standard_normal(ids.size).astype(np.float32) if mode == "sum" and k % 2 else None
        jobs.append(Job(q.data, fmt, dim, q.block_size, ids, offsets, w, mode, last))
        want.append(pooled_lookup(q, ids, offsets, mode=mode, per_sample_weights=w, include_last_offset=last))
    for threads in (1, 2):
        got = pooled_lookup_many(jobs, threads)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == np.float32
            assert np.array_equal(g.view(np.uint32), w.view(np.uint32))


def test_a_keep_mask_leaves_its_entries_out_as_compacted_bags_do(backend):
    """A job's keep mask (a padding id's entries False) pools what pooled_lookup pools on the
    bags without those entries: means count the kept entries, a bag of padding alone is zeros."""
    rng = np.random.default_rng(11)
    jobs, want = [], []
    for k in range(30):
        fmt = FORMATS[k % len(FORMATS)]
        n, dim = int(rng.integers(1, 100)), int(rng.choice([16, 32, 64, 128]))
        q = quantize(rng.standard_normal((n, dim)).astype(np.float32), fmt)
        last = bool(k % 4 == 0)
        ids, offsets = random_bags(rng, n, int(rng.integers(0, 60)), last=last)
        keep = rng.random(ids.size) < (0.0 if k % 7 == 0 else 0.7)
        mode = ("sum", "mean", "max")[k % 3]
        w = rng.standard_normal(ids.size).astype(np.float32) if mode == "sum" and k % 2 else None
        jobs.append(Job(q.data, fmt, dim, q.block_size, ids, offsets, w, mode, last, keep))
        ends = np.append(offsets, ids.size) if not last else offsets
        before = np.concatenate([[0], np.cumsum(keep)])
        kept_offsets = before[ends[:-1]] if not last else before[ends]
        want.append(pooled_lookup(q, ids[keep], kept_offsets, mode=mode, per_sample_weights=None if w is None else w[keep],
                                  include_last_offset=last))
    for threads in (1, 2):
        for g, w in zip(pooled_lookup_many(jobs, threads), want):
            assert np.array_equal(g.view(np.uint32), w.view(np.uint32))


@pytest.mark.parametrize("case", ["negative id", "id past the table", "offsets not from 0", "decreasing offsets",
                                  "weights with mean", "weights of another length", "last offset short",
                                  "unknown format"])
def test_pooled_lookup_many_refuses_a_bad_job_as_pooled_lookup_does(backend, case):
    rng = np.random.default_rng(2)
    q = quantize(rng.standard_normal((20, 32)).astype(np.float32), "mxint8")
    good = Job(q.data, "mxint8", 32, None, np.array([1, 2, 3]), np.array([0, 2]), None, "sum", False)
    ids, offsets, w, mode, last, fmt = np.array([1, 2, 3]), np.array([0, 2]), None, "sum", False, "mxint8"
    if case == "negative id":
        ids = np.array([1, -1, 3])
    elif case == "id past the table":
        ids = np.array([1, 20, 3])
    elif case == "offsets not from 0":
        offsets = np.array([1, 2])
    elif case == "decreasing offsets":
        offsets = np.array([0, 2, 1])
    elif case == "weights with mean":
        w, mode = np.ones(3, np.float32), "mean"
    elif case == "weights of another length":
        w = np.ones(2, np.float32)
    elif case == "last offset short":
        offsets, last = np.array([0, 2]), True
    elif case == "unknown format":
        fmt = "mxfp3"
    bad = Job(q.data, fmt, 32, None, ids, offsets, w, mode, last)
    table = type("T", (), {"fmt": fmt, "shape": (20, 32), "block_size": None, "data": q.data})()
    with pytest.raises(ConfigError) as alone:
        pooled_lookup(table, ids, offsets, mode=mode, per_sample_weights=w, include_last_offset=last)
    with pytest.raises(ConfigError) as many:
        pooled_lookup_many([good, bad, good])
    assert str(many.value) == str(alone.value)


def collection(rng, fmts=FORMATS, **kw):
    bags = {}
    for i, fmt in enumerate(fmts):
        n, dim = int(rng.integers(5, 300)), int(rng.choice([16, 32, 64]))
        torch.manual_seed(i)
        bag = torch.nn.EmbeddingBag(n, dim, mode=("sum", "mean", "max")[i % 3])
        bags[f"f{i}"] = MXEmbeddingBag.from_embedding_bag(bag, fmt, **kw)
    return MXEmbeddingBagCollection(bags)


def inputs(rng, coll, n_bags=7):
    x = {}
    for i, (name, bag) in enumerate(coll.bags.items()):
        n = bag.num_embeddings
        if i % 4 == 3:  # a 2-D input
            x[name] = torch.from_numpy(rng.integers(0, n, (n_bags, 3)))
            continue
        ids, offsets = random_bags(rng, n, n_bags)
        value = (torch.from_numpy(ids).to(torch.int32 if i % 5 == 1 else torch.int64), torch.from_numpy(offsets))
        if bag.mode == "sum" and i % 2 == 0:
            value += (torch.from_numpy(rng.random(ids.size).astype(np.float32)),)
        x[name] = value
    return x


def each_alone(coll, x):
    return {name: coll.bags[name](*((v,) if isinstance(v, torch.Tensor) else v)) for name, v in x.items()}


def test_collection_is_one_call_and_equals_each_bag(backend, monkeypatch):
    rng = np.random.default_rng(3)
    coll = collection(rng)
    x = inputs(rng, coll)
    calls = []
    real = enn.pooled_lookup_many
    monkeypatch.setattr(enn, "pooled_lookup_many", lambda jobs, t: (calls.append(len(jobs)), real(jobs, t))[1])
    with torch.no_grad():
        got = coll(x)
        assert calls == [len(FORMATS)]
        want = each_alone(coll, x)
    assert list(got) == list(x)
    for name in x:
        assert got[name].dtype == want[name].dtype and np.array_equal(bits(got[name]), bits(want[name]))


def test_collection_with_maps_padding_casts_and_a_store_matches_each_bag(backend, tmp_path):
    """Bags the fused call cannot take (a padding id, rows from a store) take their own, in the
    order of the features; id maps and output casts are the bags' own."""
    from embcompress import write_table
    from embcompress.store import TieredStore

    rng = np.random.default_rng(4)
    idm = IdMap.from_arrays(np.arange(1000, 1060), np.arange(60) % 30, 30)
    torch.manual_seed(0)
    mapped = MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag(30, 32, mode="sum"), "mxint8", id_map=idm)
    padded = MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag(30, 16, mode="mean", padding_idx=2), "mx6")
    half = MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag(30, 16, mode="sum"), "mxfp4_e2m1").half()
    q = quantize(rng.standard_normal((50, 32)).astype(np.float32), "mxint8")
    store = TieredStore(write_table(tmp_path / "t.embc", q), dram_bytes=10 * q.data.shape[1], policy="lru")
    stored = MXEmbeddingBag(store, mode="sum")
    coll = MXEmbeddingBagCollection({"s": stored, "m": mapped, "p": padded, "h": half})
    x = {"p": (torch.tensor([2, 1, 2, 2, 5]), torch.tensor([0, 2, 4])),
         "m": (torch.tensor([1000, 1059, 5, 1030]), torch.tensor([0, 1, 1])),
         "h": torch.tensor([[1, 2], [3, 29]]),
         "s": (torch.tensor([0, 49, 7, 7]), torch.tensor([0, 3]))}
    with torch.no_grad():
        got, want = coll(x), each_alone(coll, x)
    assert list(got) == ["p", "m", "h", "s"] and got["h"].dtype == torch.float16
    for name in x:
        assert np.array_equal(bits(got[name]), bits(want[name])), name
    store.close()


def test_a_bad_feature_is_refused_as_its_bag_refuses_it(backend):
    rng = np.random.default_rng(5)
    coll = collection(rng, fmts=["mxint8", "mxfp4_e2m1", "mx9"])
    x = inputs(rng, coll)
    x["f1"] = (torch.tensor([0, 1, 10**6]), torch.tensor([0, 1]))
    with pytest.raises(ConfigError) as alone:
        coll.bags["f1"](*x["f1"])
    with pytest.raises(ConfigError) as fused:
        coll(x)
    assert str(fused.value) == str(alone.value)


def test_buffers_replaced_after_a_call_are_read(backend):
    """The module's NumPy views of its buffers follow a load of another state (records and map)."""
    idm_a = IdMap.from_arrays(np.arange(100, 130), np.arange(30), 30)
    idm_b = IdMap.from_arrays(np.arange(100, 130), np.arange(30)[::-1].copy(), 30)
    torch.manual_seed(0)
    a = MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag(30, 16, mode="sum"), "mxint8", id_map=idm_a)
    torch.manual_seed(1)
    b = MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag(30, 16, mode="sum"), "mxint8", id_map=idm_b)
    ids, offsets = torch.tensor([100, 101, 129]), torch.tensor([0, 1])
    with torch.no_grad():
        before, want = a(ids, offsets), b(ids, offsets)
        a.load_state_dict(b.state_dict())
        after = a(ids, offsets)
    assert not torch.equal(before, want) and torch.equal(after, want)


class Model(torch.nn.Module):
    def __init__(self, coll):
        super().__init__()
        self.coll = coll

    def forward(self, a_ids, a_offsets, b_ids, b_offsets, c_ids):
        out = self.coll({"f0": (a_ids, a_offsets), "f1": (b_ids, b_offsets), "f2": c_ids})
        return torch.cat([out["f0"], out["f1"], out["f2"]], dim=1)


def compiled_inputs():
    return (torch.tensor([0, 3, 4, 1]), torch.tensor([0, 2]), torch.tensor([5, 6]), torch.tensor([0, 0]),
            torch.tensor([[1, 2], [0, 0]]))


def test_torch_compile_and_export_trace_the_fused_op():
    rng = np.random.default_rng(6)
    fmts = ["mxint8", "mxfp4_e2m1", "mxfp8_e5m2"]
    bags = {}
    for i, fmt in enumerate(fmts):
        torch.manual_seed(i)
        pad = 0 if i == 2 else None  # (its keep mask travels in the op too)
        bags[f"f{i}"] = MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag(10, 16, mode="sum", padding_idx=pad),
                                                          fmt)
    model = Model(MXEmbeddingBagCollection(bags)).eval()
    args = compiled_inputs()
    with torch.no_grad():
        want = model(*args)
        assert torch.equal(torch.compile(model, fullgraph=True)(*args), want)
    ep = torch.export.export(model, args)
    names = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("embcompress.pooled_lookup_many" in n for n in names)
    with torch.no_grad():
        assert torch.equal(ep.module()(*args), want)
    del rng


def test_a_dispatch_mode_sees_the_fused_op():
    from torch.utils._python_dispatch import TorchDispatchMode

    rng = np.random.default_rng(7)
    coll = collection(rng, fmts=["mxint8", "mxfp4_e2m1"])
    x = inputs(rng, coll)
    seen = []

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    with torch.no_grad():
        want = coll(x)
        with Seen():
            got = coll(x)
    assert any("pooled_lookup_many" in s for s in seen)
    for name in x:
        assert torch.equal(got[name], want[name])


def test_meta_inputs_give_meta_outputs_of_the_shapes():
    rng = np.random.default_rng(8)
    coll = collection(rng, fmts=["mxint8", "mxfp4_e2m1"]).to("meta")
    x = {"f0": (torch.tensor([0, 1, 2], device="meta"), torch.tensor([0, 1], device="meta")),
         "f1": (torch.tensor([0, 1], device="meta"), torch.tensor([0], device="meta"))}
    out = coll(x)
    assert out["f0"].device.type == "meta" and tuple(out["f0"].shape) == (2, coll.bags["f0"].embedding_dim)
    assert tuple(out["f1"].shape) == (1, coll.bags["f1"].embedding_dim)


def test_hooks_on_a_bag_or_on_every_module_see_the_collections_call():
    """A bag with hooks (its own, or torch's global module hooks) is called, so they run."""
    rng = np.random.default_rng(9)
    coll = collection(rng, fmts=["mxint8", "mxfp4_e2m1", "mx6"])
    x = inputs(rng, coll)
    seen = []
    handle = coll.bags["f1"].register_forward_hook(lambda m, args, out: (seen.append("f1"), out * 2)[1])
    with torch.no_grad():
        got, alone = coll(x), each_alone(coll, x)
    assert seen == ["f1", "f1"] and torch.equal(got["f1"], alone["f1"])
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: seen.append(type(m).__name__))
    try:
        seen.clear()
        with torch.no_grad():
            coll(x)
    finally:
        handle.remove()
    assert seen.count("MXEmbeddingBag") == 3


def test_views_follow_a_buffer_whose_memory_moved(backend):
    """share_memory() swaps a buffer's storage in place (same tensor): the module's NumPy view of
    the old storage would read freed memory, and miss writes into the new one."""
    idm = IdMap.from_arrays(np.arange(100, 130), np.arange(30), 30)
    torch.manual_seed(0)
    m = MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag(30, 16, mode="sum"), "mxint8", id_map=idm)
    ids, offsets = torch.tensor([100, 101, 129]), torch.tensor([0, 1])
    with torch.no_grad():
        before = m(ids, offsets)
        old = m._views()
        m.share_memory()
        assert m._views() is not old and m._views().records.ctypes.data == m.records.data_ptr()
        m.records.zero_()  # (writes into the shared storage: a stale view would not see them)
        assert torch.equal(m(ids, offsets), torch.zeros_like(before))


def test_jobs_of_the_wrong_shape_are_refused_or_served_never_read_past(backend):
    """The compiled call indexes without bounds checks: a job of nine entries (no keep mask) is
    served, and a short one, a list, or None where an array belongs is an error, never a read
    past the end of a tuple (a nine-entry job crashed the process)."""
    rng = np.random.default_rng(12)
    q = quantize(rng.standard_normal((20, 32)).astype(np.float32), "mxint8")
    ids, offsets = np.array([1, 2, 3]), np.array([0, 2])
    want = pooled_lookup(q, ids, offsets)
    nine = (q.data, "mxint8", 32, None, ids, offsets, None, "sum", False)
    assert np.array_equal(pooled_lookup_many([nine, nine])[1], want)
    assert np.array_equal(pooled_lookup_many([list(nine)])[0], want)
    for bad in [nine[:5], (q.data, "mxint8", 32, None, ids, None, None, "sum", False),
                (None, "mxint8", 32, None, ids, offsets, None, "sum", False)]:
        with pytest.raises((ConfigError, TypeError, AttributeError)):
            pooled_lookup_many([nine, bad])


def test_threads_calling_one_collection_get_what_one_thread_gets():
    """Several Python threads through one collection (its one compiled call, the bags' cached
    buffer views) return exactly the single-threaded results."""
    import threading

    rng = np.random.default_rng(13)
    coll = collection(rng)
    batches = [inputs(np.random.default_rng(100 + i), coll) for i in range(8)]
    with torch.no_grad():
        want = [coll(x) for x in batches]
    errors = []

    def serve(k):
        try:
            with torch.no_grad():
                for i in range(40):
                    j = (k + i) % len(batches)
                    got = coll(batches[j])
                    if any(not torch.equal(got[f], want[j][f]) for f in want[j]):
                        errors.append(f"thread {k}, batch {j}: other values")
        except Exception as e:  # (reported below, not lost in the thread)
            errors.append(repr(e))

    threads = [threading.Thread(target=serve, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []
