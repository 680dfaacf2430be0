"""Print what an artifact file holds: kind, version, sections; for a table file also its format,
shape, bytes, compression against float32, and whether it holds an id map and frequencies.

Checks the header only (fast); run `embcompress verify` to check every byte.
"""

from __future__ import annotations

from pathlib import Path

import typer


def describe(path: Path) -> str:
    """The report `embcompress inspect` prints for ``path`` (header checks only)."""
    from ..container import read_artifact
    from ..table import TABLE_KIND
    from ..tablefile import journal_pending

    if journal_pending(path):
        # An update that a crash interrupted: opening the table finishes it (else the container
        # read below sees half-written rows or header and calls the file corrupt).
        from ..tablefile import open_table

        open_table(path)
    art = read_artifact(path)
    lines = [
        f"file:      {path}",
        f"kind:      {art.kind}",
        f"container: {art.version[0]}.{art.version[1]}, {art.header['file_size']} bytes, sections aligned to {art.align}",
    ]
    if art.kind == TABLE_KIND:
        from ..tablefile import open_table

        t = open_table(path)
        n, dim = t.shape
        fp32 = n * dim * 4
        block = f", block {t.block_size}" if t.block_size else ""
        lines += [
            f"format:    {t.fmt}{block} ({t.spec.bits_per_element(dim, t.block_size):.3g} bits per value)",
            f"shape:     {n} rows x {dim}",
            f"rows:      {t.nbytes} bytes ({t.row_bytes} per row) at offset {t.rows_offset}",
            f"compression: {fp32 / t.nbytes:.2f}x the float32 table ({fp32} bytes) for the rows, "
            f"{fp32 / t.file_size:.2f}x for the whole file" if t.nbytes else "compression: empty table",
            f"id map:    {t.id_map!r}" if t.id_map is not None else "id map:    none",
            f"frequencies: {t.frequencies.dtype} per row, total {_total(t.frequencies)}" if t.frequencies is not None
            else "frequencies: none",
        ]
    lines.append("sections:")
    for name in art.section_names:
        s = art.section(name)
        lines.append(f"  {name:<22} {str(s.dtype):<8} {str(list(s.shape)):<16} offset {s.offset:>12} {s.nbytes:>12} bytes crc32 {s.crc32:#010x}")
    for key in ("config", "inputs"):
        if art.header.get(key):
            lines.append(f"{key}: {art.header[key]}")
    return "\n".join(lines)


def _total(counts) -> str:
    """A frequencies section's sum: integer counts in full (':g' gave
    '8.38656e+06'), float ones to six significant digits."""
    import numpy as np

    total = counts.sum()
    return f"{int(total)}" if np.issubdtype(counts.dtype, np.integer) else f"{float(total):g}"


def command(path: Path = typer.Argument(..., help="An artifact file (table file, id map, log stats, ...).")) -> None:
    from . import input_path

    typer.echo(describe(input_path(path)))
