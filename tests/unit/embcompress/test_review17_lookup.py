"""Review 17 of pooled_lookup's boundary checks (embcompress/kernels/lookup.py), on both backends."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.kernels import compiled
from tests.conftest import pooled_lookup_on as run
from tests.conftest import quantize_default as quantize


def backends():
    return ["numpy"] + (["cython"] if compiled("_lookup") is not None else [])


@pytest.mark.parametrize("backend", backends())
def test_ragged_per_sample_weights_name_the_parameter(backend):
    # numpy's own "inhomogeneous shape" ValueError escaped, naming no parameter (ragged indices
    # and offsets already got the project's message)
    t = quantize(np.ones((4, 8), np.float32), "fp32")
    with pytest.raises(ConfigError, match="'per_sample_weights' parameter of pooled_lookup"):
        run(backend, t, [1, 2, 3], [0, 1], per_sample_weights=[[1.0], [2.0, 3.0]])
