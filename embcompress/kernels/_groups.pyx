# Capacity-bounded union-find for the co-access layout (embcompress/store/placement.py): rows join
# along co-access edges, heaviest first, while the union still fits a block. In Python the loop
# over the edges took about a microsecond an edge (14 s for 14M pairs). The Python twin is
# placement._union_groups_python; tests run both and compare the roots.
from libc.stdint cimport int64_t


cdef inline int64_t _find(int64_t[::1] parent, int64_t x) noexcept nogil:
    cdef int64_t root = x, nxt
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression: later finds are one step
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


def union_bounded(const int64_t[::1] a, const int64_t[::1] b, int64_t cap, int64_t[::1] parent,
                  int64_t[::1] size):
    """Merge along the edges ``(a[e], b[e])`` in order where the union holds at most ``cap`` nodes;
    then ``parent[x]`` is the root of ``x``'s group. ``parent`` (``arange(n)``) and ``size``
    (ones) come initialized; every ``a``, ``b`` lies in ``[0, n)`` (checked here). The root of a
    union is the larger side's, the first edge end's on a tie, as the Python twin takes it."""
    cdef Py_ssize_t e, n = parent.shape[0], n_e = a.shape[0]
    cdef int64_t ra, rb, t
    if b.shape[0] != n_e or size.shape[0] != n:
        raise ValueError("union_bounded: a and b are edges of one length, size one a node")
    with nogil:
        for e in range(n_e):
            if a[e] < 0 or a[e] >= n or b[e] < 0 or b[e] >= n:
                with gil:
                    raise ValueError(f"union_bounded: edge {e} names a node outside [0, {n})")
            ra = _find(parent, a[e])
            rb = _find(parent, b[e])
            if ra != rb and size[ra] + size[rb] <= cap:
                if size[ra] < size[rb]:
                    t = ra
                    ra = rb
                    rb = t
                parent[rb] = ra
                size[ra] += size[rb]
        for e in range(n):
            parent[e] = _find(parent, e)
