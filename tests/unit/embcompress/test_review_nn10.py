"""Review 10 of the torch module, as a demanding user of a drop-in nn.EmbeddingBag: each test
names the defect it caught."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from embcompress import ConfigError  # noqa: E402
from embcompress.idmap import IdMap  # noqa: E402
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection  # noqa: E402


def _bag(n=50, dim=32, mode="sum", fmt="mxint8", **kw):
    torch.manual_seed(0)
    return MXEmbeddingBag.from_embedding_bag(nn.EmbeddingBag(n, dim, mode=mode, **kw), fmt)


# -- the module ---------------------------------------------------------------------------------


def test_jit_script_is_refused_by_name_with_the_ways_that_work(backend):
    # torch.jit.script failed deep in embcompress/errors.py ("Don't support conversion in
    # JoinedStr"), which says nothing of the module or what to use instead. Now a ConfigError
    # naming torch.jit.trace, torch.compile and torch.export, which do work (trace checked here
    # with an id map, padding and batch sizes other than the traced one).
    m = _bag()

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = m

        def forward(self, ids, offsets):
            return self.bag(ids, offsets)

    for target in (m, Tower(), MXEmbeddingBagCollection({"a": m})):
        with pytest.raises(ConfigError, match=r"torch\.jit\.script.*torch\.jit\.trace.*torch\.compile.*torch\.export"):
            torch.jit.script(target)
    idm = IdMap.from_arrays(np.arange(1000, 1050), np.arange(50), 50, fallback_rows=[49])
    mapped = MXEmbeddingBag(m.source, id_map=idm, mode="sum", padding_idx=1003)
    ids, offsets = torch.tensor([1003, 1001, 1003, 77, 1049]), torch.tensor([0, 2])
    traced = torch.jit.trace(mapped, (ids, offsets))
    for n in (5, 11):
        i = torch.randint(1000, 1060, (n,))
        i[0] = 1003
        o = torch.tensor([0, 1, n // 2])
        assert torch.equal(traced(i, o), mapped(i, o))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_from_embedding_bag_returns_the_trained_bags_dtype(backend, dtype):
    # A drop-in for a bag trained in bf16 (or fp16, fp64) returned float32, so the layer after
    # it (in the model's dtype) failed: "mat1 and mat2 must have the same dtype". nn.EmbeddingBag
    # returns its weight's dtype; the module built from it now does too.
    torch.manual_seed(0)
    emb = nn.EmbeddingBag(50, 32, mode="sum").to(dtype)
    head = nn.Linear(32, 1).to(dtype)
    m = MXEmbeddingBag.from_embedding_bag(emb, "mxint8")
    ids, offsets = torch.randint(0, 50, (20,)), torch.tensor([0, 3, 3, 10])
    out = m(ids, offsets)
    assert out.dtype == emb(ids, offsets).dtype == dtype
    head(out)  # (raised with float32)
    ref = F.embedding_bag(ids, m.decoded_weight(), offsets, mode="sum").to(dtype)
    assert torch.equal(out, ref)
    assert m.float()(ids, offsets).dtype == torch.float32  # cast back as any module


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("with_padding", [False, True])
def test_compile_fullgraph_takes_per_sample_weights_that_require_grad(backend, dynamic, with_padding):
    # torch.compile(fullgraph=True) of a model whose per-sample weights require grad (its
    # weighting trained, its tables served) failed to trace: dynamo traced the backward that
    # refuses, and could not build the ConfigError ("Attempted to call a super() attribute that
    # is not a function or method"). Now it compiles, returns the eager output (requiring grad),
    # and the backward raises the same ConfigError as in eager mode.
    m = _bag()
    if with_padding:
        m = MXEmbeddingBag(m.source, id_map=None, mode="sum", padding_idx=3)
    c = torch.compile(m, fullgraph=True, dynamic=dynamic)
    for n in (20, 9):
        ids = torch.randint(0, 10, (n,))
        offsets = torch.tensor([0, 3, 3, n - 2])
        w = torch.rand(n, requires_grad=True)
        out = c(ids, offsets, w)
        assert out.requires_grad
        assert torch.equal(out.detach(), m(ids, offsets, w.detach()))
        with pytest.raises(ConfigError, match="no backward.*detach"):
            out.sum().backward()
        assert w.grad is None


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_per_sample_weights_that_are_not_floats_are_refused(backend, dtype):
    # torch refuses per-sample weights of another dtype than its weight; the module rounds any
    # float dtype to float32 (as pooled_lookup, which refuses other dtypes), but cast integer,
    # bool and complex ones too (a complex weight lost its imaginary part with only a warning).
    m = _bag()
    ids, offsets = torch.randint(0, 50, (6,)), torch.tensor([0, 2])
    with pytest.raises(ConfigError, match="'per_sample_weights' parameter of MXEmbeddingBag.forward must be a "
                                          "floating-point tensor"):
        m(ids, offsets, torch.ones(6, dtype=dtype))
    for fdt in (torch.float16, torch.bfloat16, torch.float64):
        w = torch.rand(6).to(fdt)
        assert torch.equal(m(ids, offsets, w), m(ids, offsets, w.float()))


@pytest.mark.parametrize("arg", ["input", "offsets", "per_sample_weights"])
def test_ids_offsets_and_weights_that_are_not_tensors_are_named(backend, arg):
    # m([1, 2, 3], offsets) raised "AttributeError: 'list' object has no attribute 'dim'".
    m = _bag()
    args = {"input": torch.tensor([1, 2, 3]), "offsets": torch.tensor([0, 1]),
            "per_sample_weights": torch.ones(3)}
    args[arg] = args[arg].tolist()
    with pytest.raises(ConfigError, match=rf"'{arg}' parameter of MXEmbeddingBag.forward must be a torch.Tensor.*"
                                          r"torch\.as_tensor"):
        m(args["input"], args["offsets"], args["per_sample_weights"])


def test_empty_offsets_with_include_last_offset_are_named_when_traced_too(backend):
    # Eager calls refuse offsets=[] with include_last_offset=True by name; the ops' fake
    # implementations made a (-1, dim) tensor, so torch.compile failed with torch's "negative
    # dimension" and a module on the meta device raised RuntimeError.
    m = _bag(include_last_offset=True)
    empty = torch.tensor([], dtype=torch.int64)
    match = "'offsets' parameter of pooled_lookup must hold at least one entry with include_last_offset=True"
    with pytest.raises(ConfigError, match=match):
        m(empty, empty)
    with pytest.raises(Exception, match=match):
        torch.compile(m, fullgraph=True)(empty, empty)
    with pytest.raises(ConfigError, match=match):
        m.to("meta")(empty, empty)
    assert m(empty, torch.tensor([0])).shape == (0, 32)


class KeyedJaggedTensor:
    """The parts of torchrec's KeyedJaggedTensor a user passes on (torchrec is not installed here)."""

    def __init__(self, features):
        self._f = features

    def keys(self):
        return list(self._f)

    def __getitem__(self, key):
        return JaggedTensor(*self._f[key])

    def to_dict(self):
        return {k: self[k] for k in self._f}


class JaggedTensor:
    def __init__(self, values, offsets):
        self._v, self._o = values, offsets

    def values(self):
        return self._v

    def offsets(self):
        return self._o

    def weights_or_none(self):
        return None


def test_collection_given_keyed_jagged_tensors_names_the_mapping_to_pass(backend):
    # A torchrec KeyedJaggedTensor (or its to_dict() of JaggedTensors) was refused as "a
    # mapping ... Got 'KeyedJaggedTensor'" / "a tensor or a tuple ... Got 'JaggedTensor'", not
    # saying how to turn one into the other; the module's own comment knew the spelling.
    col = MXEmbeddingBagCollection({"a": _bag()})
    ids, offsets = torch.tensor([1, 2, 3]), torch.tensor([0, 1])
    kjt = KeyedJaggedTensor({"a": (ids, offsets)})
    for given in (kjt, kjt.to_dict()):
        with pytest.raises(ConfigError, match=r"\(kjt\[f\]\.values\(\), kjt\[f\]\.offsets\(\)\) for f in kjt\.keys\(\)"):
            col(given)
    out = col({f: (kjt[f].values(), kjt[f].offsets()) for f in kjt.keys()})
    assert torch.equal(out["a"], col.bags["a"](ids, offsets))


@pytest.mark.parametrize("given", ["user.idmap", {10: 0}])
def test_an_id_map_that_is_not_an_idmap_names_how_to_get_one(given):
    # "must be an IdMap onto the table's 50 rows. Got 'str onto ? rows' instead."
    with pytest.raises(ConfigError, match=r"'id_map' parameter of MXEmbeddingBag must be an IdMap.*"
                                          r"IdMap\.load\(path\).*IdMap\.from_arrays.*Got '(str|dict)' instead"):
        MXEmbeddingBag.from_embedding_bag(nn.EmbeddingBag(50, 8), "mxint8", id_map=given)


@pytest.mark.parametrize("dst", [torch.float16, torch.float64, "torch.DoubleTensor"])
def test_module_type_casts_the_output_not_the_row_records_or_the_id_map(backend, dst):
    # nn.Module.type(dtype) casts every parameter and buffer, so model.type(torch.float16) made
    # the uint8 row records float16 (the module then refused its own table) and the int64 id map
    # float16 (ids above 2048 rounded: the map was lost). nn.EmbeddingBag.type casts its weight and
    # so its output; the module now does the same as .to(dtype), itself or inside a model.
    idm = IdMap.from_arrays(np.arange(10**6, 10**6 + 50), np.arange(50), 50, fallback_rows=[49])
    m = MXEmbeddingBag(_bag().source, id_map=idm, mode="sum")
    want_dtype = torch.float64 if isinstance(dst, str) else dst
    ids, offsets = torch.arange(10**6, 10**6 + 6), torch.tensor([0, 2])
    want = m(ids, offsets).to(want_dtype)
    for target in (m, nn.Sequential(m)):
        target.type(dst)
        assert m.records.dtype == torch.uint8 and m.id_map_keys.dtype == torch.int64
        assert torch.equal(m(ids, offsets), want)
        m.float()


def test_random_bags_match_nn_embedding_bag_on_the_decoded_weights(backend):
    # One seeded sweep over what a drop-in meets at once: formats, modes, include_last_offset,
    # padding_idx (negative too), 1-D ids with offsets (empty bags, no ids) or 2-D ids, int32 or
    # int64 ids and offsets, per-sample weights, dims below and across a block. Each call gives
    # what nn.EmbeddingBag.from_pretrained(decoded weights) gives, or both refuse.
    from embcompress import quantize

    rng = np.random.default_rng(10)
    for _ in range(300):
        n, dim = int(rng.integers(1, 40)), int(rng.choice([1, 8, 40]))
        fmt = str(rng.choice(["mxint8", "mxfp4_e2m1", "fp32", "int8_rowwise", "bf16"]))
        mode, ilo = str(rng.choice(["sum", "mean", "max"])), bool(rng.integers(2))
        pad = int(rng.integers(-n, n)) if rng.integers(3) == 0 else None
        m = MXEmbeddingBag(quantize(rng.standard_normal((n, dim)).astype(np.float32), fmt), mode=mode,
                           include_last_offset=ilo, padding_idx=pad)
        ref = nn.EmbeddingBag.from_pretrained(m.decoded_weight(), mode=mode, include_last_offset=ilo, padding_idx=pad)
        dtype = (torch.int64, torch.int32)[int(rng.integers(2))]
        if rng.integers(3) == 0:
            ids, offsets = torch.from_numpy(rng.integers(0, n, (int(rng.integers(0, 5)), int(rng.integers(1, 5))))), None
        else:
            ids = torch.from_numpy(rng.integers(0, n, int(rng.integers(0, 20))))
            cuts = np.sort(rng.integers(0, len(ids) + 1, int(rng.integers(1, 6))))
            cuts[0] = 0
            offsets = torch.from_numpy(np.r_[cuts, len(ids)] if ilo else cuts).to(dtype)
        ids = ids.to(dtype)
        w = torch.from_numpy(rng.random(tuple(ids.shape)).astype(np.float32)) if mode == "sum" and rng.integers(2) else None
        try:
            want = ref(ids, offsets, w)
        except Exception:
            with pytest.raises(Exception):
                m(ids, offsets, w)
            continue
        got = m(ids, offsets, w)
        assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-5), (fmt, mode, ilo, pad, ids, offsets)
