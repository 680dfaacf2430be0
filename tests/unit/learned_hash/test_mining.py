"""mine() on DuckDB: the same counts as an independent count, for every format; bad lines;
errors; and evidence on the real Frappe and TalkingData logs."""

import csv
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import MISSING_ID, string_ids
from learned_hash import LogStats, mine, read_log
from learned_hash.logs import FRAPPE_FIELDS, BadLineError
from tests.conftest import data_path


def as_dict(*arrays):
    *keys, counts = arrays
    return dict(zip(zip(*(k.tolist() for k in keys)) if len(keys) > 1 else keys[0].tolist(), counts.tolist()))


@pytest.fixture(scope="module")
def synth():
    """A small log with skew, missing values and a session/time structure."""
    rng = np.random.default_rng(7)
    n = 3000
    return {
        "y": rng.integers(0, 2, n),
        "u": rng.integers(0, 40, n),
        "i": rng.zipf(1.3, n) % 500,
        "c": np.where(rng.random(n) < 0.15, -1, rng.integers(0, 2**32, n) % 97),
        "t": rng.integers(0, 50, n),
    }


def write_criteo(path, d, extra=""):
    with open(path, "w") as fh:
        for k in range(len(d["y"])):
            ints = [str(d["t"][k]), str(d["u"][k])] + [""] * 11
            cats = [f"{d['i'][k]:08x}", "" if d["c"][k] < 0 else f"{d['c'][k]:x}"] + ["0a"] * 24
            fh.write("\t".join([str(d["y"][k]), *ints, *cats]) + "\n")
        fh.write(extra)


def test_criteo_matches_reader_and_independent_count(tmp_path, synth):
    p = tmp_path / "log.txt"
    write_criteo(p, synth)
    kw = dict(features=["C1", "C2", "I2"], label="label", pairs=[("I2", "C1"), ("C1", "C2")],
              sequence_key="I2", time_key="I1", format="criteo")
    s = mine(p, **kw)
    assert s.n_rows == 3000 and s.bad_lines == 0 and s.engine == "duckdb"
    # independent: Counter over the generating arrays
    assert as_dict(*s.frequencies("C1")) == Counter(synth["i"].tolist())
    c2 = np.where(synth["c"] < 0, MISSING_ID, synth["c"])
    assert as_dict(*s.frequencies("C2")) == Counter(c2.tolist())
    assert as_dict(*s.pair_counts("I2", "C1", label=1)) == Counter(
        zip(synth["u"][synth["y"] > 0].tolist(), synth["i"][synth["y"] > 0].tolist()))
    # the in-memory counter over the reader's arrays agrees on everything, sequences included
    rows = read_log(p, features=["C1", "C2", "I2"], label="label", time_key="I1", session_key="I2", format="criteo")
    ref = LogStats.from_rows(rows, features=kw["features"], label="label", pairs=kw["pairs"], sequence_key="I2", time_key="I1")
    assert s == ref


def test_bad_lines_skip_counts_and_error_names_line(tmp_path, synth):
    p = tmp_path / "log.txt"
    bad = "1\t2\n" + "\t".join(["1"] * 14 + ["zz"] + ["0a"] * 25) + "\n" + "\t".join(["?"] + ["1"] * 13 + ["0a"] * 26) + "\n\n"
    write_criteo(p, synth, extra=bad)
    s = mine(p, features=["C1"], label="label", format="criteo", on_bad_line="skip")
    assert (s.n_rows, s.bad_lines) == (3000, 3)
    assert as_dict(*s.frequencies("C1")) == Counter(synth["i"].tolist())
    with pytest.raises(BadLineError, match=r"line 3001.*2 fields where 40"):
        mine(p, features=["C1"], label="label", format="criteo")
    # only value errors (the structural line removed): found by SQL, located by the reader
    p.write_text(p.read_text().replace("1\t2\n", ""))
    with pytest.raises(BadLineError, match=r"line 3001.*'zz'"):
        mine(p, features=["C1"], label="label", format="criteo")


def test_csv_strings_and_parquet_agree(tmp_path, synth):
    words = np.array(["apple", "pear", "fig", "", "kiwi"], dtype=object)
    w = words[synth["u"] % 5]
    p = tmp_path / "log.csv"
    with open(p, "w") as fh:
        fh.write("user,word,item,ts,y\n")
        for k in range(len(w)):
            fh.write(f"{synth['u'][k]},{w[k]},{synth['i'][k]},2017-11-07 10:{synth['t'][k]:02d}:00,{synth['y'][k]}\n")
    kw = dict(features=["word", "item"], label="y", pairs=["word:item"], sequence_key="user", time_key="ts")
    s = mine(p, **kw)
    wid = string_ids(list(w))
    assert as_dict(*s.frequencies("word")) == Counter(wid.tolist())
    assert s.summary("word")["missing"] == int((w == "").sum())
    # the same log as Parquet (typed columns) mines to the same counts
    pq.write_table(pa.table({"user": synth["u"], "word": pa.array(list(w)), "item": synth["i"],
                             "ts": pa.array([f"2017-11-07 10:{t:02d}:00" for t in synth["t"]]), "y": synth["y"]}),
                   tmp_path / "log.parquet")
    assert mine(tmp_path / "log.parquet", **kw) == s
    rows = read_log(p, features=["word", "item"], label="y", time_key="ts", session_key="user")
    assert LogStats.from_rows(rows, features=["word", "item"], label="y", pairs=[("word", "item")],
                              sequence_key="user", time_key="ts") == s


def test_libfm_min_count_memory_limit_and_file(tmp_path, synth):
    p = tmp_path / "log.libfm"
    p.write_text("".join(f"{2 * synth['y'][k] - 1} {synth['u'][k]}:1 {1000 + synth['i'][k]}:1\n" for k in range(3000)) + "1 5:1\n")
    s = mine(p, features=["u", "i"], label="label", pairs=["u:i"], fields=["u", "i"], min_count=3,
             on_bad_line="skip", memory_limit="256MB", threads=1)
    assert s.bad_lines == 1 and s.n_rows == 3000
    want = {k: v for k, v in Counter((synth["i"] + 1000).tolist()).items() if v >= 3}
    assert as_dict(*s.frequencies("i")) == want
    assert s.pair_counts("u", "i")[2].min() >= 3
    # positives: label -1/1, positive when > 0
    ids, pos = s.positives("u")
    assert dict(zip(ids.tolist(), pos.tolist())) == {u: int(((synth["u"] == u) & (synth["y"] > 0)).sum()) for u in ids.tolist()}
    t = LogStats.load(s.save(tmp_path / "s.embc"), verify="full")
    assert t == s and t.bad_lines == 1 and t.source["format"] == "libfm"


def test_clear_errors(tmp_path, synth):
    p = tmp_path / "log.txt"
    write_criteo(p, {k: v[:5] for k, v in synth.items()})
    with pytest.raises(ConfigError, match=r"no column 'C30'"):
        mine(p, features=["C1", "C30"], format="criteo")
    with pytest.raises(ConfigError, match="not a mined feature"):
        mine(p, features=["C1"], pairs=["C1:C2"], format="criteo")
    with pytest.raises(ConfigError, match="'engine' parameter of mine"):
        mine(p, features=["C1"], format="criteo", engine="pandas")
    with pytest.raises(ConfigError, match="'time_key' parameter of mine is needed"):
        mine(p, features=["C1"], format="criteo", sequence_key="I1")
    with pytest.raises(ConfigError, match="'memory_limit' parameter"):
        mine(p, features=["C1"], format="criteo", memory_limit="lots")
    with pytest.raises(ConfigError, match="no such file"):
        mine(tmp_path / "missing.txt", features=["C1"], format="criteo")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ConfigError, match="has no rows"):
        mine(tmp_path / "empty.txt", features=["C1"], format="criteo")
    (tmp_path / "allbad.txt").write_text("1\t2\n")
    with pytest.raises(ConfigError, match=r"has no rows \(1 malformed lines were skipped\)"):
        mine(tmp_path / "allbad.txt", features=["C1"], format="criteo", on_bad_line="skip")


# ----------------------------------------------------------------------------- real data


def test_frappe_counts_equal_an_independent_count():
    paths = [data_path("frappe", f) for f in ("frappe.test.libfm", "frappe.validation.libfm")]
    s = mine(paths, features=list(FRAPPE_FIELDS), label="label", pairs=[("user", "item")], fields=FRAPPE_FIELDS)
    # independent count: plain Python over the text, field k = the k-th index on the line
    freq = {f: Counter() for f in FRAPPE_FIELDS}
    pos_item, pairs = Counter(), Counter()
    n = 0
    for p in paths:
        for line in open(p):
            tok = line.split()
            if not tok:
                continue
            n += 1
            idx = [int(t.split(":")[0]) for t in tok[1:]]
            for f, v in zip(FRAPPE_FIELDS, idx, strict=True):
                freq[f][v] += 1
            pairs[(idx[0], idx[1])] += 1
            if float(tok[0]) > 0:
                pos_item[idx[1]] += 1
    assert s.n_rows == n == 86582 and s.bad_lines == 0
    for f in FRAPPE_FIELDS:
        assert as_dict(*s.frequencies(f)) == freq[f], f
    assert as_dict(*s.pair_counts("user", "item")) == pairs
    ids, pos = s.positives("item")
    assert {i: c for i, c in zip(ids.tolist(), pos.tolist()) if c} == pos_item


def test_talkingdata_counts_equal_an_independent_count():
    path = data_path("talkingdata_sample", "train_sample.csv")
    feats = ["ip", "app", "device", "os", "channel"]
    s = mine(path, features=feats, label="is_attributed", pairs=[("app", "channel")],
             sequence_key="ip", time_key="click_time")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    name0 = next(iter(rows[0]))  # '..ip' in this copy
    get = lambda r, f: int(r[name0] if f == "ip" else r[f])
    assert s.n_rows == len(rows) == 100000
    for f in feats:
        assert as_dict(*s.frequencies(f)) == Counter(get(r, f) for r in rows), f
    assert as_dict(*s.pair_counts("app", "channel", label=1)) == Counter(
        (get(r, "app"), get(r, "channel")) for r in rows if r["is_attributed"] == "1")
    # sequences: per ip, sorted by (click_time, app)
    by_ip = {}
    for r in rows:
        by_ip.setdefault(get(r, "ip"), []).append((r["click_time"], get(r, "app")))
    want = Counter()
    for seq in by_ip.values():
        apps = [a for _, a in sorted(seq)]
        want.update(zip(apps[:-1], apps[1:]))
    assert as_dict(*s.sequence_counts("app")) == want
