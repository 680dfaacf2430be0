"""An unknown format name says which known name was probably meant."""

import pytest

from embcompress.errors import ConfigError
from embcompress.formats.spec import get_format


@pytest.mark.parametrize("name, meant", [
    ("MXFP4", "'mxfp4_e2m1'"),  # as the demo's report prints it
    ("MXINT8", "'mxint8'"),
    ("mxfp8", "'mxfp8_e4m3' or 'mxfp8_e5m2'"),
    ("int8", "'int8_rowwise'"),
    ("mxfp4-e2m1", "'mxfp4_e2m1'"),
    ("mxfp4_e2m2", "'mxfp4_e2m1'?"),  # a typo
])
def test_a_near_name_is_suggested(name, meant):
    with pytest.raises(ConfigError, match="Use one of: mxfp8_e4m3") as err:
        get_format(name)
    assert f"Did you mean {meant}" in str(err.value)


@pytest.mark.parametrize("name", ["bogus", "mxfp9", "", 5, None])
def test_no_suggestion_without_a_near_name(name):
    with pytest.raises(ConfigError, match="Unknown format") as err:
        get_format(name)
    assert "Did you mean" not in str(err.value)
