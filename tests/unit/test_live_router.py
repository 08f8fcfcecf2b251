"""The router's live-venue core (daemon/router/live.py) over in-memory rings: what it sends the
gateway, what it passes on to risk, what it adopts and what it drops."""
from __future__ import annotations

import numpy as np

from alphad.daemon.config import decode_config
from alphad.daemon.router.ledger import L_CID, ledger_open, new_ledger
from alphad.daemon.router.live import LiveRouterCore
from alphad.daemon.router.order_fsm import State
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, EXEC_STATUS, ORDER_DTYPE,
                               REQ_CANCEL, REQ_NEW, REQ_QUERY, VENUE_REQ_DTYPE)

CFG = decode_config("universe: [{id: 0, symbol: BTC/USD}, {id: 1, symbol: ETH/USD}]\n"
                    "router: {venue: alpaca, alpaca: {time_in_force: gtc}}\n")


class Pipe:
    """The two rings, in memory: what the core pushed, what the test lets it pop."""

    def __init__(self):
        self.sent = np.zeros(0, VENUE_REQ_DTYPE)
        self.inbox = np.zeros(0, EXEC_DTYPE)

    def push(self, buf, n):
        self.sent = np.concatenate([self.sent, buf.view(VENUE_REQ_DTYPE)[:n]])
        return n

    def pop(self, buf, max_n):
        k = min(max_n, len(self.inbox))
        buf.view(EXEC_DTYPE)[:k] = self.inbox[:k]
        self.inbox = self.inbox[k:]
        return k

    def answer(self, *recs):
        self.inbox = np.concatenate([self.inbox, np.array(list(recs), EXEC_DTYPE)])


def core(pipe, ledger=None):
    return LiveRouterCore(CFG.universe, CFG.router, np.zeros(2, np.uint64), ledger=ledger, push=pipe.push,
                          pop=pipe.pop)


def orders(n, now, start=1):
    o = np.zeros(n, ORDER_DTYPE)
    o["client_order_id"] = np.arange(start, start + n)
    o["instrument"] = 0
    o["side"] = 1
    o["qty"] = 0.01
    o["limit_px"] = np.nan
    o["t_origin"] = now
    return o


def test_orders_go_to_the_gateway_in_full_batches_each_once_and_a_repeat_never():
    pipe = Pipe()
    c = core(pipe)
    sent, k = c.on_orders(orders(300, 1000), 300, 2000)  # more than one batch of 256
    assert (sent, k) == (300, 0)
    assert len(pipe.sent) == 300 and set(pipe.sent["action"]) == {REQ_NEW}
    assert list(pipe.sent["client_order_id"]) == list(range(1, 301))
    assert set(pipe.sent["tif"]) == {1}  # gtc
    again, _ = c.on_orders(orders(3, 1000, start=298), 3, 3000)
    assert again == 0 and len(pipe.sent) == 300
    assert c.store.state(5) == State.PENDING_NEW and (c.ledger[:, L_CID] != 0).sum() == 300


def test_reports_pass_to_risk_and_a_fill_past_the_quantity_is_dropped():
    pipe = Pipe()
    c = core(pipe)
    c.on_orders(orders(1, 1000), 1, 2000)
    pipe.answer((1000, 3000, 1, 0, 1, EXEC_ACK, 0, 0.0, np.nan, 0.0, 0.01),
                (1000, 3001, 1, 0, 1, EXEC_PARTIAL, 0, 0.004, 100.0, 0.0, 0.006),
                (1000, 3002, 1, 0, 1, EXEC_FILL, 0, 0.006, 101.0, 0.0, 0.0),
                (1000, 3003, 1, 0, 1, EXEC_FILL, 0, 0.006, 101.0, 0.0, 0.0))  # reported twice
    k = c.poll(4000)
    assert k == 3 and list(c.reports["status"][:3]) == [EXEC_ACK, EXEC_PARTIAL, EXEC_FILL]
    assert c.dropped_fills == 1 and c.store.state(1) == State.FILLED
    assert (c.ledger[:, L_CID] != 0).sum() == 0  # its end told to risk: out of the ledger


def test_a_restarted_router_asks_about_its_ledger_and_adopts_what_still_works():
    pipe, ledger = Pipe(), new_ledger()
    for cid in (7, 8):
        ledger_open(ledger, cid, 1, -1)
    c = core(pipe, ledger)
    summary = c.reconcile(5000)
    assert summary["asked"] == 2 and c.pending_queries == 2
    assert list(pipe.sent["action"]) == [REQ_QUERY, REQ_QUERY] and set(pipe.sent["known_filled"]) == {-1.0}
    pipe.answer((0, 5001, 7, 1, -1, EXEC_PARTIAL, 0, 0.2, 3000.0, 0.0, 0.3),   # a fill from before the answer
                (0, 5002, 7, 1, -1, EXEC_STATUS, 1, 0.5, np.nan, 0.0, 0.3),     # still working, 0.2 reported
                (0, 5003, 8, 1, -1, EXEC_CANCELED, 0, 0.0, np.nan, 0.0, 0.0))   # ended meanwhile
    k = c.poll(6000)
    assert c.pending_queries == 0
    assert k == 2 and list(c.reports["status"][:2]) == [EXEC_PARTIAL, EXEC_CANCELED]  # STATUS stays here
    o = c.store.orders[c.store.find(7)]
    assert c.store.state(7) == State.PARTIALLY_FILLED and o["qty"] == 0.5 and abs(o["filled"] - 0.2) < 1e-12
    cancelled, _ = c.cancel_all(7000)  # the adopted order is cancelled like any other
    assert cancelled == 1 and pipe.sent["action"][-1] == REQ_CANCEL and pipe.sent["client_order_id"][-1] == 7
