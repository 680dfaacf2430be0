"""Multi-hot features: Parquet columns of lists of ids, mined by both engines.

Every id of a list is one access (a repeated id twice); a pair counts every (id, id) of a row (a
list against a single id, or each id of one list against each id of the other). The engines are
held against :func:`expected`, a plain Python count over the rows, independent of the SQL."""

import subprocess
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import MISSING_ID, hash_strings
from learned_hash import LogStats, mine
from learned_hash.logs import BadLineError, read_log
from tests.conftest import need_spark

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]


def _id(v) -> int:
    """One id as the readers and engines take it: NULL, '' and -2**63 missing; uint64 wraps."""
    if v is None or v == "" or v == b"":
        return MISSING_ID
    if isinstance(v, (str, bytes)):
        return int(hash_strings(pa.array([v])).view(np.int64)[0])
    v = int(v)
    return v - (1 << 64) if v >= 1 << 63 else v


def expected(rows, features, *, label=None, pairs=(), min_count=1) -> LogStats:
    """LogStats counted row by row: ``rows`` are dicts; a list feature's value is a list or None."""
    good = [r for r in rows if label is None or r[label] is not None]
    ids = {f: [[_id(v) for v in r[f]] if isinstance(r[f], list) else ([] if r[f] is None and _is_list(rows, f)
                                                                       else [_id(r[f])]) for r in good]
           for f in features}
    pos = [label is not None and r[label] > 0 for r in good]

    def table(counter, positives, width):
        keys = [k for k, n in counter.items() if n >= min_count]
        cols = [np.array([k[i] for k in keys], np.int64) for i in range(width)]
        out = [*cols, np.array([counter[k] for k in keys], np.int64)]
        return out + ([np.array([positives[k] for k in keys], np.int64)] if label else [])

    freqs = {}
    for f in features:
        c, p = Counter(), Counter()
        for row_ids, positive in zip(ids[f], pos):
            for i in row_ids:
                c[(i,)] += 1
                p[(i,)] += positive
        freqs[f] = table(c, p, 1)
    prs = {}
    for a, b in pairs:
        c, p = Counter(), Counter()
        for ia, ib, positive in zip(ids[a], ids[b], pos):
            for x in ia:
                for y in ib:
                    c[(x, y)] += 1
                    p[(x, y)] += positive
        prs[(a, b)] = table(c, p, 2)
    return LogStats(features=features, frequencies=freqs, pairs=prs, label=label, n_rows=len(good))


def _is_list(rows, f) -> bool:
    return any(isinstance(r[f], list) for r in rows)


def _rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def _mine(path, engine, **kw):
    if engine == "spark":
        need_spark()
    return mine(path, engine=engine, **kw)


def _basic():
    return pa.table({
        "label": [0, 1, 0, 1, 1, 0],
        "user": [1, 2, 3, None, 2, 1],
        "items": [[1, 2, 2], [3, None], [], None, [3, 4], [1]],
        "tags": [["a"], ["b", "a"], ["c"], [""], None, ["a", "a"]],
    })


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("min_count", [1, 2])
def test_lists_are_counted_id_by_id(tmp_path, engine, min_count):
    t = _basic()
    pq.write_table(t, tmp_path / "log.parquet")
    kw = dict(features=["user", "items", "tags"], label="label", min_count=min_count,
              pairs=[("user", "items"), ("items", "tags"), ("tags", "user")])
    got = _mine(tmp_path / "log.parquet", engine, **kw)
    want = expected(_rows(t), **kw)
    assert got == want
    # a repeated id counts twice; an empty or NULL list is no access; a NULL or '' id is missing
    ids, counts = got.frequencies("items")
    assert dict(zip(ids.tolist(), counts.tolist()))[2] == 2
    assert got.summary("items")["accesses"] == (8 if min_count == 1 else 6)
    assert got.n_rows == 6


@pytest.mark.parametrize("engine", ENGINES)
def test_every_feature_a_list(tmp_path, engine):
    t = _basic().drop(["user"])
    pq.write_table(t, tmp_path / "log.parquet")
    for label in ("label", None):
        kw = dict(features=["items", "tags"], label=label, pairs=[("tags", "items")])
        assert _mine(tmp_path / "log.parquet", engine, **kw) == expected(_rows(t), **kw)


def _typed_lists():
    """(name, Arrow array of lists) for every value type a list column may hold."""
    big = [[1 << 63, (1 << 64) - 1, 5], [], None, [7, 1 << 63, 5]]  # 2**63 wraps to MISSING_ID
    return [
        ("int8", pa.array([[1, 2], [], None, [-3, 2]], pa.list_(pa.int8()))),
        ("int64_missing", pa.array([[-(1 << 63), 2], [None], None, [2, 9 << 40]], pa.list_(pa.int64()))),
        ("uint64", pa.array(big, pa.list_(pa.uint64()))),
        ("bool", pa.array([[True, False], [True], None, []], pa.list_(pa.bool_()))),
        ("string", pa.array([["x", "é"], [""], None, ["x", None]], pa.list_(pa.string()))),
        ("large_string", pa.array([["x", "yy"], [], None, ["yy"]], pa.large_list(pa.large_string()))),
        ("binary", pa.array([[b"\xff\x00", b"a"], [b""], None, [b"a"]], pa.list_(pa.binary()))),
        ("dictionary", pa.array([["p", "q"], ["q"], None, []], pa.list_(pa.dictionary(pa.int32(), pa.string())))),
        ("fixed_size", pa.array([[1, 2], [3, 3], None, [2, 1]], pa.list_(pa.int64(), 2))),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_value_type(tmp_path, engine):
    """One log with a list column of each type (one Spark session for all), paired with a single id."""
    cols = dict(_typed_lists())
    t = pa.table({"label": [1, 0, 1, 0], "u": [1, 2, 1, 3], **cols})
    pq.write_table(t, tmp_path / "log.parquet")
    rows = [{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in r.items()} for r in _rows(t)]
    kw = dict(features=["u", *cols], label="label", pairs=[(c, "u") for c in cols])
    assert _mine(tmp_path / "log.parquet", engine, **kw) == expected(rows, **kw)


@pytest.mark.parametrize("engine", ENGINES)
def test_types_that_differ_between_files(tmp_path, engine):
    """Schema drift: lists of int32 in one part, of int64 (or uint64) in others, a part with the
    column all missing (Arrow's null type); 2**63 of a uint64 list and a NULL id are one missing id."""
    parts = [
        pa.table({"u": [1, 2], "items": pa.array([[1, 2], [3]], pa.list_(pa.int32()))}),
        pa.table({"u": [3, 4], "items": pa.array([[1 << 40, 1], None], pa.list_(pa.int64()))}),
        pa.table({"u": [5, 6], "items": pa.array([[1 << 63, None], [(1 << 64) - 2, 1]], pa.list_(pa.uint64()))}),
        pa.table({"u": [7, 8], "items": pa.array([None, None], pa.null())}),
    ]
    rows = []
    for k, t in enumerate(parts):
        pq.write_table(t, tmp_path / f"part{k}.parquet")
        rows += _rows(t)
    kw = dict(features=["u", "items"], pairs=[("items", "u")])
    got = _mine(tmp_path, engine, **kw)
    assert got == expected(rows, **kw)
    ids, counts = got.frequencies("items")
    assert dict(zip(ids.tolist(), counts.tolist()))[MISSING_ID] == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_uint64_lists_missing_id_merges_with_null(tmp_path, engine):
    t = pa.table({"u": [1, 2], "items": pa.array([[1 << 63, None, 3], [(1 << 64) - 1]], pa.list_(pa.uint64())),
                  "flags": pa.array([[True, None], [False, True]], pa.list_(pa.bool_()))})
    pq.write_table(t, tmp_path / "log.parquet")
    kw = dict(features=["u", "items", "flags"], pairs=[("u", "items"), ("flags", "items")])
    got = _mine(tmp_path / "log.parquet", engine, **kw)
    assert got == expected(_rows(t), **kw)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bad_row_is_skipped_with_its_lists_or_named(tmp_path, engine):
    """A row whose label is missing is a bad row: skipped whole (its lists' ids too) and counted,
    or, by default, named by the Python reader, which reads the rows around the list column."""
    t = pa.table({"label": [1, None, 0], "items": [[1, 2], [2, 3], [3]], "u": [1, 2, 3]})
    pq.write_table(t, tmp_path / "log.parquet")
    kw = dict(features=["items", "u"], label="label", pairs=[("u", "items")])
    got = _mine(tmp_path / "log.parquet", engine, on_bad_line="skip", **kw)
    assert got == expected(_rows(t), **kw)
    assert got.bad_lines == 1
    with pytest.raises(BadLineError, match=r"\(record 2\).*.label. is not a number"):
        _mine(tmp_path / "log.parquet", engine, **kw)


def test_list_columns_refused_where_one_value_a_row_is_needed(tmp_path):
    t = pa.table({"label": [[1], [0]], "items": [[1], [2]], "s": [[1], [1]], "t": [1, 2], "u": [1, 2]})
    pq.write_table(t, tmp_path / "log.parquet")
    p = tmp_path / "log.parquet"
    with pytest.raises(ConfigError, match="'label'.*holds lists.*cannot be the label"):
        mine(p, features=["items"], label="label")
    with pytest.raises(ConfigError, match="'s'.*holds lists.*cannot be the session key"):
        mine(p, features=["u"], sequence_key="s", time_key="t")
    with pytest.raises(ConfigError, match="sequence_key.*'items'.*multi-hot.*without sequence_key") as e:
        mine(p, features=["items", "u"], sequence_key="u", time_key="t")
    assert e.value.param == "sequence_key"


def test_list_values_that_are_no_ids_are_refused(tmp_path):
    for name, arr in [("nested", pa.array([[[1]], [[2]]])), ("float", pa.array([[1.5], [2.0]])),
                      ("struct", pa.array([[{"a": 1}], [{"a": 2}]]))]:
        pq.write_table(pa.table({"c": arr}), tmp_path / f"{name}.parquet")
        with pytest.raises(ConfigError, match="whose values cannot be categorical ids. Use lists of integers or strings"):
            mine(tmp_path / f"{name}.parquet", features=["c"])


def test_kinds_cannot_reread_a_list_column(tmp_path):
    pq.write_table(pa.table({"c": [["1", "2"], ["3"]]}), tmp_path / "log.parquet")
    with pytest.raises(ConfigError, match="lists of string ids.*cannot read them as 'int'. Leave 'c' out of kinds"):
        mine(tmp_path / "log.parquet", features=["c"], kinds={"c": "int"})
    # the kind it has is no change
    assert mine(tmp_path / "log.parquet", features=["c"], kinds={"c": "string"}).summary("c")["accesses"] == 3


def test_lists_in_one_file_single_ids_in_another_are_refused(tmp_path):
    pq.write_table(pa.table({"c": [[1], [2]]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"c": [1, 2]}), tmp_path / "b.parquet")
    with pytest.raises(ConfigError, match="'c' of .*b.parquet' holds one id a row but of .*a.parquet' lists of ids"):
        mine(tmp_path, features=["c"])


def test_the_readers_refuse_a_list_column_naming_mine(tmp_path):
    pq.write_table(pa.table({"c": [[1], [2]], "u": [1, 2]}), tmp_path / "log.parquet")
    with pytest.raises(ConfigError, match="multi-hot feature.*mine counts such a column.*explode the lists"):
        read_log(tmp_path / "log.parquet", features=["c", "u"])
    assert read_log(tmp_path / "log.parquet", features=["u"])["u"].tolist() == [1, 2]  # the other columns read


def _grouped_log(path, n=6000, n_groups=40, size=25, seed=0):
    """Users in ``n_groups`` groups, each row a user and 1-5 items of the user's group's own items."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 400, n)
    items = [(1000 + (u % n_groups) * size + rng.integers(0, size, rng.integers(1, 6))).tolist() for u in users]
    pq.write_table(pa.table({"label": rng.integers(0, 2, n), "user": users, "items": items}), path)
    return n_groups, size


def test_cli_mines_a_multi_hot_column_and_fit_hash_maps_it(tmp_path, capsys):
    """From the command line: mine names the list column, the stats file records it, and the learned
    map of the list column puts items that co-occur with the same users in shared rows."""
    from embcompress import IdMap
    from tests.conftest import run_cli

    n_groups, size = _grouped_log(tmp_path / "log.parquet")
    code, out = run_cli(["mine", str(tmp_path / "log.parquet"), "--features", "user,items", "--label", "label",
                         "--pair", "items:user", "--out", str(tmp_path / "stats.embc"), "--quiet"], capsys)
    assert code == 0, out.err
    assert "items (lists of ids): 1,000 ids seen, " in out.out and "user: 400 ids seen, 6,000 accesses" in out.out
    stats = LogStats.load(tmp_path / "stats.embc")
    assert stats.source["multi_hot"] == ["items"]
    assert stats == mine(tmp_path / "log.parquet", features=["user", "items"], label="label", pairs=[("items", "user")])
    code, out = run_cli(["fit-hash", str(tmp_path / "stats.embc"), "-f", "items", "--rows", str(n_groups),
                         "--hot-rows", "0", "--embedding", "cooccurrence", "--out-dir", str(tmp_path / "maps"),
                         "--quiet"], capsys)
    assert code == 0, out.err
    m = IdMap.load(tmp_path / "maps" / "items.idmap")
    ids = np.arange(1000, 1000 + n_groups * size)
    rows = m.lookup(ids)
    group = (ids - 1000) // size
    # each row holds (nearly) one group's items: a random hash would mix about 25 groups a row
    mixed = [len(set(group[rows == r].tolist())) for r in np.unique(rows)]
    assert np.mean(mixed) < 2.0, mixed


def expected_self_pair(rows, feature, *, label=None, min_count=1):
    """(ids_a, ids_b, counts, positives) of a list column paired with itself, counted row by row."""
    c, p = Counter(), Counter()
    for r in rows:
        if label is not None and r[label] is None:
            continue
        ids = [_id(v) for v in r[feature] or []]
        for i, x in enumerate(ids):
            for j, y in enumerate(ids):
                if i != j:
                    c[(x, y)] += 1
                    p[(x, y)] += bool(label is not None and r[label] > 0)
    keys = sorted(k for k, n in c.items() if n >= min_count)
    return ([k[0] for k in keys], [k[1] for k in keys], [c[k] for k in keys], [p[k] for k in keys])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_list_column_paired_with_itself(tmp_path, engine):
    """The ids of one list counted together, both ways round; an id twice in a list pairs with itself."""
    t = _basic()
    pq.write_table(t, tmp_path / "log.parquet")
    for min_count in (1, 2):
        got = _mine(tmp_path / "log.parquet", engine, features=["user", "items", "tags"], label="label",
                    pairs=[("items", "items"), ("tags", "tags"), ("items", "user")], min_count=min_count)
        for f in ("items", "tags"):
            a, b, n, pos = expected_self_pair(_rows(t), f, label="label", min_count=min_count)
            assert [x.tolist() for x in got.pair_counts(f, f)] == [a, b, n], f
            clicked = [k for k, x in enumerate(pos) if x]  # (label=1: the pairs seen in clicked rows)
            assert [x.tolist() for x in got.pair_counts(f, f, label=1)] == [
                [a[k] for k in clicked], [b[k] for k in clicked], [pos[k] for k in clicked]], f
        ia, ib, n = got.pair_counts("items", "items")
        assert np.array_equal(np.sort(ia), np.sort(ib))  # symmetric
    # and what the other jobs count is as without it
    plain = _mine(tmp_path / "log.parquet", engine, features=["user", "items", "tags"], label="label",
                  pairs=[("items", "user")])
    assert plain == expected(_rows(t), features=["user", "items", "tags"], label="label", pairs=[("items", "user")])
    got = _mine(tmp_path / "log.parquet", engine, features=["user", "items", "tags"], label="label",
                pairs=[("items", "items"), ("items", "user")])
    assert all(np.array_equal(x, y) for f in ("user", "items", "tags") for x, y in
               zip(got.frequencies(f) + got.positives(f), plain.frequencies(f) + plain.positives(f)))
    assert all(np.array_equal(x, y) for x, y in zip(got.pair_counts("items", "user"), plain.pair_counts("items", "user")))


def test_a_single_id_column_paired_with_itself_is_refused(tmp_path):
    pq.write_table(pa.table({"u": [1, 2], "items": [[1], [2]]}), tmp_path / "log.parquet")
    with pytest.raises(ConfigError, match="pairs 'u' with itself.*holds one id a row. Pair it with another feature") as e:
        mine(tmp_path / "log.parquet", features=["u", "items"], pairs=["u:u"])
    assert e.value.param == "pairs"


@pytest.mark.parametrize("embedding", ["auto", "cooccurrence"])
def test_fit_hash_embeds_a_list_column_by_its_own_lists(tmp_path, embedding):
    """Items that come in the same lists (and nothing else tells them apart) share rows when the
    column is mined paired with itself; 'auto' takes the label-aware embedding, as for any pair."""
    from learned_hash.build import fit_hash

    rng = np.random.default_rng(1)
    n_groups, size, n = 30, 20, 6000
    groups = rng.integers(0, n_groups, n)
    items = [(1000 + g * size + rng.choice(size, rng.integers(2, 6), replace=False)).tolist() for g in groups]
    pq.write_table(pa.table({"label": rng.integers(0, 2, n), "items": items}), tmp_path / "log.parquet")
    stats = mine(tmp_path / "log.parquet", features=["items"], label="label", pairs=["items:items"])
    for partners in (None, ["items"]):
        m = fit_hash(stats, "items", n_groups, hot_rows=0, embedding=embedding, partners=partners)
        assert m.config["embedding"]["kind"] == ("label_aware" if embedding == "auto" else "cooccurrence")
        assert m.config["embedding"]["partners"] == ["items"]
        ids = np.arange(1000, 1000 + n_groups * size)
        rows, group = m.lookup(ids), (ids - 1000) // size
        mixed = [len(set(group[rows == r].tolist())) for r in np.unique(rows)]
        assert np.mean(mixed) < 2.0, mixed
