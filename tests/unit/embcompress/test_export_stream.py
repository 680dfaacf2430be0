"""Tables written in pieces: container sections streamed, write_table_stream, and export reading a
trained table a piece at a time, so its memory does not grow with the table."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from embcompress import IdMap, open_table, quantize, write_table, write_table_stream
from embcompress.container import Streamed, read_artifact, write_artifact
from embcompress.errors import ConfigError

torch = pytest.importorskip("torch")

import importlib  # noqa: E402

export_mod = importlib.import_module("embcompress.export")  # (the package binds the function to the name)


def _bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_a_streamed_section_writes_the_bytes_of_the_whole_array(tmp_path):
    arr = np.arange(10_000, dtype=np.int32).reshape(100, 100)
    write_artifact(tmp_path / "whole", "t", {"a": arr, "b": np.ones(3)})
    write_artifact(tmp_path / "pieces", "t", {"a": Streamed(np.int32, arr.shape, (arr[i:i + 7] for i in range(0, 100, 7))),
                                              "b": np.ones(3)})
    assert _bytes(tmp_path / "whole") == _bytes(tmp_path / "pieces")
    art = read_artifact(tmp_path / "pieces", verify="full")
    assert np.array_equal(art.array("a"), arr)


@pytest.mark.parametrize("pieces, match", [
    (lambda a: [a[:50]], "was given 20000 bytes"),                  # short
    (lambda a: [a, a[:1]], "given at least 40400 bytes"),           # long
    (lambda a: [a.astype(np.int64)], "given a chunk of int64"),     # another dtype
])
def test_a_wrong_stream_is_refused_and_the_old_file_stays(tmp_path, pieces, match):
    arr = np.arange(10_000, dtype=np.int32).reshape(100, 100)
    path = tmp_path / "f"
    write_artifact(path, "t", {"a": arr * 2})
    before = _bytes(path)
    with pytest.raises(ConfigError, match=match):
        write_artifact(path, "t", {"a": Streamed(np.int32, arr.shape, pieces(arr))})
    assert _bytes(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # no temporary file left


@pytest.mark.parametrize("fmt", ["mxint8", "mxfp4_e2m1", "mx6", "int8_rowwise", "fp16"])
def test_write_table_stream_writes_the_file_write_table_writes(tmp_path, fmt):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1000, 64)).astype(np.float32)
    ids = np.arange(0, 5000, 5, dtype=np.int64)
    m = IdMap.from_arrays(ids, np.arange(1000), 1000)
    freq = rng.integers(0, 50, 1000)
    write_table(tmp_path / "whole.embc", quantize(w, fmt), id_map=m, frequencies=freq, inputs={"x": 1})
    pieces = (quantize(w[i:i + 97], fmt) for i in range(0, 1000, 97))
    write_table_stream(tmp_path / "pieces.embc", fmt, w.shape, pieces, id_map=m, frequencies=freq, inputs={"x": 1})
    assert _bytes(tmp_path / "whole.embc") == _bytes(tmp_path / "pieces.embc")
    with open_table(tmp_path / "pieces.embc", verify="full") as t:
        assert np.array_equal(t.dequantize(), quantize(w, fmt).dequantize())


def test_write_table_stream_refuses_pieces_of_another_layout(tmp_path):
    w = np.ones((10, 32), np.float32)
    write_table(tmp_path / "t.embc", quantize(w, "mxint8"))
    before = _bytes(tmp_path / "t.embc")
    for pieces in ([quantize(w, "mxfp8_e4m3")], [quantize(w[:, :16], "mxint8")], [w]):
        with pytest.raises(ConfigError, match="'chunks' parameter of write_table_stream"):
            write_table_stream(tmp_path / "t.embc", "mxint8", w.shape, pieces)
    with pytest.raises(ConfigError, match="bytes"):
        write_table_stream(tmp_path / "t.embc", "mxint8", (11, 32), [quantize(w, "mxint8")])
    assert _bytes(tmp_path / "t.embc") == before


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(export_mod, "_PIECE_BYTES", 1000)  # 7 rows of 32 floats a piece


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_export_in_pieces_writes_the_whole_table_file(tmp_path, small_pieces, dtype):
    torch.manual_seed(0)
    emb = torch.nn.EmbeddingBag(100, 32, mode="sum").to(dtype)
    w = emb.weight.detach().float().numpy()
    (rep,) = export_mod.export(emb, fmt="mxfp8_e4m3", out_dir=tmp_path / "out")
    write_table(tmp_path / "whole.embc", quantize(w, "mxfp8_e4m3"), inputs=read_artifact(rep["path"]).header["inputs"])
    assert _bytes(rep["path"]) == _bytes(tmp_path / "whole.embc")
    assert rep["qsnr_db"] == pytest.approx(export_mod.qsnr_db(w, quantize(w, "mxfp8_e4m3").dequantize()), rel=1e-12)


def test_export_folds_a_full_size_table_in_pieces(tmp_path, small_pieces):
    rng = np.random.default_rng(1)
    n, rows = 500, 40
    w = rng.standard_normal((n, 32)).astype(np.float32)
    ids = np.arange(0, n, 2, dtype=np.int64)  # the odd ids fall back to hashing
    m = IdMap.from_arrays(ids, rng.integers(0, rows, ids.size), rows)
    freq = rng.integers(0, 4, n)  # zeros among them: some rows weightless
    (rep,) = export_mod.export({"emb.weight": torch.from_numpy(w)}, fmt="mxint8", out_dir=tmp_path / "out",
                               id_maps={"emb": m}, frequencies={"emb": freq})
    # the folded rows by hand: frequency-weighted means, plain means where every weight is 0
    member = m.lookup(np.arange(n))
    want = np.zeros((rows, 32))
    for r in range(rows):
        mine = np.flatnonzero(member == r)
        if mine.size == 1:
            want[r] = w[mine[0]]
        elif mine.size:
            f = freq[mine].astype(np.float64)
            f = f if f.sum() > 0 else np.ones(mine.size)
            want[r] = (w[mine] * f[:, None]).sum(0) / f.sum()
    with open_table(rep["path"], verify="full") as t:
        got = t.dequantize()
        assert np.array_equal(got, quantize(want.astype(np.float32), "mxint8").dequantize())
        assert np.array_equal(t.frequencies, np.bincount(member, weights=freq, minlength=rows).astype(np.int64))
    assert rep["qsnr_vs_trained_db"] == pytest.approx(export_mod.qsnr_db(w, got[member]), rel=1e-12)


def test_export_memory_does_not_grow_with_the_table(tmp_path):
    # A 128 MiB table: export once held about seven float copies of it (7x the table on top of the
    # model). It now reads the table a piece at a time; its peak beyond the model stays a few pieces.
    code = textwrap.dedent(f"""
        import json, resource, torch, embcompress
        emb = torch.nn.EmbeddingBag(262144, 128, mode="sum")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        embcompress.export(emb, fmt="mxint8", out_dir={str(tmp_path / "out")!r})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps([before, after]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout.splitlines()[-1])
    grew_mib = (after - before) / 1024
    assert grew_mib < 96, f"export grew the process by {grew_mib:.0f} MiB for a 128 MiB table"


def test_cli_export_maps_the_state_dict_and_reads_the_old_format_whole(tmp_path, capsys, monkeypatch):
    from embcompress.cli.main import main

    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("mmap")) or real_load(*a, **k))
    sd = {"emb.weight": torch.randn(50, 32, generator=torch.Generator().manual_seed(0))}
    torch.save(sd, tmp_path / "zip.pt")
    torch.save(sd, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    for name in ("zip", "old"):
        try:
            main(["export", str(tmp_path / f"{name}.pt"), "--fmt", "mxint8", "--out-dir", str(tmp_path / name),
                  "--mode", "sum", "--quiet"])
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
    assert loads == [True, True, None]  # the zip file mapped; the old one tried mapped, then read whole
    assert _bytes(tmp_path / "zip" / "emb.embc") == _bytes(tmp_path / "old" / "emb.embc")


def test_a_refused_or_interrupted_export_leaves_an_earlier_export_as_it_was(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {f"{t}_emb.weight": torch.randn(20, 8, generator=g) for t in "abc"}
    out = tmp_path / "out"
    export_mod.export(sd, fmt="fp16", out_dir=out, mode="sum")
    before = {p.name: _bytes(p) for p in out.iterdir()}
    assert sorted(before) == ["a_emb.embc", "b_emb.embc", "c_emb.embc", "export.json"]  # no staging folder left

    new = {k: v * 2 for k, v in sd.items()}
    new["c_emb.weight"][5, 3] = 1e6  # beyond fp16's range: refused after a and b were compressed
    with pytest.raises(ConfigError, match=r"'c_emb' has rows \[5\]"):
        export_mod.export(new, fmt="fp16", out_dir=out, mode="sum")
    assert {p.name: _bytes(p) for p in out.iterdir()} == before

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        export_mod.export({k: v * 2 for k, v in sd.items()}, fmt="fp16", out_dir=out, mode="sum", progress=stop)
    assert {p.name: _bytes(p) for p in out.iterdir()} == before

    (rep_a, _, _) = export_mod.export({k: v * 2 for k, v in sd.items()}, fmt="fp16", out_dir=out, mode="sum")
    assert rep_a["path"] == str(out / "a_emb.embc") and sorted(p.name for p in out.iterdir()) == sorted(before)
    assert _bytes(out / "a_emb.embc") != before["a_emb.embc"]


def test_export_removes_what_a_killed_export_on_this_host_left(tmp_path):
    # A killed export leaves its hidden folder of written tables behind (only a live process moves
    # them into place); a job killed again and again would fill the disk. The next export removes
    # the folders of this host's processes that are gone, and leaves live ones and other hosts'.
    import os
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    host = socket.gethostname()
    stale = out / f".export-{host}-{dead.pid}-abc123xy"
    live = out / f".export-{host}-{os.getpid()}-def456xy"
    other = out / f".export-elsewhere-{dead.pid}-ghi789xy"
    for d in (stale, live, other):
        d.mkdir(parents=True)
        (d / "t.embc").write_bytes(b"x" * 100)
    export_mod.export({"emb.weight": torch.ones(4, 8)}, fmt="mxint8", out_dir=out, mode="sum")
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["emb.embc", "export.json"]


def test_a_write_removes_the_temporary_files_killed_writers_of_this_host_left(tmp_path):
    # A writer killed midway leaves its hidden temporary file (as large as the table) beside the
    # intact old file; one killed again and again filled the disk. The next write of that file
    # removes those of this host's processes that are gone, and no other file.
    import os
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {
        "stale": f".t.embc.tmp-{host}-{dead.pid}-0011aabb",
        "live": f".t.embc.tmp-{host}-{os.getpid()}-0011aabb",
        "other host": f".t.embc.tmp-elsewhere-{dead.pid}-0011aabb",
        "older name": f".t.embc.tmp-{dead.pid}-0011aabb",
        "another file's": f".u.embc.tmp-{host}-{dead.pid}-0011aabb",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    write_table(tmp_path / "t.embc", quantize(np.ones((4, 32), np.float32), "mxint8"))
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"t.embc", *names.values()} - {names["stale"]}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_from_file_returns_the_trained_dtype_as_from_embedding_bag_does(tmp_path, dtype):
    # A bf16 model's next layer takes bf16: the module from the exported file returned float32 (the
    # file did not say how the table was trained), where from_embedding_bag returns the bag's dtype.
    from embcompress.nn import MXEmbeddingBag

    torch.manual_seed(0)
    emb = torch.nn.EmbeddingBag(30, 32, mode="sum").to(dtype)
    (rep,) = export_mod.export(emb, fmt="mxint8", out_dir=tmp_path)
    served = MXEmbeddingBag.from_file(rep["path"])
    ids, offsets = torch.tensor([1, 2, 29, 4]), torch.tensor([0, 3])
    want = MXEmbeddingBag.from_embedding_bag(emb, "mxint8")(ids, offsets)
    got = served(ids, offsets)
    assert got.dtype == want.dtype == dtype and torch.equal(got, want)
    assert served.to(torch.float32)(ids, offsets).dtype == torch.float32
