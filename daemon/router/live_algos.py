"""Execution algorithms on a live venue: parents in the router, children at the broker.

With ``router.execution`` twap, vwap or pov and ``router.venue`` a broker, the router
works each approved order as a parent (:class:`~alphad.daemon.router.parents.ParentBook`,
the same code as on the simulated venues) and its children go to the venue's gateway
process: a new child as ``REQ_NEW``, a cancel as ``REQ_CANCEL`` and a re-price as
``REQ_REPLACE`` (at IB an in-place modify, :mod:`alphad.daemon.router.venues.ib`).
:class:`LiveChildren` gives the parent book the surface it uses of the smart router
(``books``, ``tape``, ``store``, ``reports``, ``send``, ``cancel``, ``replace``) over
those requests; risk still hears only of the order it approved.

A restarted router resumes the parents its predecessor was working (the progress table
in ``router_state``), but only once every child that router numbered has ended at the
venue: each is asked about, the working ones are cancelled, and their fills meanwhile
are the parent's (``PG_FILLED``, and a fill report to risk).  Resuming before that could
fill a parent twice over: once by an old child still resting at the broker, once by the
new ones.  Parent ids are never asked about as venue orders: the venue has only children.
"""
from __future__ import annotations

import sys

import numpy as np

from alphad.daemon.router.ledger import L_CID, ledger_close
from alphad.daemon.router.order_fsm import REJ_STALE, Trigger, child_order_id
from alphad.daemon.router.parents import (ALGO_STRATEGY, PG_CHILDREN, PG_CID, PG_FILLED, PG_INSTRUMENT, PG_LOTS,
                                          PG_SIDE, PG_T_ORIGIN, ParentBook)
from alphad.daemon.router.venues.base import ERR_QUEUE_FULL, SENT
from alphad.daemon.router.venues.paper import ASK_PX, BID_PX, TAPE_LAST, TAPE_NOTIONAL, TAPE_VOLUME
from alphad.ipc import metrics as mx
from alphad.ipc.control import STAGE_INDEX
from alphad.ipc.dtypes import (EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, EXEC_STATUS,
                               MD_QUOTE, MD_TRADE, ORDER_F_FLATTEN, ORDER_LIMIT, REQ_NEW, REQ_REPLACE)

ROUTER = STAGE_INDEX["router"]
_ENDS = (EXEC_FILL, EXEC_CANCELED, EXEC_REJECT)


def venue_kind(kind: int, limit_px: float) -> int:
    """An order's kind as a gateway takes it (``venue_req.kind``): 1 a limit order (at a
    finite limit), 0 a market order."""
    return int(kind == ORDER_LIMIT and limit_px == limit_px)


class LiveChildren:
    """The smart router's surface, for :class:`ParentBook`, over a gateway's requests.

    ``core`` is the live router core: its request batch, time in force and order store,
    which the children share with it."""

    def __init__(self, n_instruments: int, core, report_buffer: int = 256):
        #: The market's touch, as the parent book reads it: ``books[0, i, BID_PX|ASK_PX, 0]``.
        self.books = np.full((1, n_instruments, 4, 1), np.nan)
        #: Trade prints per instrument (``TAPE_*``): POV counts the market's volume here.
        self.tape = np.zeros((n_instruments, 3))
        self.tape[:, TAPE_LAST] = np.nan
        self.core, self.store = core, core.store
        self.reports = np.zeros(report_buffer, EXEC_DTYPE)
        self._queue = core._queue
        self.tif = core.tif

    def on_md(self, md: np.ndarray, n: int) -> None:
        q = md[:n]
        quotes = q[q["kind"] == MD_QUOTE]
        if len(quotes):
            self.books[0, quotes["instrument"], BID_PX, 0] = quotes["bid_px"]
            self.books[0, quotes["instrument"], ASK_PX, 0] = quotes["ask_px"]
        for i, px, sz in q[q["kind"] == MD_TRADE][["instrument", "last_px", "last_sz"]].tolist():
            self.tape[i, TAPE_VOLUME] += sz
            self.tape[i, TAPE_NOTIONAL] += sz * px
            self.tape[i, TAPE_LAST] = px

    def send(self, orders: np.ndarray, index: int, now: int, **_) -> int:
        o = orders[index]
        cid, i, side = int(o["client_order_id"]), int(o["instrument"]), int(o["side"])
        try:
            self.store.add(cid, i, side, int(o["kind"]), float(o["qty"]), float(o["limit_px"]), now, venue=0)
        except ValueError:
            return ERR_QUEUE_FULL  # the store is full: not sent, the algorithm tries again
        self.store.trigger(cid, Trigger.SUBMIT, now)
        self._queue(now, now, cid, i, side, REQ_NEW, venue_kind(o["kind"], o["limit_px"]), self.tif, o["qty"],
                    o["limit_px"], 0.0, 0)
        return SENT

    def cancel(self, cid: int, now: int) -> int:
        self.store.trigger(cid, Trigger.CANCEL_REQUEST, now)  # raises when not cancellable
        o = self.store.orders[self.store.find(cid)]
        self.core.request_cancel(cid, o["instrument"], o["side"], now)
        return SENT

    def replace(self, cid: int, new_cid: int, qty: float, limit_px: float, now: int) -> int:
        old = self.store.orders[self.store.find(cid)]
        i, side = int(old["instrument"]), int(old["side"])
        try:
            self.store.add(new_cid, i, side, ORDER_LIMIT, qty, limit_px, now, parent=int(old["parent"]), venue=0)
        except ValueError:
            return -1  # nothing recorded, nothing sent: both refused here
        self.store.trigger(cid, Trigger.REPLACE_REQUEST, now)
        self.store.trigger(new_cid, Trigger.SUBMIT, now)
        self._queue(now, now, new_cid, i, side, REQ_REPLACE, venue_kind(ORDER_LIMIT, limit_px), self.tif, qty,
                    limit_px, 0.0, cid)
        return SENT


class LiveParents:
    """The algorithm side of :class:`~alphad.daemon.router.live.LiveRouterCore`: approved
    orders become parents, gateway reports go to their children, and a restart drains the
    predecessor's children before its parents resume (see the module's notes)."""

    def __init__(self, core, universe, router_cfg, progress, keep_ended_ns: int):
        self.core = core
        ticks = np.array([ins.tick_size for ins in universe])
        self.lots = np.array([ins.lot_size for ins in universe])
        self.children = LiveChildren(len(universe), core)
        self.book = ParentBook(self.children, ticks, self.lots, router_cfg.execution, router_cfg.algo,
                               keep_ended_ns=keep_ended_ns, progress=progress)
        self.reports = self.book.reports
        #: A restarted router: the predecessor's children not known ended -> (progress row,
        #: parent id, instrument, side, t_origin).
        self.draining: dict[int, tuple] = {}
        self._cancelled: set[int] = set()
        self._resume_due = False
        self._cancel_resumed = False

    # -- what the live core delegates ----------------------------------------------------
    def on_orders(self, orders: np.ndarray, n: int, now: int) -> int:
        """Each approved order a parent (its first child, when due, sent now); returns how many."""
        core, pb, m = self.core, self.book, self.core.m
        pb.begin(now)
        sent = 0
        for t_origin, _ts, cid, i, side, _kind, flags, qty, _px, *_sizing in orders[:n].tolist():
            admitted = core.admit(cid, i, t_origin, now)
            if admitted == REJ_STALE:
                pb.refuse(cid, i, side, t_origin, now, REJ_STALE, qty)
                mx.count(m, ROUTER, mx.C_REJECTS, 1)
            if admitted:
                continue
            core.taken(sent, t_origin, cid, i, side, qty, now)
            pb.add(cid, i, side, qty, t_origin, now, at_once=bool(flags & ORDER_F_FLATTEN))
            sent += 1
        return sent

    def poll(self, now: int) -> int:
        """Gateway reports to the children (and their parents), a due resume, the timer."""
        pb = self.book
        pb.begin(now)
        self._collect(now)
        if self._resume_due and not self.draining:
            self._resume_due = False
            resumed = pb.resume(now)
            print(f"alphad stage router: {len(resumed)} algorithm parents resumed once their predecessor's "
                  "children ended at the venue", file=sys.stderr, flush=True)
            if self._cancel_resumed:  # a cancel-all came while they waited: it is theirs too
                self._cancel_resumed = False
                pb.cancel_all(now)
        pb.step(now)
        return self.finish(now)

    def cancel_all(self, now: int) -> int:
        """Cancel every working parent (flatten ones excepted); parents still waiting for
        their predecessor's children to end are cancelled as they resume."""
        self.book.begin(now)
        n = self.book.cancel_all(now)
        if self._resume_due:
            self._cancel_resumed = True
        self._collect(now)
        return n

    def finish(self, now: int) -> int:
        """After a step of the book: requests out, counters in, the ledger closed for what
        risk is now told; returns the reports for risk."""
        pb, core = self.book, self.core
        core._flush()
        pb.count_into(core.m)
        ledger_close(core.ledger, self.reports, pb.n)
        return pb.n

    def collect_orders(self, now: int) -> int:
        self._collect(now)
        return self.finish(now)

    # -- reports -------------------------------------------------------------------------
    def _collect(self, now: int) -> None:
        core, pb, out = self.core, self.book, self.children.reports
        k = 0
        for x in core.pop_reports():
            cid, status = int(x["client_order_id"]), int(x["status"])
            if cid in self.draining:
                self._drained(x, cid, status, now)
            elif cid in pb.owner:
                if core.apply(x):
                    out[k] = x
                    k += 1
            elif status == EXEC_STATUS and not core.holds(cid):
                core.asked.discard(cid)  # working at the venue, but no parent here owns it (a stray child)
                if x["reason"] == 1 and cid not in self._cancelled:
                    self._cancel(cid, x, now)
            elif core.apply(x, now):  # risk's own order, or a stray child's fill (risk books it): passed on
                pb.pass_on(x)
        if k:
            pb.collect(k, now)

    def _drained(self, x, cid: int, status: int, now: int) -> None:
        """A report on a predecessor's child: its fills are its parent's; its end, or the
        gateway saying it has ended, lets the parent resume; a working one is cancelled."""
        self.core.asked.discard(cid)
        row, parent, i, side, t_origin = self.draining[cid]
        prog = self.book.progress[row]
        if status in (EXEC_PARTIAL, EXEC_FILL) and x["fill_qty"] > 0:
            left = 0
            if prog[PG_CID] == parent:  # else it completed meanwhile: the fill still goes to risk
                prog[PG_FILLED] += int(round(float(x["fill_qty"]) / self.lots[i]))
                left = max(int(prog[PG_LOTS] - prog[PG_FILLED]), 0)
                if left == 0:
                    prog[:] = 0  # complete: nothing to resume
            self.book.refill(parent, i, side, t_origin, x, left * self.lots[i])
        if status in _ENDS or (status == EXEC_STATUS and x["reason"] == 0):
            del self.draining[cid]
        elif status == EXEC_STATUS and cid not in self._cancelled:  # still working at the venue
            self._cancel(cid, x, now)

    def _cancel(self, cid: int, x, now: int) -> None:
        """A cancel for a child this router does not work (a predecessor's, or a stray)."""
        self._cancelled.add(cid)
        self.core.request_cancel(cid, x["instrument"], x["side"], now)

    # -- a restarted router ----------------------------------------------------------------
    def reconcile(self, now: int) -> int:
        """Ask the gateway about every child the predecessor's parents numbered; the
        ledger's other orders (not parents: an immediate predecessor's) are asked about
        as venue orders.  Returns how many questions went out."""
        core, progress = self.core, self.book.progress
        parents = set()
        for row in np.flatnonzero(progress[:, PG_CID] != 0):
            cid, i, side = (int(v) for v in progress[row, [PG_CID, PG_INSTRUMENT, PG_SIDE]])
            parents.add(cid)
            t_origin = int(progress[row, PG_T_ORIGIN])
            for k in range(int(progress[row, PG_CHILDREN])):
                child = child_order_id(ALGO_STRATEGY, i, cid, k)
                self.draining[child] = (int(row), cid, i, side, t_origin)
                core.query(child, i, side, now)
        for cid, i, side in core.ledger[core.ledger[:, L_CID] != 0]:
            if int(cid) not in parents:
                core.query(int(cid), int(i), int(side), now)
        self._resume_due = bool(parents)
        core._flush()
        return len(core.asked)
