"""Buckets -> :class:`embcompress.IdMap`: :func:`fit_hash`, the one call for every mapper.

``method="learned"``:

1. Ids of ``feature`` by access count (from :class:`learned_hash.LogStats`). The ``hot_rows``
   most accessed own rows of their own (default: :func:`learned_hash.baselines.choose_hot_rows`,
   ids that alone carry at least an average row's traffic, at most half the rows).
2. The next ids, up to ``max_mapped_ids`` mapped ids in all, are embedded
   (:mod:`learned_hash.embed`) and clustered by frequency-weighted k-means
   (:mod:`learned_hash.cluster`) into the remaining ``n_rows - hot_rows`` rows.
3. Every other id (less frequent than the map's budget, without co-occurrence above chance to
   embed, or never seen) hashes into those cold rows through the map's seeded fallback hash.

``previous=``: a refit keeps every bucket on the old row most of its ids had (largest overlaps
first; hot rows and bucket rows keep their roles), so an id whose bucket did not change keeps its
row. It keeps the previous hot count (unless ``hot_rows`` is given; also when fewer ids than hot
rows are left to own them) and fallback seed, and the cold rows' positions in the hash's list, so
unstored ids keep their rows too. An id the previous map stored that the refit does not (absent
from the new log, beyond its budget, nothing to embed) stays stored on its old row while that row
is still cold or is a hot row no new id owns (``meta["carried_ids"]``; within ``max_mapped_ids``,
seen ids first): a trained table keeps serving it as before.
``meta["moved_ids"]`` (and ``IdMap.moved_ids``) counts the previous map's ids whose row changed,
``meta["moved_seen_ids"]`` the ids of ``stats``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from embcompress.errors import ConfigError, param_error
from embcompress.idmap import IdMap

from .baselines import choose_hot_rows, frequency_map, hash_map
from .cluster import MAX_SQ_NORM, FrequencyKMeans, too_large
from .embed import (LabelAwareEmbedding, NoPositiveCooccurrence, SpectralEmbedding, _as_numpy, _partners_of,
                    cooccurrence, own_lists)

METHODS = ("learned", "hash", "frequency")
EMBEDDINGS = ("auto", "cooccurrence", "label_aware")


def collision_share(idmap: IdMap, ids, counts) -> float:
    """Share of accesses (``counts`` of ``ids``) whose id shares its row with another of ``ids``."""
    # lookup checks the ids (a cast to int64 measured id 1.7 as id 1)
    rows = idmap.lookup(ids)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != rows.shape:
        raise param_error("counts", "collision_share", f"hold one count an id ({rows.shape} ids)",
                          f"counts of shape {counts.shape}")
    total = counts.sum()
    if total == 0:
        return 0.0
    _, at, occupancy = np.unique(rows, return_inverse=True, return_counts=True)  # not a count per table row
    return float(counts[occupancy[at] > 1].sum() / total)


def _relabel(prop_rows, ids, previous: IdMap, n_rows: int, n_hot: int):
    """``(rows, cold)``: the proposed rows relabelled so each takes the old row most of its ids had,
    and the cold rows (the images of the proposed rows ``n_hot ..``, see :func:`_keep_positions`).

    The relabelling is a permutation of all rows: matched proposed rows go to their old rows
    (largest overlap first), every other proposed row to the rows left free, both in ascending
    order. A row keeps its role: a hot row matches only a row hot before and a bucket only a row
    cold before, so with the hot count unchanged the hot rows stay where they were (at the head,
    as fits put them) and the cold list with them. It is evaluated only where it is needed, in the
    ids' count and never the table's (``n_rows`` may exceed memory, as a first fit allows).
    """
    old_mapped = np.isin(ids, previous.ids)
    pr = prop_rows[old_mapped]
    old = previous.lookup(ids[old_mapped])
    same_role = (pr < n_hot) != previous.in_fallback(old)
    pr, old = pr[same_role], old[same_role]
    match_p, match_o = [], []
    if pr.size:
        pairs, overlap = np.unique(np.stack([pr, old]), axis=1, return_counts=True)
        # largest overlap first; ties by proposed row then old row, so the result is deterministic
        order = np.lexsort((pairs[1], pairs[0], -overlap))
        pairs = pairs[:, order]
        # flags over the rows that occur (compact indices), not over all n_rows
        up, ip = np.unique(pairs[0], return_inverse=True)
        uo, io = np.unique(pairs[1], return_inverse=True)
        done_p, used_o = np.zeros(up.size, bool), np.zeros(uo.size, bool)
        for j, (a, b) in enumerate(zip(ip.tolist(), io.tolist())):
            if not done_p[a] and not used_o[b]:
                done_p[a] = used_o[b] = True
                match_p.append(j)
        match_o = pairs[1, match_p]
        match_p = pairs[0, match_p]
    match_p, match_o = np.asarray(match_p, dtype=np.int64), np.asarray(match_o, dtype=np.int64)
    by_p = np.argsort(match_p)
    mp, mo = match_p[by_p], match_o[by_p]
    taken, free_hot = match_o, np.zeros(0, np.int64)
    if previous.n_fallback_rows == n_rows - n_hot:
        # the hot count is kept: unmatched hot rows take the old hot rows left free, buckets the
        # old cold ones, so no row changes role (by lowest free row first, a new hot id took a
        # bucket's row while a freed hot row became cold, where the old hot rows were scattered)
        old_hot = _hot_rows_of(previous)
        free_hot = np.setdiff1d(old_hot, match_o)
        taken = np.union1d(old_hot, match_o)
    free_gap = np.sort(taken) - np.arange(taken.size)  # rows left free below each taken row

    def perm(p):
        p = np.asarray(p, dtype=np.int64)
        at = np.minimum(np.searchsorted(mp, p), max(mp.size - 1, 0))
        hit = mp[at] == p if mp.size else np.zeros(p.shape, bool)
        i = p - np.searchsorted(mp, p)  # rank among the unmatched proposed rows
        # hot ones first (proposed rows 0 .. n_hot - 1): the free old hot rows, then the other free rows
        j = i - free_hot.size
        free = j + np.searchsorted(free_gap, j, side="right")  # the j-th free row not taken
        if free_hot.size:
            free = np.where(j < 0, free_hot[np.minimum(i, free_hot.size - 1)], free)
        return np.where(hit, mo[at] if mo.size else 0, free)

    rows = perm(prop_rows)
    hot = np.sort(perm(np.arange(n_hot)))
    # the cold rows are every row but the hot ones' (perm is a bijection): a range when the hot rows
    # sit at the ends, else an array (the map's own representation of scattered cold rows)
    head = int(np.count_nonzero(hot == np.arange(hot.size)))  # hot rows 0, 1, ... at the start
    tail = int(np.count_nonzero(hot == n_rows - hot.size + np.arange(hot.size)))  # and at the end
    if head + tail == hot.size:
        cold = range(head, n_rows - tail)
    else:
        keep = np.ones(n_rows, dtype=bool)
        keep[hot] = False
        cold = np.flatnonzero(keep)
    return rows, _keep_positions(cold, previous)


def _hot_rows_of(previous: IdMap) -> np.ndarray:
    """The rows outside ``previous``'s cold list, ascending (from a range's bounds when it is one)."""
    if not previous.fallback_is_array:  # never the range as an array: it may outnumber memory
        _, _, start, count = (int(v) for v in previous.parts()["params"])
        return np.concatenate([np.arange(start), np.arange(start + count, previous.n_rows)])
    keep = np.ones(previous.n_rows, dtype=bool)  # (the cold rows' array is about as long)
    keep[previous.fallback_rows] = False
    return np.flatnonzero(keep)


def _keep_positions(cold, previous: IdMap):
    """The cold rows ordered so each stays at the position it had in ``previous``'s list, with
    the rows new to the list in the positions the rows that left it had (ascending): an unstored
    id hashes to a position, so it keeps its row unless that row left the list. Only when the list
    keeps its length (a new length changes the hash's modulus) and when one of the lists is
    already an array."""
    if len(cold) != previous.n_fallback_rows:
        return cold
    if isinstance(cold, range) and not previous.fallback_is_array:
        # two ranges: equal (nothing moves), or apart, which only an array of every cold row could
        # reconcile, and a table larger than memory has no room for one
        return cold
    old = previous.fallback_rows
    new = np.arange(cold.start, cold.stop) if isinstance(cold, range) else cold
    stays = np.isin(old, new)
    old[~stays] = np.setdiff1d(new, old[stays], assume_unique=True)
    return old


def _carry(previous: IdMap, mapped_ids, rows, cold, max_mapped, ids, counts):
    """``(ids, rows, carried)``: the refit's stored ids and rows with the previous map's stored ids
    that it does not store (absent from the new log, beyond its budget, nothing to embed) added on
    their old rows, where those rows are still cold rows or hot rows that no id of the refit owns
    (a hot row now owned by another id cannot be kept), so a trained table keeps serving them as
    before. Within ``max_mapped`` ids in all: seen ids first, by their new count, then by id."""
    old_ids, old_rows = previous.ids, previous.rows
    left = ~np.isin(old_ids, mapped_ids)
    old_ids, old_rows = old_ids[left], old_rows[left]
    if isinstance(cold, range):
        still_cold = (old_rows >= cold.start) & (old_rows < cold.stop)
    else:
        still_cold = np.isin(old_rows, cold)
    # or a hot row that no id of the refit owns (a kept hot count with fewer ids to own the rows)
    free_hot = ~still_cold & ~np.isin(old_rows, rows)
    old_ids, old_rows = old_ids[still_cold | free_hot], old_rows[still_cold | free_hot]
    if max_mapped is not None and old_ids.size > max(0, max_mapped - mapped_ids.size):
        by_id = np.argsort(ids, kind="stable")
        at = np.minimum(np.searchsorted(ids[by_id], old_ids), max(ids.size - 1, 0))
        seen = ids[by_id][at] == old_ids if ids.size else np.zeros(old_ids.size, bool)
        new_count = np.where(seen, counts[by_id][at] if ids.size else 0, 0)
        keep = np.sort(np.lexsort((old_ids, -new_count))[:max(0, max_mapped - mapped_ids.size)])
        old_ids, old_rows = old_ids[keep], old_rows[keep]
    if old_ids.size == 0:
        return mapped_ids, rows, 0
    return np.concatenate([mapped_ids, old_ids]), np.concatenate([np.asarray(rows, np.int64), old_rows]), int(old_ids.size)


def _check_int(value, name, low, high=None, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        what = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise param_error(name, "fit_hash", f"be {what}" + (" or None" if allow_none else ""), value)
    return int(value)


def check_fit_hash(stats, feature: str, n_rows: int, *, method: str = "learned", hot_rows: int | None = None,
                   max_mapped_ids: int | None = None, seed: int = 0, previous: IdMap | None = None,
                   embedding: str | tuple = "auto", partners: Sequence[str] | None = None,
                   max_share: float | None = None, n_threads: int | None = None, n_components: int = 16,
                   n_iter: int = 20, progress: Callable[[int, int], None] | None = None) -> None:
    """The checks :func:`fit_hash` makes of its arguments before it fits, without the fit (the
    same errors): ``embcompress fit-hash`` runs them on every feature before it writes a map.
    Takes fit_hash's parameters; ``n_components``, ``n_iter`` and ``progress`` are checked where
    they are used, by the fit."""
    _checked(stats, feature, n_rows, method, hot_rows, max_mapped_ids, seed, previous, embedding, partners,
             max_share, n_threads)


def check_embedding(stats, embedding, *, method: str = "learned") -> None:
    """fit_hash's rule for an ``embedding`` given by name (learned method only): one of
    :data:`EMBEDDINGS`, and ``"label_aware"`` only on stats mined with a label. A ConfigError
    (``param="embedding"``) naming the fix; nothing for an ``(ids, vectors)`` pair (checked when
    it is used) or another method (which embeds nothing)."""
    if method != "learned" or not isinstance(embedding, str):
        return
    if embedding not in EMBEDDINGS:
        raise param_error("embedding", "fit_hash", f"be one of {EMBEDDINGS} or an (ids, vectors) pair", embedding)
    if embedding == "label_aware" and stats.label is None:
        raise ConfigError("fit_hash(embedding='label_aware') needs stats mined with a label, and these were mined "
                          "without one. Mine with label=<the label column> (mine --label), or pass "
                          "embedding='cooccurrence' (or 'auto').", param="embedding")


def _checked(stats, feature, n_rows, method, hot_rows, max_mapped_ids, seed, previous, embedding, partners,
             max_share, n_threads):
    """fit_hash's arguments checked, and what follows from them: ``(n_rows, seed, ids, counts,
    max_mapped, budget, keep_hot, hash_seed, n_hot)``."""
    if method not in METHODS:
        raise param_error("method", "fit_hash", f"be one of {METHODS}", method)
    if not hasattr(stats, "frequencies"):  # (a path failed with "'str' object has no attribute 'frequencies'")
        raise param_error("stats", "fit_hash", "be a learned_hash.LogStats; open a log-stats file with "
                          "LogStats.load(path)", type(stats).__name__)
    # before anything else reads the stats: an unknown name, or label_aware on stats without a
    # label, was refused only once the fit had started (progress called; fit-hash's --out-dir
    # made), and an unknown name on a feature without pairs was told to mine pairs
    check_embedding(stats, embedding, method=method)
    n_rows = _check_int(n_rows, "n_rows", 1, allow_none=False)
    seed = _check_int(seed, "seed", 0, 2**31 - 1, allow_none=False)
    # checked here, not only where clustering runs: a small feature or method='hash' never clusters
    _check_int(n_threads, "n_threads", 1)
    if max_share is not None and (isinstance(max_share, bool) or not isinstance(max_share, (int, float, np.integer, np.floating))
                                  or not 0 < max_share <= 1):
        raise param_error("max_share", "fit_hash", "be None or a float in (0, 1]", max_share)
    if previous is not None:
        if not isinstance(previous, IdMap):
            raise param_error("previous", "fit_hash", "be an embcompress.IdMap or None; open an id-map file with "
                              "IdMap.load(path)", type(previous).__name__)
        if previous.n_rows != n_rows:
            raise param_error("previous", "fit_hash", f"map into the same n_rows ({n_rows}) for its rows to stay valid",
                              f"a map with n_rows={previous.n_rows}")
        fitted_for = previous.config.get("feature")
        if fitted_for is not None and fitted_for != feature:
            raise ConfigError(f"fit_hash(previous=...) got the map of feature {fitted_for!r} to refit {feature!r}: "
                              f"its rows mean other ids. Pass the earlier map of {feature!r}, or previous=None.")
    ids, counts = stats.frequencies(feature)
    max_mapped = _check_int(max_mapped_ids, "max_mapped_ids", 0)
    budget = ids.size if max_mapped is None else min(max_mapped, ids.size)
    # a refit by the same method keeps the hot count, so the cold list keeps its length and hashed
    # ids their rows; and the previous map's seed, which the fallback hash is keyed on
    keep_hot = hot_rows is None and previous is not None and method != "hash" and previous.config.get("method") == method
    hash_seed = seed if previous is None else previous.seed
    if method == "hash":
        if hot_rows not in (None, 0):
            raise param_error("hot_rows", "fit_hash", "be None or 0 with method='hash' (the hashing trick has no hot rows)", hot_rows)
        n_hot = 0
    elif keep_hot:
        # the previous hot rows stay hot even when fewer ids own them (a log without some of them,
        # or max_mapped_ids): a shorter hot list would lengthen the cold list, and the hash's new
        # modulus would move nearly every hashed id; a hot row left without an id keeps the
        # previous map's id (_carry)
        n_hot = n_rows - previous.n_fallback_rows
    elif hot_rows is None:
        n_hot = min(choose_hot_rows(counts, n_rows), budget)
    else:
        n_hot = min(_check_int(hot_rows, "hot_rows", 0, n_rows - 1), budget)
    if method == "learned" and isinstance(embedding, str) and (partners is not None or budget > n_hot):
        # checked here, not only where ids are embedded: given partners even when every id is hot
        # (none are embedded), and the feature's mined pairs whenever some ids will be, so that
        # fit-hash finds a feature mined without pairs before it writes the others' maps
        for p in _partners_of(stats, feature, partners):
            if p == feature and not own_lists(stats, feature):
                stats.sequence_counts(feature)  # refuses stats mined without a session key
                if embedding == "label_aware" and budget > n_hot:  # as cooccurrence refuses it, but up front
                    raise ConfigError(
                        f"Session sequences of {feature!r} are not split by label, so they cannot be a partner "
                        f"of a label-aware embedding. Use embedding='cooccurrence' or other partners.")
    n_cold = n_rows - n_hot
    if method == "learned" and max_share is not None and max_share * n_cold < 1:
        # (as FrequencyKMeans checks it, but before the embedding, and whether or not ids get clustered)
        raise param_error("max_share", "fit_hash", f"be at least 1 / {n_cold:,} = {1 / n_cold:.3g} with {n_cold:,} rows "
                          f"not held by hot ids (the buckets must be able to carry all traffic)", max_share)
    return n_rows, seed, ids, counts, max_mapped, budget, keep_hot, hash_seed, n_hot


def fit_hash(
    stats,
    feature: str,
    n_rows: int,
    *,
    method: str = "learned",
    hot_rows: int | None = None,
    max_mapped_ids: int | None = None,
    seed: int = 0,
    previous: IdMap | None = None,
    embedding: str | tuple = "auto",
    partners: Sequence[str] | None = None,
    n_components: int = 16,
    max_share: float | None = None,
    n_iter: int = 20,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IdMap:
    """Fit an id -> row map for ``feature`` of ``stats`` into ``n_rows`` rows (see the module doc).

    ``method``: ``"learned"`` (default), ``"hash"`` (hashing trick) or ``"frequency"`` (hot ids own
    rows, the rest hashed). ``hot_rows``: rows owned by single hot ids (default from the frequency
    curve, or on a refit the previous map's; 0 for ``"hash"``). ``max_mapped_ids``: most ids the map stores (bounds ``nbytes``).
    ``embedding`` (learned): ``"auto"``, ``"cooccurrence"`` (PPMI spectral), ``"label_aware"``
    (spectral on partners split by label), or ``(ids, vectors)`` precomputed, e.g. a trained
    table's rows via :class:`learned_hash.embed.TableEmbedding`. ``"auto"`` takes
    ``"label_aware"`` when the stats hold a label, else ``"cooccurrence"``. ``partners``: features
    whose co-occurrence embeds ``feature`` (default every feature mined in a pair with it;
    ``feature`` itself means its session sequences, which are not split by label, so ``"auto"``
    then takes ``"cooccurrence"``; for a multi-hot column mined paired with itself, its lists).
    ``n_components``, ``max_share``, ``n_iter``, ``n_threads``: embedding dimension and k-means
    settings. ``progress(done, total)`` is called with ``(0, 1)`` when the fit starts, follows the
    clustering (the splits of its second level), and ends with ``(1, 1)``.
    """
    n_rows, seed, ids, counts, max_mapped, budget, keep_hot, hash_seed, n_hot = _checked(
        stats, feature, n_rows, method, hot_rows, max_mapped_ids, seed, previous, embedding, partners, max_share,
        n_threads)
    if progress is not None:
        progress(0, 1)  # the fit has started (a bar is drawn at once, not after the embedding)
    inputs = {"stats": stats.source, "stats_rows": stats.n_rows, "feature": feature, "previous": previous is not None}
    config = {"method": method, "feature": feature, "n_rows": n_rows, "seed": seed,
              "hot_rows": n_hot, "hot_rows_rule": "given" if hot_rows is not None else "the previous map's" if keep_hot
              else "count * n_rows >= total, <= n_rows / 2",
              "max_mapped_ids": max_mapped}
    meta = {"ids_seen": int(ids.size), "accesses": int(counts.sum()), "hot_ids": n_hot}

    if method == "hash":
        idmap = hash_map(n_rows, seed=hash_seed, config=config, inputs=inputs)
        mapped_ids, prop = np.zeros(0, np.int64), np.zeros(0, np.int64)
    elif method == "frequency":
        mapped_ids = ids[:min(n_hot, budget)]
        prop = np.arange(mapped_ids.size)
    else:
        mapped_ids, prop, extra = _learned(stats, feature, ids, counts, n_rows, n_hot, budget, seed, embedding,
                                           partners, n_components, max_share, n_iter, n_threads, progress)
        config.update(extra.pop("config"))
        meta.update(extra)

    if method != "hash":
        if previous is not None:
            rows, cold = _relabel(prop, mapped_ids, previous, n_rows, n_hot)
            mapped_ids, rows, carried = _carry(previous, mapped_ids, rows, cold, max_mapped, ids, counts)
            meta["carried_ids"] = carried
        else:
            rows, cold = prop, range(n_hot, n_rows)  # kept as a range by the map: never n_rows ints
        if method == "frequency" and previous is None:
            idmap = frequency_map(mapped_ids, n_rows, hot_rows=n_hot, seed=seed, config=config, inputs=inputs)
        else:
            idmap = IdMap.from_arrays(mapped_ids, rows, n_rows, fallback_rows=cold, seed=hash_seed,
                                      config=config, inputs=inputs)
    meta["mapped_ids"] = idmap.n_mapped
    meta["collision_share"] = collision_share(idmap, ids, counts)
    if previous is not None:
        meta["moved_ids"] = int(np.count_nonzero(idmap.lookup(previous.ids) != previous.rows))
        meta["moved_seen_ids"] = int(np.count_nonzero(idmap.lookup(ids) != previous.lookup(ids)))
        meta["previous_mapped_ids"] = previous.n_mapped
    idmap.meta.update(meta)
    if progress is not None:
        progress(1, 1)  # done, also when nothing was clustered
    return idmap


def _learned(stats, feature, ids, counts, n_rows, n_hot, budget, seed, embedding, partners,
             n_components, max_share, n_iter, n_threads, progress):
    """Proposed rows of the learned map: hot ids on 0..n_hot-1, clustered ids after them."""
    # with one cold row, every id the map does not store goes to it anyway: none is clustered
    # (stored, each on that one row, it cost the map's bytes for nothing)
    stop = n_hot if n_rows - n_hot <= 1 else budget
    rest, weight = ids[n_hot:stop], counts[n_hot:stop]
    extra: dict = {"config": {}}
    if isinstance(partners, str):  # one name, not its letters ('c' in 'ctx' would be a match)
        partners = [partners]
    if isinstance(embedding, str):  # a name fit_hash checked up front (check_embedding)
        # Until the evaluation issue measures which embedding serves model quality best, "auto"
        # takes the label-aware one when a label was mined (it told clicking from non-clicking
        # partners apart in a first check on a rating log), else plain co-occurrence.
        sequences = partners is not None and feature in partners and not own_lists(stats, feature)  # not split by label
        kind = embedding if embedding != "auto" else (
            "label_aware" if stats.label is not None and not sequences else "cooccurrence")
        est_cls = LabelAwareEmbedding if kind == "label_aware" else SpectralEmbedding
        est = est_cls(n_components, seed=seed)
        used, has, vectors = partners or [], np.zeros(rest.size, bool), np.zeros((0, n_components), np.float32)
        if rest.size:
            if kind == "label_aware":
                Xp, used = cooccurrence(stats, feature, rest, partners=partners, label=1)
                Xn, _ = cooccurrence(stats, feature, rest, partners=used, label=0)
                has = np.asarray((Xp + Xn).sum(axis=1)).ravel() > 0
                fit = lambda: est.fit(Xp[has], Xn[has])  # noqa: E731
            else:
                X, used = cooccurrence(stats, feature, rest, partners=partners)
                has = np.asarray(X.sum(axis=1)).ravel() > 0
                fit = lambda: est.fit(X[has])  # noqa: E731
            try:
                vectors = fit().embedding_ if has.any() else vectors
            except NoPositiveCooccurrence:  # every id at chance level with its partners
                vectors = np.zeros((int(has.sum()), n_components), np.float32)
            # ids whose partners tell nothing (zero embedding) are hashed like unseen ids
            informative = np.linalg.norm(vectors, axis=1) > 0
            vectors = vectors[informative]
            has[has] = informative
        emb_ids = rest[has]
        # the map's file holds JSON: NumPy scalars (validation accepts them) as Python numbers
        params = {k: v.item() if isinstance(v, np.generic) else v for k, v in est.get_params().items()}
        extra["config"]["embedding"] = {"kind": kind, "partners": list(used), **params}
    else:
        try:
            e_ids, e_vec = embedding
        except (TypeError, ValueError):
            raise param_error("embedding", "fit_hash", f"be one of {EMBEDDINGS} or an (ids, vectors) pair", type(embedding).__name__) from None
        # a trained table's weight as it is (torch tensors: detached, moved to the CPU)
        e_ids, e_vec = np.asarray(_as_numpy(e_ids)), _as_numpy(e_vec)
        if e_ids.ndim != 1 or (e_ids.size and e_ids.dtype.kind not in "iu"):
            raise param_error("embedding", "fit_hash", "be (ids, vectors) with ids a 1-D integer array",
                              f"ids of shape {e_ids.shape} and dtype {e_ids.dtype}")
        # uint64 ids (hashed strings) by their bit pattern, as everywhere
        e_ids = e_ids.view(np.int64) if e_ids.dtype == np.uint64 else e_ids.astype(np.int64)
        e_vec = np.asarray(e_vec, dtype=np.float32)
        if e_vec.ndim != 2 or e_vec.shape[0] != e_ids.size or e_vec.shape[1] < 1 or not np.isfinite(e_vec).all():
            raise param_error("embedding", "fit_hash", "be (ids, vectors) with one finite row of vectors an id "
                              "(at least one column)", f"{e_ids.size} ids and vectors of shape {e_vec.shape}")
        sq = too_large(e_vec)
        if sq is not None:  # (FAISS aborted the process on them)
            raise param_error("embedding", "fit_hash", f"be (ids, vectors) with vectors of squared norm at most "
                              f"{MAX_SQ_NORM:.3g} (FAISS's float32 distances overflow beyond); scale them, e.g. "
                              f"with TableEmbedding, which makes them unit length", f"a vector of squared norm {sq:.3g}")
        order = np.argsort(e_ids, kind="stable")
        rep = np.flatnonzero(e_ids[order][1:] == e_ids[order][:-1])
        if rep.size:  # two vectors for one id: which one would be meant is unknown
            raise param_error("embedding", "fit_hash", "be (ids, vectors) holding each id once",
                              f"id {int(e_ids[order][rep[0]])} more than once")
        at = np.minimum(np.searchsorted(e_ids[order], rest), max(e_ids.size - 1, 0))
        has = e_ids[order][at] == rest if e_ids.size else np.zeros(rest.size, bool)
        vectors = e_vec[order][at[has]]
        # a zero vector has no direction (a table row left at zero; TableEmbedding keeps it zero):
        # clustered, every such id landed on one row; hashed like ids with nothing to embed, as
        # the co-occurrence embeddings' zero rows are
        informative = (vectors != 0).any(axis=1)
        vectors = vectors[informative]
        has[has] = informative
        emb_ids = rest[has]
        extra["config"]["embedding"] = {"kind": "given", "dim": int(e_vec.shape[1])}
    w = weight[has]
    extra["unembedded_ids"] = int(rest.size - emb_ids.size)
    n_cold = n_rows - n_hot
    if emb_ids.size:
        km = FrequencyKMeans(n_cold, n_iter=n_iter, max_share=max_share, n_threads=n_threads, seed=seed)
        km.fit(vectors, w, progress=progress)
        labels = km.labels_
        extra["config"]["cluster"] = km.settings_
    else:
        labels = np.zeros(0, np.int64)
    hot = ids[:min(n_hot, budget)]  # (fewer than the hot rows on a refit of a log with fewer ids)
    mapped = np.concatenate([hot, emb_ids])
    prop = np.concatenate([np.arange(hot.size), n_hot + labels])
    return mapped, prop, extra
