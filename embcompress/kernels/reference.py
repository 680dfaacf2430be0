"""NumPy twin of the compiled pooled lookup (``_lookup.pyx``): the oracle tests hold it to, and
the fallback when the kernel is not built.

It decodes the gathered row records with the codec's own ``decode_records`` and then pools in
float32 in exactly the compiled kernel's order, so both give the same bits:

- sum / mean: each output element starts at +0.0 and adds its bag's rows in index order
  (``acc + w * v`` as a rounded product then a rounded sum when weighted); a mean then divides
  by the bag's length;
- max: starts from the bag's first row, then ``acc = v if v > acc else acc`` (torch's rule: a NaN
  is kept from the first row and never taken from a later one);
- an empty bag gives zeros.

Inputs are trusted: ``embcompress.kernels.lookup.pooled_lookup`` checks them once.
"""

from __future__ import annotations

import numpy as np

# Values decoded at once (rows times dim): bounds the temporary float32 block to ~32 MiB at any
# width (65,536 rows at dim 128; a count of rows alone gave 1 GiB at dim 4,096).
_CHUNK_VALUES = 1 << 23


def pool(data, fmt: str, dim: int, block_size, indices, offsets, weights, mode: str, out) -> None:
    """Pool bags ``offsets[b]:offsets[b+1]`` of ``indices`` into ``out[b]`` (trusted inputs).

    ``data`` is the table's row records (uint8, ``(n_rows, row_bytes)``), ``offsets`` holds
    ``n_bags + 1`` int64 boundaries, ``weights`` is float32 per index or None.
    """
    from ..formats import decode_records

    with np.errstate(all="ignore"):  # Inf and NaN rows pool as IEEE says, like the compiled kernel
        _pool(decode_records, data, fmt, dim, block_size, indices, offsets, weights, mode, out)


def _pool(decode_records, data, fmt, dim, block_size, indices, offsets, weights, mode, out) -> None:
    out[...] = 0.0
    n_bags = len(offsets) - 1
    if n_bags == 0 or dim == 0:
        return
    lengths = np.diff(offsets)
    # Bags in chunks of about chunk_rows decoded rows (a bag longer than that alone); within a
    # chunk, bag positions in order.
    chunk_rows = max(1, _CHUNK_VALUES // dim)
    bag = 0
    while bag < n_bags:
        stop = int(np.searchsorted(offsets, offsets[bag] + chunk_rows, side="right")) - 1
        stop = min(max(stop, bag + 1), n_bags)
        lo, hi = int(offsets[bag]), int(offsets[stop])
        vals = decode_records(np.asarray(data[indices[lo:hi]]), fmt, dim, block_size)
        starts = offsets[bag:stop] - lo
        lens = lengths[bag:stop]
        acc = out[bag:stop]
        for p in range(int(lens.max()) if len(lens) else 0):
            sel = np.flatnonzero(lens > p)
            v = vals[starts[sel] + p]
            if mode == "max":
                if p == 0:
                    acc[sel] = v
                else:
                    a = acc[sel]
                    acc[sel] = np.where(v > a, v, a)
            else:
                if weights is not None:
                    v = weights[lo + starts[sel] + p][:, None] * v
                acc[sel] = acc[sel] + v
        if mode == "mean":
            nz = lens > 0
            acc[nz] = acc[nz] / lens[nz].astype(np.float32)[:, None]
        bag = stop
