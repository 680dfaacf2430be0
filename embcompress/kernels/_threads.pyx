# OpenMP's view of the thread count, so n_threads=None honours OMP_NUM_THREADS as the kernels do.
# Written against _OPENMP so the module also builds where the compiler has no OpenMP.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int embc_max_threads(void) { return omp_get_max_threads(); }
    static int embc_openmp(void) { return 1; }
    #else
    static int embc_max_threads(void) { return 1; }
    static int embc_openmp(void) { return 0; }
    #endif
    """
    int embc_max_threads()
    int embc_openmp()


def max_threads():
    """omp_get_max_threads(): OMP_NUM_THREADS, or the cores OpenMP sees."""
    return embc_max_threads()


def has_openmp():
    """Whether the kernels were built with OpenMP."""
    return bool(embc_openmp())
