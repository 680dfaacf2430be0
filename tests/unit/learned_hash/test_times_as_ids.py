"""A Parquet column of times or dates is read only as the time key: as a feature (or session key,
or label) it is refused up front, naming the types to use (it reached the SQL and failed there
with a raw DuckDB error, or Arrow's for dates)."""

import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from learned_hash import mine, read_log


@pytest.fixture
def log(tmp_path):
    t = pa.table({"u": [1, 2], "y": [0, 1], "ts": [datetime.datetime(2020, 1, 1), datetime.datetime(2020, 1, 2)],
                  "d": [datetime.date(2020, 1, 1)] * 2})
    pq.write_table(t, tmp_path / "log.parquet")
    return tmp_path / "log.parquet"


@pytest.mark.parametrize("kw", [dict(features=["u", "ts"]), dict(features=["u", "ts"], pairs=["u:ts"]),
                                dict(features=["d"]), dict(features=["u"], sequence_key="d", time_key="ts")])
def test_times_are_no_categorical_ids(log, kw):
    with pytest.raises(ConfigError, match=r"Parquet type (timestamp|date32).*cannot be a categorical id. Use integer or string"):
        mine(log, **kw)


def test_times_are_no_label(log):
    with pytest.raises(ConfigError, match="cannot be a label"):
        mine(log, features=["u"], label="ts")


def test_the_readers_refuse_them_alike_and_times_stay_the_time_key(log):
    with pytest.raises(ConfigError, match="cannot be a categorical id"):
        read_log(log, features=["ts"])
    assert mine(log, features=["u"], sequence_key="u", time_key="ts").n_rows == 2
    assert mine(log, features=["u"], sequence_key="u", time_key="d").n_rows == 2
