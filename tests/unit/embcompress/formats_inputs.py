"""Adversarial float32 tables for the codec tests (shared by the formats test files)."""

import numpy as np


def adversarial_table(seed: int = 0, n: int = 64, dim: int = 96) -> np.ndarray:
    """Rows that stress every rounding rule: powers of two and their neighbours, fp32 subnormals,
    signed zeros, the float32 extremes, exact ties on many grids, huge ranges inside a block."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    pool = [
        np.ldexp(f32(1), rng.integers(-149, 128, 64)).astype(f32),  # powers of two, subnormal to max
        np.nextafter(np.ldexp(f32(1), rng.integers(-125, 128, 64)).astype(f32), f32(0)),  # one ulp below
        (rng.integers(1, 64, 64) + 0.5).astype(f32) * np.ldexp(f32(1), rng.integers(-12, 4, 64)).astype(f32),  # ties
        rng.integers(1, 1 << 23, 64).astype(np.uint32).view(f32),  # fp32 subnormals
        np.array([0.0, -0.0, 3.4028235e38, -3.4028235e38, 1.1754944e-38, 1e-45, -1e-45, 448, 480, 464, 57344, 61440, 6, 7, 5, 28, 30, 7.5, 7.75], f32),
        (rng.standard_normal(64) * np.exp(rng.uniform(-60, 60, 64))).astype(f32),
    ]
    pool = np.concatenate(pool)
    x = rng.choice(pool, size=(n, dim)) * rng.choice(np.array([1, -1], f32), size=(n, dim))
    x[0] = 0.0
    x[1] = -0.0
    x[2] = rng.choice(pool[64 * 3 : 64 * 4], dim)  # a row of subnormals only
    x[3, :] = f32(1.5)  # constant row
    x[4] = (rng.standard_normal(dim) * 1e-3).astype(f32)
    x[4, ::17] = f32(1e4)  # outliers inside blocks
    x[5] = np.nextafter(f32(2), f32(0))  # amax one ulp below a power of two
    return x.astype(f32)


def random_table(seed: int = 0, n: int = 200, dim: int = 100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)) * np.exp(rng.normal(0, 3, (n, 1)))).astype(np.float32)
