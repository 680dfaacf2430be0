"""The CTR evaluation harness: what compressing embedding tables costs a click model.

datasets (Frappe, Criteo, TalkingData, synthetic) -> splits -> per-feature maps of a compression
method at a byte budget -> a DLRM-style model trained on them -> tables stored in a format ->
test AUC and logloss over seeds, with a paired bootstrap against the full table. ``run_sweep``
runs a whole grid from a :class:`SweepConfig`; ``write_report`` writes its report.
Importing this package imports torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "CTRData": "analysis.ctr.data",
    "Splits": "analysis.ctr.data",
    "split_by_time": "analysis.ctr.data",
    "split_random": "analysis.ctr.data",
    "synthetic_log": "analysis.ctr.synthetic",
    "load_synthetic": "analysis.ctr.synthetic",
    "load_dataset": "analysis.ctr.datasets",
    "load_frappe": "analysis.ctr.datasets",
    "load_criteo": "analysis.ctr.datasets",
    "load_talkingdata": "analysis.ctr.datasets",
    "DLRM": "analysis.ctr.model",
    "TrainConfig": "analysis.ctr.train",
    "auc": "analysis.ctr.metrics",
    "logloss": "analysis.ctr.metrics",
    "paired_bootstrap": "analysis.ctr.metrics",
    "METHODS": "analysis.ctr.compression",
    "SweepConfig": "analysis.ctr.sweep",
    "SweepResult": "analysis.ctr.sweep",
    "run_sweep": "analysis.ctr.sweep",
    "load_sweep_data": "analysis.ctr.sweep",
    "write_report": "analysis.ctr.report",
}

__all__ = [*_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis.ctr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
