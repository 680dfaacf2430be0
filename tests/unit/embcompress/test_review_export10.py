"""Review 10 of embcompress.export and `embcompress export`, as a demanding user exporting
trained models: each test names the defect it caught."""

import pytest

torch = pytest.importorskip("torch")

import embcompress  # noqa: E402
from embcompress import ConfigError  # noqa: E402


def _cli(argv, capsys):
    from embcompress.cli.main import main

    try:
        code = main(argv) or 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


# -- export -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, big", [("fp16", 1e6), ("int4_rowwise", 1e6), ("int8_rowwise", 3e38)])
def test_a_table_beyond_the_formats_range_is_refused_by_name_before_any_file(tmp_path, fmt, big):
    # The format's range was checked only as each table was quantized and written: the tables
    # before it were written and export.json was not, so the folder mixed this export's files
    # with an older export.json. The error named no table ("The table passed to quantize has
    # rows [0] ...") and told export's caller to pass nonfinite='nan_block', which export does
    # not take. Now refused before any file, naming the table and what to do.
    torch.manual_seed(0)
    sd = {"a_emb.weight": torch.randn(10, 8), "b_emb.weight": torch.randn(10, 8), "c_emb.weight": torch.randn(10, 8)}
    sd["b_emb.weight"][3, 1], sd["b_emb.weight"][3, 2] = big, -big  # (int8_rowwise: a range beyond float32's)
    sd["b_emb.weight"][7, 0], sd["b_emb.weight"][7, 5] = -big, big
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        embcompress.export(sd, fmt=fmt, out_dir=out, mode="sum")
    msg = str(info.value)
    assert "'b_emb'" in msg and fmt in msg and "[3, 7]" in msg, msg
    assert "nonfinite" not in msg, msg
    assert not out.exists()


def test_export_cli_on_a_state_dict_of_meta_tensors_names_no_option(tmp_path, capsys, monkeypatch):
    # The refusal named the 'tables' parameter, so the command added "(on the command line:
    # --table)": no --table was given, and none would load the weights.
    monkeypatch.chdir(tmp_path)
    torch.save({"emb_user.weight": torch.empty(10, 4, device="meta")}, "sd.pt")
    code, out = _cli(["export", "sd.pt", "--fmt", "mxint8", "--out-dir", "out", "--quiet", "--mode", "sum"], capsys)
    assert code == 1
    assert "meta device" in out.err and "--table" not in out.err, out.err
