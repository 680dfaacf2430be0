"""The serving verbs of the CLI: inspect, verify, export (exit codes 0 / 1 / 3)."""

import json

import numpy as np
import pytest

import embcompress
from embcompress.cli.main import main
from embcompress.idmap import IdMap

torch = pytest.importorskip("torch")


@pytest.fixture
def table_file(tmp_path):
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32), "mxfp4_e2m1")
    idm = IdMap.from_arrays([5, 6, 7], [0, 1, 1], 64)
    return embcompress.write_table(tmp_path / "t.embc", q, id_map=idm, frequencies=np.arange(64))


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_table_and_other_artifacts(table_file, tmp_path, capsys):
    code, out, _ = run(["inspect", str(table_file)], capsys)
    assert code == 0
    for text in ("kind:      table", "format:    mxfp4_e2m1, block 32", "shape:     64 rows x 32",
                 "rows:      1088 bytes (17 per row) at offset 4096", "7.53x the float32 table",
                 "IdMap(n_rows=64, mapped_ids=3", "frequencies: int64 per row, total 2016", "idmap.fallback_rows"):
        assert text in out, text
    other = embcompress.write_artifact(tmp_path / "s.embc", "logstats", {"counts": np.arange(5)}, config={"v": 1})
    code, out, _ = run(["inspect", str(other)], capsys)
    assert code == 0 and "kind:      logstats" in out and "counts" in out and "format:" not in out


def test_verify_ok_corruption_exit_3_and_missing_exit_1(table_file, tmp_path, capsys):
    code, out, _ = run(["verify", str(table_file)], capsys)
    assert code == 0 and out.startswith("ok:") and "mxfp4_e2m1 table 64 x 32" in out
    raw = bytearray(table_file.read_bytes())
    raw[4096 + 100] ^= 1
    bad = tmp_path / "bad.embc"
    bad.write_bytes(bytes(raw))
    code, _, err = run(["inspect", str(bad)], capsys)
    assert code == 0  # inspect reads the header only
    code, _, err = run(["verify", str(bad)], capsys)
    assert code == 3 and "does not match its checksum" in err and err.count("\n") == 1
    foreign = tmp_path / "x.txt"
    foreign.write_text("hello " * 20)
    assert run(["verify", str(foreign)], capsys)[0] == 3
    # a wrong path is bad input (1), not a damaged file (3), so a script can tell them apart
    code, _, err = run(["verify", str(tmp_path / "missing")], capsys)
    assert code == 1 and "does not exist" in err
    assert run(["inspect", str(tmp_path / "missing")], capsys)[0] == 1


def test_export_command(tmp_path, capsys):
    torch.manual_seed(0)
    sd = {"emb_user.weight": torch.randn(100, 16), "emb_item.weight": torch.randn(30, 8), "fc.weight": torch.randn(4, 24)}
    sd_path = tmp_path / "sd.pt"
    torch.save(sd, sd_path)
    IdMap.from_arrays(np.arange(100), np.arange(100) % 10, 10).save(tmp_path / "u.idmap")
    np.save(tmp_path / "f.npy", np.arange(100))
    out_dir = tmp_path / "out"
    code, out, err = run(["export", str(sd_path), "--fmt", "mxint8", "--out-dir", str(out_dir),
                          "--id-map", f"emb_user={tmp_path / 'u.idmap'}", "--frequencies", f"emb_user={tmp_path / 'f.npy'}",
                          "--quiet"], capsys)
    assert code == 0, err
    # fc.weight (2-D, no bias, no "emb") is left out with a warning: one 'warning:' line, not
    # Python's form with the source file and line of export.py
    (warned,) = [line for line in err.splitlines() if "left out" in line]
    assert warned.startswith("warning: ") and "fc" in warned and "UserWarning" not in err and ".py:" not in err
    assert "wrote 2 table files" in out
    assert "emb_user" in out and "emb_item" in out and "vs trained" in out and "fc" not in out.split("wrote")[0]
    report = json.loads((out_dir / "export.json").read_text())
    assert {e["name"]: e["shape"] for e in report} == {"emb_user": [10, 16], "emb_item": [30, 8]}
    t = embcompress.open_table(out_dir / "emb_user.embc", verify="full")
    assert t.frequencies.tolist() == [sum(range(r, 100, 10)) for r in range(10)]
    # bad input: exit 1 with one line; a file that is not a state dict: exit 3
    code, _, err = run(["export", str(sd_path), "--fmt", "mxfp3", "--out-dir", str(out_dir)], capsys)
    assert code == 1 and "Unknown format 'mxfp3'" in err
    code, _, err = run(["export", str(sd_path), "--fmt", "mxint8", "--out-dir", str(out_dir), "--id-map", "nope"], capsys)
    assert code == 1 and "NAME=PATH" in err
    # a damaged id map stops the export (every byte is checked, as fit-hash checks earlier maps)
    raw = bytearray((tmp_path / "u.idmap").read_bytes())
    raw[-9] ^= 0xFF
    (tmp_path / "bad.idmap").write_bytes(bytes(raw))
    code, _, err = run(["export", str(sd_path), "--fmt", "mxint8", "--out-dir", str(tmp_path / "out2"),
                        "--id-map", f"emb_user={tmp_path / 'bad.idmap'}", "--quiet"], capsys)
    assert code == 3 and "bad.idmap" in err, err
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    assert run(["export", str(tmp_path / "junk.pt"), "--fmt", "mxint8", "--out-dir", str(out_dir)], capsys)[0] == 3
