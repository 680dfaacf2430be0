import pytest

from embcompress.errors import ConfigError
from embcompress.kernels import backend, resolve_threads


def test_backend_env_override(monkeypatch):
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
    assert backend() == "numpy"
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "fortran")
    with pytest.raises(ConfigError, match="EMBCOMPRESS_KERNELS"):
        backend()


def test_threads_honour_omp_and_validate():
    assert resolve_threads(3) == 3
    assert resolve_threads(None) >= 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="n_threads"):
            resolve_threads(bad)
