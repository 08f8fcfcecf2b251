"""The gateway side of Interactive Brokers: orders to TWS / IB Gateway through ib_async.

Runs in the gateway process (:mod:`alphad.daemon.shell.gateway`) on its event loop, over
the venue-neutral order table (:mod:`alphad.daemon.router.venues.gateway_core`).  IB's
particulars:

* An order carries alphad's id in its order reference (``orderRef``); that, not IB's
  per-connection order id, is how an order is found again after a reconnect or a restart
  (ib_async's connect reads back positions, open and completed orders and executions).
* A fill is reported once its commission is known (``commissionReportEvent``): the exec
  report carries it as the fee.  One whose commission never comes is reported without it
  after :data:`COMMISSION_WAIT_S`.
* Connection life (:class:`IbConnection`): one reconnect loop at a time, with doubling
  backoff; 1100 (connectivity lost) marks the venue down, 1101 (restored, data lost) and
  1102 (restored, data kept) read every open order back; 326 (client id in use) waits the
  backoff, never a tight loop; a disconnect inside ``reset_window`` (the nightly restart)
  is expected and logged, not alerted.  Data-farm codes (2103/2105 broken, 2104/2106 OK)
  are a per-farm health state in the gateway block.
* An order placed while the connection drops has an unknown fate until the next connect's
  read-back finds it by its reference; one not found is rejected, never sent again.
* A replace (an execution algorithm re-pricing a resting child) is IB's in-place modify:
  the same orderId, its quantity what it has filled plus the replacement's (never more
  than it had), the replacement's limit and reference.  Executions carry the reference they were made
  under, so each fill belongs to the child it was made for.  TWS echoing the new
  reference is the modify applied (the old child ends replaced, the new one is acked); an
  error on the orderId refuses it (the old child works on); a modify in flight when the
  link drops is settled by the read-back the same way, never placed again.
"""
from __future__ import annotations

import asyncio
import copy
import datetime as dt
import math
import time

from alphad.daemon.router.order_fsm import REASON_CXL_REPLACED, REJ_ORIG_UNKNOWN, REJ_VENUE
from alphad.daemon.router.venues import gateway_core as gc
from alphad.daemon.router.venues.ib_config import IbVenue
from alphad.ipc import gateway_block as gb

#: IB order statuses as the gateway core takes them (any other: still working).
_STATES = {"Filled": gc.FILLED, "Cancelled": gc.CANCELED, "ApiCancelled": gc.CANCELED, "Inactive": gc.REJECTED}
_TIF = {0: "DAY", 1: "GTC", 2: "IOC"}
#: A fill whose commission report has not come this long after it is reported without one.
COMMISSION_WAIT_S = 2.0
#: Farm codes: broken, OK.
FARM_BROKEN, FARM_OK = (2103, 2105, 2157), (2104, 2106, 2158)


def refusal(code: int) -> bool:
    """An error code that refuses an order (1xx/2xx), 202 excepted (a cancel's echo)."""
    return 100 <= code < 300 and code != 202


def in_window(window: str, tz: str, now: dt.datetime | None = None) -> bool:
    """Whether ``now`` (UTC) falls in ``"HH:MM-HH:MM"`` local to ``tz`` (may wrap midnight)."""
    if not window:
        return False
    from zoneinfo import ZoneInfo

    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(ZoneInfo(tz))
    start, end = (dt.time(int(x[:2]), int(x[3:])) for x in window.split("-"))
    t = local.time()
    return start <= t < end if start <= end else (t >= start or t < end)


class IbGateway(gc.GatewayCore):
    """Orders to IB and their exec reports back.

    Parameters
    ----------
    spec : the config's ``router.ib``.
    symbols : the universe's symbols (instrument id = index).
    block, emit : as :class:`~alphad.daemon.router.venues.gateway_core.GatewayCore`.
    risk_positions, quiet : alphad's positions and whether nothing is on its way to them
        (the venue-wins check, as Alpaca's gateway makes it).
    """

    def __init__(self, spec: IbVenue, symbols: list[str], block: gb.GatewayBlock, emit, *, log=None,
                 risk_positions=None, quiet=None):
        from ib_async import IB, Crypto, Stock

        super().__init__(block, emit, prefix=spec.order_ref_prefix, backoff=(spec.backoff_s, spec.backoff_max_s),
                         name="ib", log=log)
        self.spec, self.symbols = spec, list(symbols)
        self.ib = IB()
        self.contracts = [Crypto(s.split("/")[0], spec.crypto_exchange, s.split("/")[1]) if "/" in s
                          else Stock(s, spec.stock_exchange, "USD") for s in self.symbols]
        self.instrument = {}
        for i, s in enumerate(self.symbols):
            self.instrument[s.split("/")[0]] = i  # positions come back by the contract's symbol
        self.trades_by_cid: dict[int, object] = {}
        self.cancels_due: set[int] = set()
        self.refused: set[int] = set()  # orders TWS answered with an error (their end is a reject)
        self.conn = IbConnection(self)
        from alphad.daemon.router.venues.ib_sync import IbSync

        self.sync = IbSync(self, risk_positions, quiet)
        ib = self.ib
        ib.orderStatusEvent += self._on_trade
        ib.openOrderEvent += self._on_trade  # a modify applied: TWS echoes its reference
        ib.commissionReportEvent += lambda trade, fill, report: self._on_trade(trade)
        ib.execDetailsEvent += lambda trade, fill: self._on_trade(trade)

    # -- orders ------------------------------------------------------------------------------
    async def submit(self, j: int) -> None:
        from ib_async import LimitOrder, MarketOrder

        o = self.block.orders[j]
        cid = int(o["client_order_id"])
        if not self.conn.up:
            self.log(f"order {cid}: not sent, IB is not connected")
            self.reject(j, gc.REJ_VENUE_DOWN)
            return
        action = "BUY" if o["side"] > 0 else "SELL"
        kw = dict(orderRef=self.ids.coid(cid), tif=_TIF.get(int(o["tif"]), "DAY"), account=self.spec.account)
        limit = float(o["limit_px"])
        order = LimitOrder(action, float(o["qty"]), limit, **kw) if o["kind"] == 1 and limit == limit \
            else MarketOrder(action, float(o["qty"]), **kw)
        try:
            trade = self.ib.placeOrder(self.contracts[int(o["instrument"])], order)
        except (ConnectionError, OSError) as e:  # the socket went as it was written: fate unknown
            self.unknown(j, f"connection lost while sending ({type(e).__name__})")
            return
        self.w[gb.G_SENT] += 1
        self.trades_by_cid[cid] = trade
        if not self.conn.up:  # it may or may not have left: the next connect's read-back says
            self.unknown(j, "connection lost while sending")

    def lost_in_flight(self) -> None:
        """The connection dropped: an order IB has not answered yet may or may not have
        arrived, so its fate is unknown until the next connect's read-back (found by its
        reference, or rejected as never arrived; never resent).  The Trade objects of the
        old connection are forgotten: ib_async's own were reset with it, and a stale one
        would make an order that never arrived look working for ever."""
        self.trades_by_cid.clear()
        for j in self.block.open_rows():
            if self.block.orders[j]["state"] == gb.GS_SENDING:
                self.unknown(int(j), "the connection dropped before IB answered")

    async def replace(self, old: int, j: int) -> None:
        """Modify the IB order of row ``old`` into row ``j`` (see the module's notes)."""
        old_cid, cid = int(self.block.orders[old]["client_order_id"]), int(self.block.orders[j]["client_order_id"])
        trade = self.find_trade(old_cid)
        if not self.conn.up or trade is None or trade.isDone():
            why = "IB is not connected" if not self.conn.up else "it has ended"
            self.log(f"order {old_cid}: not modified into {cid}: {why}")
            self.replace_refused(old_cid)
            self.reject(j, gc.REJ_VENUE_DOWN if not self.conn.up else REJ_ORIG_UNKNOWN)
            return
        o = self.block.orders[j]
        order = copy.copy(trade.order)  # ib_async's own copy changes only when TWS echoes the modify
        # Never more than the order has open now (a venue's replace clamps so): a router whose
        # view lags a fill asks for the old open quantity, which the fill already took part of.
        order.totalQuantity = min(float(trade.orderStatus.filled) + float(o["qty"]), float(trade.order.totalQuantity))
        limit = float(o["limit_px"])
        order.orderType, order.lmtPrice = ("LMT", limit) if limit == limit else ("MKT", order.lmtPrice)
        order.orderRef = self.ids.coid(cid)
        try:
            self.ib.placeOrder(trade.contract, order)
        except (ConnectionError, OSError) as e:
            self.unknown(j, f"connection lost while modifying ({type(e).__name__})")
            return
        self.w[gb.G_SENT] += 1
        if not self.conn.up:
            self.unknown(j, "connection lost while modifying")

    async def cancel(self, cid: int) -> None:
        j = self.block.find(cid)
        trade = self.find_trade(cid)
        if j < 0 or self.block.orders[j]["state"] == gb.GS_DONE:
            return
        if trade is None and self.block.orders[j]["replaces"]:
            trade = self.find_trade(int(self.block.orders[j]["replaces"]))  # its modify is on its way: same order
        if trade is None or not self.conn.up:
            self.cancels_due.add(cid)  # sent after the next connect's read-back (a cancel may go twice, an order never)
            return
        self.ib.cancelOrder(trade.order)

    def send_due_cancels(self) -> None:
        """The cancels asked for while disconnected, for the orders the read-back shows working."""
        for cid in sorted(self.cancels_due):
            j, trade = self.block.find(cid), self.find_trade(cid)
            if j < 0 or self.block.orders[j]["state"] == gb.GS_DONE or trade is None:
                self.cancels_due.discard(cid)
            elif self.conn.up:
                self.ib.cancelOrder(trade.order)
                self.cancels_due.discard(cid)

    async def query(self, cid: int) -> bool:
        """Settle ``cid`` from what ib_async holds (its connect reads back open and
        completed orders and executions): False while disconnected."""
        j = self.block.find(cid)
        if j < 0:
            return True
        if not self.conn.up or not self.conn.synced:
            return False
        trade = self.find_trade(cid)
        self.w[gb.G_QUERIES] += 1
        if trade is None:
            return self.not_at_venue(j)
        self.apply_trade(trade, from_query=True)
        return True

    def find_trade(self, cid: int):
        """The IB order of ``cid``: the one carrying its reference, else (it was modified
        into a replacement) the one carrying its replacement's."""
        ref = self.ids.coid(cid)
        for trade in self.ib.trades():
            if trade.order.orderRef == ref:
                self.trades_by_cid[cid] = trade
                return trade
        j = self.block.replacement_of(cid)
        if j >= 0:
            trade = self.find_trade(int(self.block.orders[j]["client_order_id"]))
            if trade is not None:
                return trade
        return self.trades_by_cid.get(cid)

    def refused_order(self, order_id: int, code: int, message) -> None:
        """TWS refused order ``order_id`` (error 1xx/2xx on it): its coming Cancelled or
        Inactive status is a reject, not a cancel."""
        for trade in self.ib.trades():
            if trade.order.orderId == order_id:
                cid = self.ids.cid_of(trade.order.orderRef)
                if cid is not None and self._modify_refused(cid, code, message):
                    return
                if cid is not None:
                    self.refused.add(cid)
                    self.log(f"order {cid} refused by IB: {code} {str(message)[:160]}")
                    self.apply_trade(trade)
                return

    def _modify_refused(self, cid: int, code: int, message) -> bool:
        """An error on an order whose modify is on its way refuses the modify: the
        replacement is rejected, the order works on.  False when no modify is pending."""
        k = self.block.replacement_of(cid)
        if k < 0 or self.block.orders[k]["state"] not in (gb.GS_SENDING, gb.GS_UNKNOWN):
            return False
        new = int(self.block.orders[k]["client_order_id"])
        self.log(f"order {cid}: modify into {new} refused by IB: {code} {str(message)[:160]}")
        self.reject(k, REJ_VENUE)
        self.replace_refused(cid)
        return True

    def _on_trade(self, trade) -> None:
        self.apply_trade(trade)

    def apply_trade(self, trade, *, from_query: bool = False) -> None:
        """The row carrying ``trade``'s reference brought up to it (and, when that row is
        a replacement TWS has now applied, the rows it replaced ended first)."""
        cid = self.ids.cid_of(trade.order.orderRef)
        j = self.block.find(cid) if cid is not None else -1
        if j < 0:
            return
        if self.block.orders[j]["replaces"]:
            self._end_replaced(trade, int(self.block.orders[j]["replaces"]), from_query)
        self._apply_ref(trade, j, from_query)

    def _end_replaced(self, trade, old_cid: int, from_query: bool) -> None:
        j = self.block.find(old_cid)
        if j < 0 or self.block.orders[j]["state"] == gb.GS_DONE:
            return
        if self.block.orders[j]["replaces"]:
            self._end_replaced(trade, int(self.block.orders[j]["replaces"]), from_query)
        self._apply_ref(trade, j, from_query, replaced=True)

    @staticmethod
    def _ref(trade, fill) -> str:
        return fill.execution.orderRef or trade.order.orderRef

    def _apply_ref(self, trade, j: int, from_query: bool, *, replaced: bool = False) -> None:
        """Row ``j`` from the executions made under its reference: those whose commission
        is known (or overdue), with their commission as the fee.  ``replaced``: its order
        now carries a replacement's reference, so it has ended (every execution under its
        reference came before the modify's echo: it is reported, commission or not)."""
        o = self.block.orders[j]
        ref = self.ids.coid(int(o["client_order_id"]))
        reported = float(o["reported"])
        cum = value = fee = other = 0.0
        last, waiting = None, False
        now = time.time()
        for f in sorted(trade.fills, key=lambda f: f.time):
            if self._ref(trade, f) != ref:
                other += f.execution.shares
                continue
            known = bool(f.commissionReport.execId) or now - f.time.timestamp() > COMMISSION_WAIT_S
            waiting = waiting or not (known or replaced)
            if waiting:
                continue  # in order: a later fill waits for this one's commission
            cum += f.execution.shares
            value += f.execution.shares * f.execution.price
            last = f.execution
            if cum > reported * (1 + gc.QTY_EPS) + gc.QTY_EPS:
                fee += f.commissionReport.commission if f.commissionReport.execId else 0.0
        avg = value / cum if cum else math.nan
        px, qty = (last.price, last.shares) if last is not None else (None, None)
        if replaced:
            self.apply_state(j, gc.CANCELED, cum, avg, exec_px=px, exec_qty=qty, fee=fee, from_query=from_query,
                             reason=REASON_CXL_REPLACED)
            return
        if o["replaces"] and not o["acked"]:  # a replacement's size at IB: the order's, less the others' fills
            o["qty"] = max(float(trade.order.totalQuantity) - other, 0.0)
        state = _STATES.get(trade.orderStatus.status, gc.WORKING)
        cid = int(o["client_order_id"])
        modified = any(e.message == "Modify" for e in trade.log)
        if state == gc.CANCELED and (cid in self.refused or (not modified and any(refusal(e.errorCode)
                                                                                   for e in trade.log))):
            state = gc.REJECTED  # ib_async marks a refused order Cancelled before its error event comes
        if state == gc.FILLED and cum + other < float(trade.orderStatus.filled) * (1 - gc.QTY_EPS):
            state = gc.WORKING  # filled, but a commission is still on its way
        if state == gc.FILLED and float(o["qty"]) <= gc.QTY_EPS:
            state = gc.CANCELED  # a replacement the old order's fills left nothing of
        self.apply_state(j, state, cum, avg, exec_px=px, exec_qty=qty, fee=fee, from_query=from_query)


class IbConnection:
    """The connection to TWS / IB Gateway: one reconnect loop at a time, backoff, the
    reset window, and what the error codes say about the link and the data farms."""

    def __init__(self, gw: IbGateway):
        self.gw = gw
        self.connected = False  # the socket to TWS, and ib_async's read-back done
        self.link_ok = False    # TWS's own link to IB (1100 lost, 1101/1102 restored)
        self._loop_task: asyncio.Task | None = None
        self.stopping = False
        self.farms: dict[str, bool] = {}
        gw.ib.disconnectedEvent += self._on_disconnect
        gw.ib.errorEvent += self._on_error

    async def connect(self) -> None:
        """Connect once, with backoff between failed tries (326 included); returns connected."""
        gw, spec = self.gw, self.gw.spec
        attempt = 0
        while not self.stopping:
            try:
                await gw.ib.connectAsync(spec.host, spec.port, clientId=spec.client_id,
                                         timeout=spec.connect_timeout_s, account=spec.account)
                await gw.ib.qualifyContractsAsync(*gw.contracts)
            except Exception as e:  # refused, timed out, 326: the same backoff
                gw.ib.disconnect()
                wait = gw.backoff_s(attempt)
                gw.log(f"connect to {spec.host}:{spec.port} (client id {spec.client_id}) failed "
                       f"({type(e).__name__}: {str(e)[:120]}); next try in {wait:g} s")
                attempt += 1
                await asyncio.sleep(wait)
                continue
            self.connected = self.link_ok = True
            gw.w[gb.G_STREAM_UP] = 1
            return

    @property
    def up(self) -> bool:
        """Orders can go: connected to TWS, and TWS to IB."""
        return self.connected and self.link_ok

    @property
    def synced(self) -> bool:
        return self.connected

    def reconnect(self) -> None:
        """Start the reconnect loop unless one runs (never two racing each other)."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        await self.connect()
        if self.up:
            self.gw.w[gb.G_RECONNECTS] += 1
            self.gw.log("reconnected: reading back every open order")
            self.gw.sync.wake()

    def _on_disconnect(self) -> None:
        gw = self.gw
        was_connected, self.connected = self.connected, False
        gw.w[gb.G_STREAM_UP] = 0
        if self.stopping or not was_connected:
            return  # a failed connect attempt: its loop goes on
        gw.w[gb.G_DISCONNECTS] += 1
        gw.lost_in_flight()
        if in_window(gw.spec.reset_window, gw.spec.reset_timezone):
            gw.log("disconnected inside the reset window (the nightly restart): reconnecting")
        else:
            gw.log("alert: disconnected from IB: reconnecting")
        self.reconnect()

    def _on_error(self, req_id, code, message, contract=None) -> None:
        gw = self.gw
        if code == 1100:
            self.link_ok = False
            gw.w[gb.G_STREAM_UP] = 0
            gw.log("1100: connectivity between IB and TWS lost")
        elif code in (1101, 1102):
            self.link_ok = True
            gw.w[gb.G_STREAM_UP] = int(self.connected)
            gw.log(f"{code}: connectivity restored, data {'lost: resubscribing' if code == 1101 else 'kept'}")
            gw.sync.wake()
        elif code == 326:
            gw.log("326: client id in use: retrying with backoff")
        elif code in FARM_BROKEN or code in FARM_OK:
            farm = str(message).split(":")[-1].strip() or str(code)
            self.farms[farm] = code in FARM_OK
            gw.w[gb.G_FARMS_DOWN] = sum(1 for ok in self.farms.values() if not ok)
            gw.log(f"{code}: data farm {farm} {'OK' if code in FARM_OK else 'BROKEN'}")
        elif req_id > 0 and refusal(code):
            gw.refused_order(req_id, code, message)
