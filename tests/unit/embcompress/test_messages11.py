"""Errors found by walking the README as a new user: each names what is wrong and the fix."""

import numpy as np
import pytest
import torch

from embcompress import export, open_table
from embcompress.errors import ArtifactError, ConfigError
from embcompress.idmap import IdMap


def test_a_file_of_another_kind_is_named_in_words_with_what_writes_the_expected_one(tmp_path):
    path = IdMap.from_arrays(np.arange(5), np.arange(5), 5).save(tmp_path / "m.idmap")
    with pytest.raises(ArtifactError, match=r"holds an id map \(kind 'idmap'\), not a compressed table \(kind "
                                            r"'table'\)\. Pass a file of the expected kind \(written by "
                                            r"`embcompress export` or embcompress.write_table\)\."):
        open_table(path)


def test_a_map_onto_another_row_count_names_both_counts_and_both_cases(tmp_path):
    """A 4096-row table (trained on some map's rows) with a 65,536-row map: the error named only
    the full-size case ('ids 0 .. 4095'), sending the user the wrong way."""
    emb = torch.nn.EmbeddingBag(4096, 8)
    idm = IdMap.from_arrays(np.arange(100_000, 170_000), np.arange(70_000) % 65_536, 65_536)
    with pytest.raises(ConfigError) as e:
        export({"emb.weight": emb.weight.detach()}, fmt="mxint8", id_maps={"emb": idm}, out_dir=tmp_path / "out")
    msg = str(e.value)
    assert "4096 trained rows" in msg and "a map onto 4096 rows" in msg and "ids 0 .. 4095" in msg
    assert "a map onto 65536 rows holding id 100000" in msg and not (tmp_path / "out").exists()
