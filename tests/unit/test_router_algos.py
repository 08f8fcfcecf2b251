"""Execution algorithms in the router stage: parents from risk's orders, children to the paper
venues, fills back to risk against the order it approved (daemon/parents.py)."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon.risk import core as rk
from alphad.daemon.router import core as rt
from alphad.daemon.config import ConfigError, decode_config
from alphad.daemon.router.order_fsm import LIQ_MAKER, LIQ_TAKER, REASON_CXL_EXPIRED, REJ_BAD_QTY, child_order_id
from alphad.daemon.router.parents import ALGO_STRATEGY
from alphad.daemon.risk.portfolio import on_mark
from alphad.daemon.risk.codes import B_OPEN_BUY, B_OPEN_SELL, B_POSITION
from alphad.ipc.control import C_FLATTEN
from alphad.ipc import metrics as mx
from alphad.ipc.dtypes import (EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, MD_DTYPE, MD_QUOTE, MD_TRADE,
                               ORDER_DTYPE, ORDER_F_FLATTEN, ORDER_MARKET, SIGNAL_DTYPE)

S = 1_000_000_000  # ns per second

BASE = """
universe: [{id: 0, symbol: AAA, sector: Tech, lot_size: 1, tick_size: 0.01}]
risk:
  initial_equity: 100000
  min_order_notional: 0
  instrument_defaults: {max_order_qty: 1000, max_order_notional: 100000, max_position_weight: 0.5}
  account: {sector_limit: 1.0, sector_warning: 0.9, throttle_rate: 1000, throttle_burst: 100}
"""


def config(execution: str, **algo):
    algo = {"horizon_s": 10, "slices": 5, "step_ms": 100, **algo}
    text = BASE + f"router:\n  execution: {execution}\n  impact: {{enabled: false}}\n  algo: {algo}\n" \
        "  venues: [{name: a, taker_bps: 2.0, maker_bps: -0.5}, {name: b, taker_bps: 1.0, maker_bps: 0.5}]\n"
    return decode_config(text.replace("'", ""))


class Rig:
    """Risk and router cores wired as the daemon wires them, on a simulated clock."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.m = np.zeros(mx.SIZE // 8, np.int64)
        self.risk = rk.RiskCore(cfg.universe, cfg.risk, np.zeros(7, np.int64), metrics=self.m)
        on_mark(0, 100.0, self.risk.limits, self.risk.book, self.risk.sectors, self.risk.account)
        self.router = rt.RouterCore(cfg.universe, cfg.router, np.zeros(1, np.uint64), metrics=self.m)
        self.reports: list[np.void] = []  # everything risk was told
        self.now = 0

    def md(self, kind, bid=99.0, ask=101.0, size=50.0, px=0.0, qty=0.0, aggressor=0):
        md = np.zeros(1, MD_DTYPE)
        md[0]["kind"], md[0]["bid_px"], md[0]["ask_px"], md[0]["bid_sz"], md[0]["ask_sz"] = kind, bid, ask, size, size
        md[0]["last_px"], md[0]["last_sz"], md[0]["aggressor"], md[0]["t_origin"] = px, qty, aggressor, self.now
        self.router.on_md(md, 1, self.now)
        if kind == MD_QUOTE:
            on_mark(0, 0.5 * (bid + ask), self.risk.limits, self.risk.book, self.risk.sectors, self.risk.account)

    def to_risk(self, k):
        r = self.risk
        reps = self.router.reports[:k].copy()
        rk.risk_fills(r.state, reps, k)
        self.reports.extend(reps)

    def signal(self, weight, seq):
        sig = np.zeros(1, SIGNAL_DTYPE)
        sig[0]["target_weight"], sig[0]["ref_px"], sig[0]["seq"], sig[0]["t_origin"] = weight, 100.0, seq, self.now
        out = np.zeros(4, ORDER_DTYPE)
        r = self.risk
        k = rk.risk_step(r.state, sig, 1, out, self.now)
        assert k == 1, "risk approved no order"
        sent, rep = self.router.on_orders(out, k, self.now)
        self.to_risk(rep)
        return out[0].copy(), sent

    def run_until(self, t_end, dt=S // 2, trade=None):
        """Quotes every ``dt`` (and ``trade(rig)`` after each), the router polled in between."""
        while self.now < t_end:
            self.now += dt
            self.md(MD_QUOTE)
            if trade is not None:
                trade(self)
            self.to_risk(self.router.poll(self.now))

    def children(self):
        st = self.router.store
        return st.orders[: len(st)].copy()

    def of(self, cid):
        return [r for r in self.reports if int(r["client_order_id"]) == int(cid)]


def sell_prints(rig):
    """A seller crosses down to 99.0 for 3 shares: resting bids at or above it are hit."""
    rig.md(MD_TRADE, px=99.0, qty=3.0, aggressor=-1)


def test_twap_when_worked_to_completion_then_children_sum_to_parent_and_risk_books_each_child_fill():
    rig = Rig(config("twap", urgency=0.3, slices=10))
    rig.md(MD_QUOTE)
    order, sent = rig.signal(0.1, seq=5)  # 10% of 100k at 100: 100 shares
    assert sent == 1 and order["qty"] == 100
    cid = int(order["client_order_id"])
    assert rig.risk.book[0, B_OPEN_BUY] + rig.risk.book[0, B_POSITION] == 100  # working, or filled already
    rig.run_until(12 * S, trade=sell_prints)
    kids = rig.children()
    assert len(kids) >= 10  # ten slices at least (catch-ups and replaces add more)
    assert kids["filled"].sum() == 100  # children sum exactly to the parent
    assert np.all(kids["side"] == 1) and np.all(kids["filled"] <= kids["qty"])
    mine = rig.of(cid)
    assert all(r["status"] in (EXEC_PARTIAL, EXEC_FILL) for r in mine)  # no child ack/cancel reaches risk
    assert [r["status"] for r in mine].count(EXEC_FILL) == 1 and mine[-1]["status"] == EXEC_FILL
    assert sum(r["fill_qty"] for r in mine) == 100 and mine[-1]["leaves_qty"] == 0
    assert {int(r["client_order_id"]) for r in rig.reports} == {cid}  # children never reach risk
    # passive children filled by the prints (maker), and catch-ups that crossed (taker)
    assert {int(r["reason"]) for r in mine} == {LIQ_MAKER, LIQ_TAKER}
    # risk's position is the sum of the child fills, nothing is left working
    assert rig.risk.book[0, B_POSITION] == kids["filled"].sum() == 100
    assert rig.risk.book[0, B_OPEN_BUY] == 0
    # the fills came over time, not at once: the first slice was due at the start, the last near the end
    assert kids["ts_created"].min() == 0 and kids["ts_created"].max() >= 8 * S
    assert mx.MetricsBlock.counter(metrics_of(rig.m), rt.ROUTER, mx.C_ORDERS) == len(kids)


def test_parent_when_horizon_passes_unfilled_then_children_cancelled_and_remainder_reported_to_risk():
    # Strictly passive (never crossing to catch up, no finishing sweep), and one print of 30
    # shares through the bid is all the liquidity it meets.
    rig = Rig(config("twap", urgency=0.0, finish_fraction=0.0, catch_up=1.0, slices=2))
    rig.md(MD_QUOTE)
    order, _ = rig.signal(0.1, seq=9)
    cid = int(order["client_order_id"])
    prints = []

    def one_print(r):
        if not prints and r.now >= 6 * S:
            prints.append(r.now)
            r.md(MD_TRADE, px=98.0, qty=30.0, aggressor=-1)  # traded through every resting bid

    rig.run_until(12 * S, trade=one_print)
    mine = rig.of(cid)
    fills = [r for r in mine if r["fill_qty"] > 0]
    filled = sum(r["fill_qty"] for r in fills)
    assert filled == 30
    end = mine[-1]
    assert end["status"] == EXEC_CANCELED and end["reason"] == REASON_CXL_EXPIRED
    assert end["leaves_qty"] == 100 - filled  # the remainder, reported once
    assert end["ts"] >= 10 * S  # not before the horizon
    kids = rig.children()
    assert kids["filled"].sum() == filled
    assert rig.risk.book[0, B_POSITION] == filled and rig.risk.book[0, B_OPEN_BUY] == 0
    assert not rig.router.parents.working


@pytest.mark.parametrize("execution, params", [
    ("vwap", {"profile": "[1, 3, 1]", "urgency": 0.3}),
    ("pov", {"participation": 0.25, "urgency": 0.3}),
])
def test_vwap_and_pov_when_market_trades_then_children_sum_exactly_to_parent(execution, params):
    rig = Rig(config(execution, **params))
    rig.md(MD_QUOTE)
    order, _ = rig.signal(-0.05, seq=3)  # a sell of 50 shares (short allowed by default)
    cid = int(order["client_order_id"])

    def buy_prints(r):
        r.md(MD_TRADE, px=101.0, qty=40.0, aggressor=1)  # buyers lift up to 101: resting asks below fill

    rig.run_until(12 * S, trade=buy_prints)
    kids = rig.children()
    assert kids["filled"].sum() == 50 and np.all(kids["side"] == -1)
    mine = rig.of(cid)
    assert mine[-1]["status"] == EXEC_FILL and sum(r["fill_qty"] for r in mine) == 50
    assert rig.risk.book[0, B_POSITION] == -50 and rig.risk.book[0, B_OPEN_SELL] == 0


def test_pov_when_volume_arrives_then_parent_never_runs_ahead_of_its_share():
    rig = Rig(config("pov", participation=0.2, urgency=1.0, horizon_s=100, finish_fraction=0.0))
    rig.md(MD_QUOTE, size=1000)
    order, _ = rig.signal(0.1, seq=4)
    assert rig.children().shape[0] == 0  # nothing traded yet: nothing due

    def prints(r):
        r.md(MD_TRADE, px=101.0, qty=20.0, aggressor=1)

    rig.run_until(5 * S, trade=prints)  # 10 prints of 20: others traded 200
    done = rig.children()["filled"].sum()
    # 20% of all volume ours included: 0.2 / 0.8 * 200 = 50 due, the last print's share may still be on its way
    assert 40 <= done <= 50


def test_child_order_ids_when_scenario_replayed_then_identical_and_derived_from_the_parent():
    runs = []
    for _ in range(2):
        rig = Rig(config("twap", urgency=0.3, slices=10))
        rig.md(MD_QUOTE)
        order, _ = rig.signal(0.1, seq=5)
        rig.run_until(12 * S, trade=sell_prints)
        runs.append((int(order["client_order_id"]), rig.children()["cid"].tolist()))
    (parent, cids), (parent2, cids2) = runs
    assert parent == parent2 and cids == cids2
    assert cids[0] == child_order_id(ALGO_STRATEGY, 0, parent, 0)
    assert set(cids) <= {child_order_id(ALGO_STRATEGY, 0, parent, k) for k in range(64)}
    assert len(set(cids)) == len(cids)


def test_limit_offset_when_set_then_no_child_priced_beyond_it_even_when_crossing():
    rig = Rig(config("twap", urgency=1.0, limit_offset_bps=10))  # arrival mid 100: buys at most 100.10
    rig.md(MD_QUOTE)
    order, _ = rig.signal(0.1, seq=5)
    rig.run_until(3 * S)
    kids = rig.children()
    assert len(kids) >= 1 and np.all(kids["limit_px"] == 100.10)  # the far touch (101) was clamped
    assert rig.risk.book[0, B_POSITION] == 0  # nobody sells that low: nothing filled


def test_child_order_id_when_derived_in_python_then_equals_the_compiled_kernel():
    from alphad.daemon.router.order_fsm import _child_order_id_kernel

    rng = np.random.default_rng(11)
    cases = [(0, 0, 0, 0), ((1 << 16) - 1, (1 << 24) - 1, (1 << 64) - 1, (1 << 24) - 1)]
    cases += [(int(rng.integers(1 << 16)), int(rng.integers(1 << 24)), int(rng.integers(1 << 62)) * 4 + 3,
               int(rng.integers(1 << 24))) for _ in range(2000)]
    for c in cases:
        assert child_order_id(*c) == int(_child_order_id_kernel(*(np.uint64(v) for v in c)))


def test_order_when_replayed_or_off_the_lot_grid_then_never_worked_twice_and_bad_one_rejected_to_risk():
    rig = Rig(config("twap"))
    rig.md(MD_QUOTE)
    o = np.zeros(2, ORDER_DTYPE)
    o["client_order_id"] = [10, 10]
    o["side"], o["qty"], o["kind"], o["limit_px"] = 1, 5, 1, np.nan
    sent, k = rig.router.on_orders(o, 2, 0)
    assert sent == 1 and len(rig.router.parents.working) == 1  # the repeat was dropped
    assert mx.MetricsBlock.counter(metrics_of(rig.m), rt.ROUTER, mx.C_ERRORS) == 1
    bad = np.zeros(1, ORDER_DTYPE)
    bad["client_order_id"], bad["side"], bad["qty"], bad["kind"] = 11, 1, 2.5, 1  # lot is 1
    sent, k = rig.router.on_orders(bad, 1, 0)
    rep = rig.router.reports[:k]
    assert sent == 1 and k == 1 and rep[0]["status"] == EXEC_REJECT and rep[0]["reason"] == REJ_BAD_QTY
    assert rep[0]["client_order_id"] == 11 and rep[0]["leaves_qty"] == 2.5
    assert len(rig.router.parents.working) == 1


def test_router_when_algo_parents_work_then_stage_polls_at_the_step_period_and_stops_after():
    rig = Rig(config("twap", step_ms=100, urgency=1.0))
    assert rig.router.poll_ns == 0  # immediate-latency venues, nothing working
    rig.md(MD_QUOTE)
    rig.signal(0.1, seq=5)
    assert rig.router.poll_ns == 100_000_000
    rig.run_until(12 * S)
    assert rig.risk.book[0, B_POSITION] == 100 and rig.router.poll_ns == 0


def test_config_when_vwap_without_profile_or_bad_participation_then_error_names_the_path():
    with pytest.raises(ConfigError, match=r"profile.*\$\.router"):
        decode_config(BASE + "router: {execution: vwap}")
    with pytest.raises(ConfigError, match=r"\$\.router\.algo\.participation"):
        decode_config(BASE + "router: {execution: pov, algo: {participation: 1.5}}")
    with pytest.raises(ConfigError, match=r"\$\.router\.algo"):
        decode_config(BASE + "router: {execution: twap, algo: {slice: 3}}")
    assert decode_config(BASE).router.execution == "immediate"


def metrics_of(m):
    block = mx.MetricsBlock.__new__(mx.MetricsBlock)
    block.words = m
    return block


def test_flatten_order_when_twap_configured_then_sent_at_once_as_one_market_child():
    """A kill or ``ctl flatten`` must not wait for a schedule: risk flags its flatten orders
    and the router sends them whole, whatever ``router.execution`` says."""
    rig = Rig(config("twap", urgency=0.3, slices=10))
    rig.md(MD_QUOTE)
    rig.signal(0.1, seq=5)
    rig.run_until(12 * S, trade=sell_prints)
    assert rig.risk.book[0, B_POSITION] == 100
    before = len(rig.children())
    r = rig.risk
    out = np.zeros(4, ORDER_DTYPE)
    r.control[C_FLATTEN] = 1  # what ``ctl flatten`` or the KILL step sets
    k = rk.risk_flatten(r.state, out, rig.now)
    assert k == 1 and out[0]["flags"] == ORDER_F_FLATTEN and out[0]["side"] == -1 and out[0]["qty"] == 100
    sent, rep = rig.router.on_orders(out, k, rig.now)
    rig.to_risk(rep)
    kids = rig.children()[before:]
    assert sent == 1 and len(kids) == 1  # one child, sent in the same call, for the whole quantity
    assert kids[0]["qty"] == 100 and kids[0]["kind"] == ORDER_MARKET and kids[0]["ts_created"] == rig.now
    # The market child takes the 50 shown at 99 (the rest is cancelled: no more displayed
    # size); the parent sends the remainder on the next quotes, within a second, not over
    # the TWAP's 10 s horizon.
    t_kill = rig.now
    rig.run_until(t_kill + S, dt=S // 10)
    assert rig.risk.book[0, B_POSITION] == 0 and rig.risk.book[0, B_OPEN_SELL] == 0
    assert rig.children()[before:]["filled"].sum() == 100
