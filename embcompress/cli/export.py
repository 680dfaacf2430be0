"""Export every embedding table of a trained model's state dict to compressed table files.

The state dict is read with torch.load(weights_only=True, mmap=True): mapped, so one larger than
memory exports (a file in torch's old non-zip format is read whole). A training checkpoint
({'model': state_dict, 'epoch': ...}, Lightning's {'state_dict': ...}) gives its state dict: the
only one it holds, or the one under --key. A .safetensors file is mapped likewise. Tables are the 2-D float tensors
named '<...emb...>.weight' without a '.bias' beside them (or those named with --table); a
'module.' (DistributedDataParallel) or '_orig_mod.' (torch.compile) prefix on every key is dropped. With --id-map NAME=FILE a table is
stored with that id map, and a full-size table (one row per raw id) is first folded onto the
map's rows, weighted by --frequencies NAME=FILE.npy (counts per id). A state dict does not say
how its bags pool: --mode sum|mean|max (and --include-last-offset) is recorded in each file for
MXEmbeddingBag.from_file, which otherwise serves mean; nor its max_norm: --max-norm (with
--norm-type) stores each row longer than it scaled to it, as the model's lookups return it.
Prints bytes before and after and the QSNR per table; writes export.json beside the table files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import typer


# The library parameter an error names -> the option that sets it (the CLI's main adds it to the message).
FLAGS = {"key": "--key", "id_maps": "--id-map", "frequencies": "--frequencies", "tables": "--table", "block_size": "--block-size",
         "scale_mode": "--scale-mode", "out_dir": "--out-dir", "fmt": "--fmt", "mode": "--mode",
         "include_last_offset": "--include-last-offset", "max_norm": "--max-norm", "norm_type": "--norm-type"}


def _pairs(values: list[str], option: str) -> dict[str, Path]:
    from ..errors import ConfigError

    out = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"The {option} option must be NAME=PATH. Got {v!r} instead.")
        if name in out:  # (the last one would win without a word: a slip for another table's name)
            raise ConfigError(f"The {option} option names the table {name!r} twice ({str(out[name])!r} and "
                              f"{path!r}). Give each table one file.")
        out[name] = Path(path)
    return out


def _load_counts(path: Path):
    import numpy as np

    from ..errors import ConfigError

    try:
        counts = np.load(path, allow_pickle=False)
    except OSError as exc:  # missing, or a folder
        raise ConfigError(f"The --frequencies file {str(path)!r} must be a .npy array of counts per id "
                          f"(numpy.save). It cannot be read ({type(exc).__name__}). Check the path.") from None
    except ValueError:  # a file, but no plain .npy array ("Check the path" sent the user to the wrong fix)
        raise ConfigError(f"The --frequencies file {str(path)!r} must be a .npy array of counts per id, and it "
                          f"is not one. Save the counts with np.save('counts.npy', counts).") from None
    if not isinstance(counts, np.ndarray):  # an .npz archive loads as an NpzFile of named arrays
        names = list(counts.files)
        counts.close()
        raise ConfigError(f"The --frequencies file {str(path)!r} must be a .npy array of counts per id "
                          f"(numpy.save). Got an .npz archive of {names} instead. Save the counts alone with "
                          f"np.save('counts.npy', counts).")
    return counts


def command(
    state_dict: Path = typer.Argument(..., help="A torch state-dict file (torch.save of model.state_dict()), a "
                                      "training checkpoint holding one (see --key), or a .safetensors file."),
    fmt: str = typer.Option(..., "--fmt", help="Storage format, e.g. mxfp8_e4m3, mxfp4_e2m1, mxint8, int8_rowwise."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the table files and export.json."),
    id_map: list[str] = typer.Option(None, "--id-map", help="NAME=FILE: an id-map file for table NAME (repeatable)."),
    frequencies: list[str] = typer.Option(None, "--frequencies", help="NAME=FILE.npy: access counts per id of table NAME (repeatable)."),
    table: list[str] = typer.Option(None, "--table", help="Export only these tables (state-dict names, repeatable)."),
    block_size: int = typer.Option(None, "--block-size", help="Block size of MX/BDR formats (default: the format's)."),
    scale_mode: str = typer.Option("floor", "--scale-mode", help="floor (OCP) or mse."),
    mode: str = typer.Option(None, "--mode", help="How the model's bags pool: sum, mean or max. Recorded in each "
                             "file for MXEmbeddingBag.from_file (a state dict does not say; without it, mean)."),
    include_last_offset: bool = typer.Option(False, "--include-last-offset",
                                             help="The bags take offsets with a last entry len(ids) (recorded likewise)."),
    max_norm: float = typer.Option(None, "--max-norm", help="The model's max_norm: rows longer than it are stored "
                                   "scaled to it, as the model's lookups scale them (a state dict does not say)."),
    norm_type: float = typer.Option(None, "--norm-type", help="The p of the norm --max-norm bounds (the model's "
                                    "norm_type; default 2)."),
    key: str = typer.Option(None, "--key", help="The key of the state dict in a training checkpoint, e.g. model or "
                            "state_dict (dotted for a nested one); without it, the only one a checkpoint holds."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    from ..checkpoint import read_checkpoint, state_dict_of
    from ..export import export
    from ..idmap import IdMap
    from . import input_path
    from .progress import progress_bar
    from ..errors import ConfigError

    # (None by default, so that one given alone is told from the default, which export takes as 2)
    if norm_type is not None and max_norm is None:
        raise ConfigError("The --norm-type option sets the norm --max-norm bounds, and there is no --max-norm, so "
                          "it would do nothing. Give the model's --max-norm too, or leave --norm-type out.",
                          param="norm_type")
    # '~' is the home folder ('--out-dir=~/x' and 'NAME=~/x' reach here as is), as in mine and fit-hash
    state_dict, out_dir = input_path(state_dict), out_dir.expanduser()
    id_maps = {name: input_path(path, "id_maps") for name, path in _pairs(id_map, "--id-map").items()}
    freq_files = {name: input_path(path, "frequencies") for name, path in _pairs(frequencies, "--frequencies").items()}
    sd, under = state_dict_of(read_checkpoint(state_dict), key, str(state_dict))
    if under is not None and key is None:
        typer.echo(f"reading the state dict under {under!r} of the checkpoint {str(state_dict)!r}")
    # every byte of the maps (as fit-hash --previous-dir checks): a damaged map would fold rows wrongly
    maps = {name: IdMap.load(path, verify="full") for name, path in id_maps.items()}
    freqs = {name: _load_counts(path) for name, path in freq_files.items()}
    with progress_bar("export", quiet=quiet) as bar, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", UserWarning)
        report = export(sd, fmt=fmt, id_maps=maps, frequencies=freqs, out_dir=out_dir, tables=table or None,
                        block_size=block_size, scale_mode=scale_mode, mode=mode,
                        include_last_offset=True if include_last_offset else None, max_norm=max_norm,
                        norm_type=2.0 if norm_type is None else norm_type, progress=bar)
    for w in warned:  # one line each, as errors are (Python's form adds a source path and line)
        typer.echo(f"warning: {w.message}", err=True)
    typer.echo(f"{'table':<28} {'shape':>16} {'bytes before':>14} {'bytes after':>13} {'ratio':>7} {'QSNR dB':>8}")
    for e in report:
        shape = "x".join(map(str, e["shape"]))
        extra = f"  (vs trained {e['qsnr_vs_trained_db']:.2f} dB over {e['trained_shape'][0]} ids)" if "qsnr_vs_trained_db" in e else ""
        typer.echo(f"{e['name']:<28} {shape:>16} {e['bytes_before']:>14} {e['bytes_after']:>13} "
                   f"{e['compression']:>6.2f}x {e['qsnr_db']:>8.2f}{extra}")
    typer.echo(f"wrote {len(report)} table file{'s' if len(report) != 1 else ''} and export.json to {out_dir}")
    if mode is None:
        typer.echo("note: a state dict does not say how its bags pool, so the files record no mode and "
                   "MXEmbeddingBag.from_file serves them with mode='mean' unless given one. If the model's "
                   "bags sum (or take the max), export with --mode sum (or --mode max).")
