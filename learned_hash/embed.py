"""Low-dimensional id embeddings, so ids that behave alike land near each other.

Three estimators (scikit-learn conventions: ``__init__`` stores parameters, ``fit`` returns
``self``, fitted state ends in ``_``):

- :class:`SpectralEmbedding`: the id x partner co-occurrence counts, reweighted to positive
  pointwise mutual information (PPMI, with the partners' distribution smoothed by ``alpha``, as in
  Levy, Goldberg and Dagan 2015), then a seeded randomized truncated SVD (Halko, Martinsson and
  Tropp 2011); an id's embedding is its row of ``U * sqrt(S)`` (computed as ``PPMI V S^-1/2``),
  scaled to unit length.
- :class:`LabelAwareEmbedding`: the same on label-aware co-occurrence: each partner id becomes two
  columns, its count in positive rows and in negative rows, so ids whose partners lead to clicks
  and ids whose partners do not are told apart.
- :class:`TableEmbedding`: rows of a trained model's embedding table (optionally reduced by the
  same randomized SVD after centering), for compressing a model after training.

:func:`cooccurrence` builds the count matrices from :class:`learned_hash.LogStats`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embcompress.errors import ConfigError, NotFittedError, param_error
from embcompress.idmap import _check_int_array


class NoPositiveCooccurrence(ConfigError):
    """No id co-occurs with any partner above chance: PPMI is all zero, nothing to embed."""


def _orthonormalize(Y: np.ndarray, *, with_r: bool = False):
    """An orthonormal basis of the columns of a tall ``Y``: Cholesky QR done twice (CholeskyQR2),
    a few times faster than Householder QR on tall-skinny blocks and as accurate once repeated;
    Householder QR where ``Y`` is numerically rank-deficient. ``with_r``: ``(Q, R)`` with
    ``Y = Q R`` (R square)."""
    from scipy.linalg import solve_triangular

    Q = Y
    for _ in range(2):
        try:
            L = np.linalg.cholesky(Q.T @ Q)
        except np.linalg.LinAlgError:
            Q = np.linalg.qr(Y)[0]
            break
        # Q L^-T, as one triangular solve (a general solve of a tall block was most of a fit's time)
        Q = solve_triangular(L, Q.T, lower=True, check_finite=False).T
    else:
        if not np.allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-8):  # ill-conditioned: fall back
            Q = np.linalg.qr(Y)[0]
    return (Q, Q.T @ Y) if with_r else Q


def _gaussian_rows(rng, n: int, ell: int, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (ascending) of ``rng.standard_normal((n, ell))``, drawn a block at a time so
    the whole n x ell matrix is never held (the draws are the same numbers in the same order)."""
    out = np.empty((rows.size, ell))
    step = max(1, (1 << 20) // max(ell, 1))
    lo = 0
    for start in range(0, n, step):
        block = rng.standard_normal((min(step, n - start), ell))
        hi = np.searchsorted(rows, start + block.shape[0])
        out[lo:hi] = block[rows[lo:hi] - start]
        lo = hi
    return out


def randomized_svd(A, n_components: int, *, n_oversamples: int = 10, n_iter: int = 4, seed: int = 0):
    """``(U, S, Vt)``, the top ``n_components`` singular triplets of ``A`` (dense or scipy sparse).

    Gaussian range finder with ``n_iter`` power iterations, each re-orthonormalized; signs
    fixed so that the largest entry of each column of ``U`` is positive (the result depends on
    ``A`` and ``seed`` only). A sparse ``A`` is worked on in the columns that hold entries (the
    others' ``Vt`` is 0): an id x partner matrix has a column for every partner id, most of them
    empty for a few ids, and the n x (k + oversamples) blocks were built over all of them.
    """
    import scipy.sparse as sp

    m, n = A.shape
    k = min(n_components, m, n)
    ell = min(k + n_oversamples, m, n)
    rng = np.random.default_rng(seed)
    cols = None
    if sp.issparse(A):
        A = sp.csr_matrix(A)
        used = np.zeros(n, dtype=bool)
        used[A.indices[A.data != 0]] = True
        if not used.all():
            cols = np.flatnonzero(used)
            A = A[:, cols]
    G = _gaussian_rows(rng, n, ell, cols) if cols is not None else rng.standard_normal((n, ell))
    q = _orthonormalize(np.asarray(A @ G))
    del G
    for _ in range(n_iter):
        q = _orthonormalize(np.asarray(A.T @ q))
        q = _orthonormalize(np.asarray(A @ q))
    bt = np.asarray(A.T @ q)  # (q^T A)^T, without transposing a sparse A
    if bt.shape[0] > 4 * bt.shape[1]:
        # the SVD of a wide q^T A through a QR of its tall transpose: LAPACK's SVD of a 26 x 2M
        # block took a minute, the QR and a 26 x 26 SVD take a fraction of a second
        qb, r = _orthonormalize(bt, with_r=True)
        ub, s, vr = np.linalg.svd(r.T)
        vt = vr @ qb.T
    else:
        ub, s, vt = np.linalg.svd(bt.T, full_matrices=False)
    r = min(k, s.size)  # fewer when fewer columns than k hold entries: the rest are zero triplets
    u = q @ ub[:, :r]
    s, vt = s[:r], vt[:r]
    flip = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(r)])
    flip[flip == 0] = 1
    u, vt = u * flip, vt * flip[:, None]
    if cols is not None:
        full = np.zeros((k, n))
        full[:r, cols] = vt
        vt = full
        u = np.hstack([u, np.zeros((m, k - r))])
        s = np.concatenate([s, np.zeros(k - r)])
    return u, s, vt


def _as_numpy(x):
    """A torch tensor (a trained table's weight, which may require grad, sit on a GPU or be
    bfloat16, which NumPy lacks) as a NumPy array; anything else as it is."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        try:
            return x.numpy()
        except TypeError:  # a dtype NumPy has not: bfloat16, float8
            return x.float().numpy()
    return x


def _check_counts(X, owner: str, name: str = "X"):
    import scipy.sparse as sp

    if not (sp.issparse(X) or isinstance(X, np.ndarray)):
        raise param_error(name, owner, "be a scipy sparse matrix or 2-D array of counts", type(X).__name__)
    if X.ndim != 2 or X.dtype.kind not in "biuf":  # (scipy failed on these with its own ValueError)
        raise param_error(name, owner, "be a 2-D matrix of counts (integers or floats)",
                          f"shape {X.shape}, dtype {X.dtype}")
    X = sp.csr_matrix(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise param_error(name, owner, "be a non-empty 2-D matrix of counts", f"shape {X.shape}")
    if X.nnz and (X.data.min() < 0 or not np.isfinite(X.data).all()):
        raise param_error(name, owner, "hold finite non-negative counts", "negative or non-finite entries")
    return X


def _check_int(value, name: str, owner: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        rng = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise param_error(name, owner, f"be an int {rng}", value)
    return int(value)


class SpectralEmbedding:
    """PPMI of id x partner co-occurrence counts, then a randomized truncated SVD.

    Parameters: ``n_components`` (8 to 64 is the useful range; fewer when the matrix is smaller),
    ``alpha`` (partner-distribution smoothing exponent, 1 = none), ``n_iter`` and
    ``n_oversamples`` (randomized SVD), ``normalize`` (unit-length rows, so k-means compares
    directions), ``seed``.

    Fitted: ``embedding_`` (float32, one row a fitted id: ``PPMI V S^-1/2``), ``components_`` (right singular
    vectors), ``singular_values_``, ``n_components_``, ``context_logp_`` (log smoothed partner
    probabilities), ``n_features_in_`` (partner columns). Ids with no co-occurrence get a zero row.
    """

    def __init__(self, n_components: int = 16, *, alpha: float = 0.75, n_iter: int = 4,
                 n_oversamples: int = 10, normalize: bool = True, seed: int = 0):
        self.n_components = n_components
        self.alpha = alpha
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.normalize = normalize
        self.seed = seed

    def _validate(self):
        owner = type(self).__name__
        _check_int(self.n_components, "n_components", owner, 1, 1024)
        _check_int(self.n_iter, "n_iter", owner, 0, 100)
        _check_int(self.n_oversamples, "n_oversamples", owner, 0, 1000)
        _check_int(self.seed, "seed", owner, 0, 2**63 - 1)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float, np.integer, np.floating)) \
                or not 0 < self.alpha <= 1:
            raise param_error("alpha", owner, "be a float in (0, 1]", self.alpha)

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("n_components", "alpha", "n_iter", "n_oversamples", "normalize", "seed")}

    def _ppmi(self, X, context_logp):
        X = X.tocsr(copy=True)
        row = np.asarray(X.sum(axis=1)).ravel()
        nz_rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        # PMI(i, j) = log P(j | i) - log P_alpha(j); keep the positive part
        with np.errstate(invalid="ignore"):
            a, b = np.log(X.data / row[nz_rows]), context_logp[X.indices]
            X.data = a - b
            # Positive beyond rounding: at chance the two logs are equal but computed two ways, and
            # differ by an ulp or so (4e-16 for 10 x 10 ones); kept, that noise became unit vectors
            # once rows were normalized, and ids that should be hashed were clustered on it.
            noise = 64 * np.finfo(np.float64).eps * (np.abs(a) + np.abs(b))
            # a partner never seen in fit (log p = -inf) carries no information
            X.data[~(X.data > noise) | ~np.isfinite(X.data)] = 0
        X.eliminate_zeros()
        return X

    def _fit_matrix(self, X):
        self._validate()
        col = np.asarray(X.sum(axis=0)).ravel() ** float(self.alpha)
        with np.errstate(divide="ignore"):
            self.context_logp_ = np.log(col / col.sum()) if col.sum() > 0 else np.zeros_like(col)
        M = self._ppmi(X, self.context_logp_)
        self.n_features_in_ = X.shape[1]
        if M.nnz == 0:
            raise NoPositiveCooccurrence(
                f"{type(self).__name__}.fit found no positive co-occurrence: every id co-occurs with "
                f"every partner at chance level or not at all. Mine more pairs or use a trained table."
            )
        _, s, vt = randomized_svd(M, self.n_components, n_oversamples=self.n_oversamples,
                                  n_iter=self.n_iter, seed=self.seed)
        self.singular_values_ = s
        self.components_ = vt
        self.n_components_ = s.size
        # M V S^-1/2, which is U S^1/2 up to the randomized SVD's error; computed this way so that
        # transform() of the fitted rows reproduces embedding_ exactly
        self.embedding_ = self._project(M)
        return self

    def _finish(self, emb):
        if self.normalize:
            norm = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = np.divide(emb, norm, out=np.zeros_like(emb), where=norm > 0)
        return emb.astype(np.float32)

    def fit(self, X, y=None) -> "SpectralEmbedding":
        """Fit on ``X``: counts, one row an id, one column a partner id (sparse or dense)."""
        return self._fit_matrix(_check_counts(X, f"{type(self).__name__}.fit"))

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X, y).embedding_

    def _check_fitted(self):
        if not hasattr(self, "embedding_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call 'fit' first.")

    def transform(self, X) -> np.ndarray:
        """Embed new ids by folding their co-occurrence rows into the fitted components
        (``PPMI(X) V S^-1/2``; equal to ``embedding_`` for the fitted rows)."""
        self._check_fitted()
        X = _check_counts(X, f"{type(self).__name__}.transform")
        if X.shape[1] != self.n_features_in_:
            raise param_error("X", f"{type(self).__name__}.transform", f"have {self.n_features_in_} columns, as in fit", X.shape[1])
        return self._transform_matrix(X)

    def _transform_matrix(self, X):
        return self._project(self._ppmi(X, self.context_logp_))

    def _project(self, M):
        emb = np.asarray(M @ self.components_.T) / np.sqrt(np.maximum(self.singular_values_, 1e-300))
        return self._finish(emb)


class LabelAwareEmbedding(SpectralEmbedding):
    """:class:`SpectralEmbedding` of ``[X_pos | X_neg]``: partners' counts in positive rows and in
    negative rows as separate columns. ``fit(X_pos, X_neg)``; the two have the same shape."""

    def _stack(self, X_pos, X_neg, where):
        import scipy.sparse as sp

        owner = f"{type(self).__name__}.{where}"
        X_pos = _check_counts(X_pos, owner, "X_pos")
        if X_neg is None:
            raise param_error("X_neg", owner, "be the counts in negative rows", None)
        X_neg = _check_counts(X_neg, owner, "X_neg")
        if X_pos.shape != X_neg.shape:
            raise ConfigError(
                f"The 'X_pos' and 'X_neg' parameters of {owner} must have the same shape. "
                f"Got {X_pos.shape} and {X_neg.shape} instead."
            )
        return sp.hstack([X_pos, X_neg], format="csr")

    def fit(self, X_pos, X_neg=None) -> "LabelAwareEmbedding":
        return self._fit_matrix(self._stack(X_pos, X_neg, "fit"))

    def fit_transform(self, X_pos, X_neg=None) -> np.ndarray:
        return self.fit(X_pos, X_neg).embedding_

    def transform(self, X_pos, X_neg=None) -> np.ndarray:
        self._check_fitted()
        X = self._stack(X_pos, X_neg, "transform")
        if X.shape[1] != self.n_features_in_:
            raise param_error("X_pos", f"{type(self).__name__}.transform",
                              f"have {self.n_features_in_ // 2} columns, as in fit", X.shape[1] // 2)
        return self._transform_matrix(X)


class TableEmbedding:
    """Rows of a trained embedding table as id embeddings.

    ``n_components=None`` keeps the rows as they are; a smaller number projects them on their top
    principal directions (centered, randomized SVD, seeded). ``normalize`` scales rows to unit
    length. Fitted: ``embedding_`` (float32), ``components_`` (when reduced), ``mean_``.
    """

    def __init__(self, n_components: int | None = None, *, normalize: bool = True, n_iter: int = 4, seed: int = 0):
        self.n_components = n_components
        self.normalize = normalize
        self.n_iter = n_iter
        self.seed = seed

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("n_components", "normalize", "n_iter", "seed")}

    def fit(self, table, y=None) -> "TableEmbedding":
        owner = "TableEmbedding.fit"
        W = np.asarray(_as_numpy(table))  # a torch tensor or nn.Parameter too
        if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1 or W.dtype.kind not in "fiu":
            raise param_error("table", owner, "be a non-empty 2-D numeric array (one row an id)", f"shape {W.shape}, dtype {W.dtype}")
        W = W.astype(np.float64)
        if not np.isfinite(W).all():
            raise param_error("table", owner, "hold finite values", "NaN or infinite entries")
        if self.n_components is not None:
            k = _check_int(self.n_components, "n_components", "TableEmbedding", 1, W.shape[1])
            self.mean_ = W.mean(axis=0)
            u, s, vt = randomized_svd(W - self.mean_, k, n_iter=_check_int(self.n_iter, "n_iter", "TableEmbedding", 0, 100),
                                      seed=_check_int(self.seed, "seed", "TableEmbedding", 0, 2**63 - 1))
            self.components_ = vt
            W = u * s
        else:
            self.mean_ = np.zeros(W.shape[1])
        if self.normalize:
            norm = np.linalg.norm(W, axis=1, keepdims=True)
            W = np.divide(W, norm, out=np.zeros_like(W), where=norm > 0)
        self.embedding_ = W.astype(np.float32)
        return self

    def fit_transform(self, table, y=None) -> np.ndarray:
        return self.fit(table).embedding_


def _unique(x: np.ndarray) -> np.ndarray:
    """``np.unique(x)`` by a sort: NumPy 2.4's hash-based unique took 10 s for the 2.3M partner
    ids of a pair (1M distinct) where a sort takes 0.1 s."""
    x = np.sort(x)
    keep = np.ones(x.size, dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    return x[keep]


def own_lists(stats, feature: str) -> bool:
    """Whether ``feature`` itself as a partner means its lists paired with themselves (a multi-hot
    column mined with the pair ``(feature, feature)``), not its session sequences."""
    return (feature, feature) in stats.pairs


def _partners_of(stats, feature: str, partners: Sequence[str] | None) -> list[str]:
    # (feature itself: its lists' pair with themselves when mined; else given only, its sequences)
    mined = [b if a == feature else a for a, b in stats.pairs if feature in (a, b)]
    if partners is None:
        if not mined:
            raise ConfigError(
                f"Feature {feature!r} has no mined co-occurrence pairs (mined pairs: {stats.pairs}). "
                f"Mine with pairs=[({feature!r}, <another feature>), ...], pass an embedding "
                f"(fit_hash(embedding=(ids, vectors))), or fit {feature!r} with method='frequency' "
                f"(fit-hash --method frequency), which needs no pairs."
            )
        return mined
    partners = [partners] if isinstance(partners, str) else list(partners)  # one name, not its letters
    if not partners:  # (an empty list reached the matrix code: a raw IndexError)
        raise param_error("partners", "cooccurrence", f"name at least one feature, or be None for every feature "
                          f"mined in a pair with {feature!r} ({mined})", "an empty list")
    for i, p in enumerate(partners):
        if p not in mined and p != feature:
            raise param_error("partners", "cooccurrence",
                              f"name features mined in a pair with {feature!r} ({mined}), or {feature!r} itself "
                              f"for its session sequences (or, paired with itself, its lists)", p)
        if p in partners[:i]:  # (its columns were stacked twice, weighing it double)
            raise param_error("partners", "cooccurrence", "name each feature once", f"{p!r} twice")
    return partners


def cooccurrence(stats, feature: str, ids, *, partners: Sequence[str] | None = None, label: int | None = None):
    """``(matrix, partners)``: co-occurrence counts of ``feature``'s ``ids`` (rows, in the given
    order) with the ids of each partner feature (columns, partner after partner).

    ``partners`` defaults to every feature mined in a pair with ``feature``; ``feature`` itself
    among them stands for its session sequences (mined with a ``sequence_key``): an id's partners
    are then the ids just before and just after it in a session; for a multi-hot column mined
    paired with itself, it stands for that pair: the other ids of the lists an id is in.
    ``label=1`` (``0``) counts only positive (negative) rows (pairs only: sequences are not split
    by label). Ids with no pair get an empty row.
    """
    import scipy.sparse as sp

    ids = _check_int_array(ids, "ids", "cooccurrence")  # checked, not cast: id 1.5 was counted as id 1
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if dup.size:  # (a repeated id's counts went to its first row, the others were left empty)
        raise param_error("ids", "cooccurrence", "hold each id once", f"id {int(sorted_ids[dup[0]])} repeated")
    partners = _partners_of(stats, feature, partners)
    blocks = []
    for p in partners:
        if p == feature and not own_lists(stats, feature):
            if label is not None:
                raise ConfigError(
                    f"Session sequences of {feature!r} are not split by label, so they cannot be a "
                    f"partner of a label-aware embedding. Use embedding='cooccurrence' or other partners."
                )
            prev, nxt, c = stats.sequence_counts(feature)
            # symmetric: b follows a counts for a (partner b) and for b (partner a)
            ia, ib, c = np.concatenate([prev, nxt]), np.concatenate([nxt, prev]), np.concatenate([c, c])
            cols = _unique(ib)
        else:
            # columns: every partner id of the pair, whatever the label, so label blocks align
            cols = _unique(stats.pair_counts(feature, p)[1])
            ia, ib, c = stats.pair_counts(feature, p, label=label)
        at = np.minimum(np.searchsorted(sorted_ids, ia), max(ids.size - 1, 0))
        found = sorted_ids[at] == ia if ids.size else np.zeros(ia.size, dtype=bool)
        blocks.append(sp.csr_matrix((c[found], (order[at[found]], np.searchsorted(cols, ib[found]))),
                                    shape=(ids.size, cols.size), dtype=np.int64))
    return sp.hstack(blocks, format="csr"), partners
