"""Fuzz table files: flip, overwrite, cut and extend bytes. Opening never crashes or raises
anything but an ArtifactError, and under a full verify never returns rows, an id map or
frequencies that differ from what was written."""

import numpy as np
import pytest

import embcompress
from embcompress import ArtifactError, open_table
from embcompress.idmap import IdMap

N_CASES = 400


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    rng = np.random.default_rng(0)
    q = embcompress.quantize(rng.standard_normal((40, 24)).astype(np.float32), "mx6")
    idm = IdMap.from_arrays(rng.choice(10**9, 30, replace=False), rng.integers(0, 40, 30), 40, seed=5)
    path = embcompress.write_table(tmp_path_factory.mktemp("fuzz") / "t.embc", q, id_map=idm, frequencies=np.arange(40))
    return path, path.read_bytes(), q, idm


def mutate(raw: bytes, rng) -> bytes:
    b = bytearray(raw)
    kind = rng.integers(5)
    if kind == 0:  # flip 1-3 bits anywhere
        for pos in rng.integers(0, len(b), rng.integers(1, 4)):
            b[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # flip a bit in the first 4 KiB: prefix and header
        b[int(rng.integers(0, 4096))] ^= 1 << int(rng.integers(8))
    elif kind == 2:  # cut the file short
        del b[int(rng.integers(0, len(b))):]
    elif kind == 3:  # extend it
        b += rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
    else:  # overwrite a run with random bytes
        start = int(rng.integers(0, len(b)))
        run = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        b[start : start + len(run)] = run
    return bytes(b)


def test_fuzzed_files_fail_clearly_or_read_exactly(original, tmp_path):
    path, raw, q, idm = original
    probe = np.array(list(idm.ids) + [3, -7, 2**40])
    rng = np.random.default_rng(1)
    rejected = 0
    for case in range(N_CASES):
        data = mutate(raw, rng)
        if data == raw:
            continue
        f = tmp_path / f"c{case % 8}.embc"
        f.write_bytes(data)
        try:
            t = open_table(f, verify="full")
        except ArtifactError:
            rejected += 1
        else:  # accepted under full verify: must be exactly what was written
            assert np.array_equal(t.data, q.data), case
            assert np.array_equal(t.frequencies, np.arange(40)), case
            assert np.array_equal(t.id_map.lookup(probe), idm.lookup(probe)), case
        # a header-only open may miss data corruption but must not crash, and the kernel reads
        # whatever bytes the rows hold without faulting
        try:
            t = open_table(f, verify="header", mmap=bool(case % 2))
        except ArtifactError:
            continue
        out = t.pooled_lookup(np.array([0, 39, 7]), np.array([0, 1]))
        assert out.shape == (2, 24)
    assert rejected > N_CASES * 0.9  # nearly every mutation changes a checked byte
