"""Portfolio risk gauges: one-day historical VaR and CVaR of the positions held, and the mean
pairwise correlation of their returns, from the day-roll returns the risk stage keeps
(``day_rets``, :func:`alphad.daemon.risk.core.sample_day`).

Off the tick's path: the stage's housekeeping computes them about once a second for
/metrics (``alphad_portfolio_risk``); the maths is the risk library's
(:func:`alphad.daemon.risk.portfolio.portfolio_var_cvar`, ``correlation_matrix``,
``correlation_summary``).
"""
from __future__ import annotations

import math

import numpy as np

from alphad.daemon.risk.codes import B_LAST_PX, B_POSITION
from alphad.daemon.risk.portfolio import correlation_matrix, correlation_summary, portfolio_var_cvar

#: Fewer days than this in the window: no estimate (NaN).
MIN_DAYS = 20
LEVEL = 0.95


def portfolio_risk(day_rets: np.ndarray, day_n: int, book: np.ndarray, equity: float) -> tuple[float, float, float]:
    """``(var, cvar, mean_correlation)`` of the current positions: VaR and CVaR at 95% as
    fractions of ``equity`` (positive: a loss), NaN with nothing held, fewer than
    :data:`MIN_DAYS` days or no equity; the mean correlation NaN under two positions."""
    nan = (math.nan, math.nan, math.nan)
    rows = day_rets[: min(int(day_n), day_rets.shape[0])]
    held = np.flatnonzero(book[:, B_POSITION] != 0.0)
    if len(held) == 0 or not equity > 0.0:
        return nan
    window = rows[:, held]
    window = window[np.isfinite(window).all(axis=1)]
    if window.shape[0] < MIN_DAYS:
        return nan
    values = book[held, B_POSITION] * book[held, B_LAST_PX]
    var, cvar = portfolio_var_cvar(window, values, (LEVEL,))[LEVEL]
    corr = correlation_summary(correlation_matrix(window))[0] if len(held) >= 2 else math.nan
    return var / equity, cvar / equity, float(corr)
