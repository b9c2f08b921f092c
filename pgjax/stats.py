"""Aggregate statistics over runs: the interquartile mean and its bootstrap confidence interval.

The method of rliable (Agarwal et al., *Deep Reinforcement Learning at the Edge of the
Statistical Precipice*, NeurIPS 2021, https://arxiv.org/abs/2108.13264): the interquartile
mean (IQM) is the mean of the middle 50% of the runs' scores, robust to an outlier seed
where the mean is not and less wasteful than the median; its 95% confidence interval is the
percentile bootstrap over runs. Host-side NumPy, float64; nothing here is traced.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Estimate(NamedTuple):
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float


def iqm(scores, axis: int = -1) -> np.ndarray:
    """The interquartile mean of ``scores`` along ``axis``.

    ``floor(n / 4)`` scores are cut from each end of the sorted ``n`` and the rest averaged,
    as ``scipy.stats.trim_mean(scores, 0.25)`` (rliable's IQM) does: 4 runs give the mean of
    the middle 2, 3 or fewer runs the plain mean.

    Examples:
      >>> float(iqm([1.0, 2.0, 3.0, 100.0]))
      2.5
    """
    x = np.sort(np.asarray(scores, np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm: no scores")
    cut = n // 4
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def iqm_ci(scores, *, confidence: float = 0.95, resamples: int = 2000,
           seed: int = 0) -> Estimate:
    """The IQM of ``scores`` ``[R]`` (one per run) with a percentile-bootstrap interval.

    Each of ``resamples`` bootstrap samples draws ``R`` runs with replacement; the interval
    is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of their IQMs
    (rliable's default, percentile method). Deterministic for a given ``seed``. With one
    run the interval is that run's score.

    Examples:
      >>> estimate = iqm_ci([10.0, 12.0, 11.0, 50.0])
      >>> estimate.value, estimate.low <= estimate.value <= estimate.high
      (11.5, True)
    """
    x = np.asarray(scores, np.float64).reshape(-1)
    if not 0 < confidence < 1:
        raise ValueError(f"iqm_ci: confidence={confidence}: must be in (0, 1)")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(resamples, x.size))]
    low, high = np.quantile(iqm(samples, axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    return Estimate(float(iqm(x)), float(low), float(high))


def summarize(scores) -> dict[str, float | None]:
    """``mean``, ``std``, ``iqm``, ``iqm_low`` and ``iqm_high`` of ``scores`` ``[R]`` (the
    finite ones; all None when none is finite), as the tables and JSON files report them."""
    x = np.asarray(scores, np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return dict.fromkeys(("mean", "std", "iqm", "iqm_low", "iqm_high"))
    estimate = iqm_ci(x)
    return {"mean": float(x.mean()), "std": float(x.std()), "iqm": estimate.value,
            "iqm_low": estimate.low, "iqm_high": estimate.high}
