"""The compositions over the cores' steps (``compiled.*_drain``, ``fused_*``) over real
shared-memory rings: each must do exactly what the ring-by-ring path does (pop, apply,
step, stamp, push), and with ``wait`` sleep on the process's doorbell until a producer
in another process rings it."""
from __future__ import annotations

import subprocess
import sys
import time

from pathlib import Path

import numpy as np

from alphad.daemon.risk import core as rk
from alphad.daemon.router import core as rt
from alphad.daemon.features.core import NO_BAR_SET, new_feature_state
from alphad.daemon.features.regime import RegimeInputs
from alphad.kernels import sizing as sz
from alphad.daemon.feed.core import new_feed_state
from alphad.daemon.infer.core import new_infer_state
from alphad.daemon.shell import tick as steps
from alphad.daemon.shell.ports import in_port, out_port, waiter
from alphad.daemon.risk.portfolio import on_mark
from alphad.daemon.risk.codes import B_LAST_PX, B_POSITION
from alphad.ipc import dtypes, metrics as mx
from alphad.ipc.control import FEED_LOOPS, FEED_POS, FEED_SEQ, S_EVENTS_IN, STAGE_INDEX, stage_word
from alphad.ipc.dtypes import EXEC_ACK, EXEC_FILL, MD_QUOTE
from alphad.ipc.ring import Ring
from test_risk_router import CFG  # two instruments, one sector, the risk limits those tests use

RISK, ROUTER = STAGE_INDEX["risk"], STAGE_INDEX["router"]
ME = 0  # this process's doorbell


def ring(prefix, bells, kind, consumer, *, woken=True):
    """A ring of ``kind`` read by ``consumer``, whose doorbell is ours when ``woken``."""
    return Ring.create(f"{prefix}.{kind}", dtypes.RECORDS[kind], 64, [consumer],
                       policy="overwrite" if kind in ("md", "arrivals") else "lossless", bells=bells,
                       doorbell_of={consumer: ME} if woken else None)


def quote(i, bid, ask, t_origin=1):
    md = np.zeros(1, dtypes.MD_DTYPE)
    md[0]["kind"], md[0]["instrument"], md[0]["bid_px"], md[0]["ask_px"] = MD_QUOTE, i, bid, ask
    md[0]["bid_sz"] = md[0]["ask_sz"] = 50
    md[0]["t_origin"] = t_origin
    return md


def signal(weight, seq, inst=0, px=100.0, t_origin=None):
    """A signal stamped now (CLOCK_MONOTONIC) unless told: the drains read that clock, and a
    signal older than ``risk.max_signal_age_ms`` is denied as stale."""
    t_origin = time.monotonic_ns() if t_origin is None else t_origin
    s = np.zeros(1, dtypes.SIGNAL_DTYPE)
    s[0]["target_weight"], s[0]["ref_px"], s[0]["seq"], s[0]["instrument"] = weight, px, seq, inst
    s[0]["t_origin"] = t_origin
    return s


def timespec(seconds):
    ts = np.array([int(seconds), int(seconds % 1 * 1e9)], np.int64)
    return ts, ts.ctypes.data


def port_in(r, n=8):
    """An input port on ring ``r`` (cursor 0) over a fresh buffer."""
    return in_port(r, 0, np.zeros(n, r.dtype))


def port_out(kind, r, bells, m, ctl, stage, recs=None):
    """An output port over ``recs`` (a fresh buffer when None) pushing to ring ``r`` (None: no ring)."""
    return out_port(recs if recs is not None else np.zeros(8, dtypes.RECORDS[kind]), r, bells, m, ctl, stage)


def infer_state(x, scale=2.0, weight_per_unit=1.0, cap=0.5):
    """An infer state over the model input ``x`` (its rows are the model batch), no drift."""
    return new_infer_state(x, x.shape[0], x.shape[1], (scale, weight_per_unit, cap, 0.0), np.zeros((0, 0), np.int64),
                           np.zeros((0, 0)), (False, np.zeros(sz.N_PARAMS), np.zeros((2, 1))))


def quote_feature_state(table):
    """A features state for the quote set over ``table`` (no regime inputs, every instrument emits)."""
    n = table.shape[0]
    return new_feature_state(table, 0.5, 0.1, True, *NO_BAR_SET, False, np.ones(n, np.uint8),
                             RegimeInputs(None, [str(i) for i in range(n)], Path(".")).arrays())


# -- router -------------------------------------------------------------------------

class RouterRig:
    """The router process's rings and the arguments of ``steps.router_drain``."""

    def __init__(self, prefix, bells):
        self.md = ring(prefix, bells, "md", "router", woken=False)  # passive, as in the daemon
        self.orders = ring(prefix, bells, "orders", "router")
        self.exec = ring(prefix, bells, "exec", "risk")
        self.arrivals = ring(prefix, bells, "arrivals", "journal")
        self.core = rt.RouterCore(CFG.universe, CFG.router, np.zeros(2, np.uint64))
        self.ctl = np.zeros(1024, np.int64)
        c, m = self.core, self.core.m
        self.tail = (port_in(self.md), port_in(self.orders), 8, c.state,
                     port_out("arrivals", self.arrivals, bells, m, self.ctl, ROUTER, c.arrivals),
                     port_out("exec", self.exec, bells, m, self.ctl, ROUTER, c.reports))
        self.bells = bells
        self.drain()  # compiled (or loaded) now: an order stamped before a compile would be stale

    def drain(self, wait=False, seconds=0.0):
        ts, addr = timespec(seconds)
        return steps.router_drain(wait, waiter(self.bells, ME, addr), *self.tail)


def an_order(core_cid, qty=10, side=1, inst=0, t_origin=None):
    """An order stamped now unless told (older than ``router.max_order_age_ms``: rejected)."""
    t_origin = time.monotonic_ns() if t_origin is None else t_origin
    o = np.zeros(1, dtypes.ORDER_DTYPE)
    o[0]["client_order_id"], o[0]["qty"], o[0]["side"], o[0]["instrument"] = core_cid, qty, side, inst
    o[0]["kind"] = dtypes.ORDER_MARKET
    o[0]["t_origin"] = t_origin
    return o


def test_router_drain_when_quote_then_order_then_fills_at_that_quote_like_the_core_and_pushes_reports(prefix, bells):
    rig = RouterRig(prefix, bells)
    rig.md.push(quote(0, 99.0, 101.0))
    rig.orders.push(an_order(7))
    popped, k, pushed = rig.drain()
    assert popped == 2 and k >= 1 and pushed == k
    sent = rig.exec.pop(0, 16)
    twin = rt.RouterCore(CFG.universe, CFG.router, np.zeros(2, np.uint64))
    twin.on_md(quote(0, 99.0, 101.0), 1, 0)
    _, tk = twin.on_orders(an_order(7), 1, 0)
    expected = twin.reports[:tk]
    assert len(sent) == tk
    for field in ("client_order_id", "status", "fill_qty", "fill_px", "fee", "leaves_qty"):
        np.testing.assert_array_equal(sent[field], expected[field], err_msg=field)
    assert list(sent["status"]) == [EXEC_ACK, EXEC_FILL] and sent[1]["fill_px"] == 101.0  # at the quote's ask
    arrival = rig.arrivals.pop(0, 4)
    assert len(arrival) == 1 and arrival[0]["client_order_id"] == 7
    assert (arrival[0]["bid"], arrival[0]["ask"]) == (99.0, 101.0)
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = rig.core.m
    assert block.latency_count(mx.ROW_T2T) == 1  # tick-to-trade stamped once
    assert rig.ctl[stage_word(ROUTER, S_EVENTS_IN)] == 1  # one order in
    assert rig.drain() == (0, 0, 0)  # nothing left


def test_router_drain_when_same_order_twice_then_sent_once(prefix, bells):
    rig = RouterRig(prefix, bells)
    rig.md.push(quote(0, 99.0, 101.0))
    rig.orders.push(an_order(7))
    rig.drain()
    rig.orders.push(an_order(7))
    assert rig.drain() == (1, 0, 0)  # popped, never routed again, no report
    assert len(rig.exec.pop(0, 16)) == 2  # the first order's ack and fill only


def test_router_drain_when_waiting_and_an_order_is_already_there_then_no_sleep(prefix, bells):
    rig = RouterRig(prefix, bells)
    rig.md.push(quote(0, 99.0, 101.0))
    rig.orders.push(an_order(7))
    assert rig.drain(wait=True, seconds=30)[0] == 2  # quote and order; would hang for 30 s had it slept
    assert bells.words[1] == 0  # disarmed


def test_router_drain_when_waiting_and_nothing_comes_then_returns_at_the_timeout_disarmed(prefix, bells):
    rig = RouterRig(prefix, bells)
    assert rig.drain(wait=True, seconds=0.02) == (0, 0, 0)
    assert bells.words[1] == 0


PUSHER = """
import sys, time
import numpy as np
from alphad.ipc import dtypes
from alphad.ipc.doorbell import Doorbells
from alphad.ipc.ring import Ring
prefix = sys.argv[1]
bells = Doorbells.attach(prefix + ".bells")
orders = Ring.attach(prefix + ".orders", dtypes.ORDER_DTYPE, bells)
while bells.words[1] == 0:  # until the router has armed its doorbell
    time.sleep(0.001)
time.sleep(0.05)
o = np.zeros(1, dtypes.ORDER_DTYPE)
o["client_order_id"], o["qty"], o["side"], o["kind"] = 9, 5, -1, dtypes.ORDER_MARKET
o["t_origin"] = time.monotonic_ns()  # CLOCK_MONOTONIC is one clock for every process
orders.push(o)
"""


def test_router_drain_when_asleep_then_woken_by_a_push_from_another_process(prefix, bells):
    rig = RouterRig(prefix, bells)
    rig.md.push(quote(0, 99.0, 101.0))
    rig.drain()  # the quote applied: the order below fills against it
    pusher = subprocess.Popen([sys.executable, "-c", PUSHER, prefix])
    try:
        t0 = time.monotonic()
        popped, k, pushed = rig.drain(wait=True, seconds=30)
        woke_after = time.monotonic() - t0
    finally:
        pusher.wait(timeout=30)
    assert pusher.returncode == 0
    assert popped == 1 and k == pushed >= 1
    assert woke_after < 25  # rung by the push, not the 30 s timeout
    report = rig.exec.pop(0, 4)[-1]
    assert report["status"] == EXEC_FILL and report["client_order_id"] == 9 and report["fill_px"] == 99.0  # the bid


# -- risk ---------------------------------------------------------------------------

class RiskRig:
    def __init__(self, prefix, bells):
        self.md = ring(prefix, bells, "md", "risk", woken=False)
        self.signals = ring(prefix, bells, "signals", "risk")
        self.exec = ring(prefix, bells, "exec", "risk")
        self.orders = ring(prefix, bells, "orders", "router")
        self.denials = ring(prefix, bells, "denials", "journal", woken=False)
        self.m = np.zeros(mx.SIZE // 8, np.int64)
        self.core = rk.RiskCore(CFG.universe, CFG.risk, np.zeros(7, np.int64), metrics=self.m)
        self.ctl = np.zeros(1024, np.int64)
        self.tail = (port_in(self.md), port_in(self.signals), port_in(self.exec), 8, self.core.state,
                     port_out("orders", self.orders, bells, self.m, self.ctl, RISK),
                     port_out("denials", self.denials, bells, self.m, self.ctl, RISK, self.core.denials))
        self.bells = bells
        self.drain()  # compiled (or loaded) now: a signal stamped before a compile would be stale

    def drain(self, wait=False, seconds=0.0):
        ts, addr = timespec(seconds)
        return steps.risk_drain(wait, waiter(self.bells, ME, addr), *self.tail)


def fill_of(order, px):
    x = np.zeros(1, dtypes.EXEC_DTYPE)
    for f in ("client_order_id", "instrument", "side"):
        x[0][f] = order[f]
    x[0]["status"], x[0]["fill_qty"], x[0]["fill_px"], x[0]["leaves_qty"] = EXEC_FILL, order["qty"], px, 0.0
    return x


def test_risk_drain_when_marks_signal_and_fill_then_same_orders_and_positions_as_the_core(prefix, bells):
    rig = RiskRig(prefix, bells)
    tm = np.zeros(mx.SIZE // 8, np.int64)
    twin = rk.RiskCore(CFG.universe, CFG.risk, np.zeros(7, np.int64), metrics=tm)
    marks = np.concatenate([quote(0, 99.0, 101.0), quote(1, 49.0, 51.0)])
    rig.md.push(marks)
    born = time.monotonic_ns()
    rig.signals.push(signal(0.02, seq=5, t_origin=born))
    assert rig.drain() == (3, 1, 1)  # two marks and a signal popped, one order pushed
    sent = rig.orders.pop(0, 8)
    rk.risk_marks(twin.state, marks, 2)
    out = np.zeros(4, dtypes.ORDER_DTYPE)
    tk = rk.risk_step(twin.state, signal(0.02, seq=5, t_origin=born), 1, out, born)
    assert tk == 1 and len(sent) == 1
    for field in ("client_order_id", "instrument", "side", "qty", "kind", "t_origin"):
        assert sent[0][field] == out[0][field], field
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = rig.m
    assert block.latency_count(RISK) == 1  # the order stamped on the risk row

    rig.exec.push(fill_of(sent[0], 101.0))
    assert rig.drain() == (1, 0, 0)
    rk.risk_fills(twin.state, fill_of(out[0], 101.0), 1)
    assert rig.core.book[0, B_POSITION] == twin.book[0, B_POSITION] == sent[0]["qty"]
    np.testing.assert_array_equal(rig.core.account, twin.account)
    assert rig.ctl[stage_word(RISK, S_EVENTS_IN)] == 1  # one signal in


def test_risk_drain_when_a_signal_is_denied_then_the_denial_is_pushed_to_the_journal_ring(prefix, bells):
    rig = RiskRig(prefix, bells)
    rig.md.push(quote(0, 99.0, 101.0))
    rig.signals.push(signal(0.02, seq=5, t_origin=1))  # born at t=1: far older than max_signal_age_ms
    assert rig.drain() == (2, 0, 0)  # no order
    denied = rig.denials.pop(0, 8)
    assert len(denied) == 1 and denied[0]["reason"] == rk.DENY_STALE_SIGNAL
    assert rig.core.den_n[0] == 0  # handed on: the next step starts an empty list
    assert len(rig.orders.pop(0, 8)) == 0


def test_risk_drain_when_only_marks_arrive_then_revalued_and_no_order(prefix, bells):
    rig = RiskRig(prefix, bells)
    on_mark(0, 100.0, rig.core.limits, rig.core.book, rig.core.sectors, rig.core.account)
    rig.md.push(quote(0, 109.0, 111.0))
    assert rig.drain() == (1, 0, 0)
    assert rig.core.book[0, B_LAST_PX] == 110.0  # marked at the new mid
    assert len(rig.orders.pop(0, 8)) == 0


# -- features and infer -------------------------------------------------------------

def test_features_drain_when_quotes_then_same_rows_as_features_step_pushed_to_infer(prefix, bells):
    from alphad.kernels import quote_features as qf

    md = ring(prefix, bells, "md", "features")
    rows = ring(prefix, bells, "features", "infer")
    quotes = np.concatenate([quote(0, 99.0, 101.0, t_origin=5), quote(0, 99.5, 101.0, t_origin=6)])
    md.push(quotes)
    state, twin_state = qf.new_state(2), qf.new_state(2)
    m, ctl = np.zeros(mx.SIZE // 8, np.int64), np.zeros(1024, np.int64)
    fs = STAGE_INDEX["features"]
    _, addr = timespec(0)
    n, k, pushed = steps.features_drain(False, waiter(bells, ME, addr), port_in(md), 8,
                                        quote_feature_state(state),
                                        port_out("features", rows, bells, m, ctl, fs))
    assert (n, k, pushed) == (2, 2, 2)
    twin = np.zeros(8, dtypes.FEATURE_DTYPE)
    tk, _ = steps.features_publish(quote_feature_state(twin_state), quotes, 2,
                                   port_out("features", None, bells, np.zeros_like(m), np.zeros_like(ctl), fs, twin), -1)
    got = rows.pop(0, 8)
    assert tk == 2 and len(got) == 2
    np.testing.assert_array_equal(got["x"], twin[:2]["x"])
    np.testing.assert_array_equal(got["t_origin"], [5, 6])
    np.testing.assert_array_equal(state, twin_state)


def test_infer_drain_then_signals_step_when_rows_then_model_input_gathered_and_signals_sized(prefix, bells):
    from alphad.daemon.infer.core import size_signals

    features = ring(prefix, bells, "features", "infer")
    signals = ring(prefix, bells, "signals", "risk")
    rows = np.zeros(3, dtypes.FEATURE_DTYPE)
    rows["x"] = np.arange(rows["x"].size, dtype=np.float64).reshape(rows["x"].shape)
    rows["t_origin"], rows["instrument"], rows["seq"] = [7, 8, 9], [0, 1, 0], [1, 2, 3]
    features.push(rows)
    n_features = 4
    x = np.zeros((2, n_features), np.float32)  # a model batch of 2: the third row waits
    in_recs = np.zeros(8, dtypes.FEATURE_DTYPE)
    rows_in = in_port(features, 0, in_recs)
    _, addr = timespec(0)
    st = infer_state(x)
    n = steps.infer_drain(False, waiter(bells, ME, addr), rows_in, st)
    assert n == 2
    np.testing.assert_array_equal(x, rows["x"][:2, :n_features].astype(np.float32))
    y = np.array([0.5, -3.0], np.float32)
    m, ctl = np.zeros(mx.SIZE // 8, np.int64), np.zeros(1024, np.int64)
    k, pushed = steps.infer_publish(st, in_recs, n, y, port_out("signals", signals, bells, m, ctl, STAGE_INDEX["infer"]),
                                    -1)
    assert (k, pushed) == (2, 2)
    got = signals.pop(0, 8)
    twin = np.zeros(2, dtypes.SIGNAL_DTYPE)
    size_signals(rows, 2, y, 2.0, 1.0, 0.5, 0.0, twin, 0)
    for field in ("t_origin", "seq", "instrument", "prediction", "target_weight"):
        np.testing.assert_array_equal(got[field], twin[field], err_msg=field)
    assert list(got["target_weight"]) == [0.25, -0.5]  # 0.5/2, and -3/2 capped at -0.5
    assert steps.infer_drain(False, waiter(bells, ME, addr), rows_in, st) == 1


# -- the fused process: feed through risk in two calls around the model --------------

def test_fused_front_and_back_when_quotes_then_same_market_data_rows_orders_and_state_as_the_stage_steps(prefix,
                                                                                                          bells):
    from alphad.daemon.infer.core import gather_rows, size_signals
    from alphad.kernels import quote_features as qf

    FEED, FEATURES, INFER = (STAGE_INDEX[s] for s in ("feed", "features", "infer"))
    md_ring = ring(prefix, bells, "md", "router", woken=False)
    orders = ring(prefix, bells, "orders", "router")
    events = np.concatenate([quote(0, 99.0, 101.0), quote(1, 49.0, 51.0)])
    y = np.array([0.5, -0.25], np.float32)  # the model's predictions: the shell runs it between the calls
    sizing = (1.0, 0.04, 0.02, 0.0)  # scale, weight per unit, cap, min |prediction|: weights 0.02 and -0.01

    # the chain
    m, ctl = np.zeros(mx.SIZE // 8, np.int64), np.zeros(1024, np.int64)
    core, state = rk.RiskCore(CFG.universe, CFG.risk, np.zeros(7, np.int64), metrics=m), qf.new_state(2)
    x = np.zeros((2, 4), np.float32)
    st = infer_state(x, *sizing[:3])
    md = port_out("md", md_ring, bells, m, ctl, FEED)
    rows_recs = np.zeros(8, dtypes.FEATURE_DTYPE)
    rows = port_out("features", None, bells, m, ctl, FEATURES, rows_recs)
    out = np.zeros(8, dtypes.ORDER_DTYPE)
    k = steps.fused_front(new_feed_state(events, np.array([0, 10, 3], np.int64)), 2, 0, md, core.state,
                          quote_feature_state(state), rows, st)
    assert k == 2
    ko, pushed = steps.fused_back(st, rows, k, y, port_out("signals", None, bells, m, ctl, INFER), core.state,
                                  port_out("orders", orders, bells, m, ctl, RISK, out),
                                  port_out("denials", None, bells, m, ctl, RISK, core.denials))

    # the same tick through the steps the stages run one by one
    tm, tctl = np.zeros_like(m), np.zeros_like(ctl)
    twin, twin_state = rk.RiskCore(CFG.universe, CFG.risk, np.zeros(7, np.int64), metrics=tm), qf.new_state(2)
    tmd, trows, tsigs, tout = (np.zeros(8, dtypes.RECORDS[kind]) for kind in ("md", "features", "signals", "orders"))
    steps.feed_publish(new_feed_state(events, np.array([0, 10, 3], np.int64)), 2, 0,
                       port_out("md", None, bells, tm, tctl, FEED, tmd), -1)
    rk.risk_marks(twin.state, tmd, 2)
    tk, _ = steps.features_publish(quote_feature_state(twin_state), tmd, 2,
                                   port_out("features", None, bells, tm, tctl, FEATURES, trows), -1)
    tx = np.zeros_like(x)
    gather_rows(trows, tk, 4, tx)
    ks = size_signals(trows, tk, y, *sizing, tsigs, 0)
    tko, _ = steps.risk_publish(twin.state, tsigs, ks, port_out("orders", None, bells, tm, tctl, RISK, tout), -1)

    sent_md = md_ring.pop(0, 8)
    np.testing.assert_array_equal(sent_md["seq"], [10, 11])
    for field in ("instrument", "bid_px", "ask_px"):
        np.testing.assert_array_equal(sent_md[field], tmd[:2][field], err_msg=field)
    np.testing.assert_array_equal(rows_recs[:2]["x"], trows[:2]["x"])
    np.testing.assert_array_equal(x, tx)
    np.testing.assert_array_equal(state, twin_state)
    assert tko == 2 and (ko, pushed) == (2, 2)  # one order per instrument: a buy and a sell
    sent = orders.pop(0, 8)
    for field in ("client_order_id", "instrument", "side", "qty", "kind"):
        np.testing.assert_array_equal(sent[field], tout[:2][field], err_msg=field)
    np.testing.assert_array_equal(core.book, twin.book)
    np.testing.assert_array_equal(core.account, twin.account)
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    assert [block.latency_count(s) for s in (FEED, FEATURES, INFER, RISK)] == [2, 2, 2, 2]
    assert [ctl[stage_word(s, S_EVENTS_IN)] for s in (FEATURES, INFER, RISK)] == [2, 2, 2]
    fw = stage_word(FEED, 0)  # the feed's resume words, written before anything downstream can fail
    assert (ctl[fw + FEED_POS], ctl[fw + FEED_SEQ], ctl[fw + FEED_LOOPS]) == (2, 12, 3)
