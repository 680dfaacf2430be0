"""Review of the learned-hash side (round 11, second pass): fit_hash's embedding checked up front,
Spark start-up errors in one line with advice by cause, libFM logs given as a folder, mine's
temp_directory."""

import os

import numpy as np
import pytest

from embcompress.errors import BackendUnavailableError, ConfigError
from learned_hash import LogStats, fit_hash, mine, read_log

# --------------------------------------------------------------------------- 1. fit_hash's embedding


def _stats(*, label):
    rng = np.random.default_rng(0)
    a = rng.zipf(1.3, 2000) % 300
    cols = {"a": a, "b": (a * 7 + rng.integers(0, 3, 2000)) % 200, "d": rng.integers(0, 50, 2000),
            "y": (a % 2).astype(np.int64)}
    return LogStats.from_rows(cols, features=["a", "b", "d"], label="y" if label else None, pairs=[("a", "b")])


@pytest.mark.parametrize("label, feature, embedding, says", [
    (True, "a", "spectral", r"'embedding' parameter of fit_hash must be one of \('auto', 'cooccurrence', 'label_aware'\)"),
    # a feature mined without pairs was told to mine pairs, for a typo in the embedding's name
    (True, "d", "spectral", r"'embedding' parameter of fit_hash must be one of"),
    (False, "a", "label_aware", r"needs stats mined with a label.*Mine with label=.*embedding='cooccurrence'"),
])
def test_fit_hash_refuses_the_embedding_before_the_fit_starts(label, feature, embedding, says):
    # both were refused only once the fit had started (progress(0, 1) was called: fit-hash's bar
    # drawn, its --out-dir made), the label one without naming the parameter
    pytest.importorskip("faiss")  # (the fix's fit clusters)
    stats, calls = _stats(label=label), []
    with pytest.raises(ConfigError, match=says) as err:
        fit_hash(stats, feature, 20, embedding=embedding, progress=lambda d, t: calls.append((d, t)))
    assert err.value.param == "embedding"
    assert calls == []
    # also when every id owns a row (nothing is embedded): the name is still wrong
    with pytest.raises(ConfigError, match=says):
        fit_hash(stats, feature, 1000, hot_rows=999, embedding=embedding)
    # the fix it names works
    fix = "auto" if label else "cooccurrence"
    assert fit_hash(stats, "a", 20, embedding=fix).n_rows == 20


def test_check_embedding_is_the_one_rule_and_other_methods_ignore_the_name():
    from learned_hash.build import check_embedding

    with_label, without = _stats(label=True), _stats(label=False)
    with pytest.raises(ConfigError, match="must be one of"):
        check_embedding(with_label, "spectral")
    with pytest.raises(ConfigError, match="needs stats mined with a label"):
        check_embedding(without, "label_aware")
    for emb in ("auto", "cooccurrence", "label_aware"):
        check_embedding(with_label, emb)
    check_embedding(without, (np.arange(3), np.ones((3, 2), np.float32)))  # a pair: checked where it is used
    check_embedding(without, "spectral", method="hash")  # embeds nothing
    assert fit_hash(without, "a", 20, method="frequency", embedding="label_aware").n_rows == 20


# --------------------------------------------------------------------------- 3. libFM logs


def test_a_libfm_log_without_fields_names_the_parameter(tmp_path):
    # without param='fields' the command line could not name --fields
    log = tmp_path / "log.libfm"
    log.write_text("1 0:1 3:1\n-1 1:1 2:1\n")
    with pytest.raises(ConfigError, match=r"needs its fields: pass fields=\[") as err:
        mine(log, features=["user", "item"])
    assert err.value.param == "fields"
    with pytest.raises(ConfigError) as err:
        read_log(log, features=["user"])
    assert err.value.param == "fields"


def _frappe_folder(tmp_path, *, deep=False):
    folder = tmp_path / "frappe"
    (folder / "part" if deep else folder).mkdir(parents=True)
    (folder / "part" if deep else folder).joinpath("train.libfm").write_text("1 0:1 3:1\n-1 1:1 2:1\n-1 0:1 2:1\n")
    (folder / "README.txt").write_text("Frappe: context-aware app usage\n\nuser item daytime ...\n")
    return folder


@pytest.mark.parametrize("deep", [False, True])
def test_a_stray_file_in_a_libfm_folder_names_the_glob_that_leaves_it_out(tmp_path, monkeypatch, deep):
    # format='libfm' on a folder reads every visible file: Frappe's README.txt was taken as a log,
    # and the error's only hint was on_bad_line='skip', which quietly counts its lines as bad
    folder = _frappe_folder(tmp_path, deep=deep)
    monkeypatch.chdir(tmp_path)
    kw = dict(format="libfm", features=["user", "item"], fields=["user", "item"])
    glob = "frappe/**/*.libfm" if deep else "frappe/*.libfm"
    for read in (mine, read_log):
        with pytest.raises(ConfigError, match="README.txt") as err:
            read("frappe", **kw)
        msg = str(err.value)
        assert f"pass a glob of the log files instead, e.g. {glob!r}" in msg, msg
        assert "on_bad_line='skip' would count its lines as bad" in msg
        assert err.value.param == "on_bad_line"
    # the glob it names reads the log alone
    assert mine(glob, **kw).n_rows == 3
    assert mine(str(folder), on_bad_line="skip", **kw).bad_lines == 2  # (what skip would have done)


def test_a_bad_line_of_a_named_file_or_of_the_folders_only_kind_has_no_glob_hint(tmp_path):
    folder = _frappe_folder(tmp_path)
    kw = dict(format="libfm", features=["user", "item"], fields=["user", "item"])
    with pytest.raises(ConfigError, match="Malformed line") as err:
        mine(folder / "README.txt", **kw)  # named: the user meant it
    assert "glob" not in str(err.value)
    (folder / "README.txt").unlink()
    (folder / "bad.libfm").write_text("1 0:1\nnot a line\n")
    with pytest.raises(ConfigError, match="Malformed line") as err:
        mine(folder, **kw)  # a log file like the others: no glob leaves it out
    assert "glob" not in str(err.value) and "bad.libfm" in str(err.value)


# --------------------------------------------------------------------------- 4. mine's temp_directory


def _spill_spy(monkeypatch):
    """The folders mine hands its engine as temp_directory, and the files in them during the run."""
    import learned_hash.mining.duckdb_engine as eng

    seen = []
    real = eng.run

    def run(plan, **kw):
        seen.append(kw["temp_directory"])
        assert os.path.isdir(kw["temp_directory"])
        return real(plan, **kw)

    monkeypatch.setattr(eng, "run", run)
    return seen


def test_temp_directory_expands_the_home_folder(tmp_path, monkeypatch):
    # '~/x' was taken as a folder named '~' in the working directory (and, missing, a raw FileNotFoundError)
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "spill").mkdir(parents=True)
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    log = tmp_path / "log.csv"
    log.write_text("a\n1\n2\n")
    seen = _spill_spy(monkeypatch)
    for given in ("~/spill", os.path.join("~", "spill", "")):
        assert mine(log, features=["a"], temp_directory=given).n_rows == 2
        assert os.path.dirname(seen[-1]) == str(home / "spill")
    assert not (work / "~").exists()
    assert list((home / "spill").iterdir()) == []  # the run's own subfolder is removed


def test_a_missing_temp_directory_is_made_and_removed_as_duckdb_does_with_its_own(tmp_path, monkeypatch):
    log = tmp_path / "log.libfm"
    log.write_text("1 0:1 3:1\n-1 1:1 2:1\n")
    seen = _spill_spy(monkeypatch)
    spill = tmp_path / "spill"
    assert mine(log, features=["user", "item"], fields=["user", "item"], temp_directory=spill).n_rows == 2
    assert os.path.dirname(seen[-1]) == str(spill)
    assert not spill.exists()  # made for the run, removed after it (it was a raw FileNotFoundError)


@pytest.mark.parametrize("case, says", [
    ("no_parent", r"names '.*nowhere.*spill', which does not exist, nor does the folder '.*nowhere' that would hold it\. Create the folder"),
    ("file", r"must be a folder, but '.*afile' is a file"),
    ("type", r"must be a folder path or None .*Got 3 instead"),
])
def test_a_temp_directory_mine_cannot_use_is_refused_before_the_log_is_read(tmp_path, case, says):
    log = tmp_path / "log.csv"
    log.write_text("a\n1\n")
    (tmp_path / "afile").write_text("x")
    given = {"no_parent": str(tmp_path / "nowhere" / "spill"), "file": str(tmp_path / "afile"), "type": 3}[case]
    with pytest.raises(ConfigError, match=says) as err:
        mine(log, features=["a"], temp_directory=given)
    assert err.value.param == "temp_directory"
    assert not (tmp_path / "nowhere").exists()


# As root (CI), in a child that drops root: root writes anywhere, so only an unprivileged user is refused.
NOT_WRITABLE = """
import os, sys
from learned_hash import mine
from embcompress.errors import ConfigError
if os.geteuid() == 0:
    os.setgid(65534); os.setuid(65534)
log, ro = sys.argv[1], sys.argv[2]
for given in (ro, os.path.join(ro, "spill")):
    try:
        mine(log, features=["a"], temp_directory=given)
        print("accepted")
    except ConfigError as e:
        print("refused", e.param, "is not writable. Pass a folder you can write in" in str(e))
"""


def test_a_temp_directory_in_a_folder_that_is_not_writable_is_refused():
    import shutil
    import subprocess
    import sys
    import tempfile

    d = tempfile.mkdtemp(dir="/tmp")  # (pytest's folders are root's alone: an unprivileged child could not enter)
    try:
        os.chmod(d, 0o755)
        log = os.path.join(d, "log.csv")
        with open(log, "w") as fh:
            fh.write("a\n1\n")
        os.chmod(log, 0o644)
        ro = os.path.join(d, "ro")
        os.mkdir(ro)
        os.chmod(ro, 0o555)
        out = subprocess.run([sys.executable, "-c", NOT_WRITABLE, log, ro], capture_output=True, text=True, timeout=120)
        if "No module named" in out.stderr:
            pytest.skip("the interpreter is not readable by an unprivileged user here")
        assert out.stdout.splitlines() == ["refused temp_directory True"] * 2, out.stderr[-2000:]
    finally:
        os.chmod(d, 0o755)
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- 2. Spark that cannot start

# Py4J's text of Spark's refusal of 'local[x]' (the JVM's stack trace, cut here to a few frames)
PY4J_TEXT = (
    "An error occurred while calling None.org.apache.spark.api.java.JavaSparkContext.\n"
    ": org.apache.spark.SparkException: Could not parse Master URL: 'local[x]'\n"
    + "".join(f"\tat org.apache.spark.SparkContext$.frame{i}(SparkContext.scala:{3391 + i})\n" for i in range(20))
)


class _Py4JLike(Exception):
    def __str__(self):
        return PY4J_TEXT


def _gateway_exited():
    from pyspark.errors import PySparkRuntimeError

    return PySparkRuntimeError(errorClass="JAVA_GATEWAY_EXITED", messageParameters={})


def _refusing(monkeypatch, exc):
    """Spark's session builder raising ``exc`` (no JVM is started)."""
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    def get_or_create(self):
        raise exc

    monkeypatch.setattr(SparkSession.Builder, "getOrCreate", get_or_create)
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))


def _java_present(monkeypatch, tmp_path):
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(home))


def test_a_bad_master_is_told_in_one_line_with_the_forms_spark_takes(monkeypatch, tmp_path):
    # the whole Java exception (twenty lines of stack) was in the error, which said to install Java 17
    from learned_hash.mining.spark_engine import session

    _java_present(monkeypatch, tmp_path)
    _refusing(monkeypatch, _Py4JLike())
    with pytest.raises(ConfigError) as err:
        session("local[x]")
    msg = str(err.value)
    assert "\n" not in msg and "\tat " not in msg and "An error occurred" not in msg
    assert msg.startswith("Cannot start Spark with master 'local[x]': org.apache.spark.SparkException: "
                          "Could not parse Master URL: 'local[x]'.")
    assert "must be a Spark master URL: local, local[N], local[*], spark://host:port" in msg
    assert "Java 17" not in msg
    assert err.value.param == "spark_master"
    # a master spark-submit refuses before Java says why on its own stderr: told by its form
    _refusing(monkeypatch, _gateway_exited())
    with pytest.raises(ConfigError, match=r"'lcoal\[2\]': \[JAVA_GATEWAY_EXITED\] .*must be a Spark master URL"):
        session("lcoal[2]")


@pytest.mark.parametrize("how", ["java_home", "path"])
def test_missing_java_is_told_as_the_cause(monkeypatch, tmp_path, how):
    from learned_hash.mining.spark_engine import session

    _refusing(monkeypatch, _gateway_exited())
    if how == "java_home":
        monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
        says = r"JAVA_HOME is '.*no-jdk', which holds no bin/java: point JAVA_HOME at a Java 17"
    else:
        monkeypatch.delenv("JAVA_HOME", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
        says = r"Java is not installed \(no JAVA_HOME, no java on the PATH\): install Java 17"
    with pytest.raises(BackendUnavailableError, match=says) as err:
        session("local[2]")
    assert "\n" not in str(err.value) and "master URL" not in str(err.value)


@pytest.mark.parametrize("master, says", [
    ("local[2]", r"Check that the Java found is one Spark runs on \(17 or 21"),
    ("spark://h.invalid:7077", r"Check that the master 'spark://h\.invalid:7077' is running and reachable"),
])
def test_another_cause_with_java_present_does_not_say_to_install_java(monkeypatch, tmp_path, master, says):
    from learned_hash.mining.spark_engine import session

    _java_present(monkeypatch, tmp_path)
    _refusing(monkeypatch, RuntimeError("java.lang.IllegalStateException: Cannot call methods on a stopped "
                                        "SparkContext.\nThis stopped SparkContext was created at:\n\n\tat x.y(z)"))
    with pytest.raises(BackendUnavailableError, match=says) as err:
        session(master)
    msg = str(err.value)
    assert "\n" not in msg and "Install Java" not in msg and "install Java" not in msg
    assert ": java.lang.IllegalStateException: Cannot call methods on a stopped SparkContext." in msg


@pytest.mark.spark
def test_spark_refusing_a_bad_master_for_real_gives_one_line(tmp_path):
    # the text as Py4J really gives it, in a process of its own (a JVM stays behind once started)
    import subprocess
    import sys

    from tests.conftest import need_spark

    need_spark()
    code = ("from learned_hash.mining.spark_engine import session\n"
            "try:\n    session('local[x]')\n"
            "except Exception as e:\n    print(type(e).__name__, getattr(e, 'param', None)); print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    kind, msg = out.stdout.split("\n", 1)
    assert kind == "ConfigError spark_master", out.stdout + out.stderr
    assert msg.strip() == (
        "Cannot start Spark with master 'local[x]': org.apache.spark.SparkException: Could not parse Master URL: "
        "'local[x]'. The 'spark_master' parameter of mine must be a Spark master URL: local, local[N], local[*], "
        "spark://host:port, sc://host:port (Spark Connect), yarn or k8s://https://host:port. Pass one of those.")


# --------------------------------------------------------------------------- 5. tests' by_reader


def test_by_reader_orders_ties_of_string_ids_by_the_text_as_the_engines(tmp_path):
    # by_reader hashed string ids before LogStats.from_rows ordered ties of time, so it disagreed
    # with both engines on a log of string ids in rows of one time (test_review_mining10 left the
    # case out of its comparison)
    from tests.conftest import by_reader

    p = tmp_path / "str_ties.csv"
    p.write_text("a,s,t\nzeta,1,5\nalpha,1,5\nmid,1,5\nbeta,1,5\n,1,5\n")
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    assert by_reader(p, **kw) == mine(p, **kw)
    assert by_reader(p, hash_strings=True, **kw) != mine(p, **kw)  # (what it did: the hashes' order)
