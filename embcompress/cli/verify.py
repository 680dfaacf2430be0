"""Check every byte of an artifact (full verify); for a table file also its id map and
frequencies. Prints "ok" and exits 0, or prints the problem and exits 3 (a damaged or foreign
file) or 1 (no file at the path).
"""

from __future__ import annotations

from pathlib import Path

import typer


def verify_file(path: Path) -> str:
    """Fully verify ``path``; return a one-line summary or raise an ArtifactError.

    Each byte is checked once: the header says the kind, then the kind's own full verify runs
    (for a table, ``open_table``'s, which also checks its id map and frequencies)."""
    from ..container import read_artifact
    from ..table import TABLE_KIND
    from ..tablefile import journal_pending, open_table

    # An update that a crash interrupted: opening the table finishes it (else the header read
    # below sees a half-written header and calls the file corrupt).
    pending = journal_pending(path)
    art = None if pending else read_artifact(path, verify="header")
    if pending or art.kind == TABLE_KIND:
        t = open_table(path, verify="full")
        n = len((art or read_artifact(path, verify="header")).section_names)  # (after a replay: its header)
        return f"ok: {path}: {t.fmt} table {t.shape[0]} x {t.shape[1]}, {n} sections, every byte checked"
    if art.kind == "idmap":
        from ..idmap import IdMap

        IdMap.load(path, verify="full")
    else:
        read_artifact(path, verify="full")
    return f"ok: {path}: {art.kind} artifact, {len(art.section_names)} sections, every byte checked"


def command(path: Path = typer.Argument(..., help="An artifact file to check.")) -> None:
    from . import input_path

    typer.echo(verify_file(input_path(path)))
