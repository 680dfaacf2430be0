"""A sweep's report: ``results.json`` (machine-readable), ``report.md``, ``report.html`` (the same
tables with the plot embedded) and ``pareto.png`` (bytes against AUC, every method).

Nothing here measures anything: it formats a sweep's results (the dict of
:meth:`SweepResult.to_dict`, the content of ``results.json``).
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from embcompress.container import write_file_atomic
from embcompress.errors import param_error




def _budget(b) -> str:
    return "full" if b is None else f"1/{1 / b:.0f}" if abs(1 / b - round(1 / b)) < 1e-9 else f"{b:g}"


def human_bytes(n: float) -> str:
    """``n`` bytes as B, KiB, MiB or GiB with one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _ci(d: dict | None, digits: int = 4) -> str:
    if not d:
        return "-"
    return f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"


def bad_lines_note(info: dict) -> str:
    """A sentence on the malformed lines the loader skipped and the rows without a time the time
    split left out, or "" when there were none."""
    bad = {f: n for f, n in (info.get("bad_lines") or {}).items() if n}
    out = []
    if bad:
        total = sum(bad.values())
        out.append(f"{total} malformed line{'s' if total > 1 else ''} skipped ({', '.join(f'{f} {n}' for f, n in bad.items())}).")
    if info.get("rows_without_time"):
        out.append(f"{info['rows_without_time']} rows without a time left out of the time split.")
    return " ".join(out)


def _sorted(summary: list[dict]) -> list[dict]:
    methods = list(dict.fromkeys(r["method"] for r in summary))
    return sorted(summary, key=lambda r: (r["budget"] is not None, -(r["budget"] or 0), methods.index(r["method"]), r["format"] != "fp32", r["format"]))


def results_table(results: dict) -> list[list[str]]:
    """The summary as rows of strings (header first), as both reports print it."""
    compressed = results["dataset"]["compressed"]
    head = ["budget", "method", "format", "bytes", "of full fp32", "AUC (mean ± sd)", "ΔAUC vs full [95% CI]",
            "logloss (mean ± sd)", "Δlogloss [95% CI]", "accesses on shared rows"]
    rows = [head]
    for r in _sorted(results["summary"]):
        coll = r.get("collisions")
        shared = ", ".join(f"{f} {coll[f]['shared_access_share']:.0%}" for f in compressed if f in coll) if coll else "-"
        rows.append([
            _budget(r["budget"]), r["method"], r["format"], human_bytes(r["bytes"]), f"{r['ratio']:.4f}",
            f"{r['auc']['mean']:.4f} ± {r['auc']['std']:.4f}", _ci(r.get("delta_auc")),
            f"{r['logloss']['mean']:.4f} ± {r['logloss']['std']:.4f}", _ci(r.get("delta_logloss")), shared,
        ])
    return rows


# a share of test lookups on unseen ids above which the findings say the full baseline is understated
UNSEEN_WARN = 0.05


def findings(results: dict) -> list[str]:
    """The comparisons the evaluation asks for, stated from the numbers: at every budget, does each
    learned method lose at most half the AUC the hashing trick loses, and beat the frequency hybrid;
    and what a narrower format costs a method at the same budget."""
    summ = results["summary"]

    def get(method, fmt, budget):
        return next((r for r in summ if r["method"] == method and r["format"] == fmt and r["budget"] == budget), None)

    full = get("full", "fp32", None)
    out = []
    if full is None:
        return out
    f_auc = full["auc"]["mean"]
    unseen = results.get("dataset", {}).get("unseen_test_share", {})  # (results written before it was recorded lack it)
    worst = max(unseen, key=unseen.get, default=None)
    if results.get("config", {}).get("full_min_count", 1) == 1 and worst is not None and unseen[worst] >= UNSEEN_WARN:
        out.append(f"full baseline: {unseen[worst]:.0%} of the test lookups of {worst} (the most of any compressed feature) "
                   f"are of ids unseen in training, which read the full table's unseen-id row, and with full_min_count 1 "
                   f"no training id trains that row, so the full table's AUC is understated; rerun with "
                   f"\"full_min_count\": 2 to train it on the ids seen once.")
    budgets = sorted({r["budget"] for r in summ if r["budget"] is not None}, reverse=True)
    variants = results["config"].get("variants", {})
    learned = [m for m in dict.fromkeys(r["method"] for r in summ)
               if variants.get(m, {}).get("method", m) in ("learned", "learned_trained")]
    for b in budgets:
        hashed, freq = get("hash", "fp32", b), get("frequency", "fp32", b)
        for m in learned:
            lr = get(m, "fp32", b)
            if lr is None:
                continue
            loss = f_auc - lr["auc"]["mean"]
            # (a gain was printed as "loss -0.0269", then graded as losing "at most half" of the hashing loss)
            parts = [f"budget {_budget(b)}, {m}: AUC {lr['auc']['mean']:.4f} ("
                     + (f"loss {loss:+.4f}" if loss >= 0 else f"a gain of {-loss:.4f}") + f" against full {f_auc:.4f})"]
            if hashed is not None:
                h_loss = f_auc - hashed["auc"]["mean"]
                l_loss = f_auc - lr["auc"]["mean"]
                if h_loss <= 0:  # no loss to halve: "MORE than half" of a gain graded a method that lost nothing
                    parts.append(f"the hashing trick loses nothing here ({-h_loss:+.4f} AUC against full), so the "
                                 f"half-its-loss bar cannot be read")
                else:
                    ok = l_loss <= 0.5 * h_loss
                    parts.append(f"hashing trick loses {h_loss:+.4f}: " + (
                        f"{m} loses {'at most' if ok else 'MORE than'} half of it ({l_loss / h_loss:.0%} of it)"
                        if l_loss >= 0 else f"{m} loses at most half of it (none: it beats the full table)"))
            if freq is not None:
                d = lr["auc"]["mean"] - freq["auc"]["mean"]
                parts.append(f"{'beats' if d > 0 else 'does NOT beat'} the frequency hybrid ({d:+.4f} AUC)")
            out.append("; ".join(parts) + ".")
    same = ", same rows"
    for r in summ:
        if r["format"] == "fp32":
            continue
        if r["budget"] is None:
            out.append(f"full table stored as {r['format']}: AUC {r['auc']['mean']:.4f} ({r['auc']['mean'] - f_auc:+.4f} against fp32).")
        elif r["method"].endswith(same):
            base = get(r["method"][: -len(same)], "fp32", r["budget"])
            if base is not None:
                out.append(f"budget {_budget(r['budget'])}, {r['method'][: -len(same)]} with the same rows stored as {r['format']}: "
                           f"AUC {r['auc']['mean']:.4f}, {r['auc']['mean'] - base['auc']['mean']:+.4f} against fp32 storage, "
                           f"bytes {human_bytes(base['bytes'])} -> {human_bytes(r['bytes'])}.")
        else:
            base = get(r["method"], "fp32", r["budget"])
            if base is not None:
                # the same budget, not always the same bytes: a learned map may stop at the last row count
                # its narrow entries hold (compression.py, the map-share rule) and leave bytes unspent
                out.append(f"budget {_budget(r['budget'])}, {r['method']} with {r['format']} rows within the same budget "
                           f"(bytes {human_bytes(base['bytes'])} in fp32 -> {human_bytes(r['bytes'])}, so more rows): "
                           f"AUC {r['auc']['mean']:.4f}, {r['auc']['mean'] - base['auc']['mean']:+.4f} against its fp32 rows.")
    return out


def to_markdown(results: dict, *, plot: str | None = "pareto.png") -> str:
    ds, env, cfg = results["dataset"], results["environment"], results["config"]
    comp = ", ".join(f"{f} ({ds['vocab'][f]} ids)" for f in ds["compressed"])
    lines = [
        f"# Collision impact on {ds['name']}",
        "",
        f"Rows: train {ds['rows']['train']}, validation {ds['rows']['validation']}, test {ds['rows']['test']} "
        f"(split: {ds['info'].get('split', '?')}; test positive rate {ds['positive_rate_test']:.3f}). "
        + (bad_lines_note(ds["info"]) + " " if bad_lines_note(ds["info"]) else "")
        + f"Compressed features: {comp}; "
        f"the others keep full tables, the same in every run and outside the budgets.",
        "",
        f"Budgets are fractions of the compressed features' full fp32 tables ({human_bytes(results['reference_bytes'])}, "
        f"dim {cfg['model']['dim']}), counting every byte: rows times the format's row record (scales "
        f"included) plus the id maps. Seeds: {cfg['seeds']}; ΔAUC and Δlogloss are against the full fp32 "
        f"table of the same seed, mean over seeds, with a 95% paired bootstrap interval over test rows "
        f"({cfg['bootstrap']} resamples).",
        "",
    ]
    table = results_table(results)
    lines.append("| " + " | ".join(table[0]) + " |")
    lines.append("|" + " --- |" * len(table[0]))
    lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
    lines.append("")
    found = findings(results)
    if found:
        lines += ["## Findings", ""] + [f"- {f}" for f in found] + [""]
    if plot:
        lines += [f"![bytes against AUC]({plot})", ""]
    lines += [
        "## Machine",
        "",
        f"{env['cpu']}, {env['cores']} cores, torch {env['torch']} with {env['torch_threads']} thread{'' if env['torch_threads'] == 1 else 's'}, {env['date']}.",
        "",
    ]
    return "\n".join(lines)


def to_html(results: dict, *, png: bytes | None = None) -> str:
    ds = results["dataset"]
    table = results_table(results)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table[1:])
    found = "".join(f"<li>{html.escape(f)}</li>" for f in findings(results))
    img = f'<img alt="bytes against AUC" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else ""
    md = to_markdown(results, plot=None).split("\n")
    table_at = next(i for i, line in enumerate(md) if line.startswith("|"))
    intro = "".join(f"<p>{html.escape(p)}</p>" for p in md[1:table_at] if p)  # the paragraphs above the table
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Collision impact on {html.escape(ds['name'])}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#eee}}</style></head>
<body><h1>Collision impact on {html.escape(ds['name'])}</h1>
{intro}
<table><tr>{head}</tr>
{body}
</table>
<h2>Findings</h2><ul>{found}</ul>
{img}
<h2>Machine</h2><p>{html.escape(md[-2])}</p>
</body></html>
"""


def write_report(result, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.json``, ``pareto.png``, ``report.md`` and ``report.html`` into ``out_dir``.

    ``result``: a :class:`SweepResult` or its ``to_dict()``. Returns the paths by name.
    """
    from ..plots import plot_pareto

    results = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(results, dict) or "summary" not in results:
        raise param_error("result", "write_report", "be a SweepResult or the dict of its results.json", type(result).__name__)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The JSON and markdown are rendered and the plot (what fails, when anything does) is written
    # atomically before the other files are replaced: a failed plot leaves the previous run's four.
    text = json.dumps(results, indent=1, sort_keys=False) + "\n"
    markdown = to_markdown(results, plot="pareto.png")
    paths = {"pareto": plot_pareto(results["summary"], out / "pareto.png",
                                   title=f"{results['dataset']['name']}: total embedding bytes against test AUC")}
    page = to_html(results, png=paths["pareto"].read_bytes())
    paths["results"] = write_file_atomic(out / "results.json", text)
    paths["markdown"] = write_file_atomic(out / "report.md", markdown)
    paths["html"] = write_file_atomic(out / "report.html", page)
    return paths
