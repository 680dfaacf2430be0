"""The harness's datasets, read with ``learned_hash.logs`` and split with a recorded rule.

- ``frappe``: the libFM files of a Frappe folder (``frappe.*.libfm``), pooled; ten one-hot
  fields (user and item are the big ones); no time, so a seeded random split (70/10/20).
- ``criteo``: Criteo TSV. A folder with ``*train*``, ``*dev*`` and ``*test*`` files keeps that
  split as given, recorded as ``"files (as given)"``: how the files were cut is not known here.
  The shared sample's ``lapis_*`` files are *not* a time cut: they split one stretch of the log at
  random (dev and test rows sit between train rows of its first 999 lines), so its test rows are
  not later than its training rows. A single file is cut in file order (which is time order in
  Criteo's logs), 80/10/10, recorded as ``"time"``. The 13 integer fields become dense features
  ``log(1 + max(x, 0))`` (missing: 0).
- ``talkingdata``: the CSV (ip, app, device, os, channel, click_time, is_attributed), sorted by
  click_time and cut by time 80/10/10.
- ``synthetic``: :func:`analysis.ctr.synthetic.load_synthetic`.

``n_rows`` caps the rows read from a real log: its first rows in file order (Frappe: of its
files pooled in name order; a Criteo folder: of each file; a Criteo file: in time order). The
TalkingData sample's rows are in random order, so its first rows are a random sample, sorted by
time after.

Malformed lines (see ``learned_hash.logs``) are skipped and counted by default
(``on_bad_line="skip"``): the count per file is in ``Splits.info["bad_lines"]``, a warning says it
and the reports print it. ``on_bad_line="error"`` stops at the first one and names it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from embcompress.errors import ConfigError, param_error
from embcompress.idhash import MISSING_ID

from .data import CTRData, Splits, split_by_time, split_random


def _files(path: Path, pattern: str) -> list[Path]:
    files = sorted(path.glob(pattern)) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(f"No data files matching {pattern!r} at {str(path)!r}. Point 'path' at the data file or folder.")
    return files


ON_BAD_LINE = ("skip", "error")
# What each loader reads, for the error of a log in another format.
LOG_FORMATS = {
    "frappe": "libFM lines ('label index:1 ...', label 1 or -1, ten one-hot fields)",
    "criteo": "Criteo TSV lines (label, I1..I13, C1..C26, tab-separated, no header)",
    "talkingdata": "a CSV whose header names ip, app, device, os, channel, click_time and is_attributed",
}


def _wrong_format(file: Path, dataset: str, why: str) -> ConfigError:
    others = "; ".join(f"{k}: {v}" for k, v in LOG_FORMATS.items() if k != dataset)
    return ConfigError(
        f"The log {str(file)!r} is not a {dataset} log: {why}. The {dataset} loader reads {LOG_FORMATS[dataset]}. "
        f"Point 'path' (--data) at a {dataset} log, or read the file as the format it holds ({others}): set the "
        f"dataset's 'name' in a sweep config; for embcompress demo, which goes by the extension, name the file "
        f"*.libfm (frappe) or *.csv (talkingdata); any other is read as criteo."
    )


def _read(file: Path, on_bad_line: str, bad_lines: dict, dataset: str, **kwargs) -> dict:
    """``file``'s columns; the lines skipped as malformed are counted into ``bad_lines``."""
    from learned_hash.logs import iter_batches

    if on_bad_line not in ON_BAD_LINE:
        raise param_error("on_bad_line", "the dataset loaders", f"be one of {ON_BAD_LINE}", on_bad_line)
    reader = iter_batches(str(file), on_bad_line=on_bad_line, **kwargs)
    parts = list(reader)
    bad_lines[file.name] = int(reader.bad_lines)
    if not parts and reader.bad_lines:  # every line malformed: most likely another format
        raise _wrong_format(file, dataset, f"none of its {reader.bad_lines} lines parse")
    if not parts:
        raise ConfigError(f"The log {str(file)!r} has no rows. Point 'path' at a log with data.")
    if reader.bad_lines:
        warnings.warn(f"skipped {reader.bad_lines} malformed line{'s' if reader.bad_lines > 1 else ''} of {str(file)!r} "
                      f"(counted in the splits' info['bad_lines']; on_bad_line='error' names the first)", stacklevel=3)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _cap(cols: dict, n_rows: int | None) -> dict:
    return cols if n_rows is None else {k: v[:n_rows] for k, v in cols.items()}


def _label01(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x) > 0).astype(np.float32)


def load_frappe(path, *, split_seed: int = 0, n_rows: int | None = None, fractions=(0.7, 0.1, 0.2),
                on_bad_line: str = "skip") -> Splits:
    from learned_hash.logs import FRAPPE_FIELDS

    files = _files(Path(path), "*.libfm")
    bad: dict[str, int] = {}
    parts = [_read(f, on_bad_line, bad, "frappe", features=FRAPPE_FIELDS, label="label", format="libfm", fields=FRAPPE_FIELDS)
             for f in files]
    cols = _cap({k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, n_rows)
    data = CTRData(FRAPPE_FIELDS, np.stack([cols[f] for f in FRAPPE_FIELDS], axis=1), _label01(cols["label"]))
    info = {"source": "frappe", "files": [f.name for f in files], "bad_lines": bad}
    return split_random(data, fractions, seed=split_seed, name="frappe", info=info)


def _criteo_data(file: Path, n_rows: int | None, on_bad_line: str, bad: dict) -> CTRData:
    from learned_hash.logs import CRITEO_CAT, CRITEO_INT

    cols = _cap(_read(file, on_bad_line, bad, "criteo", features=(*CRITEO_CAT, *CRITEO_INT), label="label", format="criteo",
                      kinds={c: "int" for c in CRITEO_INT}), n_rows)
    ints = np.stack([cols[c] for c in CRITEO_INT], axis=1)
    ints = np.where(ints == MISSING_ID, 0, np.maximum(ints, 0)).astype(np.float64)
    dense = np.log1p(ints).astype(np.float32)
    return CTRData(CRITEO_CAT, np.stack([cols[c] for c in CRITEO_CAT], axis=1), _label01(cols["label"]), dense, CRITEO_INT)


def load_criteo(path, *, split_seed: int = 0, n_rows: int | None = None, fractions=(0.8, 0.1, 0.1),
                on_bad_line: str = "skip") -> Splits:
    path = Path(path)
    bad: dict[str, int] = {}
    if path.is_dir():
        parts, names = {}, []
        for name, key in (("train", "train"), ("validation", "dev"), ("test", "test")):
            found = sorted(p for p in path.glob(f"*{key}*") if p.is_file())
            if len(found) != 1:
                raise ConfigError(
                    f"The Criteo folder {str(path)!r} must hold one file with {key!r} in its name "
                    f"(train/dev/test, used as given). Got {[p.name for p in found]} instead; or point 'path' at one "
                    f"file (cut in file order, which is time order in Criteo's logs)."
                )
            parts[name] = _criteo_data(found[0], n_rows, on_bad_line, bad)
            names.append(found[0].name)
        info = {"source": "criteo", "split": "files (as given)", "files": names, "bad_lines": bad}
        return Splits("criteo", parts["train"], parts["validation"], parts["test"], info)
    data = _criteo_data(_files(path, "*")[0], n_rows, on_bad_line, bad)
    return split_by_time(data, None, fractions, name="criteo", info={"source": "criteo", "files": [path.name], "bad_lines": bad})


TALKINGDATA_FEATURES = ("ip", "app", "device", "os", "channel")


def load_talkingdata(path, *, split_seed: int = 0, n_rows: int | None = None, fractions=(0.8, 0.1, 0.1),
                     on_bad_line: str = "skip") -> Splits:
    files = _files(Path(path), "*.csv")
    if len(files) > 1:  # one log, as a Criteo folder's parts are: Kaggle's folder holds sample_submission.csv too
        raise ConfigError(
            f"The TalkingData folder {str(path)!r} holds {len(files)} CSV files ({', '.join(f.name for f in files)}); "
            f"which is the log is not guessed. Point 'path' (--data on the command line) at that file."
        )
    file = files[0]
    names = _csv_header(file)
    need = (*TALKINGDATA_FEATURES, "click_time", "is_attributed")
    missing = [c for c in need if names is not None and c not in names]
    if missing:  # the reader would say "Pass names from that list", which a sweep cannot do
        raise _wrong_format(file, "talkingdata", f"its first line, the header, has no column {missing[0]!r}"
                            + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else ""))
    bad: dict[str, int] = {}
    cols = _cap(_read(file, on_bad_line, bad, "talkingdata", features=TALKINGDATA_FEATURES, label="is_attributed", time_key="click_time",
                      format="csv"), n_rows)
    data = CTRData(TALKINGDATA_FEATURES, np.stack([cols[f] for f in TALKINGDATA_FEATURES], axis=1),
                   _label01(cols["is_attributed"]))
    return split_by_time(data, cols["click_time"], fractions, name="talkingdata",
                         info={"source": "talkingdata", "files": [file.name], "time_key": "click_time", "bad_lines": bad})


def _csv_header(file: Path) -> list[str] | None:
    """The column names of a plain-text CSV's first line (leading dots of the first dropped, as
    the reader drops them), or None when it cannot be read as text (the reader then decides)."""
    try:
        with open(file, encoding="utf-8-sig") as fh:  # a BOM (Excel, pandas' utf-8-sig) is skipped, as the reader skips it
            line = fh.readline()
    except (OSError, UnicodeDecodeError):
        return None
    names = [c.strip().strip('"') for c in line.rstrip("\r\n").split(",")]
    names[0] = names[0].lstrip(".")
    return names


def load_dataset(config) -> Splits:
    """The splits a :class:`analysis.ctr.sweep.DatasetConfig` names."""
    if config.name == "synthetic":
        from .synthetic import load_synthetic

        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in config.options.items()}
        return load_synthetic(config.n_rows or 100_000, seed=config.split_seed, **opts)
    path = Path(config.path).expanduser()
    if not path.exists():
        # the sweeps in examples/ give paths from the repository's root, where the README runs them
        where = "" if path.is_absolute() else f" (a relative path is read from the current folder, {Path.cwd()})"
        raise ConfigError(
            f"The data path {str(path)!r} of dataset {config.name!r} does not exist{where}. Point the config's "
            f"dataset 'path' at the data file or folder, or give it with --data (embcompress evaluate)."
        )
    loader = {"frappe": load_frappe, "criteo": load_criteo, "talkingdata": load_talkingdata}[config.name]
    return loader(path, split_seed=config.split_seed, n_rows=config.n_rows, on_bad_line=config.on_bad_line)
