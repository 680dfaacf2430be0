"""Review of the analysis path (round 9): sweep configs accepted then failing late or with raw
Python errors, and the numbers the reports print.

Fast: configs only, or tiny synthetic data.
"""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from embcompress.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
TINY = ROOT / "examples" / "sweeps" / "synthetic_tiny.json"


def _tiny(**changes) -> dict:
    cfg = json.loads(TINY.read_text())
    cfg.update(changes)
    return cfg


# --------------------------------------------------------------------------- extra / requantize


@pytest.mark.parametrize("name", ["extra", "requantize"])
@pytest.mark.parametrize("value", [5, [5], [["learned", ["fp32"]]], [["learned", {}]], [{"method": "learned", "format": 4}],
                                   {"method": "learned", "format": "fp32"}])
def test_extra_and_requantize_of_the_wrong_shape_are_named(name, value):
    # 5 and [5] raised the raw "TypeError: 'int' object is not iterable", a list or object as the
    # format "TypeError: unhashable type" (from the format lookup); an object instead of a list of
    # them was read as its keys
    from analysis.ctr.sweep import SweepConfig

    with pytest.raises(ConfigError, match=f"'{name}'"):
        SweepConfig.from_dict(_tiny(**{name: value}))


def test_extra_and_requantize_still_take_pairs_and_objects():
    from analysis.ctr.sweep import SweepConfig

    cfg = SweepConfig.from_dict(_tiny(extra=[["learned", "mxfp4_e2m1"]], requantize=[{"method": "learned", "format": "mxfp4_e2m1"}]))
    assert cfg.extra == (("learned", "mxfp4_e2m1"),)
    assert cfg.requantize == (("learned", "mxfp4_e2m1"),)
