"""The router's side of a live venue: orders to its gateway process, exec reports back.

With ``router.venue`` a broker (``alpaca``), the router stage keeps the order state
machine and hands every approved order to the venue's gateway process
(:mod:`alphad.daemon.shell.gateway`) over the lossless ring ``venue_orders``; the
gateway's exec reports come back on ``venue_exec`` and go on to risk.  The gateway
reports each fill once (it keeps what it has reported in its shared order table); the
router still drops a fill that would take an order past its quantity, the one double a
gateway crash between a push and its table update could make.

A restarted router adopts the orders its predecessor held (the ledger in the
``router_state`` segment): it asks the gateway about each (``REQ_QUERY``); the answers
come back on the same ring, behind every report the gateway had pushed before, so the
filled quantity an ``EXEC_STATUS`` answer carries is exactly what risk has heard of.
Orders that ended meanwhile are answered with their end.  The router is ready once every
query is answered.

With ``router.execution`` an algorithm (IB), each approved order is a parent whose
children go to the gateway (:mod:`alphad.daemon.router.live_algos`); risk hears of the
parent only, as on the simulated venues.

This path is Python, not compiled: a broker's round trip is milliseconds, and the
gateway hop, not this code, is what it costs (BENCHMARKS.md, "gateway hop").
"""
from __future__ import annotations

import time

import numpy as np

from alphad.daemon.router.live_algos import LiveParents, venue_kind
from alphad.daemon.router.ledger import L_CID, ledger_close, ledger_open, new_ledger
from alphad.daemon.router.order_fsm import FLAG_FLATTEN, QTY_EPS, REJ_STALE, REJ_STORE_FULL, OrderStore, Trigger
from alphad.daemon.router.venues.gateway_core import TIF_CODES
from alphad.ipc import metrics as mx
from alphad.ipc.control import STAGE_INDEX
from alphad.ipc.dtypes import (ARRIVAL_DTYPE, EXEC_ACK, EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT,
                               EXEC_STATUS, MD_QUOTE, ORDER_DTYPE, ORDER_F_FLATTEN, REQ_CANCEL, REQ_NEW, REQ_QUERY,
                               VENUE_REQ_DTYPE, check_records)

ROUTER = STAGE_INDEX["router"]
#: Ended orders the store keeps (late reports still find them), ns.
KEEP_ENDED_NS = 60_000_000_000
#: An order the gateway took but has not answered for this long is asked about.
ANSWER_TIMEOUT_NS = 10_000_000_000


def _sleep_a_little() -> bool:
    time.sleep(0.0001)
    return True


class LiveRouterCore:
    """The router stage's core for a live venue; the same surface as
    :class:`alphad.daemon.router.core.RouterCore` (what :class:`RouterStage` calls).

    Parameters
    ----------
    universe, router_cfg : the config's instruments and ``router`` section.
    last_cid, ledger : views in the ``router_state`` segment (a repeat is never sent; the
        orders held for risk survive a router crash).
    push, pop : the shell's ends of the rings (the core never touches transport):
        ``push(buf_u8, n) -> pushed`` onto ``venue_orders`` (VENUE_REQ_DTYPE bytes) and
        ``pop(buf_u8, max_n) -> n`` from ``venue_exec`` (EXEC_DTYPE bytes).
    wait : called while ``venue_orders`` is full (the shell beats the heartbeat there, so
        the supervisor never takes a router waiting on its gateway for a frozen one);
        returns False once the process stops.  Default: a 0.1 ms sleep.
    metrics : int64 words of the metrics block.
    """

    live = True

    def __init__(self, universe, router_cfg, last_cid: np.ndarray, *, ledger: np.ndarray | None, push, pop,
                 metrics: np.ndarray | None = None, progress: np.ndarray | None = None, wait=None):
        self.n = len(universe)
        self.last_cid = last_cid
        self.ledger = ledger if ledger is not None else new_ledger()
        self.m = metrics if metrics is not None else np.zeros(mx.SIZE // 8, np.int64)
        self._push, self._pop = push, pop
        self._wait = wait or _sleep_a_little
        self.tif = TIF_CODES[getattr(router_cfg, router_cfg.venue).time_in_force]  # router.alpaca / router.ib
        self.max_age_ns = int(router_cfg.max_order_age_ms * 1e6)
        self.store = OrderStore(1 << 14)
        self.reports = np.zeros(256, EXEC_DTYPE)
        self.arrivals = np.zeros(256, ARRIVAL_DTYPE)
        self._req = np.zeros(256, VENUE_REQ_DTYPE)
        self._nreq = 0  # requests batched in self._req
        self._in = np.zeros(256, EXEC_DTYPE)
        self._one = np.zeros(1, EXEC_DTYPE)
        self._k = 0  # reports waiting in self.reports
        self.bid = np.full(self.n, np.nan)
        self.ask = np.full(self.n, np.nan)
        #: Polled every pass of the loop; the gateway's pushes also ring this process's doorbell.
        self.poll_ns = 1_000_000
        self.venues = ()
        self.state = None
        self.asked: set[int] = set()  # queries of a reconciliation not yet answered
        self._checked = None
        self.dropped_fills = 0
        #: The algorithm parents (``router.execution`` not immediate), else None.
        self.algos = None
        if router_cfg.execution != "immediate":
            self.algos = LiveParents(self, universe, router_cfg, progress, KEEP_ENDED_NS)
            self.reports = self.algos.reports  # risk hears about parents, never children

    @property
    def parents(self):
        return None if self.algos is None else self.algos.book

    # -- what RouterStage calls -------------------------------------------------------------
    def warm(self, md: np.ndarray) -> None:
        """Bind the ring kernels on empty work (nothing is sent or read), and compile the
        order store's, the ledger's and the metrics' kernels on scratch copies: an order's
        whole life, so the first real one never waits for the compiler."""
        self._push(self._req.view(np.uint8), 0)
        self._pop(self._in.view(np.uint8), 0)
        store, ledger, m = OrderStore(16), new_ledger(), np.zeros_like(self.m)
        store.add(1, 0, 1, 2, 1.0, 1.0, 0, venue=0)
        store.trigger(1, Trigger.SUBMIT, 0)
        ack = np.zeros(1, EXEC_DTYPE)
        ack[0] = (0, 0, 1, 0, 1, EXEC_ACK, 0, 0.0, np.nan, 0.0, 1.0)
        store.apply(ack, 1)
        store.find(1)
        store.timeouts(1, 1)
        store.compact(0, 0)
        ledger_open(ledger, 1, 0, 1)
        ledger_close(ledger, ack, 1)
        mx.count(m, ROUTER, mx.C_ORDERS, 0)
        mx.observe(m, mx.ROW_T2T, 0)

    def _queue(self, *rec) -> None:
        """One request (a VENUE_REQ_DTYPE tuple) into the batch; a full batch goes at once."""
        self._req[self._nreq] = rec
        self._nreq += 1
        if self._nreq == len(self._req):
            self._flush()

    def _flush(self) -> None:
        """Push the batch (a lossless ring: wait for room, never drop; but for a process
        that is stopping: what is held is asked about by the next start)."""
        n, done = self._nreq, 0
        while done < n:
            done += int(self._push(self._req[done:n].view(np.uint8), n - done))
            if done < n and not self._wait():
                break
        self._nreq = 0

    def _reject(self, o, reason: int, now: int) -> None:
        if self._k < len(self.reports):
            self.reports[self._k] = (o["t_origin"], now, o["client_order_id"], o["instrument"], o["side"],
                                     EXEC_REJECT, reason, 0.0, np.nan, 0.0, 0.0)
            self._k += 1
        mx.count(self.m, ROUTER, mx.C_REJECTS, 1)

    def on_orders(self, orders: np.ndarray, n: int, now: int) -> tuple[int, int]:
        """Each approved order into the store and the ledger, then to the gateway."""
        if orders is not self._checked:
            check_records(orders, ORDER_DTYPE, "orders")
            self._checked = orders
        if self.algos is not None:  # the children it sends are counted as orders (ParentBook.count_into)
            sent = self.algos.on_orders(orders, n, now)
            return sent, self.algos.collect_orders(now)
        self._k, sent = 0, 0
        for j in range(n):
            o = orders[j]
            cid, i = int(o["client_order_id"]), int(o["instrument"])
            admitted = self.admit(cid, i, int(o["t_origin"]), now)
            if admitted == REJ_STALE:
                self._reject(o, REJ_STALE, now)
            if admitted:
                continue
            try:
                self.store.add(cid, i, int(o["side"]), int(o["kind"]), float(o["qty"]), float(o["limit_px"]), now,
                               venue=0)
            except ValueError:
                self._reject(o, REJ_STORE_FULL, now)
                continue
            self.store.trigger(cid, Trigger.SUBMIT, now)
            if int(o["flags"]) & ORDER_F_FLATTEN:
                self.store.orders[self.store.find(cid)]["flags"] |= FLAG_FLATTEN  # cancel-all leaves it working
            self._queue(o["t_origin"], now, cid, i, o["side"], REQ_NEW, venue_kind(o["kind"], o["limit_px"]), self.tif,
                        o["qty"], o["limit_px"], 0.0, 0)
            self.taken(sent, int(o["t_origin"]), cid, i, int(o["side"]), float(o["qty"]), now)
            sent += 1
        self._flush()
        if sent:
            mx.count(self.m, ROUTER, mx.C_ORDERS, sent)
        k, self._k = self._k, 0
        return sent, k

    def admit(self, cid: int, instrument: int, t_origin: int, now: int) -> int:
        """Whether order ``cid`` from risk is to be worked: 0 yes; -1 a repeat (or garbage),
        counted and dropped, never sent twice; ``REJ_STALE`` older than
        ``router.max_order_age_ms`` (the caller answers it)."""
        if not 0 <= instrument < self.n or cid <= self.last_cid[instrument]:
            mx.count(self.m, ROUTER, mx.C_ERRORS, 1)
            return -1
        self.last_cid[instrument] = cid
        return REJ_STALE if now - t_origin > self.max_age_ns else 0

    def taken(self, k: int, t_origin: int, cid: int, instrument: int, side: int, qty: float, now: int) -> None:
        """Order ``cid``, the ``k``-th handed on of its batch: held in the ledger for risk,
        its arrival quote (TCA) and its tick-to-trade recorded."""
        if not ledger_open(self.ledger, cid, instrument, side):
            mx.count(self.m, ROUTER, mx.C_ERRORS, 1)  # held but not covered if the router crashes
        if k < len(self.arrivals):
            self.arrivals[k] = (t_origin, now, cid, instrument, side, 0, 0, qty, self.bid[instrument],
                                self.ask[instrument])
        mx.observe(self.m, mx.ROW_T2T, now - t_origin)

    def on_md(self, md: np.ndarray, n: int, now: int) -> int:
        """The latest quote per instrument (the arrival price TCA reads); the venue is elsewhere."""
        q = md[:n]
        q = q[q["kind"] == MD_QUOTE]
        if len(q):
            self.bid[q["instrument"]] = q["bid_px"]
            self.ask[q["instrument"]] = q["ask_px"]
        if self.algos is not None:
            self.algos.children.on_md(md, n)
        return 0

    def poll(self, now: int) -> int:
        """The gateway's reports into :attr:`reports` for risk; returns how many (with an
        algorithm: the parents' reports, and the parents stepped)."""
        if self.algos is not None:
            return self.algos.poll(now)
        k = 0
        for x in self.pop_reports():
            if self.apply(x, now):
                self.reports[k] = x
                k += 1
        if k:
            ledger_close(self.ledger, self.reports, k)
        return k

    def pop_reports(self) -> np.ndarray:
        """The gateway's reports waiting on ``venue_exec`` (a view, valid until the next call)."""
        return self._in[:int(self._pop(self._in.view(np.uint8), len(self._in)))]

    def apply(self, x, now: int = 0) -> bool:
        """Report ``x`` into the store; False when it is not for risk (a query's answer, a
        fill reported twice)."""
        store = self.store
        cid, status = int(x["client_order_id"]), int(x["status"])
        slot = store.find(cid)
        if status == EXEC_STATUS:  # a query's answer: reason 1 still working, 0 ended (already reported)
            self.asked.discard(cid)
            if slot < 0 and x["reason"] == 1:
                self._adopt(x, now)
            return False
        if status in (EXEC_FILL, EXEC_CANCELED, EXEC_REJECT):
            self.asked.discard(cid)  # a query answered with the order's end
        if slot >= 0:
            o = store.orders[slot]
            if status in (EXEC_FILL, EXEC_PARTIAL) and o["filled"] + x["fill_qty"] > o["qty"] * (1 + QTY_EPS):
                self.dropped_fills += 1  # reported twice (a gateway crash between push and table)
                mx.count(self.m, ROUTER, mx.C_ERRORS, 1)
                return False
            self._one[0] = x
            if store.apply(self._one, 1):
                mx.count(self.m, ROUTER, mx.C_ERRORS, 1)
        return True

    def holds(self, cid: int) -> bool:
        """Whether ``cid`` is one of risk's orders the ledger holds (a child id never is)."""
        return cid < 1 << 63 and bool((self.ledger[:, L_CID] == cid).any())

    def request_cancel(self, cid: int, instrument: int, side: int, now: int) -> None:
        """A cancel for ``cid`` into the batch for the gateway."""
        self._queue(now, now, cid, instrument, side, REQ_CANCEL, 0, self.tif, 0.0, np.nan, 0.0, 0)

    def query(self, cid: int, instrument: int, side: int, now: int) -> None:
        """A query to the gateway about ``cid`` (answered on ``venue_exec``)."""
        self._queue(now, now, cid, instrument, side, REQ_QUERY, 0, self.tif, 0.0, np.nan, -1.0, 0)
        self.asked.add(int(cid))

    def _adopt(self, x, now: int) -> None:
        """An order the gateway says still works and this router does not know (it was
        restarted, or the daemon was): into the store (filled as reported) and the ledger."""
        cid, qty = int(x["client_order_id"]), float(x["fill_qty"])
        px = float(x["fill_px"])
        self.store.add(cid, int(x["instrument"]), int(x["side"]), 0 if px != px else 1, qty, px, now, venue=0)
        self.store.trigger(cid, Trigger.SUBMIT, now)
        self.store.trigger(cid, Trigger.ACK, now)
        filled = qty - float(x["leaves_qty"])
        if filled > QTY_EPS * qty:
            self.store.trigger(cid, Trigger.PARTIAL_FILL, now, fill_qty=filled)
        ledger_open(self.ledger, cid, int(x["instrument"]), int(x["side"]))
        i = int(x["instrument"])
        if 0 <= i < self.n and cid > self.last_cid[i]:
            self.last_cid[i] = cid

    def reconcile(self, now: int) -> dict:
        """A restarted router: ask the gateway about every order the ledger holds.  Its
        answers (:meth:`poll`) adopt the working ones and report the ended ones;
        :attr:`pending_queries` says how many are still unanswered."""
        if self.algos is not None:
            asked = self.algos.reconcile(now)
        else:
            held = self.ledger[self.ledger[:, L_CID] != 0]
            for cid, i, side in held:
                self.query(int(cid), int(i), int(side), now)
            self._flush()
            asked = len(held)
        return {"adopted": 0, "resumed": 0, "stray_cancels": 0, "asked": asked, "reports": 0,
                "positions": np.zeros(self.n)}

    @property
    def pending_queries(self) -> int:
        return len(self.asked)

    def report_lost(self, now: int) -> int:
        """Nothing is lost with a live venue: every held order is answered by the gateway."""
        return 0

    def cancel_all(self, now: int) -> tuple[int, int]:
        """A cancel to the gateway for every working order (flatten orders excepted);
        returns ``(cancels sent, reports now waiting)``."""
        if self.algos is not None:
            n = self.algos.cancel_all(now)
            return n, self.algos.finish(now)
        cids = self.store.cancel_all(now, top_level=True)
        for cid in cids:
            o = self.store.orders[self.store.find(cid)]
            self.request_cancel(cid, o["instrument"], o["side"], now)
        self._flush()
        return len(cids), self.poll(now)

    def housekeeping(self, now: int) -> None:
        """Orders the gateway has not answered for a long time are asked about (a request
        lost with a crashed gateway); the store forgets orders that ended long ago."""
        _, stale = self.store.timeouts(now, ANSWER_TIMEOUT_NS)
        for cid in stale:
            o = self.store.orders[self.store.find(cid)]
            self._queue(now, now, cid, o["instrument"], o["side"], REQ_QUERY, o["kind"], self.tif, o["qty"],
                        o["limit_px"], o["filled"], 0)
            o["ts_last"] = now  # asked: not again for a while
        self._flush()
        if self.algos is not None:
            self.algos.book.housekeeping()
        if len(self.store) > 0.75 * self.store.orders.shape[0]:
            self.store.compact(now, KEEP_ENDED_NS)

