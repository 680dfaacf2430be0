import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embcompress.container import read_artifact, write_artifact
from embcompress.errors import ArtifactError, ChecksumError, ConfigError
from embcompress.idmap import IdMap, _lookup_numpy, mix64, row_dtype
from embcompress.kernels import compiled
from tests.conftest import hide_modules

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(params=["cython", "numpy"])
def kernels(request, monkeypatch):
    if request.param == "cython" and compiled("_idmap") is None:
        pytest.skip("compiled kernels not built")
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", request.param)
    return request.param


def _sparse_map(seed=0, n=5000, n_rows=3000):
    rng = np.random.default_rng(seed)
    ids = rng.choice(2**50, n, replace=False).astype(np.int64) - 2**49
    rows = rng.integers(0, n_rows, n)
    return ids, rows, IdMap.from_arrays(ids, rows, n_rows, seed=seed)


def test_mix64_golden():
    # splitmix64 with seed 0 is the reference splitmix64 generator started at state 0: its first
    # output (state += golden ratio, then the finalizer) is 0xE220A8397B1DCDAF.
    assert int(mix64(np.array([0]), 0)[0]) == 0xE220A8397B1DCDAF
    # seed s shifts the state by (s + 1) golden ratios: seed 1 at id 0 is the generator's 2nd output
    assert int(mix64(np.array([0]), 1)[0]) == 0x6E789E6AA1B965F4


def test_row_dtype_is_narrowest_with_room_for_the_empty_marker():
    assert row_dtype(255) == np.uint8 and row_dtype(256) == np.uint16
    assert row_dtype(65535) == np.uint16 and row_dtype(65536) == np.uint32


def test_hash_layout_finds_every_id_and_hashes_the_rest(kernels):
    ids, rows, m = _sparse_map()
    assert m.layout == "hash" and m.row_dtype == np.uint16
    np.testing.assert_array_equal(m.lookup(ids), rows)
    np.testing.assert_array_equal(m.ids, np.sort(ids))
    unseen = np.arange(-1000, 1000)
    got = m.lookup(unseen)
    assert got.min() >= 0 and got.max() < m.n_rows
    assert np.isin(got, m.fallback_rows).all()
    np.testing.assert_array_equal(got, m.fallback_rows[mix64(unseen, m.seed) % np.uint64(m.fallback_rows.size)])


def test_compiled_and_numpy_agree_bit_for_bit(monkeypatch):
    if compiled("_idmap") is None:
        pytest.skip("compiled kernels not built")
    rng = np.random.default_rng(1)
    ids, rows, m = _sparse_map(1)
    dense = IdMap.from_arrays(np.arange(-50, 400), rng.integers(0, 300, 450), 300, fallback_rows=rng.permutation(300)[:77], seed=9)
    queries = np.concatenate([ids, rng.integers(-(2**63), 2**63 - 1, 20000), np.array([-(2**63), 2**63 - 1, 0, -51, 400])])
    for idmap in (m, dense, IdMap.from_arrays([], [], 17, seed=5)):
        out_c = idmap.lookup(queries, n_threads=2)
        monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
        out_n = idmap.lookup(queries)
        monkeypatch.delenv("EMBCOMPRESS_KERNELS")
        np.testing.assert_array_equal(out_c, out_n)
        # and the twin called directly
        buf = np.empty_like(out_n)
        _lookup_numpy(queries, idmap._keys, idmap._vals, idmap._base, idmap.seed, idmap._fallback, idmap._fb_start, idmap._fb_count, buf)
        np.testing.assert_array_equal(buf, out_c)


def test_dense_ids_use_a_direct_array(kernels):
    ids = np.arange(1000, 3000)
    rows = ids % 200
    m = IdMap.from_arrays(ids, rows, 250)
    assert m.layout == "direct" and m.nbytes == 2000 + 0  # uint8 rows, fallback a range
    np.testing.assert_array_equal(m.lookup(ids), rows)
    # every row of 0..199 holds 10 ids, so none is hot: the fallback is all 250 rows
    np.testing.assert_array_equal(m.fallback_rows, np.arange(250))
    out = m.lookup(np.array([999, 3000, -(2**63)]))
    assert ((out >= 0) & (out < 250)).all()


def test_default_fallback_is_every_row_not_owned_by_a_hot_id(kernels):
    # ids 0..9 alone on rows 0..9 (hot); ids 10..29 share rows 10..13; rows 14..19 unused
    ids = np.arange(30)
    rows = np.concatenate([np.arange(10), 10 + np.arange(20) % 4])
    m = IdMap.from_arrays(ids, rows, 20)
    np.testing.assert_array_equal(m.fallback_rows, np.arange(10, 20))
    assert m.hot_rows == 10
    got = m.lookup(np.arange(10**6, 10**6 + 5000))
    assert set(np.unique(got)) == set(range(10, 20))  # spread over all cold rows, not one default
    # every row owned by one id: the fallback falls back to all rows
    m2 = IdMap.from_arrays(np.arange(5), np.arange(5), 5)
    np.testing.assert_array_equal(m2.fallback_rows, np.arange(5))


def test_explicit_fallback_rows_and_lookup_shapes(kernels):
    m = IdMap.from_arrays([5, 7], [0, 1], 10, fallback_rows=[9, 3, 4], seed=2)
    np.testing.assert_array_equal(m.fallback_rows, [9, 3, 4])
    q = np.array([[5, 7, 100], [101, 102, 103]])
    got = m.lookup(q)
    assert got.shape == (2, 3) and got[0, 0] == 0 and got[0, 1] == 1
    assert np.isin(got.ravel()[2:], [9, 3, 4]).all()
    out = np.empty((2, 3), dtype=np.int64)
    assert m.lookup(q, out=out) is out
    np.testing.assert_array_equal(out, got)
    np.testing.assert_array_equal(m(np.uint64([5, 7])), [0, 1])
    assert m.lookup(np.array([], dtype=np.int64)).shape == (0,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ids=[1, 2], rows=[0], n_rows=4), "same length"),
        (dict(ids=[1, 2], rows=[0, 4], n_rows=4), "'rows' parameter of IdMap.from_arrays must lie in"),
        (dict(ids=[1, 2], rows=[0, -1], n_rows=4), "Got 'row -1'"),
        (dict(ids=[1, 1], rows=[0, 1], n_rows=4), "hold each id once"),
        (dict(ids=[1], rows=[0], n_rows=0), "'n_rows' parameter of IdMap.from_arrays must be a positive int"),
        (dict(ids=[1.5], rows=[0], n_rows=4), "integers"),
        (dict(ids=[1], rows=[0], n_rows=4, fallback_rows=[]), "at least one row"),
        (dict(ids=[1], rows=[0], n_rows=4, fallback_rows=[4]), "'fallback_rows'"),
        (dict(ids=[1], rows=[0], n_rows=4, fallback_rows=[2, 2]), "each row once"),
        (dict(ids=[1], rows=[0], n_rows=4, seed=-1), "'seed'"),
    ],
)
def test_validation_errors_follow_the_grammar(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        IdMap.from_arrays(**kwargs)


def test_lookup_validates_its_inputs():
    m = IdMap.from_arrays([1], [0], 4)
    with pytest.raises(ConfigError, match="'ids' parameter of IdMap.lookup"):
        m.lookup(np.array([1.0]))
    with pytest.raises(ConfigError, match="'out' parameter"):
        m.lookup(np.array([1, 2]), out=np.empty(3, dtype=np.int64))
    with pytest.raises(ConfigError, match="n_threads"):
        m.lookup(np.array([1]), n_threads=0)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, mmap, kernels):
    ids, rows, m = _sparse_map(3)
    m.meta["note"] = "x"
    path = m.save(tmp_path / "a.idmap")
    art = read_artifact(path, kind="idmap")
    assert art.config["seed"] == 3 and art.config["hash"] == "splitmix64" and art.meta == {"note": "x"}
    back = IdMap.load(path, verify="full", mmap=mmap)
    assert back.n_rows == m.n_rows and back.seed == m.seed and back.nbytes == m.nbytes
    q = np.concatenate([ids, np.arange(-500, 500)])
    np.testing.assert_array_equal(back.lookup(q), m.lookup(q))
    np.testing.assert_array_equal(back.fallback_rows, m.fallback_rows)


def test_load_refuses_corrupt_and_inconsistent_files(tmp_path):
    ids, rows, m = _sparse_map(4, n=100, n_rows=50)
    path = m.save(tmp_path / "a.idmap")
    data = bytearray(path.read_bytes())
    sec = read_artifact(path).section("vals")
    data[sec.offset] ^= 0xFF
    bad = tmp_path / "bad.idmap"
    bad.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        IdMap.load(bad, verify="full")
    # a well-formed container whose rows exceed n_rows
    art = read_artifact(path)
    vals = art.array("vals").copy()
    vals[vals != np.iinfo(vals.dtype).max] = 60
    write_artifact(tmp_path / "c.idmap", "idmap", {"keys": art.array("keys"), "vals": vals, "fallback": art.array("fallback")},
                   config=art.config)
    with pytest.raises(ArtifactError, match="outside"):
        IdMap.load(tmp_path / "c.idmap")
    # a table with no empty slot would make a miss probe forever: refused on open
    full = {"keys": np.arange(8, dtype=np.int64), "vals": np.zeros(8, dtype=vals.dtype), "fallback": art.array("fallback")}
    write_artifact(tmp_path / "e.idmap", "idmap", full, config=art.config)
    with pytest.raises(ArtifactError, match="capacity"):
        IdMap.load(tmp_path / "e.idmap")
    write_artifact(tmp_path / "d.idmap", "table", {"x": np.zeros(1)})
    with pytest.raises(ArtifactError, match=r"not an id map \(kind 'idmap'\)"):
        IdMap.load(tmp_path / "d.idmap")


def test_memory_is_counted_and_compact():
    ids, rows, m = _sparse_map(5, n=7000, n_rows=65536)
    cap = 9334  # ceil(7000 / 0.75): the load stays at most 0.75
    # int64 keys + uint32 rows (65536 rows need the empty marker too) + the scattered cold rows
    assert m.nbytes == cap * (8 + 4) + m.fallback_rows.size * 4
    ranged = IdMap.from_arrays(ids, rows, 65536, fallback_rows=np.arange(100, 65536))
    assert ranged.nbytes == cap * (8 + 4)  # a contiguous fallback range costs no array
    assert IdMap.from_arrays([], [], 1000).nbytes == 0


def test_file_opens_with_only_embcompress(tmp_path):
    ids, rows, m = _sparse_map(6, n=300, n_rows=100)
    path = m.save(tmp_path / "m.idmap")
    code = hide_modules("learned_hash", "analysis", "torch", "faiss", "scipy") + textwrap.dedent(
        f"""
        import numpy as np
        import embcompress
        m = embcompress.IdMap.load({str(path)!r}, verify='full')
        print(','.join(map(str, m.lookup(np.array({ids[:5].tolist()!r})))))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ",".join(map(str, rows[:5]))


# -- files written by an earlier version stay readable -------------------------------------------
# tests/fixtures/idmaps were written by embcompress 0.1.0 (container 1.0, id-map format 1) and are
# never regenerated. Unmapped ids go to fallback_rows[mix64(id, seed) % len(fallback_rows)].
FIXTURES = Path(ROOT) / "tests" / "fixtures" / "idmaps"


def test_fixture_hash_layout(kernels):
    m = IdMap.load(FIXTURES / "hash_3ids_10rows.idmap", verify="full")
    assert (m.layout, m.n_rows, m.seed, m.row_dtype) == ("hash", 10, 11, np.uint8)
    # 3 ids -> capacity max(ceil(3 / 0.75), 8) = 8 slots of int64 key + uint8 row; 5 fallback rows
    assert m.nbytes == 8 * 9 + 5
    assert m.fallback_rows.tolist() == [9, 3, 5, 1, 2]
    assert m.ids.tolist() == [-(2**62), 7, 12345678901] and m.rows.tolist() == [4, 4, 0]
    # mix64(id, 11) for ids 0, 1, 2, -1: mod 5 = 1, 0, 0, 2 -> fallback rows 3, 9, 9, 5
    assert mix64(np.array([0, 1, 2, -1]), 11).tolist() == [
        0xC2D326E0055BDEF6, 0x9AFCD44D14CF8BFE, 0x701560AD31BB9977, 0xCE755952D3025DA7]
    assert m.lookup(np.array([-(2**62), 12345678901, 7, 0, 1, 2, -1])).tolist() == [4, 0, 4, 3, 9, 9, 5]
    assert m.config == {"method": "fixture"} and m.meta == {"note": "hash layout"}
    assert m.inputs == {"written_by": "embcompress 0.1.0"}


def test_fixture_direct_layout(kernels):
    m = IdMap.load(FIXTURES / "direct_10ids_300rows.idmap", verify="full")
    # ids 100..109 on rows i % 3: dense, so a direct array of 10 uint16 (300 rows need 9 bits)
    assert (m.layout, m.n_rows, m.seed, m.nbytes) == ("direct", 300, 0, 20)
    # no row holds a single id, so every row is a fallback row: the range 0..299, stored as two numbers
    assert m.fallback_rows.tolist() == list(range(300))
    assert m.lookup(np.array([100, 104, 109])).tolist() == [0, 1, 0]
    # unmapped 99, 110, 0 -> mix64(id, 0) % 300 = 0x42F3A9364C476BE3 % 300, 0x9089F05FBF88F8E7 % 300,
    # 0xE220A8397B1DCDAF % 300 (the last is splitmix64's first output, test_mix64_golden)
    assert mix64(np.array([99, 110, 0]), 0).tolist() == [0x42F3A9364C476BE3, 0x9089F05FBF88F8E7, 0xE220A8397B1DCDAF]
    assert m.lookup(np.array([99, 110, 0])).tolist() == [203, 87, 235]


def test_parts_rebuild_the_map_and_are_checked(kernels):
    ids, rows, m = _sparse_map(6)
    dense = IdMap.from_arrays(np.arange(-50, 400), np.arange(450) % 300, 300, seed=2**64 - 1)
    q = np.concatenate([ids, np.arange(-600, 600), [-(2**63), 2**63 - 1]])
    for idm in (m, dense, IdMap.from_arrays([], [], 17, seed=5)):
        p = idm.parts()
        back = IdMap.from_parts(idm.n_rows, **{k: v.copy() for k, v in p.items()})
        assert back.layout == idm.layout and back.seed == idm.seed and back.nbytes == idm.nbytes
        np.testing.assert_array_equal(back.lookup(q), idm.lookup(q))
    p = m.parts()
    with pytest.raises(ArtifactError, match="in the test is inconsistent .*outside"):
        IdMap.from_parts(m.n_rows, p["keys"], np.minimum(p["vals"], m.n_rows), p["fallback"], p["params"], where="in the test")
    with pytest.raises(ArtifactError, match="row dtype"):
        IdMap.from_parts(m.n_rows, p["keys"], p["vals"].astype(np.int64), p["fallback"], p["params"])
    with pytest.raises(ArtifactError, match="params"):
        IdMap.from_parts(m.n_rows, p["keys"], p["vals"], p["fallback"], p["params"][:3])


@pytest.mark.parametrize(
    "field, value",
    [
        ("fallback_start", 2**70),  # unused by a fallback array, but the compiled kernel takes it as int64
        ("base", 2**70),
        ("seed", -1),
        ("seed", 2**64),
        ("seed", "1"),
        ("n_rows", 10.5),
        ("n_rows", True),
        ("build", 5),
    ],
)
def test_load_refuses_header_numbers_out_of_range(tmp_path, kernels, field, value):
    # Such a header used to load, then crash with OverflowError in lookup (on the compiled kernel
    # only, for fallback_start and base), or be silently truncated (n_rows 10.5 -> 10).
    for m in (IdMap.from_arrays([3, 10**9, -5], [0, 1, 2], 10, fallback_rows=[9, 3, 5, 7]),
              IdMap.from_arrays(np.arange(100, 110), np.arange(10) % 3, 300)):
        art = read_artifact(m.save(tmp_path / "a.idmap"))
        config = {**art.config, field: value}
        write_artifact(tmp_path / "b.idmap", "idmap", {k: art.array(k) for k in ("keys", "vals", "fallback")}, config=config)
        with pytest.raises(ArtifactError, match="malformed"):
            IdMap.load(tmp_path / "b.idmap")


def test_load_refuses_a_fallback_range_beyond_int64(tmp_path, kernels):
    # n_rows above 2**63 fits the uint64 row dtype, but rows are int64: a range reaching past
    # 2**63 - 1 made the compiled lookup raise OverflowError and the NumPy one return negative rows.
    config = {"format_version": 1, "hash": "splitmix64", "n_rows": 2**64 - 2, "seed": 0, "layout": "none",
              "row_dtype": "<u8", "base": 0, "fallback_start": 0, "fallback_count": 2**63 + 5, "build": {}}
    sections = {"keys": np.zeros(0, np.int64), "vals": np.zeros(0, np.uint64), "fallback": np.zeros(0, np.uint64)}
    write_artifact(tmp_path / "b.idmap", "idmap", sections, config=config)
    with pytest.raises(ArtifactError, match="malformed"):
        IdMap.load(tmp_path / "b.idmap")


def test_n_rows_beyond_int64_rows_is_refused():
    # Rows are returned as int64: a map onto more than 2**63 rows cannot be served. from_parts
    # accepted a fallback range ending past 2**63 - 1, and its lookups returned negative rows.
    with pytest.raises(ConfigError, match="'n_rows' parameter of IdMap.from_arrays must be at most 2\\*\\*63"):
        IdMap.from_arrays([1], [0], 2**63 + 1, fallback_rows=[0])
    params = np.array([0, 0, 2**63 - 1, 2**63 - 1], dtype=np.int64)  # seed, base, fallback start, count
    empty = np.zeros(0, np.uint64)
    with pytest.raises(ArtifactError, match="n_rows exceeds 2\\*\\*63"):
        IdMap.from_parts(2**64 - 2, np.zeros(0, np.int64), empty, empty, params)


def test_lookup_with_a_huge_thread_count_neither_crashes_nor_overflows(kernels):
    # The thread count went to OpenMP unclamped: 200,000 killed the process (segfault) on the
    # compiled kernel and 2**31 overflowed its int, while the NumPy twin returned rows. The rows do
    # not depend on the thread count, so it is clamped as pooled_lookup clamps it. In a subprocess,
    # so that a crash fails this test instead of the run.
    code = textwrap.dedent(
        """
        import numpy as np
        from embcompress.idmap import IdMap
        m = IdMap.from_arrays([1, 10**12], [0, 3], 4)
        q = np.arange(-50, 50)
        want = m.lookup(q, n_threads=1)
        for t in (200_000, 2**31, 2**40):
            assert np.array_equal(m.lookup(q, n_threads=t), want), t
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "EMBCOMPRESS_KERNELS": kernels})
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_lookup_into_an_out_that_overlaps_the_ids(kernels):
    # The compiled kernel wrote rows over ids it had not read yet when out overlapped ids at an
    # offset (the NumPy twin reads all ids first), so the two disagreed. In place (out is ids)
    # stays allowed.
    m = IdMap.from_arrays(np.arange(100), np.arange(100) * 7 % 50 + 1000, 2000)
    buf = np.arange(10, 30, dtype=np.int64)
    want = m.lookup(buf[:10].copy())
    m.lookup(buf[:10], out=buf[1:11], n_threads=1)
    np.testing.assert_array_equal(buf[1:11], want)
    ids = np.arange(10, 20, dtype=np.int64)
    m.lookup(ids, out=ids, n_threads=2)
    np.testing.assert_array_equal(ids, m.lookup(np.arange(10, 20)))
