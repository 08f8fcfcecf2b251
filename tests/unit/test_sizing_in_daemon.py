"""The full sizing, the rebalancer and the sessions in the daemon's own steps.

A feature row (the inputs the features stage keeps: VIX, HMM probabilities, GARCH variance,
spread, traded value) goes through infer's half of the sizing (``size_signals_full``, what
``infer_step`` runs with ``risk.sizing``) and risk's (``risk_step``: the drawdown ladder's
multiplier, the cap, the benefit/cost filter, then the gate); the rebalancer through
``risk_rebalance`` and the day roll through ``risk_watch``: the calls the stages, the
backtest's compiled loop and the replay make.  Only the ONNX call is left out (the
prediction is given).
"""
from __future__ import annotations

import datetime as dt

import msgspec
import numpy as np
import pytest

from alphad.daemon.config import decode_config
from alphad.daemon.infer.core import size_signals_full
from alphad.daemon.risk import core as rk
from alphad.daemon.risk.codes import (A_DAY_START_EQUITY, A_EQUITY, A_LOSS_REF, A_RISK_MULT, B_LAST_PX, B_OPEN_BUY,
                                      B_OPEN_SELL, DENY_TRADING_HOURS, REASON_NAMES, SEC_EXPOSURE)
from alphad.daemon.risk.config import RebalancerConfig, SizingConfig
from alphad.daemon.risk.portfolio import apply_fill, on_mark
from alphad.ipc import metrics as mx
from alphad.ipc.control import C_STATE, HALTED
from alphad.ipc.dtypes import FEATURE_DTYPE, ORDER_DTYPE, ORDER_F_TRIM, SIG_F_SIZED, SIGNAL_DTYPE
from alphad.kernels import sizing as sz

EQUITY = 1_000_000.0
CARD = {"oos_win_rate": 0.6, "oos_payoff_ratio": 1.5, "prediction_scale": 0.01}  # full Kelly 1/3

BASE = {
    "universe": [{"id": 0, "symbol": "AAA", "sector": "Tech"}, {"id": 1, "symbol": "BBB", "sector": "Tech"},
                 {"id": 2, "symbol": "CCC", "sector": "Tech", "lot_size": 100}, {"id": 3, "symbol": "XXX",
                                                                                "sector": "Energy"}],
    "risk": {
        "initial_equity": EQUITY,
        "instrument_defaults": {"max_order_qty": 1e6, "max_order_notional": 1e7, "max_position_shares": 1e6,
                                "max_position_weight": 1.0},
        "account": {"daily_loss_limit": 0.5, "sector_limit": 0.25, "sector_warning": 0.2, "throttle_rate": 1e6,
                    "throttle_burst": 1e6, "max_leverage": 10.0, "max_gross_notional": 1e8,
                    "max_net_notional": 1e8},
        "sizing": {"max_position_weight": 0.2},
    },
}
#: The row's inputs: VIX in the 20..25 band (0.8), all bull, 1% daily volatility, no quote.
ROW = {"vix": 22.0, "p_bull": 1.0, "p_bear": 0.0, "p_sideways": 0.0, "variance": 1e-4, "half_spread": np.nan,
       "adv": 1e9}


def config(**risk):
    raw = msgspec.json.decode(msgspec.json.encode(BASE))
    for key, value in risk.items():
        section, _, name = key.partition("__")
        if name:
            raw["risk"].setdefault(section, {})[name] = value
        else:
            raw["risk"][section] = value
    return decode_config(msgspec.yaml.encode(raw).decode())


def new_core(cfg, m=None):
    core = rk.RiskCore(cfg.universe, cfg.risk, np.zeros(7, np.int64), metrics=m)
    for i in range(len(cfg.universe)):
        on_mark(i, 100.0, core.limits, core.book, core.sectors, core.account)
    return core


def signal(cfg, prediction=0.005, inst=0, seq=1, inputs=(True, True, True), **row):
    """Infer's half on one row: the signal ``infer_step`` writes."""
    params, table = sz.sizing_params(cfg.risk.sizing, **CARD, use_vix=inputs[0], use_regime=inputs[1],
                                     use_vol=inputs[2])
    rows = np.zeros(1, FEATURE_DTYPE)
    r = rows[0]
    r["instrument"], r["mid"], r["seq"] = inst, 100.0, seq
    for name, value in {**ROW, **row}.items():
        r[name] = value
    sigs = np.zeros(1, SIGNAL_DTYPE)
    size_signals_full(rows, 1, np.array([prediction]), params, table, np.zeros(3), np.zeros(sz.N_MULTS), sigs, 0)
    return sigs


def gate(core, sigs, now=0):
    out = np.zeros(4, ORDER_DTYPE)
    k = rk.risk_step(core.state, sigs, len(sigs), out, now)
    return out[:k]


def sized(cfg=None, prediction=0.005, **row):
    """(orders, denials by reason name) of one sized signal on a fresh book."""
    cfg = cfg or config()
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(cfg, m)
    orders = gate(core, signal(cfg, prediction, **row))
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    return orders, {REASON_NAMES[c]: int(v) for c, v in enumerate(block.denials_by_reason()) if v}


def baseline_weight():
    kelly = 0.25 * (0.6 - 0.4 / 1.5)
    vol = 0.15 / np.sqrt(1e-4 * 252)
    return 0.5 * kelly * 1.0 * 0.8 * vol  # conviction 0.005 / 0.01, bull, VIX band 0.8


def test_sized_order_when_inputs_known_then_weight_is_the_product_and_journaled_with_every_multiplier():
    orders, denied = sized()
    assert denied == {} and len(orders) == 1
    o = orders[0]
    w = baseline_weight()
    assert o["target_weight"] == pytest.approx(w, rel=1e-12)
    assert o["qty"] == np.trunc(w * EQUITY / 100.0) and o["side"] == 1
    assert (o["prediction"], o["m_conviction"], o["m_regime"], o["m_vix"], o["m_risk"]) == (0.005, 0.5, 1.0, 0.8, 1.0)
    assert o["m_kelly"] == pytest.approx(0.25 / 3) and o["m_vol"] == pytest.approx(0.15 / np.sqrt(0.0252))


def test_vix_at_kill_level_when_long_then_only_orders_that_reduce_and_none_that_grow():
    cfg = config()
    core = new_core(cfg)
    (first,) = gate(core, signal(cfg, seq=1))
    apply_fill(0, 1, first["qty"], 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    core.book[0, B_OPEN_BUY] = 0.0  # the open buy is filled
    for seq, prediction in ((2, 0.005), (3, 0.01)):  # a stronger buy signal at VIX 45 still sells
        sig = signal(cfg, prediction, seq=seq, vix=45.0)
        assert sig[0]["code"] == sz.SIZE_VIX_KILL and sig[0]["flags"] == SIG_F_SIZED
        orders = gate(core, sig)
        assert all(o["side"] == -1 for o in orders)
    assert core.book[0, B_OPEN_SELL] == first["qty"]  # the whole position, once
    for other in (1, 3):  # a flat instrument gets no order at all
        assert len(gate(core, signal(cfg, 0.01, inst=other, seq=10 + other, vix=60.0))) == 0


def test_bear_regime_when_probable_then_its_multiplier_applies():
    bull, _ = sized()
    bear, _ = sized(p_bull=0.0, p_bear=1.0)
    mixed, _ = sized(p_bull=0.5, p_bear=0.5)
    assert bear[0]["m_regime"] == 0.3 and bear[0]["target_weight"] == pytest.approx(0.3 * bull[0]["target_weight"])
    assert mixed[0]["m_regime"] == pytest.approx(0.65)


def test_garch_variance_when_it_rises_then_size_shrinks():
    calm, _ = sized(variance=1e-4)
    wild, _ = sized(variance=4e-4)
    assert wild[0]["m_vol"] == pytest.approx(calm[0]["m_vol"] / 2) and wild[0]["qty"] < calm[0]["qty"]
    none, _ = sized(variance=np.nan)  # no variance forecast: no risk
    assert len(none) == 0


def test_edge_below_cost_multiple_when_trade_adds_risk_then_dropped_as_cost_filtered():
    _, denied = sized(prediction=0.0005)  # 5 bps of edge, 2 x ~3 bps of cost
    assert denied == {"cost_filtered": 1}
    orders, denied = sized(prediction=0.0005, half_spread=0.00005)  # the live spread, not the bar estimate
    assert len(orders) == 1 and denied == {}


def test_emergency_step_when_reached_by_the_ladder_then_new_risk_is_halved():
    cfg = config()
    base, _ = sized(cfg)
    core = new_core(cfg)
    apply_fill(3, 1, 1000.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    on_mark(3, 15.0, core.limits, core.book, core.sectors, core.account)  # -85k: 8.5% down
    rk.risk_watch(core.state, 1)
    assert core.account[A_RISK_MULT] == 0.5
    rk.risk_resume(core.state, 2)  # the operator lets it trade again; the ladder's multiplier stays
    (o,) = gate(core, signal(cfg), now=3)
    assert o["m_risk"] == 0.5 and o["target_weight"] == pytest.approx(base[0]["target_weight"] / 2)


# Every key of risk.sizing: (key, value) -> the order (or its absence) changes.
SIZING_KEYS = [
    ("kelly_fraction", 0.5), ("regime_multipliers", [0.5, 0.3, 0.6]), ("vix_breaks", [25.0, 30.0, 35.0, 40.0]),
    ("vix_multipliers", [1.0, 0.5, 0.6, 0.4, 0.25]), ("vix_kill", 21.0), ("target_annual_vol", 0.075),
    ("periods_per_year", 63.0), ("max_vol_multiplier", 0.5), ("max_position_weight", 0.01),
    ("cost_multiple", 20.0), ("fee_rate", 0.01), ("impact_coefficient", 100.0), ("bar_half_spread_bps", 100.0),
    ("fixed_fraction", 0.05),
]


def test_sizing_and_rebalancer_keys_when_listed_then_every_field_is_covered():
    assert sorted(k for k, _ in SIZING_KEYS) == sorted(f.name for f in msgspec.structs.fields(SizingConfig))
    assert sorted(k for k, _ in REB_KEYS) == sorted(f.name for f in msgspec.structs.fields(RebalancerConfig))


@pytest.mark.parametrize("key,value", SIZING_KEYS)
def test_sizing_key_when_changed_then_the_order_changes(key, value):
    base, _ = sized(config())
    changed, denied = sized(config(**{f"sizing__{key}": value}))
    assert len(base) == 1
    before = (float(base[0]["qty"]), float(base[0]["target_weight"]))
    after = (float(changed[0]["qty"]), float(changed[0]["target_weight"])) if len(changed) else None
    assert after != before, f"risk.sizing.{key}: {value} changed nothing"


def test_linear_sizing_when_no_sizing_section_then_model_weight_applies_and_a_mixed_config_is_refused():
    assert config(sizing=None).risk.sizing is None
    raw = msgspec.json.decode(msgspec.json.encode(BASE))
    raw["model"] = {"weight_per_unit": 0.5}
    with pytest.raises(ValueError, match="risk.sizing replaces"):
        decode_config(msgspec.yaml.encode(raw).decode())


# -- the rebalancer -------------------------------------------------------------------------------
def tech_book(**reb):
    """Tech holds AAA 150k, BBB 100k, CCC 50k: 30% of equity against a 25% limit."""
    cfg = config(rebalancer={"cooldown_s": 900.0, **reb})
    core = new_core(cfg)
    for i, q in enumerate([1500, 1000, 500]):
        apply_fill(i, 1, float(q), 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    return core


def trims(core, now=0):
    out = np.zeros(8, ORDER_DTYPE)
    k = rk.risk_rebalance(core.state, out, now)
    return [(int(o["instrument"]), int(o["side"]), float(o["qty"])) for o in out[:k]], out[:k]


def test_rebalancer_when_sector_over_limit_then_trims_through_the_gate_to_limit_less_buffer():
    core = tech_book()
    tech = 1  # sectors sorted: Energy, Tech
    assert core.sectors[tech, SEC_EXPOSURE] == pytest.approx(0.30 * EQUITY)
    made, out = trims(core)
    assert made == [(0, -1, 600.0)] and (out["flags"] == ORDER_F_TRIM).all()  # largest first, to 24%
    assert np.isnan(out["prediction"]).all()
    assert trims(tech_book(), 0)[0] != [] and trims(new_core(config()))[0] == []  # no section: no trims
    core.control[C_STATE] = HALTED  # through the gate: a halted account trims nothing
    assert trims(core, 10**13)[0] == []


REB_KEYS = [("method", "pro_rata"), ("target_buffer", 0.05), ("min_trim_value", 100_000.0),
            ("daily_turnover_cap", 0.01), ("cooldown_s", 0.0)]


@pytest.mark.parametrize("key,value", REB_KEYS)
def test_rebalancer_key_when_changed_then_the_trims_change(key, value):
    def two_passes(core):  # a second look one second later (the cooldown's business)
        return trims(core, 0)[0] + trims(core, 10**9)[0]

    assert two_passes(tech_book(**{key: value})) != two_passes(tech_book())


# -- sessions: the day roll and the trading hours -----------------------------------------------------
def utc(*args) -> int:
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()) * 10**9


def losing_book(**sessions):
    cfg = config(sessions={"calendar": "XNYS", **sessions}, account={**BASE["risk"]["account"],
                                                                     "daily_loss_limit": 0.05})
    core = new_core(cfg)
    apply_fill(3, 1, 10_000.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    return core


def lose(core, fraction, now):
    """Mark XXX down by ``fraction`` of equity at ``now`` and run the watch."""
    px = core.book[3, B_LAST_PX]
    on_mark(3, px - fraction * EQUITY / 10_000.0, core.limits, core.book, core.sectors, core.account)
    rk.risk_watch(core.state, now)


@pytest.mark.parametrize("thursday,holiday_or_weekend,monday_open", [
    # Thursday, then Independence Day observed (Friday 2020-07-03), the weekend, Monday before its open
    (utc(2020, 7, 2, 15), [utc(2020, 7, 3, 15), utc(2020, 7, 4, 15), utc(2020, 7, 6, 13, 29)], utc(2020, 7, 6, 13, 30)),
    # a Friday session, its evening after the close, the weekend, Monday before its open (EST)
    (utc(2021, 1, 8, 15), [utc(2021, 1, 8, 21, 1), utc(2021, 1, 9, 15), utc(2021, 1, 10, 23),
                           utc(2021, 1, 11, 14, 29)], utc(2021, 1, 11, 14, 30)),
])
def test_daily_loss_limit_when_a_session_opens_then_it_restarts_and_not_before(thursday, holiday_or_weekend,
                                                                               monday_open):
    core = losing_book()
    rk.risk_watch(core.state, thursday)  # the first look notes the session: a start is not a roll
    start = core.account[A_DAY_START_EQUITY]
    lose(core, 0.03, thursday + 1)
    for t in holiday_or_weekend:  # 2020-07-03 is Independence Day observed; then a weekend
        rk.risk_watch(core.state, t)
        assert core.account[A_DAY_START_EQUITY] == start
    rk.risk_watch(core.state, monday_open)
    assert core.account[A_DAY_START_EQUITY] == core.account[A_LOSS_REF] == core.account[A_EQUITY] < start
    lose(core, 0.03, monday_open + 1)  # 3% more: 6% since Thursday, 3% today: still trading
    assert core.control[C_STATE] != HALTED
    same_day = losing_book()
    rk.risk_watch(same_day.state, thursday)
    lose(same_day, 0.03, thursday + 1)
    lose(same_day, 0.03, thursday + 2)  # 6% in one session: the kill switch
    assert same_day.control[C_STATE] == HALTED


def test_order_outside_trading_hours_when_denied_then_reason_is_trading_hours_and_queue_lets_it_through():
    saturday, monday = utc(2020, 7, 4, 15), utc(2020, 7, 6, 14)
    for now, queue, expect in ((saturday, False, DENY_TRADING_HOURS), (monday, False, None),
                               (saturday, True, None)):
        cfg = config(sessions={"calendar": "XNYS", "outside_hours": "queue" if queue else "deny"})
        m = np.zeros(mx.SIZE // 8, np.int64)
        core = new_core(cfg, m)
        sig = signal(cfg)
        sig["t_origin"] = now
        orders = gate(core, sig, now=now)
        if expect is None:
            assert len(orders) == 1
        else:
            assert len(orders) == 0 and core.denials[0]["reason"] == expect
            assert REASON_NAMES[expect] == "trading_hours"


# -- portfolio risk: VaR/CVaR and the correlation monitor, to /metrics ------------------------------
def test_portfolio_risk_when_days_roll_then_var_cvar_and_correlation_of_the_holdings_are_exported(prefix):
    from alphad.daemon.risk.analytics import portfolio_risk
    from alphad.daemon.risk.portfolio import correlation_matrix, correlation_summary, portfolio_var_cvar
    from alphad.ipc.control import ControlBlock
    from alphad.ops.exporter import AlphadCollector

    cfg = config()
    core = new_core(cfg)
    apply_fill(0, 1, 1000.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    apply_fill(3, -1, 500.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    rng = np.random.default_rng(3)
    px = np.full(4, 100.0)
    rk.risk_watch(core.state, 0)  # 24/7: a day rolls at each 00:00 UTC
    for day in range(1, 41):
        px *= 1.0 + rng.normal(0.0, 0.02, 4)
        for i in range(4):
            on_mark(i, px[i], core.limits, core.book, core.sectors, core.account)
        rk.risk_watch(core.state, day * rk.DAY_NS + 1)
    assert core.day_n[0] == 40
    var, cvar, corr = portfolio_risk(core.day_rets, core.day_n[0], core.book, core.account[A_EQUITY])
    rets = core.day_rets[1:40][:, [0, 3]]  # the first roll has no previous mark
    values = core.book[[0, 3], 0] * core.book[[0, 3], B_LAST_PX]
    want_var, want_cvar = portfolio_var_cvar(rets, values, (0.95,))[0.95]
    assert var == pytest.approx(want_var / core.account[A_EQUITY]) and cvar >= var > 0
    assert cvar == pytest.approx(want_cvar / core.account[A_EQUITY])
    assert corr == pytest.approx(correlation_summary(correlation_matrix(rets))[0])
    assert np.isnan(portfolio_risk(core.day_rets, 10, core.book, 1e6)[0])  # under 20 days: no estimate

    block = mx.MetricsBlock.create(f"{prefix}.metrics")  # under the prefix: the fixture removes it
    control = ControlBlock.create(f"{prefix}.control")
    try:
        rk.publish_gauges(core.account, core.last_size, block.gauges)
        block.gauges[mx.G_VAR_95], block.gauges[mx.G_CVAR_95], block.gauges[mx.G_MEAN_CORR] = var, cvar, corr
        samples = {(f.name, s.labels.get("measure") or s.labels.get("kind")): s.value
                   for f in AlphadCollector(block, control).collect() for s in f.samples}
        assert samples[("alphad_portfolio_risk", "var_95")] == pytest.approx(var)
        assert samples[("alphad_portfolio_risk", "mean_correlation")] == pytest.approx(corr)
        assert samples[("alphad_sizing_multiplier", "risk")] == 1.0
    finally:
        block.close()
        control.close()


def test_emergency_step_when_sizing_is_linear_then_the_target_weight_is_halved_too():
    cfg = config(sizing=None)
    core = new_core(cfg)
    apply_fill(3, 1, 1000.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    on_mark(3, 15.0, core.limits, core.book, core.sectors, core.account)
    rk.risk_watch(core.state, 1)
    rk.risk_resume(core.state, 2)
    sig = np.zeros(1, SIGNAL_DTYPE)
    sig[0]["target_weight"], sig[0]["ref_px"], sig[0]["seq"], sig[0]["t_origin"] = 0.02, 100.0, 1, 3
    (o,) = gate(core, sig, now=3)
    assert o["m_risk"] == 0.5 and o["target_weight"] == 0.01
    assert o["qty"] == np.trunc(0.01 * core.account[A_EQUITY] / 100.0)


def test_instrument_calendar_when_set_then_its_hours_apply_and_the_others_keep_the_account_calendar():
    saturday = utc(2020, 7, 4, 15)
    cfg = config(sessions={"calendar": "24/7"}, instruments={"AAA": {**BASE["risk"]["instrument_defaults"],
                                                                       "calendar": "XNYS"}})
    core = new_core(cfg)
    for inst, expect in ((0, 0), (1, 1)):  # AAA trades NYSE hours, BBB the account's 24/7
        sig = signal(cfg, inst=inst, seq=1 + inst)
        sig["t_origin"] = saturday
        assert len(gate(core, sig, now=saturday)) == expect
    assert REASON_NAMES[core.denials[0]["reason"]] == "trading_hours" and core.denials[0]["instrument"] == 0
