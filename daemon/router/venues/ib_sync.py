"""The IB gateway's view of the venue kept true: start-up and periodic reconciliation.

* Start-up: connect (retrying with backoff, 326 included), which makes ib_async read back
  positions, open and completed orders and executions; then every order the shared table
  holds (a previous gateway's, or the orders a stopped daemon left open) is settled from
  that read-back by its order reference; positions and account are read; only then is the
  gateway ready.  The orders still working are reported (``EXEC_STATUS``) for a router
  that may not know them.
* Every ``reconcile_interval_s``, and at once after a reconnect or a 1101/1102: open
  orders and executions read back again (events lost with the link are made good),
  positions and account, then the venue-wins check (``venue_check.py``).
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from alphad.daemon.router.venues.venue_check import VenueCheck
from alphad.ipc import gateway_block as gb


class IbSync(VenueCheck):
    """Start-up and reconciliation of IB gateway ``gw``."""

    def __init__(self, gw, risk_positions=None, quiet=None):
        super().__init__(gw, risk_positions, quiet)
        self._wake: asyncio.Event | None = None

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def read_account(self) -> bool:
        """Positions and account values from what ib_async keeps (updated by TWS); False
        while disconnected (the last values stay: never taken as flat)."""
        gw = self.gw
        if not gw.conn.synced:
            return False
        net = np.zeros(len(gw.symbols))
        for p in gw.ib.positions(gw.spec.account):
            i = gw.instrument.get(p.contract.symbol)
            if i is not None:
                net[i] = float(p.position)
                if p.avgCost:
                    gw.marks[i] = float(p.avgCost)
        gw.block.positions[:] = net
        for v in gw.ib.accountValues(gw.spec.account):
            if v.currency in ("USD", "BASE"):
                field = {"TotalCashValue": gb.A_CASH, "NetLiquidation": gb.A_EQUITY,
                         "BuyingPower": gb.A_BUYING_POWER}.get(v.tag)
                if field is not None:
                    gw.block.account[field] = float(v.value)
        gw.w[gb.G_POSITIONS_TS] = time.monotonic_ns()
        return True

    async def reconcile_open(self) -> bool:
        """Every order the table holds open, from a fresh read-back; True when all settled."""
        gw = self.gw
        rows = gw.block.open_rows()
        if not len(rows):
            return True
        if not gw.conn.synced:
            return False
        try:
            await asyncio.wait_for(gw.ib.reqOpenOrdersAsync(), gw.spec.connect_timeout_s)
            await asyncio.wait_for(gw.ib.reqExecutionsAsync(), gw.spec.connect_timeout_s)
        except Exception:
            return False
        settled = True
        for j in rows:
            if gw.block.orders[j]["state"] == gb.GS_SENDING:
                continue  # its placeOrder is on its way: its own events settle it
            settled = await gw.query(int(gw.block.orders[j]["client_order_id"])) and settled
        gw.send_due_cancels()
        return settled

    async def start_up(self) -> None:
        gw = self.gw
        deadline = time.monotonic() + gw.spec.start_timeout_s
        try:
            await asyncio.wait_for(gw.conn.connect(), gw.spec.start_timeout_s)
        except asyncio.TimeoutError:
            raise RuntimeError(f"could not connect to IB at {gw.spec.host}:{gw.spec.port} within "
                               f"router.ib.start_timeout_s {gw.spec.start_timeout_s:g} s") from None
        await self.settle_table(deadline, venue="IB", key=f"router.ib.start_timeout_s {gw.spec.start_timeout_s:g} s",
                                fresh=True)  # after ib_async's full read-back, "not found" is final

    async def keep_reconciled(self) -> None:
        gw = self.gw
        self._wake = asyncio.Event()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), gw.spec.reconcile_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            settled = await self.reconcile_open()
            if await self.read_account() and settled:
                self.venue_wins()

    async def stop(self) -> None:
        gw = self.gw
        gw.conn.stopping = True
        for t in list(gw._tasks):
            t.cancel()
        gw.ib.disconnect()
