"""Pre-trade gate: every check passes, denies and holds its boundary; the kill switch latches.

The gate runs over real arrays built by ``build_risk_arrays``; positions come from real fills
booked by the portfolio core, prices from ``on_mark``.  Nothing is mocked.
"""
from __future__ import annotations

import datetime as dt

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.daemon.risk import codes as rc
from alphad.ipc import control as cw
from alphad.daemon.risk.portfolio import apply_fill, on_exec, on_mark, on_order_sent
from alphad.daemon.risk.checks import (
    check_batch,
    check_flatten_order,
    check_order,
    flatten_orders,
    gate_target,
    resume,
    set_state,
)
from alphad.daemon.risk.config import RiskConfig, build_risk_arrays, decode_risk_config, set_sessions
from alphad.ipc.dtypes import EXEC_DTYPE, EXEC_FILL

NAN = float("nan")
T0 = 1_700_000_000_000_000_000  # ns, any instant; sessions default to always-open

# (symbol, sector, tick, lot)
UNIVERSE = [
    ("AAA", "Information Technology", 0.01, 1.0),   # 0
    ("BBB", "Information Technology", 0.01, 1.0),   # 1
    ("DDD", "Information Technology", 0.01, 1.0),   # 2
    ("CCC", "Financials", 0.01, 1.0),               # 3
    ("EEE", "Energy", 0.01, 1.0),                   # 4
    ("SPY", "", 0.01, 1.0),                         # 5 (no sector)
    ("HTB", "Energy", 0.01, 1.0),                   # 6 not shortable
    ("SUSP", "Utilities", 0.01, 1.0),               # 7 not tradable
    ("LOT", "Materials", 0.05, 100.0),              # 8 round lots, nickel tick
    ("NOPX", "Materials", 0.01, 1.0),               # 9 never traded
    ("CHEAP", "Materials", 0.01, 1.0),              # 10 priced at 10, the last id
]
AAA, BBB, DDD, CCC, EEE, SPY, HTB, SUSP, LOT, NOPX, CHEAP = range(11)
EQUITY = 1_000_000.0


def base_config(inst_overrides: dict | None = None, **account) -> dict:
    acct = {"max_gross_notional": 5e6, "max_net_notional": 5e6, "max_leverage": 3.0,
            "daily_loss_limit": 0.02, "throttle_rate": 1000.0, "throttle_burst": 1000.0,
            "sector_limit": 0.25, "sector_warning": 0.20}
    acct.update(account)
    inst = {"max_order_qty": 1000.0, "max_order_notional": 50_000.0, "price_band": 0.05,
            "max_position_shares": 2000.0, "max_position_weight": 0.10}
    inst.update(inst_overrides or {})
    return {
        "instrument_defaults": inst,
        "instruments": {"HTB": {**inst, "shortable": False}, "SUSP": {**inst, "tradable": False}},
        "account": acct,
    }


class Gate:
    """Real risk arrays with every instrument marked at 100 (CHEAP at 10, NOPX unmarked)."""

    def __init__(self, cfg: dict | None = None, control=None):
        self.cfg = msgspec.convert(cfg or base_config(), type=RiskConfig)
        self.a = build_risk_arrays(self.cfg, UNIVERSE, equity=EQUITY, control=control)
        for i in range(len(UNIVERSE)):
            if i not in (CHEAP, NOPX):
                self.mark(i, 100.0)
        self.mark(CHEAP, 10.0)

    def mark(self, inst, px):
        a = self.a
        assert on_mark(inst, px, a.limits, a.book, a.sectors, a.account)

    def fill(self, inst, side, qty, px=None):
        a = self.a
        px = a.book[inst, rc.B_LAST_PX] if px is None else px
        assert apply_fill(inst, side, float(qty), float(px), 0.0, a.limits, a.book, a.sectors,
                          a.account) == 0

    def check(self, inst, side, qty, px=NAN, now=T0):
        return check_order(inst, side, float(qty), px, now, *self.a.gate_args())

    @property
    def state(self):
        return int(self.a.control[cw.C_STATE])


def _halted(g):
    set_state(g.a.control, cw.HALTED, cw.REASON_OPERATOR, T0)


def _reducing_long(g):
    g.fill(AAA, 1, 500)
    set_state(g.a.control, cw.REDUCING, cw.REASON_OPERATOR, T0)


def _long_aaa_1000(g):
    g.fill(AAA, 1, 1000)


def _long_cheap_1500(g):
    g.fill(CHEAP, 1, 1500)


def _long_aaa_600(g):
    g.fill(AAA, 1, 600)


def _it_180k(g):
    g.fill(AAA, 1, 900)
    g.fill(BBB, 1, 900)


def _it_210k(g):
    _it_180k(g)
    g.fill(DDD, 1, 300)


def _long_htb_100(g):
    g.fill(HTB, 1, 100)


def _gross_290k(g):
    g.fill(AAA, 1, 900)
    g.fill(CCC, 1, 1000)
    g.fill(SPY, 1, 1000)


def _nothing(g):
    pass


# name, config overrides (account), setup, (inst, side, qty, px) passing, denying, boundary,
# expected denial code.  The boundary order sits exactly on the limit and passes.
CASES = [
    ("halted", {}, _halted, None, (AAA, -1, 1, NAN), None, rc.DENY_HALTED),
    ("reducing", {}, _reducing_long, (AAA, -1, 100, NAN), (AAA, 1, 1, NAN), (AAA, -1, 500, NAN),
     rc.DENY_REDUCING),
    ("reducing_cross_zero", {}, _reducing_long, (AAA, -1, 499, NAN), (AAA, -1, 501, NAN),
     (AAA, -1, 500, NAN), rc.DENY_REDUCING),
    ("unknown_instrument", {}, _nothing, (AAA, 1, 1, NAN), (len(UNIVERSE), 1, 1, NAN),
     (len(UNIVERSE) - 1, 1, 1, NAN), rc.DENY_UNKNOWN_INSTRUMENT),
    ("unknown_negative_id", {}, _nothing, None, (-1, 1, 1, NAN), None, rc.DENY_UNKNOWN_INSTRUMENT),
    ("not_tradable", {}, _nothing, (EEE, 1, 1, NAN), (SUSP, 1, 1, NAN), None, rc.DENY_NOT_TRADABLE),
    ("bad_quantity_zero", {}, _nothing, (AAA, 1, 1, NAN), (AAA, 1, 0, NAN), None, rc.DENY_BAD_QUANTITY),
    ("bad_quantity_negative", {}, _nothing, None, (AAA, 1, -5, NAN), None, rc.DENY_BAD_QUANTITY),
    ("bad_quantity_nan", {}, _nothing, None, (AAA, 1, NAN, NAN), None, rc.DENY_BAD_QUANTITY),
    ("bad_side", {}, _nothing, None, (AAA, 0, 1, NAN), None, rc.DENY_BAD_QUANTITY),
    ("lot_size", {}, _nothing, (LOT, 1, 200, NAN), (LOT, 1, 150, NAN), (LOT, 1, 100, NAN),
     rc.DENY_LOT_SIZE),
    ("tick_size", {}, _nothing, (AAA, 1, 1, 100.07), (AAA, 1, 1, 100.005), (AAA, 1, 1, 99.99),
     rc.DENY_TICK_SIZE),
    ("tick_size_nickel", {}, _nothing, (LOT, 1, 100, 100.05), (LOT, 1, 100, 100.01), None,
     rc.DENY_TICK_SIZE),
    ("tick_size_negative", {}, _nothing, None, (AAA, 1, 1, -100.0), None, rc.DENY_TICK_SIZE),
    ("no_reference_price", {}, _nothing, (AAA, 1, 1, NAN), (NOPX, 1, 1, NAN), None,
     rc.DENY_NO_REFERENCE_PRICE),
    ("max_order_qty", {}, _nothing, (CHEAP, 1, 999, NAN), (CHEAP, 1, 1001, NAN),
     (CHEAP, 1, 1000, NAN), rc.DENY_MAX_ORDER_QTY),
    ("max_order_notional", {}, _nothing, (AAA, 1, 499, NAN), (AAA, 1, 501, NAN), (AAA, 1, 500, NAN),
     rc.DENY_MAX_ORDER_NOTIONAL),
    ("max_order_notional_limit_px", {}, _nothing, (AAA, 1, 480, 104.0), (AAA, 1, 481, 104.0),
     None, rc.DENY_MAX_ORDER_NOTIONAL),
    ("price_band_up", {}, _nothing, (AAA, 1, 1, 104.99), (AAA, 1, 1, 105.01), (AAA, 1, 1, 105.0),
     rc.DENY_PRICE_BAND),
    ("price_band_down", {}, _nothing, (AAA, -1, 1, 95.01), (AAA, 1, 1, 94.99), (AAA, 1, 1, 95.0),
     rc.DENY_PRICE_BAND),
    ("short_sale_instrument", {}, _long_htb_100, (HTB, -1, 50, NAN), (HTB, -1, 101, NAN),
     (HTB, -1, 100, NAN), rc.DENY_SHORT_SALE),
    ("short_sale_account", {"allow_short": False}, _nothing, (AAA, 1, 1, NAN), (AAA, -1, 1, NAN),
     None, rc.DENY_SHORT_SALE),
    ("short_sale_allowed", {}, _nothing, (AAA, -1, 1, NAN), None, None, None),
    ("position_shares", {}, _long_cheap_1500, (CHEAP, 1, 499, NAN), (CHEAP, 1, 501, NAN),
     (CHEAP, 1, 500, NAN), rc.DENY_POSITION_SHARES),
    ("position_weight", {}, _long_aaa_600, (AAA, 1, 399, NAN), (AAA, 1, 401, NAN), (AAA, 1, 400, NAN),
     rc.DENY_POSITION_WEIGHT),
    ("position_weight_short", {}, _nothing, (AAA, -1, 400, NAN), None, None, None),
    ("sector_exposure", {}, _it_210k, (DDD, 1, 300, NAN), (DDD, 1, 401, NAN), (DDD, 1, 400, NAN),
     rc.DENY_SECTOR_EXPOSURE),
    ("gross_exposure", {"max_gross_notional": 300_000.0}, _gross_290k, (EEE, 1, 99, NAN),
     (EEE, 1, 101, NAN), (EEE, 1, 100, NAN), rc.DENY_GROSS_EXPOSURE),
    ("net_exposure", {"max_net_notional": 300_000.0}, _gross_290k, (EEE, 1, 99, NAN),
     (EEE, 1, 101, NAN), (EEE, 1, 100, NAN), rc.DENY_NET_EXPOSURE),
    ("leverage", {"max_leverage": 0.3}, _gross_290k, (EEE, 1, 99, NAN), (EEE, 1, 101, NAN),
     (EEE, 1, 100, NAN), rc.DENY_LEVERAGE),
]


@pytest.mark.parametrize("name,acct,setup,passing,denying,boundary,code", CASES,
                         ids=[c[0] for c in CASES])
def test_check_when_order_passes_denies_or_sits_on_limit(name, acct, setup, passing, denying,
                                                          boundary, code):
    for order, expect in ((passing, rc.OK), (denying, code), (boundary, rc.OK)):
        if order is None:
            continue
        # Arrange: a fresh book per order so one order's throttle/state cannot leak to the next.
        g = Gate(base_config(**acct))
        setup(g)
        # Act
        got = g.check(*order)
        # Assert
        assert rc.reason_name(got) == rc.reason_name(expect), (name, order)


def test_reduce_order_when_position_is_over_limit_after_price_move_then_passes():
    g = Gate()
    g.fill(AAA, 1, 1000)          # 10% weight, at the limit
    g.mark(AAA, 104.0)            # drifts to 10.4%
    assert g.check(AAA, 1, 1) == rc.DENY_POSITION_WEIGHT
    assert g.check(AAA, -1, 100) == rc.OK


def test_sector_order_when_above_warning_level_then_passes_with_warning_bit():
    g = Gate()
    _it_180k(g)                   # 18%: below the 20% warning level
    assert g.check(DDD, 1, 100) == rc.OK
    assert g.a.control[cw.C_WARNINGS] == 0
    assert g.check(DDD, 1, 201) == rc.OK      # 20.1%
    assert g.a.control[cw.C_WARNINGS] & rc.WARN_SECTOR


def test_gate_when_working_orders_exist_then_counts_them_in_position_limit():
    g = Gate()
    a = g.a
    assert on_order_sent(77, AAA, 1, 600.0, a.oo_ids, a.oo_vals, a.limits, a.book, a.sectors,
                         a.account) == 0
    # 600 working + 401 would be 10.01% if everything fills.
    assert g.check(AAA, 1, 401) == rc.DENY_POSITION_WEIGHT
    assert g.check(AAA, 1, 400) == rc.OK


@pytest.mark.parametrize("offset_ns,expect", [
    (0, rc.OK),                                      # open, inclusive
    (-1_000, rc.DENY_TRADING_HOURS),                 # 1 us before the open
    (6 * 3600 * 10**9 + 1800 * 10**9 - 1_000, rc.OK),  # 1 us before the close
    (6 * 3600 * 10**9 + 1800 * 10**9, rc.DENY_TRADING_HOURS),  # close, exclusive
])
def test_trading_hours_when_clock_at_session_edges_then_open_inclusive_close_exclusive(offset_ns, expect):
    g = Gate({**base_config(), "sessions": {"calendar": "XNYS"}})
    set_sessions(g.a, g.cfg, dt.date(2024, 7, 1))
    # 09:30 New York on 2024-07-01 (EDT, UTC-4) is 13:30 UTC.
    open_ns = int(dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert g.check(AAA, 1, 1, now=open_ns + offset_ns) == expect


def test_throttle_when_burst_spent_then_denies_until_refill():
    g = Gate(base_config(throttle_rate=10.0, throttle_burst=5.0))
    for _ in range(5):
        assert g.check(AAA, 1, 1, now=T0) == rc.OK
    assert g.check(AAA, 1, 1, now=T0) == rc.DENY_THROTTLE
    assert g.check(AAA, 1, 1, now=T0 + 99_000_000) == rc.DENY_THROTTLE   # 0.99 token
    assert g.check(AAA, 1, 1, now=T0 + 100_000_000) == rc.OK              # 1.0 token, boundary
    assert g.check(AAA, 1, 1, now=T0 + 100_000_000) == rc.DENY_THROTTLE


def test_throttle_when_order_denied_earlier_then_no_token_spent():
    g = Gate(base_config(throttle_rate=10.0, throttle_burst=1.0))
    assert g.check(AAA, 1, 5000) == rc.DENY_MAX_ORDER_QTY
    assert g.check(AAA, 1, 1) == rc.OK


@pytest.mark.parametrize("loss_px,expect", [(80.01, rc.OK), (80.0, rc.OK), (79.99, rc.DENY_DAILY_LOSS)])
def test_daily_loss_when_loss_crosses_limit_then_kill_switch_latches(loss_px, expect):
    g = Gate()
    _long_aaa_1000(g)
    g.mark(AAA, loss_px)          # 1000 shares: 80.00 is exactly the 2% limit
    assert g.check(BBB, 1, 1) == expect
    assert g.state == (cw.HALTED if expect != rc.OK else cw.ACTIVE)


def test_kill_switch_when_tripped_then_nothing_passes_until_resume():
    g = Gate()
    _long_aaa_1000(g)
    g.mark(AAA, 79.0)
    assert g.check(BBB, 1, 1) == rc.DENY_DAILY_LOSS
    assert g.a.control[cw.C_STATE_REASON] == rc.DENY_DAILY_LOSS
    # Prices recover: still latched; every kind of order (a reducing sell too) is denied.
    g.mark(AAA, 100.0)
    for order in [(BBB, 1, 1), (AAA, -1, 1000), (CCC, -1, 5), (AAA, 1, 1, 100.0)]:
        assert g.check(*order) == rc.DENY_HALTED
    # A restart of the risk stage re-attaches the same control block: still halted.
    restarted = Gate(control=g.a.control)
    assert restarted.check(BBB, 1, 1) == rc.DENY_HALTED
    resume(g.a.control, g.a.account, T0)
    assert g.state == cw.ACTIVE
    assert g.check(BBB, 1, 1) == rc.OK


def test_resume_when_loss_persists_then_limit_rearmed_from_current_equity():
    g = Gate()
    _long_aaa_1000(g)
    g.mark(AAA, 79.0)
    assert g.check(BBB, 1, 1) == rc.DENY_DAILY_LOSS
    resume(g.a.control, g.a.account, T0)
    assert g.check(BBB, 1, 1) == rc.OK        # the 21k loss so far is accepted
    g.mark(AAA, 79.0 - 20.0)                 # a further 2% of 979k = 19.58k: trips again
    assert g.check(BBB, 1, 1) == rc.DENY_DAILY_LOSS


def test_check_batch_when_mixed_orders_then_codes_match_single_calls():
    g1, g2 = Gate(), Gate()
    insts = np.array([AAA, SUSP, AAA, LOT, 99], np.int64)
    sides = np.array([1, 1, 1, 1, 1], np.int64)
    qtys = np.array([10.0, 1.0, 501.0, 150.0, 1.0])
    pxs = np.full(5, NAN)
    now = np.full(5, T0, np.int64)
    codes = np.zeros(5, np.int64)
    n = check_batch(insts, sides, qtys, pxs, now, *g1.a.gate_args(), codes)
    single = [g2.check(int(i), 1, q) for i, q in zip(insts, qtys)]
    assert list(codes) == single
    assert n == single.count(rc.OK) == 1


def test_gate_target_when_target_met_then_no_order():
    g = Gate()
    out = np.zeros(2)
    args = g.a.gate_args()
    code = gate_target(AAA, 0.05, 100.0, NAN, T0, *args, out)
    assert code == rc.OK and out[0] == 1.0 and out[1] == 500.0
    g.fill(AAA, 1, 500)
    assert gate_target(AAA, 0.05, 100.0, NAN, T0, *args, out) == rc.NO_ORDER
    assert gate_target(AAA, 0.02, 100.0, NAN, T0, *args, out) == rc.OK
    assert out[0] == -1.0 and out[1] == 300.0


# -- property: no sequence of targets, fills and price moves breaks a limit ------------------------
MAX_SHARES = 2000.0
MAX_WEIGHT = 0.10
GROSS_CAP = 250_000.0

step = st.tuples(
    st.sampled_from([AAA, BBB, DDD, CCC, EEE, SPY, HTB, CHEAP]),
    st.one_of(st.sampled_from([-0.1, -0.05, 0.05, 0.099, 0.1]),
              st.floats(-0.15, 0.15, allow_nan=False)),  # target weight
    st.sampled_from([AAA, BBB, CCC, SPY, CHEAP]),      # instrument whose price moves
    st.floats(0.93, 1.07, allow_nan=False),            # price move factor
)


@settings(max_examples=120, deadline=None)
@given(st.lists(step, min_size=1, max_size=40))
def test_property_no_sequence_takes_position_or_gross_past_limit(steps):
    # Order-size limits out of the way so the position, sector and gross limits bind.
    g = Gate(base_config({"max_order_qty": 1e6, "max_order_notional": 1e9},
                         max_gross_notional=GROSS_CAP, max_net_notional=GROSS_CAP,
                         daily_loss_limit=0.5))
    a = g.a
    out = np.zeros(2)
    rec = np.zeros(1, EXEC_DTYPE)
    oid = 1
    for k, (inst, target, mover, factor) in enumerate(steps):
        now = T0 + k * 1_000_000_000
        px = a.book[inst, rc.B_LAST_PX]
        pre_pos = a.book[inst, rc.B_POSITION]
        pre_gross = a.account[rc.A_GROSS]
        code = gate_target(inst, target, px, NAN, now, *a.gate_args(), out)
        if code == rc.OK:
            side, qty = int(out[0]), out[1]
            assert on_order_sent(oid, inst, side, qty, a.oo_ids, a.oo_vals, a.limits, a.book,
                                 a.sectors, a.account) == 0
            rec[0]["client_order_id"] = oid
            rec[0]["instrument"] = inst
            rec[0]["side"] = side
            rec[0]["status"] = EXEC_FILL
            rec[0]["fill_qty"] = qty
            rec[0]["fill_px"] = px
            assert on_exec(rec, 0, a.oo_ids, a.oo_vals, a.limits, a.book, a.sectors, a.account) == 0
            oid += 1
            pos = a.book[inst, rc.B_POSITION]
            equity = a.account[rc.A_EQUITY]
            if abs(pos) > abs(pre_pos):
                assert abs(pos) * px <= MAX_WEIGHT * equity * (1 + 1e-9)
            if a.account[rc.A_GROSS] > pre_gross + 1e-6:
                assert a.account[rc.A_GROSS] <= GROSS_CAP * (1 + 1e-9)
                s = int(a.limits[inst, rc.L_SECTOR])
                if s >= 0:
                    assert a.sectors[s, rc.SEC_EXPOSURE] <= 0.25 * equity * (1 + 1e-9)
        # Share limits do not drift with prices: they hold after every step.
        assert np.all(np.abs(a.book[:, rc.B_POSITION]) <= MAX_SHARES)
        assert np.all(a.book[:, rc.B_OPEN_BUY] == 0) and np.all(a.book[:, rc.B_OPEN_SELL] == 0)
        g.mark(mover, round(a.book[mover, rc.B_LAST_PX] * factor, 2))
    # The incrementally maintained aggregates agree with an exact recomputation.
    gross = (np.abs(a.book[:, rc.B_POSITION]) * np.nan_to_num(a.book[:, rc.B_LAST_PX])).sum()
    assert a.account[rc.A_GROSS] == pytest.approx(gross, rel=1e-9, abs=1e-6)
    assert not np.any((a.book[:, rc.B_POSITION] < 0) & (np.arange(len(UNIVERSE)) == HTB))


def test_reason_names_cover_every_code():
    codes = {v for k, v in vars(rc).items() if k.startswith("DENY_")} | {rc.OK, rc.NO_ORDER}
    assert sorted(codes) == list(range(rc.N_REASONS))
    with pytest.raises(ValueError, match="was 99"):
        rc.reason_name(99)


def test_flatten_when_kill_step_requests_it_then_only_reduce_only_orders_pass_while_halted():
    g = Gate()
    g.fill(AAA, 1, 700)
    g.fill(CCC, -1, 333)
    g.fill(LOT, 1, 250)                        # an odd lot left by partial fills
    a = g.a
    n_inst = len(UNIVERSE)
    inst, side, qty = np.zeros(n_inst, np.int64), np.zeros(n_inst, np.int64), np.zeros(n_inst)
    assert check_flatten_order(AAA, -1, 700.0, a.limits, a.book, a.control) == rc.DENY_HALTED
    set_state(a.control, cw.HALTED, rc.DD_EVENT_ESCALATE + rc.DD_KILL, T0)
    a.control[cw.C_FLATTEN] = 1
    k = flatten_orders(a.limits, a.book, inst, side, qty)
    assert [(int(i), int(s), q) for i, s, q in zip(inst[:k], side[:k], qty[:k])] == [
        (AAA, -1, 700.0), (CCC, 1, 333.0), (LOT, -1, 250.0)]
    for i, s, q in zip(inst[:k], side[:k], qty[:k]):
        assert g.check(int(i), int(s), q) == rc.DENY_HALTED          # the normal gate stays shut
        assert check_flatten_order(int(i), int(s), q, a.limits, a.book, a.control) == rc.OK
    # Crossing zero, adding, unknown instrument: denied even while flattening.
    assert check_flatten_order(AAA, -1, 701.0, a.limits, a.book, a.control) == rc.DENY_REDUCING
    assert check_flatten_order(AAA, 1, 1.0, a.limits, a.book, a.control) == rc.DENY_REDUCING
    assert check_flatten_order(BBB, -1, 1.0, a.limits, a.book, a.control) == rc.DENY_REDUCING
    assert check_flatten_order(99, -1, 1.0, a.limits, a.book, a.control) == rc.DENY_UNKNOWN_INSTRUMENT
    for i, s, q in zip(inst[:k], side[:k], qty[:k]):
        g.fill(int(i), int(s), q)
    assert np.all(a.book[:, rc.B_POSITION] == 0)
    assert flatten_orders(a.limits, a.book, inst, side, qty) == 0


# -- config to arrays ----------------------------------------------------------------------------
def test_build_arrays_when_universe_or_overrides_wrong_then_error_names_what_was_found():
    cfg = msgspec.convert({}, type=RiskConfig)
    with pytest.raises(ValueError, match=r"expected \(symbol, sector, tick_size, lot_size\), was \('A', 'X'\)"):
        build_risk_arrays(cfg, [("A", "X")], equity=1.0)
    with pytest.raises(ValueError, match="tick_size expected > 0, was 0.0"):
        build_risk_arrays(cfg, [("A", "X", 0, 1)], equity=1.0)
    with pytest.raises(ValueError, match="unique, was a repeat of 'A'"):
        build_risk_arrays(cfg, [("A", "X", 0.01, 1), ("A", "X", 0.01, 1)], equity=1.0)
    bad = msgspec.convert({"instruments": {"ZZZ": {}}}, type=RiskConfig)
    with pytest.raises(ValueError, match=r"symbols of the universe, was \['ZZZ'\]"):
        build_risk_arrays(bad, [("A", "X", 0.01, 1)], equity=1.0)
    bad = msgspec.convert({"account": {"sector_limits": {"Energy": 0.1}}}, type=RiskConfig)
    with pytest.raises(ValueError, match=r"sectors of the universe \['X'\], was \['Energy'\]"):
        build_risk_arrays(bad, [("A", "X", 0.01, 1)], equity=1.0)
    with pytest.raises(ValueError, match=r"int64 \(7,\), was float64 \(7,\)"):
        build_risk_arrays(cfg, [("A", "X", 0.01, 1)], equity=1.0, control=np.zeros(7))


def test_risk_config_when_decoded_then_unknown_keys_and_bad_values_rejected_with_path():
    with pytest.raises(ValueError, match=r"Object contains unknown field `max_levrage` - at `\$.account`"):
        decode_risk_config(b'{"account": {"max_levrage": 2}}')
    with pytest.raises(ValueError, match=r"at `\$.instrument_defaults.price_band`"):
        decode_risk_config(b'{"instrument_defaults": {"price_band": -1}}')
    with pytest.raises(ValueError, match="sector_warning expected <= sector_limit"):
        decode_risk_config(b'{"account": {"sector_warning": 0.3}}')
    cfg = decode_risk_config("account:\n  sector_limits: {Energy: 0.1}\n", fmt="yaml")
    a = build_risk_arrays(cfg, [("X", "Energy", 0.01, 1), ("Y", "Utilities", 0.01, 1)], equity=1.0)
    assert a.sectors[:, rc.SEC_LIMIT].tolist() == [0.1, 0.25]
    assert a.sectors[:, rc.SEC_WARN].tolist() == [0.1, 0.20]


def test_sessions_when_dst_changes_then_utc_bounds_follow_new_york():
    g = Gate({**base_config(), "sessions": {"calendar": "XNYS"}})
    set_sessions(g.a, g.cfg, dt.date(2024, 1, 2))    # EST, UTC-5
    assert g.a.limits[AAA, rc.L_SESSION_OPEN_S] == dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc).timestamp()
    set_sessions(g.a, g.cfg, dt.date(2024, 7, 1))    # EDT, UTC-4
    assert g.a.limits[AAA, rc.L_SESSION_CLOSE_S] == dt.datetime(2024, 7, 1, 20, 0, tzinfo=dt.timezone.utc).timestamp()
