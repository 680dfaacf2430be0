import numpy as np
import pytest
import torch

from analysis.ctr.model import DLRM, TableShape
from analysis.ctr.synthetic import load_synthetic
from analysis.ctr.train import Encoded, TrainConfig, fit, predict
from embcompress.errors import ConfigError


def test_forward_shapes_plain_qr_and_dense():
    torch.manual_seed(0)
    m = DLRM([TableShape((10,)), TableShape((3, 4))], 8, n_dense=2, bottom=(4,), top=(8,))
    idx = torch.tensor([[1, 2, 3], [9, 0, 0]])
    out = m(idx, torch.zeros(2, 2))
    assert out.shape == (2,)
    # the quotient-remainder vector is the product of its two rows
    v = m.vectors(idx)[1]
    w = m.embeddings[1][0].weight[2] * m.embeddings[1][1].weight[3]
    assert torch.allclose(v[0], w)
    m2 = DLRM([TableShape((5,))] * 3, 4, top=())
    assert m2(torch.zeros(7, 3, dtype=torch.long)).shape == (7,)


def _encode(part, vocab):
    idx = np.stack([np.searchsorted(vocab[j], part.cat[:, j]) for j in range(part.cat.shape[1])], axis=1)
    return Encoded.from_numpy(idx, part.dense, part.label)


def test_training_learns_the_synthetic_signal_and_keeps_best_epoch():
    s = load_synthetic(6000, seed=0, vocab=(50, 80, 10), n_groups=(5, 8, 3))
    vocab = [np.unique(np.concatenate([p.cat[:, j] for p in (s.train, s.validation, s.test)])) for j in range(3)]
    tr, va, te = (_encode(p, vocab) for p in (s.train, s.validation, s.test))
    torch.manual_seed(0)
    m = DLRM([TableShape((len(v),)) for v in vocab], 8, top=(16,))
    before = predict(m, te)
    hist = fit(m, tr, va, TrainConfig(epochs=3, batch_size=256, lr=0.01), seed=0)
    after = predict(m, te)
    from analysis.ctr.metrics import auc, logloss

    y = te.label.numpy()
    assert auc(y, after) > 0.65 > auc(y, before) - 0.1
    assert logloss(y, after) < logloss(y, before)
    assert hist["epochs_run"] >= 1 and 0 <= hist["best_epoch"] < hist["epochs_run"]
    best = int(np.argmin(hist["val_logloss"]))
    assert hist["best_epoch"] == best
    # the kept weights are the best epoch's: their validation logloss is the best one seen
    assert logloss(va.label.numpy(), predict(m, va)) == pytest.approx(hist["val_logloss"][best], rel=1e-6)


def test_train_config_validation():
    with pytest.raises(ConfigError, match="'epochs' parameter of TrainConfig"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="'monitor'"):
        TrainConfig(monitor="accuracy")
    assert TrainConfig().to_dict()["version"] == 1
