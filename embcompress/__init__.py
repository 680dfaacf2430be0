"""embcompress: compressed embedding tables for recommendation models, served fast.

The public names below are imported lazily, so ``import embcompress`` costs numpy only; torch and
the other heavy dependencies load with the modules that use them.
"""

from __future__ import annotations

import importlib

from .errors import (
    ArtifactError,
    BackendUnavailableError,
    ChecksumError,
    ConfigError,
    EmbcompressError,
    MissingArtifactError,
    NotFittedError,
    VersionError,
)

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "quantize": "embcompress.formats",
    "dequantize": "embcompress.formats",
    "QuantizedTable": "embcompress.table",
    "read_artifact": "embcompress.container",
    "write_artifact": "embcompress.container",
    "IdMap": "embcompress.idmap",
    "write_table": "embcompress.tablefile",
    "write_table_stream": "embcompress.tablefile",
    "open_table": "embcompress.tablefile",
    "load_state_dict": "embcompress.checkpoint",
    "pooled_lookup": "embcompress.kernels.lookup",
    "TieredStore": "embcompress.store",
    "reorder_rows": "embcompress.store",
    "string_ids": "embcompress.idhash",
    "hash_strings": "embcompress.idhash",
    "parse_hex32": "embcompress.idhash",
    "MISSING_ID": "embcompress.idhash",
}

# `export` is both a submodule and the function it defines: bind the function now (export.py
# imports torch only when called), or the first `import embcompress.export` would shadow it.
from .export import export  # noqa: E402

__all__ = [
    "export",
    "ArtifactError",
    "BackendUnavailableError",
    "ChecksumError",
    "ConfigError",
    "EmbcompressError",
    "MissingArtifactError",
    "NotFittedError",
    "VersionError",
    "__version__",
    *_LAZY,
]


# submodules reachable as attributes after a plain `import embcompress` (nn loads torch)
_SUBMODULES = {"container", "formats", "idhash", "idmap", "kernels", "nn", "store", "table", "tablefile"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embcompress' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
