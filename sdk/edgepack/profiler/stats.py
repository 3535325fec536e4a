"""Latency statistics: percentiles, spread, and whether a measurement is steady enough to trust."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

# A run-to-run coefficient of variation above this means the machine was busy (other processes,
# frequency scaling, thermal throttling) and a percentile moves by about as much between repeats.
NOISY_CV = 0.10
# Fewer measured runs than this and the median itself moves with one slow run.
MIN_RUNS = 10


@dataclass(frozen=True)
class LatencyStats:
    """Summary of measured latencies in seconds. Percentiles interpolate linearly between order
    statistics (numpy's default), so p50 of an even count is the mean of the two middle runs."""
    runs: int
    mean_s: float
    std_s: float          # sample standard deviation (n - 1); 0 for a single run
    cv: float             # std / mean
    min_s: float
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    max_s: float
    warnings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside [0, 100]")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def summarize(latencies_s: Sequence[float]) -> LatencyStats:
    """Percentiles, mean, spread and trust warnings of measured latencies (seconds)."""
    if len(latencies_s) == 0:
        raise ValueError("no latencies to summarize: the measurement has no runs")
    x = np.asarray(latencies_s, dtype=np.float64)
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("latencies must be finite and non-negative")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    cv = std / mean if mean > 0 else 0.0
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, [50, 90, 95, 99]))
    return LatencyStats(runs=int(x.size), mean_s=mean, std_s=std, cv=cv, min_s=float(x.min()), p50_s=p50,
                        p90_s=p90, p95_s=p95, p99_s=p99, max_s=float(x.max()),
                        warnings=tuple(noise_warnings(int(x.size), cv)))


def noise_warnings(runs: int, cv: float) -> list[str]:
    """Why a measurement should not be trusted, one sentence each (empty when it looks steady)."""
    found = []
    if runs < MIN_RUNS:
        found.append(f"only {runs} measured run{'s' if runs != 1 else ''}: at least {MIN_RUNS} are needed for a "
                     "stable median (raise --runs)")
    if cv > NOISY_CV:
        found.append(f"run-to-run variation is {cv:.0%} (coefficient of variation > {NOISY_CV:.0%}): too noisy to "
                     "trust; close other programs, pin the CPUs (--pin), or add runs and a cool-down")
    return found


def histogram(samples: Sequence[float], bins: int = 20) -> tuple[list[int], list[float]]:
    """(counts, bin edges) over [min, max]; one bin when every sample is equal."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return [], []
    if float(x.max()) == float(x.min()):
        return [int(x.size)], [float(x.min()), float(x.max())]
    counts, edges = np.histogram(x, bins=max(1, min(bins, int(math.sqrt(x.size)) + 1)))
    return [int(c) for c in counts], [float(e) for e in edges]
