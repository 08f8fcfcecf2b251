"""alphad's positions against the broker's, and the broker wins (every live venue's gateway).

A difference is only believed when nothing can explain it: no order works at the venue,
router and risk are up, every exec report the gateway pushed has reached risk, and the
same difference is seen at two checks in a row with no report pushed between them.  Then
it is alerted and booked the broker's way: an exec report with client order id 0, through
the router to risk and the journal, as any fill (DESIGN.md, crash-only: "a mismatch is
journaled and the venue wins").
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from alphad.ipc import gateway_block as gb
from alphad.ipc.dtypes import EXEC_FILL


class VenueCheck:
    """The check for gateway ``gw``.  ``risk_positions() -> array | None``: alphad's
    positions (risk's book); ``quiet() -> bool``: nothing on its way to risk.  Either
    None: no check."""

    def __init__(self, gw, risk_positions=None, quiet=None):
        self.gw = gw
        self.risk_positions, self.quiet = risk_positions, quiet
        self._gap = None  # (difference, reports pushed) at the last check, confirmed by the next

    async def settle_table(self, deadline: float, *, venue: str, key: str, fresh: bool = False) -> None:
        """Start-up: every order the table holds (a previous gateway's, or those a stopped
        daemon left) is of unknown fate until the venue is asked; ask (``reconcile_open``)
        and read the account (``read_account``) until both succeed or ``deadline``
        (monotonic s; the error names ``key``); then report the ones still working for a
        router that may not know them.  ``fresh``: the read-back is complete, so an order it
        lacks never arrived (no grace)."""
        gw = self.gw
        rows = gw.block.open_rows()
        gw.w[gb.G_RECON_ASKED] = len(rows)
        gw.block.orders["state"][rows] = gb.GS_UNKNOWN
        gw.w[gb.G_UNKNOWN] = len(rows)
        if fresh:
            gw.block.orders["updated"][rows] = 0
        attempt = 0
        while not (await self.reconcile_open() and await self.read_account()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not reconcile with {venue} within {key} ({len(gw.block.open_rows())} "
                                   "orders unsettled)")
            await asyncio.sleep(gw.backoff_s(attempt))
            attempt += 1
        still = gw.block.open_rows()
        gw.w[gb.G_RECON_OPEN] = len(still)
        for j in still:
            gw.report_status(int(j))
        if len(rows):
            gw.log(f"start-up reconciliation: {len(rows)} orders asked about, {len(still)} still working; "
                   f"positions {self.positions_text()}")

    def positions_text(self) -> str:
        gw = self.gw
        held = {s: float(q) for s, q in zip(gw.symbols, gw.block.positions) if q == q and q}
        return str(held or "flat")

    def venue_wins(self) -> None:
        """Compare, and book a confirmed difference at the broker's price (module doc)."""
        gw = self.gw
        if self.quiet is None or not self.quiet() or len(gw.block.open_rows()):
            self._gap = None
            return
        ours = self.risk_positions()
        if ours is None:
            return
        theirs = gw.block.positions
        gap = np.where(np.isfinite(theirs), theirs - ours, 0.0)
        gap[np.abs(gap) <= 1e-9 * np.maximum(1.0, np.abs(theirs))] = 0.0
        if not gap.any():
            self._gap = None
            return
        if (self._gap is None or self._gap[1] != gw.reports_pushed
                or not np.allclose(gap, self._gap[0], rtol=1e-9, atol=1e-12)):
            self._gap = (gap, gw.reports_pushed)  # confirmed only by the next check, nothing reported between
            return
        self._gap = None
        now = time.monotonic_ns()
        for i in np.flatnonzero(gap):
            px = gw.marks.get(int(i), float("nan"))
            gw.log(f"alert: position mismatch on {gw.symbols[i]}: alphad holds {ours[i]:g}, the broker {theirs[i]:g}; "
                   f"the broker wins: {gap[i]:+g} booked at {px:g}")
            gw.emit([(now, now, 0, int(i), 1 if gap[i] > 0 else -1, EXEC_FILL, 0, float(abs(gap[i])), px, 0.0, 0.0)])
            gw.w[gb.G_ADJUSTMENTS] += 1
