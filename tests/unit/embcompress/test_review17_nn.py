"""Review 17 of the torch module, as a user swapping nn.EmbeddingBag for MXEmbeddingBag: each
test names the defect it caught."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from embcompress.idmap import IdMap  # noqa: E402
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection  # noqa: E402


def _bag(n=50, dim=16, mode="sum", fmt="mxint8", **kw):
    torch.manual_seed(0)
    return MXEmbeddingBag.from_embedding_bag(nn.EmbeddingBag(n, dim, mode=mode, **kw), fmt)


def test_fx_symbolic_trace_records_the_module_as_one_call_as_it_records_nn_embedding_bag():
    # torch.fx.symbolic_trace (FX graph surgery, prepare_fx quantization, torchrec) keeps an
    # nn.EmbeddingBag a leaf; it traced into MXEmbeddingBag.forward instead, which refused the
    # fx Proxy inputs with "must be a torch.Tensor ... Got 'Proxy'" though the caller passed tensors.
    idm = IdMap.from_arrays(np.arange(100, 5100, 100), np.arange(50), 50, fallback_rows=[49])
    bag = MXEmbeddingBag(_bag().source, id_map=idm, mode="sum", padding_idx=300)

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag, self.top = bag, nn.Linear(16, 2)

        def forward(self, ids, offsets, weights, ids2d):
            return self.top(self.bag(ids, offsets, weights) + self.bag(ids2d))

    model = Tower()
    gm = torch.fx.symbolic_trace(model)
    assert [n.target for n in gm.graph.nodes if n.op == "call_module"] == ["bag", "bag", "top"]
    ids, offsets = torch.tensor([100, 300, 7, 4200, 300], dtype=torch.int32), torch.tensor([0, 2, 2])
    args = (ids, offsets, torch.rand(5), torch.tensor([[100, 200], [300, 300], [9, 4900]]))
    assert torch.equal(gm(*args), model(*args))


def test_fx_symbolic_trace_of_a_collection():
    # likewise the collection, given its features built in the traced forward or as its input
    a, b = _bag(mode="sum"), _bag(mode="max")
    col = MXEmbeddingBagCollection({"a": a, "b": b})

    class Built(nn.Module):
        def __init__(self):
            super().__init__()
            self.col = col

        def forward(self, ids, offsets, ids2d):
            out = self.col({"a": (ids, offsets), "b": ids2d})
            return out["a"] * 2, out["b"]

    class Given(nn.Module):
        def __init__(self):
            super().__init__()
            self.col = col

        def forward(self, features):
            return self.col(features)["b"]

    ids, offsets, ids2d = torch.tensor([1, 2, 3, 40]), torch.tensor([0, 1]), torch.tensor([[5, 6], [7, 8]])
    for model, args in ((Built(), (ids, offsets, ids2d)), (Given(), ({"a": (ids, offsets), "b": ids2d},))):
        gm = torch.fx.symbolic_trace(model)
        got, want = gm(*args), model(*args)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert torch.equal(g, w)
