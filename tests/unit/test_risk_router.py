"""Skeleton risk gate and paper router: each check passes, denies and holds at its boundary."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon import risk as rk
from alphad.daemon import router as rt
from alphad.daemon.config import decode_config
from alphad.ipc import metrics as mx
from alphad.ipc.control import ACTIVE, HALTED, REDUCING, W_STATE
from alphad.ipc.dtypes import (EXEC_DTYPE, EXEC_FILL, EXEC_REJECT, MD_DTYPE, MD_QUOTE, ORDER_DTYPE,
                               SIGNAL_DTYPE)

CFG = decode_config("""
universe: [{id: 0, symbol: AAA, lot_size: 1}, {id: 1, symbol: BBB, lot_size: 1}]
risk: {initial_equity: 100000, max_order_notional: 5000, max_order_qty: 40, max_position_weight: 0.08,
       min_order_notional: 10}
router: {fee_bps: 2.0}
""")


@pytest.fixture
def core():
    c = rk.RiskCore(CFG.universe, CFG.risk)
    c.inst[:, rk.I_MARK] = 100.0
    return c


def gate(core, qty, state=ACTIVE, i=0):
    return rk.check_order(core.inst, core.acct, state, i, float(qty))


@pytest.mark.parametrize("state,qty,code", [
    (ACTIVE, 10, rk.OK),
    (HALTED, 10, rk.DENY_HALTED),
    (REDUCING, 10, rk.DENY_REDUCING),      # grows a flat position
])
def test_trading_state(core, state, qty, code):
    assert gate(core, qty, state) == code


def test_reducing_when_order_shrinks_position_then_passes_and_at_flat_boundary(core):
    core.inst[0, rk.I_POS] = 30
    core.acct[rk.A_MAX_ORDER_QTY] = core.acct[rk.A_MAX_ORDER_NOTIONAL] = 1e9
    assert gate(core, -10, REDUCING) == rk.OK
    assert gate(core, -31, REDUCING) == rk.OK      # flips to -1: |position| still shrinks
    assert gate(core, -60, REDUCING) == rk.OK      # flips to -30: same size, not growing
    assert gate(core, -61, REDUCING) == rk.DENY_REDUCING


def test_instrument_unknown_or_untradable(core):
    assert gate(core, 1, i=2) == rk.DENY_INSTRUMENT
    core.inst[1, rk.I_TRADABLE] = 0
    assert gate(core, 1, i=1) == rk.DENY_INSTRUMENT
    assert gate(core, 1, i=0) == rk.OK


def test_no_price(core):
    core.inst[0, rk.I_MARK] = 0.0
    assert gate(core, 1) == rk.DENY_NO_PRICE


def test_quantity_positive(core):
    assert gate(core, 0) == rk.DENY_QUANTITY


def test_max_order_qty_boundary(core):
    core.inst[0, rk.I_MARK] = 1.0
    assert gate(core, 40) == rk.OK
    assert gate(core, 41) == rk.DENY_MAX_QTY


def test_max_order_notional_boundary(core):
    core.acct[rk.A_MAX_ORDER_QTY] = 1e9
    assert gate(core, 50) == rk.OK          # 50 * 100 = 5000
    assert gate(core, 51) == rk.DENY_MAX_NOTIONAL


def test_position_limit_boundary_counts_open_orders(core):
    core.inst[0, rk.I_POS] = 40              # limit: 8% of 100k = 8000 = 80 shares
    assert gate(core, 40) == rk.OK
    core.inst[0, rk.I_OPEN] = 1
    assert gate(core, 40) == rk.DENY_POSITION_LIMIT


def test_on_signals_when_halted_then_denial_counted_by_reason_and_no_order(core):
    sig = np.zeros(1, SIGNAL_DTYPE)
    sig[0]["target_weight"], sig[0]["ref_px"], sig[0]["seq"] = 0.02, 100.0, 5
    ctl = np.zeros(16, np.int64)
    m = np.zeros(mx.SIZE // 8, np.int64)
    out = np.zeros(4, ORDER_DTYPE)
    ctl[W_STATE] = HALTED
    assert rk.on_signals(sig, 1, core.inst, core.acct, ctl, m, out, 0) == 0
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    assert block.denials_by_reason()[rk.DENY_HALTED] == 1
    ctl[W_STATE] = ACTIVE
    assert rk.on_signals(sig, 1, core.inst, core.acct, ctl, m, out, 0) == 1
    o = out[0]
    assert o["side"] == 1 and o["qty"] == 20 and o["client_order_id"] == (5 << 8)  # 2% of 100k at 100
    assert core.inst[0, rk.I_OPEN] == 20


def test_on_exec_when_round_trip_then_realized_pnl_and_fees():
    c = rk.RiskCore(CFG.universe, CFG.risk)
    ex = np.zeros(2, EXEC_DTYPE)
    ex["status"] = EXEC_FILL
    ex["side"] = [1, -1]
    ex["fill_qty"] = 10
    ex["fill_px"] = [100.0, 103.0]
    ex["fee"] = [0.2, 0.2]
    m = np.zeros(mx.SIZE // 8, np.int64)
    assert rk.on_exec(ex, 2, c.inst, c.acct, m) == 2
    assert c.inst[0, rk.I_POS] == 0 and c.acct[rk.A_REALIZED] == pytest.approx(30.0)
    assert c.acct[rk.A_CASH] == pytest.approx(100_000 + 30 - 0.4)


def quote(i, bid, ask):
    md = np.zeros(1, MD_DTYPE)
    md[0]["kind"], md[0]["instrument"], md[0]["bid_px"], md[0]["ask_px"] = MD_QUOTE, i, bid, ask
    md[0]["bid_sz"] = md[0]["ask_sz"] = 5
    return md


def test_router_when_quote_known_then_fills_at_touch_with_fee_and_records_t2t():
    r = rt.RouterCore(2, CFG.router)
    rt.on_quotes(quote(0, 99.0, 101.0), 1, r.q)
    orders = np.zeros(3, ORDER_DTYPE)
    orders["instrument"] = [0, 0, 1]
    orders["side"] = [1, -1, 1]
    orders["qty"] = 10
    orders["limit_px"] = np.nan
    orders["client_order_id"] = [1, 2, 3]
    orders["t_origin"] = 1000
    m = np.zeros(mx.SIZE // 8, np.int64)
    out = np.zeros(3, EXEC_DTYPE)
    k = rt.on_orders(orders, 3, r.q, r.pending, r.pend_due, r.pend_count, 0, 2.0, 0.0, m, out, 5000)
    assert k == 3
    assert out[0]["status"] == EXEC_FILL and out[0]["fill_px"] == 101.0 and out[0]["fee"] == pytest.approx(0.202)
    assert out[1]["fill_px"] == 99.0
    assert out[2]["status"] == EXEC_REJECT and out[2]["reason"] == rt.REJECT_NO_QUOTE
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    assert block.latency_count(mx.ROW_T2T) == 3 and list(block.samples(mx.ROW_T2T)) == [4000] * 3


def test_router_when_same_client_order_id_again_then_rejected_as_duplicate():
    r = rt.RouterCore(1, CFG.router)
    rt.on_quotes(quote(0, 99.0, 101.0), 1, r.q)
    o = np.zeros(1, ORDER_DTYPE)
    o["side"], o["qty"], o["limit_px"], o["client_order_id"] = 1, 1, np.nan, 77
    m = np.zeros(mx.SIZE // 8, np.int64)
    out = np.zeros(1, EXEC_DTYPE)
    rt.on_orders(o, 1, r.q, r.pending, r.pend_due, r.pend_count, 0, 0.0, 0.0, m, out, 0)
    assert out[0]["status"] == EXEC_FILL
    rt.on_orders(o, 1, r.q, r.pending, r.pend_due, r.pend_count, 0, 0.0, 0.0, m, out, 0)
    assert out[0]["status"] == EXEC_REJECT and out[0]["reason"] == rt.REJECT_DUPLICATE


def test_router_when_latency_then_fill_waits_until_due_at_the_then_current_quote():
    r = rt.RouterCore(1, CFG.router)
    rt.on_quotes(quote(0, 99.0, 101.0), 1, r.q)
    o = np.zeros(1, ORDER_DTYPE)
    o["side"], o["qty"], o["limit_px"], o["client_order_id"] = 1, 1, np.nan, 1
    m = np.zeros(mx.SIZE // 8, np.int64)
    out = np.zeros(4, EXEC_DTYPE)
    assert rt.on_orders(o, 1, r.q, r.pending, r.pend_due, r.pend_count, 500, 0.0, 0.0, m, out, 1000) == 0
    assert rt.poll_pending(r.q, r.pending, r.pend_due, r.pend_count, 0.0, 0.0, out, 1499) == 0
    rt.on_quotes(quote(0, 100.0, 102.0), 1, r.q)
    assert rt.poll_pending(r.q, r.pending, r.pend_due, r.pend_count, 0.0, 0.0, out, 1500) == 1
    assert out[0]["fill_px"] == 102.0 and r.pend_count[0] == 0
