"""Router stage core: the execution library's smart router over simulated venues.

Orders arrive from risk.  With ``router.execution: immediate`` (the default) each is
recorded in the order state machine's store (NEW -> PENDING_NEW), routed to the venue with
the lowest expected all-in cost (fees, spread, impact, latency) and matched there against
the market data the router reads (:mod:`alphad.daemon.router.venues.paper`): market orders take
displayed size (what exceeds it is cancelled), limit orders rest in a queue, venue latency
and fees are modelled per venue.  With ``twap``, ``vwap`` or ``pov`` each order becomes a
parent whose children go to the venues over time (:mod:`alphad.daemon.router.parents`).  Exec
reports go back to risk, always against the order risk approved.

The immediate path is one compiled call per batch of orders (:func:`route_and_poll`):
route every order, then collect the reports the venues have due.  Housekeeping feeds the
live impact calibration (:mod:`alphad.daemon.router.impact_live`) and compacts the order store.

Tick-to-trade ends here: :func:`route_batch` stamps ``now - t_origin`` into the
``ROW_T2T`` latency row at the instant it hands each order to the venue adapter (for a
parent: when it is registered and its first child sent).

Idempotency: risk numbers its orders in the order it emits them, flattens included
(``(session << 40) | n``, :data:`alphad.daemon.risk.core.ID_SESSION_SHIFT`), so ids
increase per instrument.  ``last_cid`` (in shared memory, so it survives a restart
of this stage, unlike the order store) drops an id already seen: a replayed ring
record or a restarted risk stage can never send the same order twice.  A dropped
repeat is counted as an error and answered with nothing (a reject under the same
id would end the original order at risk).
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.experimental import structref

from alphad.ipc import metrics as mx
from alphad.ipc.control import STAGE_INDEX
from alphad.ipc.dtypes import ARRIVAL_DTYPE, EXEC_DTYPE, EXEC_REJECT, ORDER_DTYPE, ORDER_F_FLATTEN, check_records

from alphad.daemon.router.impact_live import LiveImpact
from alphad.daemon.router.ledger import L_CID, NOTHING_KEPT, ledger_close, ledger_open, ledger_orphans, new_ledger
from alphad.daemon.router.order_fsm import (ERR_DUPLICATE_CID, ERR_FULL, REJ_QUEUE_FULL, REJ_STALE, REJ_STORE_FULL,
                                            TABLE, Trigger)
from alphad.daemon.router.venues.base import SENT
from alphad.daemon.jit import StructRefType, bind
from alphad.daemon.router.venues.paper import ASK_PX, BID_PX, SmartRouter, _poll_all, _route_send, _state_on_md
from alphad.daemon.router.parents import ParentBook

ROUTER = STAGE_INDEX["router"]
#: route_batch's code for an order older than ``router.max_order_age_ms`` (never sent).
ERR_STALE = -100

#: Orders that ended longer ago than this are dropped from the in-memory store (the
#: journal keeps every one); recent ones stay for late fills after a cancel.
KEEP_ENDED_NS = 60_000_000_000


# Inlined into route_and_poll, like paper_venue._poll_all (no refcounting across the call).
@njit(cache=True, inline="always")
def route_batch(orders, n, r, now):
    """Hand ``orders[:n]`` to the venues of the router state ``r``; returns how many were sent.

    ``arrivals[k]`` receives the best bid/ask each sent order met (first venue's book: every
    venue sees the same market data), for the journal's transaction-cost analysis.  An order
    that could not be sent (order store full, venue queue full) gets a REJECT in
    ``rejects[:rej_n[0]]`` for risk, which would otherwise hold it open for ever.
    """
    s = r.smart
    last_cid, m, arrivals, rejects, rej_n, books = r.last_cid, r.m, r.arrivals, r.rejects, r.rej_n, s.book
    sent = 0
    rej_n[0] = 0
    for j in range(n):
        o = orders[j]
        i = o.instrument
        if 0 <= i < last_cid.shape[0]:
            if o.client_order_id <= last_cid[i]:
                mx.count(m, ROUTER, mx.C_ERRORS, 1)  # a repeat: never sent twice
                continue
            last_cid[i] = o.client_order_id
        if not ledger_open(r.ledger, o.client_order_id, i, o.side):
            mx.count(m, ROUTER, mx.C_ERRORS, 1)  # held but not covered if the router crashes
        stale = now - o.t_origin > r.max_age_ns
        if not stale:
            mx.observe(m, mx.ROW_T2T, now - o.t_origin)  # tick-to-trade: handed to the venue adapter
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
        res = ERR_STALE if stale else _route_send(books, s.params, s.inq, s.ctr, s.lat, s.lat_bps[0], s.orders,
                                                   s.count, s.keys, s.vals, TABLE, orders, j, now, 0, -1)
        if res < 0:
            mx.count(m, ROUTER, mx.C_REJECTS, 1)  # store full or venue queue full: recorded as REJECTED
            if res == ERR_DUPLICATE_CID:
                pass  # a duplicate already has its own reports
            elif rej_n[0] == rejects.shape[0]:
                mx.count(m, ROUTER, mx.C_ERRORS, 1)  # no room to answer: counted, never silent
            else:
                x = rejects[rej_n[0]]
                x.t_origin = o.t_origin
                x.ts = now
                x.client_order_id = o.client_order_id
                x.instrument = i
                x.side = o.side
                x.status = EXEC_REJECT
                x.reason = REJ_STORE_FULL if res == ERR_FULL else REJ_STALE if res == ERR_STALE else REJ_QUEUE_FULL
                x.fill_qty = 0.0
                x.fill_px = np.nan
                x.fee = 0.0
                x.leaves_qty = 0.0
                rej_n[0] += 1
        sent += 1
    if sent:
        mx.count(m, ROUTER, mx.C_ORDERS, sent)
    return sent


@structref.register
class _RouterStateType(StructRefType):
    pass


class RouterState(structref.StructRefProxy):
    """The router stage's arrays as one object: the smart router's state (``smart``, a
    :class:`~alphad.daemon.router.venues.paper.SmartState`), ``last_cid``, the metrics words ``m``
    and the ``arrivals`` buffer; one argument instead of four (see ``SmartState``)."""


structref.define_proxy(RouterState, _RouterStateType, ["smart", "last_cid", "m", "arrivals", "rejects", "rej_n",
                                                       "max_age_ns", "ledger"])


@njit(cache=True)
def _new_router_state(smart, last_cid, m, arrivals, rejects, rej_n, max_age_ns, ledger):
    return RouterState(smart, last_cid, m, arrivals, rejects, rej_n, max_age_ns, ledger)


@njit(cache=True)
def route_and_poll(orders, n, r, now):
    """:func:`route_batch` over the router state ``r`` (a :class:`RouterState`), then every
    venue's due reports into ``r.smart.reports`` (applied to the store); returns
    ``(sent, reports written)``.

    One dispatch for the router's whole step: entering compiled code costs ~0.1 µs plus
    ~35-60 ns per array argument (measured), as much as the routing itself, so the halves
    are one call."""
    s = r.smart
    sent = route_batch(orders, n, r, now)
    # Local rejects first: the venues keep what does not fit in their queues for the next poll.
    k = min(r.rej_n[0], s.reports.shape[0])
    s.reports[:k] = r.rejects[:k]
    k += _poll_all(s.book, s.inst, s.params, s.vorders, s.inq, s.outq, s.deliver, s.ctr, s.lat, now,
                   s.reports[k:], s.orders, s.keys, s.vals, TABLE, s.rstat)
    ledger_close(r.ledger, s.reports, k)
    return sent, k


@njit(cache=True)
def router_on_md(r, md, n, now):
    """Market data ``md[:n]`` to every simulated venue's book (and the trade tape); returns
    the exec reports the venues now hold (fills the market data caused among them)."""
    return _state_on_md(r.smart, md, n, now)


class RouterCore:
    """The smart router, its execution style and its shared idempotency guard.

    Parameters
    ----------
    universe : the config's instruments (tick and lot per instrument).
    router_cfg : the config's ``router`` section.
    last_cid : uint64 view (one per instrument) in the ``router_state`` segment.
    ledger, progress : the orders held for risk (``router/ledger.py``) and the algorithm
        parents' progress (``router/parents.py``), views in the same segment.
    metrics : int64 words of the metrics block (counters, tick-to-trade); a private
        block when absent.
    impact_out : float64 ``[rows, 5]`` view where the live impact calibration publishes
        (the metrics block's impact table), optional.
    """

    def __init__(self, universe, router_cfg, last_cid: np.ndarray, *, ledger: np.ndarray | None = None,
                 progress: np.ndarray | None = None, metrics: np.ndarray | None = None,
                 impact_out: np.ndarray | None = None):
        ticks = np.array([ins.tick_size for ins in universe])
        lots = np.array([ins.lot_size for ins in universe])
        self.smart = SmartRouter(list(router_cfg.venues), len(universe), tick=ticks, lot=lots,
                                 depth=router_cfg.book_depth, capacity=router_cfg.resting_capacity,
                                 store=None, latency_bps_per_ms=router_cfg.latency_bps_per_ms)
        self.venues = self.smart.venues
        self.store = self.smart.store
        self.last_cid = last_cid
        #: The orders held for risk, by id (router/ledger.py); in the segment, so a restarted
        #: router reports the ones its predecessor's in-process venues took with them.
        self.ledger = ledger if ledger is not None else new_ledger()
        self._adopted = NOTHING_KEPT  # ledger orders reconcile() found open at a venue
        self.m = metrics if metrics is not None else np.zeros(mx.SIZE // 8, np.int64)
        self.arrivals = np.zeros(256, ARRIVAL_DTYPE)
        #: REJECT reports for orders route_batch could not send, and how many.
        self.rejects = np.zeros(len(self.smart.reports), EXEC_DTYPE)
        self.rej_n = np.zeros(1, np.int64)
        #: Orders older than this are answered with a REJECT, never sent (router.max_order_age_ms).
        self.max_age_ns = int(router_cfg.max_order_age_ms * 1e6)
        self.state = _new_router_state(self.smart.state, self.last_cid, self.m, self.arrivals, self.rejects,
                                       self.rej_n, self.max_age_ns, self.ledger)
        self._route_ep = bind(route_and_poll, np.zeros(1, ORDER_DTYPE), 0, self.state, 0)
        self._checked = None  # the last orders array whose type was checked
        #: With venue latency, fills arrive later: the stage polls at least this often.
        self._base_poll_ns = 200_000 if any(v.expected_latency_ns > 0 for v in self.venues) else 0
        self.poll_ns = self._base_poll_ns
        self.execution = router_cfg.execution
        self.parents = None
        self.reports = self.smart.reports
        if self.execution != "immediate":
            self.parents = ParentBook(self.smart, ticks, lots, self.execution, router_cfg.algo,
                                      keep_ended_ns=KEEP_ENDED_NS, progress=progress)
            self.reports = self.parents.reports  # risk hears about parents, never children
        self.impact = LiveImpact(len(universe), router_cfg.impact, impact_out) if router_cfg.impact.enabled else None

    def warm(self, md: np.ndarray) -> None:
        """Compile (or load) and bind every kernel without touching a venue, the store or
        the metrics: the immediate path, md, poll, the impact harvest, and the counters the
        algorithm path calls from Python."""
        self.on_orders(np.zeros(1, ORDER_DTYPE), 0, 0)
        self.smart.on_md(md, 0, 0)
        self.smart.poll(0)
        if self.impact is not None:
            self.impact.warm(self.store)
        if self.parents is not None:
            scratch = np.zeros_like(self.m)
            mx.observe(scratch, mx.ROW_T2T, 0)
            mx.count(scratch, ROUTER, mx.C_ORDERS, 0)

    def on_orders(self, orders: np.ndarray, n: int, now: int) -> tuple[int, int]:
        """Route ``orders[:n]`` (ORDER_DTYPE) from risk.

        Returns ``(sent, k)``: orders accepted (sent, or registered as parents) and the exec
        reports for risk now waiting in ``reports[:k]``.
        """
        if orders is not self._checked:
            check_records(orders, ORDER_DTYPE, "orders")
            self._checked = orders
        if self.parents is None:
            return self._route_ep(orders, n, self.state, now)
        return self._parent_orders(orders, n, now)

    def _parent_orders(self, orders: np.ndarray, n: int, now: int) -> tuple[int, int]:
        pb, m, book = self.parents, self.m, self.smart.books[0]
        pb.begin(now)
        sent = 0
        for t_origin, _ts, cid, i, side, _kind, flags, qty, _px, *_sizing in orders[:n].tolist():
            if 0 <= i < self.last_cid.shape[0]:
                if cid <= self.last_cid[i]:
                    mx.count(m, ROUTER, mx.C_ERRORS, 1)  # a repeat: never worked twice
                    continue
                self.last_cid[i] = cid
            if not ledger_open(self.ledger, cid, i, side):
                mx.count(m, ROUTER, mx.C_ERRORS, 1)  # held but not covered if the router crashes
            if sent < len(self.arrivals):
                known = 0 <= i < book.shape[0]
                self.arrivals[sent] = (t_origin, now, cid, i, side, 0, 0, qty, book[i, BID_PX, 0] if known else np.nan,
                                       book[i, ASK_PX, 0] if known else np.nan)
            # Tick-to-trade on the injected clock, as the immediate path stamps it: the parent is
            # handed over now (its first child, when due, goes in this same call).
            mx.observe(m, mx.ROW_T2T, now - t_origin)
            pb.add(cid, i, side, qty, t_origin, now, at_once=bool(flags & ORDER_F_FLATTEN))
            sent += 1
        k = self._collect(now)
        return sent, k

    def on_md(self, md: np.ndarray, n: int, now: int) -> int:
        """Market data ``md[:n]`` to every venue (and the trade tape); returns the exec
        reports the venues hold for :meth:`poll`."""
        return self.smart.on_md(md, n, now)

    def poll(self, now: int) -> int:
        """Due exec reports for risk into :attr:`reports`; returns how many.  With an
        algorithm this also steps the working parents (at most every ``algo.step_ms``)."""
        if self.parents is None:
            k = self.smart.poll(now)
            ledger_close(self.ledger, self.reports, k)
            return k
        self.parents.begin(now)
        self.parents.step(now)
        return self._collect(now)

    def _collect(self, now: int) -> int:
        pb = self.parents
        n = self.smart.poll(now)
        k = pb.collect(n, now) if n else pb.n
        pb.count_into(self.m)  # poll often while parents work
        self.poll_ns = pb.step_ns if pb.working else self._base_poll_ns
        ledger_close(self.ledger, self.reports, k)
        return k

    def reconcile(self, now: int) -> dict:
        """Crash-only start, before the stage is ready: the orders the ledger says a
        previous router held for risk, against every venue that outlives a router (its
        mass status).  An order still open there is adopted (entered in the store as
        working at that venue: its later reports apply); an order open there that the
        ledger does not hold (a child of a previous router's parent) is cancelled.  A
        parent whose progress the segment holds is resumed (``ParentBook.resume``: what is
        left of it, until its original end).  Every other ledger order ended with its venue
        or while no router listened: :meth:`report_lost` then reports it CANCELED.

        Returns a summary: ``adopted``, ``resumed``, ``stray_cancels``, the venues'
        ``positions`` (summed), and ``reports``: how many exec reports for risk now wait in
        :attr:`reports` (a resumed parent's first children), to hand on before
        :meth:`report_lost` writes there."""
        held = {int(c): (int(i), int(s)) for c, i, s in self.ledger[self.ledger[:, L_CID] != 0]}
        adopted, strays = [], 0
        positions = np.zeros(self.last_cid.shape[0])
        store = self.store
        for v, venue in enumerate(self.venues):
            if not venue.survives_restart:
                continue  # it began with this process: nothing of the last one is there
            status = venue.mass_status(now)
            positions += status.positions
            for o in status.open_orders:
                cid = int(o["client_order_id"])
                if cid in held and store.find(cid) < 0:
                    store.add(cid, int(o["instrument"]), int(o["side"]), int(o["kind"]), float(o["leaves"]),
                              float(o["limit_px"]), now, venue=v)
                    store.trigger(cid, Trigger.SUBMIT, now)
                    store.trigger(cid, Trigger.ACK, now)
                    adopted.append(cid)
                elif store.find(cid) < 0:
                    strays += venue.cancel(cid, now) == SENT
        resumed, k = [], 0
        if self.parents is not None:
            self.parents.begin(now)
            resumed = self.parents.resume(now)
            k = self._collect(now)
        self._adopted = np.array(sorted(adopted + resumed), np.int64)
        return {"adopted": len(adopted), "resumed": len(resumed), "stray_cancels": strays, "positions": positions,
                "reports": k}

    def report_lost(self, now: int) -> int:
        """CANCELED reports (``REASON_CXL_VENUE_LOST``) for the ledger's orders that
        :meth:`reconcile` did not adopt, as many as fit in :attr:`reports`; returns how
        many (call until 0)."""
        return ledger_orphans(self.ledger, self.reports, now, self._adopted)

    def cancel_all(self, now: int) -> tuple[int, int]:
        """Send a cancel for every working order (immediate execution) or parent (an
        algorithm: it cancels its own children), flatten orders excepted.

        Returns ``(cancelled, k)``: how many, and the exec reports for risk now waiting in
        ``reports[:k]`` (the venues' later answers come from :meth:`poll`)."""
        if self.parents is not None:
            self.parents.begin(now)
            n = self.parents.cancel_all(now)
            return n, self._collect(now)
        store, n = self.store, 0
        for cid in store.cancel_all(now, top_level=True):
            venue = int(store.orders[store.find(cid)]["venue"])
            if self.venues[venue].cancel(cid, now) == SENT:
                n += 1
            else:  # the venue's queue is full: back to working, a later cancel-all tries again
                store.trigger(cid, Trigger.CANCEL_REJECT, now)
        return n, self.poll(now)

    def housekeeping(self, now: int) -> None:
        if self.impact is not None:
            self.impact.housekeeping(now, self.store, self.smart.books[0], self.smart.tape)
        if self.parents is not None:
            self.parents.housekeeping()
        if len(self.store) > 0.75 * self.store.orders.shape[0]:
            if self.store.compact(now, KEEP_ENDED_NS) and self.impact is not None:
                self.impact.compacted()
