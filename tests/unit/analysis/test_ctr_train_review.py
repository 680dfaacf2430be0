"""Review tests of analysis.ctr.train.predict: probabilities keep the logits' order."""

import numpy as np
import torch

from analysis.ctr.metrics import auc
from analysis.ctr.train import Encoded, predict


class _Fixed(torch.nn.Module):
    """Returns the logit stored for each row (index column 0)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def forward(self, index, dense):
        return self.logits[index[:, 0]]


def test_confident_logits_do_not_tie_after_the_sigmoid():
    # float32 sigmoid rounds every logit above ~17 to exactly 1.0: a positive at logit 30 and a
    # negative at 20 tied, and the AUC of a perfect ranking came out 0.5
    logits = [30.0, 20.0, -25.0, -35.0]
    labels = np.array([1, 0, 1, 0], dtype=np.float32)
    data = Encoded.from_numpy(np.arange(4)[:, None], None, labels)
    p = predict(_Fixed(logits), data)
    assert p.dtype == np.float64
    assert np.all(np.diff(p) < 0)  # strictly in the logits' order
    assert auc(labels, p) == 0.75  # pairs 30>20, 30>-35, -25<20, -25>-35: 3 of 4
    assert auc(labels, p) == auc(labels, np.array(logits))
    np.testing.assert_allclose(p, 1.0 / (1.0 + np.exp(-np.array(logits, dtype=np.float64))), rtol=1e-12)
