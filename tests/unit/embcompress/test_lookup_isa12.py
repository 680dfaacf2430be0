"""EMBCOMPRESS_LOOKUP_ISA chooses among a portable build's lookup kernels; a native build has one.
(The portable build itself: tests/e2e/test_portable_build12.py.)"""

import pytest

from embcompress.errors import ConfigError
from embcompress.kernels import _variant, compiled

native = pytest.mark.skipif(compiled("_lookup") is None or not compiled("_lookup").have_simd(),
                            reason="needs a native build with the vector decoders")


@native
def test_a_native_build_serves_its_own_kernel(monkeypatch):
    monkeypatch.delenv("EMBCOMPRESS_LOOKUP_ISA", raising=False)
    assert _variant("_lookup") == "_lookup"
    monkeypatch.setenv("EMBCOMPRESS_LOOKUP_ISA", "auto")
    assert _variant("_lookup") == "_lookup" and _variant("_idmap") == "_idmap"


@native
@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512", "AVX512_VBMI"])
def test_a_native_build_refuses_a_choice(monkeypatch, isa):
    monkeypatch.setenv("EMBCOMPRESS_LOOKUP_ISA", isa)
    with pytest.raises(ConfigError, match=r"portable build \(EMBCOMPRESS_PORTABLE=1\); this build has one.*Unset"):
        _variant("_lookup")


def test_an_unknown_choice_names_the_choices(monkeypatch):
    monkeypatch.setenv("EMBCOMPRESS_LOOKUP_ISA", "sse4")
    with pytest.raises(ConfigError, match=r"must be one of \('auto', 'baseline', 'avx512_vbmi', 'avx512', 'avx2'\)"):
        _variant("_lookup")
