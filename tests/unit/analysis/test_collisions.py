import numpy as np
import pytest

from analysis.collisions import collision_report
from embcompress.errors import ConfigError
from embcompress.idmap import IdMap
from learned_hash.mining.stats import LogStats


def _stats():
    # id 1: 60 accesses (30 positive), id 2: 30 (0 positive), id 3: 10 (10 positive)
    return LogStats.from_arrays({"f": (np.array([1, 2, 3]), np.array([60, 30, 10]), np.array([30, 0, 10]))}, label="y")


def test_collision_report_literal_values():
    # id 1 alone on row 0; ids 2 and 3 share row 1
    m = IdMap.from_arrays([1, 2, 3], [0, 1, 1], 2)
    r = collision_report(m, _stats())["f"]
    assert r.shared_rows == 1 and r.rows_used == 2 and r.accesses == 100
    assert r.shared_access_share == pytest.approx(0.4)
    # sum c_i (1 - c_i / C_r) / total = (30 * (1 - 30/40) + 10 * (1 - 10/40)) / 100
    assert r.collision_rate == pytest.approx((30 * 0.25 + 10 * 0.75) / 100)
    # row 1: rates 0 (weight 30) and 1 (weight 10): mean 0.25, std sqrt(0.25*0.75)
    assert r.label_rate_spread == pytest.approx(np.sqrt(0.25 * 0.75))
    # busiest rows: 60, 40 -> 80 % needs 2 rows? 60 < 80 -> 2; 90 % -> 2; 99 % -> 2
    assert r.rows_for_share == {"0.8": 2, "0.9": 2, "0.99": 2}


def test_no_sharing_and_all_sharing():
    own = collision_report(IdMap.from_arrays([1, 2, 3], [0, 1, 2], 3), _stats(), "f")["f"]
    assert own.shared_access_share == 0 and own.collision_rate == 0 and own.label_rate_spread == 0.0
    assert own.rows_for_share["0.8"] == 2  # 60 + 30 >= 80
    one = collision_report(IdMap.from_arrays([1, 2, 3], [0, 0, 0], 1), _stats())["f"]
    assert one.shared_access_share == 1.0 and one.rows_for_share["0.99"] == 1


def test_mapping_of_maps_and_markdown():
    st = LogStats.from_arrays({"a": (np.array([1, 2]), np.array([5, 5])), "b": (np.array([7]), np.array([10]))})
    rep = collision_report({"a": IdMap.from_arrays([1, 2], [0, 0], 1), "b": IdMap.from_arrays([7], [0], 1)}, st)
    assert rep["a"].collision_rate == pytest.approx(0.5) and rep["a"].label_rate_spread is None
    assert rep["b"].collision_rate == 0
    md = rep.to_markdown()
    assert "| a |" in md and "| b |" in md
    assert set(rep.to_dict()) == {"a", "b"}


def test_bad_arguments():
    st = _stats()
    with pytest.raises(ConfigError, match="'feature' parameter"):
        collision_report({"f": IdMap.from_arrays([1], [0], 1)}, st, feature="g")
    with pytest.raises(ConfigError, match="'id_map' parameter"):
        collision_report(object(), st)
