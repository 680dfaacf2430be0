"""Frequency-weighted k-means on id embeddings (FAISS), with optional capacity balancing.

Each id is a point weighted by its access count, so centroids follow the traffic: a busy region
of the embedding space gets more buckets than a quiet one, and buckets balance by traffic rather
than by id count. Seeding is k-means++ with each point counted by its weight (on a traffic-weighted
sample of ``8 k`` candidates), then FAISS runs the weighted Lloyd iterations (imported lazily);
its subsampling settings (``max_points_per_centroid``) are recorded in ``settings_``.

For many clusters (above ``two_level_above``) a flat k-means costs ``n x k`` distances per
iteration (1M ids x 65k buckets is hours on a laptop), so it runs in two levels: first
``ceil(sqrt(k))`` coarse clusters, then each coarse cluster is split into a number of buckets
proportional to its traffic (at least one, at most its id count). That costs about
``2 n sqrt(k)`` distances per iteration.

Capacity balancing (``max_share``): after k-means, a bucket whose traffic exceeds
``max_share x total`` keeps its ids nearest the centroid up to the cap; the rest move, heaviest
first, to the nearest of their 16 nearest buckets with room, else to the least loaded bucket.
A single id heavier than the cap stays alone on its bucket (the cap cannot split an id); a
second one of a bucket takes the least loaded bucket, whose ids move as evicted ones do.
"""

from __future__ import annotations

import math
import os

import numpy as np

from embcompress.errors import BackendUnavailableError, NotFittedError, param_error
from embcompress.kernels import resolve_threads

_CANDIDATES = 16  # buckets an evicted id may move to, nearest first
_POOL = 8  # seeding candidates per cluster
_SMALL = 1 << 22  # points x clusters below which one k-means runs on one thread
# FAISS computes squared distances in float32, and ||x - c||^2 <= 4 max ||x||^2: beyond this squared
# norm they overflow to inf, the assignment fails, and FAISS's C++ exception aborts the process
MAX_SQ_NORM = float(np.finfo(np.float32).max) / 4


def too_large(X) -> float | None:
    """The largest squared norm of the rows of ``X`` when it exceeds :data:`MAX_SQ_NORM`, else None."""
    if X.size == 0:
        return None
    sq = float(np.max(np.einsum("ij,ij->i", X, X, dtype=np.float64)))
    return sq if not sq <= MAX_SQ_NORM else None


def _check_points(X: np.ndarray, owner: str) -> None:
    """A ConfigError naming ``owner`` unless every point of ``X`` (float32) is finite and within
    :data:`MAX_SQ_NORM`, past which FAISS's distances overflow and it aborts the process."""
    if not np.isfinite(X).all():
        raise param_error("X", owner, "hold finite values", "NaN or infinite entries")
    sq = too_large(X)
    if sq is not None:
        raise param_error("X", owner, f"hold points of squared norm at most {MAX_SQ_NORM:.3g} (FAISS's float32 "
                          f"distances overflow beyond); scale the points, e.g. to unit length",
                          f"a point of squared norm {sq:.3g}")


def _faiss():
    try:
        import faiss
    except ImportError:
        raise BackendUnavailableError(
            "learned_hash.cluster needs FAISS. Install it with `pip install faiss-cpu`."
        ) from None
    return faiss


def _weighted_seeding(X, w, k, rng):
    """k-means++ seeding (D^2 sampling) where each point also counts by its weight.

    Lloyd's iterations only move centroids locally, so where they start decides where the buckets
    go: seeding by traffic puts them where the traffic is. To stay cheap for large ``n``, the
    candidates are ``_POOL x k`` points drawn in proportion to weight (then counted once each).
    """
    n = X.shape[0]
    p = w.astype(np.float64)
    if p.sum() <= 0:
        p = np.ones(n)
    if n > _POOL * k:
        idx = rng.choice(n, size=_POOL * k, p=p / p.sum())
        P, pw = X[idx].astype(np.float64), np.ones(idx.size)
    else:
        P, pw = X.astype(np.float64), p
    chosen = np.empty((k, X.shape[1]))
    first = rng.choice(P.shape[0], p=pw / pw.sum())
    chosen[0] = P[first]
    d2 = ((P - chosen[0]) ** 2).sum(axis=1)
    for i in range(1, k):
        q = pw * d2
        total = q.sum()
        if total <= 0:  # every candidate already is a centre: top up with any points
            chosen[i:] = X[rng.choice(n, size=k - i, replace=False)]
            break
        j = rng.choice(P.shape[0], p=q / total)
        chosen[i] = P[j]
        np.minimum(d2, ((P - P[j]) ** 2).sum(axis=1), out=d2)
    return chosen.astype(np.float32)


class FrequencyKMeans:
    """k-means of id embeddings weighted by access counts.

    Parameters: ``n_clusters``; ``n_iter`` (Lloyd iterations per k-means); ``max_points_per_centroid``
    (FAISS subsamples to ``k x`` this many points per k-means); ``two_level_above`` (cluster count
    from which the two-level scheme runs); ``max_share`` (None, or the largest share of total traffic
    one bucket may carry); ``n_threads`` (None: the machine's, honouring ``OMP_NUM_THREADS``); ``seed``.

    Fitted: ``labels_`` (bucket of each point, int64), ``cluster_centers_`` (float32),
    ``bucket_weight_`` (traffic per bucket), ``n_clusters_`` (``min(n_clusters, n_points)``),
    ``moved_by_balance_`` (points moved by capacity balancing), ``settings_`` (what ran, recorded in
    id-map files).
    """

    def __init__(self, n_clusters: int, *, n_iter: int = 20, max_points_per_centroid: int = 256,
                 two_level_above: int = 4096, max_share: float | None = None,
                 n_threads: int | None = None, seed: int = 0):
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.max_points_per_centroid = max_points_per_centroid
        self.two_level_above = two_level_above
        self.max_share = max_share
        self.n_threads = n_threads
        self.seed = seed

    def _validate(self):
        owner = "FrequencyKMeans"
        for name, low in (("n_clusters", 1), ("n_iter", 1), ("max_points_per_centroid", 1), ("two_level_above", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise param_error(name, owner, f"be an int >= {low}", v)
        if self.seed >= 2**31:
            raise param_error("seed", owner, "be below 2**31 (FAISS seeds are 32-bit)", self.seed)
        for name in ("n_iter", "max_points_per_centroid"):  # FAISS's C int (its SWIG layer raised OverflowError)
            if getattr(self, name) > 2**31 - 1:
                raise param_error(name, owner, f"be an int in [1, {2**31 - 1}]", getattr(self, name))
        if self.max_share is not None:
            s = self.max_share
            # NumPy numbers too, as fit_hash passes them on (np.float32 is no Python float)
            if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) or not 0 < s <= 1:
                raise param_error("max_share", owner, "be None or a float in (0, 1]", s)
            if s * self.n_clusters < 1:
                raise param_error("max_share", owner, f"be at least 1 / n_clusters = {1 / self.n_clusters:.3g} "
                                  f"(the buckets must be able to carry all traffic)", s)
        # The labels do not depend on the thread count; unclamped, OpenMP set up every thread asked
        # for (200,000 crashed the process, 2**31 overflowed FAISS's int).
        # a NumPy integer as the int it is (fit_hash accepts one; the resolver takes Python ints)
        n_threads = int(self.n_threads) if isinstance(self.n_threads, np.integer) else self.n_threads
        return min(resolve_threads(n_threads), 4 * (os.cpu_count() or 1))

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("n_clusters", "n_iter", "max_points_per_centroid",
                                              "two_level_above", "max_share", "n_threads", "seed")}

    # -- k-means ------------------------------------------------------------------------------

    def _kmeans(self, X, w, k, seed):
        """Centroids and labels of one weighted k-means; k <= len(X)."""
        n = X.shape[0]
        if k >= n:
            return X.copy(), np.arange(n, dtype=np.int64)
        if k == 1:
            c = (np.average(X, axis=0, weights=w) if w.sum() > 0 else X.mean(axis=0))[None].astype(np.float32)
            return c, np.zeros(n, dtype=np.int64)
        if not w.sum() > 0:  # no traffic at all: FAISS's weighted means would be 0/0
            w = np.ones_like(w)
        faiss = _faiss()
        # A small k-means (the second level's) is done in milliseconds; OpenMP's fork and barrier
        # per iteration would cost more than it saves, more so on a busy machine.
        faiss.omp_set_num_threads(1 if n * k < _SMALL else self._threads)
        # plain ints: FAISS's SWIG layer refuses NumPy integers, which validation accepts
        km = faiss.Kmeans(X.shape[1], k, niter=int(self.n_iter), seed=int(seed) % 2**31, verbose=False,
                          max_points_per_centroid=int(self.max_points_per_centroid), min_points_per_centroid=1)
        km.train(X, weights=w, init_centroids=_weighted_seeding(X, w, k, np.random.default_rng(seed)))
        _, lab = km.index.search(X, 1)
        return km.centroids.astype(np.float32), lab[:, 0].astype(np.int64)

    @staticmethod
    def _allocate(weight, counts, k):
        """Buckets per coarse cluster: proportional to traffic, each in [1, its id count], sum k."""
        total = weight.sum()
        share = weight / total * k if total > 0 else counts / counts.sum() * k
        alloc = np.clip(np.floor(share).astype(np.int64), 1, counts)
        while alloc.sum() != k:
            if alloc.sum() < k:
                room = np.flatnonzero(alloc < counts)
                need = share[room] / (alloc[room] + 1)  # who is furthest below its share
                pick = room[np.argsort(-need, kind="stable")[: k - alloc.sum()]]
                alloc[pick] += 1
            else:
                over = np.flatnonzero(alloc > 1)
                excess = alloc[over] / np.maximum(share[over], 1e-12)
                pick = over[np.argsort(-excess, kind="stable")[: alloc.sum() - k]]
                alloc[pick] -= 1
        return alloc

    def fit(self, X, sample_weight=None, *, progress=None) -> "FrequencyKMeans":
        """Cluster the rows of ``X`` (n x d embeddings) weighted by ``sample_weight`` (access counts;
        None: all 1). ``progress(done, total)`` is called as coarse clusters are split."""
        threads = self._validate()
        owner = "FrequencyKMeans.fit"
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1 or X.dtype.kind not in "fiu":
            raise param_error("X", owner, "be a non-empty 2-D numeric array (one row a point)", f"shape {X.shape}, dtype {X.dtype}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        _check_points(X, owner)
        n = X.shape[0]
        if sample_weight is None:
            w = np.ones(n, dtype=np.float32)
        else:
            w = np.asarray(sample_weight)
            if w.dtype.kind not in "biuf":  # (text failed with numpy's raw ValueError)
                raise param_error("sample_weight", owner, f"be {n} finite non-negative weights", f"dtype {w.dtype}")
            w = w.astype(np.float64)
            if w.shape != (n,):
                raise param_error("sample_weight", owner, f"be {n} finite non-negative weights", f"shape {w.shape}")
            if not np.isfinite(w).all():
                raise param_error("sample_weight", owner, f"be {n} finite non-negative weights",
                                  f"a non-finite weight at index {int(np.flatnonzero(~np.isfinite(w))[0])}")
            if (w < 0).any():
                i = int(np.flatnonzero(w < 0)[0])
                raise param_error("sample_weight", owner, f"be {n} finite non-negative weights",
                                  f"a negative weight ({w[i]:g}) at index {i}")
            if not w.sum() <= np.finfo(np.float32).max:  # (they became inf: a raw "Probabilities contain NaN")
                raise param_error("sample_weight", owner, f"be {n} finite non-negative weights with a total "
                                  f"below {float(np.finfo(np.float32).max):.3g} (FAISS weighs in float32); scale them",
                                  f"a total of {w.sum():.3g}")
            w = w.astype(np.float32)
        k = min(int(self.n_clusters), n)
        faiss = _faiss()
        before = faiss.omp_get_max_threads()
        self._threads = threads
        faiss.omp_set_num_threads(threads)
        try:
            if k <= self.two_level_above or k >= n:
                centers, labels = self._kmeans(X, w, k, self.seed)
                coarse = None
                if progress is not None:
                    progress(1, 1)
            else:
                coarse = math.ceil(math.sqrt(k))
                _, top = self._kmeans(X, w, coarse, self.seed)
                counts = np.bincount(top, minlength=coarse)
                keep = counts > 0  # FAISS may leave a coarse cluster empty; it gets no buckets
                groups = np.flatnonzero(keep)
                alloc = self._allocate(np.bincount(top, weights=w, minlength=coarse)[groups], counts[groups], k)
                order = np.argsort(top, kind="stable")
                starts = np.concatenate([[0], np.cumsum(counts)])
                centers = np.empty((k, X.shape[1]), dtype=np.float32)
                labels = np.empty(n, dtype=np.int64)
                first = 0
                for step, (g, kg) in enumerate(zip(groups, alloc)):
                    members = order[starts[g]:starts[g + 1]]
                    c, lab = self._kmeans(X[members], w[members], int(kg), self.seed + 1 + int(g))
                    centers[first:first + kg] = c
                    labels[members] = first + lab
                    first += int(kg)
                    if progress is not None:
                        progress(step + 1, len(groups))
            self._fill_empty(X, w, centers, labels)
            moved = 0
            if self.max_share is not None:
                moved = self._balance(X, w, centers, labels, float(self.max_share) * float(w.sum()))
        finally:
            faiss.omp_set_num_threads(before)
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.n_clusters_ = k
        self.bucket_weight_ = np.bincount(labels, weights=w, minlength=k)
        self.moved_by_balance_ = int(moved)
        self.settings_ = {
            "algorithm": "faiss.Kmeans" + (" two-level" if coarse else ""),
            "seeding": f"weighted k-means++ on {_POOL} x k weighted candidates",
            "faiss_version": getattr(faiss, "__version__", "unknown"),
            "n_clusters": k,
            "coarse_clusters": coarse,
            "n_iter": int(self.n_iter),
            "max_points_per_centroid": int(self.max_points_per_centroid),
            "min_points_per_centroid": 1,
            "weighted": sample_weight is not None,
            "max_share": None if self.max_share is None else float(self.max_share),
            "moved_by_balance": int(moved),
            "seed": int(self.seed),
            "n_threads": threads,
        }
        return self

    @staticmethod
    def _fill_empty(X, w, centers, labels):
        """Give each empty bucket one point of a bucket holding several (in place).

        Identical points (ids with the same embedding, e.g. ids seen with one partner of a
        two-valued feature) always share a centroid, so FAISS leaves buckets empty when there are
        fewer distinct points than buckets, and its split of an empty cluster cannot separate
        copies: ids collided while rows sat unused. A point moved to an empty bucket of its own
        lowers the k-means objective by ``w d^2``; the points of largest gain move first, then (among
        copies, all at ``d = 0``) the heaviest, so the moves take the most traffic out of shared
        buckets. Every bucket keeps its point of least gain.
        """
        k = centers.shape[0]
        empty = np.flatnonzero(np.bincount(labels, minlength=k) == 0)
        if empty.size == 0:
            return
        idx = np.arange(labels.size)
        gain = w.astype(np.float64) * ((X - centers[labels]).astype(np.float64) ** 2).sum(axis=1)
        # per bucket, the member that stays: least gain, then lightest, then first
        by_bucket = np.lexsort((idx, w, gain, labels))
        first = np.ones(labels.size, dtype=bool)
        first[1:] = labels[by_bucket][1:] != labels[by_bucket][:-1]
        movable = by_bucket[~first]
        order = movable[np.lexsort((movable, -w[movable], -gain[movable]))]
        take = order[:empty.size]
        labels[take] = empty[:take.size]
        centers[empty[:take.size]] = X[take]

    def _balance(self, X, w, centers, labels, cap):
        """Move ids out of buckets above ``cap`` traffic (in place); return how many moved."""
        faiss = _faiss()
        k = centers.shape[0]
        load = np.bincount(labels, weights=w, minlength=k).astype(np.float64)
        over = np.flatnonzero(load > cap)
        if over.size == 0:
            return 0
        evicted = []
        for b in over:
            members = np.flatnonzero(labels == b)
            d = ((X[members] - centers[b]) ** 2).sum(axis=1)
            # nearest first, but an id above the cap before all: it stays, alone (the others are
            # evicted); evicted, it went to the least loaded bucket, beside other ids
            members = members[np.lexsort((d, w[members] <= cap))]
            cum = np.cumsum(w[members], dtype=np.float64)
            stay = max(int(np.searchsorted(cum, cap, side="right")), 1)  # the nearest id always stays
            evicted.append(members[stay:])
            load[b] = cum[stay - 1]
        start = labels.copy()
        out = np.concatenate(evicted)
        labels[out] = -1  # on no bucket until placed
        # An evicted id above the cap (the second such id of one bucket) fits nowhere: it takes the
        # least loaded bucket holding none, whose ids are evicted in turn, so it is alone there too
        # (it went beside that bucket's ids while other buckets had room for them).
        heavy = out[w[out] > cap]
        light = [out[w[out] <= cap]]
        for p in heavy[np.argsort(-w[heavy], kind="stable")]:
            free = np.flatnonzero(load <= cap)
            b = int(free[np.argmin(load[free])]) if free.size else int(np.argmin(load))
            if free.size:
                members = np.flatnonzero(labels == b)
                light.append(members)
                labels[members] = -1
                load[b] = 0.0
            labels[p] = b
            load[b] += float(w[p])
        out = np.concatenate(light)
        out = out[np.argsort(-w[out], kind="stable")]  # heaviest first
        if out.size:
            faiss.omp_set_num_threads(self._threads)
            index = faiss.IndexFlatL2(centers.shape[1])
            index.add(centers)
            _, cand = index.search(X[out], min(_CANDIDATES, k))
            for i, p in enumerate(out):
                wp = float(w[p])
                room = cand[i][load[cand[i]] + wp <= cap]
                b = int(room[0]) if room.size else int(np.argmin(load))
                labels[p] = b
                load[b] += wp
        return int(np.count_nonzero(labels != start))  # (an evicted id may go back to its bucket)

    def predict(self, X) -> np.ndarray:
        """The nearest bucket of each row of ``X``."""
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError("This FrequencyKMeans is not fitted yet. Call 'fit' first.")
        owner = "FrequencyKMeans.predict"
        X = np.asarray(X)
        if X.dtype.kind not in "fiu":  # (text failed with numpy's raw ValueError)
            raise param_error("X", owner, "be a 2-D numeric array", f"dtype {X.dtype}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.cluster_centers_.shape[1]:
            raise param_error("X", owner, f"be 2-D with {self.cluster_centers_.shape[1]} columns", f"shape {X.shape}")
        _check_points(X, owner)  # as fit checks them: a NaN point got the label -1, no bucket
        index = _faiss().IndexFlatL2(X.shape[1])
        index.add(self.cluster_centers_)
        _, lab = index.search(X, 1)
        return lab[:, 0].astype(np.int64)
