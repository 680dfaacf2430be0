"""Review of pooled_lookup: adversarial inputs on both backends and against torch, and a lookup in
a process forked after the parent's lookups ran on several threads."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import embcompress
from embcompress.formats import FORMATS, decode_records
from embcompress.kernels import compiled
from embcompress.kernels.lookup import pooled_lookup
from embcompress.table import QuantizedTable
from tests.conftest import pooled_lookup_on as run
from tests.conftest import quantize_default as quantize

torch = pytest.importorskip("torch")
F = torch.nn.functional


def backends():
    return ["numpy"] + (["cython"] if compiled("_lookup") is not None else [])


def same(a, b):
    """Same bits, NaN where NaN (a NaN's sign and payload are not compared: see the report)."""
    nan = np.isnan(a)
    return a.shape == b.shape and np.array_equal(nan, np.isnan(b)) and np.array_equal(
        a.view(np.uint32)[~nan], b.view(np.uint32)[~nan])


def random_bags(rng, n_rows, n_bags, max_len):
    lens = rng.integers(0, max_len, n_bags)
    lens[n_bags // 2] = 0
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    return rng.integers(0, n_rows, int(lens.sum())).astype(np.int64), offsets


def _blocks(fmt):
    family = FORMATS[fmt].family
    return {"mx": [None, 8, 16, 24, 64], "bdr": [None, 8]}.get(family, [None])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_adversarial_tables_both_backends_and_torch(fmt):
    # dims on and off the multiples of 16 and 32 (fast paths, AVX-512 tails, scalar decoders);
    # rows with NaN / Inf / -Inf (nan_block), all -0.0, all -Inf, and scales far apart
    rng = np.random.default_rng(sorted(FORMATS).index(fmt))
    for dim in (7, 16, 32, 48, 96):
        for block in _blocks(fmt):
            n = 40
            x = rng.standard_normal((n, dim)).astype(np.float32) * np.exp2(rng.integers(-20, 20, (n, 1))).astype(np.float32)
            x[0] = 0.0
            x[1] = -0.0
            x[3, 0] = np.nan
            x[4, -1] = np.inf
            x[5, dim // 2] = -np.inf
            x[6] = -np.inf
            q = quantize(x, fmt, block_size=block, nonfinite="nan_block")
            with np.errstate(invalid="ignore"):  # NaN rows decode to NaN
                rows = torch.from_numpy(decode_records(q.data, q.fmt, dim, q.block_size))
            idx, offs = random_bags(rng, n, 60, 6)
            idx[:8] = [3, 6, 1, 0, 6, 3, 5, 4]  # NaN / -Inf rows first and later in a bag
            w = rng.standard_normal(len(idx)).astype(np.float32)
            w[:5] = [np.nan, np.inf, -0.0, -np.inf, 0.0]
            for mode, weights in (("sum", None), ("sum", w), ("mean", None), ("max", None)):
                outs = [run(b, q, idx, offs, mode=mode, per_sample_weights=weights, n_threads=2) for b in backends()]
                assert all(same(outs[0], o) for o in outs[1:]), (fmt, dim, block, mode)
                want = F.embedding_bag(torch.from_numpy(idx), rows, torch.from_numpy(offs), mode=mode,
                                       per_sample_weights=None if weights is None else torch.from_numpy(weights)).numpy()
                if weights is None:  # torch pools unweighted bags in the same order: the same bits
                    assert same(outs[0], want), (fmt, dim, block, mode)
                else:  # torch may fuse w * v + acc; the kernel rounds the product first (README)
                    np.testing.assert_allclose(outs[0], want, rtol=1e-5, atol=1e-5 * float(np.nanmax(np.abs(
                        np.where(np.isfinite(want), want, 0))) + 1e-30))


@pytest.mark.parametrize("fmt", ["mxfp4_e2m1", "mxfp8_e5m2", "int4_rowwise", "mx4", "fp16"])
def test_long_bags_across_run_boundaries_any_threads_and_index_types(fmt):
    # bags of up to 100 rows (past both prefetch distances), 33 to 300 bags (several runs of 32),
    # thread counts not dividing the runs; uint64 / int32 / read-only / strided inputs
    rng = np.random.default_rng(7)
    n, dim = 3000, 64
    spec = FORMATS[fmt]
    data = rng.integers(0, 256, (n, spec.row_bytes(dim)), dtype=np.uint8)
    if spec.family == "rowwise":
        data[:, :4] = rng.standard_normal((n, 2)).astype(np.float16).view(np.uint8)
    q = QuantizedTable(data, fmt, (n, dim), block_size=spec.block_size)
    for n_bags in (33, 65, 300):
        idx, offs = random_bags(rng, n, n_bags, 100)
        idx[-1] = n - 1
        w = rng.standard_normal(len(idx)).astype(np.float32)
        for mode, weights in (("sum", None), ("sum", w), ("mean", None), ("max", None)):
            want = run("numpy", q, idx, offs, mode=mode, per_sample_weights=weights)
            strided = np.repeat(idx, 2)[::2]
            ro = idx.astype(np.uint64)
            ro.flags.writeable = False
            for b in backends():
                for t in (1, 2, 3, 5):
                    for i, o in ((ro, offs.astype(np.int32)), (strided, offs)):
                        got = run(b, q, i, o, mode=mode, per_sample_weights=weights, n_threads=t)
                        assert same(got, want), (fmt, n_bags, mode, b, t)


def test_many_python_threads_on_one_table_file(tmp_path):
    rng = np.random.default_rng(11)
    q = quantize(rng.standard_normal((2000, 64)).astype(np.float32), "mxfp8_e4m3")
    embcompress.write_table(tmp_path / "t.embc", q)
    tables = [q, embcompress.open_table(tmp_path / "t.embc")]
    jobs = []
    for k in range(12):
        idx, offs = random_bags(rng, 2000, 500, 40)
        mode = ("sum", "mean", "max")[k % 3]
        jobs.append((idx, offs, mode, pooled_lookup(q, idx, offs, mode=mode, n_threads=1)))
    bad = []

    def worker(k):
        for r in range(3):
            for j, (idx, offs, mode, want) in enumerate(jobs):
                if not same(pooled_lookup(tables[(k + r) % 2], idx, offs, mode=mode, n_threads=2), want):
                    bad.append((k, j))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import numpy as np
    import embcompress
    from embcompress.kernels.lookup import pooled_lookup

    rng = np.random.default_rng(0)
    q = embcompress.quantize(rng.standard_normal((1000, 64)).astype(np.float32), "mxfp4_e2m1")
    idx = rng.integers(0, 1000, 200_000)
    offs = np.arange(0, 200_000, 20)
    want = pooled_lookup(q, idx, offs, n_threads=2)  # the parent runs OpenMP teams of 2

    def child(n_threads):
        return np.array_equal(pooled_lookup(q, idx, offs, n_threads=n_threads), want)

    if __name__ == "__main__":
        with mp.get_context("fork").Pool(2) as pool:  # as a torch DataLoader's workers are made
            print(pool.map(child, [2, None]))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_lookup_in_a_process_forked_after_threaded_lookups(tmp_path):
    # libgomp is not fork-safe: a child forked after the parent ran OpenMP teams waited forever in
    # its first team of more than one thread (any n_threads > 1, and None on a multi-core box).
    script = tmp_path / "fork_lookup.py"
    script.write_text(FORK_SCRIPT)
    # its own session, so that a hung pool's workers can be ended with it (a deadlock guard: the
    # script takes a few seconds)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("a lookup in a forked child never returned (OpenMP team after fork)")
    assert proc.returncode == 0, err
    assert out.strip() == "[True, True]", out
