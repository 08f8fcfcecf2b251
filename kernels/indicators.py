"""Price and volume indicators: one streaming update per indicator, batch = the same update in a loop.

Every indicator keeps its whole state in a small float64 array built by its ``*_new``
function.  ``s[0]`` is always the number of updates applied so far; the parameters
follow, then running sums and ring buffers.  Storing the parameters in the state makes
a state self-describing, so the ``@njit`` update needs nothing else.

* ``X_new(params) -> state``: Python, validates the parameters (raises ``ValueError``).
* ``X_update(state, inputs...) -> value(s)``: ``@njit(cache=True)``, the *only* place the
  maths lives.  No allocation, no exceptions; returns NaN during warm-up.  Multi-output
  indicators return a tuple (no allocation in nopython mode).
* ``X(series..., params) -> array(s)``: batch form, runs the very same update over a
  whole series, so streaming and batch agree bit for bit.

NaN convention (the same as TA-Lib): an indicator with lookback ``L`` writes NaN into
its first ``L`` rows and a value from row ``L`` on.  The TA-Lib-equivalent indicators
(SMA, EMA, RSI, MACD, ATR, Bollinger bands, STOCH) copy TA-Lib's arithmetic order so
they match it to the last few ulps (see ``docs/features.md``).

Inputs must be finite: the streaming updates do not test for NaN (that would cost a
branch per event and hide a feed bug); the batch wrappers check at the boundary.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "sma_new", "sma_update", "sma",
    "ema_new", "ema_update", "ema",
    "rsi_new", "rsi_update", "rsi",
    "macd_new", "macd_update", "macd",
    "atr_new", "atr_update", "atr",
    "bbands_new", "bbands_update", "bbands",
    "stoch_new", "stoch_update", "stoch",
    "ret_new", "ret_update", "logret_update", "ret", "logret",
    "vol_new", "vol_update", "vol",
    "zscore_new", "zscore_update", "zscore",
    "nma_new", "nma_update", "nma",
    "moments_new", "skew_update", "kurt_update", "skew", "kurt",
    "vwap_new", "vwap_update", "vwap",
    "volratio_new", "volratio_update", "volratio",
]

#: TA-Lib's ``TA_IS_ZERO`` threshold (RSI) and ``TA_IS_ZERO_OR_NEG`` threshold (BBANDS stddev).
TA_EPSILON = 0.00000001


# -- validation helpers (Python boundary) ---------------------------------------------------


def _check_period(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an int period >= {minimum}, was {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected a period >= {minimum}, was {value}")
    return int(value)


def _as_series(name: str, x, n: int | None = None) -> np.ndarray:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D series, was shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: expected length {n} (same as the other inputs), was {a.shape[0]}")
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"{name}: expected finite values, row {bad} was {a[bad]}")
    return a


# -- shared njit helpers --------------------------------------------------------------------


@njit(cache=True)
def _roll_sum(s, sum_i, buf_o, n, count, x):
    """TA-Lib's running-sum step (``INT_SMA``): add the newest, emit, drop the oldest.

    ``s[sum_i]`` holds the sum of the newest ``n - 1`` values between calls, exactly as
    TA-Lib's ``periodTotal`` does, so the emitted sum has TA-Lib's rounding.  Returns the
    sum of the ``n`` newest values, or NaN while fewer than ``n`` have been seen.
    """
    s[buf_o + count % n] = x
    t = s[sum_i] + x
    if count >= n - 1:
        s[sum_i] = t - s[buf_o + (count + 1) % n]
        return t
    s[sum_i] = t
    return np.nan


# -- rolling windows: shifted power sums, updated in O(1), re-anchored every n updates -----
#
# A window block is ``[K, run, S1, S2, S3, S4]`` (``S3, S4`` only where ``p = 4``) plus a
# ring of the last ``n`` values stored elsewhere in the state.  ``S_k`` is the sum of
# ``(x - K)^k`` over the ring.  Each update adds the new value's powers and subtracts the
# evicted one's, so a statistic costs the same for any ``n``.  Why this does not drift
# like a running sum of raw squares (which lost 2e-8 relative on AIG after its 2008 fall):
#
# * the shift ``K`` is a value of the current window: every ``n`` updates (ring slot 0)
#   the sums are recomputed exactly from the ring with ``K`` = the newest value, so no
#   rounding error lives longer than ``n`` updates and ``x - K`` stays on the scale of the
#   window's range, never of the price level (no cancellation in ``S2 - S1^2/n``);
# * until the first re-anchor the sums are built in ring order, exactly like a one-pass
#   scan, so the first full window equals the scan bit for bit.
#
# ``run`` counts the trailing equal values: a window of ``n`` equal values is flat, and
# its mean and zero variance are returned exactly (the documented degenerate values),
# not the rounding residue the add/subtract steps leave behind.

W_K = 0
W_RUN = 1
W_S1 = 2


@njit(cache=True)
def _win_push(s, a, b, n, c, x, p):
    """Write ``x`` (update number ``c``) into the ring at ``s[b:b+n]``; update the block at ``s[a:]``.

    ``p`` (2 or 4) is how many power sums the block keeps.
    """
    i = c % n
    old = s[b + i]
    s[b + i] = x
    if c > 0 and x == s[b + (c - 1) % n]:
        s[a + W_RUN] += 1.0
    else:
        s[a + W_RUN] = 1.0
    if i == 0:
        # re-anchor: exact sums over the values in the ring, shifted by the newest one
        m = n if c >= n else 1
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        t4 = 0.0
        for j in range(m):
            d = s[b + j] - x
            d2 = d * d
            t1 += d
            t2 += d2
            if p == 4:
                t3 += d2 * d
                t4 += d2 * d2
        s[a + W_K] = x
        s[a + W_S1] = t1
        s[a + W_S1 + 1] = t2
        if p == 4:
            s[a + W_S1 + 2] = t3
            s[a + W_S1 + 3] = t4
        return
    d = x - s[a + W_K]
    d2 = d * d
    if c < n:  # still filling: add only, in ring order (= the one-pass scan)
        s[a + W_S1] += d
        s[a + W_S1 + 1] += d2
        if p == 4:
            s[a + W_S1 + 2] += d2 * d
            s[a + W_S1 + 3] += d2 * d2
        return
    e = old - s[a + W_K]
    e2 = e * e
    s[a + W_S1] += d - e
    s[a + W_S1 + 1] += d2 - e2
    if p == 4:
        s[a + W_S1 + 2] += d2 * d - e2 * e
        s[a + W_S1 + 3] += d2 * d2 - e2 * e2


@njit(cache=True)
def _win_stats(s, a, n, x):
    """``(mean, sum of squared deviations)`` of a full window whose newest value is ``x``."""
    if s[a + W_RUN] >= n:
        return x, 0.0
    s1 = s[a + W_S1]
    ss = s[a + W_S1 + 1] - s1 * s1 / n
    return s[a + W_K] + s1 / n, ss if ss > 0.0 else 0.0


@njit(cache=True)
def _win_moments(s, a, n):
    """Central moments ``(m2, m3, m4)`` (divided by n) of a full ``p = 4`` window; 0 if flat."""
    if s[a + W_RUN] >= n:
        return 0.0, 0.0, 0.0
    u = s[a + W_S1] / n
    r2 = s[a + W_S1 + 1] / n
    r3 = s[a + W_S1 + 2] / n
    r4 = s[a + W_S1 + 3] / n
    uu = u * u
    m2 = r2 - uu
    m3 = r3 - 3.0 * u * r2 + 2.0 * uu * u
    m4 = r4 - 4.0 * u * r3 + 6.0 * uu * r2 - 3.0 * uu * uu
    return m2, m3, m4


# Each indicator's maths lives once, in a step function ``_X(s, o, ...)`` that reads its
# state at ``s[o:]``.  The offset lets the feature-set kernel keep every indicator of an
# instrument in one vector without creating a slice (a refcounted view) per indicator and
# event; the public ``X_update(s, ...)`` is the same step at offset 0.

# -- SMA ------------------------------------------------------------------------------------
# state: [count, n, sum, buf(n)]


def sma_new(n: int) -> np.ndarray:
    """State for a simple moving average of ``n`` values (lookback ``n - 1``)."""
    n = _check_period("sma n", n)
    s = np.zeros(3 + n)
    s[1] = n
    return s


@njit(cache=True)
def _sma(s, o, x):
    c = int(s[o])
    n = int(s[o + 1])
    t = _roll_sum(s, o + 2, o + 3, n, c, x)
    s[o] = c + 1
    return t / n


@njit(cache=True)
def sma_update(s, x):
    """Add one value; return the mean of the last ``n`` values (NaN during warm-up)."""
    return _sma(s, 0, x)


@njit(cache=True)
def _sma_batch(s, x, out):
    for i in range(x.shape[0]):
        out[i] = _sma(s, 0, x[i])


def sma(x, n: int = 20) -> np.ndarray:
    """Batch SMA; equals TA-Lib ``SMA(x, n)``."""
    s = sma_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _sma_batch(s, x, out)
    return out


# -- EMA ------------------------------------------------------------------------------------
# state: [count, n, k, seed_sum, ema]


def ema_new(n: int) -> np.ndarray:
    """State for an EMA with ``k = 2 / (n + 1)`` seeded by the SMA of the first ``n`` values.

    This is TA-Lib's default seeding; the first value is at row ``n - 1``.
    """
    n = _check_period("ema n", n)
    s = np.zeros(5)
    s[1] = n
    s[2] = 2.0 / (n + 1)
    return s


@njit(cache=True)
def _ema(s, o, x):
    c = int(s[o])
    n = int(s[o + 1])
    s[o] = c + 1
    if c >= n:
        # TA-Lib writes it as ((x - prev) * k) + prev; keep that rounding
        s[o + 4] = ((x - s[o + 4]) * s[o + 2]) + s[o + 4]
        return s[o + 4]
    s[o + 3] += x
    if c == n - 1:
        s[o + 4] = s[o + 3] / n
        return s[o + 4]
    return np.nan


@njit(cache=True)
def ema_update(s, x):
    """Add one value; return the EMA (NaN during warm-up)."""
    return _ema(s, 0, x)


@njit(cache=True)
def _ema_batch(s, x, out):
    for i in range(x.shape[0]):
        out[i] = _ema(s, 0, x[i])


def ema(x, n: int = 20) -> np.ndarray:
    """Batch EMA; equals TA-Lib ``EMA(x, n)``."""
    s = ema_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _ema_batch(s, x, out)
    return out


# -- RSI (Wilder) ---------------------------------------------------------------------------
# state: [count, n, prev_close, avg_gain, avg_loss]


def rsi_new(n: int = 14) -> np.ndarray:
    """State for Wilder's RSI over ``n`` changes (lookback ``n``), in percent 0..100."""
    n = _check_period("rsi n", n, 2)
    s = np.zeros(5)
    s[1] = n
    return s


@njit(cache=True)
def _rsi_value(gain, loss):
    t = gain + loss
    # TA-Lib outputs 0 when there was no movement at all (TA_IS_ZERO)
    if -TA_EPSILON < t < TA_EPSILON:
        return 0.0
    return 100.0 * (gain / t)


@njit(cache=True)
def _rsi(s, o, x):
    c = int(s[o])
    n = int(s[o + 1])
    s[o] = c + 1
    if c == 0:
        s[o + 2] = x
        return np.nan
    d = x - s[o + 2]
    s[o + 2] = x
    g = o + 3
    lo = o + 4
    if c <= n:
        # seed: plain average of the first n gains and losses
        if d < 0:
            s[lo] -= d
        else:
            s[g] += d
        if c < n:
            return np.nan
        s[lo] /= n
        s[g] /= n
        return _rsi_value(s[g], s[lo])
    # Wilder smoothing, in TA-Lib's operation order
    s[lo] *= n - 1
    s[g] *= n - 1
    if d < 0:
        s[lo] -= d
    else:
        s[g] += d
    s[lo] /= n
    s[g] /= n
    return _rsi_value(s[g], s[lo])


@njit(cache=True)
def rsi_update(s, x):
    """Add one close; return RSI in percent (NaN for the first ``n`` rows)."""
    return _rsi(s, 0, x)


@njit(cache=True)
def _rsi_batch(s, x, out):
    for i in range(x.shape[0]):
        out[i] = _rsi(s, 0, x[i])


def rsi(x, n: int = 14) -> np.ndarray:
    """Batch RSI; equals TA-Lib ``RSI(x, n)``."""
    s = rsi_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _rsi_batch(s, x, out)
    return out


# -- MACD -----------------------------------------------------------------------------------
# state: [count, fast, slow, signal, k_fast, k_slow, k_signal, total, ema_fast, ema_slow,
#         signal_sum, ema_signal, buf(fast)]

_MACD_BUF = 12


def macd_new(fast: int = 12, slow: int = 26, signal: int = 9) -> np.ndarray:
    """State for MACD line / signal / histogram with TA-Lib's aligned seeding.

    Both EMAs start at row ``slow - 1``: the slow one from the SMA of the first ``slow``
    closes, the fast one from the SMA of the ``fast`` closes ending there.  The signal
    EMA is seeded by the SMA of the first ``signal`` MACD values.  Lookback:
    ``slow + signal - 2``.
    """
    fast = _check_period("macd fast", fast, 2)
    slow = _check_period("macd slow", slow, 2)
    signal = _check_period("macd signal", signal, 1)
    if fast >= slow:
        raise ValueError(f"macd: expected fast < slow, was fast={fast} slow={slow}")
    s = np.zeros(_MACD_BUF + fast)
    s[1], s[2], s[3] = fast, slow, signal
    s[4], s[5], s[6] = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
    return s


@njit(cache=True)
def _macd(s, o, x):
    c = int(s[o])
    f = int(s[o + 1])
    sl = int(s[o + 2])
    g = int(s[o + 3])
    s[o] = c + 1
    if c < sl:
        # the ring of the last `fast` closes is only needed to seed the fast EMA
        s[o + _MACD_BUF + c % f] = x
    if c < sl - 1:
        s[o + 7] += x
        return np.nan, np.nan, np.nan
    if c == sl - 1:
        s[o + 7] += x
        acc = 0.0
        for j in range(f):  # oldest to newest, like TA-Lib's seed loop
            acc += s[o + _MACD_BUF + (c + 1 + j) % f]
        s[o + 8] = acc / f
        s[o + 9] = s[o + 7] / sl
    else:
        s[o + 8] = ((x - s[o + 8]) * s[o + 4]) + s[o + 8]
        s[o + 9] = ((x - s[o + 9]) * s[o + 5]) + s[o + 9]
    m = s[o + 8] - s[o + 9]
    cs = c - (sl - 1)  # index of this MACD value
    if cs < g - 1:
        s[o + 10] += m
        return np.nan, np.nan, np.nan
    if cs == g - 1:
        s[o + 10] += m
        s[o + 11] = s[o + 10] / g
    else:
        s[o + 11] = ((m - s[o + 11]) * s[o + 6]) + s[o + 11]
    return m, s[o + 11], m - s[o + 11]


@njit(cache=True)
def macd_update(s, x):
    """Add one close; return ``(macd, signal, hist)`` (all NaN during warm-up)."""
    return _macd(s, 0, x)


@njit(cache=True)
def _macd_batch(s, x, out):
    for i in range(x.shape[0]):
        out[0, i], out[1, i], out[2, i] = _macd(s, 0, x[i])


def macd(x, fast: int = 12, slow: int = 26, signal: int = 9):
    """Batch MACD; returns ``(macd, signal, hist)`` equal to TA-Lib ``MACD``."""
    s = macd_new(fast, slow, signal)
    x = _as_series("x", x)
    out = np.empty((3, x.shape[0]))
    _macd_batch(s, x, out)
    return out[0], out[1], out[2]


# -- ATR (Wilder) ---------------------------------------------------------------------------
# state: [count, n, prev_close, tr_sum, atr]


def atr_new(n: int = 14) -> np.ndarray:
    """State for Wilder's average true range over ``n`` bars (lookback ``n``), price units."""
    n = _check_period("atr n", n, 2)
    s = np.zeros(5)
    s[1] = n
    return s


@njit(cache=True)
def _true_range(h, l, prev_close):
    # TA-Lib's TRANGE, same comparisons so the same rounding
    g = h - l
    v2 = abs(prev_close - h)
    if v2 > g:
        g = v2
    v3 = abs(prev_close - l)
    if v3 > g:
        g = v3
    return g


@njit(cache=True)
def _atr(s, o, h, l, c):
    k = int(s[o])
    n = int(s[o + 1])
    s[o] = k + 1
    if k == 0:
        s[o + 2] = c
        return np.nan
    tr = _true_range(h, l, s[o + 2])
    s[o + 2] = c
    a = o + 4
    if k <= n:
        s[o + 3] += tr
        if k < n:
            return np.nan
        s[a] = s[o + 3] / n
        return s[a]
    s[a] *= n - 1
    s[a] += tr
    s[a] /= n
    return s[a]


@njit(cache=True)
def atr_update(s, h, l, c):
    """Add one bar; return the ATR (NaN for the first ``n`` rows)."""
    return _atr(s, 0, h, l, c)


@njit(cache=True)
def _atr_batch(s, h, l, c, out):
    for i in range(c.shape[0]):
        out[i] = _atr(s, 0, h[i], l[i], c[i])


def atr(high, low, close, n: int = 14) -> np.ndarray:
    """Batch ATR; equals TA-Lib ``ATR(high, low, close, n)``."""
    s = atr_new(n)
    c = _as_series("close", close)
    h = _as_series("high", high, c.shape[0])
    l = _as_series("low", low, c.shape[0])
    out = np.empty_like(c)
    _atr_batch(s, h, l, c, out)
    return out


# -- Bollinger bands ------------------------------------------------------------------------
# state: [count, n, k, sum, window block (K, run, S1, S2), buf(n)]

_BB_BUF = 8


def bbands_new(n: int = 20, k: float = 2.0) -> np.ndarray:
    """State for Bollinger bands: SMA(n) +- k population standard deviations (lookback n-1)."""
    n = _check_period("bbands n", n, 2)
    k = float(k)
    if not (k > 0.0 and math.isfinite(k)):
        raise ValueError(f"bbands k: expected a positive number of deviations, was {k}")
    s = np.zeros(_BB_BUF + n)
    s[1] = n
    s[2] = k
    return s


@njit(cache=True)
def _bbands(s, o, x):
    c = int(s[o])
    n = int(s[o + 1])
    s[o] = c + 1
    b = o + _BB_BUF
    # the window sums first: they read the slot that _roll_sum overwrites (with the same x)
    _win_push(s, o + 4, b, n, c, x, 2)
    t = _roll_sum(s, o + 3, b, n, c, x)
    if c < n - 1:
        return np.nan, np.nan, np.nan, np.nan, np.nan
    mid = t / n  # TA-Lib's SMA rounding for the middle band
    # The deviation comes from the window's shifted sums, re-anchored exactly every n
    # updates (see _win_push), not from a running sum of raw squares: that drifted 2e-8
    # relative after AIG's 2008 fall.  TA-Lib floors a variance below 1e-8 to 0; so do we.
    _, ss = _win_stats(s, o + 4, n, x)
    var = ss / n
    sd = math.sqrt(var) if var >= TA_EPSILON else 0.0
    dev = sd * s[o + 2]
    up = mid + dev
    lo = mid - dev
    span = up - lo
    pctb = (x - lo) / span if span > 0.0 else 0.5
    return up, mid, lo, pctb, span / mid


@njit(cache=True)
def bbands_update(s, x):
    """Add one close; return ``(upper, middle, lower, pctb, width)``.

    ``pctb = (x - lower) / (upper - lower)`` (0.5 when the bands are flat) and
    ``width = (upper - lower) / middle``.  The middle band is TA-Lib's running-sum SMA;
    the population deviation comes from the window's re-anchored shifted sums (0 when its
    variance < 1e-8).
    """
    return _bbands(s, 0, x)


@njit(cache=True)
def _bbands_batch(s, x, out):
    for i in range(x.shape[0]):
        out[0, i], out[1, i], out[2, i], out[3, i], out[4, i] = _bbands(s, 0, x[i])


def bbands(x, n: int = 20, k: float = 2.0):
    """Batch Bollinger; returns ``(upper, middle, lower, pctb, width)``.

    The bands equal TA-Lib ``BBANDS(x, n, k, k, MA_Type.SMA)``.
    """
    s = bbands_new(n, k)
    x = _as_series("x", x)
    out = np.empty((5, x.shape[0]))
    _bbands_batch(s, x, out)
    return out[0], out[1], out[2], out[3], out[4]


# -- Stochastic -----------------------------------------------------------------------------
# state: [count, fastk, slowk, slowd, sum_k, sum_d, highs(fastk), lows(fastk), fastk(slowk), slowk(slowd)]


def stoch_new(fastk: int = 14, slowk: int = 3, slowd: int = 3) -> np.ndarray:
    """State for the slow stochastic (%K = SMA(slowk) of fast %K, %D = SMA(slowd) of %K).

    Both outputs start at row ``fastk + slowk + slowd - 3`` like TA-Lib ``STOCH`` (which
    withholds %K until %D exists), in percent 0..100.
    """
    fastk = _check_period("stoch fastk", fastk)
    slowk = _check_period("stoch slowk", slowk)
    slowd = _check_period("stoch slowd", slowd)
    s = np.zeros(6 + 2 * fastk + slowk + slowd)
    s[1], s[2], s[3] = fastk, slowk, slowd
    return s


@njit(cache=True)
def _stoch(s, o, h, l, c):
    cnt = int(s[o])
    fk = int(s[o + 1])
    sk = int(s[o + 2])
    sd = int(s[o + 3])
    hb = o + 6
    lb = hb + fk
    kb = lb + fk
    db = kb + sk
    s[o] = cnt + 1
    i = cnt % fk
    s[hb + i] = h
    s[lb + i] = l
    if cnt < fk - 1:
        return np.nan, np.nan
    hi = s[hb]
    lo = s[lb]
    for j in range(1, fk):
        if s[hb + j] > hi:
            hi = s[hb + j]
        if s[lb + j] < lo:
            lo = s[lb + j]
    diff = (hi - lo) / 100.0  # TA-Lib divides by (range / 100), not multiplies by 100
    fast = (c - lo) / diff if diff != 0.0 else 0.0
    ck = cnt - (fk - 1)
    tk = _roll_sum(s, o + 4, kb, sk, ck, fast)
    if ck < sk - 1:
        return np.nan, np.nan
    slow_k = tk / sk
    cd = ck - (sk - 1)
    td = _roll_sum(s, o + 5, db, sd, cd, slow_k)
    if cd < sd - 1:
        return np.nan, np.nan
    return slow_k, td / sd


@njit(cache=True)
def stoch_update(s, h, l, c):
    """Add one bar; return ``(slow_k, slow_d)`` in percent (NaN during warm-up)."""
    return _stoch(s, 0, h, l, c)


@njit(cache=True)
def _stoch_batch(s, h, l, c, out):
    for i in range(c.shape[0]):
        out[0, i], out[1, i] = _stoch(s, 0, h[i], l[i], c[i])


def stoch(high, low, close, fastk: int = 14, slowk: int = 3, slowd: int = 3):
    """Batch stochastic; returns ``(slow_k, slow_d)`` equal to TA-Lib ``STOCH`` with SMA smoothing."""
    s = stoch_new(fastk, slowk, slowd)
    c = _as_series("close", close)
    h = _as_series("high", high, c.shape[0])
    l = _as_series("low", low, c.shape[0])
    out = np.empty((2, c.shape[0]))
    _stoch_batch(s, h, l, c, out)
    return out[0], out[1]


# -- simple and log returns -----------------------------------------------------------------
# state: [count, k, buf(k)]


def ret_new(k: int = 1) -> np.ndarray:
    """State for a ``k``-period return (lookback ``k``); one state serves ret or logret."""
    k = _check_period("ret k", k)
    s = np.zeros(2 + k)
    s[1] = k
    return s


@njit(cache=True)
def _lagged(s, o, x):
    # returns the value k updates ago (NaN before that) and stores x in its slot
    c = int(s[o])
    k = int(s[o + 1])
    s[o] = c + 1
    i = o + 2 + c % k
    prior = s[i] if c >= k else np.nan
    s[i] = x
    return prior


@njit(cache=True)
def _ret(s, o, x):
    return x / _lagged(s, o, x) - 1.0


@njit(cache=True)
def _logret(s, o, x):
    return math.log(x / _lagged(s, o, x))


@njit(cache=True)
def ret_update(s, x):
    """Add one close; return ``x_t / x_{t-k} - 1`` (NaN for the first ``k`` rows)."""
    return _ret(s, 0, x)


@njit(cache=True)
def logret_update(s, x):
    """Add one close; return ``log(x_t / x_{t-k})`` (NaN for the first ``k`` rows)."""
    return _logret(s, 0, x)


@njit(cache=True)
def _ret_batch(s, x, out, log):
    for i in range(x.shape[0]):
        out[i] = _logret(s, 0, x[i]) if log else _ret(s, 0, x[i])


def ret(x, k: int = 1) -> np.ndarray:
    """Batch simple return over ``k`` periods (equals TA-Lib ``ROCR(x, k) - 1``)."""
    s = ret_new(k)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _ret_batch(s, x, out, False)
    return out


def logret(x, k: int = 1) -> np.ndarray:
    """Batch log return over ``k`` periods."""
    s = ret_new(k)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _ret_batch(s, x, out, True)
    return out


# -- rolling volatility, skew, kurtosis of 1-period log returns -----------------------------
# state: [count, n, prev_close, window block (K, run, S1..S4), buf(n) of log returns]

_LR_BUF = 9


def vol_new(n: int = 20) -> np.ndarray:
    """State for the sample (ddof=1) std of the last ``n`` 1-period log returns (lookback ``n``).

    Per period, not annualised: multiply by ``sqrt(252)`` for daily bars.
    """
    n = _check_period("vol n", n, 2)
    s = np.zeros(_LR_BUF + n)
    s[1] = n
    return s


def moments_new(n: int = 20) -> np.ndarray:
    """State for rolling skew or kurtosis of ``n`` 1-period log returns (lookback ``n``, n >= 4)."""
    n = _check_period("moments n", n, 4)
    s = np.zeros(_LR_BUF + n)
    s[1] = n
    return s


@njit(cache=True)
def _push_logret(s, o, x, p):
    # window of log returns (block at s[o+3:], ring at s[o+_LR_BUF:]), previous close at
    # s[o+2]; True once the ring is full.  p: power sums kept (2 for vol, 4 for moments).
    c = int(s[o])
    n = int(s[o + 1])
    s[o] = c + 1
    if c == 0:
        s[o + 2] = x
        return False
    _win_push(s, o + 3, o + _LR_BUF, n, c - 1, math.log(x / s[o + 2]), p)
    s[o + 2] = x
    return c >= n


@njit(cache=True)
def _vol(s, o, x):
    if not _push_logret(s, o, x, 2):
        return np.nan
    n = int(s[o + 1])
    _, ss = _win_stats(s, o + 3, n, 0.0)  # only the deviation is used; any x will do
    return math.sqrt(ss / (n - 1))


@njit(cache=True)
def _skew(s, o, x):
    if not _push_logret(s, o, x, 4):
        return np.nan
    n = int(s[o + 1])
    m2, m3, _ = _win_moments(s, o + 3, n)
    if m2 <= 0.0:
        return 0.0
    return math.sqrt(n * (n - 1.0)) / (n - 2.0) * m3 / (m2 * math.sqrt(m2))


@njit(cache=True)
def _kurt(s, o, x):
    if not _push_logret(s, o, x, 4):
        return np.nan
    n = int(s[o + 1])
    m2, _, m4 = _win_moments(s, o + 3, n)
    if m2 <= 0.0:
        return 0.0
    g2 = m4 / (m2 * m2) - 3.0
    return ((n + 1.0) * g2 + 6.0) * (n - 1.0) / ((n - 2.0) * (n - 3.0))


@njit(cache=True)
def vol_update(s, x):
    """Add one close; return the rolling volatility of log returns (NaN for ``n`` rows)."""
    return _vol(s, 0, x)


@njit(cache=True)
def skew_update(s, x):
    """Add one close; return the bias-corrected sample skewness G1 of the log-return window.

    ``G1 = sqrt(n (n-1)) / (n-2) * m3 / m2**1.5`` with central moments ``m_k``; 0 for a flat
    window.  Equals ``scipy.stats.skew(w, bias=False)`` and pandas ``rolling().skew()``.
    """
    return _skew(s, 0, x)


@njit(cache=True)
def kurt_update(s, x):
    """Add one close; return bias-corrected excess kurtosis G2 of the log-return window.

    ``G2 = ((n+1) g2 + 6) (n-1) / ((n-2)(n-3))`` with ``g2 = m4 / m2**2 - 3``; 0 for a flat
    window.  Equals ``scipy.stats.kurtosis(w, bias=False)`` and pandas ``rolling().kurt()``.
    """
    return _kurt(s, 0, x)


@njit(cache=True)
def _logret_window_batch(s, x, out, which):
    for i in range(x.shape[0]):
        if which == 2:
            out[i] = _vol(s, 0, x[i])
        elif which == 3:
            out[i] = _skew(s, 0, x[i])
        else:
            out[i] = _kurt(s, 0, x[i])


def vol(x, n: int = 20) -> np.ndarray:
    """Batch rolling volatility of 1-period log returns."""
    s = vol_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _logret_window_batch(s, x, out, 2)
    return out


def skew(x, n: int = 20) -> np.ndarray:
    """Batch rolling skewness of 1-period log returns."""
    s = moments_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _logret_window_batch(s, x, out, 3)
    return out


def kurt(x, n: int = 20) -> np.ndarray:
    """Batch rolling excess kurtosis of 1-period log returns."""
    s = moments_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _logret_window_batch(s, x, out, 4)
    return out


# -- rolling z-score, normalised MA, volume ratio (window of raw values) --------------------
# state: [count, n, window block (K, run, S1, S2), buf(n)]

_RW_BUF = 6


def zscore_new(n: int = 20) -> np.ndarray:
    """State for ``(x - mean) / std`` over the last ``n`` values, population std (lookback n-1)."""
    n = _check_period("zscore n", n, 2)
    s = np.zeros(_RW_BUF + n)
    s[1] = n
    return s


def nma_new(n: int = 20) -> np.ndarray:
    """State for ``x / SMA(x, n) - 1`` (lookback ``n - 1``)."""
    return zscore_new(n)


def volratio_new(n: int = 20) -> np.ndarray:
    """State for ``volume / mean(volume over the last n bars)`` (lookback ``n - 1``)."""
    return zscore_new(n)


@njit(cache=True)
def _push_window(s, o, x):
    # True once the ring holds n values
    c = int(s[o])
    n = int(s[o + 1])
    s[o] = c + 1
    _win_push(s, o + 2, o + _RW_BUF, n, c, x, 2)
    return c >= n - 1


@njit(cache=True)
def _zscore(s, o, x):
    if not _push_window(s, o, x):
        return np.nan
    n = int(s[o + 1])
    m, ss = _win_stats(s, o + 2, n, x)
    sd = math.sqrt(ss / n)
    return (x - m) / sd if sd > 0.0 else 0.0


@njit(cache=True)
def _nma(s, o, x):
    if not _push_window(s, o, x):
        return np.nan
    m, _ = _win_stats(s, o + 2, int(s[o + 1]), x)
    return x / m - 1.0


@njit(cache=True)
def _volratio(s, o, v):
    if not _push_window(s, o, v):
        return np.nan
    m, _ = _win_stats(s, o + 2, int(s[o + 1]), v)
    return v / m if m > 0.0 else 1.0


@njit(cache=True)
def zscore_update(s, x):
    """Add one value; return its z-score in the window (0 for a flat window, NaN in warm-up)."""
    return _zscore(s, 0, x)


@njit(cache=True)
def nma_update(s, x):
    """Add one close; return ``x / mean(window) - 1`` (NaN in warm-up)."""
    return _nma(s, 0, x)


@njit(cache=True)
def volratio_update(s, v):
    """Add one volume; return its ratio to the window mean (1 when the window is all zero)."""
    return _volratio(s, 0, v)


@njit(cache=True)
def _window_batch(s, x, out, which):
    for i in range(x.shape[0]):
        if which == 0:
            out[i] = _zscore(s, 0, x[i])
        elif which == 1:
            out[i] = _nma(s, 0, x[i])
        else:
            out[i] = _volratio(s, 0, x[i])


def zscore(x, n: int = 20) -> np.ndarray:
    """Batch rolling z-score (population std)."""
    s = zscore_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _window_batch(s, x, out, 0)
    return out


def nma(x, n: int = 20) -> np.ndarray:
    """Batch normalised moving average."""
    s = nma_new(n)
    x = _as_series("x", x)
    out = np.empty_like(x)
    _window_batch(s, x, out, 1)
    return out


def volratio(v, n: int = 20) -> np.ndarray:
    """Batch volume ratio."""
    s = volratio_new(n)
    v = _as_series("volume", v)
    out = np.empty_like(v)
    _window_batch(s, v, out, 2)
    return out


# -- intraday VWAP --------------------------------------------------------------------------
# state: [count, session, cum_pv, cum_v]


def vwap_new() -> np.ndarray:
    """State for a session VWAP of the typical price ``(h + l + c) / 3`` (no warm-up)."""
    s = np.zeros(4)
    s[1] = np.nan  # no session yet: the first bar always starts one
    return s


@njit(cache=True)
def _vwap(s, o, session, h, l, c, v):
    s[o] += 1.0
    if session != s[o + 1]:
        s[o + 1] = session
        s[o + 2] = 0.0
        s[o + 3] = 0.0
    tp = (h + l + c) / 3.0
    s[o + 2] += tp * v
    s[o + 3] += v
    w = s[o + 2] / s[o + 3] if s[o + 3] > 0.0 else tp
    return w, c / w - 1.0


@njit(cache=True)
def vwap_update(s, session, h, l, c, v):
    """Add one bar; return ``(vwap, c / vwap - 1)``.

    ``session`` is any number that changes when a new session starts (e.g. the exchange
    date as ``yyyymmdd``); the sums reset then.  Before any volume the VWAP is the
    typical price itself.
    """
    return _vwap(s, 0, session, h, l, c, v)


@njit(cache=True)
def _vwap_batch(s, sess, h, l, c, v, out):
    for i in range(c.shape[0]):
        out[0, i], out[1, i] = _vwap(s, 0, sess[i], h[i], l[i], c[i], v[i])


def vwap(session, high, low, close, volume):
    """Batch session VWAP; returns ``(vwap, deviation)``."""
    s = vwap_new()
    c = _as_series("close", close)
    n = c.shape[0]
    out = np.empty((2, n))
    _vwap_batch(s, _as_series("session", session, n), _as_series("high", high, n),
                _as_series("low", low, n), c, _as_series("volume", volume, n), out)
    return out[0], out[1]
