"""A click log in memory, split for training: categorical ids, optional dense features, labels.

Every dataset of the harness (real logs and the synthetic generator) becomes a ``CTRData`` and is
split with one of two seeded rules: by time where the log has time (earliest rows train, latest
test), at random otherwise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from embcompress.errors import ConfigError, param_error


@dataclass(frozen=True)
class CTRData:
    """Rows of a click log: ``cat`` raw int64 ids (n, F), ``label`` 0/1 float32, ``dense`` (n, D)."""

    features: tuple[str, ...]
    cat: np.ndarray
    label: np.ndarray
    dense: np.ndarray | None = None
    dense_names: tuple[str, ...] = ()

    def __post_init__(self):
        # a (n, 1) label failed in torch's loss, -1/1 labels at the first validation AUC
        if not isinstance(self.label, np.ndarray) or self.label.ndim != 1:
            raise param_error("label", "CTRData", "be a 1-d numpy array, one 0/1 label a row",
                              getattr(self.label, "shape", type(self.label).__name__))
        if not np.isin(self.label, (0, 1)).all():
            raise param_error("label", "CTRData", "hold only 0 and 1 (map a log's -1/1 labels to 0/1)",
                              np.unique(self.label)[:5].tolist())
        n = self.label.shape[0]
        if self.cat.ndim != 2 or self.cat.shape != (n, len(self.features)):
            raise param_error("cat", "CTRData", f"have shape (n_rows, {len(self.features)})", self.cat.shape)
        if self.dense is not None and (self.dense.ndim != 2 or self.dense.shape[0] != n):
            raise param_error("dense", "CTRData", f"have shape ({n}, n_dense)", self.dense.shape)

    @property
    def n_rows(self) -> int:
        return int(self.label.shape[0])

    @property
    def n_dense(self) -> int:
        return 0 if self.dense is None else int(self.dense.shape[1])

    def column(self, feature: str) -> np.ndarray:
        return self.cat[:, self.features.index(feature)]

    def take(self, index: np.ndarray) -> CTRData:
        return CTRData(
            self.features,
            np.ascontiguousarray(self.cat[index]),
            np.ascontiguousarray(self.label[index]),
            None if self.dense is None else np.ascontiguousarray(self.dense[index]),
            self.dense_names,
        )

    def to_arrow(self):
        """The rows as a pyarrow table (label, dense, then categorical columns), for mining."""
        import pyarrow as pa

        cols = {"label": pa.array(self.label.astype(np.int8))}
        for j, name in enumerate(self.dense_names):
            cols[name] = pa.array(self.dense[:, j])
        for j, name in enumerate(self.features):
            cols[name] = pa.array(self.cat[:, j])
        return pa.table(cols)


@dataclass(frozen=True)
class Splits:
    """Train / validation / test parts of one dataset, and how they were made."""

    name: str
    train: CTRData
    validation: CTRData
    test: CTRData
    info: dict = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return self.train.features

    def vocab_sizes(self) -> dict[str, int]:
        """Distinct training ids per feature."""
        return {f: int(np.unique(self.train.column(f)).size) for f in self.features}

    def check_classes(self) -> None:
        """Refuse parts without both classes: validation and test AUC need positives and negatives,
        and a model trained on one class learns nothing (tiny ``n_rows`` on a rare label does this)."""
        bad = []
        for part in ("train", "validation", "test"):
            y = getattr(self, part).label
            n_pos = int((y > 0).sum())
            if n_pos in (0, y.size):
                bad.append(f"the {part} split ({y.size} rows) has no {'positive' if n_pos == 0 else 'negative'} rows")
        if bad:
            raise ConfigError(
                f"In the {self.name!r} data, {' and '.join(bad)}; AUC needs both classes. Read more rows (raise "
                f"'n_rows', or leave it unset for the whole log) or use a larger log."
            )

    def compressible(self, min_vocab: int) -> list[str]:
        """The features with at least ``min_vocab`` distinct training ids (smaller tables stay full)."""
        vocab = self.vocab_sizes()
        out = [f for f in self.features if vocab[f] >= min_vocab]
        if not out:
            raise ConfigError(
                f"No feature of {self.name!r} has at least min_vocab={min_vocab} distinct training ids "
                f"(largest: {max(vocab.values())}); nothing is worth compressing. Lower 'min_vocab' "
                f"or use a larger log."
            )
        return out


def _check_fractions(fractions, owner: str) -> tuple[float, float, float]:
    try:
        f = tuple(float(x) for x in fractions)
    except (TypeError, ValueError):  # one number, or text
        f = ()
    if len(f) != 3 or not all(np.isfinite(f)) or min(f) <= 0 or abs(sum(f) - 1.0) > 1e-6:
        raise param_error("fractions", owner, "be three positive shares (train, validation, test) summing to 1", fractions)
    return f


def _cut(n: int, fractions) -> tuple[int, int]:
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    return a, b


def split_by_time(data: CTRData, time: np.ndarray | None, fractions=(0.8, 0.1, 0.1), *, name: str = "", info=None) -> Splits:
    """Earliest rows train, then validation, latest test (``time=None``: the rows' own order).

    A stable sort keeps the file order among rows of equal time, so the split is deterministic.
    Rows without a time (NaT, NaN) cannot be placed: they are left out and counted in
    ``info["rows_without_time"]`` (sorted, they came last and landed in the test split).
    """
    fractions = _check_fractions(fractions, "split_by_time")
    meta = {"split": "time", "fractions": list(fractions), **(info or {})}
    if time is None:
        order = np.arange(data.n_rows)
    else:
        time = np.asarray(time)
        if time.shape != (data.n_rows,):  # fewer times dropped the other rows from every split
            raise param_error("time", "split_by_time", f"hold one time per row of the data ({data.n_rows})", time.shape)
        missing = np.isnat(time) if time.dtype.kind in "mM" else np.isnan(time) if time.dtype.kind == "f" else np.zeros(time.shape, bool)
        order = np.flatnonzero(~missing)
        order = order[np.argsort(time[order], kind="stable")]
        meta["rows_without_time"] = int(missing.sum())
        if missing.any():
            warnings.warn(f"left out {int(missing.sum())} rows without a time from the time split "
                          f"(counted in info['rows_without_time'])", stacklevel=2)
    a, b = _cut(order.size, fractions)
    return Splits(name, data.take(order[:a]), data.take(order[a:b]), data.take(order[b:]), meta)


def split_random(data: CTRData, fractions=(0.7, 0.1, 0.2), *, seed: int = 0, name: str = "", info=None) -> Splits:
    """A seeded random split, for logs without time (the seed is recorded in ``info``)."""
    fractions = _check_fractions(fractions, "split_random")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:  # (numpy's raw error else)
        raise param_error("seed", "split_random", "be an int >= 0", seed)
    seed = int(seed)  # recorded in info, which results.json holds
    order = np.random.default_rng(seed).permutation(data.n_rows)
    a, b = _cut(data.n_rows, fractions)
    meta = {"split": "random", "split_seed": seed, "fractions": list(fractions), **(info or {})}
    return Splits(name, data.take(order[:a]), data.take(order[a:b]), data.take(order[b:]), meta)
