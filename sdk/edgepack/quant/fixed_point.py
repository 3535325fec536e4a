"""Fixed-point requantization, defined once here and mirrored bit for bit by the C++ kernels
(native/kernels/ref/quant_util.h). See docs/quantization.md.

A real multiplier r > 0 is stored as (M, shift) with r ~= M * 2^(shift - 31), M in [2^30, 2^31).
Applying it to an integer x uses a single rounding (TFLite's TFLITE_SINGLE_ROUNDING form):

    total = 31 - shift                       (>= 1: multipliers are < 2^30)
    y = (x * M + 2^(total - 1)) >> total     (int64 arithmetic, arithmetic shift: rounds half up)
"""
from __future__ import annotations

import math

import numpy as np

ADD_LEFT_SHIFT = 20   # headroom bits for int8 Add (the TFLite reference value)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(M, shift) for a real multiplier in [0, 2^30)."""
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"requantization multiplier must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    mantissa, exponent = math.frexp(real)          # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    q = int(math.floor(mantissa * (1 << 31) + 0.5))
    if q == 1 << 31:
        q //= 2
        exponent += 1
    if exponent > 30:
        raise ValueError(f"requantization multiplier {real} is too large (>= 2^30)")
    if exponent < -31:  # below 2^-32 no int32 input rounds to a nonzero result; also keeps x*M + round < 2^63
        return 0, 0
    return q, exponent


def apply_multiplier(x: np.ndarray, multiplier: int | np.ndarray, shift: int | np.ndarray) -> np.ndarray:
    """round(x * real) for int arrays, exactly as the kernels compute it (int64 in, int64 out)."""
    x = np.asarray(x, np.int64)
    multiplier = np.asarray(multiplier, np.int64)
    total = 31 - np.asarray(shift, np.int64)
    rounding = np.left_shift(np.int64(1), total - 1)
    return (x * multiplier + rounding) >> total


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised quantize_multiplier for per-channel scales."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).reshape(-1)]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))
