"""The Alpaca gateway's view of the venue kept true: the ``trade_updates`` stream and reconciliation.

:class:`VenueSync` runs beside :class:`alphad.daemon.router.venues.alpaca.AlpacaGateway`
on its event loop:

* the stream (alpaca-py's ``TradingStream``): each (re)connection is counted and makes
  the gateway read back every open order, because events sent while it was down are
  never replayed;
* start-up: the stream first (nothing that happens from then on is missed), then every
  order the shared table holds (a previous gateway's, or the orders a stopped daemon left
  open), then positions and account; only then is the gateway ready;
* every ``reconcile_interval_s``: the venue's open orders (one request) against the
  table, each order that left that list asked about by client order id, positions and
  account read back (a failed read keeps the last values: never taken as flat), then the
  venue-wins check (``venue_check.py``).
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from alphad.daemon.router.venues.venue_check import VenueCheck
from alphad.ipc import gateway_block as gb


class VenueSync(VenueCheck):
    """The stream and the reconciliation of gateway ``gw`` (``risk_positions``, ``quiet``:
    the venue-wins check, :class:`~alphad.daemon.router.venues.venue_check.VenueCheck`)."""

    def __init__(self, gw, risk_positions=None, quiet=None):
        super().__init__(gw, risk_positions, quiet)
        self._stream_starts = 0
        self._wake_reconcile: asyncio.Event | None = None

    def start_stream(self) -> None:
        from alpaca.trading.stream import TradingStream

        gw, sync = self.gw, self

        class Stream(TradingStream):
            """alpaca-py's stream; a (re)connection is counted and makes the gateway read
            back every open order (events sent while it was down are not replayed)."""

            async def _start_ws(self):
                await super()._start_ws()
                gw.w[gb.G_STREAM_UP] = 1
                sync._stream_starts += 1
                if sync._stream_starts > 1:
                    gw.w[gb.G_RECONNECTS] += 1
                    gw.log("trade_updates stream reconnected: reading back every open order")
                if sync._wake_reconcile is not None:
                    sync._wake_reconcile.set()

            async def close(self):
                gw.w[gb.G_STREAM_UP] = 0
                await super().close()

        self._stream_starts = 0
        gw.stream = Stream(gw._key, gw._secret, paper=gw._paper, raw_data=True,
                           url_override=gw.spec.stream_url_override or None)
        gw.stream.subscribe_trade_updates(gw.on_trade_update)
        gw.spawn(gw.stream._run_forever())

    async def stop(self) -> None:
        gw = self.gw
        if gw.stream is not None:
            try:
                await asyncio.wait_for(gw.stream.stop_ws(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass
        for t in list(gw._tasks):
            t.cancel()
        gw.pool.shutdown(wait=False, cancel_futures=True)

    async def read_account(self) -> bool:
        """Positions and account into the block; False when the venue could not be read
        (the positions then keep their last values: a failed read is never taken as flat)."""
        gw = self.gw
        t = time.monotonic_ns()
        try:
            positions = await gw.http(gw.client.get_all_positions)
            account = await gw.http(gw.client.get_account)
        except Exception:
            return False
        net = np.zeros(len(gw.symbols))
        for p in positions or []:
            i = gw.instrument.get(str(p.get("symbol")))
            if i is not None:
                q = float(p.get("qty") or 0.0)
                net[i] = -abs(q) if str(p.get("side")) == "short" else q
                gw.marks[i] = float(p.get("current_price") or p.get("avg_entry_price") or "nan")
        gw.block.positions[:] = net
        gw.block.account[gb.A_CASH] = float(account.get("cash") or 0.0)
        gw.block.account[gb.A_EQUITY] = float(account.get("equity") or 0.0)
        gw.block.account[gb.A_BUYING_POWER] = float(account.get("buying_power") or 0.0)
        now = time.monotonic_ns()
        gw.w[gb.G_POSITIONS_TS] = now
        gw.w[gb.G_POSITIONS_US] = (now - t) // 1000
        return True

    async def reconcile_open(self) -> bool:
        """Every order the table holds open, against the venue: its list of open orders
        first (one request), then each order that left that list by client order id.
        Returns True when every one was settled."""
        gw = self.gw
        rows = gw.block.open_rows()
        if not len(rows):
            return True
        try:
            listed = await gw.http(gw.client.get_orders)  # status open by default
        except Exception:
            return False
        open_at_venue = {}
        for order in listed or []:
            cid = gw.ids.cid_of(order.get("client_order_id"))
            if cid is not None:
                open_at_venue[cid] = order
        settled = True
        for j in rows:
            if gw.block.orders[j]["state"] == gb.GS_SENDING:
                continue  # its request is on its way: the answer settles it
            cid = int(gw.block.orders[j]["client_order_id"])
            if cid in open_at_venue:
                gw.apply_order(int(j), open_at_venue[cid], from_query=True)
            else:
                settled = await gw.query(cid) and settled
        return settled

    async def start_up(self) -> None:
        """Crash-only start: the stream first (so nothing that happens from now on is
        missed), then every order the table holds, then positions and account.  Returns
        once all are settled; the caller marks the gateway READY after it."""
        gw = self.gw
        self.start_stream()
        deadline = time.monotonic() + gw.spec.start_timeout_s
        while not gw.w[gb.G_STREAM_UP] and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.settle_table(deadline, venue="Alpaca",
                                key=f"router.alpaca.start_timeout_s {gw.spec.start_timeout_s:g} s")

    async def keep_reconciled(self) -> None:
        """Open orders and positions read back every ``reconcile_interval_s``, and at once
        after the stream reconnects."""
        gw = self.gw
        self._wake_reconcile = asyncio.Event()
        while True:
            try:
                await asyncio.wait_for(self._wake_reconcile.wait(), gw.spec.reconcile_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake_reconcile.clear()
            settled = await self.reconcile_open()
            if await self.read_account() and settled:
                self.venue_wins()
