import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBCOMPRESS_DATA", ROOT.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """Path into the shared real data sets; skips the test with the reason when absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set EMBCOMPRESS_DATA or place ../shared/data beside the repo)")
    return path


@pytest.fixture
def data_dir() -> Path:
    return data_path()
