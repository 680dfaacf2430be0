"""A model over MXEmbeddingBag modules compiled ahead of time by AOTInductor (torch's packaged CPU
deployment) runs in a fresh process that imported embcompress.nn, and gives the eager outputs."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import embcompress
from embcompress.idmap import IdMap
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection

ROOT = Path(__file__).resolve().parents[2]


class Ranker(torch.nn.Module):
    """Two features (one through an id map, one through a table file), pooled in one collection
    call, then a linear layer: the shape of a small click model's serving graph."""

    def __init__(self, col):
        super().__init__()
        self.col = col
        self.top = torch.nn.Linear(32, 1)

    def forward(self, user, user_offsets, item, item_offsets):
        out = self.col({"user": (user, user_offsets), "item": (item, item_offsets)})
        pooled = torch.cat([out["user"], out["item"]], dim=1)
        return pooled, torch.sigmoid(self.top(pooled))


def ranker(tmp_path):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    ids = rng.choice(10**12, 80, replace=False).astype(np.int64)
    idm = IdMap.from_arrays(ids, rng.integers(0, 50, ids.size), 50)
    path = embcompress.write_table(tmp_path / "item.embc", embcompress.quantize(-x, "mxfp4_e2m1"))
    col = MXEmbeddingBagCollection({
        "user": MXEmbeddingBag(embcompress.quantize(x, "mxint8"), id_map=idm, mode="sum"),
        "item": MXEmbeddingBag.from_file(path, mode="mean"),
    })
    torch.manual_seed(12)
    user = torch.from_numpy(np.concatenate([ids[:20], [-5, 2**62]]))
    inputs = (user, torch.tensor([0, 4, 4, 15]), torch.randint(0, 50, (12,)), torch.tensor([0, 3, 9, 9]))
    return Ranker(col).eval(), inputs


# (torch's own packaging code, not ours, warns of its deprecated LeafSpec check)
@pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning")
def test_an_aoti_package_runs_in_a_new_process(tmp_path):
    inductor = pytest.importorskip("torch._inductor")
    model, inputs = ranker(tmp_path)
    with torch.no_grad():
        expected = model(*inputs)
    package = inductor.aoti_compile_and_package(torch.export.export(model, inputs),
                                                package_path=str(tmp_path / "ranker.pt2"))
    torch.save(inputs, tmp_path / "inputs.pt")
    code = (
        "import sys, numpy as np, torch\n"
        "if sys.argv[1] == 'import': import embcompress.nn  # registers the embcompress:: ops\n"
        f"inputs = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
        f"run = torch._inductor.aoti_load_package({package!r})\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, *[t.numpy() for t in run(*inputs)])\n"
    )
    run = [sys.executable, "-c", code]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*run, "import"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as out:
        pooled, score = (torch.from_numpy(out[k]) for k in ("arr_0", "arr_1"))
    assert torch.equal(pooled, expected[0])  # the embcompress ops: the same bits
    assert torch.allclose(score, expected[1], rtol=1e-5, atol=1e-6)  # (inductor's own linear rounds its own way)
    # without the import the ops are unknown, and torch says which
    bare = subprocess.run([*run, "bare"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bare.returncode != 0 and "embcompress::" in bare.stderr
