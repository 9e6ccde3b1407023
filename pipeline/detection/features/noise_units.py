"""The yardsticks every feature is measured in: how surprising a count is against what was
usual, as a one-sided normal z (>= 0, capped at ``CAP``), from the exact binomial or (over-
dispersed) Poisson tail rather than a normal approximation, which overstates rare counts."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from pipeline.detection.features.config import CAP


def binomial_excess(successes, trials, rate) -> np.ndarray:
    """How surprising ``successes`` out of ``trials`` is at ``rate``, as a one-sided z (>= 0):
    the binomial upper tail turned into normal units (the normal approximation overstates rare
    counts such as three voids in twenty sales)."""
    k = np.asarray(successes, dtype=float)
    n = np.maximum(np.asarray(trials, dtype=float), k)
    p = np.clip(np.asarray(rate, dtype=float) * 1.25, 0.01, 0.9)
    tail = stats.binom.sf(k - 1, n, p)
    return np.clip(np.nan_to_num(stats.norm.isf(np.clip(tail, 1e-300, 1.0)), nan=0.0), 0, CAP)


def poisson_shortfall(observed, expected, dispersion) -> np.ndarray:
    """One-sided z of seeing ``observed`` or less where ``expected`` was usual: the Poisson lower
    tail (variance inflated by ``dispersion``^2), continuous in ``observed`` through the
    regularised gamma function, turned into normal units (>= 0)."""
    d2 = np.asarray(dispersion, dtype=float) ** 2
    k = np.asarray(observed, dtype=float) / d2
    mu = np.asarray(expected, dtype=float) / d2
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = special.gammaincc(k + 1, np.maximum(mu, 0))
        z = stats.norm.isf(np.clip(tail, 1e-300, 1.0))
    return np.clip(np.where(mu > 0, np.nan_to_num(z, nan=0.0), 0.0), 0, CAP)


def poisson_surplus(observed, expected, dispersion) -> np.ndarray:
    """One-sided z of seeing ``observed`` or more where ``expected`` was usual (>= 0)."""
    d2 = np.asarray(dispersion, dtype=float) ** 2
    k = np.asarray(observed, dtype=float) / d2
    mu = np.asarray(expected, dtype=float) / d2
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = special.gammainc(np.maximum(k, 1e-9), np.maximum(mu, 0))
        z = stats.norm.isf(np.clip(tail, 1e-300, 1.0))
    return np.clip(np.where((mu > 0) & (k > 0), np.nan_to_num(z, nan=0.0), 0.0), 0, CAP)


def binomial_shortfall(
    successes, trials, rate, *, slack: float = 0.03, min_trials: int = 5
) -> np.ndarray:
    """How surprising so few ``successes`` out of ``trials`` are at ``rate`` (less ``slack``, for
    day-to-day drift of a payment mix), as a one-sided z (>= 0); needs ``min_trials``."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    p = np.clip(np.asarray(rate, dtype=float) - slack, 0.01, 0.99)
    with np.errstate(invalid="ignore"):
        tail = stats.binom.cdf(k, n, p)
        z = stats.norm.isf(np.clip(tail, 1e-300, 1.0))
    ok = (n >= min_trials) & np.isfinite(p)
    return np.clip(np.where(ok, np.nan_to_num(z, nan=0.0), 0.0), 0, CAP)
