"""Market impact: formulas, time-of-day multipliers, calibration from simulated fills,
and the Almgren-Chriss schedule against a numerical optimum."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon.router.impact import (
    ImpactParams,
    TimeOfDay,
    ac_linear_coefficients,
    ac_schedule,
    calibrate,
    expected_slippage,
    permanent_impact,
    temporary_impact,
)


def test_impact_formulas_when_evaluated_then_match_hand_values():
    p = ImpactParams(gamma=0.2, alpha=0.5, eta=0.3)
    # sigma 2 %, Q/V = 4 %: temporary 0.02*0.2*0.2 = 8e-4, permanent 0.02*0.3*0.04 = 2.4e-4.
    assert temporary_impact(0.02, 0.04, p) == pytest.approx(8e-4)
    assert permanent_impact(0.02, 0.04, p) == pytest.approx(2.4e-4)
    assert temporary_impact(0.02, 0.04, p, multiplier=1.5) == pytest.approx(1.2e-3)
    assert expected_slippage(0.02, 0.04, p) == pytest.approx(8e-4 + 1.2e-4)


@pytest.mark.parametrize("hhmm,mult", [((9, 30), 1.5), ((9, 59), 1.5), ((10, 0), 1.0), ((12, 0), 1.2),
                                       ((13, 29), 1.2), ((14, 0), 1.0), ((15, 30), 1.3), ((15, 59), 1.3)])
def test_time_of_day_when_default_then_open_close_lunch_multipliers(hhmm, mult):
    assert TimeOfDay().multiplier(hhmm[0] * 60 + hhmm[1]) == mult


def test_impact_when_participation_negative_then_error_says_expected_and_was():
    with pytest.raises(ValueError, match="expected finite and >= 0, was not"):
        temporary_impact(0.02, -0.1)
    with pytest.raises(ValueError, match="alpha <= 1.5, was gamma=0.1, alpha=2"):
        ImpactParams(gamma=0.1, alpha=2.0, eta=0.1)


def _simulate_fills(rng, truth: ImpactParams, n: int, fills_per_parent: int = 5):
    """Parents executed as several fills whose prices carry known impact plus noise."""
    x = np.exp(rng.uniform(np.log(1e-3), np.log(0.3), n))          # Q/V
    sigma = rng.uniform(0.01, 0.03, n)                               # daily vol
    minute = rng.integers(570, 960, n)
    mult = TimeOfDay().multiplier(minute)
    side = rng.choice([-1, 1], n)
    arrival = rng.uniform(20, 500, n)
    cost = expected_slippage(sigma, x, truth, mult)                  # fraction of price
    slip = np.empty(n)
    post = np.empty(n)
    for i in range(n):
        # Each fill's price: arrival moved by the cost, with noise a quarter of the cost
        # (plus a small floor) around it; equal fill sizes.
        noise = rng.normal(0.0, 0.25 * cost[i] + 2e-5, fills_per_parent)
        px = arrival[i] * (1 + side[i] * (cost[i] + noise))
        avg = px.mean()
        slip[i] = side[i] * (avg - arrival[i]) / arrival[i]
        # Price after the temporary part decayed: the permanent impact, noisy.
        later = arrival[i] * (1 + side[i] * (permanent_impact(sigma[i], x[i], truth)
                                             + rng.normal(0, 0.25 * permanent_impact(sigma[i], x[i], truth) + 2e-5)))
        post[i] = side[i] * (later - arrival[i]) / arrival[i]
    return x, sigma, mult, slip, post


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_calibration_when_fills_simulated_with_known_params_then_all_recovered_within_10pct(seed):
    truth = ImpactParams(gamma=0.3, alpha=0.6, eta=0.5)
    x, sigma, mult, slip, post = _simulate_fills(np.random.default_rng(seed), truth, 3000)
    cal = calibrate(x, sigma, slip, multiplier=mult, post_move=post)
    got = cal.params
    assert got.gamma == pytest.approx(truth.gamma, rel=0.10)
    assert got.alpha == pytest.approx(truth.alpha, rel=0.10)
    assert got.eta == pytest.approx(truth.eta, rel=0.10)
    assert cal.n == 3000 and cal.method == "nls"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_calibration_when_only_slippage_known_then_temporary_within_10pct_eta_looser(seed):
    # Without the post-trade move, eta enters only as a half-weight linear term
    # beside the power law: it is weakly identified (seen 2-13 % off), so the
    # daemon should journal the post-trade price; gamma and alpha stay tight.
    truth = ImpactParams(gamma=0.3, alpha=0.6, eta=0.5)
    x, sigma, mult, slip, _ = _simulate_fills(np.random.default_rng(seed), truth, 3000)
    got = calibrate(x, sigma, slip, multiplier=mult).params
    assert got.gamma == pytest.approx(truth.gamma, rel=0.10)
    assert got.alpha == pytest.approx(truth.alpha, rel=0.10)
    assert got.eta == pytest.approx(truth.eta, rel=0.25)


def test_calibration_when_time_of_day_ignored_then_gamma_biased_upward():
    # The multiplier matters: fitting without it attributes the hour's cost to gamma.
    truth = ImpactParams(gamma=0.3, alpha=0.6, eta=0.5)
    x, sigma, mult, slip, post = _simulate_fills(np.random.default_rng(5), truth, 2000)
    with_tod = calibrate(x, sigma, slip, multiplier=mult, post_move=post).params.gamma
    without = calibrate(x, sigma, slip, post_move=post).params.gamma
    assert abs(with_tod - 0.3) < abs(without - 0.3) and without > 0.3


def _ac_oracle(X, N, tau, sigma, eta, gamma, lam):
    """Minimise E + lam * Var over the holdings x_1..x_{N-1} directly (a linear system)."""
    eta_t = eta - 0.5 * gamma * tau
    # d/dx_j: (2 eta_t / tau)(2 x_j - x_{j-1} - x_{j+1}) + 2 lam sigma^2 tau x_j = 0
    a = 2 * eta_t / tau
    b = 2 * lam * sigma ** 2 * tau
    A = np.zeros((N - 1, N - 1))
    rhs = np.zeros(N - 1)
    for j in range(N - 1):
        A[j, j] = 2 * a + b
        if j > 0:
            A[j, j - 1] = -a
        if j < N - 2:
            A[j, j + 1] = -a
    rhs[0] = a * X
    hold = np.concatenate([[X], np.linalg.solve(A, rhs), [0.0]])
    return -np.diff(hold)


@pytest.mark.parametrize("lam", [1e-7, 1e-6, 1e-5])
def test_ac_schedule_when_risk_averse_then_equals_numerical_optimum(lam):
    X, N, tau, sigma, eta, gamma = 1e5, 20, 1.0, 0.3, 2.5e-6, 2.5e-7
    got = ac_schedule(X, N, tau, sigma, eta, gamma, lam)
    want = _ac_oracle(X, N, tau, sigma, eta, gamma, lam)
    assert got == pytest.approx(want, rel=1e-8)
    assert got.sum() == pytest.approx(X)
    assert np.all(np.diff(got) < 0)  # front-loaded


def test_ac_schedule_when_no_risk_aversion_then_straight_line_and_lots_sum_exactly():
    lin = ac_schedule(1000.0, 8, 1.0, 0.3, 1e-3, 0.0, 0.0)
    assert lin == pytest.approx(np.full(8, 125.0))
    lots = ac_schedule(1.23457, 7, 1.0, 0.3, 2.5e-6, 2.5e-7, 1e-5, lot=1e-5)
    assert np.round(lots / 1e-5).sum() == 123457
    assert np.allclose(lots / 1e-5, np.round(lots / 1e-5))


def test_ac_schedule_when_more_risk_averse_then_trades_earlier():
    args = (1e5, 20, 1.0, 0.3, 2.5e-6, 2.5e-7)
    first = [ac_schedule(*args, lam)[0] for lam in (0.0, 1e-7, 1e-6, 1e-5)]
    assert all(b > a for a, b in zip(first, first[1:]))


def test_ac_linear_coefficients_when_from_impact_params_then_scale_with_price_and_volume():
    eta, gam = ac_linear_coefficients(100.0, 0.01, 1e6, ImpactParams(gamma=0.2, alpha=0.6, eta=0.3), 1.0)
    assert eta == pytest.approx(100 * 0.01 * 0.2 / 1e6)
    assert gam == pytest.approx(100 * 0.01 * 0.3 / 1e6)
