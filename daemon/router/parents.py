"""Execution algorithms in the router stage: approved orders worked as parents.

With ``router.execution`` set to ``twap``, ``vwap`` or ``pov`` (parameters in
``router.algo``), every order risk approved becomes the parent of that algorithm
(:mod:`alphad.daemon.router.algos`).  The router steps its working parents on a timer
(``algo.step_ms``, from its poll loop) with the best bid and ask and the trade tape of the
smart router; every child goes to the venue with the lowest expected all-in cost
(:class:`~alphad.daemon.router.venues.paper.SmartRouter`, which also keeps the order store in step),
and each venue report goes back to the child's parent.  Child ids are deterministic:
``child_order_id(ALGO_STRATEGY, instrument, parent id, child index)`` with the parent id
the client order id risk gave the order, so a replayed decision derives the same children.

What risk sees
--------------
Risk keeps the order it approved and nothing else, so the router reports against that
order's client id:

* a child fill is a fill of the parent: ``EXEC_PARTIAL``, or ``EXEC_FILL`` for the fill that
  completes it, with the child's quantity, price, fee and liquidity flag;
  ``leaves_qty`` is what the parent has left;
* child acks, cancels, replaces and rejects stay here: the parent is still working;
* a parent that expires ends with ``EXEC_CANCELED`` (``REASON_CXL_EXPIRED``) and its unfilled
  remainder in ``leaves_qty``; an order that cannot become a parent (bad quantity, unknown
  instrument, too many parents) is answered with ``EXEC_REJECT``.

That is the life of an immediate order as risk's ``on_exec`` books it (fills shrink the
working quantity; FILL, CANCELED and REJECT release what is left), so risk is unchanged and
its position is the sum of the child fills.  Teaching risk about children instead would need
every child id in risk's open-order table before its first report (a message flowing
against the rings' direction), and a child's FILL would end the entry of the parent.

Cost and limits
---------------
Parents and their children are the Python objects of :mod:`algos`: a step costs a few µs
per working parent and a child report a few µs, at the algorithm's pace (a slice every few
seconds) rather than per market event.  The immediate path is untouched (one compiled call
per batch).  Working parents live in this process: a restarted router stage starts without
them, as the paper venues start without their resting orders.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from alphad.ipc import metrics as mx
from alphad.ipc.control import STAGE_INDEX
from alphad.ipc.dtypes import (EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT,
                               ORDER_DTYPE)

from alphad.daemon.router.algos import CANCEL, NEW, POV, TWAP, VWAP, ChildAction, ExecAlgo, Immediate, ParentSpec, ParentState
from alphad.daemon.router.order_fsm import (REASON_CXL_EXPIRED, REASON_CXL_USER, REJ_BAD_QTY, REJ_CANCEL_UNKNOWN, REJ_QUEUE_FULL,
                        REJ_REPLACE_UNKNOWN, REJ_UNKNOWN_INSTRUMENT, Trigger)
from alphad.daemon.router.venues.paper import ASK_PX, BID_PX, TAPE_VOLUME, SmartRouter
from alphad.daemon.router.venues.base import ERR_QUEUE_FULL, SENT
from alphad.kernels.grid import on_grid

__all__ = ["ParentBook", "ALGO_STRATEGY"]

#: ``strategy`` field of the children's client order ids.
ALGO_STRATEGY = 1
ROUTER = STAGE_INDEX["router"]

#: Columns of the progress table: the parent's id, instrument, side, lots, lots filled, end
#: (router clock), ``t_origin``, 1 for a flatten order, children numbered so far.
PG_CID, PG_INSTRUMENT, PG_SIDE, PG_LOTS, PG_FILLED, PG_END_NS, PG_T_ORIGIN, PG_FLATTEN, PG_CHILDREN = range(9)
N_PG = 9


def new_progress(max_parents: int) -> np.ndarray:
    return np.zeros((max_parents, N_PG), np.int64)

_WORKING = ParentState.WORKING
_COMPLETED = ParentState.COMPLETED
_EXPIRED = ParentState.EXPIRED


@dataclass(eq=False)
class _Parent:
    algo: ExecAlgo
    cid: int            # the client order id risk approved
    t_origin: int       # of the tick that caused it
    tape0: float        # the tape's volume when it arrived (POV counts the market's volume since)
    row: int            # its row in the progress table
    flatten: bool = False  # a flatten order: a cancel-all leaves it working
    base_filled: int = 0   # lots a previous router filled (a resumed parent works the rest)
    ended: bool = False


class ParentBook:
    """The working parents of the router stage and the map from their children back to them.

    Parameters
    ----------
    smart : SmartRouter
        Venues, order store and book the children go through.
    ticks, lots : arrays per instrument.
    execution : ``"twap"``, ``"vwap"`` or ``"pov"``.
    cfg : the config's ``router.algo`` section (:class:`alphad.daemon.router.config.Algo`).
    keep_ended_ns : int
        How long the children of an ended parent stay mapped (for late reports).
    """

    def __init__(self, smart: SmartRouter, ticks, lots, execution: str, cfg, *, keep_ended_ns: int,
                 progress: np.ndarray | None = None) -> None:
        if execution not in ("twap", "vwap", "pov"):
            raise ValueError(f"execution expected twap, vwap or pov, was {execution!r}")
        self.smart = smart
        self.execution = execution
        self.cfg = cfg
        self.ticks = np.asarray(ticks, np.float64)
        self.lots = np.asarray(lots, np.float64)
        self.horizon_ns = int(round(cfg.horizon_s * 1e9))
        self.step_ns = max(1, int(round(cfg.step_ms * 1e6)))
        self.keep_ended_ns = int(keep_ended_ns)
        self._algo_kw = dict(replace_after_ns=int(round(cfg.replace_after_s * 1e9)), catch_up=cfg.catch_up,
                             finish_ns=int(self.horizon_ns * cfg.finish_fraction))
        # Each drained child report makes at most two parent reports (a fill, the end), and a
        # step or an order batch at most one per parent or order: it never overflows.
        self.reports = np.zeros(2 * len(smart.reports) + cfg.max_parents + 512, EXEC_DTYPE)
        #: Parent reports waiting in :attr:`reports` (reset by :meth:`begin`).
        self.n = 0
        self.working: dict[int, _Parent] = {}
        self.owner: dict[int, _Parent] = {}  # child cid -> parent, until keep_ended_ns after its end
        self._ended: deque[tuple[int, _Parent]] = deque()
        self._child = np.zeros(1, ORDER_DTYPE)
        self._next_step = 0
        self.clock = 0  # the router clock at the last call
        # counters the router stage moves into its metrics
        self.children_sent = 0
        self.child_rejects = 0
        self.errors = 0  # reports for no known child, an id already working
        self._counted = (0, 0, 0)  # the three above, as last moved into the metrics (count_into)
        #: One row per working parent (``PG_*``), in the ``router_state`` segment: what a
        #: restarted router resumes (:meth:`resume`).  Written before a child is sent.
        self.progress = progress if progress is not None else new_progress(cfg.max_parents)
        if self.progress.shape != (cfg.max_parents, N_PG):
            raise ValueError(f"progress table expected shape {(cfg.max_parents, N_PG)}, was {self.progress.shape}")

    # -- parents ------------------------------------------------------------------------
    def begin(self, now: int) -> None:
        """Start a router step at ``now``: the previous step's reports were taken."""
        self.n = 0
        self.clock = now

    def add(self, cid: int, instrument: int, side: int, qty: float, t_origin: int, now: int, *,
            at_once: bool = False, end_ns: int = 0, resumed_row: int = -1) -> bool:
        """Make the approved order ``cid`` a parent and send its first child now.

        ``at_once`` (a flatten order): the whole quantity as one market child, whatever the
        configured algorithm, so a kill or ``ctl flatten`` never waits for a schedule.

        ``end_ns`` (default: ``now`` + the horizon) and ``resumed_row`` (its progress row,
        from :meth:`resume`): a parent a previous router was working, ``qty`` what is left.

        Returns False when it cannot be worked (then an ``EXEC_REJECT`` is reported, except
        for an id already working: a reject under that id would end the working one at risk).
        """
        if cid in self.working:
            self.errors += 1
            return False
        if len(self.working) >= self.cfg.max_parents:
            self._report(cid, instrument, side, t_origin, now, EXEC_REJECT, REJ_QUEUE_FULL, 0.0, 0.0, 0.0, qty)
            return False
        if not 0 <= instrument < len(self.lots):
            self._report(cid, instrument, side, t_origin, now, EXEC_REJECT, REJ_UNKNOWN_INSTRUMENT, 0.0, 0.0, 0.0,
                         qty)
            return False
        lot, tick = float(self.lots[instrument]), float(self.ticks[instrument])
        lots = int(round(qty / lot)) if math.isfinite(qty) else 0
        if lots <= 0 or not on_grid(qty, lot) or side not in (1, -1):  # the gate's own lot grid
            self._report(cid, instrument, side, t_origin, now, EXEC_REJECT, REJ_BAD_QTY, 0.0, 0.0, 0.0, qty)
            return False
        spec = ParentSpec(parent_id=cid, strategy=ALGO_STRATEGY, instrument=instrument, side=side, qty_lots=lots,
                          lot=lot, tick=tick, start_ns=now, end_ns=end_ns or now + self.horizon_ns,
                          urgency=self.cfg.urgency, limit_px=self._limit(instrument, side, tick),
                          min_child_lots=self.cfg.min_child_lots)
        algo = Immediate(spec, market=True) if at_once else self._algo(spec)
        if resumed_row < 0:
            row = int(np.flatnonzero(self.progress[:, PG_CID] == 0)[0])  # fewer working than rows
            self.progress[row] = (cid, instrument, side, lots, 0, spec.end_ns, t_origin, at_once, 0)
            p = _Parent(algo, cid, t_origin, float(self.smart.tape[instrument, TAPE_VOLUME]), row, flatten=at_once)
        else:
            row = resumed_row
            algo.child_base = int(self.progress[row, PG_CHILDREN])
            p = _Parent(algo, cid, t_origin, float(self.smart.tape[instrument, TAPE_VOLUME]), row, flatten=at_once,
                        base_filled=int(self.progress[row, PG_FILLED]))
        self.working[cid] = p
        self._step_one(p, now)
        return True

    def _limit(self, instrument: int, side: int, tick: float) -> float:
        bps = self.cfg.limit_offset_bps
        if bps <= 0:
            return math.nan
        b, a = self.smart.books[0, instrument, BID_PX, 0], self.smart.books[0, instrument, ASK_PX, 0]
        if not (b > 0 and a > b):
            return math.nan  # no quote to measure from: no limit rather than a made-up one
        k = 0.5 * (a + b) * (1.0 + side * bps * 1e-4) / tick
        # Rounded toward the mid, so the limit is never worse than the offset allows.
        return round((math.floor(k + 1e-9) if side > 0 else math.ceil(k - 1e-9)) * tick, 10)

    def _algo(self, spec: ParentSpec) -> ExecAlgo:
        c = self.cfg
        if self.execution == "twap":
            return TWAP(spec, slice_ns=-(-self.horizon_ns // c.slices), **self._algo_kw)
        if self.execution == "vwap":
            return VWAP(spec, profile=c.profile, **self._algo_kw)
        return POV(spec, rate=c.participation, **self._algo_kw)

    def resume(self, now: int) -> list[int]:
        """A restarted router: every parent the progress table holds works on with what is
        left of it until its original end, its children numbered on from its predecessor's
        (their venue ended with that router; what they filled risk already has).  Returns
        the ids resumed.  A parent whose end passed while no router worked it ends
        CANCELED (expired) with its remainder, as it would have."""
        ids = []
        for row in np.flatnonzero(self.progress[:, PG_CID] != 0):
            cid, instrument, side, lots, filled, end_ns, t_origin, flatten, _ = (int(x) for x in self.progress[row])
            lot = float(self.lots[instrument])
            if lots > filled and end_ns <= now:
                self._report(cid, instrument, side, now, now, EXEC_CANCELED, REASON_CXL_EXPIRED, 0.0, 0.0, 0.0,
                             (lots - filled) * lot)
                self.progress[row] = 0
            elif lots > filled and self.add(cid, instrument, side, (lots - filled) * lot, t_origin, now,
                                          at_once=bool(flatten), end_ns=end_ns, resumed_row=int(row)):
                ids.append(cid)
            else:
                self.progress[row] = 0
        return ids

    def cancel_all(self, now: int) -> int:
        """Cancel every working parent but flatten ones: its open children are cancelled at
        their venues and it ends CANCELED (the remainder back to risk) once they are done.
        Returns how many parents were cancelled."""
        n = 0
        for p in list(self.working.values()):
            if p.flatten:
                continue
            for act in p.algo.cancel(now):
                self._send(p, act, now)
            self._end_if_done(p, now)
            n += 1
        return n

    # -- the timer ----------------------------------------------------------------------
    def step(self, now: int) -> None:
        """Step every working parent, at most once per ``step_ns``."""
        if now < self._next_step:
            return
        self._next_step = now + self.step_ns
        for p in list(self.working.values()):
            self._step_one(p, now)

    def _step_one(self, p: _Parent, now: int) -> None:
        a = p.algo
        i = a.spec.instrument
        # Every venue sees the same market data: the first venue's touch is the market's.
        bid = float(self.smart.books[0, i, BID_PX, 0])
        ask = float(self.smart.books[0, i, ASK_PX, 0])
        # Paper fills never print on the feed, so ours are added to the market's volume.
        volume = float(self.smart.tape[i, TAPE_VOLUME]) - p.tape0 + a.filled * a.spec.lot
        for act in a.step(now, bid, ask, volume):
            self._send(p, act, now)
        self._end_if_done(p, now)

    def _send(self, p: _Parent, act: ChildAction, now: int) -> None:
        a, s, smart = p.algo, p.algo.spec, self.smart
        self.progress[p.row, PG_CHILDREN] = a.child_base + a.n_child  # before it leaves
        if act.action == NEW:
            self._child[0] = (now, now, act.cid, s.instrument, s.side, act.kind, 0, act.qty_lots * s.lot, act.px,
                              *([np.nan] * 8))  # a child of an algorithm carries no sizing of its own
            self.owner[act.cid] = p
            if smart.send(self._child, 0, now) < 0:  # not sent (venue queue full): the algorithm sends again
                self.child_rejects += 1
                a.on_exec(act.cid, EXEC_REJECT, REJ_QUEUE_FULL, 0.0, 0.0, 0.0, 0.0)
            else:
                self.children_sent += 1
        elif act.action == CANCEL:
            if smart.cancel(act.cid, now) != SENT:  # queue full: back to working, cancelled on a later step
                smart.store.trigger(act.cid, Trigger.CANCEL_REJECT, now)
                a.on_exec(act.cid, EXEC_REJECT, REJ_CANCEL_UNKNOWN, 0.0, 0.0, 0.0, 0.0)
        else:  # REPLACE
            self.owner[act.new_cid] = p
            r = smart.replace(act.cid, act.new_cid, act.qty_lots * s.lot, act.px, now)
            if r != SENT:  # nothing reached the venue: both sides refused here, as the venue would
                if r == ERR_QUEUE_FULL:  # the store recorded both requests: answer them
                    smart.store.trigger(act.cid, Trigger.REPLACE_REJECT, now)
                    smart.store.trigger(act.new_cid, Trigger.REJECT, now)
                a.on_exec(act.cid, EXEC_REJECT, REJ_REPLACE_UNKNOWN, 0.0, 0.0, 0.0, 0.0)
                a.on_exec(act.new_cid, EXEC_REJECT, REJ_QUEUE_FULL, 0.0, 0.0, 0.0, 0.0)
            else:
                self.children_sent += 1

    # -- reports ------------------------------------------------------------------------
    def collect(self, n: int, now: int) -> int:
        """Hand the child reports ``smart.reports[:n]`` (already applied to the store) to their
        parents and write the parents' reports; returns :attr:`n`."""
        for t_origin, ts, cid, _inst, _side, status, reason, fq, fpx, fee, leaves in self.smart.reports[:n].tolist():
            p = self.owner.get(cid)
            if p is None:
                self.errors += 1
                continue
            a = p.algo
            a.on_exec(cid, status, reason, fq, fpx, fee, leaves)
            self.progress[p.row, PG_FILLED] = p.base_filled + a.filled
            if status == EXEC_REJECT and reason < 100:
                self.child_rejects += 1
            elif (status == EXEC_PARTIAL or status == EXEC_FILL) and fq > 0:
                done = a.state == _COMPLETED
                self._report(p.cid, a.spec.instrument, a.spec.side, t_origin, ts, EXEC_FILL if done else EXEC_PARTIAL,
                             reason, fq, fpx, fee, a.remainder_lots * a.spec.lot)
            self._end_if_done(p, now)
        return self.n

    def _end_if_done(self, p: _Parent, now: int) -> None:
        a = p.algo
        if a.state == _WORKING or p.ended:
            return
        p.ended = True
        del self.working[p.cid]
        self.progress[p.row] = 0
        self._ended.append((now, p))
        if a.state != _COMPLETED:  # expired or cancelled: the remainder goes back to risk
            self._report(p.cid, a.spec.instrument, a.spec.side, now, now, EXEC_CANCELED,
                         REASON_CXL_EXPIRED if a.state == _EXPIRED else REASON_CXL_USER, 0.0, 0.0, 0.0,
                         a.remainder_lots * a.spec.lot)

    def refuse(self, cid: int, instrument: int, side: int, t_origin: int, now: int, reason: int, qty: float) -> None:
        """An order that never becomes a parent (too old when it came): ``EXEC_REJECT``."""
        self._report(cid, instrument, side, t_origin, now, EXEC_REJECT, reason, 0.0, 0.0, 0.0, qty)

    def pass_on(self, x) -> None:
        """A report about one of risk's orders that is no parent, for risk as it came."""
        self.reports[self.n] = x
        self.n += 1

    def refill(self, cid: int, instrument: int, side: int, t_origin: int, x, leaves: float) -> None:
        """A fill ``x`` of a previous router's child (a live venue outlives the router) for
        its parent ``cid``: ``EXEC_PARTIAL``, or ``EXEC_FILL`` when nothing is left."""
        self._report(cid, instrument, side, t_origin, int(x["ts"]), EXEC_FILL if leaves <= 0 else EXEC_PARTIAL,
                     int(x["reason"]), float(x["fill_qty"]), float(x["fill_px"]), float(x["fee"]), leaves)

    def _report(self, cid, instrument, side, t_origin, ts, status, reason, fill_qty, fill_px, fee, leaves) -> None:
        self.reports[self.n] = (t_origin, ts, cid, instrument, side, status, reason, fill_qty, fill_px, fee, leaves)
        self.n += 1

    def count_into(self, m: np.ndarray) -> None:
        """The children sent, child rejects and errors since the last call, into the router
        stage's counters of the metrics words ``m``."""
        c = (self.children_sent, self.child_rejects, self.errors)
        d = [a - b for a, b in zip(c, self._counted)]
        if any(d):
            mx.count(m, ROUTER, mx.C_ORDERS, d[0])
            mx.count(m, ROUTER, mx.C_REJECTS, d[1])
            mx.count(m, ROUTER, mx.C_ERRORS, d[2])
            self._counted = c

    def housekeeping(self) -> None:
        """Forget the children of parents that ended more than ``keep_ended_ns`` ago (router clock)."""
        while self._ended and self.clock - self._ended[0][0] > self.keep_ended_ns:
            _, p = self._ended.popleft()
            for cid in p.algo.children:
                self.owner.pop(cid, None)

