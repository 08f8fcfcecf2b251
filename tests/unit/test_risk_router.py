"""The risk stage's steps over the risk library, and the paper router."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from alphad.daemon.risk import core as rk
from alphad.daemon.router import core as rt
from alphad.daemon.config import decode_config
from alphad.daemon.risk.portfolio import on_mark
from alphad.daemon.router.order_fsm import REJ_STALE
from alphad.daemon.risk.codes import (
    A_CASH,
    B_OPEN_BUY,
    B_POSITION,
    DENY_HALTED,
    DATA_STALE_SINCE,
    DENY_INSTRUMENT_HALTED,
    DENY_STALE_DATA,
    DENY_STALE_SIGNAL,
    DENY_MAX_ORDER_QTY,
)
from alphad.ipc.control import C_FLATTEN, C_STATE, HALTED
from alphad.ipc import metrics as mx
from alphad.ipc.dtypes import (EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_REJECT, MD_DTYPE, MD_QUOTE,
                               ORDER_DTYPE, ORDER_MARKET, SIGNAL_DTYPE)

CFG = decode_config("""
universe: [{id: 0, symbol: AAA, sector: Tech, lot_size: 1}, {id: 1, symbol: BBB, sector: Tech, lot_size: 1}]
risk:
  initial_equity: 100000
  min_order_notional: 10
  instrument_defaults: {max_order_qty: 40, max_order_notional: 5000, max_position_weight: 0.08}
  account: {sector_limit: 1.0, sector_warning: 0.9}
""")


def new_core(m=None):
    control = np.zeros(7, np.int64)
    core = rk.RiskCore(CFG.universe, CFG.risk, control, metrics=m)
    for i in range(2):
        on_mark(i, 100.0, core.limits, core.book, core.sectors, core.account)
    return core


def signals(weight, seq=5, inst=0, px=100.0):
    sig = np.zeros(1, SIGNAL_DTYPE)
    sig[0]["target_weight"], sig[0]["ref_px"], sig[0]["seq"], sig[0]["instrument"] = weight, px, seq, inst
    return sig


def step(core, sig, m):
    """The gate over ``sig``, counting into ``m`` (the metrics words the core was built on)."""
    assert core.m is m
    out = np.zeros(4, ORDER_DTYPE)
    k = rk.risk_step(core.state, sig, len(sig), out, 0)
    return out[:k]


def denials(m):
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    return block.denials_by_reason()


def test_signal_when_active_then_order_sized_from_equity_and_registered_as_working():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    orders = step(core, signals(0.02, seq=5), m)
    assert len(orders) == 1
    o = orders[0]
    assert o["side"] == 1 and o["qty"] == 20 and o["client_order_id"] == rk.order_id(0, 1)  # the first id of run 0
    assert core.book[0, B_OPEN_BUY] == 20  # counted against limits until it fills
    assert len(step(core, signals(0.02, seq=5), m)) == 0  # target met by the working order


def test_signal_when_halted_then_denial_counted_by_reason_and_no_order():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    core.control[C_STATE] = HALTED
    assert len(step(core, signals(0.02, seq=11), m)) == 0
    assert denials(m)[DENY_HALTED] == 1
    assert core.den_n[0] == 1  # and written for the journal
    d = core.denials[0]
    assert d["reason"] == DENY_HALTED and d["seq"] == 11 and d["side"] == 1 and d["qty"] == 20


def test_signal_when_position_weight_limit_then_denied_with_that_reason():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    assert len(step(core, signals(0.5), m)) == 0  # 50% of equity: past 8% and past 40 shares
    assert denials(m)[DENY_MAX_ORDER_QTY] == 1


def test_signal_when_replayed_then_same_decision_never_sent_twice():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    assert len(step(core, signals(0.02, seq=9), m)) == 1
    core.book[0, B_OPEN_BUY] = 0.0  # even if the working quantity were forgotten...
    assert len(step(core, signals(0.02, seq=9), m)) == 0  # ...the same id is refused


def test_exec_when_filled_then_position_cash_and_fills_counted():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    o = step(core, signals(0.02, seq=3), m)[0]
    ex = np.zeros(1, EXEC_DTYPE)
    ex[0]["client_order_id"], ex[0]["instrument"], ex[0]["side"] = o["client_order_id"], 0, 1
    ex[0]["status"], ex[0]["fill_qty"], ex[0]["fill_px"], ex[0]["fee"] = EXEC_FILL, 20, 100.0, 0.4
    assert rk.risk_fills(core.state, ex, 1) == 1
    assert core.book[0, B_POSITION] == 20 and core.book[0, B_OPEN_BUY] == 0
    assert core.account[A_CASH] == pytest.approx(100_000 - 2000 - 0.4)


def test_signal_when_older_than_max_signal_age_then_denied_as_stale_and_never_ordered():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    age_ns = int(CFG.risk.max_signal_age_ms * 1e6)
    sig = signals(0.02, seq=4)
    sig[0]["t_origin"] = 1_000
    out = np.zeros(4, ORDER_DTYPE)
    assert rk.risk_step(core.state, sig, 1, out, 1_000 + age_ns + 1) == 0  # a frozen stage's leftover
    assert denials(m)[DENY_STALE_SIGNAL] == 1 and core.denials[0]["reason"] == DENY_STALE_SIGNAL
    assert core.book[0, B_OPEN_BUY] == 0  # nothing counted as working
    sig[0]["seq"] = 5  # the next decision, exactly at the age limit: acted on
    assert rk.risk_step(core.state, sig, 1, out, 1_000 + age_ns) == 1


def test_data_when_the_feed_reports_it_down_and_an_instrument_silent_past_its_age_then_no_order_until_healthy():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    age_ns = int(CFG.risk.max_data_age_ms * 1e6)
    t0 = 10**12
    md = np.concatenate([quote(0, 99.0, 101.0), quote(1, 99.0, 101.0)])
    md["t_origin"] = t0
    rk.risk_marks(core.state, md, 2)
    out = np.zeros(4, ORDER_DTYPE)

    def order(inst, seq, now, weight=0.02):
        sig = signals(weight, seq=seq, inst=inst)
        sig[0]["t_origin"] = now  # a fresh decision: only the instrument's data is old
        return rk.risk_step(core.state, sig, 1, out, now)

    late = t0 + age_ns + 1
    assert rk.risk_data_watch(core.state, late, 0) == 0  # a healthy feed: a quiet market is no stale data
    assert order(0, 5, late) == 1
    assert rk.risk_data_watch(core.state, late, 1) == 2  # a data farm broken: both silent past the age
    assert core.data_ns[0, DATA_STALE_SINCE] == late
    md = quote(1, 99.0, 101.0)
    md["t_origin"] = late  # instrument 1's data still arrives (another farm)
    rk.risk_marks(core.state, md, 1)
    assert rk.risk_data_watch(core.state, late, 1) == 1 and core.data_ns[1, DATA_STALE_SINCE] == 0
    assert order(0, 6, late) == 0 and core.denials[0]["reason"] == DENY_STALE_DATA
    assert denials(m)[DENY_STALE_DATA] == 1
    assert order(1, 6, late) == 1  # the instrument with data trades on
    assert rk.risk_data_watch(core.state, late, 0) == 0  # the farm OK again (2104): orders resume
    assert core.data_ns[0, DATA_STALE_SINCE] == 0 and order(0, 7, late, weight=0.04) == 1


def test_instrument_when_an_operator_halts_it_then_denied_there_alone_and_flatten_still_closes_it():
    m = np.zeros(mx.SIZE // 8, np.int64)
    core = new_core(m)
    out = np.zeros(4, ORDER_DTYPE)
    core.halts[0] = 1
    assert rk.risk_step(core.state, signals(0.02, seq=5, inst=0), 1, out, 0) == 0
    assert denials(m)[DENY_INSTRUMENT_HALTED] == 1 and core.denials[0]["reason"] == DENY_INSTRUMENT_HALTED
    assert rk.risk_step(core.state, signals(0.02, seq=5, inst=1), 1, out, 0) == 1  # the other trades on
    core.book[0, B_POSITION] = 10
    core.control[C_FLATTEN] = 1
    k = rk.risk_flatten(core.state, out, 0)
    assert any(o["instrument"] == 0 and o["side"] == -1 and o["qty"] == 10 for o in out[:k])
    core.halts[0] = 0
    assert rk.risk_step(core.state, signals(0.04, seq=6, inst=0), 1, out, 0) == 1


def test_flatten_when_requested_then_reduce_only_orders_even_while_halted():
    core = new_core()
    core.book[0, B_POSITION] = 30
    core.control[C_STATE] = HALTED
    out = np.zeros(4, ORDER_DTYPE)
    assert rk.risk_flatten(core.state, out, 0) == 0  # no flatten requested: nothing passes HALTED
    core.control[C_FLATTEN] = 1
    assert rk.risk_flatten(core.state, out, 0) == 1
    assert out[0]["side"] == -1 and out[0]["qty"] == 30 and out[0]["instrument"] == 0


def quote(i, bid, ask):
    md = np.zeros(1, MD_DTYPE)
    md[0]["kind"], md[0]["instrument"], md[0]["bid_px"], md[0]["ask_px"] = MD_QUOTE, i, bid, ask
    md[0]["bid_sz"] = md[0]["ask_sz"] = 5
    return md


def new_router(n=2, m=None):
    return rt.RouterCore(CFG.universe[:n], CFG.router, np.zeros(n, np.uint64), metrics=m)


@njit(cache=True)
def _route_batch(orders, n, r, now):
    return rt.route_batch(orders, n, r, now)


def route(r, orders, now):
    """Orders to the venues (counted into the router's metrics words ``r.m``)."""
    sent = _route_batch(orders, len(orders), r.state, now)
    return sent, r.reports[: r.poll(now)].copy()


def metrics_of(m):
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    return block


def test_router_when_quote_known_then_takes_displayed_size_with_fee_and_records_t2t():
    r = new_router()
    r.on_md(quote(0, 99.0, 101.0), 1, 0)
    orders = np.zeros(3, ORDER_DTYPE)
    orders["instrument"] = [0, 0, 1]
    orders["side"] = [1, -1, 1]
    orders["qty"] = [3, 8, 1]  # the second asks for more than the 5 displayed at the bid
    orders["kind"] = ORDER_MARKET
    orders["limit_px"] = np.nan
    orders["client_order_id"] = [1, 2, 3]
    orders["t_origin"] = 1000
    sent, reports = route(r, orders, 5000)
    assert sent == 3
    a = r.arrivals[:3]  # each order's arrival quote, for TCA
    assert list(a["client_order_id"]) == [1, 2, 3] and a[0]["bid"] == 99.0 and a[0]["ask"] == 101.0
    assert np.isnan(a[2]["bid"])  # BBB had no quote
    fills = {int(x["client_order_id"]): x for x in reports if x["fill_qty"] > 0}
    assert fills[1]["fill_px"] == 101.0 and fills[1]["fill_qty"] == 3
    assert fills[1]["fee"] == pytest.approx(3 * 101.0 * 1e-4)  # taker 1 bp
    assert fills[2]["fill_px"] == 99.0 and fills[2]["fill_qty"] == 5  # displayed size only
    assert any(x["client_order_id"] == 2 and x["status"] == EXEC_CANCELED for x in reports)  # rest cancelled
    assert any(x["client_order_id"] == 3 and x["status"] == EXEC_REJECT for x in reports)  # no book for BBB
    block = metrics_of(r.m)
    assert block.latency_count(mx.ROW_T2T) == 3 and list(block.samples(mx.ROW_T2T)) == [4000] * 3


def test_router_when_same_client_order_id_again_then_dropped_and_counted():
    r = new_router(1)
    r.on_md(quote(0, 99.0, 101.0), 1, 0)
    o = np.zeros(1, ORDER_DTYPE)
    o["side"], o["qty"], o["kind"], o["limit_px"], o["client_order_id"] = 1, 1, ORDER_MARKET, np.nan, 77
    assert route(r, o, 0)[0] == 1
    assert route(r, o, 1)[0] == 0
    block = metrics_of(r.m)
    assert block.counter(rt.ROUTER, mx.C_ERRORS) == 1 and block.counter(rt.ROUTER, mx.C_ORDERS) == 1


def test_router_when_venue_has_latency_then_fill_waits_until_due():
    from alphad.daemon.config import decode_config

    cfg = decode_config("""
universe: [{id: 0, symbol: AAA, lot_size: 1}]
router: {venues: [{name: slow, taker_bps: 1.0, entry: {median_ns: 400}, response: {median_ns: 100}}]}
""")
    r = rt.RouterCore(cfg.universe, cfg.router, np.zeros(1, np.uint64))
    assert r.poll_ns > 0
    r.on_md(quote(0, 99.0, 101.0), 1, 0)
    o = np.zeros(1, ORDER_DTYPE)
    o["side"], o["qty"], o["kind"], o["limit_px"], o["client_order_id"] = 1, 1, ORDER_MARKET, np.nan, 5
    _route_batch(o, 1, r.state, 1000)
    assert r.poll(1399) == 0  # still on its way to the venue
    r.on_md(quote(0, 100.0, 102.0), 1, 1399)
    n = r.poll(1600)  # arrived at 1400, answered 100 ns later
    fills = [x for x in r.reports[:n] if x["fill_qty"] > 0]
    assert len(fills) == 1 and fills[0]["fill_px"] == 102.0  # matched at the book it found on arrival


def test_router_when_venue_queue_overflows_then_unsent_orders_rejected_back_to_risk():
    """An order the router cannot hand to a venue must still be answered: risk would
    otherwise count it as open for ever (and its exposure against every limit)."""
    from alphad.daemon.router.order_fsm import REJ_QUEUE_FULL

    r = new_router(1)
    r.on_md(quote(0, 99.0, 101.0), 1, 0)
    cap = r.smart.storage.inq.shape[1]  # the venues' request queue
    n = cap + 3
    o = np.zeros(n, ORDER_DTYPE)
    o["side"], o["qty"], o["kind"], o["limit_px"] = 1, 1, ORDER_MARKET, np.nan
    o["client_order_id"] = np.arange(1, n + 1)
    sent, k = r.on_orders(o, n, 1000)
    rep = r.reports[:k]
    rej = rep[rep["status"] == EXEC_REJECT]
    # the smart router spreads nothing here (one cheapest venue): the last three overflow it
    assert sent == n
    assert sorted(rej["client_order_id"].tolist()) == list(range(cap + 1, n + 1))
    assert (rej["reason"] == REJ_QUEUE_FULL).all() and (rej["leaves_qty"] == 0).all()
    answered = set(rep["client_order_id"].tolist())
    assert answered.issuperset(range(cap + 1, n + 1))


def test_router_when_order_older_than_max_order_age_then_rejected_as_stale_never_sent():
    r = new_router(1)
    r.on_md(quote(0, 99.0, 101.0), 1, 0)
    o = np.zeros(2, ORDER_DTYPE)
    o["side"], o["qty"], o["kind"], o["limit_px"] = 1, 1, ORDER_MARKET, np.nan
    o["client_order_id"], o["t_origin"] = [5, 6], [0, 10]
    now = 10 + r.max_age_ns  # the first is one ns past the age, the second exactly at it
    sent, k = r.on_orders(o, 2, now)
    reports = r.reports[:k]
    stale = [x for x in reports if x["client_order_id"] == 5]
    assert len(stale) == 1 and stale[0]["status"] == EXEC_REJECT and stale[0]["reason"] == REJ_STALE
    assert any(x["client_order_id"] == 6 and x["status"] == EXEC_FILL for x in reports)
    assert metrics_of(r.m).latency_count(mx.ROW_T2T) == 1  # only the order handed to the venue
