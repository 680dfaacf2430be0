"""A sweep: methods x budgets x formats x seeds on one dataset, each run trained and tested.

Per seed the full-table model is trained once (it is the baseline of every comparison and the
source of the ``learned_trained`` maps); every other run trains the model its map and budget allow
(or, for ``learned_trained``, starts from the full model with its compressed rows initialised
from the trained ones and fine-tunes), then stores its tables in the run's format (quantize,
dequantize) and predicts the test rows. The test split is the same for every run, so each run is
compared with the full table of its seed by a paired bootstrap over test rows.

The library function :func:`run_sweep` takes a ``progress(done, total)`` callback and never prints;
``embcompress evaluate`` wraps it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from embcompress.errors import ConfigError, param_error
from embcompress.formats.spec import FORMATS

from .compression import METHODS, FeatureMap, compressed_map, full_map, plan_budget, shared_row_init
from .data import Splits
from .metrics import auc, logloss, mean_spread, paired_bootstrap
from .train import TrainConfig

VERSION = 1
DATASETS = ("frappe", "criteo", "talkingdata", "synthetic")
# keyword arguments of analysis.ctr.synthetic.synthetic_log a config may set (n_rows and seed are
# the dataset's n_rows and split_seed)
SYNTHETIC_OPTIONS = ("vocab", "n_groups", "features", "zipf", "affinity", "n_dense", "signal")
# fit_hash parameters a config may set per method (the sweep sets stats, feature, n_rows, method
# and seed itself); max_map_share is the learned methods' map-share rule (compression.py)
FIT_HASH_PARAMS = ("hot_rows", "max_mapped_ids", "embedding", "partners", "n_components", "max_share", "n_iter", "n_threads")
MAP_SHARE_METHODS = ("learned", "learned_trained")
MAX_SEED = 2**31 - 1  # fit_hash's seeds


def _tuple_of(value, kind, name, owner, *, allow_empty=False):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise param_error(name, owner, f"be a list of {kind.__name__}", value)
    out = tuple(value)
    if not out and not allow_empty:
        raise param_error(name, owner, "be a non-empty list", value)
    for v in out:
        if not isinstance(v, kind) or isinstance(v, bool):
            raise param_error(name, owner, f"hold only {kind.__name__} values", value)
    return out


def _is_int(v, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _bad_param_value(key: str, v) -> str:
    """What is wrong with a fit_hash parameter's value as a sweep config gives it ("" if nothing)."""
    from learned_hash.build import EMBEDDINGS

    if key in ("hot_rows", "max_mapped_ids"):
        return "" if v is None or _is_int(v, 0) else "null or an integer >= 0"
    if key == "n_threads":
        return "" if v is None or _is_int(v, 1) else "null or an integer >= 1"
    if key in ("n_components", "n_iter"):
        return "" if _is_int(v, 1) else "an integer >= 1"
    if key == "max_share":
        ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1)
        return "" if ok else "null or a fraction in (0, 1]"
    if key == "max_map_share":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
        return "" if ok else "a fraction in (0, 1)"
    if key == "embedding":
        return "" if isinstance(v, str) and v in EMBEDDINGS else f"one of {EMBEDDINGS}"
    if key == "partners":
        ok = v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        return "" if ok else "null or a list of feature names"
    return ""


def check_method_params(config: SweepConfig, stats, compressed: list[str]) -> None:
    """Run fit_hash's own checks of every method's parameters on every compressed feature of the
    training stats (hot_rows against the feature's rows, partners among the mined features, ...),
    before any training: a run reaches fit_hash only after the full model of its seed trained."""
    from learned_hash.build import check_fit_hash

    from .compression import full_rows

    names = dict.fromkeys([*(m for m in config.methods if m != "full"), *(m for m, _ in config.extra)])
    for name in names:
        base, params = config.base_method(name)
        if base == "qr":  # a hash map into q * m slots, built without the method's parameters
            continue
        params = {k: v for k, v in params.items() if k != "max_map_share"}
        if base == "learned_trained":  # embedded from the trained rows: no partners are read
            params.setdefault("embedding", (np.empty(0, np.int64), np.empty((0, 1), np.float32)))
        for f in compressed:
            try:
                check_fit_hash(stats, f, full_rows(stats, f), method="learned" if base == "learned_trained" else base,
                               seed=config.seeds[0], **params)
            except ConfigError as exc:
                where = "variants" if name in config.variants else "method_params"
                raise ConfigError(f"The sweep config's {where!r} for {name!r}, on feature {f!r}: {exc}") from None


@dataclass(frozen=True)
class DatasetConfig:
    """Which log and how to split it. ``path``: a file or folder (real data); ``n_rows``: the
    synthetic log's size, or a cap on the rows read from a real log; ``options``: keyword arguments
    of the synthetic generator; ``on_bad_line``: ``"skip"`` (skip and count malformed lines of a
    real log, reported with the results) or ``"error"`` (stop at the first)."""

    name: str = "synthetic"
    path: str | None = None
    n_rows: int | None = None
    split_seed: int = 0
    options: dict = field(default_factory=dict)
    on_bad_line: str = "skip"

    def __post_init__(self):
        if self.name not in DATASETS:
            raise param_error("name", "DatasetConfig", f"be one of {DATASETS}", self.name)
        if self.path is not None:
            if not isinstance(self.path, (str, os.PathLike)):
                raise param_error("path", "DatasetConfig", "be the data file or folder as text", self.path)
            object.__setattr__(self, "path", os.fspath(self.path))  # text in results.json
        if self.name != "synthetic" and not self.path:
            raise param_error("path", "DatasetConfig", f"name the {self.name} data file or folder", self.path)
        if self.n_rows is not None and not (isinstance(self.n_rows, int) and self.n_rows >= 10):
            raise param_error("n_rows", "DatasetConfig", "be None or an integer >= 10", self.n_rows)
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) or self.split_seed < 0:
            raise param_error("split_seed", "DatasetConfig", "be an integer >= 0 (the seed of the split, or of the synthetic log)",
                              self.split_seed)
        if self.split_seed and self.name in ("criteo", "talkingdata"):  # it was accepted and changed nothing
            raise param_error("split_seed", "DatasetConfig", f"be 0 for {self.name}: its split is by time (a Criteo "
                              "folder's files as given), which no seed changes; 'seeds' vary the training runs",
                              self.split_seed)
        if not isinstance(self.options, dict):
            raise param_error("options", "DatasetConfig", "be an object of generator options", self.options)
        if self.options and self.name != "synthetic":
            raise param_error("options", "DatasetConfig", "be empty: options are the synthetic generator's, and the "
                              f"{self.name} log is read as it is", self.options)
        for key in self.options:
            if key not in SYNTHETIC_OPTIONS:
                fix = " ('n_rows' and 'split_seed' set the log's size and seed)" if key in ("n_rows", "seed") else ""
                raise param_error("options", "DatasetConfig", f"name options of the synthetic generator among {SYNTHETIC_OPTIONS}{fix}", key)
        if self.on_bad_line not in ("skip", "error"):
            raise param_error("on_bad_line", "DatasetConfig", "be 'skip' (count and report malformed lines) or 'error'", self.on_bad_line)


@dataclass(frozen=True)
class ModelConfig:
    dim: int = 32
    bottom: tuple[int, ...] = (64,)
    top: tuple[int, ...] = (64, 32)

    def __post_init__(self):
        if not (isinstance(self.dim, int) and self.dim >= 1):
            raise param_error("dim", "ModelConfig", "be an integer >= 1", self.dim)
        if isinstance(self.dim, bool):
            raise param_error("dim", "ModelConfig", "be an integer >= 1", self.dim)
        for name in ("bottom", "top"):
            sizes = _tuple_of(getattr(self, name), int, name, "ModelConfig", allow_empty=True)
            if any(v < 1 for v in sizes):
                raise param_error(name, "ModelConfig", "hold layer sizes >= 1", list(sizes))
            object.__setattr__(self, name, sizes)


@dataclass(frozen=True)
class SweepConfig:
    """A sweep, read from JSON (:meth:`from_json`). Runs: every method (other than ``full``) in
    every format at every budget, plus the ``extra`` (method, format) pairs; ``full`` in every
    format named anywhere; all of it for every seed. ``requantize`` (method, format) pairs also
    store the fp32 run's trained tables in that format, same rows (fewer bytes): a summary row
    named ``"<method>, same rows"``, the cost of the narrower format on its own. ``method_params`` gives a method's
    ``fit_hash`` parameters; ``variants`` names a method with its own parameters (e.g.
    ``{"learned_cooc": {"method": "learned", "embedding": "cooccurrence"}}``), usable wherever a
    method is."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: tuple[str, ...] = ("full", "hash", "frequency", "qr", "learned")
    budgets: tuple[float, ...] = (0.1, 0.02)
    formats: tuple[str, ...] = ("fp32",)
    extra: tuple[tuple[str, str], ...] = ()
    requantize: tuple[tuple[str, str], ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    min_vocab: int = 500
    full_min_count: int = 1
    method_params: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)
    bootstrap: int = 1000
    version: int = VERSION

    def __post_init__(self):
        owner = "SweepConfig"
        if isinstance(self.version, bool) or self.version != VERSION:  # (JSON true equals 1)
            raise param_error("version", owner, f"be {VERSION} (this toolkit's sweep config version)", self.version)
        if not isinstance(self.variants, dict):
            raise param_error("variants", owner, "map variant names to {\"method\": ..., fit_hash parameters}", self.variants)
        for name, v in self.variants.items():
            if name in METHODS or not isinstance(v, dict) or v.get("method") not in METHODS or v.get("method") == "full":
                raise param_error("variants", owner, f"map new names (not {METHODS}) to objects with a 'method' among {METHODS[1:]}", {name: v})
        known = (*METHODS, *self.variants)
        methods = _tuple_of(self.methods, str, "methods", owner)
        for m in methods:
            if m not in known:
                raise param_error("methods", owner, f"name methods among {known}", m)
        budgets = self.budgets
        if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__") or not len(budgets):
            raise param_error("budgets", owner, "be a list of fractions of the full fp32 tables, like [0.1, 0.02]", budgets)
        for b in budgets:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 < b < 1.0:
                raise param_error("budgets", owner, "hold fractions in (0, 1) of the full fp32 tables", b)
        budgets = tuple(float(b) for b in budgets)
        formats = _tuple_of(self.formats, str, "formats", owner)
        pairs = {}
        for name in ("extra", "requantize"):
            pairs[name] = []
            value = getattr(self, name)
            if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
                raise param_error(name, owner, 'be a list of {"method": ..., "format": ...} objects (or [method, format] '
                                  'pairs), like [{"method": "learned", "format": "mxfp4_e2m1"}]', value)
            for pair in value:
                if isinstance(pair, dict):
                    pair = (pair.get("method"), pair.get("format"))
                pair = tuple(pair) if isinstance(pair, (list, tuple)) else (pair,)
                if (len(pair) != 2 or not all(isinstance(v, str) for v in pair) or pair[0] not in known
                        or pair[0] == "full"):
                    raise param_error(name, owner, f"hold (method, format) pairs with a method among {known[1:]}", pair)
                if name == "requantize" and pair[0] not in methods:
                    raise param_error(name, owner, f"name methods of 'methods' ({methods}), whose fp32 runs it requantizes", pair)
                pairs[name].append(pair)
        extra = pairs["extra"]
        object.__setattr__(self, "requantize", tuple(pairs["requantize"]))
        for name, fmts in (("formats", formats), ("extra", [p[1] for p in extra]), ("requantize", [p[1] for p in self.requantize])):
            for f in fmts:
                if f not in FORMATS:
                    raise param_error(name, owner, f"name formats among {tuple(FORMATS)}", f)
        if self.requantize and "fp32" not in formats:  # its runs were dropped without a word
            raise param_error("requantize", owner, "be empty when 'formats' has no 'fp32': it stores the fp32 runs' "
                              "trained rows in a narrower format (add 'fp32' to 'formats', or drop 'requantize')",
                              [list(p) for p in self.requantize])
        seeds = _tuple_of(self.seeds, int, "seeds", owner)
        if len(set(seeds)) != len(seeds):
            raise param_error("seeds", owner, "hold distinct seeds", list(seeds))
        for seed in seeds:
            if not 0 <= seed <= MAX_SEED:
                raise param_error("seeds", owner, f"hold seeds in [0, {MAX_SEED}] (the id maps' seeds)", seed)
        if isinstance(self.min_vocab, bool) or not (isinstance(self.min_vocab, int) and self.min_vocab >= 1):
            raise param_error("min_vocab", owner, "be an integer >= 1", self.min_vocab)
        if isinstance(self.full_min_count, bool) or not (isinstance(self.full_min_count, int) and self.full_min_count >= 1):
            raise param_error("full_min_count", owner, "be an integer >= 1 (ids seen fewer times in training share the "
                              "unseen-id row of a full table; 1 gives every training id a row)", self.full_min_count)
        if not (isinstance(self.bootstrap, int) and self.bootstrap >= 10):
            raise param_error("bootstrap", owner, "be an integer >= 10", self.bootstrap)
        if not isinstance(self.method_params, dict) or any(k not in METHODS for k in self.method_params):
            raise param_error("method_params", owner, f"map method names among {METHODS} to fit_hash parameters", self.method_params)
        for name, (base, params) in [*((m, (m, p)) for m, p in self.method_params.items()),
                                     *((v, (d["method"], {k: x for k, x in d.items() if k != "method"}))
                                       for v, d in self.variants.items())]:
            where = "variants" if name in self.variants else "method_params"
            if not isinstance(params, dict):
                raise param_error(where, owner, f"give {name!r} an object of fit_hash parameters", params)
            allowed = FIT_HASH_PARAMS + (("max_map_share",) if base in MAP_SHARE_METHODS else ())
            if base == "full" and params:  # no fit_hash builds the full table's map: they were accepted and never used
                raise param_error(where, owner, f"give 'full' no parameters: its map gives every training id a row, "
                                  "without fit_hash (drop them; 'full_min_count' sets which ids share the unseen-id "
                                  "row)", dict(params))
            if base == "qr" and params:  # they were accepted and never used
                raise param_error(where, owner, f"give {name!r} (qr) no parameters: qr hashes ids into q * m slots "
                                  "with the hashing trick, which takes none (drop them)", dict(params))
            for key in params:
                if key not in allowed:
                    why = (" (the sweep sets it from 'seeds')" if key == "seed" else
                           f" (max_map_share is the rule of {MAP_SHARE_METHODS} only)" if key == "max_map_share" else "")
                    raise param_error(where, owner, f"give {name!r} ({base}) parameters among {allowed}{why}", key)
                bad = _bad_param_value(key, params[key])
                if bad:  # else refused by fit_hash only once a run reaches it, after the full model trained
                    raise param_error(where, owner, f"give {name!r} ({base}) a {key!r} that is {bad}", {key: params[key]})
        for name, v in (("methods", methods), ("budgets", budgets), ("formats", formats), ("extra", tuple(extra)),
                        ("requantize", self.requantize)):
            twice = next((x for i, x in enumerate(v) if x in v[:i]), None)
            if twice is not None:  # its runs were repeated, and summarised as more seeds than ran
                raise param_error(name, owner, "name each entry once (an entry named twice runs twice and its "
                                  "copies count as seeds in the summary)", list(twice) if isinstance(twice, tuple) else twice)
        for name, v in (("methods", methods), ("budgets", budgets), ("formats", formats), ("extra", tuple(extra)), ("seeds", seeds)):
            object.__setattr__(self, name, v)

    @classmethod
    def from_dict(cls, d: dict) -> SweepConfig:
        if not isinstance(d, dict):
            raise param_error("config", "SweepConfig.from_dict", "be a JSON object", type(d).__name__)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"Unknown keys {sorted(unknown)} in the sweep config. Known keys: {sorted(known)}.")
        d = dict(d)
        parts = {"dataset": DatasetConfig, "model": ModelConfig, "train": TrainConfig}
        for key, kind in parts.items():
            if key in d:
                sub = d[key]
                sub_known = {f.name for f in fields(kind)}
                if not isinstance(sub, dict) or set(sub) - sub_known:
                    raise ConfigError(f"The {key!r} section of the sweep config must be an object with keys among {sorted(sub_known)}. Got {sub!r} instead.")
                d[key] = kind(**sub)
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> SweepConfig:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"Cannot read the sweep config {str(path)!r}: {exc.strerror}. Check the path.") from None
        except UnicodeDecodeError:
            raise ConfigError(f"The sweep config {str(path)!r} is not a JSON text file (not UTF-8). Pass a sweep "
                              f"config, like those in examples/sweeps/.") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The sweep config {str(path)!r} is not valid JSON: {exc}. Fix it there, or pass a "
                              f"sweep config like those in examples/sweeps/.") from None
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        # as results.json holds it (lists, not tuples): a report rendered from the result and one
        # rendered from its results.json must read the same
        d = json.loads(json.dumps(asdict(self)))
        d["extra"] = [{"method": m, "format": f} for m, f in self.extra]
        d["requantize"] = [{"method": m, "format": f} for m, f in self.requantize]
        return d

    def base_method(self, name: str) -> tuple[str, dict]:
        """The method a run name stands for and its ``fit_hash`` parameters."""
        if name in self.variants:
            v = dict(self.variants[name])
            base = v.pop("method")
            return base, {**self.method_params.get(base, {}), **v}
        return name, dict(self.method_params.get(name, {}))

    def runs(self) -> list[tuple[str, str, float | None]]:
        """Every (method, format, budget) of one seed, the full tables first (budget None)."""
        pairs = [(m, f) for m in self.methods if m != "full" for f in self.formats]
        pairs += [p for p in self.extra if p not in pairs]
        full_formats = ["fp32"] + [f for f in dict.fromkeys([*self.formats, *(p[1] for p in self.extra)]) if f != "fp32"]
        return [("full", f, None) for f in full_formats] + [(m, f, b) for b in self.budgets for m, f in pairs]


@dataclass
class SweepResult:
    """Everything a sweep measured: one record per run and one summary row per (method, format,
    budget), with the dataset and machine it ran on. ``to_dict`` is what ``results.json`` holds."""

    config: SweepConfig
    dataset: dict
    reference_bytes: int
    runs: list[dict]
    summary: list[dict]
    environment: dict

    def to_dict(self) -> dict:
        return {
            "kind": "embcompress.sweep_results",
            "version": VERSION,
            "config": self.config.to_dict(),
            "dataset": self.dataset,
            "reference_bytes": self.reference_bytes,
            "summary": self.summary,
            "runs": self.runs,
            "environment": self.environment,
        }

    def row(self, method: str, fmt: str = "fp32", budget: float | None = None) -> dict:
        """The summary row of one (method, format, budget)."""
        for r in self.summary:
            if r["method"] == method and r["format"] == fmt and r["budget"] == budget:
                return r
        raise KeyError((method, fmt, budget))


def environment() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def train_stats(splits: Splits, compressed: list[str]):
    """Id counts (with positives) of every feature, and co-occurrence of each compressed feature
    with every other feature, mined from the training split only (no test leakage)."""
    from learned_hash.mining.stats import LogStats

    tr = splits.train
    columns = {f: tr.column(f) for f in tr.features}
    columns["label"] = tr.label
    pairs = sorted({tuple(sorted((a, b))) for a in compressed for b in tr.features if b != a})
    return LogStats.from_rows(columns, features=list(tr.features), label="label", pairs=pairs,
                              source={"dataset": splits.name, "split": "train"})


def check_budgets(config: SweepConfig, vocab: dict[str, int], compressed: list[str]) -> None:
    """Refuse a budget that cannot give some compressed feature even the fewest rows its method
    needs (qr: two) in a run's format beside the smallest id map, before any training: the runs
    of the budgets before it would train first and then be lost with the sweep. ``vocab``: the
    distinct training ids per feature (:meth:`Splits.vocab_sizes`); shares as :func:`plan_budget`
    makes them (a full table has a row per training id and one for unseen ids)."""
    from embcompress.formats.spec import get_format

    from .compression import _map_price

    dim = config.model.dim
    full = {f: vocab[f] + 1 for f in compressed}
    total = sum(full.values())
    reference = total * get_format("fp32").row_bytes(dim)
    pairs = {(config.base_method(m)[0], f) for m, f in [(m, f) for m in config.methods if m != "full" for f in config.formats]
             + list(config.extra)}
    least_map = _map_price(np.empty(0, dtype=np.int64))(1)  # no ids, one row: no map of a run is smaller
    need = max((2 if base == "qr" else 1) * get_format(fmt).row_bytes(dim) + least_map for base, fmt in pairs) if pairs else 0
    for fraction in config.budgets:
        budget = int(fraction * reference)
        shares = {f: int(budget * full[f] / total) for f in compressed}
        short = [f for f in compressed if shares[f] < need]
        if short:
            least = max(need * total / full[f] for f in compressed) / reference
            raise param_error("budgets", "SweepConfig", f"leave every compressed feature room for a row and its id map; "
                              f"{fraction:g} gives {short[0]!r} {shares[short[0]]} bytes, {need} are needed "
                              f"(raise it to at least {least:.2g}, or lower 'min_vocab' so fewer features are compressed)",
                              fraction)


def _encode(maps: dict[str, FeatureMap], part, features):
    from .train import Encoded

    cols = [maps[f].index(part.column(f)) for f in features]
    return Encoded.from_numpy(np.concatenate(cols, axis=1), part.dense, part.label)


def _store_in_format(model, fmt: str) -> None:
    """Replace every table's weights by their ``fmt`` round trip (what serving would read)."""
    if fmt == "fp32":
        return
    import torch

    from embcompress.formats import dequantize, quantize

    with torch.no_grad():
        for tabs in model.table_weights():
            for w in tabs:
                w.copy_(torch.from_numpy(dequantize(quantize(w.detach().numpy(), fmt))))


def _collisions(maps, stats, compressed) -> dict:
    from ..collisions import collision_report

    rep = collision_report({f: maps[f].id_map for f in compressed}, stats)
    return {f: {k: v for k, v in r.to_dict().items() if k in ("shared_access_share", "collision_rate", "label_rate_spread")}
            for f, r in rep.features.items()}


def load_sweep_data(config: SweepConfig) -> Splits:
    """The splits of ``config``'s dataset, checked as :func:`run_sweep` checks them before any
    training: both classes in every split, at least one feature with ``min_vocab`` training ids,
    and budgets that hold a row (:func:`check_budgets`). ``embcompress evaluate`` calls it before making its output folder, so a run stopped by
    its input leaves nothing behind, and passes the splits on to :func:`run_sweep`."""
    from .datasets import load_dataset

    if not isinstance(config, SweepConfig):
        raise param_error("config", "load_sweep_data", "be a SweepConfig", type(config).__name__)
    splits = load_dataset(config.dataset)
    splits.check_classes()
    check_budgets(config, splits.vocab_sizes(), splits.compressible(config.min_vocab))
    return splits


def run_sweep(config: SweepConfig, *, splits: Splits | None = None,
              progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run every (method, format, budget) of ``config`` for every seed; see the module docstring.

    ``splits`` overrides the dataset of the config (tests and notebooks pass data they made).
    With ``train.threads`` set, torch, BLAS and OpenMP (FAISS) all run with that many threads: on
    a small shared CPU, BLAS's default of one thread per core oversubscribes and runs the id
    embeddings' small SVDs tens of times slower.
    """
    if not isinstance(config, SweepConfig):
        raise param_error("config", "run_sweep", "be a SweepConfig", type(config).__name__)
    if config.train.threads is None:
        return _run_sweep(config, splits, progress)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=config.train.threads):
        return _run_sweep(config, splits, progress)


def _run_sweep(config: SweepConfig, splits: Splits | None, progress) -> SweepResult:
    import copy

    import torch

    from .datasets import load_dataset
    from .model import DLRM
    from .train import fit, predict

    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    splits = splits if splits is not None else load_dataset(config.dataset)
    splits.check_classes()  # before any training, not at the first AUC
    features = list(splits.features)
    from learned_hash.mining.stats import LogStats  # noqa: F401  (fail early if missing)

    vocab = splits.vocab_sizes()
    compressed = splits.compressible(config.min_vocab)
    check_budgets(config, vocab, compressed)
    stats = train_stats(splits, compressed)
    check_method_params(config, stats, compressed)
    full_maps = {f: full_map(f, stats, config.full_min_count) for f in features}
    dim = config.model.dim
    y_test = splits.test.label.astype(np.float64)
    specs = config.runs()
    requant = {}
    for m, f in config.requantize:  # the config holds "fp32" in its formats when it has any
        requant.setdefault(m, []).append(f)
    total = (len(specs) + sum(map(len, requant.values())) * len(config.budgets)) * len(config.seeds)
    done = 0
    runs: list[dict] = []
    preds: dict[tuple, np.ndarray] = {}
    reference = plan_budget(stats, compressed, 1.0, dim=dim).reference_bytes

    def new_model(maps):
        return DLRM([maps[f].shape for f in features], dim, n_dense=splits.train.n_dense,
                    bottom=config.model.bottom, top=config.model.top)

    for seed in config.seeds:
        full_model = None
        for method, fmt, budget in specs:
            t0 = time.perf_counter()
            record: dict = {"seed": seed, "method": method, "format": fmt, "budget": budget}
            base, params = config.base_method(method)
            if base != method:
                record["base_method"] = base
            if config.train.threads is not None and base != "qr":
                params.setdefault("n_threads", config.train.threads)
            if method == "full":
                maps = dict(full_maps)
                if full_model is None:
                    torch.manual_seed(seed)
                    full_model = new_model(maps)
                    hist = fit(full_model, _encode(maps, splits.train, features),
                               _encode(maps, splits.validation, features), config.train, seed=seed)
                    full_hist = hist
                model = copy.deepcopy(full_model)
                hist = full_hist
            else:
                plan = plan_budget(stats, compressed, budget, dim=dim)
                maps = dict(full_maps)
                trained = {}
                for i, f in enumerate(features):
                    if f not in compressed:
                        continue
                    if base == "learned_trained":
                        # each training id's trained row: its own, or the shared unseen-id row (full_min_count)
                        rows = full_maps[f].index(stats.frequencies(f)[0])[:, 0]
                        trained[f] = full_model.embeddings[i][0].weight.detach().numpy()[rows]
                    maps[f] = compressed_map(base, f, stats, plan.shares[f], dim=dim, fmt=fmt, seed=seed,
                                             params=params, trained_rows=trained.get(f))
                tr = _encode(maps, splits.train, features)
                va = _encode(maps, splits.validation, features)
                torch.manual_seed(seed)
                model = new_model(maps)
                if base == "learned_trained":
                    state = {k: v for k, v in full_model.state_dict().items()
                             if not any(k.startswith(f"embeddings.{i}.") for i, f in enumerate(features) if f in compressed)}
                    model.load_state_dict(state, strict=False)
                    for i, f in enumerate(features):
                        if f in compressed:
                            ids, counts = stats.frequencies(f)
                            model.set_table(i, 0, shared_row_init(maps[f].id_map, ids, counts, trained[f], maps[f].shape.rows[0]))
                    record["auc_before_finetune"] = auc(y_test, predict(model, _encode(maps, splits.test, features)))
                    hist = {"epochs_run": 0, "best_epoch": -1}
                    if config.train.finetune_epochs:
                        hist = fit(model, tr, va, config.train, seed=seed, epochs=config.train.finetune_epochs,
                                   lr=config.train.finetune_lr)
                else:
                    hist = fit(model, tr, va, config.train, seed=seed)
                record["collisions"] = _collisions(maps, stats, compressed)
            later = [] if fmt != "fp32" or budget is None else requant.get(method, [])
            for label, f, m, rec in [(method, fmt, model, record)] + [
                (f"{method}, same rows", f2, copy.deepcopy(model), {**record, "method": f"{method}, same rows", "format": f2})
                for f2 in later
            ]:
                _store_in_format(m, f)
                p = predict(m, _encode(maps, splits.test, features))
                preds[(label, f, budget, seed)] = p
                table_bytes = {c: maps[c].table_bytes(f, dim) for c in compressed}
                map_bytes = {c: maps[c].map_bytes for c in compressed}
                total_bytes = sum(table_bytes.values()) + sum(map_bytes.values())
                rec = dict(rec)
                rec.update({
                    "other_bytes": sum(maps[c].total_bytes(f, dim) for c in features if c not in compressed),
                    "auc": auc(y_test, p),
                    "logloss": logloss(y_test, p),
                    "bytes": total_bytes,
                    "table_bytes": sum(table_bytes.values()),
                    "map_bytes": sum(map_bytes.values()),
                    "ratio": total_bytes / reference,
                    "rows": {c: list(maps[c].shape.rows) for c in features},
                    "feature_bytes": {c: table_bytes[c] + map_bytes[c] for c in compressed},
                    "epochs_run": hist["epochs_run"],
                    "best_epoch": hist["best_epoch"],
                    "seconds": time.perf_counter() - t0,
                })
                if method != "full":
                    rec["maps"] = {c: maps[c].info for c in compressed}
                runs.append(rec)
                done += 1
                if progress is not None:
                    progress(done, total)

    summary = _summarize(config, runs, preds, y_test)
    dataset = {
        "name": splits.name,
        "info": splits.info,
        "features": features,
        "compressed": compressed,
        "vocab": vocab,
        # read the full table's unseen-id row, untrained unless full_min_count > 1 (report findings)
        "unseen_test_share": {f: float(np.mean(~np.isin(np.asarray(splits.test.column(f)), stats.frequencies(f)[0])))
                              if splits.test.n_rows else 0.0 for f in compressed},
        "rows": {"train": splits.train.n_rows, "validation": splits.validation.n_rows, "test": splits.test.n_rows},
        "positive_rate_test": float(y_test.mean()),
    }
    return SweepResult(config, dataset, int(reference), runs, summary, environment())


def _summarize(config: SweepConfig, runs: list[dict], preds: dict, y_test: np.ndarray) -> list[dict]:
    out = []
    seen = []
    for r in runs:
        key = (r["method"], r["format"], r["budget"])
        if key not in seen:
            seen.append(key)
    for key in seen:
        method, fmt, budget = key
        group = [r for r in runs if (r["method"], r["format"], r["budget"]) == key]
        row = {
            "method": method,
            "format": fmt,
            "budget": budget,
            "bytes": float(np.mean([r["bytes"] for r in group])),
            "ratio": float(np.mean([r["ratio"] for r in group])),
            "auc": mean_spread([r["auc"] for r in group]),
            "logloss": mean_spread([r["logloss"] for r in group]),
            "seeds": [r["seed"] for r in group],
        }
        if "auc_before_finetune" in group[0]:
            row["auc_before_finetune"] = mean_spread([r["auc_before_finetune"] for r in group])
        if "collisions" in group[0]:
            feats = group[0]["collisions"].keys()
            row["collisions"] = {
                f: {k: float(np.mean([g["collisions"][f][k] for g in group])) if group[0]["collisions"][f][k] is not None else None
                    for k in group[0]["collisions"][f]}
                for f in feats
            }
        if key != ("full", "fp32", None):
            seeds = row["seeds"]
            ci = paired_bootstrap(y_test, [preds[(*key, s)] for s in seeds], [preds[("full", "fp32", None, s)] for s in seeds],
                                  n_boot=config.bootstrap, seed=0)
            row["delta_auc"] = ci["auc"].to_dict()
            row["delta_logloss"] = ci["logloss"].to_dict()
        out.append(row)
    return out
