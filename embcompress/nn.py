"""torch modules over compressed tables: :class:`MXEmbeddingBag` and :class:`MXEmbeddingBagCollection`.

``MXEmbeddingBag`` drops in for ``torch.nn.EmbeddingBag`` at inference: ``forward(input, offsets,
per_sample_weights)`` takes raw ids, sends them through the table's id map (if any) to rows, and
returns what ``nn.EmbeddingBag`` returns on the decoded weights (modes "sum", "mean", "max";
bags as torch takes them). Rows are decoded on the fly by the compiled kernel; there is no
backward (the tables are for serving).

The kernel and the id map are registered as ``torch.library`` custom ops,
``embcompress::pooled_lookup`` and ``embcompress::map_ids`` (and ``embcompress::source_lookup``
for row sources), each with a fake (meta) implementation, so ``torch.compile`` and
``torch.export`` trace a model that uses them without graph breaks (``embcompress::no_backward``
is the backward of a lookup whose per-sample weights require grad: it raises when it runs).
``torch.jit.script`` is refused by name; ``torch.jit.trace`` records the ops;
``torch.fx.symbolic_trace`` records each module as one call, as it records an ``nn.EmbeddingBag``.

What travels with the module
----------------------------
A table held in memory and the id map are buffers of the module, passed to the ops as tensors:
``records`` (uint8 row records) and ``id_map_keys``, ``id_map_vals``, ``id_map_fallback``,
``id_map_params`` (the arrays of :meth:`IdMap.parts <embcompress.idmap.IdMap.parts>`, the row
arrays as their bytes). So ``state_dict`` carries them (``load_state_dict`` into a module built
over a table of the same shape installs the id map it holds, whatever map, if any, the module
had; the state dict's metadata records the records' format, dim and block size, and records of
another format are refused; a state dict of the model as trained, with a float ``weight`` of
the table's shape where the ``nn.EmbeddingBag`` was, loads that table compressed to the module's
format, block size and scale mode, as :meth:`MXEmbeddingBag.from_embedding_bag` would; a weight
of another shape, such as a full-size table to fold with ``embcompress.export``, or one given to a
module over a table file whose rows ``reorder_rows`` reordered, is left unexpected), and a
``torch.export`` program of the module, saved with ``torch.export.save``, runs in another process
after ``import embcompress.nn`` (which registers the ops) and ``torch.export.load``, with the same
outputs. Pickling and ``copy.deepcopy`` carry the table and the id map once, as these buffers.

Row sources
-----------
The module reads its table through a small interface, so a store that keeps rows elsewhere (the
tiered DRAM + SSD store) plugs in: a *row source* is any object with

- ``shape``: ``(n_rows, dim)``;
- ``fmt``: the format name;
- ``pooled_lookup(indices, offsets, *, mode, per_sample_weights, include_last_offset)``: the
  pooled rows as a float32 NumPy array ``(n_bags, dim)``, with ``indices`` row numbers (int64).

A :class:`~embcompress.table.QuantizedTable` or an opened table file is held as a uint8 buffer
of row records. Any other row source (a :class:`~embcompress.store.TieredStore` holds an open
file, a DRAM cache and statistics: nothing a tensor can hold) is called through
``embcompress::source_lookup``, which finds it by a key local to the process that built the
module, so a program exported from such a module runs only in that process, and while the source
lives (the module holds it; the registry does not: a source is freed with the last module over it,
its TieredStore's file, DRAM tier and threads too); elsewhere it raises an error saying so. A copy
or an unpickled module (where its source can be pickled) registers its own source. To serve a
store in another process, build the module over the store there; to ship one portable program,
export a module over the in-memory table
(``MXEmbeddingBag.from_file``). Keys are random 62-bit numbers, so a program loaded in another
process never reaches a source registered there by chance.
"""

from __future__ import annotations

import secrets
import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules import module as _torch_module

from .errors import ArtifactError, ConfigError, param_error
from .idmap import ID_SECONDS, IdMap, _as_int64, _lookup, row_dtype
from .kernels import team_size
from .kernels.lookup import MODES, pooled_lookup_many
from .table import QuantizedTable

__all__ = ["MXEmbeddingBag", "MXEmbeddingBagCollection"]

# Process-local registry of the row sources a custom op cannot take as a tensor (see the module
# docstring). Random keys: a program loaded elsewhere must not find an unrelated source there.
_REGISTRY: dict[int, object] = {}  # key -> a callable returning the source (a weak reference), or None
_LOCK = threading.Lock()
# The id map's buffers, in the order embcompress::map_ids takes them.
_ID_MAP_BUFFERS = ("id_map_keys", "id_map_vals", "id_map_fallback", "id_map_params")
_VIEWED = ("records", *_ID_MAP_BUFFERS)  # the buffers MXEmbeddingBag._views views


def _register(obj, owner) -> int:
    """A new key for the row source ``obj`` of the module ``owner``. The registry holds the source
    weakly and drops its key when it is freed, once nothing else holds it (the module does while
    it lives); a source that takes no weak reference is held until ``owner`` is collected."""
    with _LOCK:
        key = 0
        while key == 0 or key in _REGISTRY:
            key = secrets.randbits(62)
        _REGISTRY[key] = None  # (reserved)
    # (dict.pop is atomic: the callbacks take no lock, as the collector may run them anywhere)
    try:
        entry = weakref.ref(obj, lambda _, key=key: _REGISTRY.pop(key, None))
    except TypeError:
        entry = lambda: obj  # noqa: E731
        weakref.finalize(owner, _REGISTRY.pop, key, None)
    _REGISTRY[key] = entry
    return key


def _registered(key: int):
    entry = _REGISTRY.get(key)
    source = entry() if entry is not None else None
    if source is None:
        raise ConfigError(
            f"No row source is registered under key {key} in this process. An MXEmbeddingBag over a "
            f"row source that is not an in-memory table (such as a TieredStore, which holds an open "
            f"file and a cache) calls it by a key that lives only in the process that built the "
            f"module, and only while that source lives (the module, or the caller, holds it), so a "
            f"program exported (torch.export) from it runs only there and then. Build the module "
            f"over the store in this process (MXEmbeddingBag(TieredStore(path), id_map=store.id_map)), "
            f"or export a module over the in-memory table (MXEmbeddingBag.from_file(path)), whose "
            f"rows and id map travel in the program as buffers."
        )
    return source


def _np(t: Tensor | None):
    """A tensor's values as a NumPy array, sharing its memory. (Only the ops' CPU kernels call it,
    so t is on the CPU; ``detach().cpu().contiguous()`` always cost 0.8 us a tensor, 4 a lookup.)"""
    if t is None:
        return None
    if t.requires_grad:
        t = t.detach()
    return t.numpy() if t.is_contiguous() else t.contiguous().numpy()


# The ops are defined through torch.library's low-level API: a custom_op's Python wrapper added
# 13 to 28 us to every call, more than the whole lookup of a small batch; through the dispatcher
# alone a call costs about 2 us. Each op's fake implementation (output shape and dtype) is what
# torch.compile and torch.export trace.
_LIB = torch.library.Library("embcompress", "DEF")


def _op(schema: str):
    """Define ``embcompress::<schema>`` with the decorated function as its CPU kernel."""

    def define(fn):
        _LIB.define(schema)
        _LIB.impl(schema[: schema.index("(")], fn, "CPU")
        return fn

    return define


def _fake_device(*tensors: Tensor) -> torch.device:
    """The device of a fake implementation's output. Eagerly, one runs only when an input is on
    the meta device (a module moved there to work out shapes, or meta ids): the output is a meta
    tensor then, as torch.compile's fake tensors are on their device; made on the CPU ids' device
    instead, a meta module returned uninitialized memory as its pooled rows."""
    return next((t.device for t in tensors if t.device.type == "meta"), tensors[0].device)


# What _direct asks of torch: private names (stable since torch 2.0, looked up once); where one
# is missing, every call goes through the dispatcher.
_DISPATCH_STACK = getattr(torch._C, "_len_torch_dispatch_stack", None)
_FUNCTION_STACK = getattr(torch._C, "_len_torch_function_stack", None)
_PROFILER = torch.autograd.profiler
_CAN_SKIP_DISPATCH = (_DISPATCH_STACK is not None and _FUNCTION_STACK is not None
                      and isinstance(getattr(_PROFILER, "_is_profiler_enabled", None), bool))


def _eager() -> bool:
    """Whether nothing that must see the ops watches: torch.compile, torch.export, jit.trace,
    the profiler, torch function or dispatch modes (a device context, say)."""
    return not (not _CAN_SKIP_DISPATCH or torch.compiler.is_compiling() or torch.jit.is_tracing()
                or _PROFILER._is_profiler_enabled or _DISPATCH_STACK() or _FUNCTION_STACK())


def _direct(*tensors: Tensor | None, eager: bool | None = None) -> bool:
    """Whether a call may run an op's CPU kernel itself rather than through torch's dispatcher,
    which costs a one-bag call about 5 us (a fifth of it): in eager mode (``_eager()``, or as
    ``eager`` says, asked once for many calls) on plain CPU tensors. Fake or meta tensors and
    tensor subclasses take the op, as everything ``_eager`` watches for does."""
    return (_eager() if eager is None else eager) and _plain(*tensors)


def _plain(*tensors: Tensor | None) -> bool:
    """Whether each of ``tensors`` is None or a plain CPU tensor (no subclass, fake or meta)."""
    for t in tensors:
        if t is not None and (type(t) is not Tensor or not t.is_cpu):
            return False
    return True


def _fake_bags(offsets: Tensor, include_last_offset: bool):
    """The number of bags, for the fake implementations; empty offsets with include_last_offset
    are refused as the kernels refuse them (a size of -1 failed tracing with torch's 'negative
    dimension')."""
    if not include_last_offset:
        return offsets.shape[0]
    if offsets.shape[0] == 0:
        raise param_error("offsets", "pooled_lookup", "hold at least one entry with include_last_offset=True", "[]")
    return offsets.shape[0] - 1


# Each op's CPU kernel converts its tensors and calls a function on arrays below; a module in
# plain eager mode calls those functions itself on arrays (see MXEmbeddingBag._prepare): a
# tensor's .numpy() costs about a microsecond, and a small lookup converted eight.

def _pool(records, fmt, dim, block_size, indices, offsets, weights, mode, include_last_offset, n_threads, keep):
    """The op pooled_lookup on arrays."""
    job = (records, fmt, dim, block_size or None, indices, offsets, weights, mode, include_last_offset, keep)
    return pooled_lookup_many([job], n_threads or None)[0]


def _source_pool(key, dim, indices, offsets, weights, mode, include_last_offset, keep):
    """The op source_lookup on arrays."""
    source = _registered(key)
    if keep is None:
        out = source.pooled_lookup(indices, offsets, mode=mode, per_sample_weights=weights,
                                   include_last_offset=include_last_offset)
    else:
        from .kernels.lookup import check_bags, kept

        bags = kept(check_bags(indices, offsets, mode=mode, per_sample_weights=weights,
                               include_last_offset=include_last_offset, n_threads=1, out=None, dim=dim,
                               n_rows=int(source.shape[0])), keep)
        out = source.pooled_lookup(bags.indices, bags.offsets, mode=mode, per_sample_weights=bags.weights,
                                   include_last_offset=True)
    return np.ascontiguousarray(out, dtype=np.float32)


def _map(ids, keys, vals, fallback, params, n_threads):
    """The op map_ids on arrays: ``vals`` and ``fallback`` as row numbers, ``params`` the four ints."""
    seed, base, fb_start, fb_count = params
    out = np.empty(ids.size, dtype=np.int64)
    _lookup(_as_int64(ids.reshape(-1)), keys, vals, base, seed & 0xFFFFFFFFFFFFFFFF, fallback, fb_start, fb_count,
            out, team_size(n_threads or None, out.size, ID_SECONDS))
    return out.reshape(ids.shape)


@_op("pooled_lookup(Tensor records, Tensor indices, Tensor offsets, Tensor? per_sample_weights, str fmt, "
     "int dim, int block_size, str mode, bool include_last_offset, int n_threads, Tensor? keep=None) -> Tensor")
def _lookup_op(records, indices, offsets, per_sample_weights, fmt, dim, block_size, mode, include_last_offset,
               n_threads, keep=None):
    return torch.from_numpy(_pool(_np(records), fmt, dim, block_size, _np(indices), _np(offsets),
                                  _np(per_sample_weights), mode, include_last_offset, n_threads, _np(keep)))


@torch.library.register_fake("embcompress::pooled_lookup")
def _(records, indices, offsets, per_sample_weights, fmt, dim, block_size, mode, include_last_offset, n_threads,
      keep=None):
    return indices.new_empty((_fake_bags(offsets, include_last_offset), dim), dtype=torch.float32,
                             device=_fake_device(indices, records, offsets))


@_op("pooled_lookup_many(Tensor[] records, Tensor[] indices, Tensor[] offsets, Tensor?[] per_sample_weights, "
     "str[] fmts, int[] dims, int[] block_sizes, str[] modes, bool[] include_last_offsets, Tensor?[] keeps, "
     "int n_threads) -> Tensor[]")
def _lookup_many_op(records, indices, offsets, per_sample_weights, fmts, dims, block_sizes, modes, include_last_offsets,
                    keeps, n_threads):
    # pooled_lookup of each table on its bags in one compiled call (MXEmbeddingBagCollection's)
    lists = (records, indices, offsets, per_sample_weights, fmts, dims, block_sizes, modes, include_last_offsets, keeps)
    if len({len(x) for x in lists}) != 1:
        raise ConfigError(f"embcompress::pooled_lookup_many takes one entry a table in each list ({len(records)} "
                          f"records).")
    jobs = [(_np(r), f, d, b or None, _np(i), _np(o), _np(w), m, last, _np(k))
            for r, i, o, w, f, d, b, m, last, k in zip(*lists)]
    return [torch.from_numpy(out) for out in pooled_lookup_many(jobs, n_threads or None)]


@torch.library.register_fake("embcompress::pooled_lookup_many")
def _(records, indices, offsets, per_sample_weights, fmts, dims, block_sizes, modes, include_last_offsets, keeps,
      n_threads):
    return [i.new_empty((_fake_bags(o, last), d), dtype=torch.float32, device=_fake_device(i, r, o))
            for r, i, o, d, last in zip(records, indices, offsets, dims, include_last_offsets)]


@_op("source_lookup(Tensor indices, Tensor offsets, Tensor? per_sample_weights, int key, int dim, str mode, "
     "bool include_last_offset, Tensor? keep=None) -> Tensor")
def _source_op(indices, offsets, per_sample_weights, key, dim, mode, include_last_offset, keep=None):
    return torch.from_numpy(_source_pool(key, dim, _np(indices), _np(offsets), _np(per_sample_weights), mode,
                                         include_last_offset, _np(keep)))


@torch.library.register_fake("embcompress::source_lookup")
def _(indices, offsets, per_sample_weights, key, dim, mode, include_last_offset, keep=None):
    return indices.new_empty((_fake_bags(offsets, include_last_offset), dim), dtype=torch.float32)


@_op("map_ids(Tensor ids, Tensor keys, Tensor vals, Tensor fallback, Tensor params, int n_rows, int n_threads) "
     "-> Tensor")
def _map_op(ids, keys, vals, fallback, params, n_rows, n_threads):
    # The buffers of a module's id map (see _id_map_tensors); the row arrays come as their bytes.
    dtype = row_dtype(n_rows)
    return torch.from_numpy(_map(_np(ids), _np(keys), _np(vals).view(dtype), _np(fallback).view(dtype),
                                 _np(params).tolist(), n_threads))


@torch.library.register_fake("embcompress::map_ids")
def _(ids, keys, vals, fallback, params, n_rows, n_threads):
    # contiguous, as the real op returns (not ids' strides)
    return ids.new_empty(ids.shape, dtype=torch.int64, device=_fake_device(ids, keys))


class _Symbolic(Exception):
    """Inputs that are ``torch.fx`` Proxies (``torch.fx.symbolic_trace``, which keeps an
    ``nn.EmbeddingBag`` a leaf but traces into other modules): the module is recorded as one
    call instead (``leaf``), since its forward needs the inputs' values (dtypes, shapes)."""

    def __init__(self, proxy):
        super().__init__()
        self.tracer = proxy.tracer

    def leaf(self, module: nn.Module, args: tuple):
        return self.tracer.create_proxy("call_module", self.tracer.path_of_module(module), args, {})


class _Call(NamedTuple):
    """A forward's lookup, prepared (``MXEmbeddingBag._prepare``): rows (ids mapped), int64
    offsets, float32 weights or None, whether offsets include the last, the padding mask or None
    (tensors, or NumPy arrays when ``arrays``), and whether the ops' kernels may be called
    without the dispatcher (``_direct``)."""

    rows: object
    offsets: object
    weights: object
    include_last: bool
    keep: object
    direct: bool
    arrays: bool
    records: np.ndarray | None = None  # the module's records as viewed for this call (arrays)


class _Views(NamedTuple):
    """NumPy views of a module's buffers, for calls on arrays (``MXEmbeddingBag._views``)."""

    buffers: tuple  # the tensors viewed: records and the id map's four
    places: tuple  # their data_ptr()s when viewed (0 for None)
    plain: bool  # all plain CPU tensors (else no views)
    records: np.ndarray | None
    id_map: tuple | None  # _map's keys, vals, fallback, params


class _TableOfRecords(NamedTuple):
    """What a pickled MXEmbeddingBag keeps of its in-memory table besides the records buffer."""

    fmt: str
    shape: tuple
    block_size: int | None
    scale_mode: str


class _MapOfBuffers(NamedTuple):
    """What a pickled MXEmbeddingBag keeps of its IdMap besides the id_map_* buffers."""

    config: dict
    inputs: dict
    meta: dict


@_op("no_backward(Tensor grad, Tensor per_sample_weights) -> Tensor")
def _no_backward_op(grad, per_sample_weights):
    raise ConfigError(
        "MXEmbeddingBag has no backward (its tables are for serving), so its 'per_sample_weights' get no "
        "gradient. Got a backward pass through a lookup whose per_sample_weights require grad instead. "
        "Pass per_sample_weights.detach() (or look up under torch.no_grad()) to train the rest of the model."
    )


@torch.library.register_fake("embcompress::no_backward")
def _(grad, per_sample_weights):
    return torch.empty_like(per_sample_weights)


class _NoBackward(torch.autograd.Function):
    """A lookup whose per-sample weights require grad: the output requires grad, and a backward
    through it raises. (The ops have no autograd kernel: a Python one costs every call about
    7 us, and autograd's fallback for ops without one leaves the weights' .grad None with only
    a warning, so a model training its weights would silently stop learning them.) The backward
    raises from an op, ``embcompress::no_backward``, rather than in Python: torch.compile traces
    the backward when it compiles the forward, and a backward that raised as it was traced
    failed the compile of a model whose forward is fine."""

    @staticmethod
    def forward(ctx, bag, rows, offsets, per_sample_weights, include_last, keep, direct):
        ctx.save_for_backward(per_sample_weights)
        return bag._lookup(rows, offsets, per_sample_weights, include_last, keep, direct)

    @staticmethod
    def backward(ctx, grad):
        (weights,) = ctx.saved_tensors
        return None, None, None, torch.ops.embcompress.no_backward(grad, weights), None, None, None


def _tensor(arr: np.ndarray) -> Tensor:
    with warnings.catch_warnings():  # read-only (memory-mapped) arrays: the module never writes them
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(arr)
    # An empty tensor over NumPy's memory has a null data pointer but a non-null storage, which
    # torch.export.save (torch 2.13) fails to place; torch's own empty tensor has null for both.
    return t.clone() if t.numel() == 0 else t


def _id_map_tensors(id_map: IdMap) -> dict[str, Tensor]:
    """The id map's arrays as the module's buffers, sharing memory; the row arrays (uint8 to
    uint64 by the table's rows) as bytes, a dtype every torch version saves and loads."""
    p = id_map.parts()
    return {
        "id_map_keys": _tensor(p["keys"]),
        "id_map_vals": _tensor(p["vals"].view(np.uint8)),
        "id_map_fallback": _tensor(p["fallback"].view(np.uint8)),
        "id_map_params": _tensor(p["params"]),
    }


# id_map's default: the source's own map, if it holds one (id_map=None: none)
_OWN_MAP = type("_OwnMap", (), {"__repr__": lambda self: "<the source's id map>"})()


def _reordered(source) -> bool:
    """Whether ``source`` is an opened table file whose rows reorder_rows put in co-access order
    (its ``row_order`` section): its rows are not the trained table's, in order."""
    header = getattr(source, "header", None)
    sections = header.get("sections") if isinstance(header, dict) else None
    return isinstance(sections, list) and any(isinstance(s, dict) and s.get("name") == "row_order" for s in sections)


def _recorded_pooling(source) -> tuple[str, bool, int | None]:
    """``(mode, include_last_offset, padding_idx)`` an opened table file or a store over one
    records (``embcompress.export`` writes those of the ``nn.EmbeddingBag`` it exported), else
    ``nn.EmbeddingBag``'s defaults."""
    header = getattr(source, "header", None)
    inputs = header.get("inputs") if isinstance(header, dict) else getattr(source, "inputs", None)
    inputs = inputs if isinstance(inputs, dict) else {}
    recorded = inputs.get("mode")  # (free-form inputs: a list there is unhashable)
    pad = inputs.get("padding_idx")
    return (recorded if isinstance(recorded, str) and recorded in MODES else "mean",
            inputs.get("include_last_offset") is True,
            pad if isinstance(pad, int) and not isinstance(pad, bool) else None)


_RECORDED = type("_Recorded", (), {"__repr__": lambda self: "<what the source records>"})()


def _check_source(source, owner: str):
    if isinstance(source, QuantizedTable) or hasattr(source, "table") and isinstance(source.table, QuantizedTable):
        return source if isinstance(source, QuantizedTable) else source.table
    missing = [a for a in ("shape", "fmt", "pooled_lookup") if not hasattr(source, a)]
    if missing:
        raise param_error(
            "source", owner, "be a QuantizedTable, an opened table file, or a row source with .shape, .fmt "
            "and .pooled_lookup(indices, offsets, **opts)", f"{type(source).__name__} without {missing}",
        )
    return None


class MXEmbeddingBag(nn.Module):
    """``nn.EmbeddingBag`` over a compressed table, for inference.

    Build it with :meth:`from_file` (a table file written by ``embcompress.write_table`` or
    ``embcompress.export``, with its id map), :meth:`from_embedding_bag` (quantize a trained
    ``nn.EmbeddingBag``), or directly from a table or a row source (see the module docstring).
    ``id_map`` defaults to the source's own (an opened table file's, a ``TieredStore``'s), if it
    holds one; ``id_map=None`` serves without one (ids are row numbers). ``mode`` and
    ``include_last_offset`` default to what an opened table file (or a store's) records, as in
    :meth:`from_file`, else ``"mean"`` and ``False``.

    ``forward(input, offsets=None, per_sample_weights=None)`` takes raw ids (any integer tensor:
    1-D with ``offsets``, or 2-D ``(n_bags, bag_len)`` without) and returns ``(n_bags, dim)`` in
    float32, or in the floating dtype the module was cast to (``.half()``, ``.to(torch.bfloat16)``:
    rows are pooled in float32, then cast), as ``nn.EmbeddingBag``'s output follows its weight.
    Without an id map, ids are row numbers. ``padding_idx`` (an id) is left out of the bags as
    ``nn.EmbeddingBag`` leaves it out; it defaults to what an opened table file records (export
    records a bag's), else None; with an id map it is a raw id. Rows are served as stored: a
    trained module's ``max_norm`` is applied to its rows when they are stored
    (:meth:`from_embedding_bag`, ``embcompress.export``). Gradients are not supported.
    """

    def __init__(self, source, *, id_map=_OWN_MAP, mode: str | None = None, include_last_offset: bool | None = None,
                 n_threads: int | None = None, padding_idx=_RECORDED):
        super().__init__()
        owner = "MXEmbeddingBag"
        recorded_mode, recorded_last, recorded_pad = _recorded_pooling(source)
        if mode is None:
            mode = recorded_mode
        if include_last_offset is None:
            include_last_offset = recorded_last
        if padding_idx is _RECORDED:
            padding_idx = recorded_pad
        if padding_idx is not None and (isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer))
                                        or not -(2**63) <= padding_idx < 2**63):
            raise param_error("padding_idx", owner, "be None or an int64 id", padding_idx)
        if mode not in MODES:
            raise param_error("mode", owner, "be 'sum', 'mean' or 'max'", mode)
        if not isinstance(include_last_offset, bool):
            raise param_error("include_last_offset", owner, "be a bool", include_last_offset)
        if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
            raise param_error("n_threads", owner, "be a positive int or None", n_threads)
        table = _check_source(source, owner)
        self._reordered = _reordered(source)
        if id_map is _OWN_MAP:
            # an opened table file or a TieredStore serves raw ids through the map it holds, as
            # from_file does (else ids below the row count were served as rows, silently)
            own = getattr(source, "id_map", None)
            id_map = own if isinstance(own, IdMap) else None
        n_rows, dim = (int(v) for v in source.shape)
        self.fmt: str = source.fmt
        self.num_embeddings, self.embedding_dim = n_rows, dim
        self.mode, self.include_last_offset, self.n_threads = mode, include_last_offset, n_threads or 0
        if table is not None:
            from .kernels.lookup import _table_parts

            _table_parts(table)  # refuses a format the kernel does not know, here rather than at forward
            self.block_size = table.block_size or 0
            self.register_buffer("records", _tensor(np.asarray(table.data)))
            self.source = table
            self._source_key = 0
        else:
            self.block_size = 0
            self.records = None
            self.source = source
            self._source_key = _register(source, self)
        if id_map is not None and not isinstance(id_map, IdMap):
            raise param_error("id_map", owner, "be an IdMap or None (open an id-map file with embcompress.IdMap.load(path), "
                              "or build one with IdMap.from_arrays(ids, rows, n_rows))", type(id_map).__name__)
        if id_map is not None and id_map.n_rows != n_rows:
            raise param_error(
                "id_map", owner, f"be an IdMap onto the table's {n_rows} rows",
                f"an IdMap onto {id_map.n_rows} rows",
            )
        # (the dtype buffer before the id map's, which are None without a map: torch.export of a
        # bare module numbers its buffers counting None ones, and failed with an IndexError when a
        # buffer came after them)
        self._add_dtype_buffer()
        self._set_id_map(id_map)
        if padding_idx is not None and id_map is None:  # (a row number then; negative counts back, as in torch)
            if not -n_rows <= padding_idx < n_rows:
                raise param_error("padding_idx", owner, f"be a row of the table's {n_rows} (or None)", padding_idx)
            padding_idx %= n_rows
        # An id the bags leave out, as nn.EmbeddingBag leaves its padding_idx out (of sums, means
        # and maxima; a bag of padding alone gives zeros): the raw id, before the id map.
        self.padding_idx: int | None = None if padding_idx is None else int(padding_idx)

    def _apply(self, fn, *args, **kwargs):
        # nn.Module.type(dtype) casts every buffer (.to, .half and .float cast floating ones only):
        # the row records are bytes and the id map ids, never cast, so a cast of either is undone
        # and only the output's dtype follows, as nn.EmbeddingBag's output follows its weight.
        fixed = {k: b for k, b in self._buffers.items() if b is not None and k != "_out_proto"}
        out = super()._apply(fn, *args, **kwargs)
        for key, old in fixed.items():
            new = self._buffers.get(key)
            if new is not None and new.dtype != old.dtype:
                self._buffers[key] = old.to(new.device)
        return out

    def __prepare_scriptable__(self):
        # torch.jit.script calls this on every module it is given or finds inside one: without
        # it, scripting failed deep in embcompress/errors.py ("Don't support conversion in JoinedStr")
        raise ConfigError(
            "MXEmbeddingBag cannot be compiled by torch.jit.script: its forward checks its inputs and calls the "
            "embcompress:: ops in Python that TorchScript does not compile. Use torch.jit.trace(model, "
            "example_inputs) for a TorchScript module, or torch.compile(model) or torch.export.export(model, "
            "example_inputs), which all run the ops."
        )

    def _add_dtype_buffer(self) -> None:
        # Its dtype is the output's: float32, or what .half() / .to(dtype) casts the module to, as
        # they cast nn.EmbeddingBag's weight and so its output (the records are bytes: never cast).
        # Not in the state dict.
        self.register_buffer("_out_proto", torch.empty(0, dtype=torch.float32), persistent=False)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_buffer_views", None)  # (views of the buffers: remade on use)
        t, rec = self.source, self.records
        if rec is not None and rec.device.type == "cpu" and np.may_share_memory(rec.numpy(), t.data):
            # the table's rows are the records buffer: pickle (and deepcopy) them once, not twice
            state["source"] = _TableOfRecords(t.fmt, tuple(t.shape), t.block_size, t.scale_mode)
        m = self.id_map
        if m is not None and self.id_map_params.device.type == "cpu" and all(
                np.may_share_memory(getattr(self, f"id_map_{k}").numpy(), a)
                for k, a in m.parts().items() if k != "params" and a.size):
            # likewise the map's arrays are its buffers: what else it holds travels beside them
            state["id_map"] = _MapOfBuffers(m.config, m.inputs, m.meta)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_out_proto" not in self._buffers:  # pickled by a version without it
            self._add_dtype_buffer()
        self.__dict__.setdefault("padding_idx", None)  # (likewise)
        t = self.source
        if self.records is None:
            # a copy (or an unpickled module, maybe in another process) reads its own source
            self._source_key = _register(t, self)
        if isinstance(t, _TableOfRecords):
            self.source = QuantizedTable(self.records.numpy(), t.fmt, t.shape, block_size=t.block_size,
                                         scale_mode=t.scale_mode)
        m = self.id_map
        if isinstance(m, _MapOfBuffers):
            dtype = row_dtype(self.num_embeddings)
            keys, vals, fallback, params = (getattr(self, n).numpy() for n in _ID_MAP_BUFFERS)
            self.id_map = IdMap.from_parts(self.num_embeddings, keys, vals.view(dtype), fallback.view(dtype), params)
            self.id_map.config, self.id_map.inputs, self.id_map.meta = m.config, m.inputs, m.meta

    def _set_id_map(self, id_map: IdMap | None) -> None:
        self.id_map = id_map
        tensors = _id_map_tensors(id_map) if id_map is not None else {}
        for name in _ID_MAP_BUFFERS:
            self.register_buffer(name, tensors.get(name))

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        # What the records' bytes are, in the state dict's metadata (torch.save keeps it): rows of
        # other formats can have the same record shape (mxint8 and mxfp8 of one dim do).
        meta = getattr(destination, "_metadata", None)
        if self.records is not None and isinstance(meta, dict) and isinstance(meta.get(prefix[:-1]), dict):
            meta[prefix[:-1]]["records"] = {"fmt": self.fmt, "dim": self.embedding_dim, "block_size": self.block_size}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Before torch copies the state into the buffers: records of another format are refused
        # (when the state dict says what they are); an id map in the state replaces the
        # module's (its arrays' sizes are the map's own), checked as IdMap.load checks a file; and
        # the records get fresh memory when the state has them, since the table's own may be a
        # read-only file mapping (writing into it would crash).
        weight = state_dict.get(prefix + "weight")
        trained = None
        if (self.records is not None and prefix + "records" not in state_dict and isinstance(weight, Tensor)
                and not weight.is_meta and weight.is_floating_point() and not getattr(self, "_reordered", False)
                and tuple(weight.shape) == (self.num_embeddings, self.embedding_dim)):
            # The state dict of the model as trained, an nn.EmbeddingBag (or nn.Embedding) here:
            # its float table, compressed as this module's (format, block size, scale mode). Not
            # into a reordered file's rows: they are in co-access order, the weight in the original.
            from .formats import quantize

            t = self.source
            trained = quantize(weight.detach().to("cpu", torch.float32).numpy(), t.fmt, block_size=t.block_size,
                               scale_mode=t.scale_mode)
        rec = local_metadata.get("records") if isinstance(local_metadata, dict) else None
        if self.records is not None and isinstance(rec, dict) and prefix + "records" in state_dict:
            got = (rec.get("fmt"), rec.get("dim"), rec.get("block_size"))
            if got != (self.fmt, self.embedding_dim, self.block_size):
                raise ConfigError(
                    f"The state dict holds under {prefix}records the rows of a {got[0]} table of dim {got[1]} "
                    f"(block size {got[2] or 'none'}), but this MXEmbeddingBag serves a {self.fmt} table of dim "
                    f"{self.embedding_dim} (block size {self.block_size or 'none'}): its bytes would be read as "
                    f"the wrong format. Load it into a module built over a table of its format (e.g. "
                    f"MXEmbeddingBag.from_file on that table's file), or re-create the state dict from this format."
                )
        names = [prefix + n for n in _ID_MAP_BUFFERS]
        given = [n for n in names if isinstance(state_dict.get(n), Tensor)]
        if any(n in state_dict for n in names) and len(given) < len(names):
            # Part of a map is no map, and copying it into the buffers would write into the
            # IdMap's own arrays (the caller's object, or a read-only file mapping: a crash).
            raise ArtifactError(
                f"The id map in the state dict under {prefix}id_map_* is incomplete: it has tensors for {given} "
                f"but not for {[n for n in names if n not in given]}. Load a state dict with all four "
                f"id_map_* tensors (as state_dict() gives them) or none of them."
            )
        if given:
            keys, vals, fallback, params = (state_dict[n].detach().cpu().contiguous().numpy().copy() for n in names)
            dtype = row_dtype(self.num_embeddings)
            if vals.dtype == fallback.dtype == np.uint8 and not (vals.size % dtype.itemsize or fallback.size % dtype.itemsize):
                vals, fallback = vals.view(dtype), fallback.view(dtype)  # else from_parts names the wrong dtype
            self._set_id_map(IdMap.from_parts(self.num_embeddings, keys, vals, fallback, params,
                                              where=f"in the state dict under {prefix}id_map_*"))
        records = state_dict.get(prefix + "records")
        # (torch copies a same-shape tensor of any dtype, casting it)
        fresh = self.records is not None and isinstance(records, Tensor) and records.shape == self.records.shape
        old, n_errors = self.records, len(error_msgs)
        if fresh:
            self.records = torch.empty_like(self.records)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if trained is not None:
            # (the key torch found no buffer for, and the buffer it found no key for)
            for keys, key in ((unexpected_keys, prefix + "weight"), (missing_keys, prefix + "records")):
                if key in keys:
                    keys.remove(key)
            if len(error_msgs) == n_errors:
                self.records, self.source = _tensor(trained.data), trained
        if fresh and len(error_msgs) > n_errors:
            # a copy failed (torch raises once every module is done): keep the rows served so far,
            # not the fresh memory, which may hold anything
            self.records = old
        elif fresh:
            t = self.source
            self.source = QuantizedTable(self.records.numpy(), t.fmt, t.shape, block_size=t.block_size,
                                         scale_mode=t.scale_mode)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path, *, mode: str | None = None, include_last_offset: bool | None = None,
                  verify: str = "header", mmap: bool = True, n_threads: int | None = None,
                  padding_idx=_RECORDED) -> "MXEmbeddingBag":
        """The table file at ``path`` (its rows memory-mapped) with its id map, if it holds one.

        ``mode``, ``include_last_offset`` and ``padding_idx`` default to those of the
        ``nn.EmbeddingBag`` the file was exported from (``embcompress.export`` records them), else
        ``"mean"``, ``False`` and None. The module returns the trained table's dtype (a bf16
        table's lookups come out in bf16, as the trained bag's did), else float32; ``.to(dtype)``
        changes it.
        """
        from .tablefile import open_table

        t = open_table(path, mmap=mmap, verify=verify)
        m = cls(t, id_map=t.id_map, mode=mode, include_last_offset=include_last_offset, n_threads=n_threads,
                padding_idx=padding_idx)
        dtype = t.header["inputs"].get("trained_dtype")
        return m.to(getattr(torch, dtype)) if dtype in ("float16", "bfloat16", "float64") else m

    @classmethod
    def from_embedding_bag(cls, emb: nn.Module, fmt: str, id_map=None, *, block_size: int | None = None,
                           scale_mode: str = "floor", n_threads: int | None = None) -> "MXEmbeddingBag":
        """Quantize a trained ``nn.EmbeddingBag`` (or ``nn.Embedding``, pooled with "mean") to ``fmt``.

        Its weight is the table: one row per row of ``id_map`` if given, else one per id. A bag's
        ``padding_idx`` is left out of the bags, as torch leaves it out (an ``nn.Embedding``'s only
        stops its gradient, so it is pooled as any id). With ``max_norm``, rows longer than it are
        stored scaled to it, as torch's lookups scale them (``norm_type`` norm; the bag's own weight
        is left as it is). The module returns the bag's dtype, as the bag does (a bf16 bag's lookups
        come out in bf16: rows are pooled in float32, then cast).
        """
        from .formats import quantize

        if not isinstance(emb, (nn.EmbeddingBag, nn.Embedding)):
            raise param_error("emb", "MXEmbeddingBag.from_embedding_bag", "be an nn.EmbeddingBag or nn.Embedding", type(emb).__name__)
        if emb.weight.is_meta:  # (copying it out raises torch's NotImplementedError)
            raise param_error("emb", "MXEmbeddingBag.from_embedding_bag", "hold trained weights, not tensors on the "
                              "meta device (load the weights first, e.g. load_state_dict(..., assign=True))",
                              "a weight on the meta device")
        n = emb.weight.shape[0]
        if isinstance(id_map, IdMap) and id_map.n_rows != n:
            # a full-size table (one row per id) and a map onto fewer rows: export folds it
            raise param_error(
                "id_map", "MXEmbeddingBag.from_embedding_bag",
                f"be an IdMap onto the trained table's {n} rows. To serve a full-size table through a map onto "
                f"fewer rows, fold it (each row the frequency-weighted mean of its ids' rows) with "
                f"embcompress.export(model, fmt=..., id_maps={{name: id_map}}, frequencies={{name: counts}}, "
                f"out_dir=...) and serve the file with MXEmbeddingBag.from_file",
                f"an IdMap onto {id_map.n_rows} rows",
            )
        pad = emb.padding_idx if isinstance(emb, nn.EmbeddingBag) else None
        if pad is not None and id_map is not None:
            # the trained bag was given rows, and left out row pad; served, the module is given raw ids
            raise param_error(
                "id_map", "MXEmbeddingBag.from_embedding_bag",
                f"be None for a bag with padding_idx={pad}: that bag left out row {pad}, and the module leaves out "
                f"a raw id before its map. Build MXEmbeddingBag(quantize(weight, fmt), id_map=id_map, "
                f"padding_idx=<the raw id that pads the bags>)", "an IdMap",
            )
        weight = emb.weight.detach().to("cpu", copy=True)
        if emb.max_norm is not None:
            # torch scales each looked-up row longer than max_norm to it; stored so (in the weight's
            # own dtype, as torch does it), rows already obey it and serve what the module's
            # lookups return, without touching the module's weight
            with torch.no_grad():
                torch.embedding_renorm_(weight, torch.arange(n), emb.max_norm, emb.norm_type)
        q = quantize(weight.to(torch.float32).numpy(), fmt, block_size=block_size, scale_mode=scale_mode)
        mode = getattr(emb, "mode", "mean")
        m = cls(q, id_map=id_map, mode=mode, include_last_offset=bool(getattr(emb, "include_last_offset", False)),
                n_threads=n_threads, padding_idx=pad)
        # the output in the trained bag's dtype, as its own is (a bf16 model's next layer takes bf16)
        return m if emb.weight.dtype == torch.float32 else m.to(emb.weight.dtype)

    # -- use ----------------------------------------------------------------------------------

    def forward(self, input: Tensor, offsets: Tensor | None = None, per_sample_weights: Tensor | None = None) -> Tensor:
        try:
            return self._finish(self._prepare(input, offsets, per_sample_weights))
        except _Symbolic as s:  # (torch.fx.symbolic_trace: one call of this module, as of an nn.EmbeddingBag)
            return s.leaf(self, (input, offsets, per_sample_weights))

    def _prepare(self, input, offsets, per_sample_weights, eager: bool | None = None) -> "_Call":
        """A forward's inputs checked, in the kernel's types, and its ids mapped to rows (``eager``:
        ``_eager()``, if the caller asked it already)."""
        weights = per_sample_weights
        if (type(input) is Tensor and type(offsets) is Tensor and input.dtype is torch.int64
                and offsets.dtype is torch.int64 and input.dim() == 1
                and (weights is None or (type(weights) is Tensor and weights.dtype is torch.float32))):
            rows, include_last = input, self.include_last_offset  # (the usual call: nothing to convert)
        else:
            rows, offsets, weights, include_last = self._converted(input, offsets, weights)
        grad = weights is not None and weights.requires_grad and torch.is_grad_enabled()
        eager = _eager() if eager is None else eager  # (asked once: the paths below both need it)
        if eager and not grad and _plain(rows, offsets, weights):
            views = self._views()
            if views.plain:
                # plain eager mode: the rest on arrays (weights that take a gradient need autograd;
                # int64 tensors never require grad, so their .numpy() needs no detach)
                ids = rows.numpy()
                keep = None if self.padding_idx is None else ids != self.padding_idx
                if views.id_map is not None:
                    ids = _map(ids, *views.id_map, self.n_threads)
                return _Call(ids, offsets.numpy(), _np(weights), include_last, keep, True, True, views.records)
        keep = None if self.padding_idx is None else rows != self.padding_idx
        # (buffers read from _buffers: through nn.Module.__getattr__ each costs about a microsecond)
        bufs = self._buffers
        records, params = bufs.get("records"), bufs.get("id_map_params")
        id_map = () if params is None else (bufs["id_map_keys"], bufs["id_map_vals"], bufs["id_map_fallback"], params)
        direct = _direct(rows, offsets, weights, records, *id_map, eager=eager)
        if id_map:
            args = (rows, *id_map, self.num_embeddings, self.n_threads)
            rows = _map_op(*args) if direct else torch.ops.embcompress.map_ids(*args)
        return _Call(rows, offsets, weights, include_last, keep, direct, False)

    def _converted(self, input, offsets, per_sample_weights):
        """``(ids, offsets, per_sample_weights, include_last)`` of a forward's inputs, checked and
        converted to int64 ids and offsets (from 2-D ids too) and float32 weights."""
        where = "MXEmbeddingBag.forward"
        if not (isinstance(input, Tensor) and (offsets is None or isinstance(offsets, Tensor))
                and (per_sample_weights is None or isinstance(per_sample_weights, Tensor))):
            for t in (input, offsets, per_sample_weights):
                if isinstance(t, torch.fx.Proxy):  # (see _Symbolic; forward catches it)
                    raise _Symbolic(t)
            for name, t in (("input", input), ("offsets", offsets), ("per_sample_weights", per_sample_weights)):
                if not isinstance(t, Tensor) and (t is not None or name == "input"):
                    raise param_error(name, where, "be a torch.Tensor (convert with torch.as_tensor(...), ids and "
                                      "offsets as int64)" + (" or None" if name != "input" else ""), type(t).__name__)
        if input.dim() not in (1, 2):
            raise param_error("input", where, "be 1-D (with offsets) or 2-D (n_bags, bag_len)", f"{input.dim()}-D")
        # (checked before the casts to int64 below, which would truncate float ids silently)
        for name, t in (("input", input), ("offsets", offsets)):
            if t is not None and t.dtype is not torch.int64 and (t.is_floating_point() or t.is_complex()):
                raise param_error(name, where, "be an integer tensor (int64 preferred)", f"dtype {t.dtype}")
        if input.dim() == 2:
            if offsets is not None:
                raise param_error("offsets", where, "be None when 'input' is 2-D", "a tensor")
            n_bags, bag_len = input.shape
            offsets = torch.arange(n_bags, dtype=torch.int64) * bag_len  # (bag_len 0: empty bags)
            if per_sample_weights is not None:
                if per_sample_weights.shape != input.shape:  # (flattened alike, a transposed one would pass)
                    raise param_error("per_sample_weights", where, f"have the shape of 'input' {tuple(input.shape)}",
                                      f"shape {tuple(per_sample_weights.shape)}")
                per_sample_weights = per_sample_weights.reshape(-1)
            input = input.reshape(-1)
            include_last = False
        else:
            if offsets is None:
                raise param_error("offsets", where, "be given when 'input' is 1-D", None)
            include_last = self.include_last_offset
        rows = input if input.dtype is torch.int64 else input.to(torch.int64)
        if offsets.dtype is not torch.int64:
            offsets = offsets.to(torch.int64)
        if per_sample_weights is not None and per_sample_weights.dtype is not torch.float32:
            if not per_sample_weights.is_floating_point():  # (cast, ints passed and a complex lost its imaginary part)
                raise param_error("per_sample_weights", where, "be a floating-point tensor (float32 preferred; other "
                                  "float dtypes are rounded to float32)", f"dtype {per_sample_weights.dtype}")
            per_sample_weights = per_sample_weights.to(torch.float32)
        return rows, offsets, per_sample_weights, include_last

    def _views(self) -> _Views:
        """NumPy views of the records and id-map buffers (``plain`` False, and none, when a buffer
        is not a plain CPU tensor), remade when a buffer is replaced (a move, a load of a state
        dict with another map) or its memory moves (``share_memory()`` swaps a tensor's storage:
        a view of the old one would read freed memory). (Checked one by one: this runs every call.)"""
        bufs, v = self._buffers, self.__dict__.get("_buffer_views")
        if v is not None:
            records, keys, vals, fallback, params = v.buffers
            if (records is bufs.get("records") and params is bufs.get("id_map_params") and keys is bufs.get("id_map_keys")
                    and vals is bufs.get("id_map_vals") and fallback is bufs.get("id_map_fallback")
                    and (records is None or records.data_ptr() == v.places[0])
                    and (params is None or (keys.data_ptr(), vals.data_ptr(), fallback.data_ptr(),
                                            params.data_ptr()) == v.places[1:])):
                return v
        records, keys, vals, fallback, params = ts = tuple(bufs.get(k) for k in _VIEWED)
        places = tuple(0 if t is None else t.data_ptr() for t in ts)
        if not _plain(*ts):
            v = _Views(ts, places, False, None, None)
        else:
            id_map = None
            if params is not None:
                dtype = row_dtype(self.num_embeddings)
                id_map = (_np(keys), _np(vals).view(dtype), _np(fallback).view(dtype), _np(params).tolist())
            v = _Views(ts, places, True, _np(records), id_map)
        self.__dict__["_buffer_views"] = v
        return v

    def _finish(self, c: "_Call") -> Tensor:
        """The prepared call's pooled rows, in the module's output dtype."""
        if c.arrays:
            if self._buffers.get("records") is not None:
                out = pooled_lookup_many([self._job(c)], self.n_threads or None)[0]
            else:
                out = _source_pool(self._source_key, self.embedding_dim, c.rows, c.offsets, c.weights, self.mode,
                                   c.include_last, c.keep)
            out = torch.from_numpy(out)
        elif c.weights is not None and c.weights.requires_grad and torch.is_grad_enabled():
            out = _NoBackward.apply(self, c.rows, c.offsets, c.weights, c.include_last, c.keep, c.direct)
        else:
            out = self._lookup(c.rows, c.offsets, c.weights, c.include_last, c.keep, c.direct)
        return self._cast(out)

    def _job(self, c: "_Call") -> tuple:
        """The prepared call (on arrays) as a job of ``pooled_lookup_many``."""
        return (c.records, self.fmt, self.embedding_dim, self.block_size or None, c.rows, c.offsets, c.weights,
                self.mode, c.include_last, c.keep)

    def _cast(self, out: Tensor) -> Tensor:
        dtype = self._buffers["_out_proto"].dtype
        return out if dtype is torch.float32 else out.to(dtype)

    def _lookup(self, rows: Tensor, offsets: Tensor, per_sample_weights: Tensor | None, include_last: bool,
                keep: Tensor | None, direct: bool) -> Tensor:
        """The pooled rows, by the ops (``direct``: their kernels called without the dispatcher,
        as ``_direct`` allows)."""
        records = self._buffers.get("records")
        if records is not None:
            args = (records, rows, offsets, per_sample_weights, self.fmt, self.embedding_dim, self.block_size,
                    self.mode, include_last, self.n_threads, keep)
            return _lookup_op(*args) if direct else torch.ops.embcompress.pooled_lookup(*args)
        args = (rows, offsets, per_sample_weights, self._source_key, self.embedding_dim, self.mode, include_last, keep)
        return _source_op(*args) if direct else torch.ops.embcompress.source_lookup(*args)

    def decoded_weight(self) -> Tensor:
        """The table's rows decoded to float32 ``(num_embeddings, embedding_dim)`` (in-memory tables)."""
        if self.records is None:
            raise ConfigError("decoded_weight() needs a table held in memory; this module reads a row source.")
        from .formats import decode_records

        return torch.from_numpy(decode_records(self.records.numpy(), self.fmt, self.embedding_dim, self.block_size or None))

    def extra_repr(self) -> str:
        idm = ", id_map" if self.id_map is not None else ""
        src = "" if self.records is not None else f", source={type(self.source).__name__}"
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}, fmt={self.fmt!r}, mode={self.mode!r}{pad}{idm}{src}"


def _global_hooks() -> bool:
    """Whether torch runs hooks on every module's call (nn.modules.module.register_module_forward_hook, ...)."""
    return bool(_torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks
                or _torch_module._global_backward_hooks or _torch_module._global_backward_pre_hooks)


def _hooked(m: nn.Module, everyone: bool) -> bool:
    """Whether calling ``m`` runs hooks: its own, or every module's (``everyone``)."""
    return everyone or bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)


def _team(bags) -> int:
    """The threads of one call over ``bags``: OpenMP's default (0) if any bag takes it, else the most any takes."""
    threads = [m.n_threads for m in bags]
    return 0 if 0 in threads else max(threads)


# (a keyed jagged tensor, or its to_dict() of jagged tensors, is not read: how to pass one)
_KJT_HINT = ("; for a torchrec KeyedJaggedTensor kjt pass {f: (kjt[f].values(), kjt[f].offsets()) for f in "
             "kjt.keys()}, with kjt[f].weights() third for weighted features")


class MXEmbeddingBagCollection(nn.Module):
    """Several :class:`MXEmbeddingBag` s, one per feature, looked up in one call.

    ``forward(features)`` takes a mapping ``feature -> input`` where each input is what
    :meth:`MXEmbeddingBag.forward` takes: a tuple ``(ids, offsets)`` or
    ``(ids, offsets, per_sample_weights)``, or a 2-D id tensor ``(n_bags, bag_len)``. It returns a
    dict ``feature -> (n_bags, dim)`` tensor (float32 unless cast), in the order of ``features``. Features not
    given are not looked up; an unknown feature is an error.
    """

    def __init__(self, bags: Mapping[str, MXEmbeddingBag]):
        super().__init__()
        if isinstance(bags, nn.ModuleDict):  # (torch's mapping of modules is no collections.abc.Mapping)
            bags = dict(bags.items())
        if not isinstance(bags, Mapping) or not bags:
            raise param_error("bags", "MXEmbeddingBagCollection", "be a non-empty mapping of feature -> MXEmbeddingBag", type(bags).__name__)
        for name, bag in bags.items():
            if not isinstance(name, str) or not name or "." in name:
                raise param_error("bags", "MXEmbeddingBagCollection", "have non-empty str feature names without '.'", name)
            if hasattr(nn.ModuleDict(), name):  # (torch's ModuleDict refuses them with a bare KeyError)
                raise param_error("bags", "MXEmbeddingBagCollection", "have feature names that are not attributes of "
                                  "torch's nn.ModuleDict that holds the bags (such as 'items', 'keys', 'type'): "
                                  f"rename the feature, e.g. to '{name}_'", name)
            if not isinstance(bag, MXEmbeddingBag):
                raise param_error("bags", "MXEmbeddingBagCollection", "map features to MXEmbeddingBag modules", type(bag).__name__)
        self.bags = nn.ModuleDict(dict(bags))

    @classmethod
    def from_files(cls, paths: Mapping[str, object], **kwargs) -> "MXEmbeddingBagCollection":
        """One bag per ``feature -> table file``; ``kwargs`` go to :meth:`MXEmbeddingBag.from_file`."""
        if not isinstance(paths, Mapping):
            raise param_error("paths", "MXEmbeddingBagCollection.from_files", "be a mapping of feature name -> "
                              "table file, e.g. {'user': 'user.embc'}", type(paths).__name__)
        return cls({name: MXEmbeddingBag.from_file(path, **kwargs) for name, path in paths.items()})

    @property
    def features(self) -> list[str]:
        return list(self.bags.keys())

    def forward(self, features: Mapping[str, object]) -> dict[str, Tensor]:
        where = "MXEmbeddingBagCollection.forward"
        if not isinstance(features, Mapping):
            if isinstance(features, torch.fx.Proxy):  # (torch.fx.symbolic_trace given the mapping: one call)
                return _Symbolic(features).leaf(self, (features,))
            raise param_error("features", where, "be a mapping from feature name to its input (a 2-D id tensor "
                              f"or a tuple (ids, offsets[, per_sample_weights])){_KJT_HINT}", type(features).__name__)
        bags = self.bags._modules  # (ModuleDict's __getitem__ costs a microsecond a feature)
        calls: dict[str, _Call] = {}
        out: dict[str, Tensor] = {}
        eager, everyone = _eager(), _global_hooks()
        for name, value in features.items():
            bag = bags.get(name)
            if bag is None:
                raise param_error("features", where, f"name features of this collection {self.features}", name)
            if isinstance(value, Tensor):
                args = (value, None, None)
            elif isinstance(value, (tuple, list)) and 1 <= len(value) <= 3:
                args = (*value, *(None,) * (3 - len(value)))
            elif isinstance(value, torch.fx.Proxy):  # (torch.fx.symbolic_trace: 2-D ids)
                args = (value, None, None)
            else:
                what = f"a {type(value).__name__} of {len(value)}" if isinstance(value, (tuple, list)) else type(value).__name__
                raise param_error("features", where, f"give feature {name!r} a tensor or a tuple "
                                  f"(ids, offsets[, per_sample_weights]){_KJT_HINT}", what)
            if _hooked(bag, everyone):
                out[name] = bag(*args)  # (called, so that its hooks see the call)
            else:
                try:
                    calls[name] = bag._prepare(*args, eager)
                except _Symbolic:  # (torch.fx.symbolic_trace: one call of the bag, see MXEmbeddingBag.forward)
                    out[name] = bag(*args)
        # The tables held in memory are looked up in one call: a call of its own for each feature
        # cost a model of many small tables more than the lookups. Weights that require grad, or
        # rows from a store, take their own call.
        on_arrays, on_tensors = [], []
        for name, c in calls.items():
            if bags[name]._buffers.get("records") is not None:
                if c.arrays:
                    on_arrays.append(name)
                elif not (c.weights is not None and c.weights.requires_grad and torch.is_grad_enabled()):
                    on_tensors.append(name)
        if len(on_arrays) > 1:
            ms, cs = [bags[n] for n in on_arrays], [calls[n] for n in on_arrays]
            pooled = pooled_lookup_many([m._job(c) for m, c in zip(ms, cs)], _team(ms) or None)
            out.update((n, m._cast(torch.from_numpy(t))) for n, m, t in zip(on_arrays, ms, pooled))
        if len(on_tensors) > 1:
            ms, cs = [bags[n] for n in on_tensors], [calls[n] for n in on_tensors]
            args = ([m._buffers["records"] for m in ms], [c.rows for c in cs], [c.offsets for c in cs],
                    [c.weights for c in cs], [m.fmt for m in ms], [m.embedding_dim for m in ms],
                    [m.block_size for m in ms], [m.mode for m in ms], [c.include_last for c in cs],
                    [c.keep for c in cs], _team(ms))
            direct = all(c.direct for c in cs)
            pooled = _lookup_many_op(*args) if direct else torch.ops.embcompress.pooled_lookup_many(*args)
            out.update((n, m._cast(t)) for n, m, t in zip(on_tensors, ms, pooled))
        # (in the order of 'features')
        return {name: out[name] if name in out else bags[name]._finish(calls[name]) for name in features}


def swap_embedding_bags(model: nn.Module, tables_dir, *, strict: bool = True, n_threads: int | None = None) -> list[str]:
    """Serve a trained model from the table files :func:`embcompress.export` wrote to ``tables_dir``:
    each ``nn.EmbeddingBag`` of ``model`` with a file ``<name>.embc`` (the names export gives:
    the module's path in the unwrapped model, e.g. ``emb_l.0``) is replaced, in place, by the
    :class:`MXEmbeddingBag` over that file (rows mapped, id map applied, the bag's own pooling).
    Returns the names replaced. ``strict``: every bag must have its file (checked before any is
    replaced); else bags without one stay as they are. ``nn.Embedding`` modules are left alone
    (their lookups are rows, not pooled bags).
    """
    from pathlib import Path

    from .export import _unwrap
    from .tablefile import open_table

    owner = "swap_embedding_bags"
    folder = Path(tables_dir)
    if not folder.is_dir() or next(folder.glob("*.embc"), None) is None:
        raise param_error("tables_dir", owner, "be the folder embcompress.export wrote (it holds no table files)",
                          str(folder))
    root = _unwrap(model)
    if isinstance(root, nn.EmbeddingBag):  # (it cannot replace itself in place)
        raise param_error("model", owner, "hold its bags as submodules; a bare nn.EmbeddingBag is served with "
                          f"MXEmbeddingBag.from_file({str(folder / 'weight.embc')!r}), the file export wrote for it",
                          type(model).__name__)
    bags = {name: m for name, m in root.named_modules() if isinstance(m, nn.EmbeddingBag)}
    missing = [name for name in bags if not (folder / f"{name}.embc").is_file()]
    if strict and missing:
        raise param_error("tables_dir", owner, f"hold a file for every nn.EmbeddingBag of the model; there is no "
                          f"table file for {', '.join(map(repr, missing))} in {str(folder)!r} (export them, or pass "
                          f"strict=False to leave those bags as they are)", str(folder))
    plan = {}
    for name, bag in bags.items():
        if name in missing:
            continue
        t = open_table(folder / f"{name}.embc")
        rows, dim = t.table.shape
        want = (bag.num_embeddings, bag.embedding_dim)
        if dim != want[1] or (t.id_map is None and rows != want[0]):
            raise param_error("tables_dir", owner, f"hold the tables of this model; the file of {name!r} holds a "
                              f"{rows} x {dim} table, the bag is {want[0]} x {want[1]}", str(folder))
        recorded = t.header["inputs"]
        for key, own in (("mode", bag.mode), ("include_last_offset", bag.include_last_offset)):
            if recorded.get(key, own) != own:
                raise param_error("tables_dir", owner, f"hold the tables of this model; the file of {name!r} was "
                                  f"exported from a bag with {key}={recorded[key]!r}, this bag has {own!r}", str(folder))
        # rows stored unscaled would be served where the bag scaled them to its max_norm (or the other way)
        stored = ((float(recorded["max_norm"]), float(recorded["norm_type"])) if "max_norm" in recorded else None)
        own = None if bag.max_norm is None else (float(bag.max_norm), float(bag.norm_type))
        if stored != own:
            said, has = ("no max_norm" if x is None else "max_norm={:g}, norm_type={:g}".format(*x) for x in (stored, own))
            fix = (f"export with {has} (--max-norm {own[0]:g} --norm-type {own[1]:g}) or export the model itself"
                   if own else "export the table of this bag")
            raise param_error("tables_dir", owner, f"hold the tables of this model; the file of {name!r} was "
                              f"exported with {said}, this bag has {has}: {fix}", str(folder))
        pad = _RECORDED if "padding_idx" in recorded or "padding_row" in recorded or t.id_map is not None else bag.padding_idx
        plan[name] = (folder / f"{name}.embc", bag.mode, bag.include_last_offset, pad)
    for name, (path, mode, last, pad) in plan.items():
        parent, _, leaf = name.rpartition(".")
        setattr(root.get_submodule(parent) if parent else root, leaf,
                MXEmbeddingBag.from_file(path, mode=mode, include_last_offset=last, n_threads=n_threads, padding_idx=pad))
    return list(plan)
