import pytest

from tests.conftest import need_spark


@pytest.fixture(scope="module")
def spark():
    """A local Spark session for one test module (skips without pyspark or Java)."""
    need_spark()
    from learned_hash.mining.spark_engine import session

    s = session("local[2]")
    yield s
    s.stop()
