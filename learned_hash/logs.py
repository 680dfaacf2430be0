"""Log readers: Criteo TSV, CSV with a header, Parquet, libFM; a schema; streaming batches.

A log is read in bounded memory, one block at a time (``block_bytes`` of text, or one Parquet
batch), and each batch comes out as a dict of NumPy arrays:

- each categorical feature and the session key: int64 ids (see :mod:`embcompress.idhash`):
  integer columns keep their value, string columns are hashed, Criteo's hex values are parsed;
  a missing value (null or ``""``) is ``MISSING_ID`` (``-2**63``);
- the label: float64 as written (a row is *positive* when its label is > 0);
- the time key: int64, or datetime64[us] for a timestamp column (missing: NaT / ``MISSING_ID``);
  an ISO time with a zone after its seconds (``Z``, ``+01:00``, ``+0100``, ``-05``) is the instant
  it names, in UTC; one without a zone is taken as UTC.

What counts as a value is fixed by the regular expressions below, which the mining engines
(DuckDB, Spark) apply too, so every reader and engine accepts and rejects exactly the same
lines. A *bad line* is a line with the wrong number of fields, a feature value that does not
parse as its kind, a missing or non-numeric label, a time that does not parse, or (text logs) a value
of a column read that is not valid UTF-8. With
``on_bad_line="error"`` (default) the first one raises an error naming it; with ``"skip"`` bad
lines are skipped and counted (``LogReader.bad_lines``; :func:`read_log` warns with the count).
Blank lines (empty or only whitespace) are not rows and are ignored. An input without any rows is an error.

Formats (``format=``; inferred from the extension when it is ``.parquet``, ``.csv`` or ``.libfm``):

``criteo``
    Tab-separated ``label, I1..I13, C1..C26``, no header. ``I*`` are integers, ``C*`` 32-bit
    hex (kind ``hex32``). Empty fields are missing.
``csv``
    A header line names the columns; ``delimiter`` (default ``,``). Kinds are inferred from the
    first block (integers -> ``int``, anything else -> ``string``; a time column of ISO dates ->
    ``timestamp``), or given by ``LogSchema.kinds``. Leading dots of the header's first name are
    dropped (the TalkingData sample's header starts with ``..ip``).
``parquet``
    A file, a glob, or a directory of ``*.parquet`` files (in a directory of any format, files
    and folders whose names start with ``.`` or ``_`` are skipped, as Spark and Hive skip them).
    Kinds follow the Parquet types.
``libfm``
    ``label idx:val idx:val ...``: one-hot categorical fields whose id is the global feature
    index. The field of each index is given by ``fields`` (names in the order the indices appear
    on every line, as in Frappe: :data:`FRAPPE_FIELDS`) or by ``field_map`` (field name ->
    ``(lo, hi)`` half-open range of indices, or an int array giving each index's field number
    into ``fields``). Values are ignored (one-hot).
"""

from __future__ import annotations

import contextlib
import contextvars
import glob as _glob
import io
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embcompress.errors import ConfigError
from embcompress.idhash import MISSING_ID, _hex32, string_ids

FORMATS = ("criteo", "csv", "parquet", "libfm")
ID_KINDS = ("int", "string", "hex32")
TIME_KINDS = ("int", "timestamp")
CRITEO_INT = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CAT = tuple(f"C{i}" for i in range(1, 27))
CRITEO_COLUMNS = ("label", *CRITEO_INT, *CRITEO_CAT)
FRAPPE_FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")

# What a valid value is, shared with the SQL engines (full-string matches; plain spaces only, no
# backslash classes, so the same text works in RE2, DuckDB and Java regexes and SQL literals).


def _int64_re() -> str:
    """A decimal int64: up to 18 digits always fit; 19 digits up to 9223372036854775807 (and
    -9223372036854775808), as one alternative per digit of the bound (a value below it agrees
    with the bound's first i digits and has a smaller digit next)."""
    top = str(2**63 - 1)
    below = [top[:i] + f"[0-{int(d) - 1}]" + (f"[0-9]{{{18 - i}}}" if i < 18 else "")
             for i, d in enumerate(top) if d != "0"]
    return f"-?[0-9]{{1,18}}|-?({'|'.join([*below, top])})|-{2**63}"


INT_RE = f" *({_int64_re()}) *"  # every int64, nothing beyond; '+' is refused (Arrow cannot cast it)
HEX_RE = r"[0-9a-fA-F]{1,8}"
NUM_RE = r" *[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)? *"
# an ISO time: a date, optionally a time of day, and after the seconds optionally a zone (Z or an
# offset within +-14:59, as exporters write, Spark's CSV writer included); a zoned time is the
# instant it names, a time without a zone is read as UTC (Spark accepts a zone only after seconds)
ZONE_RE = r"Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?"
TIME_RE = rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}([ T][0-9]{{2}}:[0-9]{{2}}(:[0-9]{{2}}([.][0-9]{{1,6}})?({ZONE_RE})?)?)?"
_ZONED_RE = rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}([.][0-9]{{1,6}})?({ZONE_RE})"

ON_BAD_LINE = ("error", "skip")
DEFAULT_BLOCK_BYTES = 8 << 20


def _full(rx: str) -> str:
    return f"^(?:{rx})$"


@dataclass(frozen=True)
class LogSchema:
    """Which columns a job reads: categorical ``features``, the ``label``, a ``time_key`` and a
    ``session_key`` (user/session). ``kinds`` overrides a column's inferred kind: features and
    session key ``"int" | "string" | "hex32"``, time key ``"int" | "timestamp"``."""

    features: tuple[str, ...]
    label: str | None = None
    time_key: str | None = None
    session_key: str | None = None
    kinds: Mapping[str, str] = field(default_factory=dict)
    version: int = 1

    def __post_init__(self):
        feats = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "kinds", dict(self.kinds or {}))
        if not feats or not all(isinstance(f, str) and f for f in feats):
            raise ConfigError(
                f"The 'features' parameter of LogSchema must be a non-empty list of column names. Got {self.features!r} instead."
            )
        if len(set(feats)) != len(feats):
            raise ConfigError(f"The 'features' parameter of LogSchema must not repeat a name. Got {list(feats)!r} instead.")
        keys = {"label": self.label, "time_key": self.time_key, "session_key": self.session_key}
        for name, v in keys.items():
            if v is None:
                continue
            if not isinstance(v, str) or not v:
                raise ConfigError(f"The {name!r} parameter of LogSchema must be a column name or None. Got {v!r} instead.")
            # the session key may also be a feature (a user id is both); nothing else may double up
            if (name != "session_key" and v in feats) or any(v == w for n, w in keys.items() if n != name):
                raise ConfigError(
                    f"The {name!r} parameter of LogSchema must name a column of its own (not a feature, "
                    f"the label or another key). Got {v!r} instead."
                )
        for col, kind in self.kinds.items():
            allowed = TIME_KINDS if col == self.time_key else ("number",) if col == self.label else ID_KINDS
            if kind not in allowed:
                raise ConfigError(f"The kind of column {col!r} in LogSchema.kinds must be one of {allowed}. Got {kind!r} instead.")

    @property
    def columns(self) -> list[str]:
        """Every column the schema reads, features first."""
        return list(dict.fromkeys([*self.features, *(c for c in (self.session_key, self.label, self.time_key) if c)]))

    def to_dict(self) -> dict:
        return {"version": self.version, "features": list(self.features), "label": self.label,
                "time_key": self.time_key, "session_key": self.session_key, "kinds": dict(self.kinds)}


@dataclass(frozen=True)
class LogSource:
    """Where a log is and how it is written: resolved files, format and format options.

    Build with :meth:`resolve` from a path, a glob, a directory or a list of them.
    """

    paths: tuple[str, ...]
    format: str
    delimiter: str = ","
    fields: tuple[str, ...] | None = None
    field_ranges: tuple[tuple[str, int, int], ...] | None = None
    # the folders given, each as (given, absolute): a bad line in a file read as part of one may be a
    # file that is no log (Frappe's README.txt beside its .libfm files), which a glob leaves out
    folders: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def resolve(cls, source, *, format: str | None = None, delimiter: str | None = None,
                fields: Sequence[str] | None = None, field_map: Any = None) -> "LogSource":
        if isinstance(source, LogSource):
            return source
        items = [source] if isinstance(source, (str, os.PathLike)) else list(source or [])
        if not items or not all(isinstance(s, (str, os.PathLike)) for s in items):
            raise ConfigError(
                f"The 'source' parameter must be a path, a glob, a directory or a list of paths. Got {source!r} instead."
            )
        if format is not None and format not in FORMATS:
            raise ConfigError(f"The 'format' parameter must be one of {FORMATS}. Got {format!r} instead.")
        paths: list[str] = []
        folders: list[tuple[str, str]] = []
        for item in items:
            given = os.fspath(item)
            # '~' and '~user' as a shell expands them (the library's callers have no shell to do it),
            # here, where every reader and engine has its paths resolved
            s = os.path.expanduser(given)
            shown = repr(given) if s == given else f"{given!r} ({s!r})"
            p = Path(s)
            if p.is_dir():
                paths += _folder_files(p, format)
                folders.append((given, os.path.abspath(s)))
            elif p.is_file():
                paths.append(s)
            elif _glob.has_magic(s):
                found = _glob_files(s, format)
                if not found:
                    raise ConfigError(f"The glob {shown} matches no files. Check the pattern.")
                paths += found
            else:
                raise ConfigError(f"Cannot read the log {shown}: no such file or directory. Check the path.")
        for p in paths:
            if not os.access(p, os.R_OK):
                raise ConfigError(f"Cannot read the log {p!r}: permission denied. Make it readable.")
        if format is None:
            exts = sorted({_format_extension(p) for p in paths})
            guess = {".parquet": "parquet", ".csv": "csv", ".libfm": "libfm"}
            if len(exts) == 1 and exts[0] in guess:
                format = guess[exts[0]]
            elif len(exts) > 1:
                raise ConfigError(
                    f"The 'format' parameter is needed: the log's files have the extensions "
                    f"{', '.join(e or '(none)' for e in exts)} (e.g. {paths[0]!r}), which say no one format. "
                    f"Pass one of {FORMATS}, or name files of one format only (a glob such as '*.csv')."
                )
            else:
                raise ConfigError(
                    f"The 'format' parameter is needed for {paths[0]!r} (its extension does not say). "
                    f"Pass one of {FORMATS}."
                )
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise ConfigError(f"The 'delimiter' parameter must be one character. Got {delimiter!r} instead.")
        for p in paths if format != "parquet" else ():
            ext = Path(p).suffix
            if ext.lower() in _COMPRESSED and ext != ext.lower():
                # Arrow and Hadoop tell a compression by its lower-case extension only: the
                # compressed bytes were parsed as text
                raise ConfigError(
                    f"The log {p!r} ends in {ext!r}: a compression is told by its lower-case extension "
                    f"({', '.join(_COMPRESSED)}). Rename it to {Path(p).stem + ext.lower()!r}."
                )
        if format == "criteo":
            delimiter = "\t"
        ranges = None
        if format == "libfm":
            fields, ranges = _libfm_fields(fields, field_map)
        elif fields is not None or field_map is not None:
            raise ConfigError(f"The 'fields' and 'field_map' parameters apply to libfm logs only. Got format {format!r}.")
        # Absolute paths: a Spark Connect server resolves relative ones against its own directory.
        return cls(tuple(os.path.abspath(p) for p in paths), format, delimiter or ",", tuple(fields) if fields else None,
                   ranges, tuple(folders))

    def describe(self) -> dict:
        """What was read, recorded in the artifacts made from it."""
        out: dict[str, Any] = {"paths": [os.path.abspath(p) for p in self.paths], "format": self.format}
        try:
            out["bytes"] = sum(os.path.getsize(p) for p in self.paths)
        except OSError:
            pass
        if self.format == "csv":
            out["delimiter"] = self.delimiter
        if self.fields:
            out["fields"] = list(self.fields)
        if self.field_ranges:
            out["field_ranges"] = [list(r) for r in self.field_ranges]
        return out

    def column_names(self) -> list[str]:
        """The log's column names (reading only the header or the file schema)."""
        if self.format == "criteo":
            return list(CRITEO_COLUMNS)
        if self.format == "libfm":
            return ["label", *(self.fields or ())]
        if self.format == "parquet":
            return list(_parquet_schema(self.paths[0]).names)
        # the first file with a header: an empty part holds no rows (wherever it sorts), as the readers take it
        names = next((h for h in map(self._csv_header, self.paths) if h is not None), None)
        if names is None:
            raise ConfigError(f"The CSV log {self.paths[0]!r} is empty: it has no header line. Pass a CSV with a header.")
        return names

    def _csv_header(self, path: str) -> list[str] | None:
        """The column names of a CSV file's header line (None when the file has none)."""
        import pyarrow.csv as pcsv

        # through the decompression the readers apply too (Arrow and the engines read .gz, .bz2, ...)
        try:
            with _open_text(path) as fh:
                first = _first_line(fh)
        except OSError as exc:  # e.g. a truncated .gz
            raise _unreadable(path, exc) from None
        if not first.strip():
            return None
        t = pcsv.read_csv(io.BytesIO(first), parse_options=pcsv.ParseOptions(delimiter=self.delimiter),
                          read_options=pcsv.ReadOptions(autogenerate_column_names=False))
        return _clean_names(t.column_names)

    def header(self, path: str) -> list[str]:
        """The column names of one file of the log: a CSV file's own header (a file without one
        holds no rows and takes the log's), else the log's."""
        if self.format != "csv":
            return self.column_names()
        return self._csv_header(path) or self.column_names()

    def header_groups(self) -> list[tuple[list[str], list[int]]]:
        """The files grouped by their header, in order of first appearance: ``(names, indices
        into paths)``. One group unless a CSV log's exports changed their columns over time."""
        groups: dict[tuple, list[int]] = {}
        for i, path in enumerate(self.paths):
            groups.setdefault(tuple(self.header(path)), []).append(i)
        return [(list(names), idx) for names, idx in groups.items()]

    def check_headers(self, columns: Sequence[str]) -> None:
        """Every CSV file must have the columns read; their order and the other columns may differ
        from file to file (exports that gained a column): each file is read by its own header."""
        if self.format != "csv":
            return
        for path in self.paths:
            names = self._csv_header(path)
            missing = [c for c in columns if names is not None and c not in names]
            if missing:
                raise ConfigError(
                    f"The CSV log {path!r} has no column {missing[0]!r}. Its columns are {names}. Every file "
                    f"of a log must have the columns read: add the column to the file, or leave the file out."
                )


def _hidden(parts) -> bool:
    """Whether a path's parts name a hidden file or folder ('.', '_': Spark's _temporary/ and
    _SUCCESS, Hive's .hive-staging/, Hadoop's .crc files), no part of a log as Spark and Hive take it."""
    return any(part.startswith((".", "_")) for part in parts)


def _refuse_table_folder(folder: Path) -> None:
    """A ConfigError when ``folder`` is in a Delta or Iceberg table: its files are not the table
    (files that an update, a delete or a compaction replaced stay until VACUUM or snapshot expiry),
    so reading them all counts rows again, silently."""
    folder = folder.absolute()
    for q in (folder, *folder.parents):
        if (q / "_delta_log").is_dir():
            raise ConfigError(
                f"The folder {str(folder)!r} is in the Delta table {str(q)!r}: its Parquet files include those "
                f"that updates and deletes replaced (kept until VACUUM), whose rows would be counted again. "
                f"Write the table's current version out as Parquet (spark.read.format('delta').load(...)"
                f".write.parquet(...)) and mine that, or pass its current files by name."
            )
        iceberg_data = q == folder or folder.is_relative_to(q / "data")  # the table, or under its data/
        if iceberg_data and (q / "metadata").is_dir() and next((q / "metadata").glob("*.metadata.json"), None) is not None:
            raise ConfigError(
                f"The folder {str(folder)!r} is in the Iceberg table {str(q)!r}: its data files include those "
                f"of older snapshots, whose rows would be counted again. Write the table's current snapshot "
                f"out as Parquet and mine that, or pass its current files by name."
            )


def _folder_files(p: Path, format: str | None, *, empty_ok: bool = False) -> list[str]:
    """The log files of folder ``p``: every visible file under it; without a format, its
    ``*.parquet`` files (a folder's format is not guessed from other extensions). With
    ``format="parquet"`` every visible file, as Spark reads a folder: Hive names its parts
    ``000000_0``, without an extension."""
    _refuse_table_folder(p)
    visible = sorted(f for f in p.rglob("*") if f.is_file() and not _hidden(f.relative_to(p).parts))
    found = [str(f) for f in visible if format is not None or f.suffix == ".parquet"]
    text = next((f for f in visible if format is None and (_format_extension(f) in (".csv", ".libfm", ".tsv", ".txt")
                                                           or f.suffix.lower() in _COMPRESSED)), None)
    if found and text is not None:
        # Parquet files beside text logs: reading the Parquet files alone left the others out, silently
        raise ConfigError(
            f"The directory {str(p)!r} holds *.parquet files and text logs such as {str(text)!r}, which say no "
            f"one format. Pass a glob of one format (e.g. {str(p / '*.parquet')!r}; '**/*.parquet' for "
            f"subfolders), or move the other files away."
        )
    if not found and not empty_ok:
        if format is None:
            raise ConfigError(
                f"The directory {str(p)!r} holds no *.parquet files. Pass the format of its files "
                f"(format='csv', 'criteo' or 'libfm'; format='parquet' for Parquet files without the extension, "
                f"as Hive writes them; --format on the command line), or check the path."
            )
        raise ConfigError(f"The directory {str(p)!r} holds no log files. Check the path.")
    return found


def _glob_files(pattern: str, format: str | None) -> list[str]:
    """The log files a glob names: the files it matches and those of the folders it matches (a
    glob of partition folders, 'date=2026-11-*'), each once, hidden names left out as in a folder
    (unless the pattern names them: '_part*.csv')."""
    root = Path(pattern)
    while _glob.has_magic(str(root)):
        root = root.parent
    asked = _hidden(Path(pattern).relative_to(root).parts)
    found: list[str] = []
    folders: list[Path] = []
    for m in sorted(_glob.glob(pattern, recursive=True)):
        f = Path(m)
        if not asked and _hidden(f.relative_to(root).parts if f.is_relative_to(root) else f.parts[-1:]):
            continue
        if f.is_dir():
            folders.append(f)
            found += _folder_files(f, format, empty_ok=True)
        elif f.is_file():
            found.append(m)
    if not found and folders:
        _folder_files(folders[0], format)  # the error that says why its folders hold no log files
    for folder in dict.fromkeys(Path(f).parent for f in found):
        _refuse_table_folder(folder)
    return list(dict.fromkeys(found))


def _unreadable(path: str, exc: OSError) -> ConfigError:
    return ConfigError(f"Cannot read the log {path!r}: {exc}. The file may be truncated or corrupt: "
                       f"re-create it, or leave it out of the log.")


def _read(fh, n: int, path: str) -> bytes:
    try:
        return fh.read(n)
    except OSError as exc:  # e.g. a truncated .gz
        raise _unreadable(path, exc) from None


def _parquet_schema(path: str):
    """The Arrow schema of a Parquet file (ConfigError naming the file when it is no Parquet);
    read once per file within :func:`schemas_read_once`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    memo = _SCHEMAS.get()
    if memo is not None and path in memo:
        return memo[path]
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"Cannot read {path!r} as Parquet: {exc}. Pass a Parquet file or the right format.") from None
    if memo is not None:
        memo[path] = schema
    return schema


_SCHEMAS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("embc_parquet_schemas", default=None)


@contextlib.contextmanager
def schemas_read_once():
    """Within it, each Parquet file's schema is read once: mining looks at every part's schema
    three times (kinds, name case, types), each a round trip to the part's footer on a network
    file system. Only for one call's checks (a file rewritten later is read again)."""
    token = _SCHEMAS.set({})
    try:
        yield
    finally:
        _SCHEMAS.reset(token)


def _clean_names(names: list[str]) -> list[str]:
    return [n.lstrip(".") if i == 0 else n for i, n in enumerate(names)]


def _libfm_fields(fields, field_map):
    if fields is None and field_map is None:
        raise ConfigError(
            "A libfm log needs its fields: pass fields=[names in line order] (Frappe: "
            "learned_hash.logs.FRAPPE_FIELDS) or field_map={name: (lo, hi)}.", param="fields"
        )
    if isinstance(field_map, Mapping):
        ranges = []
        for name, r in field_map.items():
            try:
                lo, hi = (int(x) for x in r)
            except (TypeError, ValueError):
                raise ConfigError(f"The 'field_map' parameter must map field names to (lo, hi) index ranges. Got {r!r} for {name!r} instead.") from None
            if not (0 <= lo < hi):
                raise ConfigError(f"The 'field_map' range of {name!r} must satisfy 0 <= lo < hi. Got {(lo, hi)!r} instead.")
            ranges.append((str(name), lo, hi))
        ranges.sort(key=lambda r: r[1])
        for (a, _, ahi), (b, blo, _) in zip(ranges, ranges[1:]):
            if blo < ahi:
                raise ConfigError(f"The 'field_map' ranges of {a!r} and {b!r} overlap. Pass disjoint ranges.")
        return [r[0] for r in ranges], tuple(ranges)
    if field_map is not None:
        arr = np.asarray(field_map)
        if fields is None or arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ConfigError("An array 'field_map' must be 1-D integers (each index's field number into 'fields'); pass 'fields' too.")
        # turn the per-index field numbers into runs so the map is stored as ranges
        ranges, start = [], 0
        for i in range(1, len(arr) + 1):
            if i == len(arr) or arr[i] != arr[start]:
                if arr[start] >= 0:
                    if arr[start] >= len(fields):
                        raise ConfigError(f"The 'field_map' array names field number {int(arr[start])}, but only {len(fields)} fields were given.")
                    ranges.append((fields[int(arr[start])], start, i))
                start = i
        return list(fields), tuple(ranges)
    fields = [fields] if isinstance(fields, str) else list(fields)
    if not fields or not all(isinstance(f, str) and f for f in fields) or len(set(fields)) != len(fields):
        raise ConfigError(f"The 'fields' parameter must be distinct non-empty names. Got {fields!r} instead.")
    return fields, None


# --------------------------------------------------------------------------- kinds


def is_text_type(t) -> bool:
    """Whether an Arrow type is text (string, large_string, string_view)."""
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def is_bytes_type(t) -> bool:
    """Whether an Arrow type is bytes without the UTF-8 annotation (binary, large_binary)."""
    import pyarrow as pa

    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def list_value_type(t):
    """The type of the values of a Parquet list column's lists (a dictionary's values), or None
    when ``t`` is no list type."""
    import pyarrow as pa

    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        return None
    v = t.value_type
    return v.value_type if pa.types.is_dictionary(v) else v


def infer_kinds(src: LogSource, schema: LogSchema, *, lists: bool = False) -> dict[str, str]:
    """The kind of every column the schema reads (``LogSchema.kinds`` wins where given).

    ``lists``: a Parquet feature column may hold lists of ids (a multi-hot feature), whose kind is
    their values' (``mine`` counts every id of a list; the readers give one id per row and refuse
    such a column)."""
    names = src.column_names()
    missing = [c for c in schema.columns if c not in names]
    if missing:
        raise ConfigError(
            f"The log {src.paths[0]!r} has no column {missing[0]!r}. Its columns are {names}. "
            f"Pass names from that list."
        )
    src.check_headers(schema.columns)
    kinds: dict[str, str] = {}
    if src.format == "criteo":
        for c in schema.columns:
            kinds[c] = "hex32" if c in CRITEO_CAT else "int"
    elif src.format == "libfm":
        kinds = {c: "int" for c in schema.columns}
    elif src.format == "parquet":
        import pyarrow as pa

        first: dict[str, str] = {}  # column -> the first file that holds it typed
        listed: dict[str, bool] = {}  # column -> whether that file holds it as lists of ids
        listed_at: dict[str, str] = {}  # column -> that file (lists of nulls only count: no kind)
        # every file, not only the first: an engine reads a column missing from a later file as
        # NULL (Spark: every id of that file silently 'missing') or fails on a type that differs.
        # Integers of another width or sign (int32 parts, then int64 ones) are one kind: every id
        # is an int64; so are numbers of other types as labels, and times of other units; the
        # engines read such parts apart (mining.api._id_types)
        for path in src.paths:
            sch = _parquet_schema(path)
            absent = [c for c in schema.columns if c not in sch.names]
            if absent:
                raise ConfigError(
                    f"The log {path!r} has no column {absent[0]!r}. Its columns are {sch.names}. Every file "
                    f"of a log must have the schema's columns: mine this file separately, or fix it."
                )
            here: dict[str, str] = {}
            for c in schema.columns:
                t = sch.field(c).type
                if pa.types.is_dictionary(t):
                    t = t.value_type
                if pa.types.is_null(t):
                    # all missing in this file (pandas writes a column of None so): any kind, and
                    # the engines read it as NULL of the other files' type (mining.api._id_types)
                    continue
                values = list_value_type(t)
                if values is not None:
                    _check_list_column(c, path, t, schema, lists)
                    t = values
                if c in listed and listed[c] != (values is not None):
                    raise ConfigError(
                        f"Column {c!r} of {path!r} holds {'lists of ids' if values is not None else 'one id a row'} "
                        f"but of {listed_at[c]!r} {'lists of ids' if listed[c] else 'one id a row'}. Every file of a "
                        f"log must hold a column the same way: rewrite the odd file, or mine it separately."
                    )
                listed.setdefault(c, values is not None)
                listed_at.setdefault(c, path)
                if values is not None and pa.types.is_null(t):
                    # lists of missing ids only (Arrow's list<null>: a part whose every list is empty
                    # or of nulls): any kind, read as lists of the other files' type (mining.api._id_types)
                    continue
                if values is not None and not (pa.types.is_integer(t) or pa.types.is_boolean(t) or is_text_type(t)
                                               or is_bytes_type(t)):
                    raise ConfigError(
                        f"Column {c!r} of {path!r} has Parquet type {sch.field(c).type}, whose values cannot be "
                        f"categorical ids. Use lists of integers or strings."
                    )
                if (pa.types.is_integer(t) or pa.types.is_boolean(t)) and c == schema.label:
                    here[c] = "number"  # (0/1 integers in some parts, doubles in others: one kind)
                elif pa.types.is_integer(t) or pa.types.is_boolean(t):
                    here[c] = "int"
                elif (pa.types.is_timestamp(t) or pa.types.is_date(t)) and c == schema.time_key:
                    # (a feature of times was mined as 'timestamp' ids, which the SQL could not group
                    # beside integer ids: a raw DuckDB error, or Arrow's for dates)
                    here[c] = "timestamp"
                elif is_text_type(t) or is_bytes_type(t):
                    here[c] = "string"
                elif (pa.types.is_floating(t) or pa.types.is_decimal(t)) and c == schema.label:
                    here[c] = "number"
                else:
                    raise ConfigError(
                        f"Column {c!r} of {path!r} has Parquet type {t}, which cannot be "
                        + ("a label. Use number (integer, floating-point, decimal) or string columns." if c == schema.label
                           else "a categorical id. Use integer or string columns.")
                    )
            for c, kind in here.items():
                if c not in kinds:
                    kinds[c], first[c] = kind, path
                elif kind != kinds[c]:
                    raise ConfigError(
                        f"Column {c!r} of {path!r} holds {kind} values but of {first[c]!r} {kinds[c]} values. "
                        f"Every file of a log must have the same column types: rewrite the odd file, or mine it separately."
                    )
        typed = dict(first)
        for c in schema.columns:  # all missing in every file: ids (or labels, times) of no value
            kinds.setdefault(c, "int")
    else:  # csv: look at the first block with rows with Arrow's inference
        import pyarrow as pa
        import pyarrow.csv as pcsv

        types = {}
        for path in src.paths:  # not only the first file: a part with its header alone has no rows to infer from
            try:
                batches = _csv_batches(path, pcsv.ReadOptions(block_size=1 << 20),
                                       dict(delimiter=src.delimiter, newlines_in_values=True), lambda r: "skip")
                with contextlib.closing(batches):
                    batch = next((b for b in batches if b.num_rows), None)
            except pa.ArrowInvalid:  # an empty file
                batch = None
            except OSError as exc:  # e.g. a truncated .gz
                raise _unreadable(path, exc) from None
            if batch is not None:
                types = dict(zip(_clean_names(batch.schema.names), batch.schema.types))
                break
        for c in schema.columns:
            t = types.get(c, pa.string())
            if c == schema.time_key:
                kinds[c] = "int" if pa.types.is_integer(t) else "timestamp"
            else:
                kinds[c] = "int" if pa.types.is_integer(t) else "string"
    text_label = src.format == "parquet" and schema.label is not None and kinds.get(schema.label) == "string"
    text_time = src.format == "parquet" and schema.time_key is not None and kinds.get(schema.time_key) == "string"
    if text_time:
        kinds[schema.time_key] = "timestamp"
    if schema.label:
        kinds[schema.label] = "number"
    stored = dict(kinds)
    kinds.update(schema.kinds)
    if src.format == "parquet":
        for c in (c for c in schema.features if listed.get(c) and c in first and kinds[c] != stored[c]):
            raise ConfigError(
                f"Column {c!r} of {first[c]!r} holds lists of {stored[c]} ids, which are read as they are "
                f"stored: kinds cannot read them as {kinds[c]!r}. Leave {c!r} out of kinds."
            )
        for c in dict.fromkeys([*schema.features, *([schema.session_key] if schema.session_key else [])]):
            if stored[c] == "int" and kinds[c] != "int" and c in typed:  # the readers refuse it too (_ids_of)
                raise ConfigError(
                    f"Column {c!r} of {typed[c]!r} holds integers, which cannot be read as kind {kinds[c]!r}. "
                    f"Set its kind to 'int' (or leave it out of kinds)."
                )
    if text_label:
        # a Parquet label stored as text is parsed as a text log's label is (NUM_RE), by every engine
        kinds[schema.label] = "string"
    if text_time and kinds[schema.time_key] == "timestamp":
        # ISO times stored as Parquet text are parsed and checked (TIME_RE) as a text log's are
        kinds[schema.time_key] = "string"
    return kinds


# --------------------------------------------------------------------------- converting


def _check_list_column(c: str, path: str, t, schema: LogSchema, lists: bool) -> None:
    """Refuse a Parquet column of lists where lists cannot be read (see :func:`infer_kinds`)."""
    role = ("the label" if c == schema.label else "the time key" if c == schema.time_key
            else "the session key" if c == schema.session_key else None)
    if role is not None:
        raise ConfigError(f"Column {c!r} of {path!r} holds lists (Parquet type {t}), which cannot be {role}: "
                          f"it needs one value a row. Pass a column of single values.")
    if not lists:
        raise ConfigError(
            f"Column {c!r} of {path!r} holds lists of ids (Parquet type {t}), a multi-hot feature: the log "
            f"readers give one id a row and cannot read it. mine counts such a column (every id of a list is "
            f"one access); to read it here, explode the lists into rows first."
        )


def _is_int_column(col) -> bool:
    import pyarrow as pa

    t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    return pa.types.is_integer(t) or pa.types.is_boolean(t)


def _ids_of(col, kind: str):
    """(int64 ids, bad mask or None) of one Arrow column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if kind == "list":  # lists of ids, never bad: only their rows' other values are read
        # (mining.api.raise_first_bad_line, which finds a bad row of a log with list columns)
        return np.zeros(len(col), dtype=np.int64), None
    if pa.types.is_dictionary(t):
        t = t.value_type
        col = col.cast(t)  # a table's column is a ChunkedArray, which has no dictionary_decode
    if pa.types.is_null(t):
        return np.full(len(col), MISSING_ID, dtype=np.int64), None
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        if kind != "int":
            raise ConfigError(f"A column of integers cannot be read as kind {kind!r}. Set its kind to 'int'.")
        return pc.fill_null(col.cast(pa.int64(), safe=False), MISSING_ID).to_numpy(zero_copy_only=False).astype(np.int64, copy=False), None
    if kind == "string":
        return string_ids(col), None
    if kind == "hex32":
        ids, valid = _hex32(col)
        return ids, ~valid
    # int written as text
    missing = pc.fill_null(pc.equal(col, ""), True)
    ok = pc.fill_null(pc.match_substring_regex(col, _full(INT_RE)), False)
    vals = pc.cast(pc.utf8_trim_whitespace(pc.if_else(ok, col, "0")), pa.int64())
    ids = vals.to_numpy(zero_copy_only=False).astype(np.int64, copy=True)
    missing = missing.to_numpy(zero_copy_only=False)
    ids[missing] = MISSING_ID
    return ids, ~(ok.to_numpy(zero_copy_only=False) | missing)


def _label_of(col):
    import pyarrow as pa
    import pyarrow.compute as pc

    if (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)
            or pa.types.is_decimal(col.type) or pa.types.is_null(col.type)):
        vals = pc.fill_null(col.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        # NaN is no label, as the text 'nan' is not (NUM_RE); the engines flag it too (jobs.py)
        bad = col.is_null().to_numpy(zero_copy_only=False) | np.isnan(vals)
        return vals, bad
    ok = pc.fill_null(pc.match_substring_regex(col, _full(NUM_RE)), False)
    vals = pc.cast(pc.utf8_trim_whitespace(pc.if_else(ok, col, "0")), pa.float64()).to_numpy(zero_copy_only=False)
    return vals, ~ok.to_numpy(zero_copy_only=False)


def _is_date(text: str) -> bool:
    import pyarrow as pa

    for t in (pa.timestamp("us"), pa.timestamp("us", tz="UTC")):  # without a zone, with one
        try:
            pa.scalar(text).cast(t)
            return True
        except pa.ArrowInvalid:
            pass
    return False


def _stamps(col, ok, zoned):
    """The ISO times of ``col`` where ``ok`` (1970 elsewhere) as naive UTC microseconds: a zoned
    time converted to UTC, one without a zone as it is."""
    import pyarrow as pa
    import pyarrow.compute as pc

    naive = pc.cast(pc.if_else(pc.and_(ok, pc.invert(zoned)), col, "1970-01-01"), pa.timestamp("us"))
    utc = pc.cast(pc.if_else(pc.and_(ok, zoned), col, "1970-01-01T00:00:00Z"), pa.timestamp("us", tz="UTC"))
    return pc.if_else(zoned, utc.cast(pa.timestamp("us")), naive)


def _time_of(col, kind: str):
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_timestamp(t) and t.unit == "ns":  # kept to the nanosecond, as DuckDB orders them
        return col.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False).astype("datetime64[ns]"), None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False).astype("datetime64[us]"), None
    if kind == "int" or pa.types.is_integer(t):  # integers order as integers, whatever the kind given (as in the engines)
        return _ids_of(col, "int")
    if pa.types.is_null(t):  # a part where the time is all missing (Arrow's null type)
        return np.full(len(col), np.datetime64("NaT"), dtype="datetime64[us]"), None
    missing = pc.fill_null(pc.equal(col, ""), True).to_numpy(zero_copy_only=False)
    ok = pc.fill_null(pc.match_substring_regex(col, _full(TIME_RE)), False)
    zoned = pc.fill_null(pc.match_substring_regex(col, _full(_ZONED_RE)), False)
    try:
        stamps = _stamps(col, ok, zoned)
    except pa.ArrowInvalid:  # a value of the pattern that is no date (month 13): a bad line, as the engines count it
        ok = pa.array([bool(o) and _is_date(v) for o, v in zip(ok.to_pylist(), col.to_pylist())])
        stamps = _stamps(col, ok, zoned)
    vals = stamps.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    vals[missing] = np.datetime64("NaT")
    return vals, ~(ok.to_numpy(zero_copy_only=False) | missing)


def _text_of(col) -> np.ndarray:
    """A string column's values as they are (object array: str, bytes for binary, None when null)."""
    import pyarrow as pa

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.to_numpy(zero_copy_only=False)


def convert_batch(table, schema: LogSchema, kinds: Mapping[str, str], *,
                  hash_strings: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One Arrow batch/table of raw columns -> (NumPy columns, bad-row mask). ``hash_strings=False``:
    columns of kind 'string' as their text (see :func:`iter_batches`)."""
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    out: dict[str, np.ndarray] = {}
    for c in dict.fromkeys([*schema.features, *([schema.session_key] if schema.session_key else [])]):
        out[c], b = _ids_of(table.column(c), kinds[c])
        if b is not None:
            bad |= b
        if not hash_strings and kinds[c] == "string" and out[c].dtype == np.int64 \
                and not _is_int_column(table.column(c)):
            out[c] = _text_of(table.column(c))
    if schema.label:
        out[schema.label], b = _label_of(table.column(schema.label))
        bad |= b
    if schema.time_key:
        out[schema.time_key], b = _time_of(table.column(schema.time_key), kinds[schema.time_key])
        if b is not None:
            bad |= b
    return out, bad


# --------------------------------------------------------------------------- reading


class BadLineError(ConfigError):
    """A malformed line in a log read with ``on_bad_line="error"``; ``column``: the column whose
    value its kind refuses, when that is why (else None)."""

    column: str | None = None


# how a bad line's error names what a column's kind takes
_KIND_WORDS = {"int": "an int", "hex32": "a 32-bit hex value", "number": "a number",
               "timestamp": "a timestamp (YYYY-MM-DD, then optionally [ T]HH:MM[:SS[.ffffff][Z|+HH:MM]])"}


def _bad_line_error(path: str, where: str, text: str, why: str) -> BadLineError:
    text = text if len(text) <= 200 else text[:200] + "..."
    return BadLineError(
        f"Malformed line in {path!r} ({where}): {why}: {text!r}. Fix the line, or pass "
        f"on_bad_line='skip' to skip and count such lines.", param="on_bad_line"
    )


def _as_text(table):
    """``(table with binary columns cast to strings, mask of rows with a value that is not UTF-8 or None)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    bad = None
    cols = []
    for name, col in zip(table.column_names, table.columns):
        try:
            col = col.cast(pa.string())
        except pa.ArrowInvalid:  # rare: find the offending values one by one
            vals = col.to_pylist()
            wrong = np.zeros(len(vals), dtype=bool)
            for i, v in enumerate(vals):
                try:
                    v is None or v.decode("utf-8")
                except UnicodeDecodeError:
                    wrong[i] = True
            bad = wrong if bad is None else bad | wrong
            col = pc.if_else(pa.array(wrong), pa.scalar(b"", pa.binary()), col).cast(pa.string())
        cols.append(col)
    return pa.table(cols, names=table.column_names), bad


# compressions a text log's name may add, which Arrow and the engines decompress by the extension
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


def _format_extension(path) -> str:
    """The extension that tells a log's format: ``.csv`` for ``day_0.csv.gz`` too."""
    p = Path(path)
    if p.suffix.lower() in _COMPRESSED and Path(p.stem).suffix.lower() in (".csv", ".libfm"):
        return Path(p.stem).suffix.lower()
    return p.suffix.lower()


def _first_line(fh) -> bytes:
    """Read the first line of a buffered text log, ended by \\n, \\r\\n or \\r alone (Arrow and both
    engines take all three; a file of \\r line ends, as old Mac tools write it, was one 'line')."""
    line = bytearray()
    while True:
        chunk = fh.peek(1 << 16)[: 1 << 16]
        if not chunk:
            return bytes(line)
        ends = [i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0]
        if not ends:
            line += fh.read(len(chunk))
            continue
        end = min(ends)
        line += fh.read(end + 1)
        if line.endswith(b"\r") and fh.peek(1)[:1] == b"\n":
            line += fh.read(1)
        return bytes(line)


def _open_text(path: str):
    """A text log's bytes as Arrow's CSV reader sees them: decompressed when the name says so."""
    import pyarrow as pa

    return io.BufferedReader(pa.input_stream(path, compression="detect"))


class _RowHandler:
    """A bad-row handler of one Arrow CSV reader, which ``_csv_batches`` sees released."""

    __slots__ = ("fn", "__weakref__")

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, row):
        return self.fn(row)


# How long _csv_batches waits for Arrow to drop a reader's handler (it takes microseconds).
HANDLER_RELEASE_SECONDS = 5.0


def _csv_batches(source, read, parse_kw: Mapping[str, Any], on_invalid, convert=None):
    """Record batches of Arrow's streaming CSV reader over ``source`` (a path or a file), bad
    rows given to ``on_invalid``; once iteration ends (or stops), waits until Arrow has dropped
    the handler.

    Arrow's reader can outlive its Python object on an I/O thread (a read ahead in flight holds
    it). Where that thread dropped a Python handler during interpreter shutdown, it had to take
    the GIL then, and the process died after its work was done ("terminate called without an
    active exception", exit 134; seen in 3 of 12 runs reading a malformed log three times). So
    each reader gets a handler object of its own, and the reader is let go of while Python runs.
    """
    import weakref

    import pyarrow.csv as pcsv

    handler = _RowHandler(on_invalid)
    released = weakref.ref(handler)
    reader = pcsv.open_csv(source, read_options=read, parse_options=pcsv.ParseOptions(**parse_kw, invalid_row_handler=handler),
                           convert_options=convert)
    del handler
    try:
        yield from reader
    finally:
        del reader
        deadline = time.monotonic() + HANDLER_RELEASE_SECONDS
        while released() is not None and time.monotonic() < deadline:
            time.sleep(0.001)


def _keep(lines_in, seen: list):
    """Lines of ``lines_in``, each also appended to ``seen`` (the text of the record being read)."""
    for line in lines_in:
        seen.append(line)
        yield line


def _find_line(path: str, text: str) -> str:
    """``"line N"`` of the first line equal to ``text`` (error path only); lines end at \\n,
    \\r\\n or \\r, as Arrow reads them."""
    with io.TextIOWrapper(_open_text(path), encoding="utf-8", errors="replace", newline=None) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.rstrip("\n") == text:
                return f"line {lineno}"
    return "a line"


class LogReader:
    """An iterable of batches (dicts of NumPy arrays) of one log; counts the lines it skipped.

    ``bad_lines`` is final once iteration ends; ``rows`` counts the good rows yielded.
    """

    def __init__(self, source: LogSource, schema: LogSchema, *, on_bad_line: str = "error",
                 block_bytes: int = DEFAULT_BLOCK_BYTES, kinds: Mapping[str, str] | None = None,
                 hash_strings: bool = True):
        if on_bad_line not in ON_BAD_LINE:
            raise ConfigError(f"The 'on_bad_line' parameter must be one of {ON_BAD_LINE}. Got {on_bad_line!r} instead.")
        if not isinstance(block_bytes, int) or block_bytes < 1024:
            raise ConfigError(f"The 'block_bytes' parameter must be an int of at least 1024. Got {block_bytes!r} instead.")
        if not isinstance(hash_strings, bool):
            raise ConfigError(f"The 'hash_strings' parameter must be True or False. Got {hash_strings!r} instead.")
        self.source, self.schema = source, schema
        self.on_bad_line, self.block_bytes, self.hash_strings = on_bad_line, block_bytes, hash_strings
        self.kinds = dict(kinds) if kinds is not None else infer_kinds(source, schema)
        self.bad_lines = 0
        self.rows = 0
        self.bytes_read = 0
        self.total_bytes = sum(os.path.getsize(p) for p in source.paths)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        self.bad_lines = self.rows = self.bytes_read = 0
        gen = {"criteo": self._text, "csv": self._text, "parquet": self._parquet, "libfm": self._libfm}[self.source.format]
        for path in self.source.paths:
            try:
                for table, row0, size, not_utf8 in gen(path):
                    cols, bad = convert_batch(table, self.schema, self.kinds, hash_strings=self.hash_strings)
                    if not_utf8 is not None:
                        bad |= not_utf8
                    if bad.any():
                        if self.on_bad_line == "error":
                            raise self._value_error(path, table, row0, bad, not_utf8)
                        self.bad_lines += int(bad.sum())
                        cols = {k: v[~bad] for k, v in cols.items()}
                    self.bytes_read += size
                    n = len(next(iter(cols.values())))
                    self.rows += n
                    if n:
                        yield cols
            except BadLineError as exc:
                hint = self._stray_file_hint(path)
                if hint is None:
                    raise
                err = BadLineError(f"{exc} {hint}", param=exc.param)
                err.column = exc.column
                raise err from None

    def _stray_file_hint(self, path: str) -> str | None:
        """For a bad line in a file read because its folder was given: the glob of the log files
        that leaves it out (Frappe's folder holds a README.txt beside its .libfm files), when the
        other files' extension tells them apart; else None."""
        for given, folder in self.source.folders:
            if not Path(path).is_relative_to(folder):
                continue
            own = _format_extension(path)
            others = [p for p in self.source.paths if p != path and Path(p).is_relative_to(folder)]
            exts = Counter(_format_extension(p) for p in others)
            exts.pop(own, None)
            exts.pop("", None)
            if not exts:  # the other files are named as it is: no glob tells them apart
                return None
            ext = exts.most_common(1)[0][0]
            deep = any(Path(p).parent != Path(folder) for p in others if _format_extension(p) == ext)
            glob = os.path.join(given, "**", f"*{ext}") if deep else os.path.join(given, f"*{ext}")
            return (f"If {os.path.relpath(path, folder)!r} is no log file (every visible file of the folder {given!r} "
                    f"is read, and on_bad_line='skip' would count its lines as bad ones), pass a glob of the log "
                    f"files instead, e.g. {glob!r}.")
        return None

    # Each generator yields (Arrow table of the schema's columns, index of its first record, bytes,
    # mask of records with bytes that are not UTF-8 or None).

    def _value_error(self, path: str, table, row0: int, bad, not_utf8) -> BadLineError:
        """The error naming the first bad record of ``table`` (whose first record is ``row0``)."""
        i = int(np.flatnonzero(bad)[0])
        row = {c: table.column(c)[i].as_py() for c in self.schema.columns}
        where, text = f"record {row0 + i + 1}", str(row)
        if self.source.format in ("criteo", "csv"):
            where, text = self._locate(path, row0 + i)
        col = None
        if not_utf8 is not None and not_utf8[i]:
            why = "a value is not valid UTF-8 text"
        else:
            one = table.slice(i, 1)
            col = next((c for c in self.schema.columns if self._bad_value(one, c)), None)
            kind = ("number" if col == self.schema.label else "timestamp" if col == self.schema.time_key
                    and self.kinds[col] != "int" else self.kinds.get(col))
            what = f": {col!r} is not {_KIND_WORDS.get(kind, kind)}" if col is not None else ""
            why = f"a value does not parse as its column's kind{what} ({row})"
        err = _bad_line_error(path, where, text, why)
        err.column = col
        return err

    def _bad_value(self, one, col: str) -> bool:
        """Whether column ``col`` of the one-row table ``one`` holds a value its kind refuses."""
        if col == self.schema.label:
            _, bad = _label_of(one.column(col))
        elif col == self.schema.time_key:
            _, bad = _time_of(one.column(col), self.kinds[col])
        else:
            _, bad = _ids_of(one.column(col), self.kinds[col])
        return bad is not None and bool(bad[0])

    def _locate(self, path: str, record: int) -> tuple[str, str]:
        """(``"line N"``, its text) of the 0-based ``record``-th data record (error path only).

        Parsed as the reader does (a quoted CSV field may span lines; a line of whitespace is
        blank, not a record), so the line is the record's own first line."""
        import csv

        criteo = self.source.format == "criteo"
        ncols = len(CRITEO_COLUMNS) if criteo else len(self.source.header(path))
        quoting = dict(quoting=csv.QUOTE_NONE) if criteo else dict(quotechar='"', doublequote=True)
        k, start = -1, 1
        limit = csv.field_size_limit(2**31 - 1)  # Arrow takes fields of any length; csv's default is 128 KiB
        try:
            with io.TextIOWrapper(_open_text(path), encoding="utf-8", errors="replace", newline="") as fh:
                lines: list[str] = []
                reader = csv.reader(_keep(fh, lines), delimiter=self.source.delimiter, strict=False, **quoting)
                for row in reader:
                    first, start = start, reader.line_num + 1
                    text, lines[:] = "".join(lines).rstrip("\r\n"), []
                    if (not criteo and first == 1) or (len(row) != ncols and not "".join(row).strip()):
                        continue  # the header, or a blank line
                    k += 1
                    if k == record:
                        return f"line {first}", text
        finally:
            csv.field_size_limit(limit)
        return f"record {record + 1}", ""

    def _text(self, path: str):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        criteo = self.source.format == "criteo"
        names = list(CRITEO_COLUMNS) if criteo else self.source.header(path)  # (columns by the file's own names)
        first_bad: list = []

        def on_invalid(row):
            if not row.text.strip():
                return "skip"  # a line of whitespace is blank, as Spark's CSV reader and libfm take it
            if self.on_bad_line == "error":
                first_bad.append(row)
                return "error"
            self.bad_lines += 1
            return "skip"

        read = pcsv.ReadOptions(column_names=names, skip_rows=0 if criteo else 1, block_size=self.block_bytes, use_threads=False)
        # a quoted value may span lines (as DuckDB reads it): blocks must not be cut inside one
        parse = dict(delimiter=self.source.delimiter, quote_char=False if criteo else '"', newlines_in_values=not criteo)
        # read as bytes, then checked per value: a value that is not UTF-8 makes its line bad (as
        # in the engines) instead of failing the whole file in Arrow's string conversion
        convert = pcsv.ConvertOptions(column_types={c: pa.binary() for c in self.schema.columns},
                                      include_columns=self.schema.columns, strings_can_be_null=False,
                                      quoted_strings_can_be_null=False)
        try:
            with _open_text(path) as fh:
                if not criteo:
                    _first_line(fh)
                if not fh.read(1):
                    return  # no rows (a CSV's header alone has none)
        except OSError as exc:  # e.g. a truncated .gz
            raise _unreadable(path, exc) from None
        try:
            row0 = 0
            size = os.path.getsize(path)
            for batch in _csv_batches(path, read, parse, on_invalid, convert):
                table, not_utf8 = _as_text(pa.Table.from_batches([batch]))
                yield table, row0, min(self.block_bytes, size), not_utf8
                row0 += batch.num_rows
        except pa.ArrowInvalid as exc:
            if first_bad:
                r = first_bad[0]
                where = _find_line(path, r.text)
                # Arrow parses a whole block (or more) before its values are checked: a bad value
                # on an earlier line must be the one named
                self._raise_bad_value_before(path, where, read, parse, convert)
                raise _bad_line_error(path, where, r.text, f"{r.actual_columns} fields where {r.expected_columns} are expected") from None
            raise ConfigError(f"Cannot parse the log {path!r} as {self.source.format}: {exc}. Check the format and delimiter.") from None
        except OSError as exc:  # e.g. a truncated .gz
            raise _unreadable(path, exc) from None

    def _raise_bad_value_before(self, path: str, where: str, read, parse, convert) -> None:
        """Raise the error of the first bad value on a line before ``where`` (``"line N"``), if any;
        ``parse``: the reader's ParseOptions arguments (``_csv_batches``)."""
        import pyarrow as pa

        if not where.startswith("line "):
            return
        stop = int(where.split()[1])
        if stop - 1 <= (0 if self.source.format == "criteo" else 1):
            return  # no record before it (Arrow calls a block without rows an empty CSV file)
        with _open_text(path) as fh:
            head = b"".join(line for _, line in zip(range(stop - 1), fh))
        # lines before the first of wrong field count: only blank ones are invalid (skipped)
        row0 = 0
        for batch in _csv_batches(io.BytesIO(head), read, parse, lambda row: "skip", convert):
            table, not_utf8 = _as_text(pa.Table.from_batches([batch]))
            _, bad = convert_batch(table, self.schema, self.kinds)
            if not_utf8 is not None:
                bad |= not_utf8
            if bad.any():
                raise self._value_error(path, table, row0, bad, not_utf8)
            row0 += batch.num_rows

    def _parquet(self, path: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ConfigError(f"Cannot read {path!r} as Parquet: {exc}. Pass a Parquet file or the right format.") from None
        missing = [c for c in self.schema.columns if c not in pf.schema_arrow.names]
        if missing:
            raise ConfigError(f"The log {path!r} has no column {missing[0]!r}. Its columns are {pf.schema_arrow.names}.")
        # size batches so one holds about block_bytes of the file's (compressed) data
        row_bytes = max(1, os.path.getsize(path) // max(1, pf.metadata.num_rows))
        batch_rows = max(1024, self.block_bytes // max(8, row_bytes))
        row0 = 0
        batches = pf.iter_batches(batch_size=batch_rows, columns=self.schema.columns)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except OSError as exc:  # corrupt data pages (the footer read)
                raise _unreadable(path, exc) from None
            yield pa.Table.from_batches([batch]), row0, batch.num_rows * row_bytes, None
            row0 += batch.num_rows

    def _libfm(self, path: str):
        """Parse ``label idx:val ...`` lines a block at a time with Arrow string kernels."""
        import pyarrow as pa
        import pyarrow.compute as pc

        fields = list(self.source.fields)
        ranges = self.source.field_ranges
        want = self.schema.columns
        line0 = 0
        with _open_text(path) as fh:  # decompressed when the name says so (.gz, .bz2, ...), as text logs are
            rest = _read(fh, 3, path)
            if rest == b"\xef\xbb\xbf":  # a UTF-8 byte-order mark is no part of the first label
                rest = b""
            while True:
                chunk = _read(fh, self.block_bytes, path)
                data = rest + chunk
                if not chunk:
                    rest = b""
                else:
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        rest = data
                        continue
                    data, rest = data[: cut + 1], data[cut + 1 :]
                if not data:
                    break
                lines = pc.split_pattern(pa.array([data.decode("utf-8", errors="replace")]), "\n").flatten()
                if data.endswith(b"\n"):
                    lines = lines.slice(0, len(lines) - 1)
                lineno = np.arange(line0 + 1, line0 + 1 + len(lines))
                line0 += len(lines)
                trimmed = pc.utf8_trim_whitespace(lines)
                tokens = pc.utf8_split_whitespace(trimmed)
                ntok = pc.list_value_length(tokens).to_numpy(zero_copy_only=False)
                keep = pc.utf8_length(trimmed).to_numpy(zero_copy_only=False) > 0  # blank lines are not rows
                tokens, lines, ntok, lineno = tokens.filter(pa.array(keep)), lines.filter(pa.array(keep)), ntok[keep], lineno[keep]
                n = len(tokens)
                table, bad, why = self._libfm_rows(tokens, ntok, fields, ranges, want)
                if bad.any():
                    if self.on_bad_line == "error":
                        i = int(np.flatnonzero(bad)[0])
                        raise _bad_line_error(path, f"line {lineno[i]}", lines[i].as_py(), why[i])
                    self.bad_lines += int(bad.sum())
                    table = table.filter(pa.array(~bad))
                if n:
                    yield table, 0, len(data), None
                if not chunk:
                    break

    @staticmethod
    def _libfm_rows(tokens, ntok, fields, ranges, want):
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(tokens)
        bad = np.zeros(n, dtype=bool)
        why = np.full(n, "", dtype=object)
        nf = len(fields)
        label = pc.list_element(tokens, 0) if n else pa.array([], pa.string())
        feats = pc.list_slice(tokens, 1)
        flat = feats.flatten()
        owner = np.repeat(np.arange(n), ntok - 1)
        parts = pc.split_pattern(flat, ":", max_splits=1)
        ok = (pc.list_value_length(parts).to_numpy(zero_copy_only=False) == 2) if len(flat) else np.zeros(0, bool)
        idx_txt = pc.list_element(parts, 0) if len(flat) else pa.array([], pa.string())
        ok &= pc.fill_null(pc.match_substring_regex(idx_txt, r"^[0-9]{1,18}$"), False).to_numpy(zero_copy_only=False) if len(flat) else ok
        idx = np.zeros(len(flat), dtype=np.int64)
        if len(flat):
            idx[ok] = pc.cast(idx_txt.filter(pa.array(ok)), pa.int64()).to_numpy(zero_copy_only=False)
        badtok = np.zeros(n, dtype=bool)
        np.logical_or.at(badtok, owner[~ok], True)
        bad |= badtok
        why[badtok] = "a feature is not 'index:value'"
        out = {c: np.full(n, MISSING_ID, dtype=np.int64) for c in fields}
        if ranges is None:
            # positional: the k-th feature of a line belongs to fields[k]
            wrong = (ntok - 1) != nf
            why[wrong & ~bad] = f"not exactly {nf} features (one per field)"
            bad |= wrong
            pos = np.arange(len(flat)) - np.repeat(np.cumsum(ntok - 1) - (ntok - 1), ntok - 1)
            good = ~bad[owner]
            for k, c in enumerate(fields):
                sel = good & (pos == k)
                out[c][owner[sel]] = idx[sel]
        else:
            los = np.array([r[1] for r in ranges])
            his = np.array([r[2] for r in ranges])
            f = np.searchsorted(los, idx, side="right") - 1
            inside = (f >= 0) & (idx < his[np.maximum(f, 0)]) & ok
            unknown = np.zeros(n, dtype=bool)
            np.logical_or.at(unknown, owner[~inside & ok], True)
            why[unknown & ~bad] = "a feature index is in no field of field_map"
            bad |= unknown
            # one-hot: a field may appear at most once per line
            key = owner[inside] * nf + f[inside]
            dup = np.zeros(n, dtype=bool)
            if len(key):
                ks = np.sort(key)
                d = ks[1:][ks[1:] == ks[:-1]] // nf
                dup[d] = True
            why[dup & ~bad] = "a field appears twice (libfm fields are one-hot)"
            bad |= dup
            name_of = [r[0] for r in ranges]
            sel_owner, sel_f, sel_idx = owner[inside], f[inside], idx[inside]
            for j, c in enumerate(name_of):
                s = sel_f == j
                out[c][sel_owner[s]] = sel_idx[s]
        lab_ok = pc.fill_null(pc.match_substring_regex(label, _full(NUM_RE)), False).to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
        why[~lab_ok & ~bad] = "the label is not a number"
        bad |= ~lab_ok
        cols = {c: pa.array(out[c]) for c in want if c in out}
        if "label" in want:
            cols["label"] = pc.cast(pc.if_else(pa.array(lab_ok), label, "0"), pa.float64()) if n else pa.array([], pa.float64())
        return pa.table(cols) if n else pa.table({c: pa.array([], pa.float64() if c == "label" else pa.int64()) for c in want}), bad, why


def _schema_of(schema: LogSchema | None, features, label, time_key, session_key, kinds) -> LogSchema:
    if schema is not None:
        if not isinstance(schema, LogSchema):
            raise ConfigError(f"The 'schema' parameter must be a LogSchema. Got {type(schema).__name__} instead.")
        return schema
    if features is None:
        raise ConfigError("Pass the categorical features to read: features=[...] (or a LogSchema).")
    return LogSchema(tuple([features] if isinstance(features, str) else features), label, time_key, session_key, kinds or {})


def iter_batches(
    source, schema: LogSchema | None = None, *, features: Sequence[str] | None = None, label: str | None = None,
    time_key: str | None = None, session_key: str | None = None, kinds: Mapping[str, str] | None = None,
    format: str | None = None, delimiter: str | None = None, fields: Sequence[str] | None = None,
    field_map: Any = None, on_bad_line: str = "error", block_bytes: int = DEFAULT_BLOCK_BYTES,
    hash_strings: bool = True,
) -> LogReader:
    """Stream a log as batches of NumPy columns, in bounded memory (one block at a time).

    Pass a :class:`LogSchema`, or its parts (``features``, ``label``, ``time_key``,
    ``session_key``, ``kinds``). Returns a :class:`LogReader`: iterate it; afterwards its
    ``bad_lines`` holds the number of skipped lines. Id columns are int64; with
    ``hash_strings=False`` columns of kind 'string' come as their text instead (object arrays of
    str, None or '' when missing), which :meth:`LogStats.from_rows` hashes as the engines do and
    orders ties of time by, as they do.
    """
    src = LogSource.resolve(source, format=format, delimiter=delimiter, fields=fields, field_map=field_map)
    sch = _schema_of(schema, features, label, time_key, session_key, kinds)
    return LogReader(src, sch, on_bad_line=on_bad_line, block_bytes=block_bytes, hash_strings=hash_strings)


def read_log(source, schema: LogSchema | None = None, **kwargs) -> dict[str, np.ndarray]:
    """Read a whole (small) log into NumPy columns; same parameters as :func:`iter_batches`.

    Warns with the count when ``on_bad_line="skip"`` skipped lines; an empty log is an error.
    """
    reader = iter_batches(source, schema, **kwargs)
    parts = list(reader)
    if not parts:
        raise ConfigError(
            f"The log {reader.source.paths[0]!r} has no rows"
            + (f" ({reader.bad_lines} malformed lines were skipped)" if reader.bad_lines else "")
            + ". Pass a log with data."
        )
    if reader.bad_lines:
        warnings.warn(f"skipped {reader.bad_lines} malformed lines of {reader.source.paths[0]!r}", stacklevel=2)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
