"""The main job: the whole pipeline on one log, end to end, in a few minutes on two cores.

``run_demo(out_dir)`` does what a newcomer's ``make demo`` runs:

1. **data**: a synthetic click log with Zipf ids and planted groups of ids that behave alike
   (:func:`analysis.ctr.synthetic.load_synthetic`), or a real log (``data=``: a Frappe folder of
   ``*.libfm``, a Criteo TSV file or folder, a TalkingData CSV), split into train / validation /
   test by the harness's recorded rule;
2. **mine**: the training split is written to Parquet and mined with
   :func:`learned_hash.mine` (DuckDB): id counts, positives, co-occurrence of each big feature
   with every other; the stats are saved beside the report;
3. **maps**: for the big features (at least ``min_vocab`` training ids), the hashing trick and a
   learned map (:func:`learned_hash.fit_hash` through the harness, at the same total bytes: 1/10
   of the full fp32 tables, id maps included); small features keep a row per id in every run;
4. **train**: one DLRM-style model per method (full, hash, learned), early-stopped on validation;
5. **export**: every model's tables to table files with :func:`embcompress.export` (with their
   id maps and per-row access counts) in fp32 and in MXFP4;
6. **serve**: every table file behind a :class:`embcompress.store.TieredStore` with a tenth of
   its bytes in DRAM, read by an :class:`embcompress.nn.MXEmbeddingBag` in place of the model's
   table: the test split's raw ids go through the file's id map and the store into the model,
   and every batch's lookups are checked to equal an ``MXEmbeddingBag`` on the same file in
   memory, bit for bit. AUC and logloss are measured on these served predictions;
7. **report**: one table (bytes, compression against full fp32, AUC and logloss per method and
   format), the collision report of the maps, the format explorer on the trained full table,
   plots, ``results.json``, all in ``out_dir``.

Nothing here prints: progress goes to the optional ``progress(done, total)`` callback.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from embcompress.container import check_output_folder, write_file_atomic
from embcompress.errors import ConfigError, param_error

from .ctr.report import human_bytes

METHODS = ("full", "hash", "learned")
FORMATS = ("fp32", "mxfp4_e2m1")
DATASETS = ("frappe", "criteo", "talkingdata")
# Progress weights of the stages (rough shares of the wall time on the default settings).
_STAGES = {"data": 2, "mine": 6, "maps": 12, "train": 55, "export": 5, "serve": 12, "report": 8}


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run; ``quick`` ones are for tests (seconds, not minutes)."""

    n_rows: int | None  # synthetic rows, or a cap on the rows read from a real log (None: all)
    vocab: tuple[int, ...]  # synthetic vocabularies (user, item, category, context)
    n_groups: tuple[int, ...]
    dim: int
    budget: float  # total bytes of the compressed features, as a fraction of their full fp32 tables
    min_vocab: int  # features with at least this many training ids are compressed
    epochs: int
    batch_size: int
    lr: float
    dram_share: float  # share of each table's bytes the tiered store keeps in DRAM
    serve_batch: int  # test rows per served batch
    format_bags: int  # bags the format explorer pools
    version: int = 1

    def __post_init__(self):
        owner = "DemoSettings"
        if isinstance(self.version, bool) or self.version != 1:  # (JSON true equals 1)
            raise param_error("version", owner, "be 1", self.version)
        if self.n_rows is not None and not (isinstance(self.n_rows, int) and self.n_rows >= 100):
            raise param_error("n_rows", owner, "be None or an int >= 100", self.n_rows)
        for name in ("vocab", "n_groups"):  # len() of a number raised the raw TypeError
            v = getattr(self, name)
            if (isinstance(v, (str, bytes)) or not hasattr(v, "__len__")
                    or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 1 for x in v)):
                raise param_error(name, owner, "be a list of ints >= 1, one per synthetic feature", v)
        if len(self.vocab) != len(self.n_groups) or len(self.vocab) < 2:
            raise param_error("n_groups", owner, "have one entry per vocabulary, at least two", self.n_groups)
        for name in ("dim", "min_vocab", "epochs", "batch_size", "serve_batch", "format_bags"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise param_error(name, owner, "be an int >= 1", v)
        for name in ("budget", "dram_share"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise param_error(name, owner, "be a fraction in (0, 1)", v)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < float("inf"):
            # NaN passed 'lr <= 0' and was refused by TrainConfig only after the data were mined and mapped
            raise param_error("lr", owner, "be a positive finite number", self.lr)

    @classmethod
    def default(cls, quick: bool = False, *, real: bool = False) -> DemoSettings:
        """The demo's sizes: ``quick`` for tests; ``real`` for a real log (all its rows, or the
        first 20,000 when quick; the synthetic vocabularies do not apply)."""
        if quick:
            return cls(n_rows=20_000 if real else 4000, vocab=(300, 600, 20, 5), n_groups=(10, 12, 4, 2), dim=16,
                       budget=0.1, min_vocab=100, epochs=2, batch_size=256, lr=1e-2, dram_share=0.1,
                       serve_batch=512, format_bags=200)
        return cls(n_rows=None if real else 300_000, vocab=(5000, 20000, 200, 20), n_groups=(50, 200, 10, 4), dim=32,
                   budget=0.1, min_vocab=500, epochs=10, batch_size=512, lr=2e-3, dram_share=0.1, serve_batch=4096,
                   format_bags=2000)


@dataclass
class DemoResult:
    """What the demo measured and where it wrote it.

    ``rows``: one dict per (method, format): ``method``, ``format``, ``rows`` (per compressed
    feature), ``table_bytes``, ``map_bytes``, ``bytes``, ``compression`` (full fp32 bytes / bytes),
    ``auc``, ``logloss``, ``file_bytes`` (the table files on disk). ``serving``: per (method,
    format) the store's counters and the equality check. ``files``: name -> path of what was
    written; ``report`` is the markdown report.
    """

    out_dir: Path
    report: Path
    rows: list[dict]
    dataset: dict
    serving: dict
    seconds: dict
    settings: DemoSettings
    files: dict = field(default_factory=dict)

    def table(self) -> str:
        """The results table as aligned text (what ``embcompress demo`` prints)."""
        return _text_table(self.rows, self.dataset["compressed"])

    def row(self, method: str, fmt: str) -> dict:
        for r in self.rows:
            if r["method"] == method and r["format"] == fmt:
                return r
        raise KeyError((method, fmt))


# ----------------------------------------------------------------------------- data

def detect_dataset(path: str | os.PathLike) -> str:
    """Which harness loader reads ``path``: ``frappe`` (``*.libfm``), ``talkingdata`` (``*.csv``)
    or ``criteo`` (anything else: a TSV file, or a folder of train/dev/test TSV files). A file's
    extension is read as the log reader reads it: in any case, under a compression (``.csv.gz``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"The data path {str(p)!r} does not exist. Point --data at a Frappe folder, a Criteo TSV or a TalkingData CSV.")
    if p.is_dir():
        if any(p.glob("*.libfm")):
            return "frappe"
        if any(p.glob("*.csv")):
            return "talkingdata"
        return "criteo"
    ext = _extension(p)
    if ext == ".libfm":
        return "frappe"
    if ext == ".csv":
        return "talkingdata"
    return "criteo"


# compressions the log reader decompresses by a text log's extension (learned_hash.logs)
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


def _extension(p: Path) -> str:
    """The extension that tells a log's format, as the reader tells it: ``.csv`` for
    ``day_0.csv.gz`` and ``DAY_0.CSV`` too."""
    ext = p.suffix.lower()
    return Path(p.stem).suffix.lower() if ext in _COMPRESSED else ext


def _load(data, settings: DemoSettings, seed: int):
    from analysis.ctr.datasets import load_criteo, load_frappe, load_talkingdata
    from analysis.ctr.synthetic import load_synthetic

    if data is None:
        n_rows = settings.n_rows or DemoSettings.default().n_rows
        return load_synthetic(n_rows, seed=seed, vocab=settings.vocab, n_groups=settings.n_groups)
    kind = detect_dataset(data)
    loader = {"frappe": load_frappe, "criteo": load_criteo, "talkingdata": load_talkingdata}[kind]
    path = Path(data).expanduser()
    if kind == "frappe" and path.is_file() and path.suffix == ".libfm":
        path = path.parent  # the loader pools every libFM file of the folder (its *.libfm: not a compressed one)
    return loader(path, split_seed=seed, n_rows=settings.n_rows)


def _mine(splits, compressed: list[str], work: Path):
    """Write the training split to Parquet and mine it with DuckDB (train only: no test leakage)."""
    import pyarrow.parquet as pq

    from learned_hash.mining.api import mine

    log = work / "train.parquet"
    pq.write_table(splits.train.to_arrow(), log)
    features = list(splits.features)
    pairs = [(a, b) for a in compressed for b in features if b != a]
    return mine(str(log), features=features, label="label", pairs=pairs)


# ----------------------------------------------------------------------------- serving

def _served_model(model, files: list[Path], dram_share: float):
    """A copy of ``model`` that reads its tables from table files and takes raw ids.

    Each feature's table is an :class:`embcompress.nn.MXEmbeddingBag` over a
    :class:`embcompress.store.TieredStore` (raw ids -> the file's id map -> the store stages the
    rows -> the kernel pools them), checked on every batch against an ``MXEmbeddingBag`` over the
    same file in memory. Returns the model and its served tables (for counters and closing).
    """
    import copy

    from torch import nn

    from embcompress.nn import MXEmbeddingBag
    from embcompress.store import TieredStore
    from embcompress.tablefile import open_table

    class Served(nn.Module):
        def __init__(self, path: Path):
            super().__init__()
            file = open_table(path, verify="full")
            table_bytes = file.shape[0] * file.row_bytes
            dram = min(table_bytes, max(file.row_bytes, int(dram_share * table_bytes)))
            self.store = TieredStore(path, dram_bytes=dram, policy="frequency")
            self.bag = MXEmbeddingBag(self.store, id_map=self.store.id_map, mode="sum")
            self.reference = MXEmbeddingBag(file.table, id_map=file.id_map, mode="sum")
            self.nbytes, self.map_bytes = file.nbytes, file.id_map.nbytes
            self.lookups, self.mismatches, self.seconds = 0, 0, 0.0

        def forward(self, ids):
            bags = ids.reshape(-1, 1)  # one id a bag: the model reads one vector per feature
            t0 = time.perf_counter()
            out = self.bag(bags)
            self.seconds += time.perf_counter() - t0
            self.lookups += bags.shape[0]
            self.mismatches += int((out != self.reference(bags)).sum())
            return out

    served = copy.deepcopy(model)
    tables = [Served(p) for p in files]
    for i, t in enumerate(tables):
        served.embeddings[i][0] = t
    return served, tables


# ----------------------------------------------------------------------------- the job

def tiny_rows_note(weight, below: float = 1e-6) -> str:
    """A sentence for the format explorer's table when rows of ``weight`` hold only values below
    ``below`` (a row training left at about zero, such as the one the unseen ids share): fp16 and
    the row-wise formats cannot resolve such a row, so their 'max rel err' reads near or above 1
    while their QSNR stays high, which the table alone leaves unexplained. '' when there is none."""
    tiny = np.flatnonzero(np.abs(np.asarray(weight)).max(axis=1) < below)
    if tiny.size == 0:
        return ""
    which = f"Row {tiny[0]}" if tiny.size == 1 else f"{tiny.size} rows ({', '.join(map(str, tiny[:3]))}{', ...' if tiny.size > 3 else ''})"
    return (f"`max rel err` is the worst row's largest error over that row's largest value. {which} of this "
            f"table hold{'s' if tiny.size == 1 else ''} only values below {below:g} (training left "
            f"{'it' if tiny.size == 1 else 'them'} at about zero), too small for fp16 and the row-wise formats "
            f"(fp16 scale and bias; int8's divides by the range plus 1e-8), which store such a row as zeros or "
            f"all alike: hence their max rel err near or above 1, on rows that add next to nothing to a bag. "
            f"Their QSNR and bag errors show how they fare.")


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    *,
    data: str | os.PathLike | None = None,
    seed: int = 0,
    quick: bool = False,
    settings: DemoSettings | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> DemoResult:
    """Run the whole pipeline (see the module docstring) and write its report to ``out_dir``.

    ``data``: None for the synthetic log, or a real log (see :func:`detect_dataset`). ``quick``:
    tiny sizes for tests. ``settings`` overrides the sizes (default: ``DemoSettings.default(quick,
    real=data is not None)``). ``seed`` seeds the data, the maps and
    the training. Returns a :class:`DemoResult`; ``result.report`` is the markdown report.
    ``out_dir`` is made once the data are read and checked: a bad ``data`` leaves nothing behind.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
        raise param_error("seed", "run_demo", "be an int in [0, 2**31)", seed)
    if settings is None:
        settings = DemoSettings.default(bool(quick), real=data is not None)
    elif not isinstance(settings, DemoSettings):
        raise param_error("settings", "run_demo", "be a DemoSettings or None", type(settings).__name__)
    out = Path(out_dir).expanduser()
    check_output_folder(out, "out_dir (--out)")  # made only once the data are read and checked (a bad --data leaves nothing)
    seed = int(seed)

    import torch

    # One torch thread: this model is too small for intra-op parallelism to pay, and on a busy
    # 2-core machine two spinning threads made an epoch 4x slower than one (measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(out, data, seed, settings, progress)
    finally:
        torch.set_num_threads(threads)


def _run(out: Path, data, seed: int, settings: DemoSettings, progress) -> DemoResult:
    import torch

    from analysis.ctr.compression import compressed_map, full_map, plan_budget
    from analysis.ctr.metrics import auc, logloss
    from analysis.ctr.model import DLRM
    from analysis.ctr.train import Encoded, TrainConfig, fit, predict

    total = float(sum(_STAGES.values()))
    done = [0.0]
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def step(stage: str, fraction: float = 1.0, *, finished: bool = True):
        if progress is not None:
            progress(min(total, done[0] + _STAGES[stage] * fraction), total)
        if finished:
            done[0] += _STAGES[stage]
            now = time.perf_counter()
            seconds[stage] = now - clock[0]
            clock[0] = now

    # 1. data
    splits = _load(data, settings, seed)
    splits.check_classes()  # before any mining or training, not at the first AUC
    features = list(splits.features)
    compressed = splits.compressible(settings.min_vocab)
    out.mkdir(parents=True, exist_ok=True)
    step("data")

    # 2. mine
    artifacts = out / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="embc-demo-") as tmp:
        stats = _mine(splits, compressed, Path(tmp))
    stats.save(artifacts / "train.stats")
    step("mine")

    # 3. maps at equal total bytes
    dim = settings.dim
    full_maps = {f: full_map(f, stats) for f in features}
    plan = plan_budget(stats, compressed, settings.budget, dim=dim)
    maps = {"full": dict(full_maps)}
    for k, method in enumerate(METHODS[1:]):
        maps[method] = dict(full_maps)
        for f in compressed:
            maps[method][f] = compressed_map(method, f, stats, plan.shares[f], dim=dim, fmt="fp32", seed=seed)
        step("maps", (k + 1) / (len(METHODS) - 1), finished=k == len(METHODS) - 2)

    # 4. train one model per method
    config = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr)
    n_dense = splits.train.n_dense

    def encode(method, part):
        cols = [maps[method][f].index(part.column(f)) for f in features]
        return Encoded.from_numpy(np.concatenate(cols, axis=1), part.dense, part.label)

    models, histories = {}, {}
    for k, method in enumerate(METHODS):
        torch.manual_seed(seed)
        model = DLRM([maps[method][f].shape for f in features], dim, n_dense=n_dense,
                     bottom=(64,) if n_dense else (), top=(64, 32))

        def epoch_done(e, n, k=k):
            step("train", (k + e / n) / len(METHODS), finished=False)

        histories[method] = fit(model, encode(method, splits.train), encode(method, splits.validation), config,
                                seed=seed, progress=epoch_done)
        models[method] = model
    step("train")

    # 5. export every table, in every format, with its id map and per-row access counts
    from embcompress.export import export

    paths: dict[tuple[str, str], list[Path]] = {}
    for method in METHODS:
        state = {f"embedding.{f}.weight": models[method].embeddings[i][0].weight.detach() for i, f in enumerate(features)}
        id_maps, freqs = {}, {}
        for f in features:
            m = maps[method][f]
            ids, counts = stats.frequencies(f)
            id_maps[f"embedding.{f}"] = m.id_map
            freqs[f"embedding.{f}"] = np.bincount(m.id_map.lookup(ids), weights=counts, minlength=m.shape.rows[0]).astype(np.int64)
        for fmt in FORMATS:
            report = export(state, fmt=fmt, id_maps=id_maps, frequencies=freqs, out_dir=out / "tables" / f"{method}-{fmt}")
            by_name = {e["name"]: Path(e["path"]) for e in report}
            paths[(method, fmt)] = [by_name[f"embedding.{f}"] for f in features]
    step("export")

    # 6. serve the test split from the files through tiered stores and measure
    test = splits.test
    y = test.label.astype(np.float64)
    raw = Encoded.from_numpy(test.cat, test.dense, test.label)
    rows, serving = [], {}
    reference = None
    for k, (method, fmt) in enumerate(paths):
        served_model, tables = _served_model(models[method], paths[(method, fmt)], settings.dram_share)
        try:
            p = predict(served_model, raw, batch_size=settings.serve_batch)
            served = {
                "lookups": sum(t.lookups for t in tables),
                "mismatches": sum(t.mismatches for t in tables),
                "store_seconds": sum(t.seconds for t in tables),
                "tables": {f: _store_stats(t.store) for f, t in zip(features, tables)},
            }
            table_bytes = sum(t.nbytes for t in tables)
            map_bytes = sum(t.map_bytes for t in tables)
        finally:
            for t in tables:
                t.store.close()
        if fmt == "fp32":  # served fp32 rows are the trained rows: the predictions must agree
            direct = predict(models[method], encode(method, test))
            served["max_abs_diff_vs_torch"] = float(np.max(np.abs(p - direct)))
        serving[f"{method}/{fmt}"] = served
        row = {
            "method": method,
            "format": fmt,
            "rows": {f: int(maps[method][f].shape.rows[0]) for f in compressed},
            "table_bytes": int(table_bytes),
            "map_bytes": int(map_bytes),
            "bytes": int(table_bytes + map_bytes),
            "file_bytes": int(sum(q.stat().st_size for q in paths[(method, fmt)])),
            "auc": auc(y, p),
            "logloss": logloss(y, p),
            "epochs_run": histories[method]["epochs_run"],
        }
        if method == "full" and fmt == "fp32":
            reference = row["bytes"]
        rows.append(row)
        step("serve", (k + 1) / len(paths), finished=k == len(paths) - 1)
    for row in rows:
        row["compression"] = reference / row["bytes"]

    # 7. report
    from analysis.collisions import collision_report

    collisions = {m: collision_report({f: maps[m][f].id_map for f in compressed}, stats) for m in METHODS[1:]}
    dataset = {
        "name": splits.name,
        "info": splits.info,
        "features": features,
        "compressed": compressed,
        "vocab": splits.vocab_sizes(),
        "rows": {"train": splits.train.n_rows, "validation": splits.validation.n_rows, "test": splits.test.n_rows},
        "positive_rate_test": float(y.mean()),
        "budget": settings.budget,
        "budget_bytes": plan.budget_bytes,
        "reference_bytes": plan.reference_bytes,
    }
    files = _write_report(out, rows, dataset, serving, collisions, models["full"], maps["full"], stats, settings, seed, seconds)
    step("report")
    result = DemoResult(out, files["report"], rows, dataset, serving, seconds, settings, files)
    _write_json(out / "results.json", _results_dict(result, collisions, seed))
    return result


def _store_stats(store) -> dict:
    s = store.stats()
    keep = ("hit_rate", "blocks_read", "bytes_read", "read_amplification", "dram_rows", "dram_capacity_rows", "unique_rows")
    return {k: (None if isinstance(s[k], float) and not np.isfinite(s[k]) else s[k]) for k in keep}


# ----------------------------------------------------------------------------- writing

_FMT_NAMES = {"fp32": "fp32", "mxfp4_e2m1": "MXFP4"}


def _cells(rows: list[dict], compressed: list[str]) -> list[list[str]]:
    few = len(compressed) <= 3  # name each compressed feature's rows, or give their total
    rows_head = f"rows ({', '.join(compressed)})" if few else f"rows ({len(compressed)} features)"
    head = ["method", "format", rows_head, "bytes", "compression", "AUC", "logloss"]
    body = [[
        "hashing trick" if r["method"] == "hash" else r["method"],
        _FMT_NAMES.get(r["format"], r["format"]),
        " / ".join(str(r["rows"][f]) for f in compressed) if few else str(sum(r["rows"].values())),
        human_bytes(r["bytes"]),
        f"{r['compression']:.1f}x",
        f"{r['auc']:.4f}",
        f"{r['logloss']:.4f}",
    ] for r in rows]
    return [head, *body]


def _text_table(rows: list[dict], compressed: list[str]) -> str:
    cells = _cells(rows, compressed)
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    line = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])])


def _md_table(cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(cells[0]))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])




def _write_json(path: Path, obj) -> Path:
    return write_file_atomic(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _write_report(out: Path, rows, dataset, serving, collisions, full_model, full_maps, stats, settings, seed, seconds) -> dict:
    from analysis.plots import plot_format_report, plot_pareto
    from analysis.quant_error import format_report, frequency_bags

    files: dict[str, Path] = {}
    # bytes against AUC, one point per (method, format)
    summary = [{**r, "auc": {"mean": r["auc"], "std": 0.0}} for r in rows]
    files["pareto"] = plot_pareto(summary, out / "bytes_vs_auc.png",
                                  title=f"{dataset['name']}: total embedding bytes against test AUC (served)")
    # the format explorer on the trained full table of the biggest feature
    big = max(dataset["compressed"], key=lambda f: dataset["vocab"][f])
    i = dataset["features"].index(big)
    weight = full_model.embeddings[i][0].weight.detach().numpy()
    ids, counts = stats.frequencies(big)
    row_counts = np.bincount(full_maps[big].id_map.lookup(ids), weights=counts, minlength=weight.shape[0])
    fr = format_report(np.ascontiguousarray(weight, dtype=np.float32),
                       sample_bags=frequency_bags(row_counts.astype(np.int64), settings.format_bags, seed=seed))
    fr.title = f"format report: trained full table of {big!r} ({weight.shape[0]} x {weight.shape[1]}), {settings.format_bags} bags by traffic"
    files["format_plot"] = plot_format_report(fr, out / "format_report.png")
    files["format_report"] = write_file_atomic(out / "format_report.md", f"# {fr.title}\n\n{fr.to_markdown()}\n\n![formats](format_report.png)\n")

    full = next(r for r in rows if r["method"] == "full" and r["format"] == "fp32")
    lines = [
        "# embcompress demo: the whole pipeline on one log",
        "",
        _describe_data(dataset, settings, seed),
        "",
        "## Results",
        "",
        _md_table(_cells(rows, dataset["compressed"])),
        "",
        "Bytes count everything serving holds: every feature's rows times the format's row record (block "
        "scales included) plus every id map's own bytes. Compression is against the full fp32 tables. "
        f"AUC and logloss are on the {dataset['rows']['test']} test rows, predicted by the model reading "
        "its tables from the exported files through tiered stores (not from torch's weights). "
        "One seed; `embcompress evaluate` runs several with intervals.",
        "",
        "![bytes against AUC](bytes_vs_auc.png)",
        "",
        "## Changes against the full fp32 table",
        "",
    ]
    for r in rows:
        if r is full:
            continue
        lines.append(f"- {r['method']} / {_FMT_NAMES.get(r['format'], r['format'])}: {r['compression']:.1f}x smaller, "
                     f"AUC {r['auc'] - full['auc']:+.4f}, logloss {r['logloss'] - full['logloss']:+.4f}.")
    lines += [
        "",
        "## Serving",
        "",
        f"Each table file is served by an `embcompress.store.TieredStore` holding {settings.dram_share:.0%} of its "
        f"bytes in DRAM (the rows with the most mined accesses) and reading the rest from the file; test rows go "
        f"through in batches of {settings.serve_batch} as raw ids into `embcompress.nn.MXEmbeddingBag` modules built on "
        "the stores (in place of the model's tables), and every batch is also pooled by an `MXEmbeddingBag` on the whole "
        "table in memory.",
        "",
        "| method / format | lookups | differing outputs | DRAM hit rate (unique rows) | 4 KiB blocks read | served = torch (fp32) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, s in serving.items():
        hits = [t["hit_rate"] for t in s["tables"].values() if t["hit_rate"] is not None]
        uniq = [t["unique_rows"] for t in s["tables"].values()]
        rate = sum(h * u for h, u in zip(hits, uniq)) / max(1, sum(uniq)) if hits else float("nan")
        blocks = sum(t["blocks_read"] for t in s["tables"].values())
        agree = f"max diff {s['max_abs_diff_vs_torch']:.1e}" if "max_abs_diff_vs_torch" in s else "-"
        lines.append(f"| {key} | {s['lookups']} | {s['mismatches']} | {rate:.1%} | {blocks} | {agree} |")
    lines += ["", "## Collisions of the compressed maps (training traffic)", ""]
    for m, rep in collisions.items():
        lines += [f"### {m}", "", rep.to_markdown(), ""]
    lines += [
        "## The format explorer on the trained table",
        "",
        fr.title + ".",
        "",
        fr.to_markdown(),
        "",
        *([tiny_rows_note(weight), ""] if tiny_rows_note(weight) else []),
        "![formats](format_report.png)",
        "",
        "## Files",
        "",
        "- `results.json`: every number above, the settings and the machine",
        "- `artifacts/train.stats`: the mined log statistics (`learned_hash.LogStats.load`)",
        "- `tables/<method>-<format>/embedding.<feature>.embc`: the exported table files (`embcompress inspect` / "
        "`verify`; `embcompress.nn.MXEmbeddingBag.from_file` serves one), with `export.json` (bytes and QSNR per table)",
        "- `bytes_vs_auc.png`, `format_report.png`, `format_report.md`",
        "",
        "## Time",
        "",
        ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()) + f" (report not included); {_machine()}.",
        "",
    ]
    files["report"] = write_file_atomic(out / "report.md", "\n".join(lines))
    return files


def _describe_data(dataset, settings, seed) -> str:
    info = dataset["info"]
    if dataset["name"] == "synthetic":
        what = (f"A synthetic click log ({info.get('n_rows')} rows, seed {seed}): Zipf ids with planted groups of ids "
                f"that behave alike, vocabularies {dict(zip(dataset['features'], settings.vocab))}.")
    else:
        from analysis.ctr.report import bad_lines_note

        what = f"The {dataset['name']} log ({', '.join(info.get('files', []))})."
        if bad_lines_note(info):
            what += " " + bad_lines_note(info)
    r = dataset["rows"]
    big = ", ".join(f"{f} ({dataset['vocab'][f]} ids)" for f in dataset["compressed"])
    return (f"{what} Split {info.get('split', '?')}: {r['train']} train, {r['validation']} validation, {r['test']} test rows. "
            f"Compressed features: {big}; "
            f"the others keep a row per id in every run. The hashing trick and the learned map get "
            f"{dataset['budget']:.0%} of the compressed features' full fp32 bytes "
            f"({human_bytes(dataset['budget_bytes'])} of {human_bytes(dataset['reference_bytes'])}), id maps included. "
            f"Embedding dimension {settings.dim}.")


def _machine() -> str:
    import torch

    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    n = torch.get_num_threads()
    return f"{cpu or 'unknown CPU'}, {os.cpu_count()} cores, torch {torch.__version__} with {n} thread{'' if n == 1 else 's'}"


def _results_dict(result: DemoResult, collisions, seed: int) -> dict:
    from analysis.ctr.sweep import environment

    return {
        "kind": "embcompress.demo_results",
        "version": 1,
        "seed": seed,
        "settings": asdict(result.settings),
        "dataset": result.dataset,
        "rows": result.rows,
        "serving": result.serving,
        "collisions": {m: rep.to_dict() for m, rep in collisions.items()},
        "seconds": result.seconds,
        "environment": environment(),
    }
