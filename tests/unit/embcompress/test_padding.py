"""MXEmbeddingBag's padding_idx: the padding id is left out of its bags, as nn.EmbeddingBag leaves
it out (of sums, weighted sums, mean counts and maxima; a bag of padding alone gives zeros), on
every path: eager, torch.compile, torch.export, a row source (TieredStore), an exported file."""

import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import embcompress  # noqa: E402
from embcompress import ConfigError  # noqa: E402
from embcompress.idmap import IdMap  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402

PAD = 3


def trained(mode="sum", n=12, dim=16, **kw):
    torch.manual_seed(0)
    emb = torch.nn.EmbeddingBag(n, dim, mode=mode, padding_idx=PAD, **kw)
    with torch.no_grad():
        emb.weight.normal_()
        emb.weight[PAD] = torch.randn(dim)  # a trained model's padding row need not be zero
    return emb


# bags: padding inside, at both ends, a bag of padding alone, an empty bag
IDS = torch.tensor([PAD, 1, 2, PAD, 5, PAD, PAD, 7, PAD])
OFFSETS = torch.tensor([0, 5, 7, 7])


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_bags_leave_the_padding_id_out_as_torch_does(backend, mode):
    emb = trained(mode)
    bag = MXEmbeddingBag.from_embedding_bag(emb, "fp32")
    assert bag.padding_idx == PAD and f"padding_idx={PAD}" in repr(bag)
    with torch.no_grad():
        want = emb(IDS, OFFSETS)
        assert torch.equal(bag(IDS, OFFSETS), want)
        assert torch.equal(bag(IDS.reshape(3, 3)), emb(IDS.reshape(3, 3)))  # 2-D input
    assert torch.equal(want[1], torch.zeros(16)) and torch.equal(want[2], torch.zeros(16))


def test_weights_and_include_last_offset(backend):
    emb = trained("sum", include_last_offset=True)
    bag = MXEmbeddingBag.from_embedding_bag(emb, "fp32")
    offsets = torch.cat([OFFSETS, torch.tensor([len(IDS)])])
    w = torch.arange(1.0, len(IDS) + 1)
    with torch.no_grad():
        assert torch.equal(bag(IDS, offsets, w), emb(IDS, offsets, w))
        assert torch.equal(bag(IDS, offsets), emb(IDS, offsets))


def test_bad_bags_are_refused_as_without_padding(backend):
    bag = MXEmbeddingBag.from_embedding_bag(trained(), "fp32")
    with pytest.raises(ConfigError, match="'offsets'.*start at 0"):
        bag(IDS, torch.tensor([1, 4]))
    with pytest.raises(ConfigError, match="'indices'.*\\[0, 12\\)"):
        bag(torch.tensor([PAD, 40]), torch.tensor([0]))


def test_an_id_map_leaves_out_the_raw_padding_id(backend):
    """With an id map the padding id is a raw id, left out before the map; other raw ids that the
    map sends to the same row are pooled."""
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32), "fp32")
    idm = IdMap.from_arrays([100, 200, 300], [0, 1, 1], 4)
    bag = MXEmbeddingBag(q, id_map=idm, mode="sum", padding_idx=300)
    rows = torch.from_numpy(q.dequantize())
    with torch.no_grad():
        out = bag(torch.tensor([100, 300, 200, 300]), torch.tensor([0, 2]))
    assert torch.equal(out, torch.stack([rows[0], rows[1]]))
    with pytest.raises(ConfigError, match="'id_map' parameter.*padding_idx=3.*raw id"):
        MXEmbeddingBag.from_embedding_bag(trained(), "fp32", id_map=IdMap.from_arrays([7], [0], 12))


def test_padding_idx_is_checked_and_counts_back_like_torch():
    q = embcompress.quantize(np.ones((5, 8), np.float32), "fp32")
    assert MXEmbeddingBag(q, padding_idx=-1).padding_idx == 4
    for bad in (5, -6, 1.0, True, "0"):
        with pytest.raises(ConfigError, match="padding_idx"):
            MXEmbeddingBag(q, padding_idx=bad)


def test_an_embeddings_padding_is_pooled_as_any_id():
    """nn.Embedding's padding_idx only stops its gradient: its lookups return the row."""
    emb = torch.nn.Embedding(12, 16, padding_idx=PAD)
    bag = MXEmbeddingBag.from_embedding_bag(emb, "fp32")
    assert bag.padding_idx is None


def test_compile_and_export_keep_the_padding(tmp_path):
    bag = MXEmbeddingBag.from_embedding_bag(trained("mean"), "mxfp8_e4m3").eval()
    with torch.no_grad():
        want = bag(IDS, OFFSETS)
        assert torch.equal(torch.compile(bag, fullgraph=True)(IDS, OFFSETS), want)
        ep = torch.export.export(bag, (IDS, OFFSETS))
        assert torch.equal(ep.module()(IDS, OFFSETS), want)
    assert pickle.loads(pickle.dumps(bag)).padding_idx == PAD


def test_export_records_the_padding_and_the_file_and_a_store_serve_it(backend, tmp_path):
    emb = trained("mean")
    model = torch.nn.ModuleDict({"user": emb})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (entry,) = embcompress.export(model, fmt="fp32", out_dir=tmp_path)
    served = MXEmbeddingBag.from_file(entry["path"])
    from embcompress.store import TieredStore

    store = TieredStore(entry["path"], dram_bytes=4 * served.records.shape[1], policy="lru")
    over_store = MXEmbeddingBag(store)
    with torch.no_grad():
        want = emb(IDS, OFFSETS)
        assert torch.equal(served(IDS, OFFSETS), want)
        assert over_store.padding_idx == PAD and torch.equal(over_store(IDS, OFFSETS), want)
        assert torch.equal(MXEmbeddingBag.from_file(entry["path"], padding_idx=None)(IDS, OFFSETS),
                           MXEmbeddingBag.from_embedding_bag(torch.nn.EmbeddingBag.from_pretrained(
                               emb.weight, mode="mean"), "fp32")(IDS, OFFSETS))
    store.close()


def test_export_through_a_map_of_the_trained_rows_records_a_padding_row(tmp_path):
    """A bag trained on its map's rows left out a row, which the map gives raw ids of its own: the
    file records padding_row (not used by from_file) and export says how to serve it."""
    model = torch.nn.ModuleDict({"user": trained("sum", n=4)})
    idm = IdMap.from_arrays([10, 11, 12], [0, 1, 2], 4)
    with pytest.warns(UserWarning, match="from_file\\(path, padding_idx=.*padding_row"):
        (entry,) = embcompress.export(model, fmt="fp32", out_dir=tmp_path, id_maps={"user": idm})
    assert entry["padding_row"] == PAD and "padding_idx" not in entry
    assert MXEmbeddingBag.from_file(entry["path"]).padding_idx is None


def test_the_op_refuses_a_keep_mask_that_does_not_fit():
    q = embcompress.quantize(np.ones((5, 16), np.float32), "fp32")
    bag = MXEmbeddingBag(q, padding_idx=0)
    ids, offsets = torch.tensor([0, 1, 2]), torch.tensor([0])
    for keep in (torch.tensor([True, False]), torch.tensor([1, 0, 1])):
        with pytest.raises(ConfigError, match="'keep' parameter"):
            torch.ops.embcompress.pooled_lookup(bag.records, ids, offsets, None, "fp32", 16, 0, "sum", False, 1, keep)
