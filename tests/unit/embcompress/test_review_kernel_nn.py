"""Review of the torch ops' move to torch.library's low-level API (c23ef3d): what a user sees."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import embcompress  # noqa: E402
from embcompress import ConfigError  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402
from tests.conftest import quantize_default as quantize  # noqa: E402


class _Source:
    """A row source that is not an in-memory table (the module calls it through source_lookup)."""

    def __init__(self, q):
        self.q, self.shape, self.fmt = q, q.shape, q.fmt

    def pooled_lookup(self, indices, offsets, **opts):
        return embcompress.pooled_lookup(self.q, indices, offsets, **opts)


def _table():
    return quantize(np.arange(24, dtype=np.float32).reshape(6, 4) / 8, "fp32")


@pytest.mark.parametrize("over", ["records", "row source"])
def test_backward_through_per_sample_weights_is_refused_not_silently_gradient_free(backend, over):
    """The module has no backward. Per-sample weights that require grad still pool (the output
    requires grad, as before), but a backward through them must raise: with the ops defined by
    the low-level API, autograd's fallback left the weights' .grad None with only a warning,
    so a model training its weights silently stopped learning them."""
    q = _table()
    m = MXEmbeddingBag(q if over == "records" else _Source(q), mode="sum")
    ids, offsets = torch.tensor([1, 2, 3, 5]), torch.tensor([0, 2])
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    out = m(ids, offsets, w)
    assert torch.equal(out.detach(), m(ids, offsets, w.detach()))
    assert out.requires_grad
    with pytest.raises(ConfigError, match="no backward.*detach"):
        out.sum().backward()
    assert w.grad is None
    # without grad mode, or with weights that need none, nothing changes
    with torch.no_grad():
        assert not m(ids, offsets, w).requires_grad
    assert not m(ids, offsets, w.detach()).requires_grad
