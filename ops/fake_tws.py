"""A wire-level fake of TWS / IB Gateway: the TWS API socket protocol, as ib_async reads it.

An unmodified ``ib_async.IB`` connects to it like to a paper TWS::

    fake = FakeTWS().start()
    fake.set_quote("AAPL", 189.90, 190.10)
    ib = IB(); await ib.connectAsync("127.0.0.1", fake.port, clientId=1)

One asyncio server on 127.0.0.1, on an event loop of its own in a background thread, speaks
server version 176 (inside ib_async's 157..178): the ``API\\0`` handshake, length-prefixed
NUL-separated messages, and every message encoded field by field in the order ib_async's
decoder unpacks it for that version.  ``stop()`` drops every connection but keeps all state,
and ``start()`` serves it again on the same port.  Every state change runs on the server's
loop (or, while stopped, in the caller's thread under the same lock), so the public methods
are thread-safe and take effect before they return.

Faked (message ids in parentheses, client -> server / server -> client):

* handshake and startApi (71): nextValidId (9), managedAccounts (15), the farm-status
  notices 2104/2106/2158, error 326 for a client id already in use (scripted or real);
* orders: placeOrder (3) -> openOrder (5) + orderStatus (3); a placeOrder for an open
  orderId is a modify, for a finished one error 103; market orders take the touch (ask to
  buy, bid to sell) after ``fill_delay_s`` and wait while that side is empty; limit orders
  rest until a quote makes them marketable and then fill whole at the touch; IOC/FOK orders
  cancel what the touch does not take; each execution sends execDetails (11), orderStatus
  and commissionReport (59), in that order, as TWS does (the commission comes last);
* cancelOrder (4) and reqGlobalCancel (58) -> orderStatus Cancelled + error 202;
  reqOpenOrders (5), reqAllOpenOrders (16) -> openOrder/orderStatus per order, openOrderEnd
  (53); reqAutoOpenOrders (15) accepted; reqCompletedOrders (99) -> completedOrder (101),
  completedOrdersEnd (102); reqExecutions (7) with its filter -> execDetails +
  commissionReport per execution, execDetailsEnd (55);
* account: reqPositions (61) -> position (61), positionEnd (62), then position updates on
  every fill until cancelPositions (64); reqAccountUpdates (6) -> updateAccountValue (6),
  updatePortfolio (7), updateAccountTime (8), accountDownloadEnd (54), then updates on every
  fill; reqAccountUpdatesMulti (76) -> accountUpdateMulti (73), End (74);
  reqAccountSummary (62) -> accountSummary (63), End (64); reqPositionsMulti (74) ->
  positionMulti (71), End (72);
* market data: reqContractDetails (9) -> contractData (10), contractDataEnd (52) for any
  stock symbol on SMART/its listing exchange and the crypto symbols on PAXOS (USD only; else
  error 200); reqMktData (1) -> tickReqParams (81), marketDataType (58), tickPrice (1) /
  tickSize (2) on every quote and trade (snapshots end with tickSnapshotEnd, 57);
  reqTickByTickData (97) -> tickByTick (99); reqRealTimeBars (50) -> realtimeBar (50) every
  5 s; reqMarketDataType (59), reqCurrentTime (49) -> currentTime (49), reqIds (8),
  reqManagedAccts (17);
* trouble: rejects (error 201 then orderStatus Cancelled or Inactive), partial fills,
  dropped sockets, the nightly restart (1100, refused connections, 1101/1102 on
  reconnect), a market-data farm broken (2103: its symbols' ticks withheld while orders still
  fill at the book) and OK again (2104), arbitrary error codes, client id clashes, venue-side
  fills and cancels.

Errors (4) carry reqId, errorCode, errorString and advancedOrderRejectJson (server
versions below 194 send no errorTime).  Times are UTC (``20261206 12:00:00 UTC``).

Not faked: historical data, depth, news, scanners, fundamentals, option chains and PnL
(answered with error 322 where the request has an id, so ib_async's request ends), what-if
orders (treated as real orders), stop/trailing/algo/combo/bracket orders (they rest until
``fill_order``), delayed market data types (ticks are always live), order routing to other
clients (order messages go to the connections with the owning client id only), trading
hours (the market is always open) and queue position (the whole remaining quantity fills
at the touch, whatever the quoted size).  Commission is per execution: the order's running
total is ``max(min_commission, commission_per_share * filled)`` and each execution is charged
what that adds.  Connection attempts refused while the fake is down are not in ``connects``.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import math
import signal
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

log = logging.getLogger("alphad.ops.fake_tws")

SERVER_VERSION = 176            # below 177 the FA profile field is still sent in orders
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_TEXT = "1.7976931348623157E308"   # how TWS writes Double.MAX_VALUE ("no value")
OPEN_STATES = ("PreSubmitted", "Submitted")
DONE_STATES = ("Filled", "Cancelled", "Inactive")
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
MSG_1100 = "Connectivity between IB and Trader Workstation has been lost."
MSG_1101 = "Connectivity between IB and Trader Workstation has been restored - data lost."
MSG_1102 = ("Connectivity between IB and Trader Workstation has been restored - data maintained. "
            "All data farms are connected: usfarm; ushmds; secdefnj.")
MSG_326 = "Unable to connect as the client id is already in use. Retry with a unique client id."
MSG_200 = "No security definition has been found for the request"
MSG_202 = "Order Canceled - reason:"
# request ids of requests this fake does not serve: msg id -> index of the reqId field
UNSERVED = {10: 2, 20: 1, 52: 2, 78: 1, 81: 1, 84: 1, 86: 1, 87: 1, 88: 1, 92: 1, 94: 1, 96: 1}

# Known instruments: conId, listing exchange, long name.  Any other stock symbol gets a stable
# synthetic conId so demos can trade anything; crypto is limited to what PAXOS lists.
STOCKS = {
    "AAPL": (265598, "NASDAQ", "APPLE INC"),
    "MSFT": (272093, "NASDAQ", "MICROSOFT CORP"),
    "NVDA": (4815747, "NASDAQ", "NVIDIA CORP"),
    "AMZN": (3691937, "NASDAQ", "AMAZON.COM INC"),
    "TSLA": (76792991, "NASDAQ", "TESLA INC"),
    "QQQ": (320227571, "NASDAQ", "INVESCO QQQ TRUST SERIES 1"),
    "SPY": (756733, "ARCA", "SPDR S&P 500 ETF TRUST"),
}
CRYPTO = {
    "BTC": (479624278, "Bitcoin", 0.25),
    "ETH": (495759171, "Ethereum", 0.05),
    "LTC": (498989715, "Litecoin", 0.01),
    "BCH": (498989721, "Bitcoin Cash", 0.01),
}


# ---------------------------------------------------------------- wire helpers

def _text(v: Any) -> str:
    """One field as TWS writes it: empty for None, 0/1 for booleans, no '.0' on whole numbers."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        if v >= UNSET_DOUBLE:
            return UNSET_TEXT
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    return str(v)


def _frame(fields: list | tuple) -> bytes:
    payload = "".join(_text(f) + "\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


async def _read_payload(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(size)


def _opt_float(s: str) -> float | None:
    """A price field as ib_async sends it: empty (or Double.MAX_VALUE) means unset."""
    if not s:
        return None
    v = float(s)
    return None if v >= UNSET_DOUBLE else v


def _tws_time(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y%m%d %H:%M:%S") + " UTC"


def _parse_filter_time(s: str) -> datetime | None:
    """An ExecutionFilter time: 'yyyymmdd hh:mm:ss[ tz]' or 'yyyymmdd-hh:mm:ss' (UTC)."""
    s = s.strip()
    if not s:
        return None
    try:
        day, rest = s[:8], s[9:]
        clock, _, tz = rest.partition(" ")
        dt = datetime.strptime(day + clock, "%Y%m%d%H:%M:%S")
        return dt.replace(tzinfo=ZoneInfo(tz) if tz else timezone.utc)
    except (ValueError, KeyError):
        log.warning("FakeTWS: ignoring an execution filter time it cannot read: %r", s)
        return None


def _round(q: float) -> float:
    return round(q, 8)   # keeps 0.1 + 0.2 style noise out of quantities


# ---------------------------------------------------------------- state

@dataclass(frozen=True)
class _Instrument:
    symbol: str
    sec_type: str       # STK or CRYPTO
    con_id: int
    primary: str        # listing exchange, PAXOS for crypto
    long_name: str
    min_tick: float

    @property
    def crypto(self) -> bool:
        return self.sec_type == "CRYPTO"

    @property
    def local_symbol(self) -> str:
        return f"{self.symbol}.USD" if self.crypto else self.symbol

    @property
    def trading_class(self) -> str:
        return "NMS" if self.primary == "NASDAQ" else self.symbol

    @property
    def venue(self) -> str:
        """Where executions report: NASDAQ prints as ISLAND, as on TWS."""
        return "ISLAND" if self.primary == "NASDAQ" else self.primary

    def contract(self, exchange: str) -> list:
        """conId .. tradingClass as openOrder, execDetails and position carry them (11 fields)."""
        return [self.con_id, self.symbol, self.sec_type, "", 0.0, "", "", exchange, "USD",
                self.local_symbol, self.trading_class]


@dataclass
class _Book:
    bid: float | None = None
    ask: float | None = None
    bid_size: float = 0.0
    ask_size: float = 0.0
    last: float | None = None
    last_size: float = 0.0
    volume: float = 0.0


@dataclass(eq=False)
class _Order:
    order_id: int
    client_id: int
    perm_id: int
    inst: _Instrument
    exchange: str
    action: str
    qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool
    parts: int = 1                       # partial_fills() setting when it was placed
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0
    last_fill_price: float = 0.0
    commission: float = 0.0
    fill_pending: bool = False
    part_qtys: list[float] = field(default_factory=list)
    completed_time: str = ""
    completed_status: str = ""

    @property
    def remaining(self) -> float:
        return max(0.0, _round(self.qty - self.filled))

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def sign(self) -> int:
        return 1 if self.action == "BUY" else -1


@dataclass
class _Exec:
    exec_id: str
    order: _Order
    order_ref: str          # the order's reference when it executed (a modify may change it later)
    time: datetime
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    commission: float
    realized: float | None
    exchange: str
    liquidity: int          # 1 added (resting order), 2 removed (took the touch)


@dataclass
class _Pos:
    qty: float = 0.0
    avg_cost: float = 0.0
    realized: float = 0.0


class _Conn:
    """One client socket and what it subscribed to."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.client_id: int | None = None   # set once startApi is accepted
        self.closed = False
        self.mkt: dict[int, str] = {}                   # reqMktData reqId -> symbol
        self.tbt: dict[int, tuple[str, str]] = {}       # tick-by-tick reqId -> (symbol, kind)
        self.bars: dict[int, tuple[str, str]] = {}      # real-time bars reqId -> (symbol, whatToShow)
        self.positions_sub = False
        self.account_sub = False

    def send(self, *fields: Any) -> None:
        if not self.closed and not self.writer.is_closing():
            self.writer.write(_frame(fields))

    def error(self, req_id: int, code: int, message: str, advanced: str = "") -> None:
        self.send(4, 2, req_id, code, message, advanced)

    def close(self, abort: bool = False) -> None:
        self.closed = True
        if abort:
            self.writer.transport.abort()      # RST, like a network loss: nothing is flushed
        elif not self.writer.is_closing():
            self.writer.close()                # flushes what was written, then FIN


# ---------------------------------------------------------------- the fake

class FakeTWS:
    """A TWS / IB Gateway on loopback for ib_async; see the module docstring."""

    def __init__(self, port: int = 0, *, account: str = "DU1234567",
                 commission_per_share: float = 0.005, min_commission: float = 1.0,
                 fill_delay_s: float = 0.0, cash: float = 1_000_000.0):
        self.host = "127.0.0.1"
        self.port = port
        self.account = account
        self.commission_per_share = commission_per_share
        self.min_commission = min_commission
        self.fill_delay_s = fill_delay_s
        self.place_counts: dict[str, int] = {}  # new orders placed, by orderRef
        self.modify_counts: dict[str, int] = {}  # modifies of an open order, by the orderRef they set
        self.connects: list[tuple[int, str]] = []
        self._cash = cash
        self._lock = threading.RLock()
        self._lifecycle = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_tid: int | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._instruments: dict[str, _Instrument] = {}
        self._books: dict[str, _Book] = {}
        self._orders: list[_Order] = []
        self._by_key: dict[tuple[int, int], _Order] = {}
        self._execs: list[_Exec] = []
        self._positions: dict[str, _Pos] = {}
        self._next_perm = 1_500_000_001
        self._next_exec = 1
        self._parts = 1
        self._reject: tuple[int, str, str] | None = None
        self._lose_next = False
        self._fill_first: float | None = None  # fill_before_next_modify
        self._lose_answer = False  # lose_next_answer
        self.lost_orders: list[str] = []  # order refs lost on the wire (lose_next_order)
        self._in_use: dict[int, int] = {}
        self._restore: dict[int, int] = {}     # client id -> 1101/1102 owed on its reconnect
        self._farms_broken: dict[str, set[str]] = {}  # broken market-data farm -> symbols withheld
        self._bar_window: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self._bar_last: dict[tuple[str, str], float] = {}
        self._handlers: dict[int, Callable[[_Conn, list[str]], None]] = {
            1: self._req_mkt_data, 2: self._cancel_mkt_data, 3: self._place_order,
            4: self._cancel_order, 5: self._req_open_orders, 6: self._req_account_updates,
            7: self._req_executions, 8: self._req_ids, 9: self._req_contract_details,
            15: self._ignore, 16: self._req_all_open_orders, 17: self._req_managed_accts,
            49: self._req_current_time, 50: self._req_real_time_bars,
            51: self._cancel_real_time_bars, 58: self._req_global_cancel, 59: self._ignore,
            61: self._req_positions, 62: self._req_account_summary, 63: self._ignore,
            64: self._cancel_positions, 71: self._start_api, 74: self._req_positions_multi,
            75: self._ignore, 76: self._req_account_updates_multi, 77: self._ignore,
            97: self._req_tick_by_tick, 98: self._cancel_tick_by_tick,
            99: self._req_completed_orders,
        }

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeTWS":
        """Serve on a thread of its own; after stop(), serve the same state on the same port."""
        with self._lifecycle:
            if self._thread is not None:
                return self
            loop = asyncio.new_event_loop()
            ready, failure = threading.Event(), []
            thread = threading.Thread(target=self._serve, args=(loop, ready, failure),
                                      name=f"fake-tws:{self.port}", daemon=True)
            thread.start()
            ready.wait(30)
            if failure:
                thread.join(5)
                raise failure[0]
            self._thread = thread
            return self

    def stop(self) -> None:
        """Close every connection and stop listening; orders, executions, positions stay."""
        with self._lifecycle:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            self._thread = None

    def __enter__(self) -> "FakeTWS":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event, failure: list) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as e:  # noqa: BLE001 - handed to start() in the caller's thread
            failure.append(e)
            ready.set()
            loop.close()
            return
        with self._lock:
            self._loop, self._loop_tid = loop, threading.get_ident()
            self._schedule_bars()
            for sym in list(self._books):   # fills that were due when the loop stopped
                self._match_symbol(sym)
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        with self._lock:
            for handle in list(self._timers):
                handle.cancel()
            self._timers.clear()
            for o in self._orders:
                o.fill_pending = False
            if self._server is not None:
                self._server.close()
                self._server = None
            self._close_all(abort=False)
            tasks = list(self._tasks)
            self._loop = self._loop_tid = None   # from here on, calls run in the caller's thread
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _close_all(self, abort: bool) -> None:
        for conn in list(self._conns):
            conn.close(abort)
        self._conns.clear()

    # ------------------------------------------------------------ threading plumbing

    def _run(self, fn: Callable, *args: Any) -> Any:
        """Run fn on the server's loop (or here, while stopped) under the lock; return its result."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_tid:
            with self._lock:
                return fn(*args)
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def call() -> None:
            try:
                with self._lock:
                    fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                fut.set_exception(e)

        loop.call_soon_threadsafe(call)
        return fut.result(30)

    def _guard(self, fn: Callable, *args: Any) -> None:
        try:
            with self._lock:
                fn(*args)
        except Exception:  # noqa: BLE001 - a bug in one handler must not kill the server
            log.exception("FakeTWS: %s failed", getattr(fn, "__name__", fn))

    def _later(self, delay: float, fn: Callable, *args: Any) -> None:
        """fn after delay on the loop; while stopped there is no clock, so now."""
        loop = self._loop
        if loop is None:
            fn(*args)
            return
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            self._guard(fn, *args)

        holder.append(loop.call_later(max(0.0, delay), fire))
        self._timers.add(holder[0])

    # ------------------------------------------------------------ connections

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        task = asyncio.current_task()
        with self._lock:
            self._conns.add(conn)
            if task is not None:
                self._tasks.add(task)
        try:
            if await self._handshake(conn, reader):
                while not conn.closed:
                    fields = (await _read_payload(reader)).decode(errors="replace").split("\0")[:-1]
                    if fields:
                        self._guard(self._dispatch, conn, fields)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass   # the client went away, or the fake is stopping
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._tasks.discard(task)
            conn.close()

    async def _handshake(self, conn: _Conn, reader: asyncio.StreamReader) -> bool:
        """'API\\0' + 'v<min>..<max>[ options]'; answered with our version and the time."""
        if await reader.readexactly(4) != b"API\0":
            return False
        spec = (await _read_payload(reader)).decode(errors="replace").split(" ", 1)[0]
        low, _, high = spec.lstrip("v").partition("..")
        try:
            ok = int(low) <= SERVER_VERSION <= int(high or low)
        except ValueError:
            ok = False
        if not ok:
            with self._lock:
                self.connects.append((-1, "bad_version"))
            return False
        conn.send(SERVER_VERSION, _tws_time(datetime.now(timezone.utc)))
        return True

    def _dispatch(self, conn: _Conn, fields: list[str]) -> None:
        msg_id = int(fields[0])
        if conn.client_id is None and msg_id != 71:
            return   # TWS ignores requests before startApi
        handler = self._handlers.get(msg_id)
        if handler is not None:
            handler(conn, fields)
        elif msg_id in UNSERVED:
            req_id = int(fields[UNSERVED[msg_id]])
            conn.error(req_id, 322, f"Error processing request.-FakeTWS does not serve message {msg_id}")
        else:
            log.debug("FakeTWS: ignoring message %d", msg_id)

    def _ignore(self, conn: _Conn, fields: list[str]) -> None:
        """reqAutoOpenOrders, reqMarketDataType and the cancels of one-shot answers: nothing to say."""

    def _ready_conns(self) -> list[_Conn]:
        return [c for c in self._conns if c.client_id is not None and not c.closed]

    def _owners(self, o: _Order) -> list[_Conn]:
        return [c for c in self._ready_conns() if c.client_id == o.client_id]

    def _start_api(self, conn: _Conn, f: list[str]) -> None:
        client_id = int(f[2])
        taken = any(c.client_id == client_id for c in self._ready_conns())
        if taken or self._in_use.get(client_id, 0) > 0:
            if not taken:
                self._in_use[client_id] -= 1
            self.connects.append((client_id, "in_use"))
            conn.error(-1, 326, MSG_326)
            self._drop(conn)
            return
        conn.client_id = client_id
        self.connects.append((client_id, "ok"))
        conn.send(9, 1, self._next_order_id())
        conn.send(15, 1, self.account)
        for code, text in FARM_NOTICES:
            farm = text.split(":")[-1]
            if farm in self._farms_broken:
                code, text = 2103, f"Market data farm connection is broken:{farm}"
            conn.error(-1, code, text)
        owed = self._restore.pop(client_id, None)
        if owed is not None:
            conn.error(-1, owed, MSG_1101 if owed == 1101 else MSG_1102)

    def _drop(self, conn: _Conn, abort: bool = False) -> None:
        self._conns.discard(conn)
        conn.close(abort)

    # ------------------------------------------------------------ instruments

    def _instrument(self, symbol: str, sec_type: str = "") -> _Instrument | None:
        symbol = symbol.upper()
        if not symbol:
            return None
        if not sec_type:
            sec_type = "CRYPTO" if symbol in CRYPTO else "STK"
        known = self._instruments.get(symbol)
        if known is not None:
            return known if known.sec_type == sec_type else None
        if sec_type == "CRYPTO":
            if symbol not in CRYPTO:
                return None
            con_id, name, tick = CRYPTO[symbol]
            inst = _Instrument(symbol, "CRYPTO", con_id, "PAXOS", name, tick)
        elif sec_type == "STK":
            con_id, primary, name = STOCKS.get(
                symbol, (900_000_000 + zlib.crc32(symbol.encode()) % 90_000_000, "NYSE", symbol))
            inst = _Instrument(symbol, "STK", con_id, primary, name, 0.01)
        else:
            return None
        self._instruments[symbol] = inst
        return inst

    def _by_con_id(self, con_id: int) -> _Instrument | None:
        for inst in self._instruments.values():
            if inst.con_id == con_id:
                return inst
        for table, sec_type in ((STOCKS, "STK"), (CRYPTO, "CRYPTO")):
            for sym, spec in table.items():
                if spec[0] == con_id:
                    return self._instrument(sym, sec_type)
        return None

    def _resolve(self, c: list[str]) -> _Instrument | None:
        """The 12 contract fields ib_async sends (conId .. tradingClass) -> an instrument."""
        con_id, symbol, sec_type, exchange, currency = c[0], c[1], c[2], c[7], c[9]
        if con_id and con_id != "0":
            inst = self._by_con_id(int(con_id))
        else:
            inst = self._instrument(symbol, sec_type)
        if inst is None or (currency and currency != "USD"):
            return None
        if symbol and symbol.upper() != inst.symbol:
            return None
        allowed = ("", "PAXOS") if inst.crypto else ("", "SMART", inst.primary, inst.venue)
        return inst if exchange in allowed else None

    # ------------------------------------------------------------ orders

    def _next_order_id(self) -> int:
        return max((o.order_id for o in self._orders), default=0) + 1

    def _new_order(self, conn: _Conn, order_id: int, inst: _Instrument, f: list[str]) -> _Order:
        o = _Order(order_id=order_id, client_id=conn.client_id or 0, perm_id=self._next_perm,
                   inst=inst, exchange=f[9] or ("PAXOS" if inst.crypto else "SMART"),
                   action=f[16], qty=float(f[17] or 0), order_type=f[18],
                   lmt_price=_opt_float(f[19]), aux_price=_opt_float(f[20]), tif=f[21] or "DAY",
                   account=f[23] or self.account, order_ref=f[26], outside_rth=f[33] == "1",
                   parts=self._parts)
        self._next_perm += 1
        self._orders.append(o)
        self._by_key[(o.client_id, order_id)] = o
        return o

    def _place_order(self, conn: _Conn, f: list[str]) -> None:
        """placeOrder (3): only the leading fields matter here; the version-dependent tail is ignored."""
        order_id, ref = int(f[1]), f[26]
        if self._lose_next:  # lost on the wire: the venue never sees it, and the link goes
            self._lose_next = False
            self.lost_orders.append(ref)
            self._close_all(True)
            return
        if self._lose_answer:  # it arrives and is acted on; the link goes before the answer
            self._lose_answer = False
            self._close_all(True)
        existing = self._by_key.get((conn.client_id or 0, order_id))
        if existing is not None:  # a modify: counted apart, never a new order
            self.modify_counts[ref] = self.modify_counts.get(ref, 0) + 1
            if self._fill_first is not None and existing.is_open:  # a fill that crossed it on the wire
                qty, self._fill_first = self._fill_first, None
                self._execute(existing, existing.remaining if qty <= 0 else qty, self._default_price(existing), 1)
            if existing.is_open:
                self._modify(existing, f)
            else:
                conn.error(order_id, 104, f"Cannot modify an order that is {existing.status}.")
            return
        self.place_counts[ref] = self.place_counts.get(ref, 0) + 1
        inst = self._resolve(f[2:14])
        if inst is None:
            conn.error(order_id, 200, MSG_200)
            return
        o = self._new_order(conn, order_id, inst, f)
        if self._reject is not None:
            code, message, status = self._reject
            self._reject = None
            self._finish(o, status, "Rejected")
            for c in self._owners(o):
                c.error(order_id, code, message)
                c.send(*self._status_msg(o))
            return
        self._announce(o)
        self._match(o)

    def _modify(self, o: _Order, f: list[str]) -> None:
        """A placeOrder for an open orderId: TWS applies the new quantity, prices and tif."""
        o.qty = max(float(f[17] or 0), o.filled)
        o.order_type = f[18] or o.order_type
        o.lmt_price, o.aux_price = _opt_float(f[19]), _opt_float(f[20])
        o.tif = f[21] or o.tif
        o.order_ref = f[26] or o.order_ref
        if o.remaining <= 0:
            self._finish(o, "Filled", f"Filled Size: {_text(o.filled)}")
        self._announce(o)
        self._match(o)

    def _announce(self, o: _Order) -> None:
        for c in self._owners(o):
            c.send(*self._open_order_msg(o))
            c.send(*self._status_msg(o))

    def _finish(self, o: _Order, status: str, why: str) -> None:
        o.status = status
        o.completed_time = _tws_time(datetime.now(timezone.utc))
        o.completed_status = why

    def _touch(self, o: _Order) -> float | None:
        """The price o would execute at now, or None while it is not marketable."""
        book = self._books.get(o.inst.symbol)
        if book is None:
            return None
        px = book.ask if o.action == "BUY" else book.bid
        if px is None:
            return None
        if o.order_type == "MKT":
            return px
        if o.order_type == "LMT" and o.lmt_price is not None:
            better = px <= o.lmt_price if o.action == "BUY" else px >= o.lmt_price
            return px if better else None
        return None   # other order types rest until fill_order()

    def _match(self, o: _Order) -> None:
        if not o.is_open or o.fill_pending:
            return
        if self._touch(o) is None:
            if o.tif in ("IOC", "FOK"):
                self._cancel(o)
            return
        if self.fill_delay_s > 0 and self._loop is not None:
            o.fill_pending = True
            self._later(self.fill_delay_s, self._fill_step, o)
        else:
            self._fill_step(o)

    def _match_symbol(self, symbol: str) -> None:
        for o in [o for o in self._orders if o.is_open and o.inst.symbol == symbol]:
            self._match(o)

    def _fill_step(self, o: _Order) -> None:
        """Take the touch for o: the whole remainder, or the next of its scripted parts."""
        o.fill_pending = False
        if not o.is_open:
            return
        price = self._touch(o)
        if price is None:
            if o.tif in ("IOC", "FOK"):
                self._cancel(o)
            return
        if o.order_type == "MKT" and o.parts > 1 and not o.part_qtys and o.filled == 0:
            o.part_qtys = self._split(o.remaining, o.parts)
        qty = o.part_qtys.pop(0) if o.part_qtys else o.remaining
        self._execute(o, qty, price, liquidity=2 if o.order_type == "MKT" else 1)
        if o.is_open:
            self._match(o)   # the next part: after fill_delay_s, or now

    @staticmethod
    def _split(qty: float, n: int) -> list[float]:
        if qty.is_integer() and qty >= n:
            base = int(qty) // n
            return [float(base)] * (n - 1) + [qty - base * (n - 1)]
        return [_round(qty / n)] * (n - 1) + [_round(qty - _round(qty / n) * (n - 1))]

    def _execute(self, o: _Order, qty: float, price: float, liquidity: int) -> None:
        qty = min(_round(qty), o.remaining)
        if qty <= 0:
            return
        cum = _round(o.filled + qty)
        o.avg_price = (o.avg_price * o.filled + price * qty) / cum
        o.filled, o.last_fill_price = cum, price
        total = max(self.min_commission, self.commission_per_share * cum)
        commission, o.commission = round(total - o.commission, 6), total
        closed_pnl = self._book_position(o.inst.symbol, o.sign * qty, price)
        self._cash -= o.sign * qty * price + commission
        if o.remaining <= 0:
            self._finish(o, "Filled", f"Filled Size: {_text(o.filled)}")
        ex = _Exec(exec_id=f"{o.perm_id:08x}.{self._next_exec:08x}.01.01", order=o, order_ref=o.order_ref,
                   time=datetime.now(timezone.utc), shares=qty, price=price, cum_qty=cum,
                   avg_price=o.avg_price, commission=commission,
                   realized=None if closed_pnl is None else closed_pnl - commission,
                   exchange=o.inst.venue, liquidity=liquidity)
        self._next_exec += 1
        self._execs.append(ex)
        for c in self._owners(o):
            c.send(*self._exec_msg(-1, ex))
            c.send(*self._status_msg(o))
            c.send(*self._commission_msg(ex))
        self._publish_account(o.inst)

    def _book_position(self, symbol: str, signed_qty: float, price: float) -> float | None:
        """Apply a fill to the position; the PnL it closed, or None when it only opened."""
        pos = self._positions.setdefault(symbol, _Pos())
        if pos.qty == 0 or (pos.qty > 0) == (signed_qty > 0):
            new = _round(pos.qty + signed_qty)
            pos.avg_cost = (abs(pos.qty) * pos.avg_cost + abs(signed_qty) * price) / abs(new)
            pos.qty = new
            return None
        closing = min(abs(signed_qty), abs(pos.qty))
        pnl = closing * (price - pos.avg_cost) * (1 if pos.qty > 0 else -1)
        pos.realized += pnl
        new = _round(pos.qty + signed_qty)
        if new == 0:
            pos.avg_cost = 0.0
        elif (new > 0) != (pos.qty > 0):
            pos.avg_cost = price   # flipped through zero: the rest opened at this price
        pos.qty = new
        return pnl

    def _cancel(self, o: _Order, message: str = MSG_202) -> None:
        self._finish(o, "Cancelled", "Cancelled by Trader")
        for c in self._owners(o):
            c.send(*self._status_msg(o))
            c.error(o.order_id, 202, message)

    def _cancel_order(self, conn: _Conn, f: list[str]) -> None:
        order_id = int(f[2])
        o = self._by_key.get((conn.client_id or 0, order_id))
        if o is None:
            conn.error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
        elif not o.is_open:
            conn.error(order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be "
                                        f"cancelled, state: {o.status}.")
        else:
            self._cancel(o)

    def _req_global_cancel(self, conn: _Conn, f: list[str]) -> None:
        for o in [o for o in self._orders if o.is_open]:
            self._cancel(o)

    # ------------------------------------------------------------ order messages

    def _open_order_msg(self, o: _Order) -> list:
        fa_profile = [""] if SERVER_VERSION < 177 else []
        return [
            5, o.order_id, *o.inst.contract(o.exchange),
            o.action, o.qty, o.order_type, o.lmt_price, o.aux_price, o.tif, "", o.account, "", 0,
            o.order_ref, o.client_id, o.perm_id, o.outside_rth, False, 0, "",
            "",                                    # sharesAllocation (deprecated, always sent)
            "", "", "", *fa_profile,               # faGroup, faMethod, faPercentage[, faProfile]
            "", "", "", "", "", 0, "", -1,         # modelCode .. exemptCode
            0, "", "", "", "", "",                 # auctionStrategy .. stockRangeUpper
            0, False, False, False, "", 0, False, False, "",   # displaySize .. nbboPriceCap
            0, 0, "", "", "", "",                  # parentId .. deltaNeutralAuxPrice
            False, "", "", "", "", "", "",         # continuousUpdate .. comboLegsDescrip
            0, 0, 0,                               # combo legs, order combo legs, routing params
            "", "", "", "",                        # scale sizes and increment, hedgeType
            False, "", "IB", False, False,         # optOutSmartRouting .. no delta-neutral contract
            "",                                    # algoStrategy
            False, False, o.status, *([""] * 9),   # solicited, whatIf, status, what-if margins
            "", "", "", "", "", False, False,      # commissions, warningText, randomize size/price
            0,                                     # conditions
            "", "", "", "", "", "", "", 0, "", "", "", "", False, False, False, False,
            "", "", False,                         # duration, postToAts, autoCancelParent
            "", "", "", "", "",                    # minTradeQty .. midOffsetAtHalf (>= 170)
        ]

    def _completed_order_msg(self, o: _Order) -> list:
        fa_profile = [""] if SERVER_VERSION < 177 else []
        return [
            101, *o.inst.contract(o.exchange),
            o.action, o.qty, o.order_type, o.lmt_price, o.aux_price, o.tif, "", o.account, "", 0,
            o.order_ref, o.perm_id, o.outside_rth, False, 0, "",
            "", "", "", *fa_profile,
            "", "", "", "", "", 0, "", -1,         # modelCode .. exemptCode
            "", "", "", "", "",                    # startingPrice .. stockRangeUpper
            0, False, False, "", 0, 0, "", "", "", "",   # displaySize .. deltaNeutralAuxPrice
            False, "", "", "", "",                 # continuousUpdate .. comboLegsDescrip
            0, 0, 0, "", "", "", "",               # legs, order legs, params, scale, hedgeType
            "", "IB", False, False,                # clearingAccount .. no delta-neutral contract
            "",                                    # algoStrategy
            False, o.status, False, False,         # solicited, status, randomize size/price
            0,                                     # conditions
            "", "", "", False, False, "", o.filled, 0, False, "", False, False, 0,
            o.completed_time, o.completed_status,
            "", "", "", "", "",                    # minTradeQty .. midOffsetAtHalf (>= 170)
        ]

    def _status_msg(self, o: _Order) -> list:
        return [3, o.order_id, o.status, o.filled, o.remaining, o.avg_price, o.perm_id, 0,
                o.last_fill_price, o.client_id, "", 0.0]

    def _exec_msg(self, req_id: int, ex: _Exec) -> list:
        o = ex.order
        return [11, req_id, o.order_id, *o.inst.contract(ex.exchange), ex.exec_id,
                _tws_time(ex.time), o.account, ex.exchange, "BOT" if o.action == "BUY" else "SLD",
                ex.shares, ex.price, o.perm_id, o.client_id, 0, ex.cum_qty, ex.avg_price,
                ex.order_ref, "", "", "", ex.liquidity]

    def _commission_msg(self, ex: _Exec) -> list:
        realized = UNSET_DOUBLE if ex.realized is None else round(ex.realized, 6)
        return [59, 1, ex.exec_id, ex.commission, "USD", realized, UNSET_DOUBLE, ""]

    # ------------------------------------------------------------ order queries

    def _req_open_orders(self, conn: _Conn, f: list[str]) -> None:
        self._send_open(conn, [o for o in self._orders if o.is_open and o.client_id == conn.client_id])

    def _req_all_open_orders(self, conn: _Conn, f: list[str]) -> None:
        self._send_open(conn, [o for o in self._orders if o.is_open])

    def _send_open(self, conn: _Conn, orders: list[_Order]) -> None:
        for o in orders:
            conn.send(*self._open_order_msg(o))
            conn.send(*self._status_msg(o))
        conn.send(53, 1)

    def _req_completed_orders(self, conn: _Conn, f: list[str]) -> None:
        for o in self._orders:
            if o.status in DONE_STATES:
                conn.send(*self._completed_order_msg(o))
        conn.send(102)

    def _req_executions(self, conn: _Conn, f: list[str]) -> None:
        req_id, client_id, acct, since = int(f[2]), int(f[3] or 0), f[4], _parse_filter_time(f[5])
        symbol, sec_type, exchange, side = f[6].upper(), f[7], f[8], f[9].upper()
        for ex in self._execs:
            o = ex.order
            if ((client_id and o.client_id != client_id) or (acct and o.account != acct)
                    or (since and ex.time < since) or (symbol and o.inst.symbol != symbol)
                    or (sec_type and o.inst.sec_type != sec_type)
                    or (exchange and ex.exchange != exchange)
                    or (side and side not in (o.action, "BOT" if o.action == "BUY" else "SLD"))):
                continue
            conn.send(*self._exec_msg(req_id, ex))
            conn.send(*self._commission_msg(ex))
        conn.send(55, 1, req_id)

    def _req_ids(self, conn: _Conn, f: list[str]) -> None:
        conn.send(9, 1, self._next_order_id())

    def _req_managed_accts(self, conn: _Conn, f: list[str]) -> None:
        conn.send(15, 1, self.account)

    def _req_current_time(self, conn: _Conn, f: list[str]) -> None:
        conn.send(49, 1, int(time.time()))

    # ------------------------------------------------------------ account and positions

    def _mark(self, symbol: str, pos: _Pos) -> float:
        book = self._books.get(symbol)
        if book and book.bid is not None and book.ask is not None:
            return (book.bid + book.ask) / 2
        if book and book.last is not None:
            return book.last
        return pos.avg_cost

    def _account_values(self) -> list[tuple[str, str, str]]:
        value = gross = unrealized = realized = 0.0
        for sym, pos in self._positions.items():
            mark = self._mark(sym, pos)
            value += pos.qty * mark
            gross += abs(pos.qty * mark)
            unrealized += pos.qty * (mark - pos.avg_cost)
            realized += pos.realized
        net = self._cash + value
        available = net - 0.25 * gross   # a rough Reg T style margin, enough for a fake
        money = {"NetLiquidation": net, "TotalCashValue": self._cash, "CashBalance": self._cash,
                 "GrossPositionValue": gross, "EquityWithLoanValue": net,
                 "AvailableFunds": available, "ExcessLiquidity": available,
                 "BuyingPower": 4 * available, "RealizedPnL": realized, "UnrealizedPnL": unrealized}
        return ([("AccountCode", self.account, ""), ("AccountType", "INDIVIDUAL", "")]
                + [(k, f"{v:.2f}", "USD") for k, v in money.items()])

    def _position_msg(self, symbol: str) -> list:
        inst, pos = self._instruments[symbol], self._positions[symbol]
        return [61, 3, self.account, *inst.contract(inst.primary), pos.qty, pos.avg_cost]

    def _portfolio_msg(self, symbol: str) -> list:
        inst, pos = self._instruments[symbol], self._positions[symbol]
        mark = self._mark(symbol, pos)
        return [7, 8, *inst.contract(inst.primary), pos.qty, mark, pos.qty * mark, pos.avg_cost,
                pos.qty * (mark - pos.avg_cost), pos.realized, self.account]

    def _send_account(self, conn: _Conn) -> None:
        for key, value, currency in self._account_values():
            conn.send(6, 2, key, value, currency, self.account)

    def _publish_account(self, inst: _Instrument) -> None:
        """What TWS streams after a fill to position and account-update subscribers."""
        for c in self._ready_conns():
            if c.positions_sub:
                c.send(*self._position_msg(inst.symbol))
            if c.account_sub:
                c.send(*self._portfolio_msg(inst.symbol))
                self._send_account(c)
                c.send(8, 1, datetime.now(timezone.utc).strftime("%H:%M"))

    def _req_positions(self, conn: _Conn, f: list[str]) -> None:
        conn.positions_sub = True
        for sym in self._positions:
            conn.send(*self._position_msg(sym))
        conn.send(62, 1)

    def _cancel_positions(self, conn: _Conn, f: list[str]) -> None:
        conn.positions_sub = False

    def _req_account_updates(self, conn: _Conn, f: list[str]) -> None:
        conn.account_sub = f[2] == "1"
        if not conn.account_sub:
            return
        self._send_account(conn)
        for sym in self._positions:
            conn.send(*self._portfolio_msg(sym))
        conn.send(8, 1, datetime.now(timezone.utc).strftime("%H:%M"))
        conn.send(54, 1, self.account)

    def _req_account_updates_multi(self, conn: _Conn, f: list[str]) -> None:
        req_id, model = int(f[2]), f[4]
        for key, value, currency in self._account_values():
            conn.send(73, 1, req_id, self.account, model, key, value, currency)
        conn.send(74, 1, req_id)

    def _req_account_summary(self, conn: _Conn, f: list[str]) -> None:
        req_id, tags = int(f[2]), {t.strip() for t in f[4].split(",")}
        for key, value, currency in self._account_values():
            if key in tags:
                conn.send(63, 1, req_id, self.account, key, value, currency)
        conn.send(64, 1, req_id)

    def _req_positions_multi(self, conn: _Conn, f: list[str]) -> None:
        req_id, model = int(f[2]), f[4]
        for sym, pos in self._positions.items():
            inst = self._instruments[sym]
            conn.send(71, 1, req_id, self.account, *inst.contract(inst.primary), pos.qty,
                      pos.avg_cost, model)
        conn.send(72, 1, req_id)

    # ------------------------------------------------------------ contracts and market data

    def _req_contract_details(self, conn: _Conn, f: list[str]) -> None:
        req_id, inst = int(f[2]), self._resolve(f[3:15])
        if inst is None:
            conn.error(req_id, 200, MSG_200)
            return
        exchange = "PAXOS" if inst.crypto else (f[10] or "SMART")
        valid = "PAXOS" if inst.crypto else f"SMART,{inst.primary},ARCA,BATS,IEX,ISLAND,NYSE"
        conn.send(
            10, req_id, inst.symbol, inst.sec_type, "", 0.0, "", exchange, "USD",
            inst.local_symbol, inst.trading_class, inst.trading_class, inst.con_id, inst.min_tick,
            "", "ACTIVETIM,ADJUST,ALERT,DAY,GTC,IOC,LMT,MKT,STP,STPLMT", valid, 1, 0,
            inst.long_name, inst.primary, "", "", "", "", "US/Eastern", "", "", "", "",
            0,                                     # secIdList
            1, "", "", "26", "", "" if inst.crypto else "COMMON",
            0.0001 if inst.crypto else 1.0, 1e-08 if inst.crypto else 1.0,
            0.0001 if inst.crypto else 100.0,
        )
        conn.send(52, 1, req_id)

    def _quote_ticks(self, book: _Book) -> list[tuple[int, float, float]]:
        ticks = []
        if book.bid is not None:
            ticks.append((1, book.bid, book.bid_size))
        if book.ask is not None:
            ticks.append((2, book.ask, book.ask_size))
        if book.last is not None:
            ticks.append((4, book.last, book.last_size))
        return ticks

    def _req_mkt_data(self, conn: _Conn, f: list[str]) -> None:
        req_id, inst = int(f[2]), self._resolve(f[3:15])
        if inst is None:
            conn.error(req_id, 200, MSG_200)
            return
        i = 15
        if f[5] == "BAG":
            i += 1 + 4 * int(f[15] or 0)
        i += 4 if f[i] == "1" else 1            # the delta-neutral contract, when present
        snapshot = f[i + 1] == "1"
        conn.send(81, req_id, inst.min_tick, "9c0001", 3)
        conn.send(58, 1, req_id, 1)
        book = self._books.get(inst.symbol, _Book())
        for tick_type, price, size in self._quote_ticks(book):
            conn.send(1, 6, req_id, tick_type, price, size, 0)
        if book.volume:
            conn.send(2, 6, req_id, 8, book.volume)
        if snapshot:
            conn.send(57, 1, req_id)
        else:
            conn.mkt[req_id] = inst.symbol

    def _cancel_mkt_data(self, conn: _Conn, f: list[str]) -> None:
        conn.mkt.pop(int(f[2]), None)

    def _req_tick_by_tick(self, conn: _Conn, f: list[str]) -> None:
        req_id, inst, kind = int(f[1]), self._resolve(f[2:14]), f[14]
        if inst is None:
            conn.error(req_id, 200, MSG_200)
            return
        conn.tbt[req_id] = (inst.symbol, kind)
        book = self._books.get(inst.symbol)
        if book is not None and kind in ("BidAsk", "MidPoint"):
            self._send_tbt_quote(conn, req_id, kind, book)

    def _cancel_tick_by_tick(self, conn: _Conn, f: list[str]) -> None:
        conn.tbt.pop(int(f[1]), None)

    def _send_tbt_quote(self, conn: _Conn, req_id: int, kind: str, book: _Book) -> None:
        if book.bid is None or book.ask is None:
            return
        now = int(time.time())
        if kind == "BidAsk":
            conn.send(99, req_id, 3, now, book.bid, book.ask, book.bid_size, book.ask_size, 0)
        else:
            conn.send(99, req_id, 4, now, (book.bid + book.ask) / 2)

    def _req_real_time_bars(self, conn: _Conn, f: list[str]) -> None:
        req_id, inst = int(f[2]), self._resolve(f[3:15])
        if inst is None:
            conn.error(req_id, 200, MSG_200)
            return
        conn.bars[req_id] = (inst.symbol, (f[16] or "TRADES").upper())

    def _cancel_real_time_bars(self, conn: _Conn, f: list[str]) -> None:
        conn.bars.pop(int(f[2]), None)

    def _schedule_bars(self) -> None:
        """Wake on the next 5-second boundary, as TWS's real-time bars do."""
        now = time.time()
        self._later(5 * (math.floor(now / 5) + 1) - now, self._emit_bars, 5 * math.floor(now / 5) + 5)

    def _emit_bars(self, boundary: float) -> None:
        start = int(boundary) - 5
        for conn in self._ready_conns():
            for req_id, (sym, what) in conn.bars.items():
                bar = self._bar(sym, what)
                if bar is not None:
                    conn.send(50, 3, req_id, start, *bar)
        for key, samples in self._bar_window.items():
            if samples:
                self._bar_last[key] = samples[-1][0]
        self._bar_window.clear()
        if self._loop is not None:
            self._schedule_bars()

    def _bar(self, sym: str, what: str) -> tuple | None:
        """open, high, low, close, volume, wap, count of the window, flat at the last value if idle."""
        samples = self._bar_window.get((sym, what), [])
        if not samples:
            last = self._bar_last.get((sym, what))
            return None if last is None else (last, last, last, last, 0.0, last, 0)
        prices = [p for p, _ in samples]
        volume = sum(s for _, s in samples)
        wap = sum(p * s for p, s in samples) / volume if volume else sum(prices) / len(prices)
        return prices[0], max(prices), min(prices), prices[-1], volume, wap, len(samples)

    def _sample(self, sym: str, what: str, price: float, size: float) -> None:
        self._bar_window.setdefault((sym, what), []).append((price, size))

    # ------------------------------------------------------------ market (public side)

    def _set_quote(self, symbol: str, bid: float, ask: float, bid_size: float, ask_size: float,
                   publish: bool) -> None:
        inst = self._instrument(symbol)
        if inst is None:
            raise ValueError(f"FakeTWS does not list {symbol!r}")
        book = self._books.setdefault(inst.symbol, _Book())
        ticks: list[tuple] = []
        for price_type, size_type, old, new, old_size, new_size in (
                (1, 0, book.bid, bid, book.bid_size, bid_size),
                (2, 3, book.ask, ask, book.ask_size, ask_size)):
            if new != old:
                ticks.append((1, 6, price_type, new, new_size, 0))     # tickPrice carries the size
            elif new_size != old_size:
                ticks.append((2, 6, size_type, new_size))              # only the size changed
        book.bid, book.ask, book.bid_size, book.ask_size = bid, ask, bid_size, ask_size
        self._sample(inst.symbol, "BID", bid, 0.0)
        self._sample(inst.symbol, "ASK", ask, 0.0)
        self._sample(inst.symbol, "MIDPOINT", (bid + ask) / 2, 0.0)
        if publish:
            self._publish_quote(inst.symbol, book, ticks)
        self._match_symbol(inst.symbol)

    def _withheld(self, symbol: str) -> bool:
        return any(symbol in symbols for symbols in self._farms_broken.values())

    def _publish_quote(self, symbol: str, book: _Book, ticks: list[tuple]) -> None:
        if self._withheld(symbol):
            return
        for conn in self._ready_conns():
            for req_id, sym in conn.mkt.items():
                if sym == symbol:
                    for msg_id, version, tick_type, *rest in ticks:
                        conn.send(msg_id, version, req_id, tick_type, *rest)
            for req_id, (sym, kind) in conn.tbt.items():
                if sym == symbol and kind in ("BidAsk", "MidPoint"):
                    self._send_tbt_quote(conn, req_id, kind, book)

    def _publish_trade(self, symbol: str, price: float, size: float) -> None:
        inst = self._instrument(symbol)
        if inst is None:
            raise ValueError(f"FakeTWS does not list {symbol!r}")
        book = self._books.setdefault(inst.symbol, _Book())
        book.last, book.last_size = price, size
        book.volume = _round(book.volume + size)
        self._sample(inst.symbol, "TRADES", price, size)
        if self._withheld(inst.symbol):
            return
        now = int(time.time())
        for conn in self._ready_conns():
            for req_id, sym in conn.mkt.items():
                if sym == inst.symbol:
                    conn.send(1, 6, req_id, 4, price, size, 0)
                    conn.send(2, 6, req_id, 8, book.volume)
            for req_id, (sym, kind) in conn.tbt.items():
                if sym == inst.symbol and kind in ("Last", "AllLast"):
                    conn.send(99, req_id, 1 if kind == "Last" else 2, now, price, size, 0,
                              inst.venue, "")

    # ------------------------------------------------------------ public API

    def set_quote(self, symbol: str, bid: float, ask: float, bid_size: float = 100,
                  ask_size: float = 100, *, publish: bool = True) -> None:
        """Top of book; subscribers get the ticks unless publish=False; marketable orders fill."""
        self._run(self._set_quote, symbol, float(bid), float(ask), float(bid_size),
                  float(ask_size), publish)

    def publish_trade(self, symbol: str, price: float, size: float) -> None:
        """A print: last price and size (tickPrice 4), cumulative volume (tickSize 8)."""
        self._run(self._publish_trade, symbol, float(price), float(size))

    def partial_fills(self, n: int) -> None:
        """Market orders placed from now on fill in n executions (n=1 restores whole fills)."""
        def apply() -> None:
            self._parts = max(1, int(n))
        self._run(apply)

    def reject_next_order(self, code: int = 201,
                          message: str = "Order rejected - reason: insufficient buying power",
                          *, status: str = "Cancelled") -> None:
        """The next new order gets error(orderId, code, message), then orderStatus status."""
        def apply() -> None:
            self._reject = (int(code), message, status)
        self._run(apply)

    def lose_next_order(self) -> None:
        """The next placeOrder is lost with the connection: it never reaches the venue
        (not in ``place_counts``, its ref in ``lost_orders``) and every socket is reset."""
        def apply() -> None:
            self._lose_next = True
        self._run(apply)

    def lose_next_answer(self) -> None:
        """The next placeOrder reaches the venue (a new order is placed, a modify applied)
        but every socket is reset before its answer goes out: only a read-back tells."""
        def apply() -> None:
            self._lose_answer = True
        self._run(apply)

    def fill_before_next_modify(self, qty: float = 0.0) -> None:
        """The next modify finds its order filled by ``qty`` (0: the whole remainder) just
        before it arrives: the race of a fill and a modify crossing on the wire."""
        def apply() -> None:
            self._fill_first = float(qty)
        self._run(apply)

    def drop_connections(self) -> None:
        """Reset every client socket, like a network loss; nothing queued is flushed."""
        self._run(self._close_all, True)

    def nightly_reset(self, down_s: float = 2.0, *, data_lost: bool = False) -> None:
        """Error 1100, close every socket, refuse connections for down_s, then listen again.

        Returns once the sockets are closed; the client ids connected now get 1101 (data_lost)
        or 1102 on their next connect.  Orders, executions and positions are kept."""
        self._run(self._nightly_reset, float(down_s), bool(data_lost))

    def _nightly_reset(self, down_s: float, data_lost: bool) -> None:
        code = 1101 if data_lost else 1102
        for conn in self._ready_conns():
            self._restore[conn.client_id] = code
            conn.error(-1, 1100, MSG_1100)
        self._close_all(abort=False)
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._loop is not None:
            self._later(down_s, self._relisten)

    def _relisten(self) -> None:
        async def listen() -> None:
            try:
                await self._listen()
            except OSError:
                log.exception("FakeTWS: cannot listen on port %d again", self.port)
        if self._loop is not None and self._server is None:
            task = self._loop.create_task(listen())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def send_error(self, code: int, message: str, req_id: int = -1) -> None:
        """error(req_id, code, message) to every connected client."""
        def send() -> None:
            for conn in self._ready_conns():
                conn.error(int(req_id), int(code), message)
        self._run(send)

    def break_farm(self, farm: str, symbols: list[str]) -> None:
        """Market-data farm ``farm`` broken: error 2103 to every client, and no tick of
        ``symbols`` (IB's symbols: "BTC", "AAPL") until :meth:`restore_farm`.  The books still
        move and orders still fill at them: only the data path is down."""
        def apply() -> None:
            self._farms_broken[farm] = set(symbols)
            for conn in self._ready_conns():
                conn.error(-1, 2103, f"Market data farm connection is broken:{farm}")
        self._run(apply)

    def restore_farm(self, farm: str) -> None:
        """Market-data farm ``farm`` OK again: error 2104 to every client; its ticks flow again."""
        def apply() -> None:
            self._farms_broken.pop(farm, None)
            for conn in self._ready_conns():
                conn.error(-1, 2104, f"Market data farm connection is OK:{farm}")
        self._run(apply)

    def client_id_in_use(self, client_id: int, times: int = 1) -> None:
        """The next `times` connects with this id get error 326 and a closed socket."""
        def apply() -> None:
            self._in_use[int(client_id)] = self._in_use.get(int(client_id), 0) + int(times)
        self._run(apply)

    def fill_order(self, order_ref: str, qty: float | None = None, price: float | None = None) -> None:
        """Fill a resting order now (the remainder by default, at its limit or the touch)."""
        self._run(self._fill_order, order_ref, qty, price)

    def _fill_order(self, order_ref: str, qty: float | None, price: float | None) -> None:
        o = self._find(order_ref, open_only=True)
        if o is None:
            raise KeyError(f"no open order with orderRef {order_ref!r}")
        if price is None:
            price = self._default_price(o)
        self._execute(o, o.remaining if qty is None else float(qty), float(price), liquidity=1)

    def _default_price(self, o: _Order) -> float:
        if o.order_type == "LMT" and o.lmt_price is not None:
            return o.lmt_price
        book = self._books.get(o.inst.symbol, _Book())
        for px in ((book.ask if o.action == "BUY" else book.bid), book.last, o.aux_price):
            if px is not None:
                return px
        raise ValueError(f"no price to fill {o.order_ref!r} at: pass price=")

    def cancel_order_at_venue(self, order_ref: str) -> None:
        """The venue cancels a resting order: orderStatus Cancelled and error 202 to its owner."""
        def cancel() -> None:
            o = self._find(order_ref, open_only=True)
            if o is None:
                raise KeyError(f"no open order with orderRef {order_ref!r}")
            self._cancel(o, MSG_202 + " canceled by the venue")
        self._run(cancel)

    def _find(self, order_ref: str, open_only: bool) -> _Order | None:
        for o in reversed(self._orders):
            if o.order_ref == order_ref and (o.is_open or not open_only):
                return o
        return None

    @staticmethod
    def _order_dict(o: _Order) -> dict:
        return {"order_id": o.order_id, "perm_id": o.perm_id, "client_id": o.client_id,
                "order_ref": o.order_ref, "symbol": o.inst.symbol, "action": o.action,
                "qty": o.qty, "filled": o.filled, "avg_price": o.avg_price, "status": o.status,
                "order_type": o.order_type, "lmt_price": o.lmt_price, "tif": o.tif}

    def orders(self) -> list[dict]:
        """Every order ever placed, oldest first."""
        return self._run(lambda: [self._order_dict(o) for o in self._orders])

    def order(self, order_ref: str) -> dict | None:
        """The latest order placed with this orderRef."""
        def find() -> dict | None:
            o = self._find(order_ref, open_only=False)
            return None if o is None else self._order_dict(o)
        return self._run(find)

    def positions(self) -> dict[str, float]:
        """Non-zero positions by symbol."""
        return self._run(lambda: {s: p.qty for s, p in self._positions.items() if p.qty})


# ---------------------------------------------------------------- command line

def _parse_quote(text: str) -> tuple[str, float, float]:
    symbol, _, prices = text.partition("=")
    bid, ask = (float(p) for p in prices.split(","))
    return symbol.strip().upper(), bid, ask


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m alphad.ops.fake_tws",
                                description="Serve a fake TWS / IB Gateway for ib_async on 127.0.0.1.")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    p.add_argument("--account", default="DU1234567")
    p.add_argument("--fill-delay-s", type=float, default=0.0)
    p.add_argument("--commission-per-share", type=float, default=0.005)
    p.add_argument("--min-commission", type=float, default=1.0)
    p.add_argument("--quote", action="append", default=[], help="SYMBOL=BID,ASK (repeatable)")
    args = p.parse_args(argv)

    fake = FakeTWS(args.port, account=args.account, fill_delay_s=args.fill_delay_s,
                   commission_per_share=args.commission_per_share,
                   min_commission=args.min_commission).start()
    for text in args.quote:
        fake.set_quote(*_parse_quote(text))
    print(json.dumps({"host": fake.host, "port": fake.port, "account": fake.account,
                      "server_version": SERVER_VERSION}), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(3600):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
