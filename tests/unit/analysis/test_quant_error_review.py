"""Review tests of analysis.quant_error: QSNR against an independent formula, and bad tables."""

import ml_dtypes
import numpy as np
import pytest

from analysis.quant_error import format_report
from embcompress.errors import ConfigError


def test_qsnr_and_errors_match_an_independent_cast():
    # fp16 and bf16 storage is a round-to-nearest cast, which numpy and ml_dtypes do on their own
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((300, 40)) * rng.lognormal(0, 2, (300, 1))).astype(np.float32)
    x[5] = 0
    bags = [rng.integers(0, 300, rng.integers(1, 8)) for _ in range(50)]
    rep = format_report(x, ["fp16", "bf16"], sample_bags=bags)
    x64 = x.astype(np.float64)
    for name, dt in (("fp16", np.float16), ("bf16", ml_dtypes.bfloat16)):
        e = x.astype(dt).astype(np.float64) - x64
        amax = np.abs(x64).max(axis=1)
        b = np.array([x64[i].sum(axis=0) for i in bags])
        eb = np.array([e[i].sum(axis=0) for i in bags])
        row = rep[name]
        assert row["qsnr_db"] == pytest.approx(10 * np.log10((x64**2).sum() / (e**2).sum()), abs=1e-9)
        assert row["max_rel_err"] == pytest.approx(np.max(np.abs(e).max(axis=1)[amax > 0] / amax[amax > 0]), rel=1e-12)
        assert row["bag_qsnr_db"] == pytest.approx(10 * np.log10((b**2).sum() / (eb**2).sum()), abs=1e-9)
        assert row["bag_rel_err"] == pytest.approx(np.sqrt((eb**2).sum() / (b**2).sum()), rel=1e-9)


def test_non_finite_table_is_refused_by_format_report_with_its_own_fix():
    # the error came from quantize and told the caller to pass nonfinite='nan_block', which
    # format_report does not take
    x = np.ones((4, 32), np.float32)
    x[2, 3] = np.nan
    x[3, 0] = np.inf
    with pytest.raises(ConfigError, match=r"'table' parameter of format_report must be finite.*rows \[2, 3\]") as e:
        format_report(x, ["fp16"])
    assert "nan_block" not in str(e.value)
