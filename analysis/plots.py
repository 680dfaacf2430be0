"""Plots of analysis reports (PNG, matplotlib imported lazily).

Figures are made as ``matplotlib.figure.Figure`` objects, not through pyplot: they render to PNG
without a GUI, and the caller's pyplot state (its backend, its open figures) is left as it was. A
plot made here in Jupyter used to switch the kernel to the Agg backend, after which the notebook's
own ``plt.show()`` drew nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

_FAMILY_COLORS = {"mx": "tab:blue", "bdr": "tab:orange", "rowwise": "tab:green", "float": "tab:gray"}


def _save(fig, path, dpi: int) -> Path:
    """Write ``fig`` as a PNG atomically (a failed render leaves the old file), then close it."""
    from embcompress.container import write_file_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))


def _figure(**kw):
    """A figure outside pyplot (no backend chosen, nothing to close): savefig renders it with Agg."""
    from matplotlib.figure import Figure

    return Figure(**kw)


def plot_format_report(report, path: str | os.PathLike) -> Path:
    """Bits per element against QSNR (and bag-sum QSNR when present), one point per format."""
    from embcompress.formats import get_format

    from matplotlib.lines import Line2D

    rows = [r for r in report.rows if r["qsnr_db"] != float("inf")]
    has_bags = any("bag_qsnr_db" in r for r in rows)
    fig = _figure(figsize=(12 if has_bags else 7, 5))
    axes = fig.subplots(1, 2 if has_bags else 1, squeeze=False)
    for ax, key, label in zip(axes[0], ("qsnr_db", "bag_qsnr_db"), ("element QSNR (dB)", "bag-sum QSNR (dB)")):
        for r in rows:
            fam = get_format(r["format"]).family
            ax.scatter(r["bits_per_element"], r[key], color=_FAMILY_COLORS[fam], s=40)
            ax.annotate(r["format"], (r["bits_per_element"], r[key]), textcoords="offset points", xytext=(4, 3), fontsize=8)
        ax.set_xlabel("stored bits per element (scales included)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=f) for f, c in _FAMILY_COLORS.items()]
    axes[0][0].legend(handles=handles, loc="lower right")
    fig.suptitle(getattr(report, "title", "") or "format report")
    fig.tight_layout()
    return _save(fig, path, 120)


def plot_pareto(summary: list[dict], path: str | os.PathLike, *, title: str = "", dpi: int = 110) -> Path:
    """Total embedding bytes (log scale) against test AUC, one line per (method, format) through
    its budgets, error bars one standard deviation over seeds; the full fp32 table dashed."""
    fig = _figure(figsize=(8, 5.5))
    ax = fig.subplots()
    series: dict[tuple[str, str], list[dict]] = {}
    for r in summary:
        series.setdefault((r["method"], r["format"]), []).append(r)
    markers = "osD^v<>phX*"
    for k, ((method, fmt), rows) in enumerate(series.items()):
        rows = sorted(rows, key=lambda r: r["bytes"])
        x = [r["bytes"] for r in rows]
        y = [r["auc"]["mean"] for r in rows]
        e = [r["auc"]["std"] for r in rows]
        label = method if fmt == "fp32" else f"{method} ({fmt})"
        ls = "-" if fmt == "fp32" else ":"
        ax.errorbar(x, y, yerr=e, marker=markers[k % len(markers)], ls=ls, capsize=3, label=label)
        if method == "full" and fmt == "fp32":
            ax.axhline(y[0], color="gray", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("total embedding bytes (rows x row record + id maps)")
    ax.set_ylabel("test AUC (mean over seeds, ±1 sd)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "bytes against AUC")
    fig.tight_layout()
    return _save(fig, path, dpi)
