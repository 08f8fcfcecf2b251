"""The gateway side of Alpaca: orders and cancels to Alpaca through alpaca-py, exec reports back.

Runs in the gateway process (:mod:`alphad.daemon.shell.gateway`) on a uvloop event loop:
alpaca-py's ``TradingStream`` (the ``trade_updates`` websocket) runs on the loop itself,
and its synchronous REST client (``TradingClient``, requests) in a small thread pool.

The table, the reports and the one idempotent step every answer goes through are
venue-neutral (:mod:`alphad.daemon.router.venues.gateway_core`); here is what is Alpaca's:

* only a definite answer rejects (a 4xx other than 429); a 5xx, a timeout or a dropped
  connection leaves the order's fate unknown until a query by client order id settles it,
  and an order is never sent twice: a 422 "client_order_id must be unique" means the
  first try arrived, and is settled by a query as well;
* a 429 is retried after a doubling backoff (the request was refused, so resending the
  same client order id is safe; the venue would refuse a duplicate anyway).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from alphad.daemon.router.order_fsm import REJ_RATE_LIMITED, REJ_VENUE
from alphad.daemon.router.venues import gateway_core as gc
from alphad.daemon.router.venues.alpaca_config import AlpacaVenue
from alphad.daemon.router.venues.alpaca_sync import VenueSync
from alphad.ipc import gateway_block as gb

#: Alpaca's order statuses as the gateway core takes them (any other: still working).
_STATES = {"filled": gc.FILLED, "canceled": gc.CANCELED, "expired": gc.EXPIRED, "done_for_day": gc.EXPIRED,
           "replaced": gc.CANCELED, "rejected": gc.REJECTED}
_TIF = {v: k for k, v in gc.TIF_CODES.items()}


class VenueDown(Exception):
    """A request whose answer never came (5xx, timeout, refused connection)."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of an alpaca-py ``APIError`` (None for anything else)."""
    try:
        return int(exc.status_code)
    except (AttributeError, TypeError, ValueError):
        return None


class AlpacaGateway(gc.GatewayCore):
    """Orders to Alpaca and their exec reports back, over the shared order table.

    Parameters
    ----------
    spec : the config's ``router.alpaca``.
    symbols : the universe's symbols (instrument id = index).
    block : the gateway block (order table, positions, counters).
    emit : ``emit(recs)``: push exec reports (a list of EXEC_DTYPE tuples) to the router.
    key, secret : the API keys (from the environment; never logged).
    risk_positions, quiet : alphad's positions and whether nothing is on its way to them
        (see ``VenueSync.venue_wins``).
    """

    def __init__(self, spec: AlpacaVenue, symbols: list[str], block: gb.GatewayBlock, emit, *, key: str,
                 secret: str, log=None, risk_positions=None, quiet=None):
        from alpaca.trading.client import TradingClient
        import requests

        super().__init__(block, emit, prefix=spec.client_order_prefix, backoff=(spec.backoff_s, spec.backoff_max_s),
                         name="alpaca", log=log)
        self.spec = spec
        self.symbols = list(symbols)
        self.instrument = {}
        for i, s in enumerate(self.symbols):
            self.instrument[s] = i
            self.instrument[s.replace("/", "")] = i  # crypto positions come back as BTCUSD
        paper = spec.endpoint == "paper"
        self.client = TradingClient(key, secret, paper=paper, raw_data=True, url_override=spec.url_override or None)
        # Retries are ours: alpaca-py's own would resend a POST after a 504 (an order whose
        # fate is unknown) and sleeps seconds in a worker thread.  Requests get a timeout
        # (alpaca-py sets none: a silent venue would hold a worker for ever).
        self.client._retry = 0
        self.client._session = _TimeoutSession(spec.http_timeout_s)
        self._requests_errors = (requests.RequestException, OSError)
        self.pool = ThreadPoolExecutor(max_workers=spec.http_workers, thread_name_prefix="alpaca-http")
        self._key, self._secret, self._paper = key, secret, paper
        self.stream = None
        self.broker_ids: dict[int, str] = {}
        self.sync = VenueSync(self, risk_positions, quiet)  # the stream and reconciliation (alpaca_sync.py)

    # -- HTTP --------------------------------------------------------------------------------
    async def http(self, fn, *args):
        """``fn(*args)`` on the REST client in the pool.  Raises VenueDown for a 5xx, a timeout
        or a connection failure (after counting it); a 4xx ``APIError`` passes through."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, fn, *args)
        except self._requests_errors as e:
            self.w[gb.G_HTTP_ERRORS] += 1
            raise VenueDown(type(e).__name__) from None
        except Exception as e:
            status = http_status(e)
            if status is None or status >= 500:
                self.w[gb.G_HTTP_ERRORS] += 1
                raise VenueDown(f"HTTP {status}" if status else type(e).__name__) from None
            if status == 429:
                self.w[gb.G_RATE_LIMITED] += 1
            raise

    def apply_order(self, j: int, order: dict, *, exec_px: float | None = None, exec_qty: float | None = None,
                    from_query: bool = False) -> None:
        """Row ``j`` brought up to Alpaca's order JSON ``order`` (``GatewayCore.apply_state``)."""
        if order.get("id"):
            self.broker_ids[int(self.block.orders[j]["client_order_id"])] = str(order["id"])
        self.apply_state(j, _STATES.get(str(order.get("status", "")), gc.WORKING), float(order.get("filled_qty") or 0.0),
                         float(order.get("filled_avg_price") or "nan"), exec_px=exec_px, exec_qty=exec_qty,
                         from_query=from_query)

    # -- the venue's I/O ---------------------------------------------------------------------------
    async def submit(self, j: int) -> None:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

        o = self.block.orders[j]
        cid = int(o["client_order_id"])
        i = int(o["instrument"])
        args = dict(symbol=self.symbols[i], qty=float(o["qty"]), side=OrderSide.BUY if o["side"] > 0 else OrderSide.SELL,
                    time_in_force=TimeInForce(_TIF.get(int(o["tif"]), "day")), client_order_id=self.ids.coid(cid))
        limit = float(o["limit_px"])
        req = LimitOrderRequest(limit_price=limit, **args) if o["kind"] == 1 and limit == limit else MarketOrderRequest(**args)
        for attempt in range(self.spec.max_retries + 1):
            try:
                order = await self.http(self.client.submit_order, req)
            except VenueDown as e:
                self.unknown(j, str(e))
                return
            except Exception as e:
                status = http_status(e)
                if status == 429:
                    await asyncio.sleep(self.backoff_s(attempt))
                    continue
                if status == 422 and "client_order_id" in str(e):
                    self.unknown(j, "the venue already has this client order id")  # an earlier try arrived
                    return
                self.log(f"order {cid} rejected by Alpaca: HTTP {status}: {str(e)[:200]}")
                self.reject(j, REJ_VENUE)
                return
            self.w[gb.G_SENT] += 1
            if self.block.orders[j]["client_order_id"] == cid:
                self.apply_order(j, order)
            return
        self.log(f"order {cid}: HTTP 429 to each of {self.spec.max_retries + 1} tries; rejected")
        self.reject(j, REJ_RATE_LIMITED)

    async def cancel(self, cid: int) -> None:
        j = self.block.find(cid)
        if j < 0 or self.block.orders[j]["state"] == gb.GS_DONE:
            return  # ended already: its end was (or is being) reported
        venue_id = self.broker_ids.get(cid)
        try:
            if venue_id is None:
                order = await self.http(self.client.get_order_by_client_id, self.ids.coid(cid))
                self.apply_order(j, order)
                venue_id = str(order["id"])
                if self.block.orders[j]["state"] == gb.GS_DONE:
                    return
            await self.http(self.client.cancel_order_by_id, venue_id)
        except VenueDown:
            self.spawn(self.query_later(cid))  # the cancel may or may not have arrived: read the order back
        except Exception as e:  # 404/422: nothing left to cancel; the order's own answer settles it
            if http_status(e) == 429:
                await asyncio.sleep(self.backoff_s(0))
                self.spawn(self.cancel(cid))
            else:
                self.spawn(self.query(cid))

    async def query(self, cid: int) -> bool:
        """Ask the venue about ``cid`` and apply the answer; True once settled (the venue
        answered), False when it could not be asked (try again)."""
        j = self.block.find(cid)
        if j < 0:
            return True
        try:
            order = await self.http(self.client.get_order_by_client_id, self.ids.coid(cid))
        except VenueDown:
            return False
        except Exception as e:
            status = http_status(e)
            if status == 404:
                return self.not_at_venue(j)
            return False  # 429 or another refusal: ask again later
        self.w[gb.G_QUERIES] += 1
        j = self.block.find(cid)
        if j >= 0:
            self.apply_order(j, order, from_query=True)
        return True

    # -- the trade_updates stream --------------------------------------------------------------------
    async def on_trade_update(self, msg) -> None:
        data = msg.get("data", msg) if isinstance(msg, dict) else msg
        order = data.get("order") or {}
        cid = self.ids.cid_of(order.get("client_order_id"))
        if cid is None:
            return
        j = self.block.find(cid)
        if j < 0:
            return  # ours by its prefix but not in the table: the periodic reconciliation ignores it too
        px, qty = data.get("price"), data.get("qty")
        self.apply_order(j, order, exec_px=float(px) if px is not None else None,
                         exec_qty=float(qty) if qty is not None else None)

class _TimeoutSession:
    """A requests session whose every request has a timeout (alpaca-py passes none)."""

    def __init__(self, timeout_s: float):
        import requests

        self._s = requests.Session()
        self._timeout = timeout_s

    def request(self, method, url, **kw):
        kw.setdefault("timeout", self._timeout)
        return self._s.request(method, url, **kw)
