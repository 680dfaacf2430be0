"""Run a sweep (methods x budgets x formats x seeds) from a JSON config; write its report.

Trains a click model per run on the configured dataset and writes results.json, report.md,
report.html and pareto.png into --out. See examples/sweeps/ for configs.

The config, --out and the data are checked first; --out is made only then, so a run stopped by
its input leaves no folder behind (and a run that fails later removes the empty folders it made).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..container import check_output_folder
from ..errors import BackendUnavailableError, ConfigError
from .progress import progress_bar


def command(
    config: Path = typer.Argument(..., help="Sweep config (JSON), e.g. examples/sweeps/frappe.json."),
    out: Path = typer.Option(..., "--out", help="Folder for results.json, report.md, report.html, pareto.png."),
    data: str = typer.Option(None, "--data", help="Data file or folder; overrides the config's dataset path."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar; print only where the report went."),
) -> None:
    try:  # the serving core never imports analysis at module level
        from analysis.ctr.report import write_report
        from analysis.ctr.sweep import SweepConfig, load_sweep_data, run_sweep
    except ImportError as exc:
        raise BackendUnavailableError(
            f"'embcompress evaluate' needs the analysis package and torch ({exc}). Install torch==2.13.0 and this distribution."
        ) from None
    cfg = SweepConfig.from_json(config)
    if data is not None:
        from dataclasses import replace

        if cfg.dataset.name == "synthetic":
            raise ConfigError(
                f"--data names a real log, but the dataset of {config} is 'synthetic' (generated, no "
                f"file). Set \"dataset\": {{\"name\": \"frappe\" | \"criteo\" | \"talkingdata\", ...}} in "
                f"the config, or leave out --data."
            )

        cfg = replace(cfg, dataset=replace(cfg.dataset, path=data))
    check_output_folder(out)  # a bad --out fails now, not after a sweep of many minutes
    start = time.perf_counter()
    splits = load_sweep_data(cfg)  # bad data stop the run before --out is made
    made = _make_out(out)
    try:
        with progress_bar("evaluate", quiet=quiet) as bar:
            result = run_sweep(cfg, splits=splits, progress=bar)
        paths = write_report(result, out)
    except BaseException:
        _remove_if_empty(made)  # a failed run leaves no empty folder behind
        raise
    if not quiet:
        from analysis.ctr.report import findings

        for line in findings(result.to_dict()):
            typer.echo(line)
        typer.echo(f"{len(result.runs)} runs in {time.perf_counter() - start:.0f}s.")
    typer.echo(f"Wrote {paths['markdown'].name}, {paths['html'].name}, {paths['results'].name}, "
               f"{paths['pareto'].name} (output folder: {Path(out).resolve()})")


def _make_out(out: Path) -> list[Path]:
    """Make --out; returns the folders this made, deepest first."""
    made = [q for q in (out, *out.parents) if not q.exists()]
    out.mkdir(parents=True, exist_ok=True)
    return made


def _remove_if_empty(made: list[Path]) -> None:
    for q in made:
        try:
            q.rmdir()
        except OSError:  # not empty (or gone): keep it and everything above it
            return
