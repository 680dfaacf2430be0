"""Review of embcompress.IdMap (round 9): its records are dicts, refused in its own terms otherwise."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.idmap import IdMap


@pytest.mark.parametrize("name,value", [("config", "learned"), ("inputs", ["a.csv"]), ("meta", 3)])
def test_a_record_that_is_not_a_dict_is_refused_naming_it(name, value):
    # dict(value) raised Python's raw "dictionary update sequence element #0 has length 1; 2 is
    # required" (or "'int' object is not iterable")
    with pytest.raises(ConfigError, match=rf"'{name}' parameter of IdMap.from_arrays must be a dict"):
        IdMap.from_arrays([1], [0], 4, **{name: value})
    m = IdMap.from_arrays(np.array([1]), [0], 4, **{name: {"k": 1}})
    assert getattr(m, name) == {"k": 1}


@pytest.mark.parametrize("path", [None, 5, b"maps/C3.idmap"])
def test_a_path_that_is_not_a_path_is_refused_naming_it(path):
    # save and load raised Python's raw "expected str, bytes or os.PathLike object, not NoneType"
    m = IdMap.from_arrays([1], [0], 4)
    with pytest.raises(ConfigError, match=r"'path' parameter of IdMap.save must be a path"):
        m.save(path)
    with pytest.raises(ConfigError, match=r"'path' parameter of IdMap.load must be a path"):
        IdMap.load(path)
