"""A newcomer's walk through README.md: what it says about the command line, checked.

Each test names the README section it checks. When one fails, the README and the CLI disagree:
make them agree again (fix the code, or the sentence).
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import embcompress
from tests.conftest import ROOT

pytest.importorskip("typer")

README = (ROOT / "README.md").read_text()


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "embcompress", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match is not None, f"README has no '## {title}' section"
    return match.group(1)


def _verbs() -> dict:
    import typer

    from embcompress.cli.main import app

    return typer.main.get_command(app).commands


# --- Command line --------------------------------------------------------------------------------

def test_command_line_section_names_every_verb():
    text = _section("Command line")
    assert [v for v in _verbs() if f"`{v}`" not in text] == []


def test_every_flag_of_every_verb_is_in_the_readme():
    """`embcompress <verb> --help` and the README name the same flags (the README may group them)."""
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", README))
    missing = {name: [o for p in cmd.params for o in p.opts if o.startswith("--") and o not in mentioned and o != "--help"]
               for name, cmd in _verbs().items()}
    assert not any(missing.values()), missing
    flags = {o for cmd in _verbs().values() for p in cmd.params for o in p.opts} | {"--debug", "--help"}
    others = {"--index-url", "--no-build-isolation"}  # pip's, in the Quickstart's notes on torch's CPU build and portable wheels
    assert mentioned <= flags | others, sorted(mentioned - flags - others)  # and the README names no flag the CLI lacks


@pytest.mark.parametrize("verb", ["mine", "fit-hash", "export", "inspect", "verify", "evaluate", "demo"])
def test_help_of_each_verb(verb, tmp_path):
    proc = _cli(verb, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_exit_codes_and_debug_as_the_command_line_section_says(tmp_path):
    q = embcompress.quantize(np.ones((1000, 32), np.float32), "mxint8")
    embcompress.write_table(tmp_path / "t.embc", q)
    assert _cli("verify", "t.embc", cwd=tmp_path).returncode == 0
    missing = _cli("verify", "none.embc", cwd=tmp_path)  # bad input, a missing file included: 1
    assert missing.returncode == 1 and missing.stderr.startswith("error: ") and len(missing.stderr.splitlines()) == 1
    data = (tmp_path / "t.embc").read_bytes()
    (tmp_path / "cut.embc").write_bytes(data[: len(data) // 2])
    (tmp_path / "foreign.embc").write_bytes(b"not an artifact, but long enough for the prefix\n")
    for damaged in ("cut.embc", "foreign.embc"):  # damaged, truncated or foreign: 3
        assert _cli("verify", damaged, cwd=tmp_path).returncode == 3, damaged
    usage = [("verify", "t.embc", "--no-such-flag"), ("no-such-verb",), ("export", "m.pt", "--out-dir", "o"),
             ("mine", "log.csv", "--features", "a", "--out", "s.stats", "--min-count", "two")]
    for args in usage:  # unknown verb or flag, required flag missing, a value not of the flag's type: 2
        assert _cli(*args, cwd=tmp_path).returncode == 2, args
    debug = _cli("--debug", "verify", "none.embc", cwd=tmp_path)  # --debug before the verb adds the traceback
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "error: " in debug.stderr
    assert _cli("verify", "none.embc", "--debug", cwd=tmp_path).returncode == 2  # not after it


# --- The main job --------------------------------------------------------------------------------

def test_demo_quick_on_a_real_log_only_caps_its_rows():
    """README: `--quick` is seconds on the synthetic log; a real log is only cut to 20,000 rows."""
    from analysis.pipeline import DemoSettings

    assert "`--quick` (tiny sizes, seconds on the synthetic log; a real log is only\ncut to its first 20,000 rows" in README
    assert DemoSettings.default(True, real=True).n_rows == 20_000
    assert DemoSettings.default(True).n_rows < DemoSettings.default(True, real=True).n_rows


# --- Mining logs ---------------------------------------------------------------------------------

def _criteo_log(path, n=400, seed=0):
    """A Criteo TSV (label, I1..I13, C1..C26, no header) whose C3 ids repeat."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        cats = [f"{rng.integers(0, 2**32):08x}" for _ in range(26)]
        cats[2] = f"{0x1000 + rng.zipf(1.5) % 50:08x}"
        lines.append("\t".join([str(int(rng.random() < 0.3)), *map(str, rng.integers(0, 9, 13)), *cats]))
    path.write_text("\n".join(lines) + "\n")


def test_mine_lines_count_after_min_count_pruning(tmp_path):
    """README: the per-feature line counts what is kept; with --min-count 2 it says so instead of
    '0.0% of ids seen once' (none is left to count)."""
    pytest.importorskip("duckdb")
    _criteo_log(tmp_path / "day_0.txt")
    lines = {}
    for min_count in ("1", "2"):
        proc = _cli("mine", "day_0.txt", "--format", "criteo", "--features", "C3", "--min-count", min_count,
                    "--out", f"m{min_count}.stats", "--quiet", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        lines[min_count] = proc.stdout.splitlines()[0]
    assert not lines["1"].endswith(" 0.0% of ids seen once")  # the log has ids seen once...
    assert " ids seen 2+ times kept, " in lines["2"] and lines["2"].endswith(" of their accesses (rarer ids pruned "
                                                                             "by --min-count)")


# --- Formats -------------------------------------------------------------------------------------

def test_quantize_names_the_conversion_the_readme_lists():
    """README, Formats: float64 is refused naming x.astype (an array), x.float() (a tensor), np.asarray (a list)."""
    cases = [(np.ones((2, 32)), "x.astype(np.float32)"), ([[0.5] * 32] * 2, "np.asarray(x, dtype=np.float32)")]
    torch = pytest.importorskip("torch")
    cases.append((torch.ones(2, 32, dtype=torch.float64), "x.float()"))
    for x, fix in cases:
        assert f"`{fix}`" in _section("Formats"), fix
        with pytest.raises(embcompress.ConfigError, match=re.escape(fix)):
            embcompress.quantize(x, "mxint8")


# --- Serving -------------------------------------------------------------------------------------

def test_pooled_lookup_sums_by_default(tmp_path):
    """README: pooled_lookup's mode defaults to sum (torch's embedding_bag to mean)."""
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((1000, 32)).astype(np.float32), "mxint8")
    embcompress.write_table(tmp_path / "t.embc", q)
    t = embcompress.open_table(tmp_path / "t.embc")
    idx, offsets = np.array([1, 2, 3, 4]), np.array([0, 3])
    assert np.array_equal(embcompress.pooled_lookup(t, idx, offsets), embcompress.pooled_lookup(t, idx, offsets, mode="sum"))
    with embcompress.TieredStore(tmp_path / "t.embc", dram_bytes=4096, policy="lru") as store:
        store.warm_up()
        assert np.array_equal(store.pooled_lookup(idx, offsets), embcompress.pooled_lookup(t, idx, offsets, mode="sum"))


def test_export_table_block_size_and_scale_mode_flags(tmp_path):
    """README, Serving: `export --table NAME` (only those), `--block-size`, `--scale-mode mse`."""
    torch = pytest.importorskip("torch")
    torch.save({"emb.user.weight": torch.randn(40, 64), "emb.item.weight": torch.randn(30, 64)}, tmp_path / "m.pt")
    proc = _cli("export", "m.pt", "--fmt", "mxint8", "--out-dir", "tables", "--table", "emb.item",
                "--block-size", "16", "--scale-mode", "mse", "--mode", "sum", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["emb.item.embc", "export.json"]
    t = embcompress.open_table(tmp_path / "tables" / "emb.item.embc", verify="full")
    assert (t.fmt, t.table.block_size, t.table.scale_mode) == ("mxint8", 16, "mse")


def test_exported_padding_idx_is_left_out_as_the_readme_says(tmp_path):
    """README, torch module and Export: a bag's padding_idx is recorded and from_file leaves it out."""
    torch = pytest.importorskip("torch")
    from embcompress.nn import MXEmbeddingBag

    assert "served bags pool the padding" not in README and "`padding_idx` or `max_norm`" not in README
    emb = torch.nn.EmbeddingBag(50, 32, mode="mean", padding_idx=0)
    with torch.no_grad():
        emb.weight[0] = 1.0  # a non-zero padding row: pooling it would change every mean
    embcompress.export({"emb.user.weight": emb.weight.detach()}, fmt="fp32", out_dir=tmp_path, mode="mean")
    plain = MXEmbeddingBag.from_file(tmp_path / "emb.user.embc")  # a state dict does not record padding_idx
    model = type("M", (torch.nn.Module,), {})()
    model.emb = emb
    embcompress.export(model, fmt="fp32", out_dir=tmp_path / "m")
    bag = MXEmbeddingBag.from_file(tmp_path / "m" / "emb.embc")
    ids, offsets = torch.tensor([0, 3, 4, 0, 0, 7]), torch.tensor([0, 3, 5])
    assert torch.equal(bag(ids, offsets), emb(ids, offsets))
    assert not torch.equal(plain(ids, offsets), emb(ids, offsets))


# --- Evaluating collision impact -----------------------------------------------------------------

def test_evaluate_synthetic_tiny_as_written(tmp_path):
    """README: `embcompress evaluate examples/sweeps/synthetic_tiny.json --out tiny`, no data needed."""
    pytest.importorskip("torch")
    proc = _cli("evaluate", str(ROOT / "examples" / "sweeps" / "synthetic_tiny.json"), "--out", "tiny", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "tiny"
    assert sorted(p.name for p in out.iterdir()) == ["pareto.png", "report.html", "report.md", "results.json"]
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["runs"]} >= {"full", "hash", "frequency", "qr", "learned", "learned_trained"}
