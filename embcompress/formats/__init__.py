"""Number formats: the registry, the codecs and the exporters.

``quantize(x, fmt)`` -> :class:`~embcompress.table.QuantizedTable`; ``dequantize(q)`` -> float32;
``decode_records`` is the NumPy reference decode of row records that the lookup kernel matches.
Format names and row-record layouts live in ``spec.py``.
"""

from .codec import decode_records, dequantize, quantize
from .rowwise import to_torch_packed
from .spec import FORMATS, FormatSpec, get_format

__all__ = ["FORMATS", "FormatSpec", "decode_records", "dequantize", "get_format", "quantize", "to_torch_packed"]
