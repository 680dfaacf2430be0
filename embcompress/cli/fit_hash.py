"""Fit one id map per feature from a log-stats file (learned hash maps, or a baseline).

Writes DIR/<feature>.idmap for each --feature and prints one line per feature: ids seen, rows,
hot rows, the share of accesses whose id shares its row with another seen id, and the map's bytes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import BackendUnavailableError, ConfigError
from .progress import Bar


def _parse_rows(features: list[str], rows: int | None, rows_per_feature: list[str]) -> dict[str, int]:
    per: dict[str, int] = {}
    for item in rows_per_feature:
        name, sep, value = item.partition("=")
        # isdecimal, not isdigit: int() refuses digits such as '²' that isdigit accepts
        if not sep or not value.strip().isdecimal():
            raise ConfigError(f"The '--rows-per-feature' option must look like FEATURE=N. Got {item!r} instead.")
        if name in per:  # (else the last one won without a word)
            raise ConfigError(f"The '--rows-per-feature' option gives feature {name!r} rows twice "
                              f"({name}={per[name]} and {item}). Give each feature's rows once.")
        per[name] = int(value)
    unknown = sorted(set(per) - set(features))
    if unknown:
        raise ConfigError(f"The '--rows-per-feature' option names features not given with --feature: {unknown}. "
                          f"Add them with --feature or drop them.")
    out = {}
    for f in features:
        n = per.get(f, rows)
        if n is None:
            raise ConfigError(f"No row count for feature {f!r}. Pass --rows N, or --rows-per-feature {f}=N.")
        out[f] = n
    return out


def fit_hash_files(stats_path: Path, features: list[str], rows: dict[str, int], out_dir: Path, *,
                   previous_dir: Path | None = None, progress_for=None, **options):
    """Fit and save one map per feature, yielding one summary dict per feature as it is written
    (what the CLI prints). ``options`` go to :func:`learned_hash.fit_hash`;
    ``progress_for(feature)`` gives each fit's progress callback.
    """
    try:
        from learned_hash import LogStats, fit_hash
        from learned_hash.build import check_fit_hash
    except ImportError as exc:
        raise BackendUnavailableError(f"fit-hash needs the 'learned_hash' package of this distribution ({exc}).") from None
    from ..idmap import IdMap

    if not features:
        raise ConfigError("Pass at least one --feature to fit a map for.")
    twice = sorted({f for f in features if features.count(f) > 1})
    if twice:  # (else it was fitted, and its file written, once for each time)
        raise ConfigError(f"--feature {twice[0]!r} is given twice: pass each feature once.")
    for f in features:
        if not f or "/" in f or "\\" in f or f.startswith("."):
            raise ConfigError(f"The feature name {f!r} cannot name a file in --out-dir. Pass a plain feature name.")
    stats = LogStats.load(stats_path)
    # every earlier map is opened and checked before the first fit: a missing or mismatched one
    # found after other features were fitted and written left --out-dir half refitted
    previous = dict.fromkeys(features)
    if previous_dir is not None:
        for f in features:
            path = previous_dir / f"{f}.idmap"
            if not path.is_file():
                raise ConfigError(
                    f"--previous-dir {str(previous_dir)!r} holds no earlier map for feature {f!r} ({str(path)!r} "
                    f"does not exist). Fit {f!r} in a run without --previous-dir, or point --previous-dir at "
                    f"the folder of the maps being refitted."
                )
            # every byte checked: a refit builds on the earlier rows (a flipped one moved its id
            # silently), and these small files are read once, offline
            previous[f] = IdMap.load(path, verify="full")
            if previous[f].n_rows != rows[f]:
                raise ConfigError(
                    f"The earlier map of feature {f!r} in --previous-dir ({str(path)!r}) has "
                    f"{previous[f].n_rows:,} rows, but this run gives {f!r} {rows[f]:,}; a refit keeps rows only "
                    f"within the same row count. Fit {f!r} into {previous[f].n_rows:,} rows, or without --previous-dir."
                )
            fitted_for = previous[f].config.get("feature")
            if fitted_for is not None and fitted_for != f:
                raise ConfigError(
                    f"The earlier map {str(path)!r} in --previous-dir was fitted for feature {fitted_for!r}, not {f!r} "
                    f"(renamed?). Put the map of {f!r} at that path, or fit {f!r} without --previous-dir."
                )
    # every feature is checked before the first fit, as the earlier maps are above: a typo in the
    # last --feature stopped the command only after the others were fitted (minutes each) and written
    for f in features:
        # a feature that was not mined, and what only this feature's rows refuse (no rows, more hot
        # rows than rows, a --max-share its cold rows cannot carry): fit_hash's own checks
        check_fit_hash(stats, f, rows[f], previous=previous[f], **options)
    embedding = options.get("embedding", "auto")  # (checked with the rest by check_fit_hash)
    partners = options.get("partners")
    if options.get("method", "learned") == "learned" and isinstance(embedding, str) \
            and partners is not None:
        from learned_hash.embed import _partners_of

        for f in features:
            for p in _partners_of(stats, f, partners):  # refuses a partner not mined with f
                if p == f:
                    stats.sequence_counts(f)  # refuses stats mined without a session key
    out_dir.mkdir(parents=True, exist_ok=True)  # (once all is checked: a refused run leaves no folder)
    for f in features:
        m = fit_hash(stats, f, rows[f], previous=previous[f],
                     progress=progress_for(f) if progress_for is not None else None, **options)
        m.inputs["stats_file"] = str(stats_path)
        path = m.save(out_dir / f"{f}.idmap")
        yield {
            "feature": f, "path": str(path), "ids_seen": m.meta["ids_seen"], "rows": m.n_rows,
            "hot_rows": m.meta["hot_ids"], "collision_share": m.meta["collision_share"], "nbytes": m.nbytes,
            "mapped_ids": m.n_mapped, "moved_ids": m.moved_ids, "moved_seen_ids": m.meta.get("moved_seen_ids"),
        }


# library parameter -> the flag that sets it (embcompress.cli.main adds it to a ConfigError's line)
FLAGS = {"n_rows": "--rows or --rows-per-feature", "method": "--method", "hot_rows": "--hot-rows",
         "max_mapped_ids": "--max-mapped-ids", "embedding": "--embedding", "partners": "--partner",
         "max_share": "--max-share", "seed": "--seed", "n_threads": "--threads", "feature": "--feature"}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def summary_line(s: dict) -> str:
    moved = (f", {s['moved_seen_ids']:,} seen and {s['moved_ids']:,} stored ids moved"
             if s.get("moved_ids") is not None else "")
    return (f"{s['feature']}: {s['ids_seen']:,} ids seen -> {s['rows']:,} rows ({s['hot_rows']:,} hot), "
            f"{s['collision_share']:.1%} of accesses collide, map {_size(s['nbytes'])}{moved} -> {s['path']}")


def command(
    stats: Path = typer.Argument(..., help="Log-stats file written by `embcompress mine`."),
    feature: list[str] = typer.Option(..., "--feature", "-f", help="Feature to fit a map for (repeatable)."),
    rows: int = typer.Option(None, "--rows", help="Rows of every feature's table."),
    rows_per_feature: list[str] = typer.Option([], "--rows-per-feature", help="FEATURE=N rows for one feature (repeatable)."),
    method: str = typer.Option("learned", "--method", help="learned | hash | frequency"),
    hot_rows: int = typer.Option(None, "--hot-rows", help="Rows owned by single hot ids (default: from the frequency curve; on a refit the earlier map's)."),
    max_mapped_ids: int = typer.Option(None, "--max-mapped-ids", help="Most ids a map stores; the rest hash."),
    embedding: str = typer.Option("auto", "--embedding", help="auto | cooccurrence | label_aware"),
    partner: list[str] = typer.Option([], "--partner", help="Feature whose co-occurrence embeds the ids (repeatable; "
                                      "the feature itself: its session sequences, or a multi-hot feature's lists when mined "
                                      "paired with itself). Default: every mined pair."),
    max_share: float = typer.Option(None, "--max-share", help="Largest share of traffic one bucket may carry."),
    seed: int = typer.Option(0, "--seed", help="Seed of embedding, clustering and fallback hash (a refit keeps the earlier map's hash seed)."),
    threads: int = typer.Option(None, "--threads", help="Threads (default: the machine's, honouring OMP_NUM_THREADS)."),
    previous_dir: Path = typer.Option(None, "--previous-dir", help="Folder of earlier maps: keep unchanged buckets, hot ids and hashed ids on their rows (and the hot count, unless --hot-rows)."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the <feature>.idmap files."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    per = _parse_rows(feature, rows, rows_per_feature)
    # '~' is the home folder ('~/x' quoted, or --out-dir=~/x, reaches here as is), as in `mine --out`
    stats, out_dir = stats.expanduser(), out_dir.expanduser()
    previous_dir = previous_dir.expanduser() if previous_dir is not None else None
    bar = None

    def progress_for(f):
        nonlocal bar
        bar = Bar(f"fit-hash {f}", enabled=not quiet)
        return bar

    try:
        for s in fit_hash_files(stats, feature, per, out_dir, previous_dir=previous_dir, progress_for=progress_for,
                                method=method, hot_rows=hot_rows, max_mapped_ids=max_mapped_ids,
                                embedding=embedding, partners=partner or None, max_share=max_share, seed=seed,
                                n_threads=threads):
            bar.close()
            bar = None
            typer.echo(summary_line(s))
    finally:
        if bar is not None:
            bar.close()
