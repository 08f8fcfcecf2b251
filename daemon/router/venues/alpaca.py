"""The gateway side of Alpaca: orders and cancels to Alpaca through alpaca-py, exec reports back.

Runs in the gateway process (:mod:`alphad.daemon.shell.gateway`) on a uvloop event loop:
alpaca-py's ``TradingStream`` (the ``trade_updates`` websocket) runs on the loop itself,
and its synchronous REST client (``TradingClient``, requests) in a small thread pool.

One rule carries the whole design: **an order's state at the venue is read, never
guessed.**  Every answer about an order (the stream's events, a query by client order id,
the periodic list of open orders) goes through one idempotent function,
:meth:`AlpacaGateway.apply_order`, which compares the venue's cumulative filled quantity
with what the gateway has already reported (``reported`` in the shared order table) and
reports only the difference.  So:

* a fill seen twice (stream and query) is reported once; a fill missed while the stream
  was down, or while no gateway ran, is reported by the next query;
* only a definite answer rejects (a 4xx other than 429); a 5xx, a timeout or a dropped
  connection leaves the order's fate unknown (``GS_UNKNOWN``) until a query settles it,
  and an order is never sent twice: a 422 "client_order_id must be unique" means the
  first try arrived, and is settled by a query as well;
* a 429 is retried after a doubling backoff (the request was refused, so resending the
  same client order id is safe; the venue would refuse a duplicate anyway).

The order table lives in shared memory (:mod:`alphad.ipc.gateway_block`): a restarted
gateway asks the venue about every order its predecessor left open before it is ready.
"""
from __future__ import annotations

import asyncio
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from alphad.daemon.router.order_fsm import (REASON_CXL_EXPIRED, REASON_CXL_USER, REJ_NOT_AT_VENUE, REJ_RATE_LIMITED,
                                            REJ_STORE_FULL, REJ_VENUE)
from alphad.daemon.router.venues.alpaca_config import AlpacaVenue
from alphad.daemon.router.venues.alpaca_sync import VenueSync
from alphad.ipc import gateway_block as gb
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, EXEC_STATUS, REQ_CANCEL,
                               REQ_NEW, REQ_QUERY, TIF_DAY, TIF_GTC, TIF_IOC)

#: Alpaca order statuses that end an order, and what each becomes for risk.
_ENDED = {"filled": None, "canceled": (EXEC_CANCELED, REASON_CXL_USER), "expired": (EXEC_CANCELED, REASON_CXL_EXPIRED),
          "done_for_day": (EXEC_CANCELED, REASON_CXL_EXPIRED), "replaced": (EXEC_CANCELED, REASON_CXL_USER),
          "rejected": (EXEC_REJECT, REJ_VENUE)}
_TIF = {TIF_DAY: "day", TIF_GTC: "gtc", TIF_IOC: "ioc"}
TIF_CODES = {v: k for k, v in _TIF.items()}
#: Relative tolerance on quantities (Alpaca returns decimal strings).
QTY_EPS = 1e-9
#: A query that finds no such order settles it only this long after the failed send:
#: an order that did arrive may take a moment to be listed.
NOT_FOUND_GRACE_NS = 1_000_000_000


class OrderIds:
    """alphad's client order ids as Alpaca's: ``<prefix><id>``; an order without the prefix
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


class VenueDown(Exception):
    """A request whose answer never came (5xx, timeout, refused connection)."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of an alpaca-py ``APIError`` (None for anything else)."""
    try:
        return int(exc.status_code)
    except (AttributeError, TypeError, ValueError):
        return None


class AlpacaGateway:
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

        self.spec, self.block, self.emit = spec, block, emit
        self.ids = OrderIds(spec.client_order_prefix)
        self.symbols = list(symbols)
        self.instrument = {}
        for i, s in enumerate(self.symbols):
            self.instrument[s] = i
            self.instrument[s.replace("/", "")] = i  # crypto positions come back as BTCUSD
        self.w = block.words
        self.log = log or (lambda msg: print(f"alphad gateway alpaca: {msg}", file=sys.stderr, flush=True))
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
        self._tasks: set[asyncio.Task] = set()
        self.sync = VenueSync(self, risk_positions, quiet)  # the stream and reconciliation (alpaca_sync.py)
        self.reports_pushed = 0
        #: The broker's price per instrument from its positions (an adjustment is booked at it).
        self.marks: dict[int, float] = {}

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

    def backoff_s(self, attempt: int) -> float:
        return min(self.spec.backoff_s * 2 ** attempt, self.spec.backoff_max_s)

    def spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- reports -------------------------------------------------------------------------------
    def _report(self, j: int, status: int, *, reason: int = 0, fill_qty: float = 0.0, fill_px: float = math.nan,
                leaves: float = 0.0) -> None:
        o = self.block.orders[j]
        now = time.monotonic_ns()
        self.reports_pushed += 1
        self.emit([(int(o["t_origin"]), now, int(o["client_order_id"]), int(o["instrument"]), int(o["side"]),
                    status, reason, fill_qty, fill_px, 0.0, leaves)])

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

    def apply_order(self, j: int, order: dict, *, exec_px: float | None = None, exec_qty: float | None = None,
                    from_query: bool = False) -> None:
        """Bring row ``j`` up to the venue's order ``order`` (Alpaca's order JSON): an ACK
        the first time, then the fills not reported yet, then its end.  Idempotent."""
        o = self.block.orders[j]
        if o["state"] == gb.GS_DONE:
            return
        if order.get("id"):
            self.broker_ids[int(o["client_order_id"])] = str(order["id"])
        status = str(order.get("status", ""))
        qty = float(o["qty"])
        if not o["acked"] and status != "rejected":
            o["acked"] = 1
            self._report(j, EXEC_ACK, leaves=qty - float(o["reported"]))
        cum = float(order.get("filled_qty") or 0.0)
        reported = float(o["reported"])
        if cum > reported + QTY_EPS * qty:
            delta = cum - reported
            avg = float(order.get("filled_avg_price") or "nan")
            if exec_px is not None and exec_qty is not None and abs(exec_qty - delta) <= QTY_EPS * qty:
                px = exec_px  # this event's own execution
            else:  # several executions at once: the price of what was not reported yet
                px = (avg * cum - float(o["reported_value"])) / delta
            full = cum >= qty * (1 - QTY_EPS)
            self._report(j, EXEC_FILL if full else EXEC_PARTIAL, fill_qty=delta, fill_px=px,
                         leaves=0.0 if full else qty - cum)
            # After the push: a crash in between reports it again, which the router drops
            # (its fill would take the order past its quantity) rather than losing it.
            o["reported"] = cum
            o["reported_value"] = float(o["reported_value"]) + delta * px
            if from_query:
                self.w[gb.G_RECOVERED_FILLS] += 1
        o["updated"] = time.monotonic_ns()
        if status in _ENDED:
            end = _ENDED[status]
            if end is not None and not (status == "filled"):
                self._report(j, end[0], reason=end[1])
                if end[0] == EXEC_REJECT:
                    self.w[gb.G_REJECTS] += 1
            elif status == "filled" and cum < qty * (1 - QTY_EPS):
                self._report(j, EXEC_CANCELED, reason=REASON_CXL_USER)  # filled less than asked: the rest is off
            self._end(j)
        elif o["state"] != gb.GS_OPEN:
            if o["state"] == gb.GS_UNKNOWN:
                self.w[gb.G_UNKNOWN] -= 1
            o["state"] = gb.GS_OPEN

    def _unknown(self, j: int, why: str) -> None:
        o = self.block.orders[j]
        if o["state"] != gb.GS_UNKNOWN:
            self.w[gb.G_UNKNOWN] += 1
            o["state"] = gb.GS_UNKNOWN
        o["updated"] = time.monotonic_ns()
        self.log(f"order {int(o['client_order_id'])}: fate unknown ({why}); asking the venue")
        self.spawn(self.query_later(int(o["client_order_id"])))

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
            elif action == REQ_CANCEL:
                self.spawn(self.cancel(cid))
            elif action == REQ_QUERY:
                self.spawn(self.answer_query(cid, float(r["known_filled"]), r))

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
                self._unknown(j, str(e))
                return
            except Exception as e:
                status = http_status(e)
                if status == 429:
                    await asyncio.sleep(self.backoff_s(attempt))
                    continue
                if status == 422 and "client_order_id" in str(e):
                    self._unknown(j, "the venue already has this client order id")  # an earlier try arrived
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

    async def answer_query(self, cid: int, known_filled: float, r) -> None:
        """The router asks about ``cid`` (it restarted, or the order has waited too long)."""
        j = self.block.find(cid)
        if j < 0:  # not in the table: the venue decides
            now = time.monotonic_ns()
            j = self.block.enter(cid, int(r["instrument"]), int(r["side"]), int(r["kind"]), int(r["tif"]),
                                 max(float(r["qty"]), 1e-12), float(r["limit_px"]), int(r["t_origin"]), now - NOT_FOUND_GRACE_NS,
                                 state=gb.GS_UNKNOWN, reported=max(known_filled, 0.0))
            if j < 0:
                return
            self.w[gb.G_UNKNOWN] += 1
        await self.query(cid)
        j = self.block.find(cid)
        if j >= 0 and self.block.orders[j]["state"] == gb.GS_OPEN:
            self.report_status(j)

    async def query_later(self, cid: int) -> None:
        await asyncio.sleep(self.backoff_s(0))
        for attempt in range(60):
            if await self.query(cid):
                return
            await asyncio.sleep(self.backoff_s(attempt + 1))

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
                o = self.block.orders[j]
                if o["state"] == gb.GS_UNKNOWN and time.monotonic_ns() - int(o["updated"]) >= NOT_FOUND_GRACE_NS:
                    self.log(f"order {cid}: its fate was unknown and Alpaca has no such order: never arrived")
                    self.reject(j, REJ_NOT_AT_VENUE)
                    return True
                return False
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
