"""String ids stored as text in some Parquet parts and as BINARY in others (schema drift): every
engine hashes each value's bytes (a text's UTF-8), as the readers do. DuckDB read the bytes of a
part after a text part as escaped text, other ids."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from learned_hash import mine, read_log
from tests.conftest import need_spark

TEXT = pa.array(["a", "b\\x", "é", None, ""], pa.string())
BYTES = pa.array([b"a", b"\xff", "é".encode(), None, b"\\x00"], pa.binary())


def _parts(folder, first_text: bool, listed: bool):
    folder.mkdir()
    parts = [TEXT, BYTES] if first_text else [BYTES, TEXT]
    for k, arr in enumerate(parts):
        lists = [[v] + ([v] if i % 2 else []) for i, v in enumerate(arr.to_pylist())]
        col = pa.array(lists, pa.list_(arr.type)) if listed else arr
        pq.write_table(pa.table({"u": np.arange(len(arr)) + 10 * k, "c": col}), folder / f"p{k}.parquet")
    return folder


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def test_text_and_bytes_parts_hash_alike_on_every_engine(tmp_path, engine):
    if engine == "spark":
        need_spark()
    for first_text in (True, False):
        single = _parts(tmp_path / f"single{first_text}", first_text, listed=False)
        want = mine(single / "p0.parquet", features=["c"])  # (one part: no drift)
        reader = np.sort(read_log(single, features=["c"])["c"])
        got = mine(single, features=["c", "u"], pairs=["c:u"], engine=engine)
        ids, n = got.frequencies("c")
        assert np.array_equal(np.sort(np.repeat(ids, n)), reader), first_text
        assert set(want.frequencies("c")[0].tolist()) <= set(ids.tolist())
        listed = _parts(tmp_path / f"listed{first_text}", first_text, listed=True)
        got_l = mine(listed, features=["c", "u"], pairs=["c:u", "c:c"], engine=engine)
        ids_l, n_l = got_l.frequencies("c")
        # each list holds its row's value once or twice: the same ids as the single values'
        assert set(ids_l.tolist()) == set(ids.tolist()) and n_l.sum() > n.sum()
        assert got_l == mine(listed, features=["c", "u"], pairs=["c:u", "c:c"], engine="duckdb")
