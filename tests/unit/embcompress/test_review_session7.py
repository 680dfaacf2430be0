"""Defects the seventh session's reviews reported in files outside their own areas."""

import numpy as np
import pytest

import embcompress
from embcompress.container import write_artifact
from embcompress.errors import ArtifactError, ConfigError
from embcompress.store import TieredStore
from embcompress.table import TABLE_ALIGN, TABLE_KIND
from tests.conftest import fail_journal_pwrite


def _table(rows=64, dim=32):
    x = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    return embcompress.quantize(x, "mxint8")


@pytest.mark.parametrize("shape", [[64.0, 32], [64, "32"], [True, 32], [64, 32.5], "64"])
def test_store_refuses_a_header_shape_that_is_not_two_ints(tmp_path, shape):
    # int() of anything read 64.0 as 64, "32" as 32 and True as 1, as QuantizedTable no longer does
    q = _table()
    sections, config = q.to_sections()
    config["shape"] = shape
    path = tmp_path / "t.embc"
    write_artifact(path, TABLE_KIND, sections, config=config, align=TABLE_ALIGN)
    with pytest.raises(ArtifactError, match="inconsistent header"):
        TieredStore(path, dram_bytes=q.row_bytes * 4, policy="lru")


def test_saving_onto_a_folder_names_the_path_and_the_fix(tmp_path):
    # open() of the hidden temporary name raised IsADirectoryError naming that name, not the user's
    (tmp_path / "emb.table").mkdir()
    with pytest.raises(ConfigError) as err:
        _table().save(tmp_path / "emb.table")
    msg = str(err.value)
    assert str(tmp_path / "emb.table") in msg and "folder" in msg and ".tmp-" not in msg
    assert list((tmp_path / "emb.table").iterdir()) == []


@pytest.mark.parametrize("dim", [16, 4096])
def test_numpy_lookup_decodes_a_bounded_number_of_values_at_any_width(dim, monkeypatch):
    # it decoded 65,536 rows at a time whatever the width: 1 GiB of float32 at dim 4,096
    from embcompress.formats import decode_records
    from embcompress.kernels import reference

    monkeypatch.setattr(reference, "_CHUNK_VALUES", 64 * 256)
    rng = np.random.default_rng(1)
    q = embcompress.quantize(rng.standard_normal((50, dim)).astype(np.float32), "mxint8")
    indices = rng.integers(0, 50, 3000)
    offsets = np.arange(0, 3001, 3, dtype=np.int64)  # 1,000 bags of 3 and the end
    seen = []

    def counting(records, *a):
        seen.append(len(records))
        return decode_records(records, *a)

    out = np.empty((1000, dim), np.float32)
    reference._pool(counting, q.data, "mxint8", dim, q.block_size, indices, offsets, None, "sum", out)
    assert max(seen) * dim <= 64 * 256 and sum(seen) == 3000
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
    whole = embcompress.dequantize(q)[indices].reshape(1000, 3, dim)
    np.testing.assert_allclose(out, whole.sum(axis=1), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("writer", ["write_table", "save"])
@pytest.mark.parametrize("same_bytes", [False, True])
def test_a_table_written_over_one_with_an_unfinished_update_drops_that_update(tmp_path, monkeypatch, writer,
                                                                             same_bytes):
    # The journal of the old file's interrupted update stayed beside the new file: opening it was
    # refused ("move the journal away"), or, re-written byte for byte, the old update was applied.
    from embcompress.store import journal

    old, new = _table(), embcompress.quantize(np.full((64, 32), 0.5, np.float32), "mxint8")
    path = embcompress.write_table(tmp_path / "t.embc", old)
    real = fail_journal_pwrite(monkeypatch, 2)
    with pytest.raises(OSError, match="Input/output error"):
        journal.apply_update(path, "rows", np.array([1, 2, 3]), np.full((3, old.row_bytes), 0x22, np.uint8))
    monkeypatch.setattr(journal.os, "pwrite", real)
    assert journal.journal_path(path).exists()
    q = old if same_bytes else new
    if writer == "write_table":
        embcompress.write_table(path, q)
    else:
        q.save(path)
    assert not journal.journal_path(path).exists()
    got = np.asarray(embcompress.open_table(path, verify="full").data)
    np.testing.assert_array_equal(got, np.asarray(q.data))
