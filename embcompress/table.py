"""A compressed table in memory: its row records (metadata then packed codes), format and shape.

One row is one contiguous record of ``row_bytes`` bytes (``formats/spec.py`` has the layouts), so
``data[i]`` is everything needed to decode row ``i``. The table round-trips through the artifact
container as kind ``"table"`` with one section ``"rows"`` (4096-byte aligned, so a block of rows
is one aligned read); ``to_sections`` / ``from_sections`` are what table files build on.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import ArtifactError, ConfigError, param_error
from .formats.codec import SCALE_MODES, resolve_block, unpack_records
from .formats.floats import codes_view
from .formats.spec import FORMATS, FormatSpec, get_format

TABLE_VERSION = 1
TABLE_KIND = "table"
TABLE_ALIGN = 4096


class QuantizedTable:
    """Row records of a table quantized to one format. Create with ``embcompress.quantize``.

    Attributes: ``data`` (uint8 ``(n_rows, row_bytes)``, C-contiguous, read-only), ``fmt`` (name),
    ``spec``, ``shape`` (``(n_rows, dim)``), ``block_size`` (None for row-wise and floats),
    ``scale_mode``.
    """

    __slots__ = ("_data", "_spec", "_shape", "_block", "_scale_mode")

    def __init__(self, data: np.ndarray, fmt: str, shape, *, block_size: int | None = None, scale_mode: str = "floor"):
        spec = get_format(fmt)
        try:
            n, dim = shape
        except (TypeError, ValueError):
            raise param_error("shape", "QuantizedTable", "be (n_rows, dim)", shape) from None
        if isinstance(shape, (str, bytes)) or not all(_is_int(v) for v in (n, dim)):
            # (not int() of anything: "48" was (4, 8), 4.7 was 4, and inf raised OverflowError)
            raise param_error("shape", "QuantizedTable", "be (n_rows, dim), two ints", shape)
        n, dim = int(n), int(dim)
        if n < 0 or dim < 1:
            raise param_error("shape", "QuantizedTable", "be (n_rows >= 0, dim >= 1)", shape)
        block = resolve_block(spec, block_size, "QuantizedTable")
        if not isinstance(scale_mode, str) or scale_mode not in SCALE_MODES:
            raise param_error("scale_mode", "QuantizedTable", f"be one of {SCALE_MODES}", scale_mode)
        data = np.asarray(data)
        row_bytes = spec.row_bytes(dim, block)
        if data.dtype != np.uint8 or data.shape != (n, row_bytes):
            raise param_error(
                "data", "QuantizedTable", f"be uint8 of shape ({n}, {row_bytes}) for {spec.name} rows of dim {dim}",
                f"{data.dtype} of shape {data.shape}",
            )
        data = np.ascontiguousarray(data)
        if data.flags.writeable:
            # freeze a view of our own: views (e.g. the float formats' records) stay read-only too,
            # and the caller's array object keeps its flags
            data = data.view()
            data.flags.writeable = False
        self._data, self._spec, self._shape, self._block, self._scale_mode = data, spec, (n, dim), block, scale_mode

    data = property(lambda self: self._data)
    spec: FormatSpec = property(lambda self: self._spec)
    fmt = property(lambda self: self._spec.name)
    shape = property(lambda self: self._shape)
    block_size = property(lambda self: self._block)
    scale_mode = property(lambda self: self._scale_mode)
    row_bytes = property(lambda self: self._data.shape[1])
    nbytes = property(lambda self: self._data.nbytes)

    @property
    def scales(self) -> np.ndarray:
        """Per-row metadata bytes ``(n_rows, scale_bytes)``: E8M0 scales (MX); shared exponents
        then microexponents (BDR); scale and bias (row-wise); empty for plain floats."""
        return self._data[:, : self._spec.scale_bytes(self._shape[1], self._block)]

    @property
    def codes(self) -> np.ndarray:
        """Unpacked element codes ``(n_rows, padded_dim)``: uint8 codes, or for fp16/bf16/fp32
        the values' bit patterns (uint16/uint32)."""
        if self._spec.family == "float":
            return codes_view(self._data, self._spec)
        return unpack_records(self._data, self._spec, self._shape[1], self._block)[1]

    def take(self, rows) -> "QuantizedTable":
        """A table of the given rows (int ids in ``[0, n_rows)``, or a boolean mask)."""
        try:
            rows = np.asarray(rows)
        except ValueError:  # (numpy's "inhomogeneous shape")
            raise param_error("rows", "QuantizedTable.take", "be a 1-D array of int row ids",
                              "lists of different lengths") from None
        if rows.size == 0 and rows.dtype.kind == "f":
            rows = rows.astype(np.int64)  # an empty list arrives as float64
        if rows.dtype == bool:
            if rows.shape != (self._shape[0],):
                raise param_error("rows", "QuantizedTable.take", f"be a mask of {self._shape[0]} booleans", f"shape {rows.shape}")
            rows = np.flatnonzero(rows)
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise param_error("rows", "QuantizedTable.take", "be a 1-D array of int row ids", f"{rows.dtype} of shape {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= self._shape[0]):
            raise param_error("rows", "QuantizedTable.take", f"hold ids in [0, {self._shape[0]})", f"ids from {rows.min()} to {rows.max()}")
        return QuantizedTable(
            self._data[rows], self.fmt, (rows.size, self._shape[1]), block_size=self._block, scale_mode=self._scale_mode
        )

    def dequantize(self) -> np.ndarray:
        from .formats.codec import dequantize

        return dequantize(self)

    # -- files ---------------------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "version": TABLE_VERSION,
            "format": self.fmt,
            "shape": list(self._shape),
            "block_size": self._block,
            "scale_mode": self._scale_mode,
            "row_bytes": self.row_bytes,
        }

    def to_sections(self) -> tuple[dict[str, np.ndarray], dict]:
        """``({"rows": data}, config)`` for ``write_artifact(kind="table", align=4096)``."""
        return {"rows": self._data}, self.config()

    @classmethod
    def from_sections(cls, config, sections) -> "QuantizedTable":
        """Rebuild from a table artifact's config and sections, checking they agree."""
        if not isinstance(config, dict):
            raise ArtifactError(f"A table's config must be a JSON object. Got {type(config).__name__} instead.")
        version = config.get("version")
        if not _is_int(version) or version < 1:
            raise ArtifactError(f"A table's config must carry a positive int 'version'. Got {version!r} instead.")
        if version > TABLE_VERSION:
            raise ArtifactError(
                f"The table was written with table version {version}, newer than this embcompress reads "
                f"({TABLE_VERSION}). Upgrade embcompress to read it."
            )
        fmt = config.get("format")
        if not isinstance(fmt, str) or fmt not in FORMATS:  # a list or dict is unhashable
            raise ArtifactError(f"The table's format {fmt!r} is unknown; known: {', '.join(FORMATS)}.")
        if "rows" not in sections:
            raise ArtifactError(f"A table artifact must have a 'rows' section. Got sections {sorted(sections)} instead.")
        try:
            table = cls(
                sections["rows"], fmt, config.get("shape"), block_size=config.get("block_size"),
                scale_mode=config.get("scale_mode", "floor"),
            )
        except ConfigError as exc:
            raise ArtifactError(f"The table artifact is inconsistent: {exc}") from None
        if config.get("row_bytes", table.row_bytes) != table.row_bytes:
            raise ArtifactError(
                f"The table's config records row_bytes={config.get('row_bytes')!r} but {fmt} rows of dim "
                f"{table.shape[1]} take {table.row_bytes}. The file is inconsistent; re-create it."
            )
        return table

    def save(self, path: str | os.PathLike, *, inputs: dict | None = None) -> os.PathLike:
        """Write the table to ``path`` (atomic; the artifact container, kind ``"table"``); a journal
        an interrupted update of the file it replaces left is removed."""
        from .container import write_artifact
        from .store import journal
        from .tablefile import check_table_name

        check_table_name(path)
        sections, config = self.to_sections()
        written = write_artifact(path, TABLE_KIND, sections, config=config, inputs=inputs, align=TABLE_ALIGN)
        journal.drop_replaced(written)  # an interrupted update of the file this one replaced
        return written

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: str = "header", mmap: bool = True) -> "QuantizedTable":
        """Read a table written by :meth:`save` (``verify="full"`` checks every byte).

        A journal left by an update that a failure interrupted (``TieredStore.update_rows``) is
        replayed first, as ``open_table`` does, so the rows are the update's, not half of them;
        where it cannot be, an ArtifactError names the fix.
        """
        from .container import read_artifact
        from .tablefile import journal_pending

        if journal_pending(path):
            from .store import journal

            journal.replay_before_open(path)
        art = read_artifact(path, kind=TABLE_KIND, verify=verify, mmap=mmap)
        return cls.from_sections(art.config, {name: art.array(name) for name in art.section_names})

    def __reduce__(self):
        # Copies (pickle for a worker process, copy.deepcopy) are rebuilt through __init__, which
        # checks the records and makes the copy's data read-only as the original's.
        return (_rebuild, (self._data, self.fmt, self._shape, self._block, self._scale_mode))

    def __len__(self) -> int:
        return self._shape[0]

    def __eq__(self, other) -> bool:
        if not isinstance(other, QuantizedTable):
            return NotImplemented
        return (
            self.fmt == other.fmt and self.shape == other.shape and self.block_size == other.block_size
            and np.array_equal(self._data, other._data)
        )

    __hash__ = None

    def __repr__(self) -> str:
        block = f", block_size={self._block}" if self._block else ""
        return f"QuantizedTable(fmt={self.fmt!r}, shape={self._shape}{block}, row_bytes={self.row_bytes}, nbytes={self.nbytes})"


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _rebuild(data, fmt, shape, block_size, scale_mode) -> QuantizedTable:
    """A QuantizedTable from its pickled state (see ``QuantizedTable.__reduce__``)."""
    return QuantizedTable(data, fmt, shape, block_size=block_size, scale_mode=scale_mode)
