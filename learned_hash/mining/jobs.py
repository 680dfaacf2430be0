"""The mining jobs, described once, compiled to SQL that both engines run unchanged in meaning.

A :class:`MiningPlan` names the log (a resolved :class:`~learned_hash.logs.LogSource`), the columns
and their kinds, and the jobs:

- :class:`FrequencyJob` (feature): rows per id, and positive rows per id with a label;
- :class:`PairJob` (a, b): rows per (id in a, id in b), and positive rows;
- :class:`SequenceJob` (feature): within a session, consecutive (previous id, id) pairs.

All frequency and pair jobs run as ONE query (``GROUP BY GROUPING SETS``), so the log is scanned
once whatever the number of jobs; each sequence job is one windowed query. The only difference
between engines is a :class:`Dialect` (regex match, hex parse), and how the log becomes the table
``log`` the SQL reads. What is valid, missing or bad is decided in SQL by the same regular
expressions the Python readers use (:mod:`learned_hash.logs`), so every engine and reader agree.

Results come back as Arrow tables of aggregated rows only; :func:`collect` turns them into
:class:`~learned_hash.mining.stats.LogStats` (string ids hashed there, after aggregation, vectorized).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embcompress.idhash import MISSING_ID, hash_strings
from learned_hash.logs import HEX_RE, INT_RE, NUM_RE, TIME_RE, LogSchema, LogSource

from .stats import LogStats, _sum_by_keys

TEXT_FORMATS = ("criteo", "csv")
LOG_TABLE = "__embc_log"
_LZ4_FRAME = b"\x04\x22\x4d\x18"  # the LZ4 frame format's magic number (0x184D2204, little-endian)


def lz4_frame(path: str) -> bool:
    """Whether ``path`` is named ``.lz4`` and holds the LZ4 frame format (the lz4 tool's, Python's,
    Arrow's; the readers read it), not Hadoop's own LZ4 block format (what Spark's codec reads)."""
    if not path.lower().endswith(".lz4"):
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == _LZ4_FRAME
    except OSError:
        return False


@dataclass(frozen=True)
class FrequencyJob:
    feature: str


@dataclass(frozen=True)
class PairJob:
    a: str
    b: str


@dataclass(frozen=True)
class SequenceJob:
    feature: str


@dataclass(frozen=True)
class MiningPlan:
    """Everything an engine needs: where the log is, what each column is, which jobs to run."""

    source: LogSource
    schema: LogSchema
    kinds: dict
    pairs: tuple[tuple[str, str], ...]
    min_count: int
    on_bad_line: str
    # Parquet id columns stored as text but given kind 'int' or 'hex32': parsed as a text log's are
    text_ids: frozenset = frozenset()
    # Parquet id columns of 64-bit integers: column -> True when unsigned (uint64). They can hold
    # MISSING_ID (-2**63; 2**63 as uint64, which wraps to it), which the SQL makes NULL
    wide_ids: tuple = ()
    # Parquet id columns stored as BINARY (text without the UTF-8 annotation): grouped apart from
    # the string columns, which an engine's CASE cannot mix with them
    binary_ids: frozenset = frozenset()
    # Parquet columns whose type differs between files (schema drift: ids as int32 in older
    # parts and int64 in newer ones, labels as integers then doubles, times in microseconds then
    # nanoseconds), as ``(column, target)``: 'int64' (uint64 wrapping), 'double', times in 'us'
    # or 'ns', 'bytes' (string ids as text in some parts and BINARY in others: all as bytes), or
    # lists of 'string' or 'binary' (beside a part of lists of nulls); and files where a column
    # is all missing (Arrow's null type, as pandas writes a column of None). An engine reads each
    # of ``parts`` on its own: (indices into source.paths of files that agree, which cast columns
    # they hold in the form to convert: 'int64' ones as uint64, 'bytes' ones as text, which
    # columns they hold as null), the ``casts`` applied, null columns as NULL, and takes the
    # union. Empty when every file agrees.
    casts: tuple = ()
    parts: tuple = ()
    # Parquet feature columns of lists of ids (multi-hot): every id of a list is one access. Their
    # jobs run as queries of their own, over the lists unnested (list_sqls)
    list_ids: frozenset = frozenset()

    @property
    def frequency_jobs(self) -> list[FrequencyJob]:
        return [FrequencyJob(f) for f in self.schema.features]

    @property
    def pair_jobs(self) -> list[PairJob]:
        return [PairJob(a, b) for a, b in self.pairs]

    @property
    def sequence_jobs(self) -> list[SequenceJob]:
        if self.schema.session_key is None:
            return []
        return [SequenceJob(f) for f in self.schema.features]

    @property
    def text(self) -> bool:
        """Whether the engine reads every column as text (CSV-like logs) or typed (Parquet)."""
        return self.source.format in TEXT_FORMATS

    def can_be_bad(self) -> bool:
        """Whether some row may be malformed (else the SQL skips the bad-row bookkeeping): any
        text log, a label (a missing label makes a row bad), or a time stored as text."""
        return (self.text or self.schema.label is not None or bool(self.text_ids)
                or (self.schema.time_key is not None and self.kinds.get(self.schema.time_key) == "string"))


class Dialect:
    """What differs between the SQL of the engines."""

    name = "sql"

    def ident(self, name: str) -> str:
        raise NotImplementedError

    def full_match(self, expr: str, rx: str) -> str:
        raise NotImplementedError

    def hex32(self, expr: str) -> str:
        raise NotImplementedError

    def unnest(self, expr: str) -> str:
        """One row for each value of the list ``expr`` (none for a NULL or empty list), in a ``SELECT``."""
        raise NotImplementedError

    def unnest_at(self, expr: str, value: str, position: str) -> str:
        """:meth:`unnest` with each value's position in its list: the columns ``value`` and ``position``."""
        raise NotImplementedError

    def timestamp(self, expr: str) -> str:
        """An ISO time text as a timestamp (NULL when it is no valid time): ordered by time, not
        as text, where ``'2017-01-01T09:00'`` sorts after ``'2017-01-01 10:00'``."""
        raise NotImplementedError

    def isnan(self, expr: str) -> str:
        """Whether a float value is NaN."""
        return f"isnan({expr})"

    def text(self, expr: str) -> str:
        """A text column's value as the log's UTF-8 text (see SparkDialect)."""
        return expr

    def text_bad(self, expr: str) -> str | None:
        """When a text column's value is not valid UTF-8 (None: the engine rejects such lines itself)."""
        return None

    def id_order(self, expr: str, unsigned: bool = False) -> str:
        """``ORDER BY`` terms that sort an id column as the int64 ids it becomes (``unsigned``: a
        column the engine keeps as uint64, whose values above 2**63 wrap to negative ids)."""
        return f"{expr} ASC NULLS FIRST"

    def missing_to_null(self, expr: str, unsigned: bool = False) -> str:
        """A 64-bit integer id with MISSING_ID (-2**63; ``unsigned``: a uint64's 2**63, which wraps
        to it) made NULL: the readers take a stored -2**63 as missing, so it is grouped with NULL."""
        return f"NULLIF({expr}, (-9223372036854775807 - 1))"


def text_columns(names, read=()) -> list[str]:
    """The names an engine gives a text log's columns: the header's, but a name that is empty or
    repeats an earlier one becomes ``__embc_c<i>`` (engines refuse such names; the readers take
    a repeated name's first column, and so does the SQL then). pandas' ``to_csv`` writes its
    index under an empty name. So does a name that differs only in case from another one and is
    not ``read`` (DuckDB and Spark match names ignoring case; mine refuses two such names read)."""
    lower: dict[str, int] = {}
    for n in dict.fromkeys(names):
        lower[n.lower()] = lower.get(n.lower(), 0) + 1
    out: list[str] = []
    for i, n in enumerate(names):
        twin = lower.get(n.lower(), 0) > 1 and n not in read
        out.append(f"__embc_c{i}" if not n or n in out or twin else n)
    return out


def case_twins(read, among) -> tuple[str, str] | None:
    """A column of ``read`` and another of ``among`` whose names differ only in case, or None."""
    for c in read:
        other = next((n for n in among if n != c and n.lower() == c.lower()), None)
        if other is not None:
            return c, other
    return None


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class DuckDBDialect(Dialect):
    name = "duckdb"

    def ident(self, name):
        return '"' + name.replace('"', '""') + '"'

    def full_match(self, expr, rx):
        return f"regexp_full_match({expr}, {_lit(rx)})"

    def hex32(self, expr):
        return f"TRY_CAST('0x' || {expr} AS BIGINT)"

    def unnest(self, expr):
        return f"unnest({expr})"

    def unnest_at(self, expr, value, position):
        # (set-returning functions in one SELECT run side by side: the i-th value with subscript i)
        return f"unnest({expr}) AS {value}, generate_subscripts({expr}, 1) AS {position}"

    def timestamp(self, expr):
        # TIMESTAMPTZ, the connection's zone UTC (duckdb_engine): a zone converts, none is UTC
        # (a cast to TIMESTAMP drops an offset without converting)
        return f"TRY_CAST({expr} AS TIMESTAMPTZ)"

    def missing_to_null(self, expr, unsigned=False):
        if unsigned:  # DuckDB keeps Parquet's uint64 as UBIGINT
            return f"NULLIF({expr}, CAST(9223372036854775808 AS UBIGINT))"
        return super().missing_to_null(expr)

    def id_order(self, expr, unsigned=False):
        if unsigned:  # values from 2**63 up wrap to negative ids: they come first
            return f"({expr} < CAST(9223372036854775808 AS UBIGINT)) ASC NULLS FIRST, {expr} ASC NULLS FIRST"
        return super().id_order(expr)

    def isnan(self, expr):
        # not isnan(): DuckDB folds it to false from a Parquet column's min/max, which leave NaN
        # out, so a NaN after the first row was read as a number (isfinite is not folded)
        return f"(NOT isfinite({expr}) AND NOT isinf({expr}))"


class SparkDialect(Dialect):
    name = "spark"

    def ident(self, name):
        return "`" + name.replace("`", "``") + "`"

    def full_match(self, expr, rx):
        # Spark string literals treat backslashes as escapes; the shared regexes contain none.
        return f"({expr} RLIKE {_lit('^(?:' + rx + ')$')})"

    def hex32(self, expr):
        return f"TRY_CAST(conv({expr}, 16, 10) AS BIGINT)"

    def unnest(self, expr):
        return f"explode({expr})"

    def unnest_at(self, expr, value, position):
        return f"posexplode({expr}) AS ({position}, {value})"

    def timestamp(self, expr):
        # the session's zone is UTC for the run (spark_engine), which a time without a zone is
        # read in (Spark Connect: not the server's own zone); a zoned time converts
        return f"TRY_CAST({expr} AS TIMESTAMP)"

    def __init__(self, latin1: bool = False):
        # latin1: the engine read a text log as ISO-8859-1 (every byte one character), so a value
        # that is not UTF-8 is seen and made a bad line, as DuckDB and the Python readers do;
        # read as UTF-8, Spark would replace its bytes with U+FFFD and count the line as good
        self.latin1 = latin1

    def text(self, expr):
        return f"CAST(encode({expr}, 'ISO-8859-1') AS STRING)" if self.latin1 else expr

    def text_bad(self, expr):
        return f"NOT coalesce(is_valid_utf8({self.text(expr)}), TRUE)" if self.latin1 else None




def _column_sql(plan: MiningPlan, d: Dialect, col: str, role: str, expr: str | None = None) -> tuple[str, str | None]:
    """(value expression, bad expression or None) of one column in the ``log`` table (``expr``:
    one value of a list column's lists, which is read as the column's values are)."""
    c = expr or d.ident(col)
    kind = plan.kinds[col]
    empty = f"({c} IS NULL OR {c} = '')"
    if role == "label":
        if not plan.text and kind == "number":
            # NaN > 0 holds in DuckDB and Spark (NaN sorts above all numbers): NaN is a bad label
            return f"({c} > 0)", f"({c} IS NULL OR {d.isnan(f'CAST({c} AS DOUBLE)')})"
        ok = d.full_match(c, NUM_RE)
        return f"(TRY_CAST(trim({c}) AS DOUBLE) > 0)", f"NOT coalesce({ok}, FALSE)"
    if role == "time":
        if not plan.text and kind != "string":  # "string": ISO times stored as Parquet text
            return c, None
        if kind == "int":
            return f"TRY_CAST(trim({c}) AS BIGINT)", f"NOT ({empty} OR coalesce({d.full_match(c, INT_RE)}, FALSE))"
        t = d.timestamp(f"NULLIF({c}, '')")
        # a time that matches the pattern but is no date (month 13) does not parse: a bad line
        return t, f"NOT ({empty} OR coalesce({d.full_match(c, TIME_RE)} AND {t} IS NOT NULL, FALSE))"
    # An id column. A missing value is NULL throughout the SQL and becomes MISSING_ID only in the
    # aggregated result (collect), so typed columns are grouped as they are, with no per-row work.
    if kind == "string":
        if plan.text:
            return f"NULLIF({d.text(c)}, '')", d.text_bad(c)  # hashed after aggregation
        return f"NULLIF({c}, '')", None
    if not plan.text and col not in plan.text_ids:
        wide = dict(plan.wide_ids)
        return (d.missing_to_null(c, wide[col]) if col in wide else c), None
    if kind == "hex32":  # 32 bits: never MISSING_ID
        return f"{d.hex32(c)}", f"NOT ({empty} OR coalesce({d.full_match(c, HEX_RE)}, FALSE))"
    return (d.missing_to_null(f"TRY_CAST(trim({c}) AS BIGINT)"),
            f"NOT ({empty} OR coalesce({d.full_match(c, INT_RE)}, FALSE))")


def key_columns(plan: MiningPlan) -> list[str]:
    """The id columns, in order; their SQL aliases are ``__k0, __k1, ...``."""
    keys = list(plan.schema.features)
    if plan.schema.session_key and plan.schema.session_key not in keys:
        keys.append(plan.schema.session_key)
    return keys


def converted_sql(plan: MiningPlan, d: Dialect, *, extra_bad: str | None = None) -> str:
    """``SELECT`` over the raw ``log`` table giving ids ``__k*``, ``__pos``, ``__t``, ``__bad``."""
    sel, bads = [], []
    for i, col in enumerate(key_columns(plan)):
        if col in plan.list_ids:  # the lists as they are: their values are read once unnested (list_sqls)
            sel.append(f"{d.ident(col)} AS __k{i}")
            continue
        v, b = _column_sql(plan, d, col, "id")
        sel.append(f"{v} AS __k{i}")
        if b:
            bads.append(b)
    if plan.schema.label:
        v, b = _column_sql(plan, d, plan.schema.label, "label")
        sel.append(f"coalesce({v}, FALSE) AS __pos")
        bads.append(b)
    if plan.schema.time_key:
        v, b = _column_sql(plan, d, plan.schema.time_key, "time")
        sel.append(f"{v} AS __t")
        if b:
            bads.append(b)
    if extra_bad:
        bads.append(extra_bad)
    if plan.can_be_bad():
        sel.append(f"({' OR '.join(bads) if bads else 'FALSE'}) AS __bad")
    return f"SELECT {', '.join(sel)} FROM {LOG_TABLE}"


def _sets(plan: MiningPlan) -> list[tuple[int, ...]]:
    """The grouping sets: one per feature, one per pair, and the grand total ()."""
    feats = list(plan.schema.features)
    sets = [(feats.index(f),) for f in feats]
    sets += [(feats.index(a), feats.index(b)) for a, b in plan.pairs]
    sets.append(())
    return sets


def grouping_mask(n_keys: int, grouped: tuple[int, ...]) -> int:
    """GROUPING_ID of a set: bit (n-1-i) is 1 when key i is aggregated away (SQL standard). A list
    column paired with itself, ``(i, i)``, which no GROUPING_ID names, is ``-1 - i``."""
    if len(grouped) == 2 and grouped[0] == grouped[1]:
        return -1 - grouped[0]
    return sum(1 << (n_keys - 1 - i) for i in range(n_keys) if i not in grouped)


def result_column(plan: MiningPlan, feature: str, position: int) -> str:
    """The result column holding ``feature``'s ids as the first (0) or second (1) key of a set.

    The grouped rows come back narrow: one int and one text column per key position, whatever
    the number of features, instead of one mostly-NULL column per feature (the Arrow result of a
    large log is then a quarter of the size); a binary column of its own when binary ids are read.
    """
    if plan.kinds[feature] != "string":
        return "__i" + "ab"[position]
    return ("__b" if feature in plan.binary_ids else "__s") + "ab"[position]


def _grouped_sql(plan: MiningPlan, ctes: list[tuple[str, str]], keys: dict[int, str], sets: list[tuple[int, ...]],
                 *, good: str | None) -> str:
    """The query grouping ``sets`` (of feature indices) over the last of ``ctes`` (name, SQL), whose column
    ``keys[i]`` holds feature i's ids: the narrow result columns (result_column), ``__g`` (the
    set's grouping mask over ALL the plan's features, whichever keys this query has), ``__n``,
    ``__p`` and, with ``good`` (the condition of a good row), ``__nbad``."""
    feats = list(plan.schema.features)
    nf = len(feats)
    local = list(keys)  # this query's keys, by feature index; its GROUPING_ID has one bit each
    n = f"count(*) FILTER (WHERE {good})" if good else "count(*)"
    aggs = [f"{n} AS __n"]
    if plan.schema.label:
        aggs.append(f"count(*) FILTER (WHERE __pos{' AND ' + good if good else ''}) AS __p")
    if good:
        aggs.append("count(*) FILTER (WHERE __bad) AS __nbad")
    source = ctes[-1][0]
    with_ = "WITH " + ", ".join(f"{name} AS ({sql})" for name, sql in ctes)
    outs = [a.rsplit(" AS ", 1)[1] for a in aggs]
    if not local:  # every feature a list column: the grand total alone
        return f"{with_} SELECT {grouping_mask(nf, ())} AS __g, {', '.join(aggs)} FROM {source}"
    cols = [keys[i] for i in local]

    def local_mask(s):  # the set's GROUPING_ID in this query
        return grouping_mask(len(local), tuple(local.index(i) for i in s))

    grouping = ", ".join("(" + ", ".join(keys[i] for i in s) + ")" for s in sets)
    having = ""
    if good or plan.min_count > 1:  # groups of bad rows only, or below min_count, are dropped
        having = f" HAVING {n} >= {int(plan.min_count)}"
        if () in sets:
            having += f" OR GROUPING_ID({', '.join(cols)}) = {local_mask(())}"
    # route each set's keys into the narrow result columns
    cases: dict[str, list[str]] = {}
    for s in sets:
        for pos, i in enumerate(s):
            cases.setdefault(result_column(plan, feats[i], pos), []).append(f"WHEN {local_mask(s)} THEN {keys[i]}")
    narrow = [f"CASE __gl {' '.join(w)} END AS {col}" for col, w in sorted(cases.items())]
    g = f"CASE __gl {' '.join(f'WHEN {local_mask(s)} THEN {grouping_mask(nf, s)}' for s in sets)} END AS __g"
    return (
        f"{with_}, "
        f"g AS (SELECT {', '.join(cols)}, GROUPING_ID({', '.join(cols)}) AS __gl, {', '.join(aggs)} "
        f"FROM {source} GROUP BY GROUPING SETS ({grouping}){having}) "
        f"SELECT {', '.join([*narrow, g, *outs])} FROM g"
    )


def counts_sql(plan: MiningPlan, d: Dialect, *, extra_bad: str | None = None) -> str:
    """The one query of all frequency and pair jobs of single-id columns, plus the row and bad-row
    totals (the jobs of list columns: :func:`list_sqls`)."""
    feats = list(plan.schema.features)
    scalar = [i for i, f in enumerate(feats) if f not in plan.list_ids]
    sets = [s for s in _sets(plan) if all(i in scalar for i in s)]
    return _grouped_sql(plan, [("t", converted_sql(plan, d, extra_bad=extra_bad))],
                        {i: f"__k{i}" for i in scalar}, sets, good="NOT __bad" if plan.can_be_bad() else None)


def list_sqls(plan: MiningPlan, d: Dialect, *, extra_bad: str | None = None) -> list[str]:
    """The queries of the jobs on list columns (multi-hot features), each over the good rows with
    the lists unnested: a list's every id is one access, and a pair counts every (id, id) of a row
    (a list against a single id, or every id of one list against every id of the other). One
    query per list column (its frequencies and its pairs with single-id columns), and one per
    pair of two list columns. Results as :func:`counts_sql`'s, without the totals."""
    feats = list(plan.schema.features)
    listed = [i for i, f in enumerate(feats) if f in plan.list_ids]
    pair_sets = [(feats.index(a), feats.index(b)) for a, b in plan.pairs]
    out = []
    for i in listed:
        # its pairs with single-id columns (not with list columns, nor with itself: queries of their own)
        sets = [(i,)] + [s for s in pair_sets if i in s and s[0] != s[1] and not any(j in listed for j in s if j != i)]
        partners = list(dict.fromkeys(j for s in sets for j in s if j != i))
        out.append(_unnested_sql(plan, d, [i], partners, sets, extra_bad))
    for s in pair_sets:
        if s[0] == s[1]:
            out.append(_self_pair_sql(plan, d, s[0], extra_bad))
        elif all(i in listed for i in s):
            out.append(_unnested_sql(plan, d, list(s), [], [s], extra_bad))
    return out


def _self_pair_sql(plan: MiningPlan, d: Dialect, i: int, extra_bad) -> str:
    """A list column paired with itself: every (id, id) at two different positions of one list,
    both ways round (a list of L ids gives L * (L - 1) pairs; an id twice in a list pairs with
    itself). Results as :func:`_grouped_sql`'s, ``__g`` being ``grouping_mask``'s code of ``(i, i)``."""
    feat = plan.schema.features[i]
    pos = ["__pos"] if plan.schema.label else []
    where = " WHERE NOT __bad" if plan.can_be_bad() else ""
    value = lambda e: _column_sql(plan, d, feat, "id", expr=e)[0]  # noqa: E731
    aggs = ["count(*) AS __n"] + (["count(*) FILTER (WHERE __pos) AS __p"] if pos else [])
    having = f" HAVING count(*) >= {int(plan.min_count)}" if plan.min_count > 1 else ""
    return (
        f"WITH t AS ({converted_sql(plan, d, extra_bad=extra_bad)}), "
        f"u0 AS (SELECT {d.unnest_at(f'__k{i}', '__e0', '__p0')}, {', '.join([f'__k{i} AS __l', *pos])} FROM t{where}), "
        f"u1 AS (SELECT {d.unnest_at('__l', '__e1', '__p1')}, {', '.join(['__e0', '__p0', *pos])} FROM u0), "
        f"v AS (SELECT {', '.join([f'{value(e)} AS {e}' for e in ('__e0', '__e1')] + pos)} FROM u1 WHERE __p0 <> __p1) "
        f"SELECT __e0 AS {result_column(plan, feat, 0)}, __e1 AS {result_column(plan, feat, 1)}, "
        f"{grouping_mask(len(plan.schema.features), (i, i))} AS __g, {', '.join(aggs)} "
        f"FROM v GROUP BY __e0, __e1{having}"
    )


def _unnested_sql(plan: MiningPlan, d: Dialect, lists: list[int], scalars: list[int], sets, extra_bad) -> str:
    """:func:`_grouped_sql` of ``sets`` over the good rows with the columns ``lists`` unnested one
    after the other (a row then stands for every combination of their ids) and ``scalars`` kept."""
    feats = list(plan.schema.features)
    carry = [f"__k{j}" for j in scalars] + (["__pos"] if plan.schema.label else [])
    ctes = [("t", converted_sql(plan, d, extra_bad=extra_bad))]
    prev, done = "t", []
    for n, i in enumerate(lists):
        where = " WHERE NOT __bad" if n == 0 and plan.can_be_bad() else ""
        cols = [f"{d.unnest(f'__k{i}')} AS __e{i}", *done, *(f"__k{j}" for j in lists[n + 1:]), *carry]
        ctes.append((f"u{n}", f"SELECT {', '.join(cols)} FROM {prev}{where}"))  # (one generator a SELECT: Spark)
        prev = f"u{n}"
        done.append(f"__e{i}")
    # each value read as the column's single values are (a missing id NULL, MISSING_ID as NULL)
    values = [f"{_column_sql(plan, d, feats[i], 'id', expr=f'__e{i}')[0]} AS __e{i}" for i in lists]
    ctes.append(("v", f"SELECT {', '.join([*values, *carry])} FROM {prev}"))
    keys = {**{i: f"__e{i}" for i in lists}, **{j: f"__k{j}" for j in scalars}}
    return _grouped_sql(plan, ctes, keys, sets, good=None)


def sequence_sql(plan: MiningPlan, d: Dialect, job: SequenceJob, *, extra_bad: str | None = None) -> str:
    """Consecutive ids of ``job.feature`` within each session, ordered by time then the value."""
    keys = key_columns(plan)
    k = f"__k{keys.index(job.feature)}"
    s = f"__k{keys.index(plan.schema.session_key)}"
    where = [f"{s} IS NOT NULL"] + (["NOT __bad"] if plan.can_be_bad() else [])
    # ties of time by the id (as an int64 id: Spark has no unsigned type, the readers give int64)
    unsigned = dict(plan.wide_ids).get(job.feature, False) and job.feature not in plan.text_ids
    order = ("__t ASC NULLS FIRST, " if plan.schema.time_key else "") + d.id_order(k, unsigned)
    window = f"PARTITION BY {s} ORDER BY {order}"
    return (
        f"WITH t AS ({converted_sql(plan, d, extra_bad=extra_bad)}), "
        f"w AS (SELECT LAG({k}) OVER ({window}) AS __prev, {k} AS __next, "
        f"ROW_NUMBER() OVER ({window}) AS __rn FROM t WHERE {' AND '.join(where)}) "
        f"SELECT __prev, __next, count(*) AS __n FROM w WHERE __rn > 1 GROUP BY __prev, __next "
        f"HAVING count(*) >= {int(plan.min_count)}"
    )


# --------------------------------------------------------------------------- results


def _ids(column, kind: str) -> np.ndarray:
    """int64 ids of a grouped key column; NULL (missing) becomes MISSING_ID."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "string" and not pa.types.is_null(column.type):  # (null: a column missing in every file)
        return hash_strings(column).view(np.int64)
    if column.type != pa.int64():
        column = column.cast(pa.int64(), safe=False)  # uint64 ids wrap to int64, as hashed ids do
    if column.null_count:
        column = pc.fill_null(column, MISSING_ID)
    return column.to_numpy(zero_copy_only=False)


def collect(plan: MiningPlan, counts, sequences: dict, *, engine: str, bad_lines: int = 0,
            source=None) -> tuple[LogStats, int]:
    """Arrow results -> LogStats (and the number of bad rows the query saw).

    ``counts`` is the result of :func:`counts_sql`, or a list of it and the results of
    :func:`list_sqls`; ``sequences`` maps a feature to the result of its :func:`sequence_sql`.
    """
    import pyarrow as pa

    feats = list(plan.schema.features)
    nf = len(feats)
    tables = list(counts) if isinstance(counts, (list, tuple)) else [counts]
    results = []  # (table, __g, __n, __p) of each query
    for tbl in tables:
        g = tbl.column("__g").to_numpy(zero_copy_only=False)
        n_all = tbl.column("__n").to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        p_all = tbl.column("__p").to_numpy(zero_copy_only=False).astype(np.int64, copy=False) if plan.schema.label else None
        results.append((tbl, g, n_all, p_all))

    def part(grouped):
        # one grouping set's rows (all in one of the queries): take just its key columns (not a
        # filter of the whole table)
        mask = grouping_mask(nf, grouped)
        for tbl, g, n_all, p_all in results:
            idx = np.flatnonzero(g == mask)
            if len(idx):
                break
        if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # the set's rows in one run (as engines give them): a view
            rows = lambda col: col.slice(int(idx[0]), len(idx))  # noqa: E731
        else:
            take = pa.array(idx, type=pa.int64())
            rows = lambda col: col.take(take)  # noqa: E731
        keys = [_ids(rows(tbl.column(result_column(plan, feats[i], pos))), plan.kinds[feats[i]])
                if len(idx) else np.zeros(0, np.int64) for pos, i in enumerate(grouped)]
        vals = [n_all[idx]] + ([p_all[idx]] if p_all is not None else [])
        if any(plan.kinds[feats[i]] == "string" for i in grouped) and len(idx):
            # distinct strings may share a 64-bit hash: merge them as the one id they became
            keys, vals = _sum_by_keys(keys, vals)
        return keys, vals

    counts, g, n_all, _ = results[0]
    total = np.flatnonzero(g == grouping_mask(nf, ()))
    n_rows = int(n_all[total[0]]) if len(total) else 0
    nbad = 0
    if len(total) and "__nbad" in counts.column_names:
        nbad = int(counts.column("__nbad")[int(total[0])].as_py() or 0)
    freqs = {}
    for i, f in enumerate(feats):
        (ids,), vals = part((i,))
        freqs[f] = (ids, *vals)
    pairs = {}
    for a, b in plan.pairs:
        (ia, ib), vals = part((feats.index(a), feats.index(b)))
        pairs[(a, b)] = (ia, ib, *vals)
    seqs = {}
    for f, tbl in sequences.items():
        prev = _ids(tbl.column("__prev"), plan.kinds[f])
        nxt = _ids(tbl.column("__next"), plan.kinds[f])
        cnt = tbl.column("__n").to_numpy(zero_copy_only=False).astype(np.int64)
        if plan.kinds[f] == "string" and len(prev):
            (prev, nxt), (cnt,) = _sum_by_keys([prev, nxt], [cnt])
        seqs[f] = (prev, nxt, cnt)
    stats = LogStats(
        features=feats, frequencies=freqs, pairs=pairs, sequences=seqs, label=plan.schema.label,
        n_rows=n_rows, sequence_key=plan.schema.session_key, time_key=plan.schema.time_key,
        min_count=plan.min_count, engine=engine, source=source, bad_lines=bad_lines + nbad,
    )
    return stats, nbad
