"""The format explorer: how much each storage format loses on a given table.

``format_report(table)`` quantizes the table to every format (or the ones named) and reports, per
format, the bytes a row takes, the compression against fp32, the QSNR, the worst row-relative
error and, when bags are given, the error of pooled bag sums: the Block Data Representations
design-space view on a real table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import embcompress
from embcompress.errors import param_error
from embcompress.formats import FORMATS, get_format

COLUMNS = (
    ("format", "format", "{}"),
    ("bits_per_element", "bits/elem", "{:.2f}"),
    ("bytes_per_row", "bytes/row", "{:d}"),
    ("compression", "vs fp32", "{:.2f}x"),
    ("qsnr_db", "QSNR dB", "{:.2f}"),
    ("max_rel_err", "max rel err", "{:.3g}"),
    ("bag_qsnr_db", "bag QSNR dB", "{:.2f}"),
    ("bag_rel_err", "bag rel err", "{:.3g}"),
)


class ReportTable:
    """A small table of rows (dicts with the same keys): prints aligned, exports to Markdown/pandas."""

    def __init__(self, rows: list[dict], columns=COLUMNS, title: str = ""):
        self.rows = rows
        self.title = title
        keys = set().union(*(r.keys() for r in rows)) if rows else set()
        self.columns = [c for c in columns if c[0] in keys]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        """``report[i]``: row ``i``; ``report["mxfp4_e2m1"]``: the row of that format."""
        if isinstance(key, str):
            for row in self.rows:
                if row.get("format") == key:
                    return row
            raise KeyError(key)
        return self.rows[key]

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        head = [c[1] for c in self.columns]
        body = []
        for row in self.rows:
            cells = []
            for key, _, fmt in self.columns:
                v = row.get(key)
                if v is None:
                    cells.append("-")
                elif isinstance(v, float) and not np.isfinite(v):
                    cells.append("inf" if v > 0 else ("-inf" if v < 0 else "nan"))
                else:
                    cells.append(fmt.format(v))
            body.append(cells)
        return head, body

    def to_markdown(self) -> str:
        head, body = self._cells()
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=[c[0] for c in self.columns])

    def __str__(self) -> str:
        head, body = self._cells()
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
        fmt_row = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        lines = ([self.title] if self.title else []) + [fmt_row(head), "  ".join("-" * w for w in widths)]
        return "\n".join(lines + [fmt_row(r) for r in body])

    def __repr__(self) -> str:
        return f"ReportTable({len(self.rows)} rows)\n{self}"


def _bags(sample_bags, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalize bags to (row ids, bag index per id)."""
    if isinstance(sample_bags, tuple) and len(sample_bags) == 2:
        indices = np.asarray(sample_bags[0])
        offsets = np.asarray(sample_bags[1])
        if indices.ndim != 1 or offsets.ndim != 1 or indices.dtype.kind not in "iu" or offsets.dtype.kind not in "iu":
            raise param_error("sample_bags", "format_report", "be (indices, offsets) int arrays as nn.EmbeddingBag takes", "other arrays")
        if offsets.size == 0 or offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > indices.size:
            raise param_error("sample_bags", "format_report", "have offsets starting at 0, non-decreasing, within indices", offsets[:5])
        bag = np.repeat(np.arange(offsets.size), np.diff(np.append(offsets, indices.size)))
    elif isinstance(sample_bags, Sequence):
        lists = [np.asarray(b).reshape(-1) for b in sample_bags]
        if any(b.dtype.kind not in "iu" for b in lists if b.size):
            raise param_error("sample_bags", "format_report", "be a list of int row-id arrays", "non-integer ids")
        indices = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
        bag = np.repeat(np.arange(len(lists)), [b.size for b in lists])
    else:
        raise param_error("sample_bags", "format_report", "be None, a list of row-id arrays, or (indices, offsets)", type(sample_bags).__name__)
    if indices.size and (indices.min() < 0 or indices.max() >= n_rows):
        raise param_error("sample_bags", "format_report", f"hold row ids in [0, {n_rows})", f"ids from {indices.min()} to {indices.max()}")
    return indices.astype(np.int64), bag


def _pool(x: np.ndarray, indices: np.ndarray, bag: np.ndarray, n_bags: int) -> np.ndarray:
    out = np.zeros((n_bags, x.shape[1]), dtype=np.float64)
    np.add.at(out, bag, x[indices].astype(np.float64))
    return out


def _snr_db(signal: np.ndarray, err: np.ndarray) -> float:
    s, e = float(np.sum(signal * signal)), float(np.sum(err * err))
    if e == 0:
        return float("inf")
    return float(10 * np.log10(s / e)) if s > 0 else float("-inf")


def format_report(table, formats=None, sample_bags=None, *, scale_mode: str = "floor") -> ReportTable:
    """Per format: bits per element, bytes per row, compression vs fp32, QSNR, errors.

    ``table``: float32 ``(n_rows, dim)``. ``formats``: names (default: all in ``FORMATS``).
    ``sample_bags``: optional bags of row ids (a list of id arrays, or ``(indices, offsets)`` as
    ``nn.EmbeddingBag`` takes) whose pooled sums are compared. ``scale_mode``: passed to
    ``quantize`` for the MX and BDR formats (row-wise and floats always use theirs).

    QSNR is ``10 log10(sum x^2 / sum (x - x_hat)^2)`` over the whole table; ``max_rel_err`` is the
    largest ``max |x - x_hat| / max |x|`` over rows (relative to each row's largest magnitude,
    since elements flushed to zero make the element-wise ratio 1 in every narrow format).
    ``bag_qsnr_db`` / ``bag_rel_err`` are the QSNR and the RMS relative error of the bag sums.
    """
    x = np.asarray(table)
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] == 0:  # (no columns: numpy's raw zero-size reduction error)
        raise param_error("table", "format_report", "be a float32 array (n_rows, dim) with dim >= 1", f"{x.dtype} array of shape {x.shape}")
    bad_rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad_rows.size:  # quantize's own message suggests an option this report does not take
        raise param_error("table", "format_report", "be finite (drop or clean the rows holding NaN or inf first)",
                          f"NaN or inf in rows {bad_rows[:10].tolist()}" + (f" and {bad_rows.size - 10} more" if bad_rows.size > 10 else ""))
    if formats is not None and (isinstance(formats, (str, bytes)) or not hasattr(formats, "__iter__")):
        # a name was read letter by letter ("Unknown format 'm'"), a number raised the raw TypeError
        raise param_error("formats", "format_report", f"be None (every format) or a list of format names, like "
                          f"[{formats!r}]" if isinstance(formats, str) else "be None (every format) or a list of format names",
                          formats)
    names = list(FORMATS) if formats is None else list(formats)
    for name in names:
        get_format(name)
    bags = _bags(sample_bags, x.shape[0]) if sample_bags is not None else None
    ref_bags = _pool(x, *bags, int(bags[1].max()) + 1 if bags[1].size else 0) if bags is not None else None
    x64 = x.astype(np.float64)
    row_amax = np.abs(x64).max(axis=1)
    rows = []
    dim = x.shape[1]
    for name in names:
        spec = get_format(name)
        mode = scale_mode if spec.family in ("mx", "bdr") else "floor"
        q = embcompress.quantize(x, name, scale_mode=mode)
        err = embcompress.dequantize(q).astype(np.float64) - x64
        row_err = np.abs(err).max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(row_amax > 0, row_err / np.where(row_amax > 0, row_amax, 1), np.where(row_err > 0, np.inf, 0.0))
        row = {
            "format": name,
            "bits_per_element": spec.bits_per_element(dim),
            "bytes_per_row": q.row_bytes,
            "compression": 4.0 * dim / q.row_bytes,
            "qsnr_db": _snr_db(x64, err),
            "max_rel_err": float(rel.max()) if rel.size else 0.0,
        }
        if bags is not None:
            err_bags = _pool(err, *bags, ref_bags.shape[0])
            row["bag_qsnr_db"] = _snr_db(ref_bags, err_bags)
            den = float(np.sum(ref_bags * ref_bags))
            row["bag_rel_err"] = float(np.sqrt(np.sum(err_bags * err_bags) / den)) if den > 0 else float("nan")
        rows.append(row)
    title = f"format report: table {x.shape[0]} x {dim}" + (f", {ref_bags.shape[0]} bags" if bags is not None else "")
    return ReportTable(rows, title=title)


def frequency_shaped_table(n_rows: int = 100_000, dim: int = 64, *, seed: int = 0, zipf: float = 1.1):
    """A synthetic table shaped like a trained embedding table, and its id frequencies.

    Trained recommendation tables are not Gaussian: ids follow a Zipf-like access law, rows of
    frequent ids move far from their small initialization (their norms grow with the log of the
    count) while rare rows stay near it, rows cluster, a few dimensions carry larger values, and
    elements are heavy-tailed. This draws such a table, seeded: ``(table float32, counts int64)``.
    """
    for name, v in (("n_rows", n_rows), ("dim", dim)):  # (numpy's raw zero-size or negative-size errors else)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise param_error(name, "frequency_shaped_table", "be an int >= 1", v)
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(n_rows) + 1
    p = ranks.astype(np.float64) ** -zipf
    counts = rng.poisson(p / p.sum() * 50.0 * n_rows).astype(np.int64)
    trained = np.log1p(counts) / np.log1p(counts.max())  # 0 for never-seen ids, 1 for the hottest
    centers = rng.standard_normal((32, dim))
    direction = centers[rng.integers(0, 32, n_rows)] + rng.standard_t(4, (n_rows, dim))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    dim_scale = np.ones(dim)
    dim_scale[rng.choice(dim, max(1, dim // 16), replace=False)] = 4.0  # outlier dimensions
    norm = (0.02 + 2.0 * trained**2) * rng.lognormal(0.0, 0.3, n_rows)
    table = direction * dim_scale * norm[:, None]
    init = rng.uniform(-0.01, 0.01, (n_rows, dim))  # uniform init, as torch.nn.EmbeddingBag-style
    return (table + init).astype(np.float32), counts


def frequency_bags(counts: np.ndarray, n_bags: int = 2000, *, mean_size: float = 10.0, seed: int = 0) -> list[np.ndarray]:
    """Bags of row ids drawn by access frequency (bag sizes 1 + Poisson(mean_size - 1)), seeded."""
    if isinstance(n_bags, bool) or not isinstance(n_bags, (int, np.integer)) or n_bags < 0:
        raise param_error("n_bags", "frequency_bags", "be an integer >= 0", n_bags)
    if isinstance(mean_size, bool) or not isinstance(mean_size, (int, float)) or not mean_size >= 1:  # (NaN too)
        raise param_error("mean_size", "frequency_bags", "be a number >= 1 (bags hold at least one id)", mean_size)
    if n_bags == 0:  # np.split of no ids would give one empty bag
        return []
    rng = np.random.default_rng(seed)
    p = (counts + 1) / float((counts + 1).sum())
    sizes = 1 + rng.poisson(mean_size - 1, n_bags)
    ids = rng.choice(counts.size, int(sizes.sum()), p=p)
    return np.split(ids.astype(np.int64), np.cumsum(sizes)[:-1])


def explore_formats(out_dir, *, n_rows: int = 100_000, dim: int = 64, seed: int = 0, n_bags: int = 2000, formats=None):
    """The format explorer on a frequency-shaped table: report, PNG plot and Markdown in ``out_dir``.

    Returns ``(report, plot_path)``. Seeded; a 100,000 x 64 table takes seconds.
    """
    from pathlib import Path

    from analysis.plots import plot_format_report
    from embcompress import container

    table, counts = frequency_shaped_table(n_rows, dim, seed=seed)
    report = format_report(table, formats, sample_bags=frequency_bags(counts, n_bags, seed=seed))
    out = Path(out_dir)
    plot = plot_format_report(report, out / "format_report.png")
    container.write_file_atomic(out / "format_report.md", f"{report.title} (frequency-shaped, seed {seed})\n\n{report.to_markdown()}\n")
    return report, plot
