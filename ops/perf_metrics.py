"""Performance statistics of a daily returns series, as empyrical defines them.

The definitions are empyrical's (``empyrical-reloaded``, ``empyrical/stats.py``), computed
here with numpy so that the daemon does not need the library at run time; the tests
use empyrical as the oracle (agreement within 1e-9 on the same series).  ``r`` is the
series of period returns, ``A`` the periods per year (252 for exchange-traded
equities, 365 for crypto), ``n`` its length:

* ``cagr``: ``prod(1 + r) ** (A / n) - 1`` (``annual_return``);
* ``volatility``: ``std(r, ddof=1) * sqrt(A)`` (``annual_volatility``);
* ``sharpe``: ``mean(r) / std(r, ddof=1) * sqrt(A)``, risk-free rate 0 (``sharpe_ratio``;
  a constant series has std 0);
* ``sortino``: ``mean(r) * A / (sqrt(mean(min(r, 0) ** 2)) * sqrt(A))``, required return
  0 (``sortino_ratio``, ``downside_risk``);
* ``max_drawdown``: the lowest ``value / running peak - 1`` of the value ``prod(1 + r)``
  started at 1, a negative fraction (``max_drawdown``);
* ``calmar``: ``cagr / |max_drawdown|``, undefined without a drawdown (``calmar_ratio``).

Undefined values are NaN, where empyrical gives NaN: under 2 returns for the
volatility, Sharpe and Sortino, none for the CAGR and drawdown.  Two statistics
empyrical lacks:

* ``max_drawdown_days``: the longest drawdown in calendar (UTC) days, from the last
  point at a peak to the first point back at or above it, or to the last point when
  it never came back;
* ``win_rate``: the share of non-zero returns that are positive (quantstats'
  ``win_rate``).
"""
from __future__ import annotations

import math

import numpy as np

from alphad.daemon.shell.day_samples import DAY_NS


def period_returns(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    """Returns between consecutive values of ``equity``, the first from ``initial_equity``."""
    values = np.concatenate(([float(initial_equity)], np.asarray(equity, np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):  # an account at zero: the rest is undefined
        return values[1:] / values[:-1] - 1.0


def cagr(r: np.ndarray, periods_per_year: float) -> float:
    if len(r) < 1:
        return math.nan
    ending = float(np.prod(1.0 + r))
    if ending < 0.0:  # the account went below zero: no real root
        return math.nan
    return ending ** (periods_per_year / len(r)) - 1.0


def volatility(r: np.ndarray, periods_per_year: float) -> float:
    if len(r) < 2:
        return math.nan
    return float(np.std(r, ddof=1)) * math.sqrt(periods_per_year)


def sharpe(r: np.ndarray, periods_per_year: float) -> float:
    if len(r) < 2:
        return math.nan
    # empyrical's zero-dispersion rule: equal values have std 0 exactly, not a rounding residue
    std = 0.0 if r.max() == r.min() else float(np.std(r, ddof=1))
    return _ratio(float(np.mean(r)), std) * math.sqrt(periods_per_year)


def sortino(r: np.ndarray, periods_per_year: float) -> float:
    if len(r) < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) * math.sqrt(periods_per_year)
    return _ratio(float(np.mean(r)) * periods_per_year, downside)


def _ratio(a: float, b: float) -> float:
    """``a / b`` as numpy divides: inf for a non-zero over zero, NaN for 0 / 0."""
    if b == 0.0:
        return math.nan if a == 0.0 else math.copysign(math.inf, a)
    return a / b


def drawdowns(r: np.ndarray) -> np.ndarray:
    """``value / running peak - 1`` after each return, the value started at 1 (a peak)."""
    value = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    return (value / np.fmax.accumulate(value) - 1.0)[1:]


def max_drawdown(r: np.ndarray) -> float:
    if len(r) < 1:
        return math.nan
    return float(np.min(drawdowns(r)))


def calmar(r: np.ndarray, periods_per_year: float) -> float:
    mdd = max_drawdown(r)
    if not mdd < 0.0:
        return math.nan
    c = cagr(r, periods_per_year) / abs(mdd)
    return math.nan if math.isinf(c) else c


def max_drawdown_days(ts: np.ndarray, equity: np.ndarray) -> int:
    """Longest drawdown of ``equity`` (at times ``ts``, ns UTC), in calendar days; 0 when none."""
    days = np.asarray(ts, np.int64) // DAY_NS
    longest, peak, under = 0, 0, False
    for k in range(1, len(equity)):
        if equity[k] >= equity[peak]:
            if under:
                longest = max(longest, int(days[k] - days[peak]))
            peak, under = k, False
        else:
            under = True
    if under:
        longest = max(longest, int(days[-1] - days[peak]))
    return longest


def win_rate(r: np.ndarray) -> float:
    moved = r[r != 0.0]
    return float(np.mean(moved > 0.0)) if len(moved) else math.nan


def monthly_returns(ts: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns compounded per calendar month (UTC) of each period's end; ``(months, returns)``
    with ``months`` as ``datetime64[M]``, in order."""
    months = np.asarray(ts, np.int64).astype("datetime64[ns]").astype("datetime64[M]")
    keys, first = np.unique(months, return_index=True)
    bounds = list(first) + [len(r)]
    return keys, np.array([np.prod(1.0 + r[a:b]) - 1.0 for a, b in zip(bounds[:-1], bounds[1:])])


def performance(start_ts: int, ts: np.ndarray, equity: np.ndarray, initial_equity: float,
                periods_per_year: float) -> dict[str, float]:
    """Every statistic above for the day-end ``equity`` (at ``ts``) of a run that started with
    ``initial_equity`` at ``start_ts``."""
    r = period_returns(equity, initial_equity)
    return {
        "cagr": cagr(r, periods_per_year),
        "sharpe": sharpe(r, periods_per_year),
        "sortino": sortino(r, periods_per_year),
        "calmar": calmar(r, periods_per_year),
        "max_drawdown": max_drawdown(r),
        "max_drawdown_days": max_drawdown_days(np.concatenate(([start_ts], ts)),
                                               np.concatenate(([initial_equity], equity))),
        "volatility": volatility(r, periods_per_year),
        "win_rate": win_rate(r),
        "total_return": float(np.prod(1.0 + r) - 1.0) if len(r) else math.nan,
    }
