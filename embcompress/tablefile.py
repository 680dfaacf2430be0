"""A compressed table's file: write (atomic) / open (memory-mapped) / verify.

One table per file, in the artifact container (``container.py``), kind ``"table"``, 4096-byte
alignment. Sections, in file order:

- ``rows``: the row records, uint8 ``(n_rows, row_bytes)``, exactly ``QuantizedTable.data``.
  It starts on a 4096-byte boundary and rows are contiguous, so row ``i`` is the bytes
  ``[offset + i * row_bytes, offset + (i + 1) * row_bytes)`` and a block of rows is one read;
  the tiered store reads it by offset with O_DIRECT. Keep this name and alignment.
- ``frequencies`` (optional): access count (or weight) of each row, int64 or float64 ``(n_rows,)``,
  which placement uses to keep hot rows in DRAM.
- ``idmap.ids``, ``idmap.rows``, ``idmap.fallback_rows`` (optional): the id map that sends raw
  ids to rows (``IdMap.from_arrays`` rebuilds it; its seed and records are in the header).
- ``idmap.keys``, ``idmap.vals``, ``idmap.fallback`` (with the id map, from this version): the
  map as it serves (``IdMap.parts``: its hash table or direct array and its cold rows; the fourth
  part, ``[seed, base, fallback start, fallback count]``, is ``meta["table_file"]["id_map"]["parts"]``),
  mapped at open by ``IdMap.from_parts`` instead of rebuilt from the ids: rebuilding took 15 s and
  1.1 GB at every open for 10M ids. Files without them (earlier versions) are rebuilt as before;
  readers before them ignore them. A full verify checks the two agree.

The header's ``config`` is the table's (``QuantizedTable.to_sections``); ``meta["table_file"]``
records this layout's version and the id map's parameters. ``open_table(verify="header")``
checks the header and bounds; ``verify="full"`` also every byte and the id map, so a corrupted
file raises an :class:`~embcompress.errors.ArtifactError` instead of returning wrong rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .container import Streamed, read_artifact, write_artifact
from .errors import ArtifactError, ConfigError, param_error
from .table import TABLE_ALIGN, TABLE_KIND, QuantizedTable

FILE_VERSION = 1
_FREQ = "frequencies"
_IDMAP = ("idmap.ids", "idmap.rows", "idmap.fallback_rows")
_PARTS = ("idmap.keys", "idmap.vals", "idmap.fallback")  # IdMap.parts() keys, vals, fallback


def _check_frequencies(frequencies, n_rows: int) -> np.ndarray:
    f = np.asarray(frequencies)
    if f.dtype.kind not in "iuf" or f.shape != (n_rows,):
        raise param_error(
            "frequencies", "write_table", f"be a 1-D numeric array with one entry per row ({n_rows})",
            f"{f.dtype} array of shape {f.shape}",
        )
    if f.dtype.kind == "f":
        if not np.all(np.isfinite(f)) or (f.size and f.min() < 0):
            raise param_error("frequencies", "write_table", "be finite and non-negative", "negative or non-finite values")
        return np.ascontiguousarray(f, dtype=np.float64)
    if f.size and f.min() < 0:
        raise param_error("frequencies", "write_table", "be non-negative", int(f.min()))
    if f.dtype.kind == "u" and f.size and f.max() > np.iinfo(np.int64).max:
        raise param_error("frequencies", "write_table", "fit in int64", int(f.max()))
    return np.ascontiguousarray(f, dtype=np.int64)


def write_table(
    path: str | os.PathLike,
    q: QuantizedTable,
    *,
    id_map=None,
    frequencies=None,
    inputs: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write table ``q`` (with its id map and per-row access frequencies, if given) to ``path``.

    The write is atomic: a temporary file beside ``path`` is written, fsynced and renamed, so a
    crash leaves either the old file or the new one; a journal an interrupted update of the old
    file left is then removed (its rows belong to the replaced file). ``inputs`` names what the
    table was made from; ``progress(done_bytes, total_bytes)`` is called while data is written.
    A table larger than memory is written by :func:`write_table_stream`.
    """
    if not isinstance(q, QuantizedTable):
        raise param_error("q", "write_table", "be a QuantizedTable (from embcompress.quantize)", type(q).__name__)
    sections, config = q.to_sections()
    return _write(path, config, sections["rows"], id_map, frequencies, inputs, progress)


def write_table_stream(
    path: str | os.PathLike,
    fmt: str,
    shape,
    chunks,
    *,
    block_size: int | None = None,
    scale_mode: str = "floor",
    id_map=None,
    frequencies=None,
    inputs: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a table of ``shape`` (n_rows, dim) whose rows arrive in ``chunks``: an iterable of
    ``QuantizedTable`` pieces in row order (``quantize(weight[i:j], fmt, ...)``), each written as it
    comes, so only one piece is in memory at a time. The file is the one :func:`write_table` writes
    for the whole table (a row's record depends on that row only). Pieces of another format, width,
    block size or scale mode, and too few or too many rows, are refused, and leave an old file at
    ``path`` unchanged, as any failed write does."""
    from .formats import quantize

    try:
        n, dim = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise param_error("shape", "write_table_stream", "be (n_rows, dim)", shape) from None
    if n < 0:
        raise param_error("shape", "write_table_stream", "be (n_rows >= 0, dim >= 1)", shape)
    # an empty table of the layout checks the options and gives the config, as write_table's
    proto = quantize(np.zeros((0, dim), np.float32), fmt, block_size=block_size, scale_mode=scale_mode)
    config = {**proto.config(), "shape": [n, dim]}

    def records():
        for piece in chunks:
            # the same config but for the piece's row count
            if not isinstance(piece, QuantizedTable) or piece.config() != {**config, "shape": [len(piece), dim]}:
                got = piece.config() if isinstance(piece, QuantizedTable) else type(piece).__name__
                raise param_error("chunks", "write_table_stream", f"be QuantizedTable pieces of {config}", got)
            yield piece.data

    rows = Streamed(np.uint8, (n, proto.row_bytes), records())
    return _write(path, config, rows, id_map, frequencies, inputs, progress)


# The longest name an update keeps beside a table (``<name>.updates.tmp``; ``.journal`` too): a
# table whose name leaves no room for it is written, but cannot be updated, nor opened cleanly.
_COMPANION_SUFFIX = len(".updates.tmp")


def check_table_name(path) -> None:
    """Refuse a table file name with no room for its update files (every writer of a table)."""
    name = os.path.basename(os.path.realpath(path))  # (companions are named from the real path)
    if len(os.fsencode(name)) > 255 - _COMPANION_SUFFIX:
        raise ConfigError(f"The table file name {name!r} is {len(os.fsencode(name))} bytes long: a table's name "
                          f"must leave room for the files its updates keep beside it (<name>.journal, "
                          f"<name>.updates.tmp), at most {255 - _COMPANION_SUFFIX} bytes. Shorten the name.",
                          param="path")


def _write(path, config: dict, rows, id_map, frequencies, inputs, progress) -> Path:
    check_table_name(path)
    if inputs is not None and not isinstance(inputs, Mapping):  # (else dict() raised a raw ValueError)
        raise param_error("inputs", "write_table", "be a dict naming what the table was made from, "
                          "e.g. {'log': 'day_0.tsv'}", inputs)
    n_rows = rows.shape[0]
    sections = {"rows": rows}
    layout: dict = {"version": FILE_VERSION, "frequencies": frequencies is not None, "id_map": None}
    if frequencies is not None:
        sections[_FREQ] = _check_frequencies(frequencies, n_rows)
    if id_map is not None:
        from .idmap import IdMap

        if not isinstance(id_map, IdMap):
            raise param_error("id_map", "write_table", "be an embcompress.IdMap", type(id_map).__name__)
        if id_map.n_rows != n_rows:
            raise param_error(
                "id_map", "write_table", f"map ids to the table's {n_rows} rows", f"a map onto {id_map.n_rows} rows"
            )
        sections[_IDMAP[0]] = np.ascontiguousarray(id_map.ids, dtype=np.int64)
        sections[_IDMAP[1]] = np.ascontiguousarray(id_map.rows, dtype=np.int64)
        sections[_IDMAP[2]] = np.ascontiguousarray(id_map.fallback_rows, dtype=np.int64)
        parts = id_map.parts()
        for name, key in zip(_PARTS, ("keys", "vals", "fallback")):
            sections[name] = parts[key]
        layout["id_map"] = {
            "n_rows": id_map.n_rows,
            "seed": id_map.seed,
            "config": id_map.config,
            "inputs": id_map.inputs,
            "meta": id_map.meta,
            "parts": [int(v) for v in parts["params"]],
        }
    written = write_artifact(
        path, TABLE_KIND, sections, config=config, inputs=inputs, meta={"table_file": layout},
        align=TABLE_ALIGN, progress=progress,
    )
    from .store import journal

    journal.drop_replaced(written)  # an interrupted update of the file this one replaced
    return written


class TableFile:
    """An opened table file: the table (row records memory-mapped), its id map and frequencies.

    Use :func:`open_table`. It is what the lookup kernel reads (``.data``, ``.fmt``, ``.shape``,
    ``.block_size``) and a row source for :class:`embcompress.nn.MXEmbeddingBag`
    (``.pooled_lookup(indices, offsets, **opts)`` over row numbers).

    Attributes: ``path``, ``table`` (the :class:`QuantizedTable`), ``id_map`` (an
    :class:`~embcompress.IdMap` or None), ``frequencies`` (per-row array or None), ``header``
    (the container header), ``rows_offset`` (byte offset of row 0 in the file; row ``i`` starts at
    ``rows_offset + i * row_bytes``), ``file_size``.
    """

    def __init__(self, path: Path, table: QuantizedTable, id_map, frequencies, header: dict, rows_offset: int, version):
        self.path = path
        self.table = table
        self.id_map = id_map
        self.frequencies = frequencies
        self.header = header
        self.rows_offset = rows_offset
        self.version = version
        self.file_size = int(header["file_size"])

    data = property(lambda self: self.table.data)
    fmt = property(lambda self: self.table.fmt)
    spec = property(lambda self: self.table.spec)
    shape = property(lambda self: self.table.shape)
    block_size = property(lambda self: self.table.block_size)
    row_bytes = property(lambda self: self.table.row_bytes)
    nbytes = property(lambda self: self.table.nbytes)

    def pooled_lookup(self, indices, offsets=None, **opts) -> np.ndarray:
        """:func:`embcompress.pooled_lookup` on this table (``indices`` are row numbers)."""
        from .kernels.lookup import pooled_lookup

        return pooled_lookup(self.table, indices, offsets, **opts)

    def dequantize(self) -> np.ndarray:
        """The whole table decoded to float32 ``(n_rows, dim)``."""
        return self.table.dequantize()

    def close(self) -> None:
        """Drop this object's references to the mapping (arrays handed out keep it alive)."""
        self.table = None
        self.frequencies = None

    def __enter__(self) -> "TableFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.table is None:
            return f"TableFile({str(self.path)!r}, closed)"
        extra = "".join(
            [", id_map" if self.id_map is not None else "", ", frequencies" if self.frequencies is not None else ""]
        )
        return f"TableFile({str(self.path)!r}, fmt={self.fmt!r}, shape={self.shape}{extra})"


def _same_map(id_map, ids: np.ndarray, rows: np.ndarray, fallback: np.ndarray) -> bool:
    """Whether ``id_map`` (mapped from the file's parts) is the map its ``idmap.*`` arrays describe:
    each stored id on its row, no other id held, and the same cold rows (a full verify)."""
    return (id_map.n_mapped == len(ids) and np.array_equal(id_map.lookup(ids), rows)
            and id_map.n_fallback_rows == len(fallback) and np.array_equal(id_map.fallback_rows, fallback))


def journal_pending(path) -> bool:
    """Whether an update that a crash interrupted left its journal beside ``path``. (A path
    without a file name, such as '.', has no journal: read_artifact names it as a folder.)"""
    from .store import journal

    return bool(Path(path).name) and journal.journal_path(path).exists()


def open_table(path: str | os.PathLike, *, mmap: bool = True, verify: str = "header") -> TableFile:
    """Open a table file written by :func:`write_table`.

    ``mmap=True`` maps the row records (pages load on first touch); ``mmap=False`` reads them.
    ``verify="header"`` checks magic, version, header checksum, file size and section bounds;
    ``verify="full"`` also checks every section's checksum and the id map, so corruption
    anywhere raises an ArtifactError (exit code 3 on the command line) rather than wrong rows.
    A journal left by an update that a crash interrupted (``TieredStore.update_rows``) is
    replayed first, so the file holds every updated row new and every other row old; where it
    cannot be (a table or folder this process may not write) an ArtifactError says so and names
    the fix, unless the file already holds the whole update.
    """
    if not isinstance(path, (str, os.PathLike)):  # (else a raw TypeError from Path())
        raise param_error("path", "open_table", "be a path (str or os.PathLike) to a table file", path)
    if verify not in ("header", "full"):
        raise param_error("verify", "open_table", "be 'header' or 'full'", verify)
    if not isinstance(mmap, bool):
        raise param_error("mmap", "open_table", "be a bool", mmap)
    from .store import journal

    if journal_pending(path):
        # (refused with the fix named where it cannot be applied, unless the file already holds it)
        journal.replay_before_open(path)
    art = read_artifact(path, kind=TABLE_KIND, mmap=mmap, verify=verify)
    where = str(path)
    layout = art.meta.get("table_file", {"version": FILE_VERSION, "id_map": None, "frequencies": False})
    try:
        if not isinstance(layout, dict) or not isinstance(layout.get("version"), int):
            raise ArtifactError(f"{where!r} has a malformed table-file record in its header. Re-create it.")
        if layout["version"] > FILE_VERSION:
            raise ArtifactError(
                f"{where!r} was written with table-file layout {layout['version']}, newer than this "
                f"embcompress reads ({FILE_VERSION}). Upgrade embcompress to read it."
            )
        table = QuantizedTable.from_sections(art.config, {"rows": art.array("rows")})
    except ArtifactError as exc:
        raise ArtifactError(f"{where!r}: {exc}") from None
    n_rows = table.shape[0]
    names = set(art.section_names)

    frequencies = None
    if layout.get("frequencies"):
        frequencies = art.array(_FREQ)
        if frequencies.shape != (n_rows,) or frequencies.dtype not in (np.int64, np.float64):
            raise ArtifactError(
                f"{where!r}: the frequencies section must hold {n_rows} int64 or float64 values; "
                f"it holds {frequencies.dtype} of shape {frequencies.shape}. Re-create the file."
            )
    elif _FREQ in names:
        raise ArtifactError(f"{where!r}: a frequencies section the header does not announce. Re-create the file.")

    id_map = None
    im = layout.get("id_map")
    if im is not None:
        from .idmap import IdMap

        try:
            ids, rows, fallback = (art.array(n) for n in _IDMAP)
            if int(im["n_rows"]) != n_rows:
                raise ConfigError(f"the id map sends ids to {im['n_rows']} rows, the table has {n_rows}")
            params = im.get("parts")
            if params is None:  # (a file of an earlier version: the map is built from its ids)
                id_map = IdMap.from_arrays(
                    ids, rows, n_rows, fallback_rows=fallback, seed=int(im["seed"]),
                    config=im.get("config"), inputs=im.get("inputs"), meta=im.get("meta"),
                )
            else:
                if (not isinstance(params, list) or len(params) != 4 or any(type(v) is not int for v in params)
                        or not all(-(2**63) <= v < 2**63 for v in params)):
                    raise ValueError(f"its parts record {params!r} is not four int64 values")
                keys, vals, cold = (art.array(n) for n in _PARTS)
                id_map = IdMap.from_parts(n_rows, keys, vals, cold, np.array(params, dtype=np.int64), where="of the table")
                if id_map.seed != int(im["seed"]):
                    raise ValueError(f"its seed is {im['seed']} in the header, {id_map.seed} in the map")
                id_map.config = dict(im.get("config") or {})
                id_map.inputs = dict(im.get("inputs") or {})
                id_map.meta = dict(im.get("meta") or {})
                if verify == "full" and not _same_map(id_map, ids, rows, fallback):
                    raise ValueError("the map as it serves does not send the stored ids to their rows")
        except ArtifactError as exc:
            raise ArtifactError(f"{where!r}: {exc}") from None
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{where!r}: the stored id map is inconsistent ({exc}). Re-create the file.") from None
    elif names & set(_IDMAP + _PARTS):
        raise ArtifactError(f"{where!r}: id-map sections the header does not announce. Re-create the file.")

    rows_offset = art.section("rows").offset
    return TableFile(Path(path), table, id_map, frequencies, art.header, rows_offset, art.version)
