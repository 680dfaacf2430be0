"""The notebooks in examples/ run top to bottom on small data (EMBCOMPRESS_NOTEBOOK_SMALL=1).

Each runs in a fresh kernel of this interpreter (the "python3" kernelspec, which jupyter_client
resolves to ``sys.executable``), from the examples folder as a user would open it, with the
repository on PYTHONPATH so the packages import from this tree.
"""

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("[0-9][0-9]_*.ipynb"))
TIMEOUT = 600  # per cell; a generous bound so a loaded machine does not fail the run (small runs take well under a minute)


def test_four_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_fit_hash_from_logs.ipynb",
        "02_export_and_serve.ipynb",
        "03_collision_impact.ipynb",
        "04_format_explorer.ipynb",
    ]


def test_kernel_is_this_interpreter():
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    assert km.format_kernel_cmd()[0] == sys.executable


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []) and "EMBCOMPRESS_NOTEBOOK_SMALL" in first.source
    monkeypatch.setenv("EMBCOMPRESS_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' scratch folders go here
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT,
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # every notebook draws at least one plot
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
