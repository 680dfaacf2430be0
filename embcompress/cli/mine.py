"""Mine logs into a log-stats file: id frequencies, co-occurring pairs, sequences.

Prints one line per feature: ids seen, accesses (rows counted; the ids of a multi-hot column's
lists), and the share of ids seen once (with --min-count N above 1: the ids kept, seen N times or
more, and their accesses); then the rows read and the malformed lines skipped.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import typer

from ..errors import BackendUnavailableError, ConfigError
from .progress import Bar


def _load_mine():
    try:
        from learned_hash import mine
    except ImportError as exc:
        raise BackendUnavailableError(f"mine needs the 'learned_hash' package of this distribution ({exc}).") from None
    return mine


def _holds(log: Path, out: Path, format: str | None = None) -> bool:
    """Whether the log argument ``log`` (a file, a glob or a folder) reads the existing file ``out``."""
    if log.is_dir():
        # a folder's visible files are all read with --format, else its *.parquet files: a stats
        # file written there by a first run was read as a log by the next ('not UTF-8 text')
        inside = out.resolve().relative_to(log.resolve()).parts if out.resolve().is_relative_to(log.resolve()) else ()
        return (bool(inside) and not any(part.startswith((".", "_")) for part in inside)
                and (format is not None or out.suffix == ".parquet"))
    if log.is_file():
        return log.samefile(out)
    return any(Path(f).samefile(out) for f in glob.glob(str(log), recursive=True) if Path(f).is_file())


# library parameter -> the flag that sets it (embcompress.cli.main adds it to a ConfigError's line)
FLAGS = {"source": "LOGS", "features": "--features", "label": "--label", "pairs": "--pair", "format": "--format",
         "delimiter": "--delimiter", "fields": "--fields", "field_map": "--fields", "sequence_key": "--sequence-key",
         "time_key": "--time-key", "engine": "--engine", "spark_master": "--spark-master",
         "memory_limit": "--memory-limit", "threads": "--threads", "min_count": "--min-count",
         "on_bad_line": "--on-bad-line", "kinds": "--kind"}


KINDS = ("int", "string", "hex32")
# Spark's master URL forms (SparkContext and Spark Connect accept these; anything else fails in the JVM)
_MASTER = re.compile(r"^(local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+, *\d+, *\d+\]|yarn|(spark|sc|k8s|mesos)://\S+)$")
_LIBFM = re.compile(r"\.libfm(\.(gz|bz2|zst|lz4))?$")  # a libFM file's name, compressed or not


def _kinds(items: list[str]) -> dict[str, str]:
    """--kind COL=KIND items as mine's kinds (an id column's kind; a time column's is found)."""
    out = {}
    for item in items:
        col, sep, kind = item.partition("=")
        if not sep or not col.strip() or kind.strip() not in KINDS:
            raise ConfigError(f"The 'kinds' parameter of mine takes COL=KIND with KIND one of {KINDS}. Got {item!r} instead.",
                              param="kinds")
        out[col.strip()] = kind.strip()
    return out


def feature_line(stats, feature: str) -> str:
    s = stats.summary(feature)
    multi_hot = stats.source.get("multi_hot") if isinstance(stats.source, dict) else None
    if feature in (multi_hot or ()):
        feature += " (lists of ids)"  # its accesses are the ids of its lists, not rows
    if stats.min_count > 1:  # the rarer ids are pruned: none seen once is left to count
        return (f"{feature}: {s['ids']:,} ids seen {stats.min_count}+ times kept, {s['accesses']:,} of their "
                f"accesses (rarer ids pruned by --min-count)")
    return (f"{feature}: {s['ids']:,} ids seen, {s['accesses']:,} accesses, "
            f"{s['once_share']:.1%} of ids seen once")


def command(
    logs: list[Path] = typer.Argument(..., help="Log files, globs or directories."),
    features: str = typer.Option(..., "--features", help="Categorical columns to count, comma-separated (C1,C2)."),
    label: str = typer.Option(None, "--label", help="Label column: adds positive counts (positive when > 0)."),
    pair: list[str] = typer.Option([], "--pair", help="A:B feature pair whose co-occurrence is counted (repeatable)."),
    format: str = typer.Option(None, "--format", help="criteo | csv | parquet | libfm (default: from the extension)."),
    delimiter: str = typer.Option(None, "--delimiter", help="CSV field delimiter (default ',')."),
    fields: str = typer.Option(None, "--fields", help="libFM field names in line order, comma-separated."),
    sequence_key: str = typer.Option(None, "--sequence-key", help="Session/user column: count consecutive ids."),
    time_key: str = typer.Option(None, "--time-key", help="Time column ordering a session's rows."),
    kind: list[str] = typer.Option([], "--kind", help="COL=KIND: read a column as int, string or hex32 "
                                   "(default: from its first lines); repeatable."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb | spark"),
    spark_master: str = typer.Option("local[2]", "--spark-master", help="Spark master: local[N] or sc://host:port."),
    memory_limit: str = typer.Option(None, "--memory-limit", help="Engine memory cap, e.g. 4GB (DuckDB spills beyond it)."),
    threads: int = typer.Option(None, "--threads", help="Engine threads (default: all cores)."),
    min_count: int = typer.Option(1, "--min-count", help="Prune counts below N."),
    on_bad_line: str = typer.Option("error", "--on-bad-line", help="error | skip (skipped lines are counted)."),
    out: Path = typer.Option(..., "--out", help="Log-stats file to write (e.g. day_0.stats)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    mine = _load_mine()
    out = out.expanduser()  # written where it is checked ('~/x' quoted, or --out=~/x, reaches here as is)
    logs = [p.expanduser() for p in logs]  # a glob is quoted for mine to expand it: '~/logs/*.csv'
    # checked before mining, which can take hours on a large log
    parent = out.expanduser().absolute().parent
    if out.is_dir():  # (the message below told to create the folder that holds it, which exists)
        raise ConfigError(
            f"The '--out' parameter of mine must be the stats file to write, but {str(out)!r} is a directory. "
            f"Name a file in it, e.g. --out {str(out / 'log.stats')!r}."
        )
    if not parent.is_dir():
        raise ConfigError(
            f"The '--out' parameter of mine must be a file path in an existing directory. Got {str(out)!r} "
            f"instead. Create the directory {str(parent)!r} first, or pass another path."
        )
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"Cannot write the stats file {str(out)!r}: the directory {str(parent)!r} is not writable. Pass another --out.")
    if out.is_file() and any(_holds(p, out, format) for p in logs):
        raise ConfigError(
            f"The '--out' parameter of mine names {str(out)!r}, which is one of the logs to mine: the "
            f"stats file would replace it. Pass another --out."
        )
    kinds = _kinds(kind)
    if engine == "spark" and not _MASTER.match(spark_master):
        # (Spark's own refusal reached the error line as a Java stack trace, twenty lines long)
        raise ConfigError(f"The 'spark_master' parameter of mine must be a Spark master URL: local, local[N], "
                          f"local[*], spark://host:port, sc://host:port (Spark Connect), yarn or k8s://... Got "
                          f"{spark_master!r} instead.", param="spark_master")
    if not fields and (format == "libfm" or (format is None and any(_LIBFM.search(str(p)) for p in logs))):
        # (the library's own error names fields=[...] and a Python constant, not the flag)
        from learned_hash.logs import FRAPPE_FIELDS

        raise ConfigError(f"A libFM log needs --fields: its field names in line order, comma-separated (Frappe's: "
                          f"--fields {','.join(FRAPPE_FIELDS)}).")
    bar = Bar("mine", enabled=not quiet)
    try:
        stats = mine(
            [str(p) for p in logs], features=features, label=label, pairs=pair, format=format,
            delimiter=delimiter, fields=fields.split(",") if fields else None, sequence_key=sequence_key,
            time_key=time_key, engine=engine, spark_master=spark_master, memory_limit=memory_limit,
            threads=threads, min_count=min_count, on_bad_line=on_bad_line, kinds=kinds, progress=bar,
        )
    finally:
        bar.close()
    path = stats.save(out)
    for f in stats.features:
        typer.echo(feature_line(stats, f))
    skipped = f", {stats.bad_lines:,} malformed lines skipped" if stats.bad_lines else ""
    typer.echo(f"{stats.n_rows:,} rows mined on {stats.engine}{skipped} -> {path}")
