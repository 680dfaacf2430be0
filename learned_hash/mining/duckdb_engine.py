"""Run a mining plan on DuckDB, in process, with a memory limit and spilling to disk.

DuckDB reads the files itself (``read_csv`` with every column as text, or ``read_parquet``),
does the group-bys itself, and hands the aggregated rows over as Arrow. With ``memory_limit``
set, its hash aggregates spill to ``temp_directory``, so a log larger than memory still mines.
"""

from __future__ import annotations

import glob as _glob
import os
import tempfile
import threading
from pathlib import Path

from embcompress.errors import ConfigError
from learned_hash.logs import CRITEO_COLUMNS

from .jobs import LOG_TABLE, DuckDBDialect, MiningPlan, collect, counts_sql, list_sqls, lz4_frame, sequence_sql, text_columns

_D = DuckDBDialect()
# The longest line DuckDB reads (its default, 2 MiB, rejected a long free-text value as if the line
# were malformed; the readers and Spark read it). Equal to DuckDB's default buffer size, so the
# buffers it reads a file in stay as they were.
MAX_LINE_BYTES = 32 << 20


def _list(paths) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _int64(column: str, unsigned: bool, listed: bool = False) -> str:
    """A column of integers as int64, named as it was (``unsigned``: a UBIGINT, whose values from
    2**63 up wrap to negative ids, as the readers and Spark take them; ``listed``: a column of
    lists of integers, each value so)."""
    q = _D.ident(column)
    if not unsigned:
        return f"CAST({q} AS BIGINT{'[]' if listed else ''}) AS {q}"
    half = "CAST(9223372036854775808 AS UBIGINT)"
    x = "__x" if listed else q
    value = (f"CASE WHEN {x} < {half} THEN CAST({x} AS BIGINT) "
             f"ELSE CAST({x} - {half} AS BIGINT) + (-9223372036854775807 - 1) END")
    return f"{f'list_transform({q}, lambda __x: {value})' if listed else value} AS {q}"


def _literal_paths(paths, link_dir: str) -> list[str]:
    """``paths`` with each name DuckDB would expand as a glob (``*``, ``?``, ``[``) replaced by a
    symlink without such characters: DuckDB has no way to escape them, and ``log[1].csv`` would
    otherwise read ``log1.csv`` instead."""
    out = []
    for i, p in enumerate(paths):
        if _glob.has_magic(p):
            suffix = "".join(x for x in Path(p).suffixes if not _glob.has_magic(x))  # keeps .gz detection
            link = os.path.join(link_dir, f"log{i}{suffix}")
            os.symlink(p, link)
            p = link
        out.append(p)
    return out


def _scan(plan: MiningPlan, paths) -> str:
    src = plan.source
    files = _list(paths)
    # no Hive partitioning: DuckDB would put a folder name's value ('day=1/') in place of the
    # files' own column of that name, which the readers and Spark read from the files
    if src.format == "parquet":
        if not plan.parts:
            return f"read_parquet({files}, hive_partitioning=false)"
        # types that differ between files, or a column all missing (Arrow's null type) in some:
        # DuckDB would cast every file to the first one's type (failing on an id out of its
        # range, truncating nanoseconds), so each group of agreeing files is read apart
        casts = dict(plan.casts)

        def column(c, unsigned, null):
            q = _D.ident(c)
            if c in null:
                return f"NULL AS {q}"
            if casts.get(c) == "int64":
                return _int64(c, c in unsigned, c in plan.list_ids)
            if casts.get(c) == "bytes":  # a text part's values as their UTF-8 bytes (a BLOB cast reads escapes)
                listed = "[]" if c in plan.list_ids else ""
                if c in unsigned:  # (this part holds text: see MiningPlan.parts)
                    return f"{f'list_transform({q}, lambda __x: encode(__x))' if listed else f'encode({q})'} AS {q}"
                return f"CAST({q} AS BLOB{listed}) AS {q}"
            if c in casts:
                types = dict(double='DOUBLE', us='TIMESTAMP', ns='TIMESTAMP_NS', string='VARCHAR[]', binary='BLOB[]')
                return f"CAST({q} AS {types[casts[c]]}) AS {q}"
            return q

        return "(" + " UNION ALL ".join(
            f"SELECT {', '.join(column(c, unsigned, null) for c in plan.schema.columns)} "
            f"FROM read_parquet({_list([paths[i] for i in idx])}, hive_partitioning=false)"
            for idx, unsigned, null in plan.parts) + ")"
    if src.format == "criteo":
        return _read_csv(plan, files, list(CRITEO_COLUMNS))
    groups = src.header_groups()
    if len(groups) == 1:
        return _read_csv(plan, files, text_columns(groups[0][0], plan.schema.columns))
    # exports whose header changed (a column gained, the order changed): each group of files with
    # one header is read by its own names, the columns read taken by name
    cols = ", ".join(_D.ident(c) for c in plan.schema.columns)
    return "(" + " UNION ALL ".join(
        f"SELECT {cols} FROM {_read_csv(plan, _list([paths[i] for i in idx]), text_columns(names, plan.schema.columns))}"
        for names, idx in groups) + ")"


def _read_csv(plan: MiningPlan, files: str, names: list[str]) -> str:
    """DuckDB's scan of text files (a SQL list) whose columns are ``names``, every one as text."""
    src = plan.source
    cols = "{" + ", ".join(f"'{n.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for n in names) + "}"
    delim = src.delimiter.replace("'", "''")
    opts = [
        f"delim='{delim}'",
        f"header={'false' if src.format == 'criteo' else 'true'}",
        f"columns={cols}",
        "auto_detect=false",
        "hive_partitioning=false",
        "null_padding=false",
        # no value is NULL (a newline cannot be an unquoted value; quoted ones never are): DuckDB
        # lets a line's extra fields pass when they are NULL ('1,x,' as a row of 2), which the
        # readers and Spark count as a bad line; an empty value is '' and the SQL takes it as missing
        "nullstr='\n'",
        "allow_quoted_nulls=false",
        f"max_line_size={MAX_LINE_BYTES}",
        f"buffer_size={MAX_LINE_BYTES}",
    ]
    if src.format == "criteo":
        opts += ["quote=''", "escape=''"]
    # Rejected lines are kept and judged after the scan (run), in both modes: a line of only
    # whitespace is rejected by DuckDB but is blank, not bad (as Spark and the readers take it).
    opts += ["ignore_errors=true", "store_rejects=true"]
    return f"read_csv({files}, {', '.join(opts)})"


def _fetch(con, sql: str, progress, base: float, span: float):
    """Run ``sql``; report DuckDB's own progress as ``base .. base+span`` percent."""
    out: dict = {}

    def run():
        try:
            rel = con.sql(sql)
            out["table"] = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    if progress is None:
        run()
    else:
        th = threading.Thread(target=run, daemon=True)
        th.start()
        last = 0.0
        while th.is_alive():
            th.join(0.2)
            try:
                pct = float(con.query_progress())
            except Exception:
                pct = -1.0
            # -1 between a query's phases (and before it starts): the bar stays where it was
            last = max(last, min(pct, 100.0))
            progress(base + span * last / 100.0, 100.0)
    if "error" in out:
        raise out["error"]
    return out["table"]


def _refuse_long_lines(con, names: dict) -> None:
    """A ConfigError for a line DuckDB rejected as too long: it is no malformed line, so neither
    skipped nor blamed on the log. ``names``: the path DuckDB read -> the log's own path."""
    long = con.execute(
        "SELECT s.file_path, e.line FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id) "
        "WHERE e.error_type = 'LINE SIZE OVER MAXIMUM' ORDER BY s.file_path, e.line LIMIT 1"
    ).fetchall()
    if long:
        path, line = long[0]
        path = names.get(path, path)
        raise ConfigError(
            f"The log {path!r} has a line longer than DuckDB reads ({MAX_LINE_BYTES >> 20} MiB), line {line}. "
            f"Mine it with engine='spark' (no such limit), or leave the long values out of the log."
        )


def run(plan: MiningPlan, *, memory_limit: str | None = None, threads: int | None = None,
        temp_directory: str | None = None, progress=None, source=None):
    """Mine ``plan`` on DuckDB and return LogStats."""
    import duckdb

    from .api import memory_bytes, raise_first_bad_line

    if plan.text:
        # compressions the readers (and Spark) read but DuckDB's CSV reader does not
        other = next((p for p in plan.source.paths if p.lower().endswith((".bz2", ".lz4", ".br"))), None)
        if other is not None:
            # Spark reads bzip2 and Hadoop's LZ4 blocks, not the LZ4 frame format (see spark_engine)
            frame = lz4_frame(other)
            spark = "" if frame or other.lower().endswith(".br") else ", or mine it with engine='spark'"
            raise ConfigError(
                f"DuckDB cannot read the compressed log {other!r} (it reads gzip and zstd only"
                f"{'; this is LZ4 frame data, which Spark cannot read either' if frame else ''}). "
                f"Recompress it with gzip or zstd (.gz, .zst){spark}."
            )
    own_tmp = own_links = None
    if temp_directory is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="embc-duckdb-")
        temp_directory = own_tmp.name
    # never DuckDB's own bar on the terminal (a library never prints; it drew one for a query of
    # more than two seconds): the query progress goes to the callback only, when there is one
    con = duckdb.connect(":memory:")
    try:
        try:
            con.execute(f"SET enable_progress_bar = {'true' if progress is not None else 'false'}")
            con.execute("SET enable_progress_bar_print = false")
        except duckdb.Error:
            pass  # (in Jupyter without ipywidgets DuckDB refuses any change of these; its bar is off there)
        con.execute("SET TimeZone = 'UTC'")  # ISO times without a zone are UTC (jobs.DuckDBDialect.timestamp)
        if memory_limit is not None:
            try:  # in bytes: the size is parsed once (api.memory_bytes), the same for both engines
                con.execute(f"SET memory_limit = '{memory_bytes(memory_limit)}B'")
            except duckdb.Error as exc:
                raise ConfigError(
                    f"The 'memory_limit' parameter of mine must be a size DuckDB can work in. Got "
                    f"{memory_limit!r} instead ({exc}). Pass a larger size, such as '2GB'."
                ) from None
        con.execute(f"SET temp_directory = '{os.fspath(temp_directory).replace(chr(39), chr(39) * 2)}'")
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")
        logs = list(plan.source.paths)
        if plan.text:
            # a zero-byte file holds no rows, as the readers and Spark read it; DuckDB's gzip and
            # zstd readers refused it ('Input is not a GZIP stream'), failing the whole log
            logs = [p for p in logs if os.path.getsize(p) > 0] or logs
        paths = logs
        if any(_glob.has_magic(p) for p in paths):
            own_links = tempfile.TemporaryDirectory(prefix="embc-duckdb-in-")  # default dir: no glob characters
            paths = _literal_paths(paths, own_links.name)
        con.execute(f"CREATE VIEW {LOG_TABLE} AS SELECT * FROM {_scan(plan, paths)}")
        listed = list_sqls(plan, _D)
        n_seq = len(plan.sequence_jobs)
        span = 100.0 / (1 + len(listed) + n_seq)
        try:
            counts = [_fetch(con, sql, progress, span * k, span) for k, sql in enumerate([counts_sql(plan, _D), *listed])]
            rejected = 0
            if plan.text:
                _refuse_long_lines(con, dict(zip(paths, logs)))
                # an empty line before a blank one comes back in the same csv_line ('\n  '): blank too
                rejected = con.execute(
                    "SELECT count(*) FROM (SELECT DISTINCT file_id, line FROM reject_errors "
                    "WHERE trim(coalesce(csv_line, 'x'), ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) <> '')"
                ).fetchall()[0][0]
                if rejected and plan.on_bad_line == "error":
                    raise_first_bad_line(plan)
            seqs = {}
            for k, job in enumerate(plan.sequence_jobs):
                seqs[job.feature] = _fetch(con, sequence_sql(plan, _D, job), progress, span * (1 + len(listed) + k), span)
        except duckdb.InvalidInputException as exc:
            # DuckDB's parser stops where the readers and Spark read on (a file mixing \r\n and \n
            # line ends), and its own advice (strict_mode=false) is no option of mine
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            unreadable = ConfigError(
                f"DuckDB cannot parse the log {plan.source.paths[0]!r} ({first}). A file that mixes \\r\\n and \\n "
                f"line ends is one cause: rewrite it with one kind of line end, or mine it with engine='spark'."
            ) if plan.text else ConfigError(
                f"DuckDB cannot read the log {plan.source.paths[0]!r} ({first}). A file may be truncated or "
                f"corrupt: re-create it, or leave it out of the log."
            )
            if plan.on_bad_line == "error":
                raise_first_bad_line(plan, unreadable)
            raise unreadable from None
        except duckdb.OutOfMemoryException as exc:
            first = str(exc).strip().splitlines()[0]
            limit = f"memory_limit {memory_limit!r}" if memory_limit is not None else "its default memory limit"
            raise ConfigError(
                f"The 'memory_limit' parameter of mine is too small for this log: DuckDB ran out of memory "
                f"within {limit} ({first}). Pass a larger memory_limit, such as '2GB', or fewer threads "
                f"(threads=1).", param="memory_limit"
            ) from None
        except duckdb.IOException as exc:
            raise ConfigError(f"DuckDB cannot read the log {plan.source.paths[0]!r}: {exc}. Check the path and format.") from None
        except duckdb.ConversionException as exc:  # a Parquet file whose column types differ from the first file's
            raise ConfigError(
                f"DuckDB cannot read the log {plan.source.paths[0]!r}: {exc}. Every file of a log must have "
                f"the same column types: rewrite the odd file, or mine it separately."
            ) from None
        stats, nbad = collect(plan, counts, seqs, engine="duckdb", bad_lines=int(rejected), source=source)
        if nbad and plan.on_bad_line == "error":
            raise_first_bad_line(plan)
        if progress is not None:
            progress(100.0, 100.0)
        return stats
    finally:
        con.close()
        if own_tmp is not None:
            own_tmp.cleanup()
        if own_links is not None:
            own_links.cleanup()
