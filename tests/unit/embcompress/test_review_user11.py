"""Review tests (a newcomer's walk through the README): the command line's errors."""

import numpy as np
import pytest

from tests.conftest import run_cli

pytest.importorskip("typer")


def _stats_file(path, *, label):
    """A log-stats file with features a and b mined in a pair, with or without a label."""
    from learned_hash import LogStats

    rng = np.random.default_rng(0)
    a = rng.zipf(1.3, 2000) % 300
    cols = {"a": a, "b": (a * 7 + rng.integers(0, 3, 2000)) % 200, "label": (a % 2).astype(np.int64)}
    stats = LogStats.from_rows(cols, features=["a", "b"], label="label" if label else None, pairs=[("a", "b")])
    stats.save(path)
    return path


@pytest.mark.parametrize("label, embedding, says", [
    (True, "spectral", "'embedding' parameter of fit_hash must be one of ('auto', 'cooccurrence', 'label_aware') or "
                       "an (ids, vectors) pair. Got 'spectral' instead. (on the command line: --embedding)"),
    (False, "label_aware", "needs stats mined with a label, and these were mined without one. Mine with label=<the "
                           "label column> (mine --label), or pass embedding='cooccurrence' (or 'auto'). (on the "
                           "command line: --embedding)"),
])
def test_fit_hash_refuses_the_embedding_before_making_out_dir(tmp_path, capsys, label, embedding, says):
    # fit_hash checks the embedding only when it embeds, after --out-dir was made: the refused run
    # left an empty folder (the README: "before --out-dir is made, every ... is checked")
    pytest.importorskip("faiss")
    stats = _stats_file(tmp_path / "log.stats", label=label)
    out = tmp_path / "maps"
    code, cap = run_cli(["fit-hash", str(stats), "--feature", "a", "--feature", "b", "--rows", "20",
                         "--embedding", embedding, "--out-dir", str(out)], capsys)
    assert code == 1
    assert says in cap.err and cap.err.startswith("error: ") and "Traceback" not in cap.err
    assert not out.exists()
    # and the fix it names works
    fix = "cooccurrence" if not label else "auto"
    code, cap = run_cli(["fit-hash", str(stats), "--feature", "a", "--rows", "20", "--embedding", fix,
                         "--out-dir", str(out), "--quiet"], capsys)
    assert code == 0, cap.err
    assert (out / "a.idmap").is_file()


@pytest.mark.parametrize("how", ["format", "extension"])
def test_mine_a_libfm_log_without_fields_names_the_flag_and_frappes_fields(tmp_path, capsys, how):
    pytest.importorskip("duckdb")
    log = tmp_path / ("log.libfm" if how == "extension" else "log.txt")
    log.write_text("1 0:1 3:1\n-1 1:1 2:1\n")
    (tmp_path / "out").mkdir()
    argv = ["mine", str(log), "--features", "user,item", "--out", str(tmp_path / "out" / "s.stats")]
    if how == "format":
        argv += ["--format", "libfm"]
    code, cap = run_cli(argv, capsys)
    assert code == 1
    # was: "pass fields=[names in line order] (Frappe: learned_hash.logs.FRAPPE_FIELDS) or field_map=..."
    assert "--fields" in cap.err and "--fields user,item,daytime,weekday,isweekend,homework,cost,weather,country,city" in cap.err
    assert "Traceback" not in cap.err
    code, cap = run_cli(argv + ["--fields", "user,item", "--quiet"], capsys)
    assert code == 0, cap.err
    assert "2 rows mined" in cap.out


def test_inspect_prints_an_integer_frequency_total_in_full(tmp_path, capsys):
    import embcompress

    path = tmp_path / "t.embc"
    embcompress.write_table(path, embcompress.quantize(np.ones((4, 32), np.float32), "mxint8"),
                            frequencies=np.array([8_000_000, 386_560, 0, 0]))
    code, cap = run_cli(["inspect", str(path)], capsys)
    assert code == 0, cap.err
    assert "frequencies: int64 per row, total 8386560" in cap.out  # was 'total 8.38656e+06'


def test_evaluate_on_a_file_that_is_not_json_names_the_fix(tmp_path, capsys):
    pytest.importorskip("torch")
    bad = tmp_path / "day_0.txt"
    bad.write_text("0\t1\t5\n1\t2\t6\n")
    code, cap = run_cli(["evaluate", str(bad), "--out", str(tmp_path / "ev")], capsys)
    assert code == 1
    assert "is not valid JSON" in cap.err and "examples/sweeps/" in cap.err and "Traceback" not in cap.err
    assert not (tmp_path / "ev").exists()


def test_mine_out_naming_a_directory_says_to_name_a_file_in_it(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("a,label\n1,0\n2,1\n")
    (tmp_path / "out").mkdir()
    code, cap = run_cli(["mine", str(log), "--features", "a", "--out", str(tmp_path / "out")], capsys)
    assert code == 1
    # was: "... Create the directory '<tmp_path>' first", a folder that exists
    assert "is a directory" in cap.err and f"--out {str(tmp_path / 'out' / 'log.stats')!r}" in cap.err
    assert "Create the directory" not in cap.err


def test_export_frequencies_file_that_is_no_npy_array_does_not_say_check_the_path(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save({"emb.user.weight": torch.randn(8, 4)}, tmp_path / "sd.pt")
    (tmp_path / "counts.txt").write_text("1 2 3\n")
    code, cap = run_cli(["export", str(tmp_path / "sd.pt"), "--fmt", "fp32", "--out-dir", str(tmp_path / "t"),
                         "--frequencies", f"emb.user={tmp_path / 'counts.txt'}"], capsys)
    assert code == 1
    assert "is not one. Save the counts with np.save('counts.npy', counts)" in cap.err
    assert "Check the path" not in cap.err
    code, cap = run_cli(["export", str(tmp_path / "sd.pt"), "--fmt", "fp32", "--out-dir", str(tmp_path / "t"),
                         "--frequencies", f"emb.user={tmp_path / 'missing.npy'}"], capsys)
    assert code == 1 and "Check the path" in cap.err  # a missing file still says so


@pytest.mark.parametrize("master", ["local[x]", "lcoal[2]", "sc:/host:15002"])
def test_mine_refuses_a_malformed_spark_master_in_one_line(tmp_path, capsys, master):
    # Spark's refusal of 'local[x]' reached the error line as a twenty-line Java stack trace (and
    # said to install Java 17, which was there)
    log = tmp_path / "log.csv"
    log.write_text("a,label\n1,0\n2,1\n")
    (tmp_path / "out").mkdir()
    code, cap = run_cli(["mine", str(log), "--features", "a", "--engine", "spark", "--spark-master", master,
                         "--out", str(tmp_path / "out" / "s.stats")], capsys)
    assert code == 1
    assert cap.err.count("\n") == 1 and cap.err.startswith("error: The 'spark_master' parameter of mine must be a Spark master URL")
    assert cap.err.rstrip().endswith("(on the command line: --spark-master)")
    assert repr(master) in cap.err and "Traceback" not in cap.err and not (tmp_path / "out" / "s.stats").exists()


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*]", "local[4,2]", "spark://h:7077",
                                    "sc://127.0.0.1:15002", "yarn", "k8s://https://h:6443"])
def test_spark_master_forms_spark_takes_pass_the_check(master):
    from embcompress.cli.mine import _MASTER

    assert _MASTER.match(master)
