"""Run a mining plan on Apache Spark: local mode (``local[N]``) or a Spark Connect server (``sc://``).

The SQL is the same as DuckDB's (see :mod:`.jobs`), through the Spark dialect; Spark's own CSV
and Parquet readers load the files (every CSV column as text, exactly as DuckDB), and the
aggregated rows come back as Arrow (``DataFrame.toArrow``), never as Python rows.

A local session is created once per process and reused (starting a JVM costs seconds); its
temporary files go under the system temp directory. With Spark Connect the files must be
readable at the same paths by the cluster.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import warnings

from embcompress.errors import BackendUnavailableError, ConfigError
from learned_hash.logs import CRITEO_COLUMNS

from .api import memory_bytes
from .jobs import LOG_TABLE, MiningPlan, SparkDialect, collect, counts_sql, list_sqls, lz4_frame, sequence_sql, text_columns

_ident = SparkDialect().ident  # a column name as Spark reads it: `name`, backticks doubled

CORRUPT = "__embc_corrupt"

# The master URLs Spark takes, as SparkContext and spark-submit parse them (spaces as they allow);
# Spark Connect's sc:// besides. Used to tell a bad master from other causes when Spark cannot start.
MASTER_URL = re.compile(r"^(local(\[ *(\*|\d+) *(, *\d+ *)?\])?|local-cluster\[ *\d+ *, *\d+ *, *\d+ *\]|yarn"
                        r"|(spark|k8s|sc)://\S+)$")
MASTER_FORMS = "local, local[N], local[*], spark://host:port, sc://host:port (Spark Connect), yarn or k8s://https://host:port"


def _java_missing() -> str | None:
    """Why Spark's launcher finds no Java, looked up as it does (JAVA_HOME's bin/java, else java on
    the PATH), with the fix; None when it finds one."""
    home = os.environ.get("JAVA_HOME")
    if home:
        if os.access(os.path.join(home, "bin", "java"), os.X_OK):
            return None
        return (f"JAVA_HOME is {home!r}, which holds no bin/java: point JAVA_HOME at a Java 17 (or 21) "
                f"installation, or unset it to use the java on the PATH")
    if shutil.which("java") is None:
        return ("Java is not installed (no JAVA_HOME, no java on the PATH): install Java 17 (e.g. "
                "`apt install openjdk-17-jre-headless`) or set JAVA_HOME to one")
    return None


def _first_line(exc: BaseException) -> str:
    """The cause of a failed start in one line: a Java exception's first line (its class and
    message; Py4J's text adds 'An error occurred while calling ...' before it and the stack trace
    after), else the error's own first line with its class."""
    try:
        text = str(exc)
    except Exception:  # (Py4J asks the JVM for the text, which may be gone)
        text = getattr(exc, "errmsg", "") or ""
    lines = [x.strip() for x in text.splitlines()]
    lines = [x.lstrip(": ").strip() for x in lines if x and not x.startswith("An error occurred while calling")]
    line = lines[0] if lines else ""
    if not line.startswith("[") and ":" not in line.split(" ", 1)[0]:  # no class or error class of its own
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return line if len(line) <= 300 else line[:300] + "..."


def _cannot_start(master: str, exc: BaseException) -> Exception:
    """The error for a Spark session that did not start, its advice chosen by the cause: no Java,
    a master URL Spark does not take, or another (the master unreachable, a Java Spark refuses)."""
    cause = _first_line(exc)
    what = f"Cannot start Spark with master {master!r}: {cause}."
    if not master.startswith("sc://"):  # (a Spark Connect client runs no Java)
        missing = _java_missing()
        if missing is not None:
            return BackendUnavailableError(f"{what} {missing}.")
    if not MASTER_URL.match(master) or re.search(r"Master URL|Master must", cause):
        return ConfigError(f"{what} The 'spark_master' parameter of mine must be a Spark master URL: {MASTER_FORMS}. "
                           f"Pass one of those.", param="spark_master")
    if master.startswith("local"):
        return BackendUnavailableError(
            f"{what} Check that the Java found is one Spark runs on (17 or 21: `java -version`) and the "
            f"lines the Java process printed before this error.")
    return BackendUnavailableError(
        f"{what} Check that the master {master!r} is running and reachable from this machine, and the lines "
        f"Spark printed before this error.")


def session(master: str = "local[2]", *, conf=None, memory_limit: str | None = None, threads: int | None = None):
    """A Spark session for mining: Spark Connect for ``sc://...``, else a local/cluster master."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise BackendUnavailableError(
            "engine='spark' needs pyspark: install it with `pip install embcompress[spark]` (and Java 17)."
        ) from None
    if not isinstance(master, str) or not master:
        raise ConfigError(f"The 'spark_master' parameter of mine must be 'local[N]' or 'sc://host:port'. Got {master!r} instead.",
                          param="spark_master")
    if master.startswith("sc://"):
        try:
            import pyspark.sql.connect  # noqa: F401  (checks grpcio and the other client packages)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"A Spark Connect URL needs the Connect client: `pip install embcompress[spark]` ({exc})."
            ) from None
        builder = SparkSession.builder.remote(master)
        for k, v in (conf or {}).items():
            builder = builder.config(k, v)
        try:
            return builder.getOrCreate()
        except Exception as exc:  # a server not running, a bad URL, ...
            raise _cannot_start(master, exc) from None
    if threads is not None and master.startswith("local"):
        master = f"local[{int(threads)}]"
    local_dir = os.path.join(tempfile.gettempdir(), f"embc-spark-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(local_dir, exist_ok=True)
    settings = {
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.local.dir": local_dir,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={local_dir}",
    }
    if memory_limit is not None:
        # Spark takes whole units only ("1.5g", "2GiB", "512 MB" would stop its JVM from starting)
        settings["spark.driver.memory"] = f"{max(1, memory_bytes(memory_limit) >> 20)}m"
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName("embcompress-mine")
    for k, v in settings.items():
        builder = builder.config(k, v)
    running = SparkSession.getActiveSession()
    if running is not None:
        # getOrCreate hands back the running session as it is: its master and driver memory stay
        asked = {"master": master, "spark.driver.memory": settings.get("spark.driver.memory")}
        have = {"master": running.sparkContext.master,
                "spark.driver.memory": running.sparkContext.getConf().get("spark.driver.memory")}
        for k, v in asked.items():
            if v is not None and v != have[k]:
                warnings.warn(
                    f"Spark {k} {v} was asked for, but the running Spark session (reused) has "
                    f"{have[k]}. Stop it first (SparkSession.getActiveSession().stop()) to mine with {v}.",
                    UserWarning, stacklevel=4)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, bad master, ... (the JVM's stack trace cut to its first line)
        raise _cannot_start(master, exc) from None
    spark.sparkContext.setLogLevel("ERROR")  # a CSV header that differs from the schema warns per file
    return spark


def _literal(path: str) -> str:
    """``path`` with Hadoop's glob characters escaped: Spark expands ``*?[]{}`` in every path it
    reads, so ``log[1].csv`` would read ``log1.csv`` instead (a backslash makes one literal)."""
    return "".join("\\" + ch if ch in "\\*?[]{}" else ch for ch in path)


def _latin1(plan: MiningPlan) -> bool:
    """Whether a text log is read as ISO-8859-1 (see SparkDialect): needs a one-byte delimiter."""
    return plan.text and ord(plan.source.delimiter) < 128


def _load(spark, plan: MiningPlan):
    from pyspark.sql import functions as F
    from pyspark.sql.types import (ArrayType, BinaryType, BooleanType, DecimalType, LongType, StringType, StructField,
                                   StructType)

    src = plan.source
    paths = [_literal(p) for p in src.paths]
    if src.format == "parquet":
        casts = dict(plan.casts)

        def typed(files, null=frozenset()):
            df = spark.read.parquet(*files)
            for c in plan.schema.columns:
                t, q = df.schema[c].dataType, _ident(c)
                if c in null:  # all missing here (Arrow's null type, which Spark reads as int32)
                    df = df.withColumn(c, F.lit(None))
                    continue
                # a list column's values are converted as a column of single values is
                listed = isinstance(t, ArrayType)
                x = "__x" if listed else q
                t = t.elementType if listed else t

                def each(value: str):
                    return F.expr(f"transform({q}, __x -> {value})" if listed else value)

                if isinstance(t, BooleanType):  # 0/1 ids and labels, as the readers and DuckDB take them
                    df = df.withColumn(c, each(f"CAST({x} AS BIGINT)"))
                elif isinstance(t, DecimalType) and (t.precision, t.scale) == (20, 0):
                    # a uint64 column (Spark has no unsigned type): ids wrap to int64, as hashed ids do
                    df = df.withColumn(c, each(f"CAST(CASE WHEN {x} >= {2**63}BD THEN {x} - {2**64}BD ELSE {x} END AS BIGINT)"))
                if casts.get(c) == "int64" and listed:
                    df = df.withColumn(c, F.col(q).cast("array<bigint>"))
                elif casts.get(c) == "bytes" and not isinstance(t, BinaryType):
                    # text in this part, bytes in others: a text's UTF-8 bytes (a list of nulls is
                    # read as of int32, cast to binary through text only)
                    text = isinstance(t, StringType)
                    via = F.col(q) if text else F.col(q).cast("array<string>" if listed else "string")
                    df = df.withColumn(c, via.cast("array<binary>" if listed else "binary"))
                elif casts.get(c) in ("string", "binary"):  # (lists, beside a part of lists of nulls)
                    # (Spark reads lists of nulls as of int32, which it casts to binary through text only)
                    text = isinstance(t, (StringType, BinaryType))
                    df = df.withColumn(c, (F.col(q) if text else F.col(q).cast("array<string>")).cast(f"array<{casts[c]}>"))
                elif casts.get(c) in ("int64", "double"):
                    df = df.withColumn(c, F.col(q).cast("bigint" if casts[c] == "int64" else "double"))
                elif casts.get(c) == "us":
                    df = df.withColumn(c, F.col(q).cast("timestamp"))
                elif casts.get(c) == "ns" and not isinstance(t, LongType):  # (nanoseconds are read as integers)
                    df = df.withColumn(c, F.unix_micros(F.col(q).cast("timestamp")) * 1000)
            return df

        if not plan.parts:
            return typed(paths), None
        # types that differ between files, or a column all missing in some: each group of
        # agreeing files is read apart (Spark takes one file's type for all of them), cast to the
        # common type, and the groups unioned
        cols = [F.col(_ident(c)) for c in plan.schema.columns]
        frames = [typed([paths[i] for i in idx], null).select(*cols) for idx, _, null in plan.parts]
        return functools.reduce(lambda a, b: a.unionByName(b), frames), None
    csv = src.format == "csv"
    # A CSV is read line-spanning (below), where Spark no longer drops a line of whitespace before
    # parsing it: its lines are kept (PERMISSIVE) and judged here, as a criteo log's are with skip
    keep = plan.on_bad_line == "skip" or csv

    def reader(names):
        fields = [StructField(n, StringType(), True) for n in names]
        if keep:
            fields.append(StructField(CORRUPT, StringType(), True))
        r = (
            spark.read.schema(StructType(fields))
            .option("sep", src.delimiter)
            .option("header", "false" if src.format == "criteo" else "true")
            .option("mode", "PERMISSIVE" if keep else "FAILFAST")
            .option("enforceSchema", "true")
        )
        if _latin1(plan):
            r = r.option("encoding", "ISO-8859-1")
        if keep:
            r = r.option("columnNameOfCorruptRecord", CORRUPT)
        return r

    if not csv:
        return reader(CRITEO_COLUMNS).option("quote", "").csv(paths), (f"{CORRUPT} IS NOT NULL" if keep else None)

    # RFC 4180, as Arrow and DuckDB read it: "" in a quoted value is one " (Spark's default is \"),
    # and a quoted value may hold a line break (Spark's default parses each physical line alone, so
    # such a row became a bad line and a broken one). A file is then read by one task (Spark cannot
    # split it at a line end); the files of a log still read in parallel.
    def read(names, files):
        return reader(text_columns(names, plan.schema.columns)).option("escape", '"').option("multiLine", "true").csv(files)

    groups = src.header_groups()
    if len(groups) == 1:
        df = read(groups[0][0], paths)
    else:  # exports whose header changed: each group of files by its own names, columns read by name
        cols = [F.col(_ident(c)) for c in [*plan.schema.columns, CORRUPT]]
        df = functools.reduce(lambda a, b: a.unionByName(b),
                              [read(names, [paths[i] for i in idx]).select(*cols) for names, idx in groups])
    # a line of whitespace only is blank, not a bad line (as DuckDB and the readers take it)
    blank = F.translate(F.col(CORRUPT), " \t\n\x0b\x0c\r", "") == ""
    df = df.where(F.col(CORRUPT).isNull() | ~blank)
    return df, f"{CORRUPT} IS NOT NULL"


def _failed_read(message: str) -> str | None:
    """Spark's one line naming the file it failed to read (FAILED_READ_FILE) and the last cause, or None."""
    lines = [x.strip() for x in message.splitlines()]
    at = next((x for x in lines if "[FAILED_READ_FILE" in x), None)
    if at is None:
        return None
    at = at[at.index("[FAILED_READ_FILE"):].split("SQLSTATE")[0].strip()
    causes = [x.split(": ", 1)[-1] for x in lines if x.startswith("Caused by:")]
    return f"{at} ({causes[-1]})" if causes and causes[-1] not in at else at


def _stale_crc(message: str) -> tuple[str, str] | None:
    """``(file, its .crc)`` when Spark failed on Hadoop's checksum of a local file that has a
    ``.<name>.crc`` beside it (Hadoop checks a file against it on every read), or None."""
    found = re.search(r"ChecksumException: Checksum error: (?:file:)?(/.+?) at \d+ exp:", message)
    if found is None:
        return None
    part = found.group(1)
    crc = os.path.join(os.path.dirname(part), f".{os.path.basename(part)}.crc")
    return (part, crc) if os.path.exists(crc) else None


def run(plan: MiningPlan, *, master: str = "local[2]", conf=None, memory_limit: str | None = None,
        threads: int | None = None, local_dir=None, progress=None, source=None):
    """Mine ``plan`` on Spark and return LogStats."""
    frame = next((p for p in plan.source.paths if plan.text and lz4_frame(p)), None)
    if frame is not None:
        # Hadoop's Lz4Codec reads its own block format: it took the frame's header for a block
        # length and ran the JVM out of memory, which lost the session
        raise ConfigError(
            f"Spark cannot read the log {frame!r}: it is LZ4 frame data (as the lz4 tool writes), and "
            f"Spark's LZ4 codec reads only Hadoop's own LZ4 blocks. Recompress it with gzip or zstd "
            f"(.gz, .zst; DuckDB reads both), or with bzip2 (.bz2) for Spark."
        )
    spark = session(master, conf=conf, memory_limit=memory_limit, threads=threads)
    from .api import raise_first_bad_line

    # Settings of the session for this run only (it may be the caller's own, reused afterwards):
    # - parse every field of a CSV line, so a line with too few or too many fields is flagged as
    #   corrupt even when the query reads only some columns (as DuckDB flags it);
    # - names are matched exactly, as DuckDB (see jobs.text_columns) and the readers match them: a
    #   Parquet log with columns 'X' and 'x' failed to load at all;
    # - Parquet TIMESTAMP(NANOS) (pyarrow's timestamp[ns]), which Spark refuses to read otherwise,
    #   as the integer nanoseconds, whose order is the times' (a time is only ordered, never shown).
    # - ISO times without a zone are UTC (jobs.SparkDialect.timestamp), whatever the server's zone.
    settings = {"spark.sql.csv.parser.columnPruning.enabled": "false", "spark.sql.caseSensitive": "true",
                "spark.sql.legacy.parquet.nanosAsLong": "true", "spark.sql.session.timeZone": "UTC"}
    before = {k: spark.conf.get(k, None) for k in settings}
    try:
        for k, v in settings.items():
            spark.conf.set(k, v)
        df, extra_bad = _load(spark, plan)
        _D = SparkDialect(latin1=_latin1(plan))
        df.createOrReplaceTempView(LOG_TABLE)
        queries = [counts_sql(plan, _D, extra_bad=extra_bad), *list_sqls(plan, _D, extra_bad=extra_bad)]
        n_jobs = len(queries) + len(plan.sequence_jobs)
        counts = []
        for sql in queries:
            counts.append(spark.sql(sql).toArrow())
            if progress is not None:
                progress(100.0 * len(counts) / n_jobs, 100.0)
        seqs = {}
        for k, job in enumerate(plan.sequence_jobs):
            seqs[job.feature] = spark.sql(sequence_sql(plan, _D, job, extra_bad=extra_bad)).toArrow()
            if progress is not None:
                progress(100.0 * (len(counts) + k + 1) / n_jobs, 100.0)
    except Exception as exc:
        if plan.on_bad_line == "error" and plan.text and ("FAILFAST" in str(exc) or "Malformed" in str(exc)):
            raise_first_bad_line(plan)
        stale = _stale_crc(str(exc))
        if stale:
            part, crc = stale
            raise ConfigError(
                f"Spark cannot read the log {part!r}: Hadoop's checksum file {crc!r} beside it does not match "
                f"the file, which changed after Spark or Hadoop wrote it (another tool rewrote it, or it is "
                f"corrupt). If the file is as it should be, delete {crc!r} (DuckDB and the readers do not "
                f"use it); if not, re-create the file."
            ) from None
        unreadable = _failed_read(str(exc))
        if unreadable:  # a file Spark cannot read: one line naming it, not the JVM's stack of causes
            raise ConfigError(f"Spark cannot read the log: {unreadable}. A file may be truncated or corrupt: "
                              f"re-create it, or leave it out of the log.") from None
        raise
    finally:
        spark.catalog.dropTempView(LOG_TABLE)
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)
    stats, nbad = collect(plan, counts, seqs, engine="spark", source=source)
    if nbad and plan.on_bad_line == "error":
        raise_first_bad_line(plan)
    return stats
