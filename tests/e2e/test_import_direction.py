"""The package direction of DESIGN.md: embcompress (the serving core) stands alone.

A subprocess hides learned_hash and analysis (and the heavy optional dependencies), imports
embcompress and opens every artifact kind the other packages write.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import embcompress
from embcompress.idmap import IdMap
from learned_hash.mining.stats import LogStats
from tests.conftest import hide_modules

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = hide_modules("learned_hash", "analysis", "torch", "typer", "duckdb", "faiss", "pyarrow",
                       "matplotlib", "pyspark", "pandas", "scipy")


def test_serving_core_opens_every_artifact_without_siblings(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 40)).astype(np.float32)
    q = embcompress.quantize(x, "mxfp4_e2m1")
    idmap = IdMap.from_arrays(np.array([7, 11, 13]), np.array([0, 1, 2]), 50)
    embcompress.write_table(tmp_path / "t.embc", q, id_map=idmap, frequencies=np.arange(50))
    idmap.save(tmp_path / "m.embc")
    LogStats.from_rows({"f": np.array([1, 1, 2])}, features=["f"]).save(tmp_path / "s.embc")
    expected = embcompress.pooled_lookup(q, np.array([3, 4, 5]), np.array([0, 1])).tolist()

    script = BLOCKER + textwrap.dedent(
        f"""
        import json
        import numpy as np
        import embcompress
        from embcompress.idmap import IdMap
        t = embcompress.open_table({str(tmp_path / "t.embc")!r}, verify="full")
        m = IdMap.load({str(tmp_path / "m.embc")!r}, verify="full")
        s = embcompress.read_artifact({str(tmp_path / "s.embc")!r}, verify="full")
        out = embcompress.pooled_lookup(t, np.array([3, 4, 5]), np.array([0, 1]))
        heavy = sorted(k for k in sys.modules if k.split(".")[0] in HIDDEN)
        print(json.dumps({{"out": out.tolist(), "rows": m.lookup(np.array([11])).tolist(),
                           "kind": s.kind, "heavy": heavy}}))
        """
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert got["out"] == expected
    assert got["rows"] == [1]
    assert got["kind"] == "logstats"


def test_submodules_are_attributes_of_the_package():
    script = BLOCKER + textwrap.dedent(
        """
        import embcompress
        assert embcompress.formats.FORMATS["mxfp4_e2m1"].row_bytes(64) == 2 + 32
        assert embcompress.store.TieredStore is embcompress.TieredStore
        assert not [k for k in sys.modules if k.split(".")[0] in HIDDEN]
        """
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
