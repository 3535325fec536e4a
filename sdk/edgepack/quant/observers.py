"""Observers: from the values a tensor takes on calibration data to the range its int8 encoding covers.

  minmax      the observed extremes (no clipping);
  percentile  the 99.99th percentile of |x| on each side (clips rare outliers);
  entropy     the TensorRT procedure: the clipping threshold whose 128-bin quantized histogram is
              closest (KL divergence) to the observed one;
  mse         the threshold minimising the expected squared quantization + clipping error.

All but minmax need a histogram, so calibration makes two passes: ranges first, then histograms over
a fixed range per tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OBSERVERS = ("minmax", "percentile", "entropy", "mse")
BINS = 2048


@dataclass
class TensorStats:
    minimum: float = np.inf
    maximum: float = -np.inf
    histogram: np.ndarray | None = None   # counts over [-edge, edge], BINS bins
    edge: float = 0.0
    count: int = 0
    has_nonfinite: bool = False
    channel_absmax: np.ndarray | None = None   # max |x| per index of the last axis (activation smoothing)

    def update_range(self, x: np.ndarray) -> None:
        if not np.all(np.isfinite(x)):
            self.has_nonfinite = True
            x = x[np.isfinite(x)]
        elif x.ndim >= 1 and x.size:
            absmax = np.abs(x.reshape(-1, x.shape[-1])).max(axis=0)
            self.channel_absmax = absmax if self.channel_absmax is None else np.maximum(self.channel_absmax, absmax)
        if x.size:
            self.minimum = min(self.minimum, float(x.min()))
            self.maximum = max(self.maximum, float(x.max()))
        self.count += 1

    def start_histogram(self) -> None:
        self.edge = max(abs(self.minimum), abs(self.maximum), 1e-8)
        self.histogram = np.zeros(BINS, np.int64)

    def update_histogram(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        counts, _ = np.histogram(x, bins=BINS, range=(-self.edge, self.edge))
        self.histogram += counts


def needs_histogram(observer: str) -> bool:
    if observer not in OBSERVERS:
        raise ValueError(f"unknown observer '{observer}'; choose one of {', '.join(OBSERVERS)}")
    return observer != "minmax"


def observed_range(stats: TensorStats, observer: str) -> tuple[float, float]:
    """(lo, hi) the int8 grid should cover; always includes 0 (so zero is exact)."""
    lo, hi = min(stats.minimum, 0.0), max(stats.maximum, 0.0)
    if observer == "minmax" or stats.histogram is None or stats.histogram.sum() == 0:
        return lo, hi
    if observer == "percentile":
        return _percentile_range(stats, 99.99)
    threshold = _entropy_threshold(stats) if observer == "entropy" else _mse_threshold(stats)
    return max(lo, -threshold), min(hi, threshold)


def _centers(stats: TensorStats) -> np.ndarray:
    width = 2 * stats.edge / BINS
    return -stats.edge + width * (np.arange(BINS) + 0.5)


def _percentile_range(stats: TensorStats, pct: float) -> tuple[float, float]:
    cdf = np.cumsum(stats.histogram) / stats.histogram.sum()
    centers = _centers(stats)
    lo = centers[min(np.searchsorted(cdf, (100 - pct) / 100), BINS - 1)]
    hi = centers[min(np.searchsorted(cdf, pct / 100), BINS - 1)]
    return min(float(lo), 0.0), max(float(hi), 0.0)


def _folded(stats: TensorStats) -> np.ndarray:
    """Histogram of |x| over [0, edge], BINS/2 bins (symmetric thresholds)."""
    half = BINS // 2
    return stats.histogram[half:] + stats.histogram[:half][::-1]


def _entropy_threshold(stats: TensorStats, levels: int = 128) -> float:
    hist = _folded(stats).astype(np.float64)
    n = hist.size
    best, best_kl = n, np.inf
    for i in range(levels, n + 1, 8):
        reference = hist[:i].copy()
        reference[i - 1] += hist[i:].sum()          # outliers clip into the last bin
        # quantize the first i bins into `levels` groups, expanding back over the non-empty bins
        groups = np.array_split(np.arange(i), levels)
        candidate = np.zeros(i)
        for g in groups:
            nonzero = hist[g] > 0
            if nonzero.any():
                candidate[g[nonzero]] = hist[g].sum() / nonzero.sum()
        p = reference / reference.sum()
        q = candidate / max(candidate.sum(), 1e-12)
        mask = p > 0
        kl = np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12)))
        if kl < best_kl:
            best, best_kl = i, kl
    return stats.edge * best / n


def _mse_threshold(stats: TensorStats) -> float:
    hist = _folded(stats).astype(np.float64)
    n = hist.size
    centers = (np.arange(n) + 0.5) * stats.edge / n
    best, best_err = stats.edge, np.inf
    for i in range(16, n + 1, 8):
        threshold = stats.edge * i / n
        step = threshold / 127
        clipped = np.minimum(centers, threshold)
        err = np.sum(hist * ((centers - clipped) ** 2 + (centers <= threshold) * step ** 2 / 12))
        if err < best_err:
            best, best_err = threshold, err
    return best


def asymmetric_params(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point covering [lo, hi] (lo <= 0 <= hi), zero exactly representable."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        return 1.0, 0
    scale = (hi - lo) / 255.0
    zero_point = int(np.clip(np.rint(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zero_point
