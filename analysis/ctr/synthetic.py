"""A synthetic click log with Zipf ids and planted groups of ids that behave alike.

Each feature's ids are split into groups. Ids are drawn with Zipf popularity; the first feature
(the "user") is drawn freely, and each other feature, with probability ``affinity``, from one of
the few groups the user's group prefers (so co-occurrence reveals the groups), else freely. The
click probability depends on the ids only through their groups (a bias per group plus dot
products of group vectors across features), so ids of one group are interchangeable for the
model: a map that puts each group in one row loses nothing, a random one mixes groups and loses.
That is the sanity check of the whole harness, and the generator's seed is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embcompress.errors import param_error

from .data import CTRData, Splits, split_by_time


@dataclass(frozen=True)
class SyntheticLog:
    """The generated rows and the truth: ``groups[feature]`` is the group of every id (by id)."""

    data: CTRData
    groups: dict[str, np.ndarray]
    seed: int


def _zipf_probs(n: int, a: float, rng) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** a
    return (p / p.sum())[rng.permutation(n)]  # popularity unrelated to the id's value


def synthetic_log(
    n_rows: int = 100_000,
    *,
    vocab: tuple[int, ...] = (2000, 5000, 200, 20),
    n_groups: tuple[int, ...] = (20, 50, 10, 4),
    features: tuple[str, ...] | None = None,
    zipf: float = 1.05,
    affinity: float = 0.8,
    n_dense: int = 0,
    signal: float = 1.5,
    seed: int = 0,
) -> SyntheticLog:
    """Generate ``n_rows`` rows; see the module docstring for the process."""
    owner = "synthetic_log"
    if not (isinstance(n_rows, int) and n_rows >= 10):
        raise param_error("n_rows", owner, "be an integer >= 10", n_rows)
    def is_int(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    def is_number(x):
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and np.isfinite(x)

    for name, sizes in (("vocab", vocab), ("n_groups", n_groups)):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or not all(is_int(x) and x >= 1 for x in sizes):
            raise param_error(name, owner, "be a list of integers >= 1, one per feature", sizes)
    if len(vocab) < 2 or len(n_groups) != len(vocab):
        raise param_error("n_groups", owner, f"have one entry per feature ({len(vocab)}), at least two features", n_groups)
    for v, g in zip(vocab, n_groups, strict=True):
        if not (1 <= g <= v):
            raise param_error("n_groups", owner, "hold, per feature, between 1 and the vocabulary size groups", n_groups)
    if not (is_number(affinity) and 0.0 <= affinity <= 1.0):
        raise param_error("affinity", owner, "be in [0, 1]", affinity)
    if not (is_number(zipf) and zipf >= 0):
        raise param_error("zipf", owner, "be a number >= 0 (the Zipf exponent of id popularity)", zipf)
    if not is_number(signal):
        raise param_error("signal", owner, "be a finite number (the strength of the planted click signal)", signal)
    if not (is_int(n_dense) and n_dense >= 0):
        raise param_error("n_dense", owner, "be an integer >= 0", n_dense)
    if features is not None and (isinstance(features, (str, bytes)) or not hasattr(features, "__iter__")
                                 or not all(isinstance(f, str) and f for f in features)
                                 or len(set(features)) != len(tuple(features))):
        # a string was split into one-letter names; a name given twice made both columns read as the first
        raise param_error("features", owner, "be a list of distinct feature names (text), one per vocabulary", features)
    names = tuple(features) if features is not None else tuple(["user", "item", "category", "context", *[f"f{i}" for i in range(4, len(vocab))]][: len(vocab)])
    if len(names) != len(vocab):
        raise param_error("features", owner, f"name every feature ({len(vocab)})", features)

    rng = np.random.default_rng(seed)
    n_f = len(vocab)
    k = 4  # dimension of the latent group vectors
    groups = {}
    probs = []
    members = []  # members[f][g] = (ids, within-group probabilities)
    for f in range(n_f):
        gid = rng.permutation(np.arange(vocab[f]) % n_groups[f]).astype(np.int64)
        groups[names[f]] = gid
        p = _zipf_probs(vocab[f], zipf, rng)
        probs.append(p)
        per = []
        for g in range(n_groups[f]):
            ids = np.flatnonzero(gid == g)
            per.append((ids, p[ids] / p[ids].sum()))
        members.append(per)
    vectors = [rng.normal(0.0, 1.0 / np.sqrt(k), size=(g, k)) for g in n_groups]
    biases = [rng.normal(0.0, 0.5, size=g) for g in n_groups]
    # Each user group prefers 2 groups of every other feature.
    prefer = [rng.integers(0, n_groups[f], size=(n_groups[0], 2)) for f in range(n_f)]

    cat = np.empty((n_rows, n_f), dtype=np.int64)
    cat[:, 0] = rng.choice(vocab[0], size=n_rows, p=probs[0])
    g_user = groups[names[0]][cat[:, 0]]
    for f in range(1, n_f):
        col = rng.choice(vocab[f], size=n_rows, p=probs[f])
        tied = rng.random(n_rows) < affinity
        want = prefer[f][g_user, rng.integers(0, 2, size=n_rows)]
        for g in np.unique(want[tied]):
            rows = np.flatnonzero(tied & (want == g))
            ids, p = members[f][g]
            col[rows] = rng.choice(ids, size=rows.size, p=p)
        cat[:, f] = col

    g_of = [groups[names[f]][cat[:, f]] for f in range(n_f)]
    logit = np.full(n_rows, -0.5)
    for f in range(n_f):
        logit += biases[f][g_of[f]]
        for h in range(f + 1, n_f):
            logit += np.einsum("ij,ij->i", vectors[f][g_of[f]], vectors[h][g_of[h]]) * 2.0
    dense = None
    dense_names: tuple[str, ...] = ()
    if n_dense:
        dense = rng.normal(size=(n_rows, n_dense)).astype(np.float32)
        logit += dense @ rng.normal(0.0, 0.3, size=n_dense)
        dense_names = tuple(f"d{j}" for j in range(n_dense))
    label = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-signal * logit))).astype(np.float32)
    return SyntheticLog(CTRData(names, cat, label, dense, dense_names), groups, seed)


def load_synthetic(n_rows: int = 100_000, *, seed: int = 0, fractions=(0.8, 0.1, 0.1), **kwargs) -> Splits:
    """A synthetic log split by row order (its time): the first rows train, the last test."""
    log = synthetic_log(n_rows, seed=seed, **kwargs)
    info = {"source": "synthetic", "seed": seed, "n_rows": n_rows, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}}
    return split_by_time(log.data, None, fractions, name="synthetic", info=info)
