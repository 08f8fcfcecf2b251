"""The tests' driver of execution algorithms: parents <-> one venue adapter <-> the order store.

The daemon drives its parents with :class:`alphad.daemon.router.parents.ParentBook` (the
router stage, through the smart router).  This driver runs an algorithm against a single
:class:`~alphad.daemon.router.venues.paper.PaperVenue` fed with recorded L2 books, and
writes the TCA journal format of :mod:`alphad.ops.tca`, for the tests of the algorithms
(``test_algos.py``) and of TCA (``test_tca.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from alphad.daemon.router.algos import NEW, REPLACE, ChildAction, ExecAlgo, ParentState
from alphad.daemon.router.order_fsm import Trigger
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT,
                               ORDER_DTYPE)


@dataclass
class AlgoDriver:
    """Connects parents to one venue adapter and the order store.

    ``step`` turns the algorithms' actions into venue requests (recording each
    in the store first, so the FSM sees every request); ``poll`` applies the
    venue's reports to the store and hands them to the owning parent.
    ``journal``, when given, is called with each event dict (see
    :mod:`alphad.ops.tca` for the format).
    """

    venue: object
    store: object
    journal: Callable[[dict], None] | None = None
    algos: dict[int, ExecAlgo] = field(default_factory=dict)
    owner: dict[int, int] = field(default_factory=dict)   # child cid -> parent id
    reports: np.ndarray = field(default_factory=lambda: np.zeros(1024, dtype=EXEC_DTYPE))
    _order: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=ORDER_DTYPE))
    #: Reports the order store refused (unknown id, transition not in the table): must stay 0.
    failed_reports: int = 0
    journaled: set[int] = field(default_factory=set)  # parents whose parent_done is written

    def add(self, algo: ExecAlgo, now: int, *, arrival_bid: float, arrival_ask: float,
            venue_name: str = "", algo_name: str | None = None) -> None:
        s = algo.spec
        if s.parent_id in self.algos:
            raise ValueError(f"parent_id expected unique, was {s.parent_id} (already running)")
        self.algos[s.parent_id] = algo
        if self.journal:
            self.journal({"type": "parent", "ts": now, "parent_id": s.parent_id,
                          "instrument": s.instrument, "side": s.side, "qty": s.qty,
                          "algo": algo_name or type(algo).__name__.lower(), "start_ns": s.start_ns,
                          "end_ns": s.end_ns, "urgency": s.urgency,
                          "arrival_bid": arrival_bid, "arrival_ask": arrival_ask})

    def _send(self, algo: ExecAlgo, a: ChildAction, now: int) -> None:
        s = algo.spec
        st = self.store
        if a.action == NEW or a.action == REPLACE:
            cid = a.cid if a.action == NEW else a.new_cid
            if a.action == REPLACE:
                # The old child first: if the FSM refuses, nothing new is recorded.
                st.trigger(a.cid, Trigger.REPLACE_REQUEST, now)
            # The store's ``parent`` field is a slot index (compaction remaps it), and parents
            # are not orders in the store: the child -> parent id relation lives in ``owner``.
            slot = st.add(cid, s.instrument, s.side, a.kind, a.qty_lots * s.lot, a.px, now)
            if slot < 0:  # a replayed decision: the id is known, never send twice
                return
            self.owner[cid] = s.parent_id
            st.trigger(cid, Trigger.SUBMIT, now)
            if a.action == NEW:
                o = self._order
                o["client_order_id"] = cid
                o["instrument"] = s.instrument
                o["side"] = s.side
                o["kind"] = a.kind
                o["qty"] = a.qty_lots * s.lot
                o["limit_px"] = a.px
                o["ts"] = now
                self.venue.submit(o, 0, now)
            else:
                self.venue.replace(a.cid, a.new_cid, a.qty_lots * s.lot, a.px, now)
            if self.journal:
                self.journal({"type": "order", "ts": now, "parent_id": s.parent_id, "cid": cid,
                              "action": "new" if a.action == NEW else "replace",
                              "orig_cid": a.cid if a.action == REPLACE else 0,
                              "qty": a.qty_lots * s.lot, "limit_px": a.px,
                              "venue": getattr(self.venue, "name", "")})
        else:
            st.trigger(a.cid, Trigger.CANCEL_REQUEST, now)
            self.venue.cancel(a.cid, now)
            if self.journal:
                self.journal({"type": "order", "ts": now, "parent_id": s.parent_id, "cid": a.cid,
                              "action": "cancel"})

    def step(self, now: int, bid: float, ask: float, market_volume: float | None = None) -> None:
        for algo in self.algos.values():
            for a in algo.step(now, bid, ask, market_volume):
                self._send(algo, a, now)

    def on_market_trade(self, instrument: int, px: float, qty: float, ts: int) -> None:
        """Feed a market trade to the parents on ``instrument`` (POV volume, interval VWAP)."""
        for algo in self.algos.values():
            if algo.spec.instrument == instrument:
                algo.on_market_trade(px, qty, ts)

    def cancel(self, parent_id: int, now: int) -> None:
        algo = self.algos[parent_id]
        for a in algo.cancel(now):
            self._send(algo, a, now)

    def poll(self, now: int) -> int:
        n = self.venue.poll(now, self.reports)
        if n:
            self.failed_reports += self.store.apply(self.reports, n)
        for e in self.reports[:n]:
            cid = int(e["client_order_id"])
            pid = self.owner.get(cid)
            if pid is None:
                continue
            algo = self.algos[pid]
            was = algo.state
            algo.on_exec(cid, int(e["status"]), int(e["reason"]), float(e["fill_qty"]), float(e["fill_px"]),
                         float(e["fee"]), float(e["leaves_qty"]))
            if self.journal:
                self.journal({"type": "exec", "ts": int(e["ts"]), "parent_id": pid, "cid": cid,
                              "status": _STATUS_NAME[int(e["status"])], "reason": int(e["reason"]),
                              "fill_qty": float(e["fill_qty"]), "fill_px": float(e["fill_px"]),
                              "fee": float(e["fee"]), "leaves_qty": float(e["leaves_qty"])})
            if self.journal and was == ParentState.WORKING and algo.state != ParentState.WORKING:
                self._journal_done(algo, now)
        # A parent can also finish without a report (expiry with nothing open).
        for algo in self.algos.values():
            if algo.state != ParentState.WORKING and algo.spec.parent_id not in self.journaled:
                self._journal_done(algo, now)
        return n

    def _journal_done(self, algo: ExecAlgo, now: int) -> None:
        if algo.spec.parent_id in self.journaled:
            return
        self.journaled.add(algo.spec.parent_id)
        if self.journal:
            self.journal({"type": "parent_done", "ts": now, "parent_id": algo.spec.parent_id,
                          "state": algo.state.name.lower(), "filled": algo.filled * algo.spec.lot,
                          "remainder": algo.remainder_lots * algo.spec.lot,
                          "interval_vwap": algo.interval_vwap, "close_px": algo.last_px,
                          "market_volume": algo.market_volume})


_STATUS_NAME = {EXEC_ACK: "ack", EXEC_PARTIAL: "partial", EXEC_FILL: "fill", EXEC_REJECT: "reject",
                EXEC_CANCELED: "canceled"}
