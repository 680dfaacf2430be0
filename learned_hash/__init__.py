"""learned_hash: the offline side. Read logs, mine them, learn which ids may share a row.

The public names are imported lazily, so ``import learned_hash`` stays cheap.
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_LAZY = {
    "mine": "learned_hash.mining",
    "LogStats": "learned_hash.mining.stats",
    "LogSchema": "learned_hash.logs",
    "iter_batches": "learned_hash.logs",
    "read_log": "learned_hash.logs",
    "fit_hash": "learned_hash.build",
    "coaccess_matrix": "learned_hash.coaccess",
}

__all__ = [*_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'learned_hash' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
