"""What every live venue's gateway does the same way: the shared order table and the reports.

One rule carries the design: **an order's state at the venue is read, never guessed.**
Every answer a venue gives about an order (a stream event, a query, a periodic read-back)
goes through one idempotent step, :meth:`GatewayCore.apply_state`, which compares the
venue's cumulative filled quantity with what the gateway has already reported
(``reported`` in the shared order table) and reports only the difference:

* a fill seen twice (stream and query) is reported once; a fill missed while a stream was
  down, or while no gateway ran, is reported by the next read-back;
* an order whose request got no answer (a 5xx, a timeout, a lost connection) is
  ``GS_UNKNOWN`` until the venue is asked; one the venue does not have is rejected
  (``REJ_NOT_AT_VENUE``), never sent again.

The table lives in shared memory (:mod:`alphad.ipc.gateway_block`), so a restarted gateway
asks the venue about every order its predecessor held before it is ready.  A venue's
gateway (``alpaca.py``, ``ib.py``) adds the venue's I/O: ``submit``, ``cancel`` and
``query``.
"""
from __future__ import annotations

import asyncio
import math
import sys
import time

import numpy as np

from alphad.daemon.router.order_fsm import (REASON_CXL_EXPIRED, REASON_CXL_USER, REJ_NOT_AT_VENUE, REJ_ORIG_UNKNOWN,
                                            REJ_REPLACE_UNKNOWN, REJ_STORE_FULL, REJ_VENUE, REJ_VENUE_DOWN)
from alphad.ipc import gateway_block as gb
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, EXEC_STATUS, REQ_CANCEL,
                               REQ_NEW, REQ_QUERY, REQ_REPLACE, TIF_DAY, TIF_GTC, TIF_IOC)

__all__ = ["GatewayCore", "OrderIds", "REJ_VENUE_DOWN", "TIF_CODES"]

#: ``router.<venue>.time_in_force`` -> venue_req.tif.
TIF_CODES = {"day": TIF_DAY, "gtc": TIF_GTC, "ioc": TIF_IOC}

#: Relative tolerance on quantities (venues return decimal strings).
QTY_EPS = 1e-9
#: A query that finds no such order settles it only this long after the failed send:
#: an order that did arrive may take a moment to be listed.
NOT_FOUND_GRACE_NS = 1_000_000_000

#: How a venue's order ends, as :meth:`GatewayCore.apply_state` takes it.
WORKING, FILLED, CANCELED, EXPIRED, REJECTED = "working", "filled", "canceled", "expired", "rejected"
_ENDS = {CANCELED: (EXEC_CANCELED, REASON_CXL_USER), EXPIRED: (EXEC_CANCELED, REASON_CXL_EXPIRED),
         REJECTED: (EXEC_REJECT, REJ_VENUE)}


class OrderIds:
    """alphad's client order ids as a venue's: ``<prefix><id>``; an order without the prefix
    (placed by hand, by another program) is not ours and is never touched."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def coid(self, cid: int) -> str:
        return f"{self.prefix}{int(cid)}"

    def cid_of(self, coid: str | None) -> int | None:
        if not coid or not coid.startswith(self.prefix):
            return None
        try:
            return int(coid[len(self.prefix):])
        except ValueError:
            return None


class GatewayCore:
    """The order table and the exec reports of one gateway (a venue's gateway subclasses it).

    Parameters
    ----------
    block : the gateway block (order table, positions, counters).
    emit : ``emit(recs)``: push exec reports (a list of EXEC_DTYPE tuples) to the router.
    prefix : the client order id prefix (``OrderIds``).
    backoff : ``(first_s, max_s)`` of the doubling backoff between tries.
    name : the venue's name in log lines.
    """

    def __init__(self, block: gb.GatewayBlock, emit, *, prefix: str, backoff: tuple[float, float], name: str,
                 log=None):
        self.block, self.emit = block, emit
        self.ids = OrderIds(prefix)
        self.w = block.words
        self._backoff = backoff
        self.log = log or (lambda msg: print(f"alphad gateway {name}: {msg}", file=sys.stderr, flush=True))
        self._tasks: set[asyncio.Task] = set()
        self.reports_pushed = 0
        #: The venue's price per instrument (an adjustment is booked at it).
        self.marks: dict[int, float] = {}

    def backoff_s(self, attempt: int) -> float:
        return min(self._backoff[0] * 2 ** attempt, self._backoff[1])

    def spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- reports -------------------------------------------------------------------------------
    def _report(self, j: int, status: int, *, reason: int = 0, fill_qty: float = 0.0, fill_px: float = math.nan,
                fee: float = 0.0, leaves: float = 0.0) -> None:
        o = self.block.orders[j]
        now = time.monotonic_ns()
        self.reports_pushed += 1
        self.emit([(int(o["t_origin"]), now, int(o["client_order_id"]), int(o["instrument"]), int(o["side"]),
                    status, reason, fill_qty, fill_px, fee, leaves)])

    def report_status(self, j: int) -> None:
        o = self.block.orders[j]
        self._report(j, EXEC_STATUS, reason=1, fill_qty=float(o["qty"]), fill_px=float(o["limit_px"]),
                     leaves=float(o["qty"] - o["reported"]))

    def _end(self, j: int) -> None:
        o = self.block.orders[j]
        if o["state"] == gb.GS_UNKNOWN:
            self.w[gb.G_UNKNOWN] -= 1
        o["state"] = gb.GS_DONE
        o["updated"] = time.monotonic_ns()

    def reject(self, j: int, reason: int) -> None:
        self.w[gb.G_REJECTS] += 1
        self._report(j, EXEC_REJECT, reason=reason)
        self._end(j)

    def apply_state(self, j: int, state: str, cum: float, avg: float, *, exec_px: float | None = None,
                    exec_qty: float | None = None, fee: float = 0.0, from_query: bool = False,
                    reason: int | None = None) -> None:
        """Bring row ``j`` up to what the venue says of it: ``state`` (WORKING, FILLED,
        CANCELED, EXPIRED, REJECTED), ``cum`` filled at average price ``avg``.  An ACK the
        first time, then the fills not reported yet (``fee``: their commission), then its
        end.  Idempotent: the same answer twice reports nothing the second time."""
        o = self.block.orders[j]
        if o["state"] == gb.GS_DONE:
            return
        qty = float(o["qty"])
        if not o["acked"] and state != REJECTED:
            o["acked"] = 1
            self._report(j, EXEC_ACK, leaves=qty - float(o["reported"]))
        reported = float(o["reported"])
        if cum > reported + QTY_EPS * qty:
            delta = cum - reported
            if exec_px is not None and exec_qty is not None and abs(exec_qty - delta) <= QTY_EPS * qty:
                px = exec_px  # this event's own execution
            else:  # several executions at once: the price of what was not reported yet
                px = (avg * cum - float(o["reported_value"])) / delta
            full = cum >= qty * (1 - QTY_EPS)
            self._report(j, EXEC_FILL if full else EXEC_PARTIAL, fill_qty=delta, fill_px=px, fee=fee,
                         leaves=0.0 if full else qty - cum)
            # After the push: a crash in between reports it again, which the router drops
            # (its fill would take the order past its quantity) rather than losing it.
            o["reported"] = cum
            o["reported_value"] = float(o["reported_value"]) + delta * px
            if from_query:
                self.w[gb.G_RECOVERED_FILLS] += 1
        o["updated"] = time.monotonic_ns()
        if state == WORKING:
            if o["state"] != gb.GS_OPEN:
                if o["state"] == gb.GS_UNKNOWN:
                    self.w[gb.G_UNKNOWN] -= 1
                o["state"] = gb.GS_OPEN
            return
        if state == FILLED and cum < qty * (1 - QTY_EPS):
            state = CANCELED  # filled less than asked: the rest is off
        if state in _ENDS:
            status, why = _ENDS[state]
            self._report(j, status, reason=why if reason is None else reason)
            if status == EXEC_REJECT:
                self.w[gb.G_REJECTS] += 1
        self._end(j)

    def unknown(self, j: int, why: str) -> None:
        """Row ``j``'s fate is unknown: asked about (with backoff) until the venue answers."""
        o = self.block.orders[j]
        if o["state"] != gb.GS_UNKNOWN:
            self.w[gb.G_UNKNOWN] += 1
            o["state"] = gb.GS_UNKNOWN
        o["updated"] = time.monotonic_ns()
        self.log(f"order {int(o['client_order_id'])}: fate unknown ({why}); asking the venue")
        self.spawn(self.query_later(int(o["client_order_id"])))

    def not_at_venue(self, j: int) -> bool:
        """A query found no such order: settled (rejected, never resent) once the row has
        been unknown long enough for an order that did arrive to be listed; True then.  A
        replacement that never arrived leaves the order it was to replace working."""
        o = self.block.orders[j]
        if o["state"] == gb.GS_UNKNOWN and time.monotonic_ns() - int(o["updated"]) >= NOT_FOUND_GRACE_NS:
            self.log(f"order {int(o['client_order_id'])}: its fate was unknown and the venue has no such order: "
                     "never arrived")
            self.reject(j, REJ_NOT_AT_VENUE)
            if o["replaces"]:
                self.replace_refused(int(o["replaces"]))
            return True
        return False

    def replace_refused(self, old_cid: int) -> None:
        """The replace of ``old_cid`` did not happen: it keeps working (its own end, if it
        ended, is reported on its own)."""
        j = self.block.find(old_cid)
        if j >= 0:
            self._report(j, EXEC_REJECT, reason=REJ_REPLACE_UNKNOWN, leaves=float(self.block.orders[j]["qty"]
                                                                                - self.block.orders[j]["reported"]))

    # -- requests from the router ----------------------------------------------------------------
    def on_requests(self, reqs: np.ndarray) -> None:
        """The router's requests, in order.  Rows are entered here, synchronously, so a
        query behind a new order in the ring always finds it."""
        self.w[gb.G_REQUESTS] += len(reqs)
        for r in reqs:
            action, cid = int(r["action"]), int(r["client_order_id"])
            if action == REQ_NEW:
                if self.block.find(cid) >= 0:
                    continue  # already taken (a request seen again): never sent twice
                now = time.monotonic_ns()
                j = self.block.enter(cid, int(r["instrument"]), int(r["side"]), int(r["kind"]), int(r["tif"]),
                                     float(r["qty"]), float(r["limit_px"]), int(r["t_origin"]), now)
                if j < 0:
                    self.emit([(int(r["t_origin"]), now, cid, int(r["instrument"]), int(r["side"]), EXEC_REJECT,
                                REJ_STORE_FULL, 0.0, math.nan, 0.0, 0.0)])
                    continue
                self.spawn(self.submit(j))
            elif action == REQ_REPLACE:
                self._take_replace(r, cid, int(r["orig_cid"]))
            elif action == REQ_CANCEL:
                self.spawn(self.cancel(cid))
            elif action == REQ_QUERY:
                self.spawn(self.answer_query(cid, float(r["known_filled"]), r))

    def _take_replace(self, r, cid: int, old_cid: int) -> None:
        """A replace: the replacement's row (linked to the order it replaces) is entered
        here, then the venue is asked.  One whose original is not working here is refused
        on both ids (the original's own end is reported on its own), as a venue would."""
        if self.block.find(cid) >= 0:
            return  # already taken: never sent twice
        now = time.monotonic_ns()
        old = self.block.find(old_cid)
        j = self.block.enter(cid, int(r["instrument"]), int(r["side"]), int(r["kind"]), int(r["tif"]),
                             float(r["qty"]), float(r["limit_px"]), int(r["t_origin"]), now, replaces=old_cid)
        if j < 0:
            self.emit([(int(r["t_origin"]), now, cid, int(r["instrument"]), int(r["side"]), EXEC_REJECT,
                        REJ_STORE_FULL, 0.0, math.nan, 0.0, 0.0)])
            if old >= 0:
                self.replace_refused(old_cid)
            return
        if old < 0 or self.block.orders[old]["state"] != gb.GS_OPEN:
            if old < 0:  # never taken here: refused on its id all the same
                self.emit([(int(r["t_origin"]), now, old_cid, int(r["instrument"]), int(r["side"]), EXEC_REJECT,
                            REJ_REPLACE_UNKNOWN, 0.0, math.nan, 0.0, 0.0)])
            else:  # on its way, unknown, or ended (too late): its own end comes on its own
                self.replace_refused(old_cid)
            self.reject(j, REJ_ORIG_UNKNOWN)
            return
        self.spawn(self.replace(old, j))

    async def answer_query(self, cid: int, known_filled: float, r) -> None:
        """The router asks about ``cid`` (it restarted, or the order has waited too long)."""
        j = self.block.find(cid)
        if j < 0:  # not in the table: the venue decides
            now = time.monotonic_ns()
            j = self.block.enter(cid, int(r["instrument"]), int(r["side"]), int(r["kind"]), int(r["tif"]),
                                 max(float(r["qty"]), 1e-12), float(r["limit_px"]), int(r["t_origin"]),
                                 now - NOT_FOUND_GRACE_NS, state=gb.GS_UNKNOWN, reported=max(known_filled, 0.0))
            if j < 0:
                return
            self.w[gb.G_UNKNOWN] += 1
        await self.query(cid)
        j = self.block.find(cid)
        if j >= 0 and self.block.orders[j]["state"] == gb.GS_OPEN:
            self.report_status(j)
        elif j >= 0 and self.block.orders[j]["state"] == gb.GS_DONE:
            self._report(j, EXEC_STATUS, reason=0)  # ended, its end reported already: nothing more to come

    async def query_later(self, cid: int) -> None:
        await asyncio.sleep(self.backoff_s(0))
        for attempt in range(60):
            if await self.query(cid):
                return
            await asyncio.sleep(self.backoff_s(attempt + 1))

    # -- the venue's I/O (a venue's gateway implements these) --------------------------------------
    async def submit(self, j: int) -> None:
        raise NotImplementedError

    async def cancel(self, cid: int) -> None:
        raise NotImplementedError

    async def replace(self, old: int, j: int) -> None:
        """Replace row ``old`` by row ``j`` at the venue.  A venue whose gateway has no
        replace refuses it: the original keeps working, the replacement is rejected."""
        self.replace_refused(int(self.block.orders[old]["client_order_id"]))
        self.reject(j, REJ_VENUE)

    async def query(self, cid: int) -> bool:
        """Ask the venue about ``cid`` and apply the answer; True once settled."""
        raise NotImplementedError
