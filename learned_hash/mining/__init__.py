"""Mining: count id accesses and co-occurrences in logs, on DuckDB (default) or Spark.

Each job is described once (:mod:`.jobs`) and every engine runs the same description.
"""

from __future__ import annotations

from .stats import LogStats

__all__ = ["LogStats", "mine"]


def __getattr__(name: str):
    if name == "mine":
        from .api import mine

        return mine
    raise AttributeError(f"module 'learned_hash.mining' has no attribute {name!r}")
