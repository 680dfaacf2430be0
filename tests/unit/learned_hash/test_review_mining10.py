"""Review of mining (round 10), as a user with production logs on a data lake would run it:
Spark/Hive Parquet folders (partition folders, parts without an extension, _SUCCESS), compressed
text logs, sequence ties, and the engines' parameters. DuckDB, Spark (local mode) and the Python
readers (``iter_batches`` counted by ``LogStats.from_rows``) must agree or fail with an error
that names the fix. Spark cases share one session (a module fixture) and run in one test."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from learned_hash import mine
from tests.conftest import by_reader, need_spark


def counts(stats, feature):
    ids, n = stats.frequencies(feature)
    return dict(zip(ids.tolist(), n.tolist()))


def lz4_frame_csv(tmp_path):
    """A CSV compressed by the lz4 tool (or Python's lz4.frame, or Arrow): the LZ4 frame format."""
    p = tmp_path / "day_0.csv.lz4"
    with pa.output_stream(str(p), compression="lz4") as f:
        f.write(b"a,b\n1,2\n3,4\n")
    return p


def test_an_lz4_frame_log_names_the_fix_on_both_engines(tmp_path):
    # Hadoop's Lz4Codec reads its own block format only: Spark read the frame header as a block
    # length, ran its JVM out of memory (java.lang.OutOfMemoryError) and lost the session, every
    # later call failing with 'Connection refused'; and DuckDB's error sent the user to Spark
    p = lz4_frame_csv(tmp_path)
    assert by_reader(p, features=["a", "b"]).n_rows == 2  # the readers take the frame format
    with pytest.raises(ConfigError, match=r"(?s)LZ4.*frame.*gzip or zstd") as duck:
        mine(p, features=["a", "b"])
    assert "engine='spark'" not in str(duck.value)
    with pytest.raises(ConfigError, match=r"(?s)Spark cannot read.*LZ4 frame.*gzip or zstd"):
        mine(p, features=["a", "b"], engine="spark")
