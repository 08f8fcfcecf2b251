"""The Probability of Backtest Overfitting by combinatorially symmetric cross-validation.

Bailey, D. H., Borwein, J. M., López de Prado, M. & Zhu, Q. J. (2017), "The Probability of
Backtest Overfitting", Journal of Computational Finance 20(4), 39-69 (SSRN 2326253, 2015).
CSCV, as the paper sets it out, on a matrix ``M`` of ``T`` periods (rows) by ``N``
strategies (columns):

1. split the rows into ``S`` (even) consecutive blocks of equal size;
2. for each of the ``C(S, S/2)`` ways to choose ``S/2`` blocks, the chosen blocks (in time
   order) are the in-sample set ``J`` and the rest the out-of-sample set ``J-bar``;
3. compute each strategy's performance on both, ``R`` and ``R-bar``; ``n*`` is the best
   strategy in sample, ``argmax R``;
4. ``w`` is the relative rank of ``R-bar[n*]`` among ``R-bar``, ``rank / (N + 1)`` (ranks 1 .. N
   ascending, ties averaged), and its logit ``lambda = ln(w / (1 - w))``; ``lambda = 0`` is
   the out-of-sample median;
5. ``PBO`` is the share of the combinations with ``lambda <= 0``: the in-sample choice did no
   better than the median out of sample.

The paper's other two outputs: the performance degradation, the least-squares line of
``R-bar[n*]`` on ``R[n*]`` over the combinations (a negative slope: the better in sample, the
worse out of sample), and the probability of loss, the share with ``R-bar[n*] < 0`` (below
``loss_threshold``).  The paper's performance measure, and the default here, is the Sharpe
ratio (per period, ``column_sharpe``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

# A metric maps an array (..., rows, N) to (..., N), reducing over the rows (axis -2).
Metric = Callable[[np.ndarray], np.ndarray]

_CHUNK_ELEMENTS = 1 << 22


def column_sharpe(x: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio ``mean / std`` (``ddof=1``) of each column over the rows
    (axis -2)."""
    return x.mean(axis=-2) / x.std(axis=-2, ddof=1)


@dataclass(frozen=True)
class PBOResult:
    pbo: float                    # share of combinations with logit <= 0
    logits: np.ndarray            # lambda_c, one per combination
    is_performance: np.ndarray    # R[n*], the in-sample best's in-sample performance
    oos_performance: np.ndarray   # R-bar[n*], its out-of-sample performance
    degradation_slope: float      # slope of R-bar[n*] on R[n*] (NaN if R[n*] never varies)
    degradation_intercept: float
    prob_loss: float              # share of combinations with R-bar[n*] < loss_threshold
    combinations: np.ndarray      # (C(S, S/2), S/2): the in-sample blocks of each combination
    rows_used: int                # the last rows_used rows of the matrix (a multiple of S)


def _matrix(performance: np.ndarray) -> np.ndarray:
    m = np.asarray(performance, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(f"performance: expected a (T periods, N >= 2 strategies) matrix, found "
                         f"shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"performance: expected finite values, found "
                         f"{int(np.sum(~np.isfinite(m)))} NaN or infinite")
    return m


def _evaluate(metric: Metric, x: np.ndarray, what: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(metric(x), dtype=np.float64)
    expected = x.shape[:-2] + x.shape[-1:]
    if values.shape != expected:
        raise ValueError(f"metric: expected shape {expected} (one value per strategy), found "
                         f"{values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"metric: expected finite {what} performance, found NaN or infinite "
                         f"(e.g. a strategy flat over a whole half)")
    return values


def _relative_ranks(oos: np.ndarray, n_star: np.ndarray) -> np.ndarray:
    """``rank / (N + 1)`` of ``oos[c, n_star[c]]`` within row ``c``, ties given their mean rank."""
    chosen = np.take_along_axis(oos, n_star[:, None], axis=1)
    below = np.sum(oos < chosen, axis=1)
    equal = np.sum(oos == chosen, axis=1)
    return (below + (equal + 1) / 2.0) / (oos.shape[1] + 1)


def pbo(performance: np.ndarray, n_splits: int, metric: Metric = column_sharpe,
        loss_threshold: float = 0.0) -> PBOResult:
    """CSCV's probability of backtest overfitting (Bailey, Borwein, López de Prado & Zhu 2017)
    of the ``(T, N)`` matrix ``performance`` (period returns, one column per strategy), split
    into ``n_splits`` (``S``, even) blocks; see the module's notes.  When ``T`` is not a
    multiple of ``S`` the oldest ``T mod S`` rows are left out.  Ties for the in-sample best
    go to the first column."""
    m = _matrix(performance)
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) \
            or n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits: expected an even number of blocks >= 2, found {n_splits!r}")
    s = int(n_splits)
    t, n = m.shape
    size = t // s
    if size < 1:
        raise ValueError(f"performance: expected at least n_splits = {s} rows, found {t}")
    blocks = m[t - size * s:].reshape(s, size, n)
    combos = np.array(list(itertools.combinations(range(s), s // 2)), dtype=np.intp)
    in_sample = np.zeros((len(combos), s), dtype=bool)
    np.put_along_axis(in_sample, combos, True, axis=1)
    complements = np.nonzero(~in_sample)[1].reshape(len(combos), s // 2)

    is_perf = np.empty((len(combos), n))
    oos_perf = np.empty((len(combos), n))
    rows = size * (s // 2)
    step = max(1, _CHUNK_ELEMENTS // (rows * n))
    for lo in range(0, len(combos), step):
        part = slice(lo, lo + step)
        k = len(combos[part])
        is_perf[part] = _evaluate(metric, blocks[combos[part]].reshape(k, rows, n), "in-sample")
        oos_perf[part] = _evaluate(metric, blocks[complements[part]].reshape(k, rows, n),
                                   "out-of-sample")

    n_star = np.argmax(is_perf, axis=1)
    w = _relative_ranks(oos_perf, n_star)
    logits = np.log(w / (1.0 - w))
    r_is = np.take_along_axis(is_perf, n_star[:, None], axis=1)[:, 0]
    r_oos = np.take_along_axis(oos_perf, n_star[:, None], axis=1)[:, 0]
    dx = r_is - r_is.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (r_oos - r_oos.mean()) / sxx) if sxx > 0.0 else math.nan
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)), logits=logits, is_performance=r_is,
        oos_performance=r_oos, degradation_slope=slope,
        degradation_intercept=float(r_oos.mean() - slope * r_is.mean()),
        prob_loss=float(np.mean(r_oos < loss_threshold)), combinations=combos,
        rows_used=size * s)
