"""Client order ids over a 1,000-instrument universe: any interleaving of normal orders,
flattens, replayed decisions and restarts of the risk and router stages gives unique ids,
and the router drops none of risk's orders as a repeat (each gets its report)."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from alphad.daemon.config import decode_config
from alphad.daemon.risk import core as rk
from alphad.ipc.control import C_FLATTEN
from alphad.daemon.router import core as rt
from alphad.daemon.supervisor.supervisor import next_session
from alphad.ipc import metrics as mx
from alphad.ipc.dtypes import MD_DTYPE, MD_QUOTE, ORDER_DTYPE, SIGNAL_DTYPE

N = 1000
CFG = decode_config("universe: [" + ", ".join(f"{{id: {i}, symbol: S{i}, lot_size: 1}}" for i in range(N)) + "]\n"
                    """
risk:
  initial_equity: 100000000
  instrument_defaults: {max_order_qty: 1000000, max_order_notional: 1.0e+9, max_position_weight: 0.5}
  account: {throttle_rate: 1.0e+12, throttle_burst: 1.0e+9, max_gross_notional: 1.0e+12, max_net_notional: 1.0e+12,
            max_leverage: 100.0, sector_limit: 1.0, sector_warning: 1.0}
""")


def quotes() -> np.ndarray:
    md = np.zeros(N, MD_DTYPE)
    md["kind"], md["instrument"] = MD_QUOTE, np.arange(N)
    md["bid_px"], md["ask_px"], md["bid_sz"], md["ask_sz"] = 99.0, 101.0, 1e6, 1e6
    return md


class Pipeline:
    """Risk and the router over arrays that outlive their stages, as the shared segments do."""

    def __init__(self, session: int):
        self.session = session
        self.control = np.zeros(7, np.int64)
        specs = rk.state_specs(N, 1, rk.RiskCore.OO_CAPACITY, CFG.risk.drawdown.window_capacity)
        self.risk_views = [np.zeros(shape, dt) for shape, dt in specs]
        self.fresh = True
        self.last_cid = np.zeros(N, np.uint64)
        self.restart_risk()
        self.restart_router()
        self.sent: list[int] = []      # every id risk emitted
        self.reported: set[int] = set()

    def restart_risk(self):
        self.risk = rk.RiskCore(CFG.universe, CFG.risk, self.control, shared=(self.risk_views, self.fresh),
                                session=self.session)
        self.fresh = False
        rk.risk_marks(self.risk.state, quotes(), N)

    def restart_router(self):
        self.router = rt.RouterCore(CFG.universe, CFG.router, self.last_cid)
        self.router.on_md(quotes(), N, 0)

    def route(self, out, k, now):
        self.sent += [int(c) for c in out["client_order_id"][:k]]
        _, r = self.router.on_orders(out, k, now)
        reports = self.router.reports[:r].copy()
        self.reported |= {int(c) for c in reports["client_order_id"]}
        rk.risk_fills(self.risk.state, reports, r)

    def signal(self, sig, now):
        out = np.zeros(8, ORDER_DTYPE)
        self.route(out, rk.risk_step(self.risk.state, sig, 1, out, now), now)

    def flatten(self, now):
        self.control[C_FLATTEN] = 1
        out = np.zeros(N, ORDER_DTYPE)
        self.route(out, rk.risk_flatten(self.risk.state, out, now), now)
        self.control[C_FLATTEN] = 0


OPS = st.one_of(
    st.tuples(st.just("signal"), st.integers(0, N - 1), st.sampled_from([-0.002, -0.001, 0.001, 0.002])),
    st.tuples(st.just("replay")), st.tuples(st.just("flatten")),
    st.tuples(st.just("restart_risk")), st.tuples(st.just("restart_router")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=1, max_size=60), session=st.integers(1, 2**20))
def test_ids_when_any_interleaving_of_orders_flattens_replays_and_restarts_then_unique_and_none_dropped(ops, session):
    p = Pipeline(session)
    seq, last, now = 0, None, 1_000
    for op in ops:
        now += 1_000
        if op[0] == "signal":
            seq += 1
            last = np.zeros(1, SIGNAL_DTYPE)
            last["seq"], last["instrument"], last["target_weight"], last["ref_px"], last["t_origin"] = (
                seq, op[1], op[2], 100.0, now)
            p.signal(last, now)
        elif op[0] == "replay" and last is not None:  # the same decision delivered again
            before = len(p.sent)
            p.signal(last, now)
            assert len(p.sent) == before, "a replayed decision made a second order"
        elif op[0] == "flatten":
            p.flatten(now)
        elif op[0] == "restart_risk":
            p.restart_risk()
        elif op[0] == "restart_router":
            p.restart_router()
    assert len(set(p.sent)) == len(p.sent), "a client order id was given twice"
    assert all(c >> rk.ID_SESSION_SHIFT == session for c in p.sent)
    assert set(p.sent) <= p.reported, "an order risk sent got no report: the router dropped it"
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = p.router.m
    assert block.counter(rt.ROUTER, mx.C_ERRORS) == 0  # no order refused as a repeat


def test_ids_when_two_daemon_runs_then_sessions_differ_and_ids_never_repeat(tmp_path):
    first, second = next_session(tmp_path), next_session(tmp_path)
    assert (first, second) == (1, 2)
    ids = set()
    for session in (first, second):
        p = Pipeline(session)
        for i in range(3):
            sig = np.zeros(1, SIGNAL_DTYPE)
            sig["seq"], sig["instrument"], sig["target_weight"], sig["ref_px"], sig["t_origin"] = i + 1, i, 0.001, 100.0, 0
            p.signal(sig, 0)
        assert len(p.sent) == 3
        ids |= set(p.sent)
    assert len(ids) == 6  # the same decisions in the next run get other ids


def test_ids_when_instruments_256_apart_and_a_flatten_overtakes_signals_then_all_orders_reach_the_venue():
    # The old scheme packed the instrument into 8 bits (5 and 261 collided) and gave a flatten
    # the feed's newest seq, so a signal of an older tick, decided after it, was refused as a repeat.
    p = Pipeline(7)

    def sig(seq, inst, w):
        s = np.zeros(1, SIGNAL_DTYPE)
        s["seq"], s["instrument"], s["target_weight"], s["ref_px"], s["t_origin"] = seq, inst, w, 100.0, 0
        return s

    p.signal(sig(10, 5, 0.002), 0)
    p.signal(sig(10, 261, 0.002), 0)
    p.flatten(1)
    p.signal(sig(9, 999, -0.001), 2)  # an older tick's decision, after the flatten
    assert len(p.sent) == 5 and len(set(p.sent)) == 5  # 2 orders, 2 flatten orders, 1 order
    assert set(p.sent) <= p.reported
    assert p.risk.book[999, 0] < 0  # it reached the venue and filled (short ~1,000)
