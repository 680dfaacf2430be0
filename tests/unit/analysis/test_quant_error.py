"""The format explorer: its numbers follow their definitions; tables print, export and plot."""

import numpy as np
import pytest

import embcompress as ec
from analysis.plots import plot_format_report
from analysis.quant_error import format_report, frequency_bags, frequency_shaped_table
from embcompress.errors import ConfigError


@pytest.fixture(scope="module")
def table():
    return frequency_shaped_table(2000, 48, seed=3)


def test_report_numbers_match_their_definitions(table):
    x, counts = table
    bags = frequency_bags(counts, 50, seed=1)
    rep = format_report(x, ["mxfp4_e2m1", "int8_rowwise", "fp32"], sample_bags=bags)
    assert [r["format"] for r in rep] == ["mxfp4_e2m1", "int8_rowwise", "fp32"]
    row = rep["mxfp4_e2m1"]
    d = ec.dequantize(ec.quantize(x, "mxfp4_e2m1")).astype(np.float64)
    err = d - x
    assert row["qsnr_db"] == pytest.approx(10 * np.log10((x.astype(np.float64) ** 2).sum() / (err**2).sum()))
    assert row["bytes_per_row"] == 2 * (1 + 16)  # 2 blocks of 32 (48 padded to 64): 2 scales + 32 bytes
    assert row["compression"] == pytest.approx(4 * 48 / 34)
    assert row["max_rel_err"] == pytest.approx((np.abs(err).max(1) / np.abs(x).max(1)).max())
    s_ref = np.stack([x[b].astype(np.float64).sum(0) for b in bags])
    s_q = np.stack([d[b].sum(0) for b in bags])
    assert row["bag_rel_err"] == pytest.approx(np.sqrt(((s_q - s_ref) ** 2).sum() / (s_ref**2).sum()))
    assert rep["fp32"]["qsnr_db"] == float("inf") and rep["fp32"]["max_rel_err"] == 0
    # more bits, less error
    assert rep["int8_rowwise"]["qsnr_db"] > row["qsnr_db"]


def test_bags_as_indices_offsets_equal_lists(table):
    x, _ = table
    lists = [np.array([0, 5, 9]), np.array([3]), np.array([7, 7])]
    a = format_report(x, ["mx6"], sample_bags=lists)
    b = format_report(x, ["mx6"], sample_bags=(np.array([0, 5, 9, 3, 7, 7]), np.array([0, 3, 4])))
    assert a["mx6"] == b["mx6"]


def test_printing_markdown_pandas_and_plot(table, tmp_path):
    x, counts = table
    rep = format_report(x[:200], ["mxfp8_e4m3", "mx4"], sample_bags=frequency_bags(counts[:200], 10))
    text = str(rep)
    lines = text.splitlines()
    assert "mxfp8_e4m3" in text and len({len(l) for l in lines[1:]}) == 1  # aligned columns
    md = rep.to_markdown()
    assert md.splitlines()[0].startswith("| format |") and md.count("\n") == 3
    pd = pytest.importorskip("pandas")
    df = rep.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df["format"]) == ["mxfp8_e4m3", "mx4"]
    png = plot_format_report(rep, tmp_path / "sub" / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation(table):
    x, _ = table
    with pytest.raises(ConfigError, match="Unknown format"):
        format_report(x, ["mxfp5"])
    with pytest.raises(ConfigError, match="'table' parameter of format_report must be a float32"):
        format_report(x.astype(np.float64))
    with pytest.raises(ConfigError, match="row ids in"):
        format_report(x, ["fp16"], sample_bags=[np.array([len(x)])])


def test_generator_is_seeded_and_heavy_tailed():
    a, ca = frequency_shaped_table(3000, 16, seed=5)
    b, cb = frequency_shaped_table(3000, 16, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    norms = np.linalg.norm(a, axis=1)
    hot = ca > np.quantile(ca, 0.99)
    assert norms[hot].mean() > 5 * np.median(norms)  # frequent rows are far larger


def test_explore_formats_writes_report_and_plot(tmp_path):
    from analysis.quant_error import explore_formats

    report, plot = explore_formats(tmp_path / "out", n_rows=500, dim=32, n_bags=20, formats=["mxfp4_e2m1", "int8_rowwise"])
    assert plot.exists() and (tmp_path / "out" / "format_report.md").read_text().count("|") > 10
    assert [r["format"] for r in report] == ["mxfp4_e2m1", "int8_rowwise"] and "bag_qsnr_db" in report[0]
