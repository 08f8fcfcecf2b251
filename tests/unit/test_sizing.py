"""Sizing: each multiplier against its formula and boundaries, GARCH vol targeting on real SPY
returns (arch as the forecaster), and the full prediction-to-weight path with its cost filter."""
from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pytest

from alphad.daemon.risk import codes as rc
from alphad.daemon.risk.config import SizingConfig
from alphad.kernels.sizing import (
    M_KELLY,
    N_MULTS,
    P_FIXED_FRACTION,
    estimated_cost,
    infer_weight,
    kelly_fraction,
    regime_multiplier,
    size_position,
    sizing_params,
    vix_multiplier,
    vol_target_multiplier,
)

CFG = SizingConfig()
PARAMS, VIX = sizing_params(CFG, oos_win_rate=0.55, oos_payoff_ratio=1.0, prediction_scale=0.01)
DAILY_VAR_15 = 0.15**2 / 252          # per-day variance of a 15% annual vol
BULL = np.array([1.0, 0.0, 0.0])


@pytest.mark.parametrize("p,b,frac,expect", [
    (0.55, 1.0, 1.0, 0.10),      # edge: full Kelly p - q/b
    (0.55, 1.0, 0.25, 0.025),    # quarter Kelly
    (0.40, 2.0, 0.5, 0.05),      # lower hit rate, bigger payoff
    (0.50, 1.0, 1.0, 0.0),       # boundary: no edge
    (0.45, 1.0, 1.0, 0.0),       # negative edge floors at zero
    (0.60, 0.0, 1.0, 0.0),       # invalid payoff
])
def test_kelly_fraction_when_edge_varies_then_matches_formula(p, b, frac, expect):
    assert kelly_fraction(p, b, frac) == pytest.approx(expect)


@pytest.mark.parametrize("vix,expect", [
    (12.0, 1.0), (19.99, 1.0), (20.0, 0.8), (27.5, 0.6), (34.99, 0.4), (35.0, 0.25),
    (44.99, 0.25), (45.0, 0.0), (80.86, 0.0), (float("nan"), 0.25),
])
def test_vix_multiplier_when_level_crosses_bands_then_table_value(vix, expect):
    assert vix_multiplier(vix, VIX, CFG.vix_kill) == expect


@pytest.mark.parametrize("probs,expect", [
    ([1, 0, 0], 1.0), ([0, 1, 0], 0.3), ([0, 0, 1], 0.6), ([0.5, 0.5, 0], 0.65),
    ([2, 2, 0], 0.65),                                     # unnormalised probabilities
    ([0, 0, 0], 0.3), ([np.nan, 0.5, 0.5], 0.3), ([-0.1, 1.1, 0], 0.3),  # invalid: most cautious
])
def test_regime_multiplier_when_probabilities_vary_then_weighted_mean(probs, expect):
    assert regime_multiplier(np.array(probs, float), PARAMS) == pytest.approx(expect)


@pytest.mark.parametrize("ann_vol,expect", [(0.30, 0.5), (0.15, 1.0), (0.075, 2.0), (0.05, 2.0)])
def test_vol_target_when_forecast_varies_then_target_over_forecast_capped(ann_vol, expect):
    assert vol_target_multiplier(ann_vol**2 / 252, 0.15, 252.0, 2.0) == pytest.approx(expect)


def test_vol_target_when_no_forecast_then_zero():
    for v in (0.0, -1e-4, np.nan, np.inf):
        assert vol_target_multiplier(v, 0.15, 252.0, 2.0) == 0.0


@pytest.mark.data
@pytest.mark.filterwarnings("ignore::arch.univariate.base.DataScaleWarning")
def test_vol_target_when_garch_forecast_on_spy_then_cuts_risk_in_crisis(shared_data):
    from arch import arch_model

    spy = pd.read_csv(shared_data / "daily" / "spy_daily_1999-2020.csv", index_col="date")["close"]
    r = spy.pct_change().dropna() * 100.0      # arch is conditioned for percent returns

    def mult(end):
        res = arch_model(r.loc["2003-01-01":end], vol="GARCH", p=1, q=1).fit(disp="off")
        var_pct2 = float(res.forecast(horizon=1).variance.iloc[-1, 0])
        var = var_pct2 / 1e4
        m = vol_target_multiplier(var, 0.15, 252.0, 2.0)
        assert m == pytest.approx(min(2.0, 0.15 / np.sqrt(var * 252)))
        return m

    calm, crisis = mult("2006-12-29"), mult("2008-10-10")
    assert calm > 1.0           # 2006: SPY ran at ~10% annual vol, so the target levers up
    assert crisis < 0.3         # the week of 2008-10-10: forecast vol above 50% annualised


def test_estimated_cost_when_adv_known_then_square_root_impact():
    c = estimated_cost(1e6, 0.0002, 0.0001, 0.1, 0.02, 1e8)
    assert c == pytest.approx(0.0003 + 0.1 * 0.02 * 0.1)
    assert estimated_cost(1e6, 0.0002, 0.0001, 0.1, 0.02, 0.0) == pytest.approx(0.0003)


def _size(pred, current=0.0, probs=BULL, vix=15.0, var=DAILY_VAR_15, risk=1.0, half_spread=0.0001,
          params=PARAMS):
    out = np.zeros(1)
    code = size_position(pred, current, probs, vix, var, risk, half_spread, 0.015, 5e8, 1e6,
                         params, VIX, out)
    return code, out[0]


def test_size_when_strong_signal_then_capped_at_max_position_weight():
    # conviction 1 x quarter Kelly 0.025 x 1 x 1 x 1 = 0.025 -> cap 0.02
    assert _size(0.02) == (rc.SIZE_OK, pytest.approx(0.02))
    assert _size(-0.02) == (rc.SIZE_OK, pytest.approx(-0.02))


def test_size_when_multipliers_stack_then_product_of_each():
    # conviction 0.5 x 0.025 x regime 0.3 (bear) x VIX 0.6 x vol 0.5 x risk 0.5
    code, w = _size(0.005, probs=np.array([0.0, 1.0, 0.0]), vix=27.0, var=0.30**2 / 252, risk=0.5)
    assert code == rc.SIZE_OK
    assert w == pytest.approx(0.5 * 0.025 * 0.3 * 0.6 * 0.5 * 0.5)


def test_size_when_vix_at_kill_then_flat_even_against_cost_filter():
    assert _size(0.02, current=0.015, vix=45.0) == (rc.SIZE_VIX_KILL, 0.0)


def test_size_when_edge_below_cost_multiple_then_trade_dropped():
    # cost ~ half spread 0.001 + fee 0.0001 + impact; 2 x cost > 0.002 = |prediction|
    code, w = _size(0.002, current=0.001, half_spread=0.001)
    assert code == rc.SIZE_COST_FILTERED and w == 0.001
    # boundary: edge comfortably above 2 x cost passes
    code, w = _size(0.004, current=0.001, half_spread=0.0005)
    assert code == rc.SIZE_OK and w > 0.001


def test_size_when_trade_reduces_risk_then_never_cost_filtered():
    code, w = _size(0.0001, current=0.02, half_spread=0.01)
    assert code == rc.SIZE_OK and abs(w) < 0.02


def test_size_when_inputs_bad_then_keeps_current_weight():
    assert _size(np.nan, current=0.01) == (rc.SIZE_BAD_INPUT, 0.01)
    out = np.zeros(1)
    assert size_position(0.01, 0.0, BULL, 15.0, DAILY_VAR_15, 1.0, 0.0, 0.0, 0.0, -5.0, PARAMS,
                         VIX, out) == rc.SIZE_BAD_INPUT


def test_sizing_params_when_card_stats_out_of_range_then_error_names_value():
    with pytest.raises(ValueError, match="oos_win_rate expected in \\[0, 1\\], was 1.5"):
        sizing_params(CFG, oos_win_rate=1.5, oos_payoff_ratio=1.0, prediction_scale=0.01)
    with pytest.raises(ValueError, match="prediction_scale expected > 0, was 0"):
        sizing_params(CFG, oos_win_rate=0.5, oos_payoff_ratio=1.0, prediction_scale=0)


def test_sizing_config_when_tables_inconsistent_then_rejected():
    with pytest.raises(msgspec.ValidationError, match="vix_multipliers expected 3 entries"):
        msgspec.convert({"vix_breaks": [20, 30], "vix_multipliers": [1.0]}, type=SizingConfig)
    with pytest.raises(msgspec.ValidationError, match="strictly ascending"):
        msgspec.convert({"vix_breaks": [30, 20], "vix_multipliers": [1, 1, 1]}, type=SizingConfig)
    with pytest.raises(msgspec.ValidationError, match="Expected `float` <= 1.0 - at `\\$.kelly_fraction`"):
        msgspec.convert({"kelly_fraction": 2.0}, type=SizingConfig)


# -- risk.sizing.fixed_fraction: a fixed fraction of equity in place of the Kelly multiplier ------
def _kelly_mult(params, pred=0.005):
    mults = np.zeros(N_MULTS)
    code, w = infer_weight(pred, BULL, 15.0, DAILY_VAR_15, params, VIX, mults)
    assert code == rc.SIZE_OK and w == pytest.approx(np.prod(mults), rel=1e-15)
    return mults[M_KELLY], w


def test_infer_weight_when_fixed_fraction_set_then_it_is_the_kelly_multiplier_else_fractional_kelly():
    assert CFG.fixed_fraction == 0.0 and PARAMS[P_FIXED_FRACTION] == 0.0
    assert _kelly_mult(PARAMS) == (pytest.approx(0.025), pytest.approx(0.5 * 0.025))  # quarter Kelly of p 0.55, b 1
    for fixed in (0.003, 0.1, 1.0):
        params, _ = sizing_params(SizingConfig(fixed_fraction=fixed), oos_win_rate=0.55, oos_payoff_ratio=1.0,
                                  prediction_scale=0.01)
        assert params[P_FIXED_FRACTION] == fixed
        assert _kelly_mult(params) == (fixed, pytest.approx(0.5 * fixed))  # conviction 0.5, the rest 1
    # the card's statistics no longer matter: a card with no edge (Kelly 0) still trades
    params, _ = sizing_params(SizingConfig(fixed_fraction=0.01), oos_win_rate=0.4, oos_payoff_ratio=1.0,
                              prediction_scale=0.01)
    assert _kelly_mult(params)[0] == 0.01
    assert _kelly_mult(sizing_params(CFG, oos_win_rate=0.4, oos_payoff_ratio=1.0, prediction_scale=0.01)[0])[0] == 0


def test_size_when_fixed_fraction_then_other_multipliers_cap_and_cost_filter_apply_as_with_kelly():
    params, _ = sizing_params(SizingConfig(fixed_fraction=0.01), oos_win_rate=0.55, oos_payoff_ratio=1.0,
                              prediction_scale=0.01)
    code, w = _size(0.005, probs=np.array([0.0, 1.0, 0.0]), vix=27.0, var=0.30**2 / 252, risk=0.5, params=params)
    assert code == rc.SIZE_OK and w == pytest.approx(0.5 * 0.01 * 0.3 * 0.6 * 0.5 * 0.5)
    assert _size(0.02, params=params) == (rc.SIZE_OK, pytest.approx(0.01))           # under the 0.02 cap
    big, _ = sizing_params(SizingConfig(fixed_fraction=0.5), oos_win_rate=0.55, oos_payoff_ratio=1.0,
                           prediction_scale=0.01)
    assert _size(0.02, params=big) == (rc.SIZE_OK, pytest.approx(0.02))              # capped
    assert _size(0.02, vix=45.0, params=big) == (rc.SIZE_VIX_KILL, 0.0)
    code, w = _size(0.002, current=0.001, half_spread=0.001, params=big)
    assert code == rc.SIZE_COST_FILTERED and w == 0.001


def test_sizing_config_when_fixed_fraction_out_of_range_then_rejected():
    with pytest.raises(msgspec.ValidationError, match="Expected `float` <= 1.0 - at `\\$.fixed_fraction`"):
        msgspec.convert({"fixed_fraction": 1.5}, type=SizingConfig)
    with pytest.raises(msgspec.ValidationError, match="Expected `float` >= 0.0 - at `\\$.fixed_fraction`"):
        msgspec.convert({"fixed_fraction": -0.1}, type=SizingConfig)


@pytest.mark.data
def test_backtest_when_fixed_fraction_then_orders_sized_on_it_instead_of_kelly(repo_root, shared_data, tmp_path):
    """The demo model on the Lean equity minute quotes (two sessions, cut by ``feed.trade_until``)
    with ``risk.sizing`` (no regime inputs: regime, VIX and vol multipliers 1): infer and risk
    read ``fixed_fraction`` from the parameter vector, so every sized order carries it as its
    Kelly multiplier and its weight is smaller than quarter Kelly's (0.08 with the demo card)."""
    from alphad.daemon.config import load_config
    from alphad.daemon.infer.model_card import read_card
    from alphad.daemon.shell.backtest import backtest
    from alphad.ipc.dtypes import ORDER_F_FLATTEN, ORDER_F_TRIM

    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["model"] = {"card": str(repo_root / raw["model"]["card"]), "runtime": "compiled"}  # no linear sizing
    raw["router"]["impact"] = {"enabled": False}
    raw["universe"] = [{"id": i, "symbol": s, "sector": sec, "tick_size": 0.01, "lot_size": 1.0} for i, (s, sec)
                       in enumerate([("AAPL", "Tech"), ("IBM", "Tech"), ("BAC", "Fin"), ("AIG", "Fin")])]
    raw["feed"] = {**raw["feed"], "path": str(shared_data / "intraday/lean_equity_minute_quotes.csv.gz"),
                   "format": "lean_minute", "loop": False, "trade_until": "2013-10-08"}
    card = read_card(repo_root / raw["model"]["card"])
    runs = {}
    for fixed in (0.0, 0.01):
        raw["risk"]["sizing"] = {"fixed_fraction": fixed, "max_position_weight": 0.02}
        (tmp_path / "c.yaml").write_bytes(msgspec.yaml.encode(raw))
        cfg, base = load_config(tmp_path / "c.yaml")
        orders, _ = backtest(cfg, base)
        runs[fixed] = orders[(orders["flags"] & (ORDER_F_FLATTEN | ORDER_F_TRIM)) == 0]
    kelly, fixed = runs[0.0], runs[0.01]
    quarter = kelly_fraction(card.oos_win_rate, card.oos_payoff_ratio, 0.25)
    assert len(kelly) > 100 and len(fixed) > 100 and quarter > 0.05
    assert np.allclose(kelly["m_kelly"], quarter, rtol=1e-12, atol=0) and (fixed["m_kelly"] == 0.01).all()
    for o in (kelly, fixed):  # the weight is the product of the multipliers, capped, as before
        product = o["m_conviction"] * o["m_kelly"] * o["m_regime"] * o["m_vix"] * o["m_vol"] * o["m_risk"]
        assert np.allclose(o["target_weight"], np.clip(product, -0.02, 0.02), rtol=1e-12, atol=0)
    assert np.abs(fixed["target_weight"]).max() <= 0.01 < np.abs(kelly["target_weight"]).max()
    assert np.median(np.abs(fixed["target_weight"])) < np.median(np.abs(kelly["target_weight"]))
    assert not np.array_equal(np.sort(kelly["qty"]), np.sort(fixed["qty"]))
