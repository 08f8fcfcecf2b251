"""The report's statistics (ops/perf_metrics.py) against empyrical, their oracle, on the same
returns: agreement within 1e-9, undefined where empyrical's are undefined."""
from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest

from alphad.daemon.shell.day_samples import DAY_NS
from alphad.ops import perf_metrics as pm

T0 = 1_600_000_000 // 86_400 * DAY_NS  # a UTC midnight


def series(kind: str) -> np.ndarray:
    rng = np.random.default_rng(20240809)
    return {
        "random year": rng.normal(0.0004, 0.011, 252),
        "random decade": rng.normal(0.0002, 0.02, 2520),
        "two days": np.array([0.01, -0.004]),
        "one day": np.array([-0.003]),
        "only gains": np.abs(rng.normal(0.001, 0.002, 40)) + 1e-6,
        "flat": np.zeros(30),
        "constant": np.full(20, 0.001),
        "crash and recovery": np.array([0.02, -0.3, 0.1, 0.15, 0.2, -0.01]),
    }[kind]


ORACLE = {
    "cagr": lambda r, a: empyrical.cagr(r, annualization=a),
    "volatility": lambda r, a: empyrical.annual_volatility(r, annualization=a),
    "sharpe": lambda r, a: empyrical.sharpe_ratio(r, annualization=a),
    "sortino": lambda r, a: empyrical.sortino_ratio(r, annualization=a),
    "max_drawdown": lambda r, a: empyrical.max_drawdown(r),
    "calmar": lambda r, a: empyrical.calmar_ratio(r, annualization=a),
}
OURS = {
    "cagr": pm.cagr, "volatility": pm.volatility, "sharpe": pm.sharpe, "sortino": pm.sortino,
    "max_drawdown": lambda r, a: pm.max_drawdown(r), "calmar": pm.calmar,
}


def same(ours: float, oracle: float) -> bool:
    if math.isnan(oracle) or math.isinf(oracle):
        return (math.isnan(ours) and math.isnan(oracle)) or ours == oracle
    return abs(ours - oracle) <= 1e-9 * max(1.0, abs(oracle))


@pytest.mark.parametrize("periods_per_year", [252, 365])
@pytest.mark.parametrize("kind", ["random year", "random decade", "two days", "one day", "only gains", "flat",
                                  "constant", "crash and recovery"])
@pytest.mark.parametrize("stat", list(ORACLE))
def test_statistic_when_returns_given_then_equals_empyrical(stat, kind, periods_per_year):
    r = series(kind)
    oracle = float(ORACLE[stat](r, periods_per_year))
    ours = OURS[stat](r, periods_per_year)
    assert same(ours, oracle), (stat, kind, ours, oracle)


def test_performance_when_day_end_equity_then_returns_start_from_the_initial_equity():
    equity = np.array([101.0, 99.0, 103.0])
    r = pm.period_returns(equity, 100.0)
    np.testing.assert_allclose(r, [0.01, 99 / 101 - 1, 103 / 99 - 1], rtol=0, atol=1e-15)
    m = pm.performance(T0, T0 + DAY_NS * np.arange(1, 4), equity, 100.0, 252)
    assert same(m["sharpe"], empyrical.sharpe_ratio(r, annualization=252))
    assert m["total_return"] == pytest.approx(0.03, abs=1e-12)
    assert m["win_rate"] == pytest.approx(2 / 3)


def test_max_drawdown_days_when_drawdowns_then_the_longest_in_calendar_days():
    day = T0 + DAY_NS * np.arange(12) + 20 * 3_600_000_000_000  # 20:00 UTC each day
    #                  0    1    2    3    4    5    6    7    8    9   10   11
    equity = np.array([100, 101, 99, 98, 101, 102, 90, 95, 101, 103, 100, 102.9])
    # 1 -> 4 (back to 101): 3 days; 5 -> 9 (103 >= 102): 4 days; 9 -> 11, never back: 2 days
    assert pm.max_drawdown_days(day, equity) == 4
    assert pm.max_drawdown_days(day[4:8], equity[4:8]) == 2  # 5 -> 7, unrecovered at the end
    assert pm.max_drawdown_days(day[:3], np.array([1.0, 2.0, 3.0])) == 0


def test_monthly_returns_when_days_span_months_then_compounded_per_utc_month():
    jan31 = np.datetime64("2021-01-31T23:00", "ns").astype(np.int64)
    ts = jan31 + DAY_NS * np.array([0, 1, 2, 30])  # Jan 31; Feb 1, Feb 2; Mar 3
    months, r = pm.monthly_returns(ts, np.array([0.1, 0.1, -0.5, 0.2]))
    assert [str(m) for m in months] == ["2021-01", "2021-02", "2021-03"]
    np.testing.assert_allclose(r, [0.1, 1.1 * 0.5 - 1, 0.2], rtol=0, atol=1e-15)
