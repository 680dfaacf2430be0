"""Test metrics of a click model: AUC, logloss, and a paired bootstrap of their differences.

Own NumPy implementations (no scikit-learn): AUC is the Mann-Whitney statistic with ties counted
half, logloss the mean binary cross-entropy with probabilities clipped to [eps, 1 - eps].

The bootstrap resamples test rows with replacement and applies the same resample to both models
(paired), so the interval is on the difference that the test-set sample leaves uncertain. Each
resample is a vector of row multiplicities; the weighted AUC is computed in O(n) from one sort,
so a thousand resamples of a 20k-row test set take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embcompress.errors import param_error

EPS = 1e-7


def _check(labels, scores, owner: str, name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1:  # (was blamed on the scores, with a "length" equal to their shape)
        raise param_error("labels", owner, "be a 1-d array, one 0/1 label a row", y.shape)
    if s.shape != y.shape:
        raise param_error(name, owner, f"be a 1-d array of the labels' length {y.shape}", s.shape)
    if y.size == 0:
        raise param_error("labels", owner, "hold at least one row", 0)
    if not np.isin(y, (0, 1)).all():
        raise param_error("labels", owner, "hold only 0 and 1", np.unique(y)[:5].tolist())
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:  # usually a model that diverged: say where
        raise param_error(name, owner, "be finite (NaN or inf usually means training diverged: lower the learning rate)",
                          f"NaN or inf at rows {bad[:10].tolist()}, {bad.size} of {s.size}")
    return y.astype(np.float64), s


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order and, in that order, the start of each run of equal scores."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return order, starts


def _weighted_auc(y_sorted: np.ndarray, w_sorted: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """AUC of each row of ``w_sorted`` (weights, shape (k, n) or (n,)) over rows sorted by score.

    For every group of tied scores: positives in it beat every negative of lower groups and tie
    (half credit) with the negatives of their own group.
    """
    pos = np.add.reduceat(w_sorted * y_sorted, starts, axis=-1)
    neg = np.add.reduceat(w_sorted * (1.0 - y_sorted), starts, axis=-1)
    below = np.cumsum(neg, axis=-1) - neg
    n_pos = pos.sum(axis=-1)
    n_neg = neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=-1) / (n_pos * n_neg)


def auc(labels, scores) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties half."""
    y, s = _check(labels, scores, "auc")
    if y.min() == y.max():
        raise param_error("labels", "auc", "hold both classes", f"only class {int(y[0])}")
    order, starts = _tie_groups(s)
    return float(_weighted_auc(y[order], np.ones_like(y), starts))


def _check_probs(p: np.ndarray, owner: str, param: str = "probs") -> None:
    # clipping would turn logits or other scores into a plausible-looking loss: refuse them
    if p.min() < 0.0 or p.max() > 1.0:
        raise param_error(param, owner, "hold probabilities in [0, 1] (apply a sigmoid to logits first)",
                          f"values from {p.min():g} to {p.max():g}")


def logloss(labels, probs) -> float:
    """Mean binary cross-entropy of probabilities in [0, 1], clipped to [1e-7, 1 - 1e-7]."""
    y, p = _check(labels, probs, "logloss", "probs")
    _check_probs(p, "logloss")
    p = np.clip(p, EPS, 1.0 - EPS)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def _row_logloss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    return -(y * np.log(p) + (1.0 - y) * np.log1p(-p))


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    mean: float
    low: float
    high: float
    level: float

    def to_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "level": self.level}


def paired_bootstrap(
    labels,
    probs_a: list,
    probs_b: list,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Interval on the difference ``a - b`` of AUC and of logloss, averaged over paired runs.

    ``probs_a[i]`` and ``probs_b[i]`` are the test predictions of run ``i`` (e.g. one seed) of the
    two models on the same test rows ``labels``. Every resample draws test rows with replacement
    and applies the same draw to every run of both models; the statistic is the mean over runs of
    the difference. Resamples holding only one class have no AUC and are left out of the AUC
    interval (not of the logloss one). Returns ``{"auc": Interval, "logloss": Interval}``.
    """
    owner = "paired_bootstrap"
    for name, runs in (("probs_a", probs_a), ("probs_b", probs_b)):
        # one run's predictions given as they are read as that many runs of one number each
        if np.ndim(runs) == 1 or (np.ndim(runs) == 0 and not isinstance(runs, (list, tuple))):
            raise param_error(name, owner, "be a list of runs, one array of test predictions per run (one run: "
                              f"[probs]); got one array of {np.size(runs)} numbers", f"shape {np.shape(runs)}")
    if len(probs_a) != len(probs_b) or not len(probs_a):
        raise param_error("probs_b", owner, f"hold as many runs as probs_a ({len(probs_a)}), at least one", len(probs_b))
    if isinstance(n_boot, bool) or not (isinstance(n_boot, (int, np.integer)) and n_boot >= 10):  # (np.int64 too)
        raise param_error("n_boot", owner, "be an integer >= 10", n_boot)
    n_boot = int(n_boot)
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)) or not 0.0 < level < 1.0:
        raise param_error("level", owner, "be in (0, 1)", level)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:  # (numpy's raw error else)
        raise param_error("seed", owner, "be an int >= 0", seed)
    y = None
    pairs = []
    for a, b in zip(probs_a, probs_b, strict=True):
        y, pa = _check(labels, a, owner, "probs_a")
        _, pb = _check(labels, b, owner, "probs_b")
        _check_probs(pa, owner, "probs_a")
        _check_probs(pb, owner, "probs_b")
        pairs.append((pa, pb))
    if y.min() == y.max():
        raise param_error("labels", owner, "hold both classes", f"only class {int(y[0])}")
    n = y.size
    rng = np.random.default_rng(seed)
    # Multiplicities of each test row in each resample, drawn in chunks to bound memory.
    chunk = max(1, min(n_boot, (1 << 24) // max(n, 1)))
    d_auc = np.zeros(n_boot)
    d_ll = np.zeros(n_boot)
    prepared = []
    for pa, pb in pairs:
        oa, sa = _tie_groups(pa)
        ob, sb = _tie_groups(pb)
        prepared.append((oa, sa, ob, sb, _row_logloss(y, pa) - _row_logloss(y, pb)))
    point_auc = np.mean([auc(y, pa) - auc(y, pb) for pa, pb in pairs])
    point_ll = np.mean([p[4].mean() for p in prepared])
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(k, n))
        flat = (draws + (np.arange(k) * n)[:, None]).ravel()
        w = np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)
        for oa, sa, ob, sb, dll in prepared:
            d_auc[start : start + k] += _weighted_auc(y[oa], w[:, oa], sa) - _weighted_auc(y[ob], w[:, ob], sb)
            d_ll[start : start + k] += (w @ dll) / n
    d_auc /= len(pairs)
    d_ll /= len(pairs)
    q = [(1.0 - level) / 2 * 100, (1.0 + level) / 2 * 100]
    # A resample without a positive or without a negative has no AUC (0/0, NaN): the AUC interval
    # is over the resamples that hold both classes.
    d_auc = d_auc[np.isfinite(d_auc)]
    if not d_auc.size:
        raise param_error("labels", owner, f"hold enough positives and negatives that some of the {n_boot} resamples "
                          "hold both (use a larger test split or raise n_boot)", f"{int(y.sum())} positives in {n} rows")
    lo_a, hi_a = np.percentile(d_auc, q)
    lo_l, hi_l = np.percentile(d_ll, q)
    return {
        "auc": Interval(float(point_auc), float(lo_a), float(hi_a), level),
        "logloss": Interval(float(point_ll), float(lo_l), float(hi_l), level),
    }


def mean_spread(values) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max of a list of numbers."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or not v.size:  # (numpy's raw "zero-size array to reduction operation minimum")
        raise param_error("values", "mean_spread", "be a non-empty list of numbers", values)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }
