"""Run the format explorer on a trained-looking table and plot it (interim demo).

Draws a 100k x 64 table shaped like a trained recommendation embedding table (Zipf id frequencies,
row norms growing with frequency, clustered rows, outlier dimensions, heavy-tailed elements),
quantizes it to every format, and prints bytes per row, compression, QSNR and the error of pooled
bag sums; the plot goes to the output folder named at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import BackendUnavailableError


def run_demo(out: Path, *, n_rows: int = 100_000, dim: int = 64, seed: int = 0, n_bags: int = 2000, progress=None):
    """The demo as a function: returns ``(report, plot path)``."""
    try:
        from analysis.plots import plot_format_report
        from analysis.quant_error import format_report, frequency_bags, frequency_shaped_table
    except ImportError as exc:  # the demo shows analysis; the serving core does not need it
        raise BackendUnavailableError(f"The demo needs the 'analysis' package of this distribution ({exc}).") from None
    table, counts = frequency_shaped_table(n_rows, dim, seed=seed)
    bags = frequency_bags(counts, n_bags, seed=seed)
    report = format_report(table, sample_bags=bags)
    plot = plot_format_report(report, Path(out) / "format_report.png")
    (Path(out) / "format_report.md").write_text(report.title + "\n\n" + report.to_markdown() + "\n")
    return report, plot


def command(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the report and plot."),
    rows: int = typer.Option(100_000, help="Rows of the generated table."),
    dim: int = typer.Option(64, help="Embedding dimension."),
    seed: int = typer.Option(0, help="Seed of the generated table and bags."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the report."),
) -> None:
    start = time.perf_counter()
    report, plot = run_demo(out, n_rows=rows, dim=dim, seed=seed)
    typer.echo(str(report))
    if not quiet:
        typer.echo(f"\nTable: generated {rows} x {dim}, frequency-shaped (seed {seed}); {time.perf_counter() - start:.1f}s.")
    typer.echo(f"Wrote {plot} and {plot.with_suffix('.md')} (output folder: {plot.parent.resolve()})")
