"""Volatility and regime kernels: GARCH(1,1), HMM forward filter, VIX regime, correlation regime.

Parameters are fitted offline (:mod:`alphad.ops.fit_regimes`, with ``arch`` and
``hmmlearn``) and written to JSON; here only the per-event recursions run, as
``@njit(cache=True)`` updates over small state arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "garch_backcast", "garch_new", "garch_update", "garch_variance",
    "hmm_new", "hmm_update", "hmm_filter", "BULL", "BEAR", "SIDEWAYS",
    "VIX_COMPLACENT", "VIX_LOW", "VIX_NORMAL", "VIX_ELEVATED", "VIX_HIGH", "VIX_EXTREME",
    "VIX_CRISIS", "VIX_NAMES", "VIX_BOUNDS", "VIX_SIZING", "VIX_KILL", "vix_regime",
    "vix_sizing", "corr_new", "corr_update", "CORR_LOW", "CORR_NORMAL", "CORR_HIGH",
]

# -- GARCH(1,1) ------------------------------------------------------------------------------
# state: [omega, alpha, beta, mu, sigma2_next]


def garch_backcast(resids) -> float:
    """``arch``'s start-up value for the lagged variance: EWMA (0.94) of the first 75 squared residuals.

    ``arch`` takes the residuals of its starting mean (``y - y.mean()`` for a constant
    mean), not of the fitted one; pass those to reproduce its variance path.
    """
    r = np.asarray(resids, dtype=np.float64)
    tau = min(75, r.shape[0])
    w = 0.94 ** np.arange(tau)
    w = w / w.sum()
    return float(np.sum((r[:tau] ** 2.0) * w))


def garch_new(omega: float, alpha: float, beta: float, mu: float = 0.0, backcast: float | None = None) -> np.ndarray:
    """State of ``sigma2_t = omega + alpha (r_{t-1} - mu)^2 + beta sigma2_{t-1}``.

    Units: returns as fitted (``fit_regimes`` scales by 100, i.e. percent), variance in
    those units squared.  ``backcast`` seeds the lagged terms at t = 0 exactly as ``arch``
    does (``sigma2_0 = omega + (alpha + beta) * backcast``); default: the unconditional
    variance ``omega / (1 - alpha - beta)``.
    """
    for name, v in (("omega", omega), ("alpha", alpha), ("beta", beta)):
        if not (math.isfinite(v) and v >= 0.0):
            raise ValueError(f"garch {name}: expected a finite value >= 0, was {v}")
    if omega <= 0.0 or alpha + beta >= 1.0:
        raise ValueError(f"garch: expected omega > 0 and alpha + beta < 1, was omega={omega} "
                         f"alpha+beta={alpha + beta}")
    bc = omega / (1.0 - alpha - beta) if backcast is None else float(backcast)
    s = np.empty(5)
    s[0], s[1], s[2], s[3] = omega, alpha, beta, mu
    # arch adds the terms one by one; same order, same rounding
    s[4] = omega
    s[4] += alpha * bc
    s[4] += beta * bc
    return s


@njit(cache=True)
def garch_update(s, r):
    """Observe return ``r``; return ``(sigma2_t, sigma2_{t+1})``.

    ``sigma2_t`` is the variance forecast that applied to ``r`` (known before it), the
    second is the one-step-ahead forecast now stored in the state.
    """
    cur = s[4]
    e = r - s[3]
    nxt = s[0]
    nxt += s[1] * (e * e)
    nxt += s[2] * cur
    s[4] = nxt
    return cur, nxt


@njit(cache=True)
def _garch_batch(s, r, out):
    for i in range(r.shape[0]):
        out[i], _ = garch_update(s, r[i])


def garch_variance(returns, omega: float, alpha: float, beta: float, mu: float = 0.0,
                   backcast: float | None = None) -> np.ndarray:
    """Batch: conditional variance path, aligned like ``arch``'s ``conditional_volatility ** 2``."""
    r = np.ascontiguousarray(returns, dtype=np.float64)
    if backcast is None:
        backcast = garch_backcast(r - r.mean())  # arch's convention, see garch_backcast
    s = garch_new(omega, alpha, beta, mu, backcast)
    out = np.empty_like(r)
    _garch_batch(s, r, out)
    return out


# -- Gaussian HMM forward filter -------------------------------------------------------------
#: State order used by ``fit_regimes`` (sorted by mean return).
BULL = 0
BEAR = 1
SIDEWAYS = 2


def hmm_new(n_states: int) -> np.ndarray:
    """Filter state ``[count, p(K), scratch(K)]``; ``p`` = P(state_t | x_1..t)."""
    if n_states < 1:
        raise ValueError(f"hmm n_states: expected >= 1, was {n_states}")
    return np.zeros(1 + 2 * n_states)


@njit(cache=True)
def hmm_update(s, startprob, transmat, means, variances, x):
    """Observe ``x`` (D,); update and return the most likely state.

    Diagonal-covariance Gaussian emissions.  Predict ``p_t^- = p_{t-1} A`` (``startprob`` at
    t = 0), weight by ``N(x; mean_k, diag(var_k))`` in log space with the max subtracted
    (no underflow however unlikely ``x`` is), normalise.  Filtered, not smoothed: it
    uses no future data, so it is what a live stage can know.
    """
    k = startprob.shape[0]
    d = x.shape[0]
    p = s[1:1 + k]
    w = s[1 + k:1 + 2 * k]
    first = s[0] == 0.0
    s[0] += 1.0
    best = -np.inf
    for j in range(k):
        lp = 0.0
        for m in range(d):
            diff = x[m] - means[j, m]
            lp += math.log(variances[j, m]) + diff * diff / variances[j, m]
        lp = -0.5 * (d * math.log(2.0 * math.pi) + lp)
        w[j] = lp
        if lp > best:
            best = lp
    total = 0.0
    for j in range(k):
        if first:
            prior = startprob[j]
        else:
            prior = 0.0
            for i in range(k):
                prior += p[i] * transmat[i, j]
        w[j] = prior * math.exp(w[j] - best)
        total += w[j]
    arg = 0
    for j in range(k):
        p[j] = w[j] / total
        if p[j] > p[arg]:
            arg = j
    return arg


@njit(cache=True)
def _hmm_batch(s, startprob, transmat, means, variances, X, out):
    k = startprob.shape[0]
    for t in range(X.shape[0]):
        hmm_update(s, startprob, transmat, means, variances, X[t])
        for j in range(k):
            out[t, j] = s[1 + j]


def hmm_filter(X, startprob, transmat, means, variances) -> np.ndarray:
    """Batch filtered probabilities ``(T, K)`` for observations ``X`` ``(T, D)``."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    startprob = np.ascontiguousarray(startprob, dtype=np.float64)
    transmat = np.ascontiguousarray(transmat, dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    variances = np.ascontiguousarray(variances, dtype=np.float64)
    k = startprob.shape[0]
    if transmat.shape != (k, k) or means.shape != (k, X.shape[1]) or variances.shape != means.shape:
        raise ValueError(
            f"hmm params: expected transmat {(k, k)}, means/variances {(k, X.shape[1])}, was "
            f"{transmat.shape}, {means.shape}, {variances.shape}")
    s = hmm_new(k)
    out = np.empty((X.shape[0], k))
    _hmm_batch(s, startprob, transmat, means, variances, X, out)
    return out


# -- VIX regime ------------------------------------------------------------------------------
VIX_COMPLACENT = 0
VIX_LOW = 1
VIX_NORMAL = 2
VIX_ELEVATED = 3
VIX_HIGH = 4
VIX_EXTREME = 5
VIX_CRISIS = 6
VIX_NAMES = ("COMPLACENT", "LOW", "NORMAL", "ELEVATED", "HIGH", "EXTREME", "CRISIS")
#: Lower bounds (index points) of LOW..CRISIS; a value on a bound belongs to the upper band
#: (12.0 is LOW, 40.0 is CRISIS).
VIX_BOUNDS = np.array([12.0, 16.0, 20.0, 25.0, 30.0, 40.0])
#: Default sizing multiplier per regime (fraction of the normal target weight).  COMPLACENT
#: is trimmed slightly: low VIX regimes end in volatility spikes.
VIX_SIZING = np.array([0.9, 1.0, 1.0, 0.75, 0.5, 0.25, 0.1])
#: Default kill threshold (index points): at or above it the multiplier is 0.
VIX_KILL = 45.0


@njit(cache=True)
def vix_regime(v):
    """Regime code ``VIX_*`` of a VIX level (index points)."""
    r = 0
    for b in VIX_BOUNDS:
        if v >= b:
            r += 1
    return r


@njit(cache=True)
def vix_sizing(v, table, kill):
    """Sizing multiplier for VIX level ``v``: ``table[regime]``, or 0 when ``v >= kill``."""
    if v >= kill:
        return 0.0
    return table[vix_regime(v)]


# -- correlation regime ----------------------------------------------------------------------
CORR_LOW = 0
CORR_NORMAL = 1
CORR_HIGH = 2


def corr_new(n_instruments: int, window: int = 60, low: float = 0.3, high: float = 0.6) -> np.ndarray:
    """State for the rolling mean pairwise correlation of a group's returns.

    Layout: ``[count, m, window, low, high, buf(window * m)]``.  The regime is
    ``CORR_HIGH`` when the average pairwise correlation is ``>= high`` (diversification
    gone: cut gross exposure), ``CORR_LOW`` when ``< low``.
    """
    if n_instruments < 2:
        raise ValueError(f"corr n_instruments: expected >= 2, was {n_instruments}")
    if window < 3:
        raise ValueError(f"corr window: expected >= 3 observations, was {window}")
    if not -1.0 <= low < high <= 1.0:
        raise ValueError(f"corr thresholds: expected -1 <= low < high <= 1, was low={low} high={high}")
    s = np.zeros(5 + window * n_instruments)
    s[1], s[2], s[3], s[4] = n_instruments, window, low, high
    return s


@njit(cache=True)
def corr_update(s, r):
    """Add one vector of returns ``r`` (m,); return ``(avg_corr, regime)``.

    NaN and regime -1 until ``window`` observations exist.  A flat instrument in the window
    (zero variance) is left out of the average.  O(window * m^2) per call: meant for bar
    closes, not ticks.
    """
    c = int(s[0])
    m = int(s[1])
    w = int(s[2])
    base = 5 + (c % w) * m
    for i in range(m):
        s[base + i] = r[i]
    s[0] = c + 1
    if c < w - 1:
        return np.nan, -1
    total = 0.0
    pairs = 0
    for i in range(m):
        for j in range(i + 1, m):
            mi = 0.0
            mj = 0.0
            for t in range(w):
                mi += s[5 + t * m + i]
                mj += s[5 + t * m + j]
            mi /= w
            mj /= w
            sij = 0.0
            sii = 0.0
            sjj = 0.0
            for t in range(w):
                a = s[5 + t * m + i] - mi
                b = s[5 + t * m + j] - mj
                sij += a * b
                sii += a * a
                sjj += b * b
            if sii > 0.0 and sjj > 0.0:
                total += sij / math.sqrt(sii * sjj)
                pairs += 1
    if pairs == 0:
        return np.nan, -1
    avg = total / pairs
    if avg >= s[4]:
        return avg, CORR_HIGH
    if avg < s[3]:
        return avg, CORR_LOW
    return avg, CORR_NORMAL
