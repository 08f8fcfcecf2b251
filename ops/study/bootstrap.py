"""The stationary bootstrap and its automatic block length.

* Politis, D. N. & Romano, J. P. (1994), "The Stationary Bootstrap", JASA 89(428), 1303-1313.
  A resample of ``x_0 .. x_{n-1}`` is a chain of blocks ``x_I, x_{I+1}, .., x_{I+L-1}``, indices
  taken modulo ``n`` (the series wrapped around a circle), each start ``I`` uniform on
  ``0 .. n-1`` and each length ``L`` geometric, ``P(L = k) = p (1 - p)^(k-1)``, of mean ``1/p``
  (section 2 of the paper).  Equivalently, and so generated here: the first index is uniform,
  and each next index is, with probability ``p``, a fresh uniform draw (a new block) and
  otherwise the previous index plus one, modulo ``n``.  Given the data the resampled series is
  stationary (shown in the paper's section 2): every index is uniform on ``0 .. n-1``, and
  the bootstrap variance of the mean has the closed form of the paper's Lemma 1.
* Politis, D. N. & White, H. (2004), "Automatic Block-Length Selection for the Dependent
  Bootstrap", Econometric Reviews 23(1), 53-70, with the correction of Patton, A., Politis,
  D. N. & White, H. (2009), Econometric Reviews 28(4), 372-375: the block length that minimises
  the mean squared error of the bootstrap variance of the mean, estimated with the flat-top lag
  window (``optimal_block_length``).

Confidence intervals are Efron's percentile intervals of the bootstrap replicates.  The
replicates are drawn in chunks of a fixed size, so the same inputs and seed give the same
interval.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

# A statistic maps an array (k, n) to k values, one per row, reducing over the last axis;
# e.g. ``lambda x: x.mean(axis=-1)``.
Statistic = Callable[[np.ndarray], np.ndarray]

# Elements of resampled data held at once: replicates are drawn in chunks of this many values.
_CHUNK_ELEMENTS = 1 << 22


def as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    """``rng`` itself, or a new ``Generator`` seeded with the int ``rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng: expected a numpy Generator or an int seed, found {type(rng).__name__}")


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, found {value!r}")
    return int(value)


def _mean_block(mean_block: float) -> float:
    try:
        b = float(mean_block)
    except (TypeError, ValueError):
        b = math.nan
    if not (math.isfinite(b) and b >= 1.0):
        raise ValueError(f"mean_block: expected a finite mean block length >= 1 (p = 1/mean_block "
                         f"in (0, 1]), found {mean_block!r}")
    return b


def _series(name: str, x: object, minimum: int = 2) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or len(arr) < minimum:
        raise ValueError(f"{name}: expected a 1-D series of at least {minimum} values, found shape "
                         f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, found {int(np.sum(~np.isfinite(arr)))} "
                         f"NaN or infinite")
    return arr


def stationary_bootstrap_indices(n: int, mean_block: float, n_boot: int,
                                 rng: np.random.Generator | int) -> np.ndarray:
    """Indices ``(n_boot, n)`` of ``n_boot`` stationary-bootstrap resamples of a length-``n``
    series (Politis & Romano 1994, section 2): geometric blocks of mean ``mean_block`` (``1/p``),
    uniform starts, wrapping around.  ``mean_block = 1`` is the iid bootstrap."""
    n = _positive_int("n", n)
    n_boot = _positive_int("n_boot", n_boot)
    p = 1.0 / _mean_block(mean_block)
    gen = as_generator(rng)
    new_block = gen.random((n_boot, n)) < p
    new_block[:, 0] = True
    block = np.cumsum(new_block, axis=None) - 1          # each position's block, all rows
    starts = gen.integers(0, n, size=int(block[-1]) + 1)  # one uniform start per block
    t = np.arange(n)
    # steps since the block began: t minus the latest block start at or before t
    walked = t - np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
    idx = starts[block].reshape(n_boot, n) + walked
    idx[idx >= n] -= n  # wrap around; start + walked <= 2n - 2
    return idx


def _apply(stat: Statistic, x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN is refused with a reason below
        values = np.asarray(stat(x), dtype=np.float64)
    if values.shape != (x.shape[0],):
        raise ValueError(f"stat: expected one value per row of its (k, n) argument, shape "
                         f"({x.shape[0]},), found shape {values.shape}")
    return values


def _replicates(series: tuple[np.ndarray, ...], stat: Statistic, mean_block: float,
                n_boot: int, rng: np.random.Generator | int) -> list[np.ndarray]:
    """``stat`` of each series on the same ``n_boot`` resamples (shared indices)."""
    n = len(series[0])
    gen = as_generator(rng)
    rows = max(1, _CHUNK_ELEMENTS // n)
    out = [np.empty(n_boot) for _ in series]
    for lo in range(0, n_boot, rows):
        k = min(rows, n_boot - lo)
        idx = stationary_bootstrap_indices(n, mean_block, k, gen)
        for o, x in zip(out, series):
            o[lo:lo + k] = _apply(stat, x[idx])
    return out


def _percentile(estimate: float, reps: np.ndarray, alpha: float) -> tuple[float, float, float]:
    bad = int(np.sum(~np.isfinite(reps)))
    if bad:
        raise ValueError(f"stat: expected a finite value on every resample, found {bad} of "
                         f"{len(reps)} NaN or infinite (e.g. a Sharpe ratio of a flat resample)")
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(estimate), float(lo), float(hi)


def _alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha: expected a level in (0, 1), e.g. 0.05 for a 95% interval, "
                         f"found {alpha!r}")
    return float(alpha)


def bootstrap_ci(x: np.ndarray, stat: Statistic, mean_block: float, n_boot: int, alpha: float,
                 rng: np.random.Generator | int) -> tuple[float, float, float]:
    """``(estimate, lo, hi)``: ``stat`` of the series ``x`` and its ``1 - alpha`` percentile
    interval over ``n_boot`` stationary-bootstrap resamples (Politis & Romano 1994)."""
    x = _series("x", x)
    alpha = _alpha(alpha)
    n_boot = _positive_int("n_boot", n_boot)
    (reps,) = _replicates((x,), stat, mean_block, n_boot, rng)
    return _percentile(_apply(stat, x[None, :])[0], reps, alpha)


def bootstrap_diff_ci(a: np.ndarray, b: np.ndarray, stat: Statistic, mean_block: float,
                      n_boot: int, alpha: float,
                      rng: np.random.Generator | int) -> tuple[float, float, float]:
    """``(estimate, lo, hi)`` of ``stat(a) - stat(b)`` for two aligned series (``a`` the variant,
    ``b`` the baseline, the same periods in the same order), with its ``1 - alpha`` percentile
    interval.  Both series are resampled with the SAME stationary-bootstrap indices (Politis &
    Romano 1994), so their dependence on each other is kept along with their serial
    dependence."""
    a = _series("a", a)
    b = _series("b", b)
    if len(a) != len(b):
        raise ValueError(f"a, b: expected aligned series of one length, found lengths {len(a)} "
                         f"and {len(b)}")
    alpha = _alpha(alpha)
    n_boot = _positive_int("n_boot", n_boot)
    ra, rb = _replicates((a, b), stat, mean_block, n_boot, rng)
    estimate = _apply(stat, a[None, :])[0] - _apply(stat, b[None, :])[0]
    return _percentile(estimate, ra - rb, alpha)


def _autocovariances(e: np.ndarray, max_lag: int) -> np.ndarray:
    """``R(k) = sum_t e_t e_{t+k} / n`` for ``k = 0 .. max_lag`` of the demeaned ``e``."""
    n = len(e)
    size = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(e, size)
    return np.fft.irfft(f * np.conj(f), size)[:max_lag + 1] / n


def optimal_block_length(x: np.ndarray) -> float:
    """Mean block length for the stationary bootstrap of the mean of ``x``: Politis & White
    (2004), ``b_opt = (2 G^2 / D_SB)^(1/3) n^(1/3)``, with ``D_SB = 2 g(0)^2`` as
    corrected by Patton, Politis & White (2009), where, with the flat-top window
    ``lambda(t) = 1`` for ``|t| <= 1/2``, ``2 (1 - |t|)`` for ``1/2 < |t| <= 1``,
    ``G = sum_{|k| <= M} lambda(k/M) |k| R(k)`` and ``g(0) = sum_{|k| <= M} lambda(k/M) R(k)``
    (``R`` the sample autocovariances, divisor ``n``).

    ``M = 2 m`` (at most ``m_max = ceil(sqrt(n)) + K_N``), ``m`` the smallest lag from which
    ``K_N = max(5, ceil(sqrt(log10 n)))`` consecutive sample autocorrelations lie inside
    ``+-2 sqrt(log10(n) / n)`` (Politis & White's section 3.2 rule, in the form of Patton's
    reference code), ``M = m_max`` when there is none; the result is capped at
    ``ceil(min(3 sqrt(n), n / 3))``.  It is not floored: a value under 1 (a series with no
    dependence) means the iid bootstrap, ``mean_block = 1``."""
    x = _series("x", x, minimum=3)
    n = len(x)
    e = x - x.mean()
    k_n = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = math.ceil(math.sqrt(n)) + k_n
    if m_max >= n:
        raise ValueError(f"x: expected a series longer than its largest lag sqrt(n) + {k_n}, "
                         f"found {n} values")
    acv = _autocovariances(e, m_max)
    if not acv[0] > 0.0:
        raise ValueError("x: expected a series that varies, found a constant one")
    inside = np.abs(acv[1:] / acv[0]) < 2.0 * math.sqrt(math.log10(n) / n)  # lags 1 .. m_max
    runs = np.lib.stride_tricks.sliding_window_view(inside, k_n).all(axis=1)
    m = int(np.argmax(runs)) + 1 if runs.any() else None  # runs[j] starts at lag j + 1
    big_m = m_max if m is None else min(2 * m, m_max)
    k = np.arange(1, big_m + 1)
    lam = np.where(k / big_m <= 0.5, 1.0, 2.0 * (1.0 - k / big_m))
    g = 2.0 * np.sum(lam * k * acv[1:big_m + 1])
    g0 = acv[0] + 2.0 * np.sum(lam * acv[1:big_m + 1])
    d_sb = 2.0 * g0 ** 2
    if not d_sb > 0.0:
        raise ValueError("x: expected a positive long-run variance estimate g(0), found "
                         f"{g0!r} (a series with strong negative autocorrelation)")
    b_opt = (2.0 * g ** 2 / d_sb) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return float(min(b_opt, math.ceil(min(3.0 * math.sqrt(n), n / 3.0))))
