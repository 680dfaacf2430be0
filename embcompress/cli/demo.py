"""Run the whole pipeline end to end and print one table: the main job.

Generates a synthetic click log (or reads --data: a Frappe folder, a Criteo TSV, a TalkingData
CSV), mines it, fits learned id maps, trains a click model per method (full tables, the hashing
trick, learned maps), exports the tables in fp32 and MXFP4, serves the test rows through tiered
stores (checked against the in-memory kernel), and prints bytes, compression, AUC and logloss.
The report, plots, table files and results.json go to the folder named at the end.

Re-running into the same --out replaces those files; files of an earlier run whose names this
run does not write (other data, other features) stay beside them, so give each dataset its own
--out.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import BackendUnavailableError

# run_demo's parameters -> the flags that set them (embcompress.cli.main names the flag in an error)
FLAGS = {"seed": "--seed", "data": "--data", "out_dir": "--out"}


def command(
    data: Path = typer.Option(None, "--data", help="A real log instead of the synthetic one: Frappe folder, Criteo TSV, TalkingData CSV."),
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the report, plots and table files."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the maps and the training."),
    quick: bool = typer.Option(False, "--quick", help="Tiny sizes: seconds instead of minutes (a smoke test)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    try:  # the demo shows analysis; the serving core does not import it at module level
        from analysis.pipeline import run_demo
    except ImportError as exc:
        raise BackendUnavailableError(f"The demo needs the 'analysis' package of this distribution and torch ({exc}).") from None
    from .progress import progress_bar

    start = time.perf_counter()
    with progress_bar("demo", quiet=quiet) as bar:
        result = run_demo(out, data=data, seed=seed, quick=quick, progress=bar)
    elapsed = time.perf_counter() - start
    ds = result.dataset
    typer.echo(f"\nembcompress demo on {ds['name']} ({ds['rows']['train']} train / {ds['rows']['test']} test rows), seed {seed}:\n")
    typer.echo(result.table())
    bad = sum(s["mismatches"] for s in result.serving.values())
    lookups = sum(s["lookups"] for s in result.serving.values())
    typer.echo(
        f"\nServed {lookups} lookups from the table files through tiered stores: "
        + ("all equal to the in-memory kernel." if bad == 0 else f"{bad} outputs DIFFER from the in-memory kernel.")
    )
    typer.echo(f"Finished in {elapsed:.0f}s. Report, plots and table files: {Path(result.out_dir).resolve()}/ (open report.md)")
    if bad:
        raise typer.Exit(1)
