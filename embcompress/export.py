"""A trained torch model's embedding tables -> compressed table files.

``export(model_or_state_dict, fmt=..., out_dir=...)`` writes one table file per embedding table
(``<out_dir>/<table name>.embc``, the name being the module path, e.g. ``sparse.user``) and a
report ``<out_dir>/export.json``; it returns the report, one entry per table with the bytes
before (the trained table) and after (the file: rows, id map, frequencies, header) and the QSNR.

Which tensors are tables: in an ``nn.Module``, the weights of every ``nn.Embedding`` and
``nn.EmbeddingBag`` (a bare embedding module is named ``weight``, as its state dict names it);
in a state dict (no module types to go by), every 2-D floating tensor whose key ends in
``.weight``, has a path component containing "emb" (``emb.weight``, ``embeddings.0.weight``,
``sparse.embedding_bags.user.weight``) and no ``.bias`` beside it (that is a Linear layer). Pass
``tables=[...]`` to choose them by name instead: modules with a weight, parameters or buffers
(a table used with ``F.embedding``; an embedding module's weight named so, ``user.weight``, keeps
its module's pooling and options below), or state-dict keys (with or without ``.weight``); a table
named by its weight, ``user.weight``, is named without it, ``user`` (its file ``user.embc``, as
found without ``tables=``, which ``swap_embedding_bags`` looks for), and ``id_maps`` and
``frequencies`` take either name. Tables are
named as in the unwrapped model: a ``DataParallel`` / ``DistributedDataParallel`` or
``torch.compile`` wrapper is looked through, and a state dict whose keys all start with
``module.`` or ``_orig_mod.`` loses that prefix. Names that differ only in letter case are
refused (one file on a case-insensitive file system). The file of an
``nn.EmbeddingBag`` records its ``mode``, ``include_last_offset`` and ``padding_idx`` (inputs),
which ``MXEmbeddingBag.from_file`` takes by default: served bags leave the padding id out, as
torch does (a bag trained on its id map's rows records ``padding_row`` instead, with a warning:
the served module is given raw ids). A module with ``max_norm`` has its rows stored as its
lookups return them: each row longer than ``max_norm`` scaled to it by torch's own
``embedding_renorm_`` (on a copy, before folding and quantizing), which is what torch does to the
rows a lookup reads; ``max_norm`` and ``norm_type`` are recorded (an infinite one as the string
``"inf"``: JSON has no infinity).

With an id map for a table (``id_maps={name: IdMap}``):

- a trained table with one row per map row (``n_rows``) is quantized as it is;
- a trained *full-size* table, one row per raw id (ids ``0 .. N-1``), is folded first: each
  row of the compressed table becomes the access-frequency weighted mean of the rows of the ids
  the map sends to it (``frequencies={name: counts per id}``; equal weights without), computed
  in float64; a row with a single member (a hot id) is that member's row exactly; a row no id
  reaches stays zero. An ``nn.EmbeddingBag``'s ``padding_idx`` is no member (its row is zeros,
  never trained, and served bags leave the id out). An ``nn.Embedding``'s is served as any id,
  but its row is never trained either: it is no member of a row it shares with other ids (its
  lookups then return their mean, with a warning to give it a row of its own), and a row of its
  own keeps it exactly. The file then stores per-row frequencies (the sum over the ids each row
  serves), and the report adds the QSNR of the served rows against the trained table over all
  ids. A map holding an id outside ``0 .. N-1`` was built for another table and is refused.

QSNR is ``10 log10(sum x^2 / sum (x - x_hat)^2)`` in dB over the table that was quantized
(``inf`` when exact, e.g. ``fp32``; ``export.json`` stays strict JSON and holds ``null`` there).

torch is imported when a function runs, not with this module: ``embcompress`` binds ``export``
at import (a submodule named like its function would otherwise shadow it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .container import _fsync_dir, gone, owner, write_file_atomic
from .errors import ConfigError, param_error

__all__ = ["export", "find_tables", "fold_rows", "qsnr_db"]

_OWNER = "export"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def find_tables(model_or_state_dict, tables: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The embedding tables of a model or state dict: ``name -> float32 array (rows, dim)``."""
    return {name: _as_array(name, t) for name, t in _find(model_or_state_dict, tables)[0].items()}


# Prefixes that wrappers put before every name: DistributedDataParallel / DataParallel
# ("module.") and torch.compile ("_orig_mod."). Tables are named as in the unwrapped model.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _unwrap(model):
    from torch import nn

    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def _strip_wrapper_prefix(sd: Mapping) -> Mapping:
    """The state dict without a wrapper prefix that every key has (as torch's
    consume_prefix_in_state_dict_if_present does); a prefix only some keys have is kept."""
    while sd and all(isinstance(k, str) for k in sd):
        prefix = next((p for p in _WRAPPER_PREFIXES if all(k.startswith(p) for k in sd)), None)
        if prefix is None:
            break
        sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _find(model_or_state_dict, tables: Sequence[str] | None):
    """``({name: tensor or array as given}, {name: its nn.Embedding / nn.EmbeddingBag}, {name in tables=: name})``
    of the tables to export (the last for names in ``tables=`` that differ from the table's, 'x.weight' -> 'x')."""
    import torch
    from torch import nn

    if isinstance(tables, (str, bytes)):  # (iterated, a name is its letters)
        raise param_error("tables", _OWNER, f"be a list of table names, e.g. [{tables!r}]", tables)
    found: dict[str, object] = {}
    modules: dict[str, object] = {}
    given: dict[str, str] = {}  # a name in tables= -> the table's name, where they differ
    if isinstance(model_or_state_dict, nn.Module):
        model = _unwrap(model_or_state_dict)
        mods = dict(model.named_modules())
        if tables is None:
            for n, m in mods.items():
                if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
                    # a bare embedding module is the model itself (name ""): its state dict calls it "weight"
                    name = n or "weight"
                    found[name] = m.weight
                    modules[name] = m
        else:
            # a module with a weight, or a parameter or buffer itself (a table used with F.embedding)
            tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
            for n in tables:
                t = getattr(mods[n], "weight", None) if n in mods else tensors.get(n)
                if not isinstance(t, torch.Tensor):
                    raise param_error("tables", _OWNER, "name modules of the model that have a weight, or its "
                                      "parameters (e.g. a table used with F.embedding)", n)
                found[n] = t
                # the module's weight named as a parameter ("user.weight", as its state dict names
                # it) is that module's table still: its pooling goes into the file all the same
                # (and "weight" is a bare embedding module's, the model itself)
                base = n[: -len(".weight")] if n.endswith(".weight") else "" if n == "weight" else None
                owner = mods[n] if n in mods else mods.get(base)
                if isinstance(owner, (nn.Embedding, nn.EmbeddingBag)) and owner.weight is t:
                    modules[n] = owner
                if base and n not in mods and getattr(mods.get(base), "weight", None) is t:
                    given[n] = base  # named by the module, as found without tables= (and its file)
    elif isinstance(model_or_state_dict, Mapping):
        sd = _strip_wrapper_prefix(model_or_state_dict)
        if tables is None:
            skipped = []
            for key, t in sd.items():
                if not isinstance(key, str) or not key.endswith(".weight"):
                    continue
                name = key[: -len(".weight")]
                # a Linear layer's weight is 2-D float too, but has a bias beside it; a table never does
                if f"{name}.bias" in sd or not _is_table(t):
                    continue
                if any("emb" in part.lower() for part in name.split(".")):
                    found[name] = t
                else:
                    skipped.append(name)
            if found and skipped:  # (with none found, the error below names tables=)
                warnings.warn(
                    f"export took the state dict's tables named '<...emb...>.weight' ({', '.join(found)}) and "
                    f"left out these 2-D float weights without a bias, which may be tables or bias-free linear "
                    f"layers: {', '.join(skipped)}. If any of them is an embedding table, name every table with "
                    f"tables=[...] (--table).", UserWarning, stacklevel=3)
        else:
            for n in tables:
                # (a name with the wrapper prefix, as the keys have it, is found too)
                d, k = next(((d, k) for d in (sd, model_or_state_dict) for k in (f"{n}.weight", n) if k in d),
                            (None, None))
                t = None if d is None else d[k]
                if t is None or not _is_table(t):
                    raise param_error("tables", _OWNER, "name 2-D float tensors of the state dict (with or without '.weight')", n)
                found[n] = t
                if k == n and n.endswith(".weight") and n != ".weight":
                    given[n] = n[: -len(".weight")]  # the key 'x.weight' is the table 'x', as found without tables=
    else:
        raise param_error("model_or_state_dict", _OWNER, "be an nn.Module or a state dict (a mapping of names to tensors)",
                          type(model_or_state_dict).__name__)
    if tables is not None:  # (two names of one tensor, "user" and "user.weight", would write it twice)
        named: dict[int, str] = {}
        for n, t in found.items():
            if id(t) in named:
                raise param_error("tables", _OWNER, f"name each table once: {named[id(t)]!r} and {n!r} are the "
                                  f"same tensor (keep one of the two names)", list(tables))
            named[id(t)] = n
        # A table named by its weight ('x.weight', as a state dict names it) is named, and its file
        # written, as without tables=: 'x', its module's path (swap_embedding_bags looks for x.embc).
        found = {given.get(n, n): t for n, t in found.items()}
        modules = {given.get(n, n): m for n, m in modules.items()}
    return found, modules, given


def _maybe_tables(model_or_state_dict) -> list[str]:
    """Names ``tables=`` takes of the 2-D float weights that may be tables (not a Linear layer's,
    nor a state-dict weight with a bias beside it), for the error that found no table."""
    from torch import nn

    if isinstance(model_or_state_dict, nn.Module):
        model = _unwrap(model_or_state_dict)
        mods = dict(model.named_modules())
        named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        return [n for n, t in named.items()
                if _is_table(t) and not isinstance(mods.get(n.rpartition(".")[0]), nn.Linear)]
    sd = _strip_wrapper_prefix(model_or_state_dict)
    return [k[: -len(".weight")] for k, t in sd.items() if isinstance(k, str) and k.endswith(".weight")
            and f"{k[: -len('.weight')]}.bias" not in sd and _is_table(t)]


def _check_table(name: str, t):
    """``t`` (a tensor or array as given), checked to be a 2-D table of trained weights."""
    import torch

    if isinstance(t, torch.Tensor) and t.is_meta:
        # (not the 'tables' parameter: the command would name --table, which loads no weights)
        raise param_error("model_or_state_dict", _OWNER, "hold trained weights, not tensors on the meta device (load "
                          "the weights first, e.g. model.load_state_dict(state, assign=True), and save a state dict "
                          "of real tensors)", f"the table {name!r} on the meta device")
    if isinstance(t, torch.Tensor) and t.layout != torch.strided:  # (a sparse table: numpy() refuses it)
        t = t.to_dense()
    if not isinstance(t, torch.Tensor):
        t = np.asarray(t)
    if t.ndim != 2 or t.shape[1] < 1:
        raise param_error("tables", _OWNER, "be 2-D (rows, dim) tensors", f"{name} of shape {tuple(t.shape)}")
    return t


def _as_array(name: str, t) -> np.ndarray:
    t = _check_table(name, t)
    n, dim = t.shape
    return np.concatenate([x for _, x in _pieces(t, n, dim)]) if n else np.zeros((0, dim), np.float32)


def _is_table(t) -> bool:
    import torch

    if isinstance(t, torch.Tensor):
        return t.dim() == 2 and t.is_floating_point()
    return isinstance(t, np.ndarray) and t.ndim == 2 and t.dtype.kind == "f"


def _bytes_of(t) -> int:
    """Bytes of the trained table in its own dtype."""
    import torch

    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else t.nbytes


# Export reads a table in pieces of this many float32 bytes, so its memory beyond the model is a
# few pieces whatever the table's size (a state dict loaded with torch.load(mmap=True), or a
# np.memmap, need not fit in memory at all).
_PIECE_BYTES = 8 << 20


def _pieces(t, n: int, dim: int):
    """``(start, float32 rows)`` of table ``t`` (a tensor or array as given), one piece at a time."""
    import torch

    step = max(1, _PIECE_BYTES // (4 * dim))
    for i in range(0, n, step):
        rows = t[i : i + step]
        rows = rows.detach().to("cpu", torch.float32).numpy() if isinstance(rows, torch.Tensor) else rows
        yield i, np.ascontiguousarray(rows, dtype=np.float32)


class _Renormed:
    """A module's table under ``max_norm`` as torch's lookups see it: each piece read is a copy in
    which every row longer than ``max_norm`` (its ``norm_type`` norm) is scaled to it, by torch's
    own ``embedding_renorm_``, which a lookup applies to the rows it reads. A scaled row is shorter
    than ``max_norm``, so torch would leave it as it is: stored so, the rows serve what the trained
    module's lookups return, whatever ids are looked up (the module's own weight is not touched)."""

    def __init__(self, weight, max_norm: float, norm_type: float):
        self.weight, self.max_norm, self.norm_type = weight, max_norm, norm_type
        self.shape, self.dtype = weight.shape, weight.dtype

    def __getitem__(self, rows: slice):
        import torch

        piece = self.weight[rows]  # (a copy in its own dtype, as torch renorms it; a state dict's may be numpy)
        piece = piece.detach().to("cpu", copy=True) if isinstance(piece, torch.Tensor) else torch.tensor(piece)
        with torch.no_grad():
            torch.embedding_renorm_(piece, torch.arange(len(piece)), self.max_norm, self.norm_type)
        return piece


def fold_rows(weight, rows: np.ndarray, n_rows: int, weights: np.ndarray | None = None):
    """Fold a full-size table into ``n_rows`` rows: row r = weighted mean of ``weight[i]`` over ids
    ``i`` with ``rows[i] == r`` (summed in float64 in id order, then float32); rows whose members
    all have weight 0 take their plain mean; single-member rows copied exactly; rows no id reaches
    stay zero. ``weight`` (a tensor or array, (n, dim)) is read in pieces.

    Returns ``(table float32 (n_rows, dim), per-row weight sums float64, members per row int64)``.
    """
    n, dim = weight.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    counts = np.bincount(rows, minlength=n_rows)
    wsum = np.bincount(rows, weights=w, minlength=n_rows)
    w = np.where(wsum[rows] > 0, w, 1.0)  # (so a weightless row's members count alike)
    den = np.where(wsum > 0, wsum, counts)
    single = counts == 1
    out = np.zeros((n_rows, dim), dtype=np.float32)
    acc = np.zeros((n_rows, dim), dtype=np.float64)
    for i, x in _pieces(weight, n, dim):
        r = rows[i : i + len(x)]
        np.add.at(acc, r, x.astype(np.float64) * w[i : i + len(x), None])  # in id order, as a loop would
        one = single[r]
        out[r[one]] = x[one]
    many = np.flatnonzero(counts > 1)
    out[many] = (acc[many] / den[many, None]).astype(np.float32)
    return out, wsum, counts


class _Qsnr:
    """Signal and noise power summed over pieces of a table and its decoded copy, in float64 (the
    difference too: in float32 it would round the error it measures)."""

    def __init__(self):
        self.signal = self.noise = 0.0
        self._buf = np.empty(0)  # (reused: a new float64 piece each time costs its page faults)

    def add(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        x, x_hat = np.asarray(x).ravel(), np.asarray(x_hat).ravel()
        if self._buf.size < x.size:
            self._buf = np.empty(x.size)
        v = self._buf[: x.size]
        v[:] = x
        # (einsum: numpy's own loop; np.dot's threaded BLAS waits on a busy second core, 3-9x slower)
        self.signal += float(np.einsum("i,i->", v, v))
        np.subtract(v, x_hat, out=v)
        self.noise += float(np.einsum("i,i->", v, v))

    @property
    def db(self) -> float:
        if self.noise == 0.0:
            return float("inf")
        if self.signal == 0.0:
            return float("-inf")
        return 10.0 * np.log10(self.signal / self.noise)


def _decode(q) -> np.ndarray:
    """The rows of ``q`` as lookups serve them: the serving kernel, one row a bag (a sum of one row
    is that row, but for a zero's sign). Compiled, it decodes a piece 8 to 40 times faster than
    ``dequantize``'s NumPy code (about 1 ms a 8 MiB piece; one thread, since a second one waits on
    whatever else holds the other core for longer than that)."""
    from .kernels.lookup import pooled_lookup

    rows = np.arange(len(q), dtype=np.int64)
    return pooled_lookup(q, rows, rows, mode="sum", n_threads=1)


def qsnr_db(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Quantization signal-to-noise ratio in dB (inf when exact)."""
    q = _Qsnr()
    q.add(x, x_hat)
    return q.db


def export(
    model_or_state_dict,
    *,
    fmt: str,
    id_maps: Mapping[str, object] | None = None,
    frequencies: Mapping[str, np.ndarray] | None = None,
    out_dir: str | os.PathLike,
    tables: Sequence[str] | None = None,
    block_size: int | None = None,
    scale_mode: str = "floor",
    mode: str | None = None,
    include_last_offset: bool | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Write every embedding table of ``model_or_state_dict`` to ``out_dir`` in format ``fmt``.

    ``id_maps`` and ``frequencies`` are keyed by table name (see the module docstring for how
    they fold a full-size table). Returns one report entry per table: ``name``, ``path``,
    ``fmt``, ``trained_shape``, ``shape``, ``bytes_before``, ``bytes_after``, ``compression``,
    ``qsnr_db`` and, for a folded table, ``qsnr_vs_trained_db``; the same list is written to
    ``out_dir/export.json``. ``progress(done_tables, total_tables)`` is called after each table is
    written; the files move into ``out_dir``, ``export.json`` last, once every table is (a table the
    format cannot hold is refused with ``out_dir`` as it was, and so is a file's place in ``out_dir``
    that is a folder, a pipe or a device, before any work).

    ``mode`` ("sum", "mean", "max") and ``include_last_offset``: how the bags pool, recorded in
    the files of tables whose module does not say (a state dict's, a parameter's), for
    :meth:`MXEmbeddingBag.from_file <embcompress.nn.MXEmbeddingBag.from_file>`, which otherwise
    serves them as ``nn.EmbeddingBag``'s defaults ("mean", False). An ``nn.EmbeddingBag``'s own
    pooling is recorded as it is; told otherwise, export refuses.

    ``max_norm`` (with ``norm_type``, 2 by default): the trained model's lookups scaled each row
    longer than ``max_norm`` to it, as ``nn.EmbeddingBag(max_norm=...)`` does; the rows are stored
    so, for tables whose module does not say (a state dict's, a parameter's). An ``nn.Embedding``
    or ``nn.EmbeddingBag``'s own ``max_norm`` is applied as it is; told otherwise, export refuses.
    """
    import torch

    from .formats import get_format, quantize
    from .store import journal
    from .idmap import IdMap
    try:
        get_format(fmt)
    except ConfigError as exc:  # (the registry's error names no parameter: the command names --fmt by it)
        exc.param = "fmt"
        raise
    if out_dir is None:
        raise param_error("out_dir", _OWNER, "be a directory path", None)
    if mode is not None and mode not in ("sum", "mean", "max"):
        raise param_error("mode", _OWNER, "be 'sum', 'mean' or 'max' (how the bags pool) or None", mode)
    for value, what, must, optional in ((max_norm, "max_norm", "be a number above 0 or None", True),
                                        (norm_type, "norm_type", "be a number above 0 (2: the Euclidean norm)", False)):
        if (value is not None or not optional) and not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise param_error(what, _OWNER, must, value)
    if include_last_offset is not None and not isinstance(include_last_offset, bool):
        raise param_error("include_last_offset", _OWNER, "be a bool or None", include_last_offset)
    raw, embs, given = _find(model_or_state_dict, tables)
    # How each bag pools, recorded in its file so MXEmbeddingBag.from_file serves it alike.
    pooling = {name: {"mode": m.mode, "include_last_offset": bool(m.include_last_offset)}
               for name, m in embs.items() if hasattr(m, "mode")}  # the nn.EmbeddingBag ones
    told = {k: v for k, v in (("mode", mode), ("include_last_offset", include_last_offset)) if v is not None}
    for name in raw:
        own = pooling.get(name)
        if own is None:
            if told:
                pooling[name] = dict(told)  # a state dict's table (or a parameter): as the caller says
            continue
        for key, value in told.items():
            if own[key] != value:
                raise param_error(key, _OWNER, f"match how the nn.EmbeddingBag of table {name!r} pools "
                                  f"({key}={own[key]!r}), which is recorded as it is: leave {key} out",
                                  value)
    # Lookup options of the trained modules, recorded in the file and the report: a bag's
    # padding_idx, which MXEmbeddingBag.from_file leaves out of the bags as torch does
    # (nn.Embedding's only stops the gradient: its lookups return that row as any other), and
    # max_norm with its norm_type, which the stored rows already obey (read through _Renormed).
    unserved = {}
    for name in raw:
        m = embs.get(name)
        opts = {"padding_idx": int(m.padding_idx)} if m is not None and name in pooling and m.padding_idx is not None else {}
        own = (m.max_norm, m.norm_type) if m is not None else (max_norm, norm_type)
        if m is not None and max_norm is not None and own != (max_norm, norm_type):
            raise param_error("max_norm", _OWNER, f"match the max_norm of the module of table {name!r} "
                              f"(max_norm={own[0]!r}, norm_type={own[1]!r}), which is applied as it is: leave "
                              f"max_norm out", max_norm)
        if own[0] is not None:  # (JSON has no infinity, a norm_type torch takes: recorded as "inf")
            opts.update({k: float(v) if np.isfinite(v) else str(float(v)) for k, v in zip(("max_norm", "norm_type"), own)})
        if opts:
            unserved[name] = opts
    # an nn.Embedding's padding id: served as any id, but its row is never trained (zeros), so a
    # shared folded row's mean leaves it out (see _export_table)
    untrained = {name: int(m.padding_idx) for name, m in embs.items()
                 if m.padding_idx is not None and "padding_idx" not in unserved.get(name, {})}
    found = {name: _check_table(name, t) for name, t in raw.items()}
    for name, opts in unserved.items():
        if "max_norm" in opts:
            found[name] = _Renormed(found[name], float(opts["max_norm"]), float(opts["norm_type"]))
    if not found:
        maybe = _maybe_tables(model_or_state_dict)
        shown = ", ".join(maybe[:10]) + (f", ... ({len(maybe)} weights)" if len(maybe) > 10 else "")
        raise ConfigError(
            "export found no embedding tables: the model has no nn.Embedding / nn.EmbeddingBag, or no "
            "state-dict key '<...emb...>.weight' holds a 2-D float tensor. Name them with tables=[...]"
            + (f"; 2-D float weights without a bias that may be tables: {shown}." if maybe else "."),
            param="tables")
    id_maps = dict(id_maps or {})
    frequencies = dict(frequencies or {})
    for kind, keyed in (("id_maps", id_maps), ("frequencies", frequencies)):
        for alias, name in given.items():  # (keyed by the name given in tables=, 'x.weight': the table 'x')
            if alias in keyed:
                if name in keyed:
                    raise param_error(kind, _OWNER, f"give the table {name!r} one entry ({alias!r} names it too)",
                                      [name, alias])
                keyed[name] = keyed.pop(alias)
        unknown = sorted(set(keyed) - set(found))
        if unknown:
            raise param_error(kind, _OWNER, f"be keyed by table names {sorted(found)}", unknown)
    for name, m in id_maps.items():
        if not isinstance(m, IdMap):
            raise param_error("id_maps", _OWNER, "map table names to embcompress.IdMap objects (open an id-map file "
                              "with embcompress.IdMap.load(path))", f"{name}: {type(m).__name__}")
    by_file: dict[str, str] = {}
    for name in found:
        if not _NAME.match(name):
            raise param_error("tables", _OWNER, "have names usable as file names (letters, digits, _ . -)", name)
        # on a case-insensitive file system (macOS, Windows) the second file would replace the first
        other = by_file.setdefault(name.casefold(), name)
        if other != name:
            raise param_error("tables", _OWNER, "have names that differ in more than letter case (they would be one "
                              "file on a case-insensitive file system): rename one module or choose with tables=[...]",
                              [other, name])
    # Where the files go must take them (a folder there cannot be replaced; a pipe or device should
    # not be), checked before any work, and again before any file moves: refused, out_dir is as it was.
    out = Path(out_dir)
    places = [out / f"{name}.embc" for name in found] + [out / "export.json"]
    _check_replaceable(places)
    # Check every table before writing any file, so bad input leaves out_dir as it was.
    for name, weight in found.items():
        n = weight.shape[0]
        freq = frequencies.get(name)
        if freq is not None:
            if isinstance(freq, torch.Tensor):  # (np.asarray refuses one that requires grad)
                if freq.is_meta:
                    raise param_error("frequencies", _OWNER, f"give {name!r} counts, not a tensor on the meta device",
                                      f"a tensor of shape {tuple(freq.shape)} on the meta device")
                freq = freq.detach().cpu()
            freq = frequencies[name] = np.asarray(freq)
            got = None
            if freq.shape != (n,) or freq.dtype.kind not in "iuf":
                got = f"{freq.dtype} array of shape {freq.shape}"
            elif freq.size and not (np.all(np.isfinite(freq)) and freq.min() >= 0):
                i = int(np.flatnonzero(~(np.isfinite(freq) & (freq >= 0)))[0])
                got = f"{freq[i].item()} at position {i}"
            if got is not None:
                raise param_error("frequencies", _OWNER, f"give {name!r} one non-negative count per trained row ({n}), all finite", got)
        # the format's options, as quantize checks them for this table's width (one zero row)
        quantize(np.zeros((1, weight.shape[1]), np.float32), fmt, block_size=block_size, scale_mode=scale_mode)
        idm = id_maps.get(name)
        if idm is not None and n != idm.n_rows:
            # a full-size table has rows for ids 0 .. n-1 only; other ids mean the map is another table's
            ids = idm.ids
            outside = ids[(ids < 0) | (ids >= n)]
            if outside.size:
                raise param_error(
                    "id_maps", _OWNER,
                    f"fit the table {name!r} of {n} trained rows: either a map onto {n} rows (the table was "
                    f"trained on the map's rows) or, for a full-size table with one trained row per id, a map "
                    f"holding only ids 0 .. {n - 1}. Pass the map this table was trained with",
                    f"a map onto {idm.n_rows} rows holding id {int(outside[0])}")
    for name, opts in unserved.items():
        idm = id_maps.get(name)
        if "padding_idx" in opts and idm is not None and idm.n_rows == found[name].shape[0]:
            # Trained through the map: the bag left out a row, which the map gives raw ids of its own;
            # the served module leaves out a raw id (with a folded full-size table, the padding id is one).
            opts["padding_row"] = opts.pop("padding_idx")
            warnings.warn(
                f"The table {name!r} was trained on rows of its id map with padding_idx={opts['padding_row']}: "
                f"nn.EmbeddingBag left that row out of its bags, but a module served from the file takes raw ids "
                f"and pools every one. Serve it with MXEmbeddingBag.from_file(path, padding_idx=<the raw id that "
                f"pads the bags>). The report and the file's inputs record padding_row.", UserWarning, stacklevel=2)
    # Each table is compressed, measured and written a piece at a time into a hidden folder in
    # out_dir, and the files move into place once every table is written: a table the format
    # cannot hold (beyond fp16's range, say) is refused with out_dir as it was, not after the
    # tables before it were written beside an older export.json, and no table is held whole.
    made = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_stages(out)
    stage = Path(tempfile.mkdtemp(prefix=f"{_STAGE}{owner()}-", dir=out))
    report = []
    try:
        for done, (name, weight) in enumerate(found.items(), 1):
            report.append(_export_table(name, weight, stage, fmt, block_size, scale_mode, id_maps.get(name),
                                        frequencies.get(name), unserved.get(name, {}), pooling.get(name, {}),
                                        _bytes_of(raw[name]), untrained.get(name)))
            if progress is not None:
                progress(done, len(found))
        staged = [Path(entry["path"]) for entry in report]
        for entry in report:
            entry["path"] = str(out / Path(entry["path"]).name)
        # export.json is staged with the tables and moves last, its place checked with theirs: a
        # refused export leaves the old report and tables, and a new export.json describes tables
        # already in place. (Renames of several files are no one step: a crash, or a place changed
        # in the moment between check and move, can still leave some tables new beside the old report.)
        # Strict JSON has no inf/NaN (an exact table's QSNR is +inf): those are written as null.
        written = [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in e.items()} for e in report]
        write_file_atomic(stage / "export.json",
                          json.dumps(written, indent=2, default=_json_num, allow_nan=False) + "\n")
        _check_replaceable(places)  # (again: the work above may have taken long)
        for src in [*staged, stage / "export.json"]:
            path = out / src.name
            try:
                os.replace(src, path)
            except OSError as exc:  # (it named the hidden staged file first)
                raise type(exc)(exc.errno, exc.strerror, str(path)) from None
            if src.suffix == ".embc":
                journal.drop_replaced(path)  # (as write_table does for a table written over its path)
        _fsync_dir(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for p in made:  # (folders this call made, empty again)
            try:
                p.rmdir()
            except OSError:
                break
        raise
    stage.rmdir()
    return report


def _check_replaceable(paths) -> None:
    """Refuse a file's place in out_dir that a rename cannot replace (a folder) or should not (a
    pipe, device or socket), naming it and the fix. A missing one, or a link, is replaced."""
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # (nothing there; an out_dir that is no folder is named when it is made)
            continue
        if stat.S_ISDIR(mode):
            raise ConfigError(f"Cannot write {path}: it is a folder. Move the folder away, or export to another "
                              f"out_dir. No file was written.", param="out_dir")
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise ConfigError(f"Cannot write {path}: it is not a regular file (a pipe, device or socket), which the "
                              f"export would replace. Move it away, or export to another out_dir. No file was "
                              f"written.", param="out_dir")


_STAGE = ".export-"  # + host-pid-random: the hidden folder an export writes its tables into


def _remove_stale_stages(out: Path) -> None:
    """Remove what exports killed on this host left in ``out`` (a process that is gone cannot
    move its tables into place): else a job killed again and again, each time with tables
    written, would fill the disk. Folders of live processes, and of other hosts sharing the
    folder, are left alone."""
    for p in out.glob(f"{_STAGE}*"):
        if p.is_dir() and gone(p.name[len(_STAGE):].rpartition("-")[0]):
            shutil.rmtree(p, ignore_errors=True)


def _export_table(name, weight, folder, fmt, block_size, scale_mode, idm, freq, unserved, pooling, bytes_before,
                  untrained=None):
    """Fold (with a map onto fewer rows), compress, measure and write one table into ``folder``,
    a piece at a time; its report entry. ``untrained``: an nn.Embedding's padding id."""
    from .tablefile import write_table_stream

    n, dim = weight.shape
    table, row_freq, folded_rows, pad = weight, freq, None, None
    if idm is not None and n != idm.n_rows:
        # A full-size table: ids 0 .. n-1 are its rows; fold them onto the map's rows.
        folded_rows = np.asarray(idm.lookup(np.arange(n, dtype=np.int64)), dtype=np.int64)
        # A bag's padding id is left out of its row's mean and count (one row past the map's,
        # dropped): its trained row is zeros, and the served module leaves the id out of its bags.
        pad = unserved.get("padding_idx")
        # An nn.Embedding's padding id is served, but its row was never trained (zeros): in the
        # mean of a row it shares it would pull its partners' rows toward zero, by its count (a
        # padding id is often the most frequent). Left out there; a row of its own keeps it.
        shared_pad = untrained is not None and np.count_nonzero(folded_rows == folded_rows[untrained]) > 1
        into, n_into = folded_rows, idm.n_rows
        if pad is not None or shared_pad:
            into, n_into = folded_rows.copy(), idm.n_rows + 1
            into[untrained if shared_pad else pad] = idm.n_rows
        table, _, _ = fold_rows(weight, into, n_into, None if freq is None else freq.astype(np.float64))
        table = table[: idm.n_rows]
        if freq is not None:  # the accesses each row serves (an nn.Embedding's padding id is served)
            row_freq = np.bincount(folded_rows if shared_pad else into, weights=freq, minlength=n_into)[: idm.n_rows]
            row_freq = row_freq.astype(np.int64) if freq.dtype.kind in "iu" else row_freq
        if shared_pad:
            warnings.warn(
                f"The table {name!r} is an nn.Embedding with padding_idx={untrained}, which its id map sends to "
                f"row {int(folded_rows[untrained])} with other ids: that row is the mean of the others' trained "
                f"rows (the padding row, never trained, is left out), and lookups of id {untrained} return it, "
                f"where the trained model returned its padding row. Give the padding id a row of its own in the "
                f"id map to serve it exactly.", UserWarning, stacklevel=3)
    qsnr = _Qsnr()
    # a folded table is the small one: keep its decoded rows to measure them against every id's
    served_rows = np.empty(table.shape, np.float32) if folded_rows is not None else None

    def pieces():
        from .formats import quantize

        for i, x in _pieces(table, *table.shape):
            _check_finite(name, x)  # (a folded row holding a member's NaN or inf is non-finite too)
            # (the piece is finite: a non-finite decoded row is one the format overflowed, which
            # quantize would refuse naming neither the table nor a fix export offers)
            q = quantize(x, fmt, block_size=block_size, scale_mode=scale_mode, nonfinite="nan_block")
            with np.errstate(invalid="ignore", over="ignore"):
                decoded = _decode(q)
            bad = np.flatnonzero(~np.isfinite(decoded).all(axis=1))
            if bad.size:
                _refuse_overflow(name, fmt, folded_rows is not None, x, bad, i)
            qsnr.add(x, decoded)
            if served_rows is not None:
                served_rows[i : i + len(x)] = decoded
            yield q

    # the trained dtype, which MXEmbeddingBag.from_file returns as the trained bag did
    dtype = str(weight.dtype).removeprefix("torch.")
    inputs = {"table": name, "trained_shape": [n, dim], "trained_dtype": dtype, "fmt": fmt, **pooling, **unserved}
    path = write_table_stream(folder / f"{name}.embc", fmt, table.shape, pieces(), block_size=block_size,
                              scale_mode=scale_mode, id_map=idm, frequencies=row_freq, inputs=inputs)
    entry = {"name": name, "path": str(path), "fmt": fmt, "trained_shape": [n, dim], "shape": list(table.shape),
             "bytes_before": bytes_before, "bytes_after": path.stat().st_size, "qsnr_db": qsnr.db}
    entry["compression"] = entry["bytes_before"] / entry["bytes_after"]
    if folded_rows is not None:
        served = _Qsnr()
        for i, x in _pieces(weight, n, dim):
            _check_finite(name, x)  # (the padding id's row, which no folded row holds)
            got = served_rows[folded_rows[i : i + len(x)]]
            if pad is not None and i <= pad < i + len(x):  # (never served: its trained row is no noise)
                got[pad - i] = x[pad - i]
            served.add(x, got)
        entry["qsnr_vs_trained_db"] = served.db
    entry.update(unserved)
    return entry


def _check_finite(name, x) -> None:
    # Checked as the pieces are read, not in a pass of its own: a table mapped from disk is read
    # once less. Nothing is in out_dir yet when it fails (the tables are in the staging folder).
    if not np.isfinite(x).all():
        raise ConfigError(f"The table {name!r} holds non-finite values; export needs finite trained weights.")


def _refuse_overflow(name, fmt, folded, x, bad, start):
    """Rows ``bad`` of the piece ``x`` (table rows from ``start``) that the format stores as inf or
    NaN: refused, naming them and the fix. (The rest of the table is not read for more.)"""
    rows = start + bad
    shown = ", ".join(map(str, rows[:10])) + (f", ... ({rows.size} rows)" if rows.size > 10 else "")
    raise ConfigError(
        f"The table {name!r} has {'folded ' if folded else ''}rows [{shown}] with values too large for {fmt} "
        f"(up to {float(np.abs(x[bad]).max()):.4g}), which would be stored as inf or NaN. Export it in an MX "
        f"format (mxfp8_e4m3, mxint8, ...), bf16 or fp32, or scale the trained table down. No file was written.",
        param="fmt")


def _json_num(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"not JSON serializable: {type(v).__name__}")
