"""Review of the sweep's byte budgets (README "Budgets are bytes, all of them"): every method's
rows times the format's row record plus its id map stay within the bytes it was given."""

import numpy as np
import pytest

from analysis.ctr.compression import compressed_map
from analysis.ctr.data import split_by_time
from analysis.ctr.sweep import train_stats
from analysis.ctr.synthetic import synthetic_log
from embcompress.errors import ConfigError
from embcompress.formats.spec import FORMATS


@pytest.fixture(scope="module")
def stats():
    log = synthetic_log(2000, vocab=(300, 600, 20), n_groups=(10, 12, 4), seed=0)
    return train_stats(split_by_time(log.data, None), ["user", "item"])


@pytest.mark.parametrize("fmt", ["fp32", "mxfp4_e2m1", "int2_rowwise"])
@pytest.mark.parametrize("extra", [0, 1])
def test_qr_never_gets_two_rows_for_the_price_of_one(stats, fmt, extra):
    # A budget between one and two rows: qr needs a quotient and a remainder row, so it cannot fit.
    # It used to be priced at one row and handed (1, 1) tables, twice the bytes it was given.
    dim = 16
    rb = FORMATS[fmt].row_bytes(dim)
    budget = rb + extra * (rb - 1)
    with pytest.raises(ConfigError, match="qr"):
        compressed_map("qr", "item", stats, budget, dim=dim, fmt=fmt, seed=0)


@pytest.mark.parametrize("fmt", ["fp32", "mx4"])
def test_qr_at_two_rows_fits_exactly(stats, fmt):
    dim = 8
    rb = FORMATS[fmt].row_bytes(dim)
    m = compressed_map("qr", "item", stats, 2 * rb + rb - 1, dim=dim, fmt=fmt, seed=0)
    assert m.shape.rows == (1, 1)
    assert m.total_bytes(fmt, dim) == 2 * rb + m.map_bytes <= 3 * rb - 1
    idx = m.index(stats.frequencies("item")[0])
    assert np.all(idx == 0)
