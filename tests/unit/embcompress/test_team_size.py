"""A kernel's thread count by its work: embcompress.kernels.team_size."""

import numpy as np
import pytest

import embcompress.kernels
from embcompress.formats import codec, quantize
from embcompress.kernels import team_size


@pytest.fixture
def real_rule(monkeypatch):
    monkeypatch.setattr(embcompress.kernels, "MIN_THREAD_SECONDS", 25e-6)  # conftest sets 0


def test_one_thread_per_25_us_of_work_and_never_more_than_asked(real_rule):
    assert team_size(2, 0, 1e-6) == 1 and team_size(2, 49, 1e-6) == 1  # 49 us: one thread
    assert team_size(2, 50, 1e-6) == 2 and team_size(2, 10**9, 1e-6) == 2 and team_size(1, 10**9, 1e-6) == 1
    assert team_size(8, 125, 1e-6) == 5
    with pytest.raises(embcompress.ConfigError, match="n_threads"):
        team_size(0, 10**6, 1e-6)


def test_quantizing_a_few_rows_runs_on_one_thread(real_rule, monkeypatch):
    # update_rows quantizes a handful of rows: no team for that (team_size by elements)
    seen = []

    def spy(n_threads, n_items, item_seconds):
        seen.append(real(n_threads, n_items, item_seconds))
        return seen[-1]

    real = codec.team_size
    monkeypatch.setattr(codec, "team_size", spy)
    quantize(np.ones((4, 64), np.float32), "mxint8", n_threads=2)
    quantize(np.ones((1024, 64), np.float32), "mxint8", n_threads=2)
    assert seen == [1, 2]


def test_id_map_lookups_take_threads_by_their_ids(real_rule, monkeypatch):
    # an id map lookup of a one-bag call woke a team of every core (p99 of 12-16 ms under load)
    from embcompress import idmap
    from embcompress.idmap import IdMap

    m = IdMap.from_arrays(np.arange(0, 2000, 2), np.arange(1000) % 64, 64, seed=0)
    seen = []
    real = idmap._lookup

    def spy(*args):
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(idmap, "_lookup", spy)
    m.lookup(np.arange(32), n_threads=2)
    m.lookup(np.arange(8192), n_threads=2)
    assert seen == [1, 2]


def test_string_id_hashing_takes_threads_by_its_strings(real_rule, monkeypatch):
    from embcompress import idhash

    mod = embcompress.kernels.compiled("_idhash")
    if mod is None:
        pytest.skip("compiled kernels not built")
    seen = []

    class Spy:
        def fnv1a_fmix(self, offsets, data, out, threads):
            seen.append(threads)
            return mod.fnv1a_fmix(offsets, data, out, threads)

    monkeypatch.setattr(embcompress.kernels, "compiled", lambda name: Spy() if name == "_idhash" else None)
    few = idhash._fnv1a_fmix(np.array([0, 1, 2]), np.frombuffer(b"ab", np.uint8))
    assert seen == [1] and few.shape == (2,)


def test_never_more_than_a_few_threads_a_core(real_rule):
    # OpenMP sets up every thread asked for (200,000 crashed the process)
    assert team_size(200_000, 10**12, 1e-6) == embcompress.kernels.MAX_THREADS
