"""Review tests (a newcomer's walk through the README): README blocks run exactly as written.
(Not named test_review_user11.py: tests/unit/embcompress has that name, and test folders are no
packages, so one pytest run cannot import both.)

Each test takes a block's text from README.md itself, defines only the names the README's prose
says the block leaves to the reader, and runs it.
"""

import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import DATA, ROOT, data_path

README = (ROOT / "README.md").read_text()


def _block(section: str, lang: str, containing: str) -> str:
    """The ```lang block of README section ``## section`` that contains ``containing``."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in re.findall(rf"```{lang}\n(.*?)```", body, re.S) if containing in b]
    assert len(blocks) == 1, f"{len(blocks)} {lang} blocks of '{section}' hold {containing!r}"
    return blocks[0]


def test_serving_block_runs_as_written(tmp_path, monkeypatch):
    # The block passed NumPy offsets to MXEmbeddingBag, which takes tensors: it stopped at
    # "The 'offsets' parameter of MXEmbeddingBag.forward must be a torch.Tensor".
    torch = pytest.importorskip("torch")
    import embcompress

    code = _block("Serving", "python", "MXEmbeddingBag.from_file")
    rng = np.random.default_rng(0)
    idmap = embcompress.IdMap.from_arrays(np.arange(0, 400, 2), np.arange(200) // 2, 100)  # two raw ids a row

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.ModuleDict({"user": torch.nn.EmbeddingBag(idmap.n_rows, 16, mode="sum")})

    names = {  # what the prose before the block says each name is
        "idmap": idmap, "weights": rng.standard_normal((idmap.n_rows, 16)).astype(np.float32),
        "counts": rng.integers(0, 100, idmap.n_rows), "rows": np.array([1, 5, 7, 9, 3]),
        "offsets": np.array([0, 2]), "raw_ids": np.array([0, 10, 14, 398, 12345]), "model": Model(),
    }
    for name in names:
        assert f"`{name}`" in README.split("\n## Serving\n", 1)[1].split("```", 1)[0], name
    monkeypatch.chdir(tmp_path)
    exec(code, names)
    bag, y, out = names["bag"], names["y"], names["out"]
    ref = torch.nn.EmbeddingBag.from_pretrained(torch.as_tensor(embcompress.dequantize(names["q"])), mode="sum")
    assert torch.equal(y, ref(torch.as_tensor(idmap.lookup(names["raw_ids"])), torch.tensor([0, 2])))
    assert out.shape == (2, 16) and bag.mode == "sum"
    assert (tmp_path / "tables" / "emb.user.embc").is_file() and (tmp_path / "big.embc").is_file()


def test_frappe_mine_command_runs_as_written(tmp_path):
    pytest.importorskip("duckdb")
    data_path("frappe")
    cmd = _block("Mining logs", "bash", "frappe/*.libfm").replace("\\\n", " ")
    argv = shlex.split(cmd)
    assert argv[0] == "embcompress"
    # the README's paths are relative to the clone, with ../shared/data beside it
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(DATA.resolve())
    (tmp_path / "clone" / "out").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "embcompress", *argv[1:], "--quiet"], cwd=tmp_path / "clone",
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "86,582 rows mined on duckdb -> out/frappe.stats" in proc.stdout  # both Frappe files, no README.txt


def test_the_jobs_paragraph_names_sections_that_exist():
    # a newcomer had to read ~1,100 lines to find where each of the four jobs is done
    para = README.split("## Quickstart\n", 1)[1].split("\n## ", 1)[0].split("On your own data, one section per job:", 1)[1]
    para = " ".join(para.split())
    named = re.findall(r'"([A-Z][^"]+)"', para)
    headings = set(re.findall(r"^## (.+)$", README, re.M))
    assert len(named) >= 5 and set(named) <= headings, set(named) - headings
    for verb in ("mine", "fit-hash", "export", "evaluate"):
        assert f"`embcompress {verb}`" in para or f"`{verb}`" in para, verb
