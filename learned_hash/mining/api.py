"""``mine``: the public entry point. Validates once, plans the jobs, hands them to an engine."""

from __future__ import annotations

import contextlib
import numbers
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embcompress.errors import ConfigError
from learned_hash.logs import (FORMATS, ON_BAD_LINE, BadLineError, LogReader, LogSchema, LogSource, _parquet_schema,
                                infer_kinds, is_bytes_type, is_text_type, list_value_type, schemas_read_once)

from .jobs import MiningPlan, case_twins, key_columns
from .stats import SORT_SETTINGS, LogStats

ENGINES = ("duckdb", "spark")
SPARK_MIN_MEMORY = 480 << 20  # Spark's driver refuses a heap that leaves it less than 450 MiB
MAX_FEATURES = 63  # GROUPING_ID over the feature keys is a 64-bit integer (DuckDB refuses 64 keys)
# A size both engines take: DuckDB's units (KB, MB, ... are powers of 1000; KiB, MiB, ... of 1024)
_SIZE = re.compile(r"\s*([0-9]+(?:[.][0-9]+)?)\s*(B|KB?|MB?|GB?|TB?|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)
_UNITS = {"b": 1, **{u: 1000 ** (i + 1) for i, u in enumerate("kmgt")},
          **{u + "b": 1000 ** (i + 1) for i, u in enumerate("kmgt")},
          **{u + "ib": 1 << (10 * (i + 1)) for i, u in enumerate("kmgt")}}


def _error(param: str, message: str) -> ConfigError:
    """A ConfigError about mine's parameter ``param`` (the CLI names the flag that sets it)."""
    return ConfigError(message, param=param)


# mine's parameters that a message of learned_hash.logs names ('session_key' is LogSchema's name)
_NAMED = {"source": "source", "format": "format", "delimiter": "delimiter", "fields": "fields",
          "field_map": "field_map", "kinds": "kinds", "session_key": "sequence_key"}
_NAMED_RE = re.compile(r"The '(\w+)' (?:parameter|and)")


def _own(err: ConfigError) -> ConfigError:
    """``err`` (raised by learned_hash.logs) with the mine parameter its message names."""
    m = _NAMED_RE.match(str(err))
    if getattr(err, "param", None) is None and m and m.group(1) in _NAMED:
        err.param = _NAMED[m.group(1)]
    return err


def _temp_root(temp_directory) -> str | None:
    """mine's ``temp_directory`` with '~' expanded (as log paths are), absolute, and checked: a
    folder this process can write in, or one it can make in an existing folder."""
    if temp_directory is None:
        return None
    given = os.fspath(temp_directory) if isinstance(temp_directory, (str, os.PathLike)) else None
    if not isinstance(given, str) or not given:
        raise _error("temp_directory", f"The 'temp_directory' parameter of mine must be a folder path or None (the "
                                       f"system's temp folder). Got {temp_directory!r} instead.")
    path = os.path.abspath(os.path.expanduser(given))
    shown = repr(given) if path == given else f"{given!r} ({path!r})"
    if os.path.isdir(path):
        where = path
    elif os.path.exists(path):
        raise _error("temp_directory", f"The 'temp_directory' parameter of mine must be a folder, but {shown} is a "
                                       f"file. Pass a folder for the temporary files, or None for the system's temp folder.")
    else:
        where = os.path.dirname(path)
        if not os.path.isdir(where):
            raise _error("temp_directory", f"The 'temp_directory' parameter of mine names {shown}, which does not "
                                           f"exist, nor does the folder {where!r} that would hold it. Create the "
                                           f"folder (mine makes only its last part, as DuckDB does), or pass another; "
                                           f"None is the system's temp folder.")
    if not os.access(where, os.W_OK | os.X_OK):
        raise _error("temp_directory", f"The 'temp_directory' parameter of mine names {shown}, but the folder "
                                       f"{where!r} is not writable. Pass a folder you can write in, or None for the "
                                       f"system's temp folder.")
    return path


def memory_bytes(memory_limit) -> int:
    """The bytes of a size such as ``"2GB"``, ``"1.5GiB"`` or ``"512 MB"`` (ConfigError otherwise)."""
    m = _SIZE.fullmatch(memory_limit) if isinstance(memory_limit, str) else None
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()]) if m else 0
    if n < 1 << 20:
        raise _error(
            "memory_limit",
            f"The 'memory_limit' parameter of mine must be a size such as '2GB', '512MB' or '1.5GiB' "
            f"(at least 1MiB). Got {memory_limit!r} instead."
        )
    return n


def _names(value, what: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    if not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise _error(what, f"The {what!r} parameter of mine must be a non-empty list of column names. Got {value!r} instead.")
    out = [x.strip() for x in items]
    if len(set(out)) != len(out):
        twice = next(x for i, x in enumerate(out) if x in out[:i])
        raise _error(what, f"The {what!r} parameter of mine must not repeat a name. Got {twice!r} twice in {out} instead.")
    return out


def max_threads() -> int:
    """The most threads mine takes: 4 per core of this machine, at least 1024 (each engine thread
    costs memory, and beyond the cores they bring no speed; 100000 is a typo)."""
    return max(1024, 4 * (os.cpu_count() or 1))


def _count(value, name: str, *, none: bool = False):
    """``value`` as an int >= 1 (a NumPy integer too), or None when ``none``; else a ConfigError."""
    if value is None and none:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value >= 1:
        return int(value)
    must = "a positive int or None" if none else "an int >= 1"
    raise _error(name, f"The {name!r} parameter of mine must be {must}. Got {value!r} instead.")


def _pairs(pairs, features: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for p in (pairs.split(",") if isinstance(pairs, str) else pairs) or ():  # "a:b,c:d", as features take "a,b"
        if isinstance(p, str):
            p = p.split(":")
        if isinstance(p, (tuple, list)) and all(isinstance(x, str) for x in p):
            p = tuple(x.strip() for x in p)  # as features are stripped (_names); _column_of finds the column
        # (a feature paired with itself: the ids of one list, for a multi-hot column; mine refuses it
        # for a column of single ids once the log's types are known)
        if not (isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            raise _error(
                "pairs",
                f"The 'pairs' parameter of mine must hold pairs of two feature names, "
                f"e.g. [('user', 'item')] or ['user:item']. Got {p!r} instead."
            )
        for x in p:
            if x not in features:
                raise _error(
                    "pairs",
                    f"The 'pairs' parameter of mine names {x!r}, which is not a mined feature "
                    f"{features}. Add it to features."
                )
        if tuple(p) in out or (p[1], p[0]) in out:
            continue
        out.append(tuple(p))
    return tuple(out)


# what the first bytes of a compressed file are (the engines tell a compression by its extension only)
_MAGIC = {b"\x1f\x8b": ("gzip", ".gz"), b"\x28\xb5\x2f\xfd": ("zstd", ".zst")}


def _refuse_unnamed_compression(src: LogSource) -> None:
    """A ConfigError for a text log holding gzip or zstd data under a name without its extension:
    read as text it failed as 'not UTF-8 ... UTF-16 is one cause' or 'mixes \\r\\n and \\n'."""
    if src.format not in ("csv", "criteo"):
        return
    for path in src.paths:
        if Path(path).suffix.lower() in (".gz", ".bz2", ".zst", ".lz4", ".br"):
            continue
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
        except OSError:
            continue  # (the readers name an unreadable file)
        codec = next((c for magic, c in _MAGIC.items() if head.startswith(magic)), None)
        if codec is not None:
            raise ConfigError(f"The log {path!r} holds {codec[0]}-compressed data, but its name does not end in "
                              f"{codec[1]!r}, which is how the engines tell it. Rename it to "
                              f"{Path(path).name + codec[1]!r}.", param="source")


def _column_of(name, names):
    """``name`` as a column of ``names``: itself, else the one column that is ``name`` with spaces
    around it. mine strips the names it is given ('C1, C2' is split), so a header written as
    'user, item' (a column ' item') could not be named at all."""
    if name is None or name in names:
        return name
    near = [n for n in names if n.strip() == name.strip()]
    return near[0] if len(near) == 1 else name


def _check_keys(feats: list[str], **keys) -> None:
    """label, sequence_key and time_key: column names, each of its own (a session key may be a feature)."""
    for name, v in keys.items():
        if v is not None and not (isinstance(v, str) and v):
            raise _error(name, f"The {name!r} parameter of mine must be a column name or None. Got {v!r} instead.")
    label, seq, time = keys["label"], keys["sequence_key"], keys["time_key"]
    if label is not None and label in feats:
        raise _error("label", f"The 'label' parameter of mine names {label!r}, which is a feature. Pass the label "
                              f"column, or leave the label out.")
    if time is not None and time in (*feats, label, seq):
        raise _error("time_key", f"The 'time_key' parameter of mine names {time!r}, which is a feature, the label or "
                                 f"the sequence_key. Pass the column holding the time of each row.")
    if seq is not None and seq == label:
        raise _error("sequence_key", f"The 'sequence_key' parameter of mine names {seq!r}, which is the label. Pass "
                                     f"the column naming each row's session (a user id, say).")


def _check_columns(src: LogSource, schema: LogSchema) -> None:
    """Every column named is in the log (its first file: infer_kinds checks the others), the error
    naming the parameter that named it."""
    names = src.column_names()
    roles = [*(("features", f) for f in schema.features), ("label", schema.label),
             ("sequence_key", schema.session_key), ("time_key", schema.time_key)]
    for param, col in roles:
        if col is not None and col not in names:
            folder = next((part for part in Path(src.paths[0]).parts if part.startswith(f"{col}=")), None)
            fix = (f"{col!r} names the log's partition folders ({folder}), whose values are not read (the "
                   f"engines read the files' own columns; Spark's partitionBy leaves the column out of the "
                   f"files): write it into the files, or mine each partition apart." if folder
                   else "Pass names from that list.")
            raise _error(param, f"The log {src.paths[0]!r} has no column {col!r} (given as {param}). Its columns "
                                f"are {names}. {fix}")


def _check_case(src: LogSource, schema: LogSchema) -> None:
    """No column read has a name that differs only in case from another column's: DuckDB and
    Spark match names ignoring case. A text log's columns are named by the engines (an unread
    twin is renamed: jobs.text_columns); a Parquet file's are its own (run after infer_kinds,
    which found every file readable)."""
    twins = where = None
    if src.format == "csv":
        twins, where = case_twins(schema.columns, schema.columns), src.paths[0]
    for path in src.paths if src.format == "parquet" else ():
        twins, where = case_twins(schema.columns, _parquet_schema(path).names), path
        if twins:
            break
    if twins:
        a, b = sorted(twins)
        roles = {**{f: "features" for f in schema.features}, schema.label: "label",
                 schema.session_key: "sequence_key", schema.time_key: "time_key"}
        raise _error(
            roles.get(twins[0], "features"),
            f"The log {where!r} has the columns {a!r} and {b!r}, whose names differ only in case, and "
            f"{twins[0]!r} is to be read: DuckDB and Spark do not tell such names apart. Rename one of "
            f"them in the log" + (", or read only one of them." if src.format == "csv" else ".")
        )


def _bad_header(src: LogSource, exc: Exception) -> ConfigError:
    """The error for a CSV header line that does not parse (or is not UTF-8), naming its file."""
    import pyarrow as pa

    where = src.paths[0]
    for path in src.paths:
        try:
            src._csv_header(path)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            where = path
            break
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, UnicodeDecodeError):
        return ConfigError(
            f"The CSV log {where!r} is not UTF-8 text ({first}); a log saved as UTF-16 is one cause. "
            f"Re-encode it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)."
        )
    return ConfigError(
        f"Cannot parse the header line of the CSV log {where!r} ({first}). A quote left open in it is one "
        f"cause: fix the header, or check the format and delimiter."
    )


def raise_first_bad_line(plan: MiningPlan, unreadable: ConfigError | None = None) -> None:
    """Find the first malformed line with the Python reader and raise its BadLineError.

    Engines call this when they met a bad line under ``on_bad_line="error"``: the reader applies
    the same rules and names the line, which SQL engines cannot do portably. ``unreadable``: the
    error to raise when the reader finds no bad line (the engine could not parse the file at all).
    """
    # (a list column's lists are never bad: the reader reads its rows' other values)
    kinds = {**plan.kinds, **dict.fromkeys(plan.list_ids, "list")}
    reader = LogReader(plan.source, plan.schema, on_bad_line="error", kinds=kinds)
    try:
        for _ in reader:
            pass
    except BadLineError as exc:
        # a CSV id column read as numbers because its first lines are: a text value may be an id
        guessed = [c for c in key_columns(plan) if plan.kinds[c] in ("int", "hex32") and c not in plan.schema.kinds]
        col = getattr(exc, "column", None)
        if plan.source.format != "csv" or col not in guessed:  # (not for a bad time or label)
            raise
        raise BadLineError(
            f"{exc} If a column of ids holds text (ids that are not numbers, or 'NA' for a missing "
            f"value), read it as text: pass kinds={{{col!r}: 'string'}} (on the command line: "
            f"--kind {col}=string); {guessed} were read as numbers from their first lines.", param="on_bad_line"
        ) from None
    if unreadable is not None:
        raise unreadable
    raise ConfigError(
        f"The log {plan.source.paths[0]!r} has malformed lines. Fix them, or pass on_bad_line='skip' "
        f"to skip and count them.", param="on_bad_line"
    )


def _id_types(src: LogSource, schema: LogSchema, kinds: Mapping[str, str]) -> dict:
    """What the SQL needs to know of the Parquet columns' types, taken from the files that hold a
    column typed (a file may hold it as Arrow's null type, all missing; infer_kinds checked the
    others agree on the kind): ``text_ids``, the id columns stored as text whose kind is 'int' or
    'hex32' (given in ``kinds=``), which the engines parse as a text log's; ``wide_ids``, ``(column,
    unsigned)`` of the ids stored as 64-bit integers (they may hold MISSING_ID itself, which the
    SQL groups with NULL); ``binary_ids``, those of kind 'string' stored as BINARY; ``casts``
    and ``parts``, the columns whose type differs between files and the groups of files that
    agree on those and on which columns are all missing (see MiningPlan)."""
    if src.format != "parquet":
        return {}
    import pyarrow as pa

    lists = set()  # the columns of lists of ids: the types below are their values' (see infer_kinds)
    empty = set()  # (file, column) of lists of missing ids only (Arrow's list<null>): cast to the others' lists

    def types_of(i, path) -> dict:  # each column's type in one file (dictionaries as their values)
        sch = _parquet_schema(path)
        out = {}
        for c in schema.columns:
            t = sch.field(c).type
            out[c] = t.value_type if pa.types.is_dictionary(t) else t
            if list_value_type(t) is not None:
                out[c] = list_value_type(t)
                lists.add(c)
                if pa.types.is_null(out[c]):
                    empty.add((i, c))
        return out

    files = [types_of(i, p) for i, p in enumerate(src.paths)]
    typed = {c: next((f[c] for f in files if not pa.types.is_null(f[c])), pa.null()) for c in schema.columns}
    empty = {(i, c) for i, c in empty if not pa.types.is_null(typed[c])}  # (in every file: nothing to cast to)
    emptied = {c for _, c in empty}
    integer = {c for c, t in typed.items() if pa.types.is_integer(t) or pa.types.is_boolean(t)}
    casts = {}
    id_cols = {*schema.features, schema.session_key}
    for c in schema.columns:
        held = {f[c] for f in files if not pa.types.is_null(f[c])}
        if len(held) < 2 and c not in emptied:
            continue
        if c == schema.label and kinds[c] == "number":  # (integers, floats, decimals, booleans)
            casts[c] = "double"
        elif c in integer:
            casts[c] = "int64"
        elif c == schema.time_key and kinds[c] == "timestamp":
            # DuckDB casts every file to the first one's type (times to a first part's dates or
            # microseconds: ties), Spark refuses another or reads nanoseconds as integers: every
            # time in nanoseconds where a part has them, else microseconds, as the readers order them
            casts[c] = "ns" if any(pa.types.is_timestamp(t) and t.unit == "ns" for t in held) else "us"
        elif c in id_cols and kinds[c] == "string" and any(map(is_text_type, held)) and any(map(is_bytes_type, held)):
            # text in some parts, bytes (BINARY) in others: every value as its bytes, a text's UTF-8,
            # which hash alike (DuckDB read a later part's bytes as escaped text: other ids)
            casts[c] = "bytes"
        elif c in emptied:  # lists of strings beside lists of nulls: every part's lists as the others'
            casts[c] = "binary" if is_bytes_type(typed[c]) else "string"
    cast = sorted(casts)
    groups: dict[tuple, list[int]] = {}  # files by the types of the cast columns and the columns all missing
    for i, f in enumerate(files):
        null = frozenset(c for c in schema.columns if pa.types.is_null(f[c]) and not pa.types.is_null(typed[c])
                         and (i, c) not in empty)
        groups.setdefault((tuple(str(f[c]) for c in cast), null), []).append(i)
    ids = dict.fromkeys([*schema.features, *([schema.session_key] if schema.session_key else [])])
    text = {c for c in ids if kinds[c] in ("int", "hex32") and not pa.types.is_null(typed[c]) and c not in integer}
    wide = [(c, c not in casts and pa.types.is_uint64(typed[c])) for c in ids if kinds[c] == "int" and c in integer
            and (c in casts or pa.types.is_int64(typed[c]) or pa.types.is_uint64(typed[c]))]
    binary = {c for c in ids if kinds[c] == "string" and (is_bytes_type(typed[c]) or casts.get(c) == "bytes")}
    # each part: its files, the cast columns it holds in the form to convert (uint64 for 'int64',
    # text for 'bytes'), its columns all missing
    parts = tuple((tuple(idx), frozenset(c for c in cast if pa.types.is_uint64(files[idx[0]][c])
                                         or (casts[c] == "bytes" and is_text_type(files[idx[0]][c]))), null)
                  for (_, null), idx in groups.items())
    return {"text_ids": frozenset(text), "wide_ids": tuple(wide), "binary_ids": frozenset(binary),
            "casts": tuple(sorted(casts.items())), "parts": parts if len(parts) > 1 else (),
            "list_ids": frozenset(lists)}


def _libfm_to_parquet(plan: MiningPlan, tmp: str, progress) -> tuple[MiningPlan, int]:
    """Stream a libFM log into Parquet (bounded memory) so the engines read it natively."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    reader = LogReader(plan.source, plan.schema, on_bad_line=plan.on_bad_line, kinds=plan.kinds)
    path = os.path.join(tmp, "log.parquet")
    writer = None
    try:
        for batch in reader:
            table = pa.table(batch)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            if progress is not None:
                progress(10.0 * reader.bytes_read / max(1, reader.total_bytes), 100.0)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        _empty(plan, reader.bad_lines)
    src = LogSource((path,), "parquet")
    kinds = dict(plan.kinds)
    types = _id_types(src, plan.schema, kinds)
    return MiningPlan(src, plan.schema, kinds, plan.pairs, plan.min_count, plan.on_bad_line, **types), reader.bad_lines


def _empty(plan: MiningPlan, bad: int):
    raise ConfigError(
        f"The log {plan.source.paths[0]!r} has no rows"
        + (f" ({bad} malformed lines were skipped)" if bad else "")
        + ". Pass a log with data."
    )


def mine(
    source,
    *,
    features: Sequence[str] | str,
    label: str | None = None,
    pairs: Iterable = (),
    sequence_key: str | None = None,
    time_key: str | None = None,
    min_count: int = 1,
    engine: str = "duckdb",
    format: str | None = None,
    delimiter: str | None = None,
    fields: Sequence[str] | None = None,
    field_map: Any = None,
    kinds: Mapping[str, str] | None = None,
    on_bad_line: str = "error",
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | os.PathLike | None = None,
    spark_master: str = "local[2]",
    spark_conf: Mapping[str, str] | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> LogStats:
    """Count id accesses, co-occurrences and sequences in a log; return :class:`LogStats`.

    Parameters
    ----------
    source : a path, glob, directory, or list of paths (see :mod:`learned_hash.logs`).
    features : the categorical columns to count (a list, or ``"C1,C2"``).
    label : the label column; adds positive counts (a row is positive when its label is > 0).
    pairs : ``(a, b)`` feature pairs (or ``"a:b"``; all as one string ``"a:b,c:d"``) whose ids'
        co-occurrence in a row is counted.
    sequence_key, time_key : count consecutive ids of each feature within a session
        (``sequence_key``), ordered by ``time_key`` (ties by the value itself).
    min_count : counts below this are pruned.
    engine : ``"duckdb"`` (embedded, default) or ``"spark"`` (``spark_master``: ``"local[N]"``
        or a Spark Connect URL ``"sc://host:15002"``); both run the same jobs and give the same counts.
    format, delimiter, fields, field_map, kinds : how to read the log (see :mod:`learned_hash.logs`).
    on_bad_line : ``"error"`` (default) or ``"skip"`` (skipped lines are counted in ``bad_lines``).
    memory_limit : e.g. ``"2GB"``, ``"512MB"``, ``"1.5GiB"`` (KB, MB, GB, TB are powers of 1000;
        KiB, MiB, GiB, TiB of 1024): DuckDB's memory cap (it spills to ``temp_directory`` beyond
        it); for Spark in local mode, the driver memory (taken when the session starts; at least 480MiB).
    threads : engine threads (DuckDB ``threads``; Spark ``local[threads]``), default all cores.
    temp_directory : the folder of the run's temporary files (DuckDB's spill files, a libFM log's
        Parquet copy, the spill of LogStats' sort of large counts, which keeps to ``memory_limit``
        and ``threads`` too), by default the system's temp
        folder; ``~`` is the home folder. A folder that does not exist is made, in an existing
        folder, and removed afterwards, as DuckDB does with its own ``temp_directory``. A local Spark session keeps its files in the system's temp
        folder, set when it starts (``spark_conf={"spark.local.dir": ...}`` moves them).
    progress : ``progress(done, total)`` callback.
    """
    if engine not in ENGINES:
        raise _error("engine", f"The 'engine' parameter of mine must be one of {ENGINES}. Got {engine!r} instead.")
    if on_bad_line not in ON_BAD_LINE:
        raise _error("on_bad_line", f"The 'on_bad_line' parameter of mine must be one of {ON_BAD_LINE}. Got {on_bad_line!r} instead.")
    min_count = _count(min_count, "min_count")
    threads = _count(threads, "threads", none=True)
    temp_root = _temp_root(temp_directory)
    if threads is not None and threads > max_threads():
        raise _error("threads", f"The 'threads' parameter of mine must be an int from 1 to {max_threads()} (4 per "
                                f"core, at least 1024). Got {threads} instead. Pass the number of cores to use, or "
                                f"None for all.")
    if memory_limit is not None:
        memory_bytes(memory_limit)  # checked here for both engines, before either starts
        local = not (isinstance(spark_master, str) and spark_master.startswith("sc://"))
        if engine == "spark" and local and memory_bytes(memory_limit) < SPARK_MIN_MEMORY:
            # the driver's JVM refuses to start below 450 MiB (Spark's own minimum), and its error
            # reached the user as 'Cannot start Spark ... Install Java 17'
            raise _error("memory_limit", f"The 'memory_limit' parameter of mine must be at least 480MiB for "
                                         f"engine='spark' (its driver needs 450 MiB). Got {memory_limit!r} instead. "
                                         f"Pass a larger size, such as '2GB'.")
    if format is not None and format not in FORMATS:
        raise _error("format", f"The 'format' parameter of mine must be one of {FORMATS}. Got {format!r} instead.")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise _error("delimiter", f"The 'delimiter' parameter of mine must be one character. Got {delimiter!r} instead.")
    if sequence_key is not None and time_key is None:
        raise _error(
            "time_key",
            "The 'time_key' parameter of mine is needed with a sequence_key: consecutive ids are "
            "ordered by time within a session. Pass time_key=<the time column>."
        )
    if time_key is not None and sequence_key is None:
        raise _error("sequence_key", "The 'time_key' parameter of mine is used only with a sequence_key. "
                                     "Pass sequence_key too, or drop time_key.")
    feats = _names(features, "features")
    _check_keys(feats, label=label, sequence_key=sequence_key, time_key=time_key)
    if len(dict.fromkeys(feats)) > MAX_FEATURES:
        raise _error(
            "features",
            f"The 'features' parameter of mine takes at most {MAX_FEATURES} features in one call (all are "
            f"counted in one SQL grouping, whose GROUPING_ID is 64-bit). Got {len(feats)} instead. Mine "
            f"them in several calls, each feature with the features it is paired with."
        )
    pair_list = _pairs(pairs, feats)
    import pyarrow as pa

    src = None
    try:
        with schemas_read_once():
            src = LogSource.resolve(source, format=format, delimiter=delimiter, fields=fields, field_map=field_map)
            _refuse_unnamed_compression(src)
            names = src.column_names()
            feats = [_column_of(f, names) for f in feats]
            pair_list = tuple((_column_of(a, names), _column_of(b, names)) for a, b in pair_list)
            label, sequence_key, time_key = (_column_of(k, names) for k in (label, sequence_key, time_key))
            kinds = {_column_of(c, names) if isinstance(c, str) else c: k for c, k in dict(kinds or {}).items()}
            schema = LogSchema(tuple(feats), label, time_key, sequence_key, dict(kinds or {}))
            _check_columns(src, schema)
            kinds = infer_kinds(src, schema, lists=True)
            _check_case(src, schema)
            types = _id_types(src, schema, kinds)
            listed = [f for f in feats if f in types.get("list_ids", ())]
            single = next((a for a, b in pair_list if a == b and a not in listed), None)
            if single is not None:
                raise _error(
                    "pairs",
                    f"The 'pairs' parameter of mine pairs {single!r} with itself, which counts the ids of one "
                    f"list together (a multi-hot column), but {single!r} holds one id a row. Pair it with "
                    f"another feature, e.g. [({single!r}, <another feature>)]."
                )
            if sequence_key is not None and listed:
                raise _error(
                    "sequence_key",
                    f"The 'sequence_key' parameter of mine counts the session sequences of features of one id a "
                    f"row, but the features {listed} hold lists of ids (multi-hot), whose ids have no order in "
                    f"time among them. Mine them in a call without sequence_key, and the sequences of the other "
                    f"features in one with it."
                )
    except ConfigError as exc:
        raise _own(exc)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:  # a CSV header line that does not parse
        if src is None or src.format != "csv":
            raise
        raise _bad_header(src, exc) from None
    plan = MiningPlan(src, schema, kinds, pair_list, min_count, on_bad_line, **types)
    described = {**src.describe(), "schema": schema.to_dict(), "kinds": plan.kinds, "on_bad_line": on_bad_line}
    if plan.list_ids:  # (recorded only then: the files of logs without lists stay as they were)
        described["multi_hot"] = [f for f in feats if f in plan.list_ids]

    made = temp_root is not None and not os.path.isdir(temp_root)
    if made:
        try:
            os.mkdir(temp_root)  # (its parent was checked above)
        except FileExistsError:
            made = False
        except OSError as exc:
            raise _error("temp_directory", f"Cannot make the folder {temp_root!r} for mine's temporary files "
                                           f"({exc.strerror}). Pass another temp_directory, or None.") from None
    try:
        with tempfile.TemporaryDirectory(prefix="embc-mine-", dir=temp_root) as tmp:
            # LogStats' sort of large counts runs within the run's limits and spills here too
            sorting = SORT_SETTINGS.set({"temp_directory": tmp, "threads": threads, "memory_limit":
                                         None if memory_limit is None else memory_bytes(memory_limit)})
            try:
                pre_bad = 0
                if src.format == "libfm":
                    plan, pre_bad = _libfm_to_parquet(plan, tmp, progress)
                if engine == "duckdb":
                    from .duckdb_engine import run

                    stats = run(plan, memory_limit=memory_limit, threads=threads, temp_directory=tmp,
                                progress=progress, source=described)
                else:
                    from .spark_engine import run

                    stats = run(plan, master=spark_master, conf=spark_conf, memory_limit=memory_limit,
                                threads=threads, local_dir=tmp, progress=progress, source=described)
            finally:
                SORT_SETTINGS.reset(sorting)
    finally:
        if made:
            with contextlib.suppress(OSError):  # only while empty: nothing of anyone else's goes
                os.rmdir(temp_root)
    stats.bad_lines += pre_bad
    if stats.n_rows == 0:
        _empty(plan if src.format != "libfm" else MiningPlan(src, schema, {}, (), 1, on_bad_line), stats.bad_lines)
    return stats
