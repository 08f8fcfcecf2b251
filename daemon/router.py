"""Router stage core: the execution library's smart router over simulated venues.

Orders arrive from risk; each is recorded in the order state machine's store
(NEW -> PENDING_NEW), routed to the venue with the lowest expected all-in cost
(fees, spread, impact, latency) and matched there against the market data the
router reads (:mod:`alphad.daemon.paper_venue`): market orders take displayed
size (what exceeds it is cancelled), limit orders rest in a queue, venue latency
and fees are modelled per venue.  Exec reports go back to risk.

Tick-to-trade ends here: :func:`route_batch` stamps ``now - t_origin`` into the
``ROW_T2T`` latency row at the instant it hands each order to the venue adapter.

Idempotency: client order ids are derived from the decision that caused them and
increase per instrument.  ``last_cid`` (in shared memory, so it survives a restart
of this stage, unlike the order store) drops an id already seen: a replayed ring
record or a restarted risk stage can never send the same order twice.  A dropped
repeat is counted as an error and answered with nothing (a reject under the same
id would end the original order at risk).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.ipc import metrics as mx
from alphad.ipc.control import STAGE_INDEX

from alphad.ipc.dtypes import ARRIVAL_DTYPE

from .paper_venue import ASK_PX, BID_PX, SmartRouter, _route_send

ROUTER = STAGE_INDEX["router"]

#: Orders that ended longer ago than this are dropped from the in-memory store (the
#: journal keeps every one); recent ones stay for late fills after a cancel.
KEEP_ENDED_NS = 60_000_000_000


@njit(cache=True)
def route_batch(orders, n, last_cid, m, arrivals, books, params, inq, ctr, lat, lat_bps_per_ms, st_orders,
                st_count, keys, vals, table, now):
    """Hand ``orders[:n]`` to the venues; returns how many were sent.

    ``arrivals[k]`` receives the best bid/ask each sent order met (first venue's book: every
    venue sees the same market data), for the journal's transaction-cost analysis.
    """
    sent = 0
    for j in range(n):
        o = orders[j]
        mx.observe(m, mx.ROW_T2T, now - o.t_origin)  # tick-to-trade: handed to the venue adapter
        i = o.instrument
        if 0 <= i < last_cid.shape[0]:
            if o.client_order_id <= last_cid[i]:
                mx.count(m, ROUTER, mx.C_ERRORS, 1)  # a repeat: never sent twice
                continue
            last_cid[i] = o.client_order_id
        if sent < arrivals.shape[0]:
            a = arrivals[sent]
            a.t_origin = o.t_origin
            a.ts = now
            a.client_order_id = o.client_order_id
            a.instrument = i
            a.side = o.side
            a.qty = o.qty
            a.bid = books[0, i, BID_PX, 0]
            a.ask = books[0, i, ASK_PX, 0]
        r = _route_send(books, params, inq, ctr, lat, lat_bps_per_ms, st_orders, st_count, keys, vals, table,
                        orders, j, now, 0, -1)
        if r < 0:
            mx.count(m, ROUTER, mx.C_REJECTS, 1)  # store full or venue queue full: recorded as REJECTED
        sent += 1
    if sent:
        mx.count(m, ROUTER, mx.C_ORDERS, sent)
    return sent


class RouterCore:
    """The smart router and its shared idempotency guard.

    Parameters
    ----------
    universe : the config's instruments (tick and lot per instrument).
    router_cfg : the config's ``router`` section.
    last_cid : uint64 view (one per instrument) in the ``router_state`` segment.
    """

    def __init__(self, universe, router_cfg, last_cid: np.ndarray):
        ticks = np.array([ins.tick_size for ins in universe])
        lots = np.array([ins.lot_size for ins in universe])
        self.smart = SmartRouter(list(router_cfg.venues), len(universe), tick=ticks, lot=lots,
                                 depth=router_cfg.book_depth, capacity=router_cfg.resting_capacity,
                                 store=None, latency_bps_per_ms=router_cfg.latency_bps_per_ms)
        self.venues = self.smart.venues
        self.store = self.smart.store
        self.reports = self.smart.reports
        self.last_cid = last_cid
        self.arrivals = np.zeros(256, ARRIVAL_DTYPE)
        sg, st = self.smart.storage, self.store
        #: Arguments of route_batch after (orders, n, last_cid, m): packed once.
        self.route_args = (sg.book, sg.params, sg.inq, sg.ctr, sg.lat, self.smart.lat_bps_per_ms, st.orders,
                           st.count, st.keys, st.vals, st.table)
        #: With venue latency, fills arrive later: the stage polls at least this often.
        self.poll_ns = 200_000 if any(v.expected_latency_ns > 0 for v in self.venues) else 0

    def on_md(self, md: np.ndarray, n: int, now: int) -> None:
        view = md[:n]
        for venue in self.venues:
            venue.on_md(view, now)

    def poll(self, now: int) -> int:
        """Due exec reports of every venue into :attr:`reports`; returns how many."""
        return self.smart.poll(now)

    def housekeeping(self, now: int) -> None:
        if len(self.store) > 0.75 * self.store.orders.shape[0]:
            self.store.compact(now, KEEP_ENDED_NS)
