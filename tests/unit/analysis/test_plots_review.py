"""Review tests: the analysis plots and the format explorer write their files atomically."""

import pytest

from analysis.plots import plot_format_report, plot_pareto
from analysis.quant_error import ReportTable

SUMMARY = [{"method": "full", "format": "fp32", "budget": None, "bytes": 1000.0, "auc": {"mean": 0.8, "std": 0.0}},
           {"method": "hash", "format": "fp32", "budget": 0.1, "bytes": 100.0, "auc": {"mean": 0.7, "std": 0.01}}]


@pytest.fixture
def failing_png(monkeypatch):
    """Saving that writes part of the PNG, then fails (as a full disk would)."""
    from matplotlib import cbook
    from matplotlib.figure import Figure

    def savefig(self, fname, **kwargs):
        with cbook.open_file_cm(fname, "wb") as fh:
            fh.write(b"\x89PNG partial")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig)


def _report():
    return ReportTable([{"format": "fp16", "bits_per_element": 16.0, "bytes_per_row": 8, "compression": 2.0,
                         "qsnr_db": 70.0, "max_rel_err": 1e-3}], title="t")


@pytest.mark.parametrize("plot", ["pareto", "formats"])
def test_a_failed_plot_leaves_the_old_file_and_no_litter(tmp_path, failing_png, plot):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old plot")
    with pytest.raises(OSError, match="No space left on device"):  # the injected failure, not any OSError
        if plot == "pareto":
            plot_pareto(SUMMARY, path)
        else:
            plot_format_report(_report(), path)
    assert path.read_bytes() == b"old plot"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_plots_still_write_pngs(tmp_path):
    a = plot_pareto(SUMMARY, tmp_path / "sub" / "a.png")
    b = plot_format_report(_report(), tmp_path / "b.png")
    for p in (a, b):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explore_formats_writes_its_markdown_atomically(tmp_path, monkeypatch):
    import embcompress.container as container
    from analysis.quant_error import explore_formats

    written = []
    real = container.write_file_atomic

    def spy(path, data):
        written.append(path.name)
        return real(path, data)

    monkeypatch.setattr(container, "write_file_atomic", spy)
    explore_formats(tmp_path, n_rows=200, dim=8, n_bags=20, formats=["fp16", "mxfp4_e2m1"])
    assert {"format_report.md", "format_report.png"} <= set(written)
