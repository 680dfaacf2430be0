"""How an id map shares rows, weighted by the traffic of a log: the collision report.

For every feature, with ``c_i`` the access count of id ``i`` (from mined log stats) and ``C_r``
the traffic of row ``r`` (the sum over the ids the map sends to ``r``):

- ``shared_access_share``: the share of accesses to ids that share their row with at least one
  other seen id;
- ``collision_rate``: ``sum_i c_i (1 - c_i / C_r(i)) / sum_i c_i``, the chance that two accesses
  drawn from the same row (the second with the row's traffic weights) come from different ids.
  A hot id alone in its row adds 0, an id that is 1 % of its row's traffic adds almost 1;
- ``label_rate_spread``: inside each shared row, the traffic-weighted standard deviation of its
  ids' label rates (positives / accesses), averaged over shared rows weighted by traffic. Zero
  when every row only mixes ids that click alike; what a learned map should keep low;
- ``rows_for_share``: how many of the busiest rows carry 80 %, 90 % and 99 % of the traffic.

Ids the log never saw do not count (the map sends them somewhere, but they carry no traffic).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from embcompress.errors import param_error

SHARES = (0.8, 0.9, 0.99)


@dataclass(frozen=True)
class FeatureCollisions:
    feature: str
    n_ids: int
    n_rows: int
    rows_used: int
    shared_rows: int
    accesses: int
    shared_access_share: float
    collision_rate: float
    label_rate_spread: float | None
    rows_for_share: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CollisionReport:
    """Per-feature collision figures; ``report[feature]`` gives one feature's."""

    features: dict[str, FeatureCollisions]

    def __getitem__(self, feature: str) -> FeatureCollisions:
        return self.features[feature]

    def __iter__(self):
        return iter(self.features.values())

    def to_dict(self) -> dict:
        return {f: r.to_dict() for f, r in self.features.items()}

    def to_markdown(self) -> str:
        head = ("| feature | ids | rows | rows used | shared rows | accesses on shared rows | collision rate "
                "| label-rate spread | rows for 80/90/99 % |")
        lines = [head, "|" + " --- |" * 9]
        for r in self:
            spread = "n/a" if r.label_rate_spread is None else f"{r.label_rate_spread:.3f}"
            shares = "/".join(str(r.rows_for_share[f"{s:g}"]) for s in SHARES)
            lines.append(
                f"| {r.feature} | {r.n_ids} | {r.n_rows} | {r.rows_used} | {r.shared_rows} "
                f"| {r.shared_access_share:.1%} | {r.collision_rate:.3f} | {spread} | {shares} |"
            )
        return "\n".join(lines)


def _one(id_map, stats, feature: str) -> FeatureCollisions:
    ids, counts = stats.frequencies(feature)
    pos = None if stats.label is None else stats.positives(feature)[1].astype(np.float64)
    counts = counts.astype(np.float64)
    n_rows = int(id_map.n_rows)
    rows = np.asarray(id_map.lookup(ids), dtype=np.int64)
    traffic = np.bincount(rows, weights=counts, minlength=n_rows)
    members = np.bincount(rows, minlength=n_rows)
    total = counts.sum()
    shared = members[rows] >= 2
    own = counts / np.maximum(traffic[rows], 1e-300)
    collision = float((counts * (1.0 - own)).sum() / total) if total else 0.0
    spread = None
    if pos is not None and shared.any():
        rate = pos / np.maximum(counts, 1e-300)
        mean_r = np.bincount(rows, weights=counts * rate, minlength=n_rows) / np.maximum(traffic, 1e-300)
        var_r = np.bincount(rows, weights=counts * (rate - mean_r[rows]) ** 2, minlength=n_rows) / np.maximum(traffic, 1e-300)
        shared_rows = members >= 2
        spread = float((np.sqrt(var_r[shared_rows]) * traffic[shared_rows]).sum() / traffic[shared_rows].sum())
    elif pos is not None:
        spread = 0.0
    busiest = np.cumsum(np.sort(traffic)[::-1])
    need = {f"{s:g}": int(np.searchsorted(busiest, s * total - 1e-9 * total) + 1) if total else 0 for s in SHARES}
    return FeatureCollisions(
        feature=feature,
        n_ids=int(ids.size),
        n_rows=n_rows,
        rows_used=int((members > 0).sum()),
        shared_rows=int((members >= 2).sum()),
        accesses=int(total),
        shared_access_share=float(counts[shared].sum() / total) if total else 0.0,
        collision_rate=collision,
        label_rate_spread=spread,
        rows_for_share=need,
    )


def collision_report(id_map, stats, feature: str | None = None) -> CollisionReport:
    """Collision figures of ``id_map`` under the traffic of ``stats`` (a ``LogStats``).

    ``id_map``: one map (anything with ``lookup(ids)`` and ``n_rows``, e.g. ``embcompress.IdMap``)
    for ``feature``, or a mapping feature -> map (then ``feature`` picks one, or None for all).
    """
    owner = "collision_report"
    if not (hasattr(stats, "frequencies") and hasattr(stats, "features")):  # a path raised the raw AttributeError
        raise param_error("stats", owner, "be a learned_hash.LogStats (open a log-stats file with LogStats.load(path))",
                          type(stats).__name__)
    if feature is not None and not isinstance(feature, str):
        raise param_error("feature", owner, "be None or one feature name (text)", feature)
    if isinstance(id_map, Mapping):
        names = list(id_map) if feature is None else [feature]
        for f in names:
            if f not in id_map:
                raise param_error("feature", owner, f"be one of the mapped features {list(id_map)}", f)
        maps = {f: id_map[f] for f in names}
        for f, m in maps.items():
            if not (hasattr(m, "lookup") and hasattr(m, "n_rows")):
                raise param_error("id_map", owner, f"map each feature to an id map (with lookup and n_rows, e.g. "
                                  f"embcompress.IdMap.load(path)); {f!r} maps to a {type(m).__name__}", type(m).__name__)
    else:
        if not (hasattr(id_map, "lookup") and hasattr(id_map, "n_rows")):
            raise param_error("id_map", owner, "be an id map (with lookup and n_rows) or a mapping feature -> id map", type(id_map).__name__)
        if feature is None:
            if len(stats.features) != 1:
                raise param_error("feature", owner, f"name the map's feature, one of {stats.features}", None)
            feature = stats.features[0]
        maps = {feature: id_map}
    for f in maps:
        if f not in stats.features:
            raise param_error("feature", owner, f"be one of the mined features {stats.features}", f)
    return CollisionReport({f: _one(m, stats, f) for f, m in maps.items()})
