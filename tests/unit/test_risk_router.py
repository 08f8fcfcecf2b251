"""The risk stage's steps over the risk library, and the paper router."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon import risk as rk
from alphad.daemon import router as rt
from alphad.daemon.config import decode_config
from alphad.daemon.portfolio import on_mark
from alphad.daemon.risk_codes import (A_CASH, B_OPEN_BUY, B_POSITION, C_FLATTEN, C_STATE, DENY_HALTED,
                                      DENY_MAX_ORDER_QTY, HALTED)
from alphad.ipc import metrics as mx
from alphad.ipc.dtypes import (EXEC_DTYPE, EXEC_FILL, EXEC_REJECT, MD_DTYPE, MD_QUOTE, ORDER_DTYPE,
                               SIGNAL_DTYPE)

CFG = decode_config("""
universe: [{id: 0, symbol: AAA, sector: Tech, lot_size: 1}, {id: 1, symbol: BBB, sector: Tech, lot_size: 1}]
risk:
  initial_equity: 100000
  min_order_notional: 10
  instrument_defaults: {max_order_qty: 40, max_order_notional: 5000, max_position_weight: 0.08}
  account: {sector_limit: 1.0, sector_warning: 0.9}
router: {fee_bps: 2.0}
""")


def new_core():
    control = np.zeros(7, np.int64)
    core = rk.RiskCore(CFG.universe, CFG.risk, control)
    for i in range(2):
        on_mark(i, 100.0, core.limits, core.book, core.sectors, core.account)
    return core


def signals(weight, seq=5, inst=0, px=100.0):
    sig = np.zeros(1, SIGNAL_DTYPE)
    sig[0]["target_weight"], sig[0]["ref_px"], sig[0]["seq"], sig[0]["instrument"] = weight, px, seq, inst
    return sig


def step(core, sig, m):
    out = np.zeros(4, ORDER_DTYPE)
    k = rk.on_signals(sig, len(sig), *core.gate_args(), core.oo_ids, core.oo_vals, core.params, core.tmp, m, out,
                      core.denials, core.den_n, 0)
    return out[:k]


def denials(m):
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    return block.denials_by_reason()


def test_signal_when_active_then_order_sized_from_equity_and_registered_as_working():
    core, m = new_core(), np.zeros(mx.SIZE // 8, np.int64)
    orders = step(core, signals(0.02, seq=5), m)
    assert len(orders) == 1
    o = orders[0]
    assert o["side"] == 1 and o["qty"] == 20 and o["client_order_id"] == rk.client_order_id(5, 0, 0)
    assert core.book[0, B_OPEN_BUY] == 20  # counted against limits until it fills
    assert len(step(core, signals(0.02, seq=5), m)) == 0  # target met by the working order


def test_signal_when_halted_then_denial_counted_by_reason_and_no_order():
    core, m = new_core(), np.zeros(mx.SIZE // 8, np.int64)
    core.control[C_STATE] = HALTED
    assert len(step(core, signals(0.02, seq=11), m)) == 0
    assert denials(m)[DENY_HALTED] == 1
    assert core.den_n[0] == 1  # and written for the journal
    d = core.denials[0]
    assert d["reason"] == DENY_HALTED and d["seq"] == 11 and d["side"] == 1 and d["qty"] == 20


def test_signal_when_position_weight_limit_then_denied_with_that_reason():
    core, m = new_core(), np.zeros(mx.SIZE // 8, np.int64)
    assert len(step(core, signals(0.5), m)) == 0  # 50% of equity: past 8% and past 40 shares
    assert denials(m)[DENY_MAX_ORDER_QTY] == 1


def test_signal_when_replayed_then_same_decision_never_sent_twice():
    core, m = new_core(), np.zeros(mx.SIZE // 8, np.int64)
    assert len(step(core, signals(0.02, seq=9), m)) == 1
    core.book[0, B_OPEN_BUY] = 0.0  # even if the working quantity were forgotten...
    assert len(step(core, signals(0.02, seq=9), m)) == 0  # ...the same id is refused


def test_exec_when_filled_then_position_cash_and_fills_counted():
    core, m = new_core(), np.zeros(mx.SIZE // 8, np.int64)
    o = step(core, signals(0.02, seq=3), m)[0]
    ex = np.zeros(1, EXEC_DTYPE)
    ex[0]["client_order_id"], ex[0]["instrument"], ex[0]["side"] = o["client_order_id"], 0, 1
    ex[0]["status"], ex[0]["fill_qty"], ex[0]["fill_px"], ex[0]["fee"] = EXEC_FILL, 20, 100.0, 0.4
    assert rk.on_exec(ex, 1, core.oo_ids, core.oo_vals, core.limits, core.book, core.sectors, core.account, m) == 1
    assert core.book[0, B_POSITION] == 20 and core.book[0, B_OPEN_BUY] == 0
    assert core.account[A_CASH] == pytest.approx(100_000 - 2000 - 0.4)


def test_flatten_when_requested_then_reduce_only_orders_even_while_halted():
    core = new_core()
    core.book[0, B_POSITION] = 30
    core.control[C_STATE] = HALTED
    out = np.zeros(4, ORDER_DTYPE)
    args = (7, core.limits, core.book, core.sectors, core.account, core.control, core.oo_ids, core.oo_vals,
            core.f_inst, core.f_side, core.f_qty, out, 0)
    assert rk.flatten(*args) == 0  # no flatten requested: nothing passes HALTED
    core.control[C_FLATTEN] = 1
    assert rk.flatten(*args) == 1
    assert out[0]["side"] == -1 and out[0]["qty"] == 30 and out[0]["instrument"] == 0


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


def test_router_when_same_client_order_id_again_then_dropped_and_counted():
    r = rt.RouterCore(1, CFG.router)
    rt.on_quotes(quote(0, 99.0, 101.0), 1, r.q)
    o = np.zeros(1, ORDER_DTYPE)
    o["side"], o["qty"], o["limit_px"], o["client_order_id"] = 1, 1, np.nan, 77
    m = np.zeros(mx.SIZE // 8, np.int64)
    out = np.zeros(1, EXEC_DTYPE)
    assert rt.on_orders(o, 1, r.q, r.pending, r.pend_due, r.pend_count, 0, 0.0, 0.0, m, out, 0) == 1
    assert out[0]["status"] == EXEC_FILL
    assert rt.on_orders(o, 1, r.q, r.pending, r.pend_due, r.pend_count, 0, 0.0, 0.0, m, out, 0) == 0
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    assert block.counter(rt.ROUTER, mx.C_ERRORS) == 1 and block.counter(rt.ROUTER, mx.C_ORDERS) == 1


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
