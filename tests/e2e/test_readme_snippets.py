"""README.md's snippets and the behaviour it promises, run on small generated inputs.

Each test follows one README section (its name says which): the calls are the README's, with
the names it leaves undefined filled by a few hundred generated rows, and the asserts check
what the README says they return, print or refuse. When a test fails, either the code or the
README changed: make them agree again.
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import embcompress
from tests.conftest import ROOT

N_LOG = 600  # rows of the generated Criteo log


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "embcompress", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _criteo_log(path, n=N_LOG, seed=0):
    """A Criteo TSV (label, I1..I13, C1..C26, no header): C3/C4 Zipf hex ids that co-occur."""
    rng = np.random.default_rng(seed)
    c3 = rng.zipf(1.3, n) % 60
    c4 = (c3 * 7 + rng.integers(0, 3, n)) % 90  # C4 follows C3: pairs to mine
    label = (rng.random(n) < 0.2 + 0.5 * (c3 % 2)).astype(int)
    lines = []
    for i in range(n):
        ints = [str(int(v)) for v in rng.integers(0, 50, 13)]
        cats = [f"{rng.integers(0, 2**32):08x}" for _ in range(26)]
        cats[2], cats[3] = f"{0x1000 + c3[i]:08x}", f"{0x2000 + c4[i]:08x}"
        lines.append("\t".join([str(label[i]), *ints, *cats]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """README "Mining logs": the `mine` call as written, on a log with one malformed line."""
    pytest.importorskip("duckdb")
    from learned_hash import mine

    d = tmp_path_factory.mktemp("mine")
    log = _criteo_log(d / "day_0.txt")
    with log.open("a") as fh:
        fh.write("not a criteo line\n")
    stats = mine(str(log), format="criteo", features=["C3", "C4"], label="label",
                 pairs=[("C3", "C4")], memory_limit="2GB", on_bad_line="skip")
    (d / "out").mkdir()
    stats.save(str(d / "out" / "log.stats"))  # as the snippet does; the fit-hash tests read it
    return d, stats


# --- Mining logs ---------------------------------------------------------------------------------

def test_mining_snippet_returns_what_the_readme_says(mined):
    import scipy.sparse

    from learned_hash import LogStats

    d, stats = mined
    ids, counts = stats.frequencies("C3")
    assert ids.dtype == np.int64 and counts.dtype == np.int64
    assert counts.sum() == N_LOG and stats.bad_lines == 1
    order = np.lexsort((ids, -counts))  # by count descending, ties by id ascending
    assert np.array_equal(order, np.arange(ids.size))
    assert np.isin(ids, 0x1000 + np.arange(60)).all()  # hex values parsed, not hashed
    ids_p, clicks = stats.positives("C3")
    assert np.array_equal(ids_p, ids) and (clicks <= counts).all() and 0 < clicks.sum() < N_LOG
    a, b, n = stats.pair_counts("C3", "C4", label=1)
    assert n.sum() == clicks.sum()  # one C3:C4 pair a row, clicked rows only
    m, ids_a, ids_b = stats.pair_matrix("C3", "C4")
    assert isinstance(m, scipy.sparse.csr_matrix) and m.shape == (ids_a.size, ids_b.size)
    i = int(np.flatnonzero(ids_a == ids[0])[0])  # row i is ids_a[i]
    assert m[i].sum() == counts[0]
    assert embcompress.read_artifact(d / "out" / "log.stats").kind == "logstats"
    again = LogStats.load(d / "out" / "log.stats", verify="full")
    assert np.array_equal(again.frequencies("C3")[1], counts)


def test_mining_bad_lines_error_by_default_and_empty_input_is_an_error(tmp_path):
    pytest.importorskip("duckdb")
    from learned_hash import mine

    log = _criteo_log(tmp_path / "log.txt", n=20)
    text = log.read_text().splitlines()
    log.write_text("\n".join(text[:5] + ["", "bad line"] + text[5:]) + "\n")  # a blank line is ignored
    with pytest.raises(embcompress.EmbcompressError, match=r"line 7.*on_bad_line='skip'"):
        mine(str(log), format="criteo", features=["C3"], label="label")
    stats = mine(str(log), format="criteo", features=["C3"], label="label", on_bad_line="skip")
    assert stats.bad_lines == 1 and stats.frequencies("C3")[1].sum() == 20
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(embcompress.ConfigError, match="has no rows"):
        mine(str(tmp_path / "empty.txt"), format="criteo", features=["C3"])


def test_mine_cli_prints_one_line_per_feature_then_rows_and_skipped(tmp_path):
    pytest.importorskip("duckdb")
    pytest.importorskip("typer")
    log = _criteo_log(tmp_path / "day_0.txt")
    with log.open("a") as fh:
        fh.write("garbage\n")
    (tmp_path / "out").mkdir()  # `--out` must name a file in an existing folder
    proc = _cli("mine", "day_0.txt", "--format", "criteo", "--features", "C3,C4", "--label", "label",
                "--pair", "C3:C4", "--memory-limit", "4GB", "--min-count", "2", "--on-bad-line", "skip",
                "--out", "out/log.stats", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("C3: ") and " ids seen 2+ times kept, " in lines[0]
    assert lines[1].startswith("C4: ")
    assert f"{N_LOG:,} rows mined" in lines[2] and "1 malformed lines skipped" in lines[2]
    assert (tmp_path / "out" / "log.stats").exists()


def test_ids_paragraph_parse_hex32_and_missing_id():
    from embcompress.idhash import MISSING_ID, parse_hex32, string_ids

    readme = (ROOT / "README.md").read_text()
    call = re.search(r"`(embcompress\.idhash\.parse_hex32\(.*?\)) == (.*?)`", readme)
    assert call is not None
    got = eval(call.group(1), {"embcompress": embcompress})  # the README's own expression
    assert np.array_equal(got, eval(call.group(2), {"np": np}))
    assert parse_hex32(["68fd1e64", "", None]).tolist() == [0x68FD1E64, MISSING_ID, MISSING_ID]
    assert MISSING_ID == -(2**63)
    ids = string_ids(["a", "", None, "b"])
    assert ids.dtype == np.int64 and ids[1] == ids[2] == MISSING_ID and MISSING_ID not in (ids[0], ids[3])


# --- Formats -------------------------------------------------------------------------------------

def test_formats_snippet(tmp_path):
    from embcompress.formats import decode_records

    table = np.random.default_rng(0).standard_normal((50, 100)).astype(np.float32)  # dim not a block multiple
    q = embcompress.quantize(table, "mxfp6_e2m3")
    assert q.block_size == 32
    x_hat = embcompress.dequantize(q)
    assert x_hat.dtype == np.float32 and x_hat.shape == table.shape
    rows = decode_records(q.data[[3, 7]], "mxfp6_e2m3", q.shape[1])
    assert np.array_equal(rows, x_hat[[3, 7]])
    q.save(tmp_path / "emb.table")
    q2 = embcompress.QuantizedTable.load(tmp_path / "emb.table", verify="full")
    assert np.array_equal(q2.data, q.data)


# README's format table: bits per element (scales counted) and bytes per row at dim 128.
FORMAT_TABLE = {
    "mxfp8_e4m3": (8.25, 132), "mxfp8_e5m2": (8.25, 132), "mxfp6_e3m2": (6.25, 100),
    "mxfp6_e2m3": (6.25, 100), "mxfp4_e2m1": (4.25, 68), "mxint8": (8.25, 132),
    "mx9": (9, 144), "mx6": (6, 96), "mx4": (4, 64), "int8_rowwise": (8.5, 136),
    "int4_rowwise": (4.25, 68), "int2_rowwise": (2.25, 36), "fp32": (32, 512), "fp16": (16, 256),
    "bf16": (16, 256),
}


def test_format_table_bits_and_bytes_per_row():
    from embcompress.formats import FORMATS

    assert set(FORMATS) == set(FORMAT_TABLE)
    for name, (bits, row_bytes) in FORMAT_TABLE.items():
        assert FORMATS[name].bits_per_element(128) == bits, name
        assert FORMATS[name].row_bytes(128) == row_bytes, name
        q = embcompress.quantize(np.ones((2, 128), np.float32), name)
        assert q.data.shape == (2, row_bytes), name


def test_format_numerics_promised():
    zero = embcompress.quantize(np.zeros((1, 32), np.float32), "mxfp8_e4m3")
    assert zero.data[0, 0] == 0  # all-zero block: smallest scale 2^-127
    neg0 = np.full((1, 32), -0.0, np.float32)
    assert not np.signbit(embcompress.dequantize(embcompress.quantize(neg0, "mxint8"))).any()
    assert np.signbit(embcompress.dequantize(embcompress.quantize(neg0, "mxfp8_e4m3"))).all()
    big = np.ones((1, 32), np.float32)
    big[0, 0] = 1e30
    assert np.isfinite(embcompress.dequantize(embcompress.quantize(big, "mxfp8_e5m2"))).all()  # saturates
    x = np.ones((3, 32), np.float32)
    x[2, 3] = np.nan
    with pytest.raises(embcompress.ConfigError, match=r"rows \[2\]"):
        embcompress.quantize(x, "mxfp8_e4m3")
    assert embcompress.quantize(x, "mxfp8_e4m3", nonfinite="nan_block").data[2, 0] == 0xFF
    wide = np.ones((1, 32), np.float32)
    wide[0, 0] = -70000.0  # |min| > 65504: the fp16 bias overflows
    with pytest.raises(embcompress.ConfigError, match="int4_rowwise"):
        embcompress.quantize(wide, "int4_rowwise")


def test_rowwise_bytes_equal_torch_prepack():
    torch = pytest.importorskip("torch")
    from embcompress.formats import to_torch_packed

    t = np.random.default_rng(1).standard_normal((10, 64)).astype(np.float32)
    for fmt, op in (("int8_rowwise", "embedding_bag_byte_prepack"), ("int4_rowwise", "embedding_bag_4bit_prepack"),
                    ("int2_rowwise", "embedding_bag_2bit_prepack")):
        ours = torch.as_tensor(np.asarray(to_torch_packed(embcompress.quantize(t, fmt))))
        assert torch.equal(ours, getattr(torch.ops.quantized, op)(torch.from_numpy(t))), fmt


# --- Learned hash maps ---------------------------------------------------------------------------

def test_fit_hash_snippet(mined):
    pytest.importorskip("faiss")
    from learned_hash import LogStats, fit_hash

    d, _ = mined
    stats = LogStats.load(d / "out" / "log.stats")
    m = fit_hash(stats, "C3", 16, seed=0)
    assert isinstance(m, embcompress.IdMap)
    m.save(d / "out" / "C3.idmap")
    raw_ids = np.array([0x1000, 0x1001, 12345, embcompress.MISSING_ID], dtype=np.int64)
    rows = m.lookup(raw_ids)
    assert rows.dtype == np.int64 and ((rows >= 0) & (rows < 16)).all()
    assert np.array_equal(embcompress.IdMap.load(d / "out" / "C3.idmap", verify="full").lookup(raw_ids), rows)
    refit = fit_hash(stats, "C3", 16, seed=0, previous=m)
    assert refit.moved_ids == refit.meta["moved_ids"] == 0  # same fit: no id changes row


def _mix64(x: int, seed: int) -> int:
    """README's splitmix64, in Python integers."""
    mask = (1 << 64) - 1
    z = ((x & mask) + (seed + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_idmap_unmapped_ids_follow_the_readme_hash():
    fallback = np.array([3, 5, 8, 9], dtype=np.int64)
    m = embcompress.IdMap.from_arrays(np.array([10, 20]), np.array([0, 1]), 10, fallback_rows=fallback, seed=7)
    unseen = np.array([-5, 0, 11, 2**62, embcompress.MISSING_ID], dtype=np.int64)
    expected = [fallback[_mix64(int(i), 7) % len(fallback)] for i in unseen]
    assert m.lookup(unseen).tolist() == expected
    assert m.lookup(np.array([20, 10])).tolist() == [1, 0]


def test_fit_hash_cli_line(mined):
    pytest.importorskip("faiss")
    pytest.importorskip("typer")
    d, _ = mined
    proc = _cli("fit-hash", "out/log.stats", "--feature", "C3", "--feature", "C4", "--rows", "32",
                "--rows-per-feature", "C4=16", "--method", "learned", "--seed", "0", "--out-dir", "out/maps", cwd=d)
    assert proc.returncode == 0, proc.stderr
    c3, c4 = proc.stdout.strip().splitlines()
    assert c3.startswith("C3: ") and " ids seen -> 32 rows (" in c3 and c3.endswith("-> out/maps/C3.idmap")
    assert " of accesses collide, map " in c3
    assert " ids seen -> 16 rows (" in c4
    assert embcompress.IdMap.load(d / "out" / "maps" / "C4.idmap").n_rows == 16


# --- Serving -------------------------------------------------------------------------------------

@pytest.fixture
def served(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((1000, 64)).astype(np.float32)
    idmap = embcompress.IdMap.from_arrays(np.arange(0, 2000, 2), np.arange(1000), 1000)
    counts = rng.integers(0, 100, 1000)
    q = embcompress.quantize(weights, "mxfp8_e4m3")
    embcompress.write_table(tmp_path / "user.embc", q, id_map=idmap, frequencies=counts)
    return tmp_path, q, idmap


def test_serving_snippet(served):
    torch = pytest.importorskip("torch")
    from embcompress.nn import MXEmbeddingBag

    d, q, idmap = served
    rows, offsets = np.array([1, 5, 7, 999, 3]), np.array([0, 2])
    t = embcompress.open_table(d / "user.embc", verify="header")
    embcompress.open_table(d / "user.embc", verify="full")
    out = embcompress.pooled_lookup(t, rows, offsets, mode="sum")
    assert out.dtype == np.float32 and out.shape == (2, 64)
    assert np.array_equal(out[1], embcompress.dequantize(q)[[7, 999, 3]].sum(axis=0, dtype=np.float32))
    bag = MXEmbeddingBag.from_file(d / "user.embc", mode="sum")
    raw_ids = torch.tensor([2, 10, 14, 1998, 12345])
    y = bag(raw_ids, torch.as_tensor(offsets))
    ref = torch.nn.EmbeddingBag.from_pretrained(torch.as_tensor(embcompress.dequantize(q)), mode="sum")
    assert torch.equal(y, ref(torch.as_tensor(idmap.lookup(raw_ids.numpy())), torch.as_tensor(offsets)))


def test_export_snippet_writes_name_embc_and_export_json(tmp_path):
    torch = pytest.importorskip("torch")

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.ModuleDict({"user": torch.nn.EmbeddingBag(200, 32, mode="sum")})

    idmap = embcompress.IdMap.from_arrays(np.arange(200), np.arange(200) % 20, 20)
    report = embcompress.export(Model(), fmt="mxfp4_e2m1", id_maps={"emb.user": idmap}, out_dir=tmp_path / "tables")
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["emb.user.embc", "export.json"]
    assert report[0]["name"] == "emb.user" and report[0]["shape"] == [20, 32]
    t = embcompress.open_table(tmp_path / "tables" / "emb.user.embc", verify="full")
    assert t.fmt == "mxfp4_e2m1" and t.shape == (20, 32)
    # an exact table's QSNR: inf in the returned report, null in export.json
    exact = embcompress.export({"emb.a.weight": torch.randn(5, 8)}, fmt="fp32", out_dir=tmp_path / "exact")
    assert exact[0]["qsnr_db"] == float("inf")
    assert json.loads((tmp_path / "exact" / "export.json").read_text())[0]["qsnr_db"] is None


def test_export_inspect_verify_cli(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("typer")
    torch.save({"emb.user.weight": torch.randn(200, 32)}, tmp_path / "model_state.pt")
    np.save(tmp_path / "counts.npy", np.arange(200))
    embcompress.IdMap.from_arrays(np.arange(200), np.arange(200) % 20, 20).save(tmp_path / "user.idmap")
    proc = _cli("export", "model_state.pt", "--fmt", "mxfp8_e4m3", "--out-dir", "tables/", "--id-map",
                "emb.user=user.idmap", "--frequencies", "emb.user=counts.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = _cli("inspect", "tables/emb.user.embc", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for word in ("format:", "shape:", "compression:", "sections:", "id map:", "frequencies:"):
        assert word in proc.stdout, word
    assert _cli("verify", "tables/emb.user.embc", cwd=tmp_path).returncode == 0
    path = tmp_path / "tables" / "emb.user.embc"
    data = bytearray(path.read_bytes())
    data[4096 + 10] ^= 0xFF  # a byte of the rows section
    path.write_bytes(bytes(data))
    assert _cli("verify", "tables/emb.user.embc", cwd=tmp_path).returncode == 3


def test_kernel_refusals_and_torch_differences(served):
    d, _, _ = served
    t = embcompress.open_table(d / "user.embc")
    idx = np.array([1, 2, 3, 4])
    ok = embcompress.pooled_lookup(t, idx, np.array([0, 0, 2]))
    assert (ok[0] == 0).all()  # empty bag: zeros
    refused = [
        dict(indices=idx, offsets=np.array([1, 2])),  # offsets[0] != 0
        dict(indices=idx, offsets=np.array([0, 3, 2])),  # decreasing
        dict(indices=np.array([0, 1000]), offsets=np.array([0])),  # out of range
        dict(indices=np.array([-1]), offsets=np.array([0])),
        dict(indices=idx, offsets=np.array([0, 2]), mode="mean", per_sample_weights=np.ones(4, np.float32)),
        dict(indices=idx.reshape(2, 2), offsets=None, include_last_offset=True),
        dict(indices=np.array([True, False]), offsets=np.array([0])),
        dict(indices=idx, offsets=np.array([0, 2, 3]), include_last_offset=True),
    ]
    for kw in refused:
        with pytest.raises(embcompress.ConfigError):
            embcompress.pooled_lookup(t, **kw)
    two_d = embcompress.pooled_lookup(t, idx.reshape(2, 2), mode="max")
    assert np.array_equal(two_d, embcompress.pooled_lookup(t, idx, np.array([0, 2]), mode="max"))
    w64 = embcompress.pooled_lookup(t, idx, np.array([0, 2]), per_sample_weights=np.full(4, 0.1))
    w32 = embcompress.pooled_lookup(t, idx, np.array([0, 2]), per_sample_weights=np.full(4, 0.1, np.float32))
    assert np.array_equal(w64, w32)  # weights of any float dtype rounded to float32
    buf = np.empty((2, 64), np.float32)
    assert embcompress.pooled_lookup(t, idx.astype(np.uint8), np.array([0, 2]), out=buf) is buf


def test_torch_export_snippet_runs_in_another_process(served):
    torch = pytest.importorskip("torch")
    from embcompress.nn import MXEmbeddingBag

    d, _, _ = served
    model = MXEmbeddingBag.from_file(d / "user.embc", mode="sum")
    ids, offsets = torch.tensor([2, 10, 14, 1998, 12345]), torch.tensor([0, 2])
    torch.export.save(torch.export.export(model, (ids, offsets)), d / "model.pt2")
    torch.save(model(ids, offsets), d / "ref.pt")
    script = (
        "import torch, embcompress.nn\n"
        "model = torch.export.load('model.pt2').module()\n"
        "y = model(torch.tensor([2, 10, 14, 1998, 12345]), torch.tensor([0, 2]))\n"
        "assert torch.equal(y, torch.load('ref.pt')), 'differs from the eager module'\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=d, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


# --- Tiered serving ------------------------------------------------------------------------------

def test_tiered_store_snippet(tmp_path):
    from embcompress.store import mine_coaccess, plan

    rng = np.random.default_rng(0)
    n_rows = 3000
    w = rng.standard_normal((n_rows, 64)).astype(np.float32)
    path = tmp_path / "C3.embc"
    embcompress.write_table(path, embcompress.quantize(w, "mxfp8_e4m3"), frequencies=rng.zipf(1.2, n_rows))
    indices, offsets = rng.integers(0, n_rows, 200), np.arange(0, 200, 10)
    store = embcompress.TieredStore(path, dram_bytes=64 << 10, policy="frequency", refresh_every=1)
    store.warm_up()
    out = store.pooled_lookup(indices, offsets, mode="sum")
    assert np.array_equal(out, embcompress.pooled_lookup(embcompress.open_table(path), indices, offsets, mode="sum"))
    stats = store.stats()
    for key in ("hit_rate", "dram_hit_rate", "blocks_read", "bytes_read", "read_amplification", "device_seconds",
                "refreshes", "refresh_rows", "refresh_blocks"):
        assert key in stats, key
    assert stats["hit_rate"] == stats["dram_hit_rate"]
    new = rng.standard_normal((2, 64)).astype(np.float32)
    store.update_rows(np.array([1, 2]), new)
    expect = embcompress.dequantize(embcompress.quantize(new, "mxfp8_e4m3"))
    assert np.array_equal(store.pooled_lookup(np.array([1, 2]), np.array([0, 1])), expect)
    log_indices, log_offsets = rng.integers(0, n_rows, 2000), np.arange(0, 2000, 8)
    embcompress.reorder_rows(path, tmp_path / "C3.coaccess.embc",
                             cooccurrence=mine_coaccess(log_indices, log_offsets, n_rows))
    store.close()
    with pytest.raises(embcompress.ConfigError, match="closed"):
        store.pooled_lookup(indices, offsets)
    # the reordered file serves the original row numbers through a store
    with embcompress.TieredStore(tmp_path / "C3.coaccess.embc", dram_bytes=64 << 10) as s:
        s.warm_up()
        assert np.array_equal(s.pooled_lookup(indices, offsets),
                              embcompress.pooled_lookup(embcompress.open_table(path), indices, offsets))
    # README: plan(table_bytes, row_bytes, frequencies, lookups_per_s, device=...)
    p = plan(table_bytes=1 << 30, row_bytes=132, frequencies=rng.zipf(1.1, 10_000), lookups_per_s=1e5, device="nand")
    assert p.device_utilization <= 0.7 and p.dram_index_bytes > 0


def test_tiered_store_bad_input_raises(tmp_path):
    path = tmp_path / "t.embc"
    embcompress.write_table(path, embcompress.quantize(np.ones((1000, 32), np.float32), "mxint8"),
                            frequencies=np.arange(1000))
    (tmp_path / "cut.embc").write_bytes(path.read_bytes()[:3000])
    bad = [
        (tmp_path / "missing.embc", dict(dram_bytes=4096), "does not exist"),
        (tmp_path / "cut.embc", dict(dram_bytes=4096), "truncated"),
        (path, dict(dram_bytes=10), "dram_bytes"),  # under one row
        (path, dict(dram_bytes=10**9), "dram_bytes"),  # over the table
        (path, dict(dram_bytes=4096, policy="fifo"), "policy"),
        (path, dict(dram_bytes=4096, refresh_every=0), "refresh_every"),
        (path, dict(dram_bytes=4096, refresh_every=1.5), "refresh_every"),
        (path, dict(dram_bytes=4096, policy="lru", refresh_every=1), "refresh_every"),
        (path, dict(dram_bytes=4096, policy="lfu", refresh_every=1), "refresh_every"),
        (path, dict(dram_bytes=4096, refresh_every=1, half_life=0), "half_life"),
        (path, dict(dram_bytes=4096, refresh_every=1, half_life=float("inf")), "half_life"),
        (path, dict(dram_bytes=4096, half_life=3.0), "half_life"),  # without refresh_every
    ]
    for p, kw, what in bad:
        with pytest.raises(embcompress.EmbcompressError, match=what):
            embcompress.TieredStore(p, **kw)
    with embcompress.TieredStore(path, dram_bytes=4096) as s:
        s.warm_up()
        with pytest.raises(embcompress.ConfigError, match=r"\[0, 1000\)"):
            s.pooled_lookup(np.array([1000]), np.array([0]))


# --- Evaluating collision impact -----------------------------------------------------------------

def test_sweep_configs_in_examples_load():
    from analysis.ctr.sweep import SweepConfig

    for path in sorted((ROOT / "examples" / "sweeps").glob("*.json")):
        raw = json.loads(path.read_text())
        config = SweepConfig.from_dict(raw)
        assert config.dataset.on_bad_line == "skip", path.name  # README: "skip" is the default


def test_collision_report_call_as_documented(mined):
    pytest.importorskip("faiss")
    from analysis.collisions import collision_report
    from learned_hash import fit_hash

    _, stats = mined  # two features mined: C3 and C4
    m3, m4 = fit_hash(stats, "C3", 16, seed=0), fit_hash(stats, "C4", 16, seed=0)
    one = collision_report(m3, stats, feature="C3")  # one map: `feature=` names it
    both = collision_report({"C3": m3, "C4": m4}, stats)
    assert set(both.features) == {"C3", "C4"} and one.features["C3"] == both.features["C3"]
    c3 = one.features["C3"]
    assert 0 <= c3.shared_access_share <= 1 and 0 <= c3.collision_rate <= 1
    assert set(c3.rows_for_share) == {"0.8", "0.9", "0.99"}
    readme = (ROOT / "README.md").read_text()
    assert "`analysis.collisions.collision_report(id_map, stats, feature=None)`" in readme


def test_readme_run_counts_match_the_committed_sweep_results():
    readme = (ROOT / "README.md").read_text()
    said = {
        "frappe": re.search(r"`examples/sweeps/frappe.json`: .*?(\d+) runs in", readme, re.S),
        "criteo": re.search(r"Criteo:\s+the\s+sample.s .*?(\d+) runs in", readme, re.S),
        "talkingdata": re.search(r"TalkingData:\s+the\s+100,000-row .*?(\d+) runs in", readme, re.S),
    }
    for name, match in said.items():
        runs = json.loads((ROOT / "docs" / "results" / f"{name}_sweep.json").read_text())["runs"]
        assert match is not None, name
        assert int(match.group(1)) == len(runs), name
