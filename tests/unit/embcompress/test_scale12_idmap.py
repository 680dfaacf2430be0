"""A table file's id map is mapped at open, not rebuilt from its ids.

open_table built the map again from the file's ids, rows and cold rows at every open
(IdMap.from_arrays: a sort and a hash-table build): 15 s and 1.1 GB for a table with 10M mapped
ids, so a header open was anything but instant. The file now also holds the map as it serves
(IdMap.parts), which open_table maps; earlier files are built as before."""

import numpy as np
import pytest

import embcompress
from embcompress import ArtifactError, IdMap, open_table, write_table
from embcompress.container import read_artifact, write_artifact
from embcompress.formats import quantize
from embcompress.store import TieredStore, reorder_rows

N = 3000


def _map(seed=0, n_ids=2000, spread=2**40):
    rng = np.random.default_rng(seed)
    ids = rng.choice(spread, n_ids, replace=False).astype(np.int64)
    rows = rng.integers(0, N, n_ids)
    return IdMap.from_arrays(ids, rows, N, seed=seed + 7, config={"k": 1}, inputs={"log": "x"}, meta={"m": 2}), ids


def _probe(ids, seed=1):
    return np.concatenate([ids, np.random.default_rng(seed).integers(-(2**62), 2**62, 500)])  # hits and misses


def _no_rebuild(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the id map was built again from its ids")
    monkeypatch.setattr(IdMap, "from_arrays", classmethod(lambda cls, *a, **k: refuse()))
    monkeypatch.setattr(embcompress.idmap, "_build_hash", refuse)


@pytest.mark.parametrize("spread", [2**40, 5000])  # a hash table; a direct array
@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("verify", ["header", "full"])
def test_scale12_open_maps_the_id_map_without_building_it(tmp_path, monkeypatch, spread, mmap, verify):
    m, ids = _map(spread=spread)
    q = quantize(np.random.default_rng(0).standard_normal((N, 32)).astype(np.float32), "mxint8")
    path = write_table(tmp_path / "t.embc", q, id_map=m)
    _no_rebuild(monkeypatch)
    t = open_table(path, mmap=mmap, verify=verify)
    probe = _probe(ids)
    assert np.array_equal(t.id_map.lookup(probe), m.lookup(probe))
    assert (t.id_map.seed, t.id_map.config, t.id_map.inputs, t.id_map.meta) == (m.seed, m.config, m.inputs, m.meta)
    assert t.id_map.layout == m.layout and np.array_equal(t.id_map.fallback_rows, m.fallback_rows)


def test_scale12_a_map_that_disagrees_with_the_stored_ids_fails_a_full_verify(tmp_path):
    # Checksums cannot tell: the parts of another map written with valid ones.
    m, _ = _map()
    other, _ = _map(seed=5)
    q = quantize(np.zeros((N, 32), np.float32), "mxint8")
    path = write_table(tmp_path / "t.embc", q, id_map=m)
    art = read_artifact(path)
    sections = {name: art.array(name) for name in art.section_names}
    parts = other.parts()
    sections.update({"idmap.keys": parts["keys"], "idmap.vals": parts["vals"], "idmap.fallback": parts["fallback"]})
    meta = art.meta
    meta["table_file"]["id_map"]["parts"] = [int(v) for v in parts["params"]]
    meta["table_file"]["id_map"]["seed"] = other.seed
    write_artifact(tmp_path / "bad.embc", "table", sections, config=art.config, meta=meta, align=4096)
    with pytest.raises(ArtifactError, match="inconsistent"):
        open_table(tmp_path / "bad.embc", verify="full")


def test_scale12_reordered_file_maps_ids_to_the_new_positions(tmp_path, monkeypatch):
    m, ids = _map()
    q = quantize(np.random.default_rng(0).standard_normal((N, 32)).astype(np.float32), "mxint8")
    path = write_table(tmp_path / "t.embc", q, id_map=m)
    layout = reorder_rows(path, tmp_path / "r.embc", clusters=np.random.default_rng(3).integers(0, 40, N))
    probe = _probe(ids)
    with monkeypatch.context() as mp:
        _no_rebuild(mp)
        t = open_table(layout.path, verify="full")
        assert np.array_equal(t.id_map.lookup(probe), layout.new_row[m.lookup(probe)])
    with TieredStore(layout.path, dram_bytes=10 * q.row_bytes, policy="lru") as s:  # original row numbers
        assert np.array_equal(s.id_map.lookup(probe), m.lookup(probe))
        assert np.array_equal(s.rows(s.id_map.lookup(probe)), q.data[m.lookup(probe)])


def test_scale12_earlier_files_are_built_from_their_ids(tmp_path):
    # A file without the parts (written before them) opens as it did.
    m, ids = _map()
    q = quantize(np.zeros((N, 32), np.float32), "mxint8")
    path = write_table(tmp_path / "t.embc", q, id_map=m)
    art = read_artifact(path)
    sections = {n: art.array(n) for n in art.section_names if n not in ("idmap.keys", "idmap.vals", "idmap.fallback")}
    meta = art.meta
    del meta["table_file"]["id_map"]["parts"]
    write_artifact(tmp_path / "old.embc", "table", sections, config=art.config, meta=meta, align=4096)
    t = open_table(tmp_path / "old.embc", verify="full")
    assert np.array_equal(t.id_map.lookup(_probe(ids)), m.lookup(_probe(ids)))
