"""The same mining jobs on Spark (local mode) give exactly DuckDB's counts."""

import numpy as np
import pytest

from tests.conftest import need_spark

pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]

need_spark(allow_module_level=True)

from learned_hash import mine  # noqa: E402
from learned_hash.logs import BadLineError  # noqa: E402


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """A Criteo-format log with skew, missing values, sessions, and three malformed lines."""
    rng = np.random.default_rng(11)
    path = tmp_path_factory.mktemp("spark") / "log.txt"
    with open(path, "w") as fh:
        for _ in range(2000):
            ints = [str(rng.integers(0, 30)), str(rng.integers(0, 25))] + [""] * 11
            c2 = "" if rng.random() < 0.2 else f"{rng.integers(0, 40):x}"
            cats = [f"{rng.zipf(1.4) % 300:08x}", c2] + ["0a"] * 24
            fh.write("\t".join([str(rng.integers(0, 2)), *ints, *cats]) + "\n")
        fh.write("1\t2\n")  # too few fields
        fh.write("\t".join(["1"] * 14 + ["zz"] + ["0a"] * 25) + "\n")  # not hex
        fh.write("\t".join(["1"] * 15 + ["0a"] * 26) + "\n")  # too many fields
    return path


def test_spark_counts_equal_duckdb(spark, log):
    kw = dict(features=["C1", "C2"], label="label", pairs=[("C1", "C2")],
              sequence_key="I2", time_key="I1", format="criteo", on_bad_line="skip")
    on_duckdb = mine(log, **kw)
    on_spark = mine(log, engine="spark", **kw)
    assert on_spark.engine == "spark"
    assert (on_spark.n_rows, on_spark.bad_lines) == (on_duckdb.n_rows, on_duckdb.bad_lines) == (2000, 3)
    assert on_spark == on_duckdb  # every frequency, positive, pair (by label) and sequence array
    with pytest.raises(BadLineError, match="line 2001"):
        mine(log, engine="spark", features=["C1"], format="criteo")
