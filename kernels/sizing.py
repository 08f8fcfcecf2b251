"""Sizing: model prediction to target weight, as pure ``@njit(cache=True)`` functions.

``weight = clip(prediction / prediction_scale, -1, 1)``  (conviction)
``       x kelly_fraction x max(0, p - (1 - p) / b)``      (fractional Kelly, model card OOS stats)
``         or fixed_fraction when it is > 0``              (a fixed fraction of equity in its place)
``       x regime multiplier``                            (HMM bull / bear / sideways probabilities)
``       x VIX multiplier``                               (band table; flat at the kill level)
``       x min(max_vol_mult, target_vol / forecast_vol)`` (GARCH volatility targeting)
``       x risk multiplier``                              (0.5 from the EMERGENCY drawdown step)
then capped at ``+/- max_position_weight`` and passed through the benefit/cost filter: a trade
that grows ``|weight|`` is dropped (target stays at the current weight) when the expected edge
``|prediction|`` is below ``cost_multiple`` x the estimated cost fraction (half spread + fees +
square-root impact).  Trades that reduce ``|weight|`` are never filtered: cutting risk is not a
bet on the edge.

The regime probabilities, VIX level and variance forecast are plain inputs: the features
stage keeps them (:mod:`alphad.daemon.features.regime`) and writes them into each row.

In the daemon the weight is made in two halves, each where its inputs live:

* infer, :func:`infer_weight`: conviction x Kelly x regime x VIX x volatility target, the
  multipliers written into the signal (the journal keeps them with the order);
* risk, :func:`finish_weight`: x the drawdown ladder's risk multiplier, the cap, then the
  benefit/cost filter: they need the account (its multiplier, equity, the current
  position), which risk owns, and risk takes signals in order, so a replay and a backtest
  finish every weight on the same book.

:func:`size_position` is the two halves in one call (the library form, tested alone).

Parameter vector (float64, ``P_*`` columns) built by :func:`sizing_params`; the VIX table is a
float64 ``(2, k)`` array (row 0 upper band edges ending in +inf, row 1 multipliers).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# -- sizing codes (signal.code; alphad.daemon.risk.codes re-exports them) -------------------------
#: A target weight was produced.
SIZE_OK = 0
#: VIX at or above the kill threshold: target is flat.
SIZE_VIX_KILL = 1
#: Expected edge below ``cost_multiple`` x estimated cost: target stays at the current weight.
SIZE_COST_FILTERED = 2
#: Prediction, scale or inputs not finite: target stays at the current weight.
SIZE_BAD_INPUT = 3
SIZE_NAMES = ("ok", "vix_kill", "cost_filtered", "bad_input")

#: HMM regime order of the probability vector.
REGIME_BULL = 0
REGIME_BEAR = 1
REGIME_SIDEWAYS = 2

# -- parameter vector columns ---------------------------------------------------------------------
P_PREDICTION_SCALE = 0
P_WIN_RATE = 1
P_PAYOFF = 2
P_KELLY_FRACTION = 3
P_MULT_BULL = 4
P_MULT_BEAR = 5
P_MULT_SIDEWAYS = 6
P_VIX_KILL = 7
P_TARGET_VOL = 8
P_PERIODS_PER_YEAR = 9
P_MAX_VOL_MULT = 10
P_MAX_WEIGHT = 11
P_COST_MULTIPLE = 12
P_FEE_RATE = 13
P_IMPACT_COEF = 14
P_USE_VIX = 15          # 1: the VIX multiplier applies (an input is configured), 0: it is 1
P_USE_REGIME = 16       # the same for the HMM regime multiplier
P_USE_VOL = 17          # the same for the volatility target
P_BAR_HALF_SPREAD = 18  # half spread assumed where the row has no quote (bars), fraction
P_FIXED_FRACTION = 19   # > 0: this fraction of equity replaces the Kelly multiplier; 0: fractional Kelly
N_PARAMS = 20

# -- the multipliers infer_weight reports (``mults``) ----------------------------------------------
M_CONVICTION = 0
M_KELLY = 1
M_REGIME = 2
M_VIX = 3
M_VOL = 4
N_MULTS = 5


@njit(cache=True)
def regime_multiplier(probs, params):
    """Probability-weighted regime multiplier ``sum(p_k m_k) / sum(p_k)``.

    ``probs`` is ``(3,)`` in bull, bear, sideways order.  Invalid probabilities (NaN, negative or
    all zero) give the most cautious multiplier of the three.
    """
    m0 = params[P_MULT_BULL]
    m1 = params[P_MULT_BEAR]
    m2 = params[P_MULT_SIDEWAYS]
    s = probs[0] + probs[1] + probs[2]
    if not (s > 0.0) or probs[0] < 0.0 or probs[1] < 0.0 or probs[2] < 0.0:
        return min(m0, min(m1, m2))
    return (probs[0] * m0 + probs[1] * m1 + probs[2] * m2) / s


@njit(cache=True)
def vix_multiplier(vix, vix_table, kill):
    """Multiplier of the VIX band containing ``vix``; 0.0 at or above ``kill``.

    Band k covers ``[edge[k-1], edge[k])``.  A NaN VIX gets the last (most cautious) band.
    """
    if vix >= kill:
        return 0.0
    k = vix_table.shape[1]
    if np.isnan(vix):
        return vix_table[1, k - 1]
    for j in range(k):
        if vix < vix_table[0, j]:
            return vix_table[1, j]
    return vix_table[1, k - 1]


@njit(cache=True)
def vol_target_multiplier(variance_forecast, target_annual_vol, periods_per_year, max_mult):
    """``min(max_mult, target_annual_vol / sqrt(variance_forecast x periods_per_year))``.

    ``variance_forecast`` is the per-period variance of simple returns (decimal, not percent:
    divide an ``arch`` forecast made on percent returns by 1e4).  A missing or non-positive
    forecast gives 0.0: no vol estimate, no risk.
    """
    if not (variance_forecast > 0.0 and np.isfinite(variance_forecast)):
        return 0.0
    ann = np.sqrt(variance_forecast * periods_per_year)
    return min(max_mult, target_annual_vol / ann)


@njit(cache=True)
def kelly_fraction(win_rate, payoff, fraction):
    """Fractional Kelly bet ``fraction x (p - (1 - p) / b)``, floored at 0 (no edge, no bet).

    Parameters
    ----------
    win_rate : float
        Out-of-sample probability of a winning trade ``p``.
    payoff : float
        Average win / average loss ``b`` (> 0).
    fraction : float
        Fraction of full Kelly (0.25 = quarter Kelly).
    """
    if not (payoff > 0.0) or not (win_rate >= 0.0 and win_rate <= 1.0):
        return 0.0
    f = win_rate - (1.0 - win_rate) / payoff
    return max(0.0, fraction * f)


@njit(cache=True)
def estimated_cost(trade_notional, half_spread, fee_rate, impact_coef, daily_vol, adv_notional):
    """Estimated one-way cost of a trade as a fraction of its notional.

    ``half_spread + fee_rate + impact_coef x daily_vol x sqrt(trade_notional / adv_notional)``
    (square-root impact).  An unknown ADV (<= 0 or NaN) drops the impact term.
    """
    c = half_spread + fee_rate
    if adv_notional > 0.0 and daily_vol > 0.0 and trade_notional > 0.0:
        c += impact_coef * daily_vol * np.sqrt(trade_notional / adv_notional)
    return c


@njit(cache=True)
def infer_weight(prediction, regime_probs, vix, variance_forecast, params, vix_table, mults):
    """Infer's half: ``conviction x Kelly x regime x VIX x vol target``; returns ``(code, weight)``.

    ``mults[M_*]`` receive each multiplier (a multiplier whose input is not configured,
    ``P_USE_*`` = 0, is 1; ``mults[M_KELLY]`` is ``P_FIXED_FRACTION`` when that is > 0).
    ``SIZE_VIX_KILL``: weight 0 (flat: every order it makes reduces); ``SIZE_BAD_INPUT``:
    weight NaN (no decision: the position stays).
    """
    for j in range(N_MULTS):
        mults[j] = np.nan
    scale = params[P_PREDICTION_SCALE]
    if not (np.isfinite(prediction) and scale > 0.0):
        return SIZE_BAD_INPUT, np.nan
    use_vix = params[P_USE_VIX] != 0.0
    if use_vix and vix >= params[P_VIX_KILL]:
        mults[M_VIX] = 0.0
        return SIZE_VIX_KILL, 0.0
    mults[M_CONVICTION] = min(1.0, max(-1.0, prediction / scale))
    fixed = params[P_FIXED_FRACTION]
    mults[M_KELLY] = fixed if fixed > 0.0 else kelly_fraction(params[P_WIN_RATE], params[P_PAYOFF],
                                                              params[P_KELLY_FRACTION])
    mults[M_REGIME] = regime_multiplier(regime_probs, params) if params[P_USE_REGIME] != 0.0 else 1.0
    mults[M_VIX] = vix_multiplier(vix, vix_table, params[P_VIX_KILL]) if use_vix else 1.0
    mults[M_VOL] = (vol_target_multiplier(variance_forecast, params[P_TARGET_VOL], params[P_PERIODS_PER_YEAR],
                                          params[P_MAX_VOL_MULT]) if params[P_USE_VOL] != 0.0 else 1.0)
    w = 1.0
    for j in range(N_MULTS):
        w *= mults[j]
    return SIZE_OK, w


@njit(cache=True)
def finish_weight(code, weight, current_weight, risk_mult, equity, params):
    """Risk's half: ``weight x risk_mult``, capped at ``max_position_weight``; returns
    ``(code, target)`` (``code, weight`` from :func:`infer_weight`; the benefit/cost filter,
    :func:`cost_filtered`, comes next)."""
    if code == SIZE_BAD_INPUT or not (np.isfinite(current_weight) and equity > 0.0 and np.isfinite(risk_mult)):
        return SIZE_BAD_INPUT, current_weight
    if code == SIZE_VIX_KILL:
        return SIZE_VIX_KILL, 0.0
    cap = params[P_MAX_WEIGHT]
    w = min(cap, max(-cap, weight * max(0.0, risk_mult)))
    return SIZE_OK, w


@njit(cache=True)
def cost_filtered(prediction, target, current_weight, half_spread, daily_vol, adv_notional, equity, params):
    """True when the trade from ``current_weight`` to ``target`` adds risk and the expected
    edge ``|prediction|`` is below ``cost_multiple`` x its estimated cost (a missing half
    spread, NaN, is ``params[P_BAR_HALF_SPREAD]``)."""
    adds_risk = abs(target) > abs(current_weight) or (target * current_weight < 0.0 and target != 0.0)
    if not adds_risk:
        return False
    hs = half_spread if np.isfinite(half_spread) else params[P_BAR_HALF_SPREAD]
    trade = abs(target - current_weight) * equity
    cost = estimated_cost(trade, hs, params[P_FEE_RATE], params[P_IMPACT_COEF], daily_vol, adv_notional)
    return abs(prediction) < params[P_COST_MULTIPLE] * cost


@njit(cache=True)
def size_position(prediction, current_weight, regime_probs, vix, variance_forecast, risk_mult,
                  half_spread, daily_vol, adv_notional, equity, params, vix_table, out):
    """Target weight for one instrument: :func:`infer_weight` then :func:`finish_weight` and
    :func:`cost_filtered`, as the daemon runs them across infer and risk.

    Parameters
    ----------
    prediction : float
        Model output: forecast return over the model horizon (decimal).
    current_weight : float
        Signed current weight, fraction of equity (the no-trade answer).
    regime_probs : float64 ``(3,)``
        HMM state probabilities, bull / bear / sideways.
    vix : float
        VIX level, index points.
    variance_forecast : float
        GARCH per-period variance of decimal returns.
    risk_mult : float
        Account risk multiplier (``account[A_RISK_MULT]``).
    half_spread : float
        Half the quoted spread, fraction of the mid.
    daily_vol : float
        Daily return volatility (decimal) for the impact term.
    adv_notional : float
        Average daily traded value, quote currency.
    equity : float
        Account equity, quote currency.
    params, vix_table : ndarray
        From :func:`sizing_params`.
    out : float64 array, length >= 1
        ``out[0]`` receives the target weight.

    Returns
    -------
    int
        ``SIZE_OK``, ``SIZE_VIX_KILL`` (target 0), ``SIZE_COST_FILTERED`` or ``SIZE_BAD_INPUT``
        (target = current weight).
    """
    mults = np.empty(N_MULTS)
    code, w = infer_weight(prediction, regime_probs, vix, variance_forecast, params, vix_table, mults)
    code, w = finish_weight(code, w, current_weight, risk_mult, equity, params)
    out[0] = w
    if code != SIZE_OK:
        return code
    if cost_filtered(prediction, w, current_weight, half_spread, daily_vol, adv_notional, equity, params):
        out[0] = current_weight
        return SIZE_COST_FILTERED
    return SIZE_OK


def sizing_params(cfg, *, oos_win_rate: float, oos_payoff_ratio: float, prediction_scale: float,
                  use_vix: bool = True, use_regime: bool = True, use_vol: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Parameter vector and VIX table for :func:`size_position`.

    Parameters
    ----------
    cfg : alphad.daemon.risk.config.SizingConfig
        Sizing section of the risk config.
    use_vix, use_regime, use_vol : bool
        Whether each input is configured (``features.regime``); a multiplier without its
        input is 1.
    oos_win_rate, oos_payoff_ratio, prediction_scale : float
        From the model card (``ModelCard.oos_win_rate`` ...).

    Raises
    ------
    ValueError
        Model card statistics out of range.
    """
    if not 0.0 <= oos_win_rate <= 1.0:
        raise ValueError(f"oos_win_rate expected in [0, 1], was {oos_win_rate}")
    if not oos_payoff_ratio > 0.0:
        raise ValueError(f"oos_payoff_ratio expected > 0, was {oos_payoff_ratio}")
    if not prediction_scale > 0.0:
        raise ValueError(f"prediction_scale expected > 0, was {prediction_scale}")
    p = np.zeros(N_PARAMS, np.float64)
    p[P_PREDICTION_SCALE] = prediction_scale
    p[P_WIN_RATE] = oos_win_rate
    p[P_PAYOFF] = oos_payoff_ratio
    p[P_KELLY_FRACTION] = cfg.kelly_fraction
    p[P_MULT_BULL], p[P_MULT_BEAR], p[P_MULT_SIDEWAYS] = cfg.regime_multipliers
    p[P_VIX_KILL] = cfg.vix_kill
    p[P_TARGET_VOL] = cfg.target_annual_vol
    p[P_PERIODS_PER_YEAR] = cfg.periods_per_year
    p[P_MAX_VOL_MULT] = cfg.max_vol_multiplier
    p[P_MAX_WEIGHT] = cfg.max_position_weight
    p[P_COST_MULTIPLE] = cfg.cost_multiple
    p[P_FEE_RATE] = cfg.fee_rate
    p[P_IMPACT_COEF] = cfg.impact_coefficient
    p[P_USE_VIX], p[P_USE_REGIME], p[P_USE_VOL] = float(use_vix), float(use_regime), float(use_vol)
    p[P_BAR_HALF_SPREAD] = cfg.bar_half_spread_bps * 1e-4
    p[P_FIXED_FRACTION] = cfg.fixed_fraction
    table = np.empty((2, len(cfg.vix_multipliers)), np.float64)
    table[0, :-1] = cfg.vix_breaks
    table[0, -1] = np.inf
    table[1] = cfg.vix_multipliers
    return p, table
