"""A wire-level fake of Alpaca: trading REST API, trading stream and market-data streams.

The official alpaca-py clients talk to it unchanged, only through their URL overrides::

    fake = FakeAlpaca().start()
    TradingClient(key, secret, paper=True, url_override=fake.trading_url)
    TradingStream(key, secret, paper=True, url_override=fake.trading_stream_url)
    StockDataStream(key, secret, url_override=fake.stock_data_url)
    CryptoDataStream(key, secret, url_override=fake.crypto_data_url)

One aiohttp app serves HTTP and websockets on 127.0.0.1, on an event loop of its own in a
background thread.  ``stop()`` drops every connection but keeps all state, and ``start()``
serves it again on the same port, so tests can prove what a client does across an outage.

Faked (with the JSON alpaca-py's models validate):

* ``/v2/account``, ``/v2/clock``, ``/v2/assets/{symbol}``, ``/v2/positions[/{symbol}]``;
* ``/v2/orders``: market and limit orders (day/gtc/opg/cls rest, ioc/fok take what the top of
  book shows and cancel the rest), list with status/limit/after/until/direction/side/symbols,
  get by id and by client order id, cancel one (204, 422 once terminal) and all (207);
  a reused client_order_id is answered 422 like Alpaca;
* ``/stream``: authenticate, listen, ``trade_updates`` events (new, partial_fill, fill, canceled,
  expired, rejected), sent as binary frames of JSON as Alpaca does;
* ``/v2/{feed}`` (stocks, any feed name) and ``/v1beta3/crypto/{loc}``: connected/auth/
  subscribe/unsubscribe, quotes, trades and minute bars; msgpack (Timestamp ext for ``t``)
  when the client sends ``Content-Type: application/msgpack`` as alpaca-py does, else JSON text;
* scripted trouble: HTTP errors before or after the request is carried out, slow replies,
  rejects, partial fills, dropped websockets, venue-side fills and cancels.

Not faked: fees (Alpaca charges no equity commission), buying-power checks (only scripted
rejects), market hours and extended hours (the clock always says open; day orders expire only
when ``expire_day_orders()`` is called), stop/trailing/bracket/notional orders, order replace,
closing positions by DELETE, queue position and depth (market orders take the whole quantity
at the touch), corporate actions, and event replay: events that happen while no stream
client is connected are lost, as on Alpaca; clients must reconcile by REST.

As on Alpaca, crypto positions are named without the slash on the wire (``BTCUSD``), while
orders and ``positions()`` keep the traded symbol (``BTC/USD``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any, Callable

import msgpack
from aiohttp import WSMsgType, web

OPEN = ("accepted", "new", "partially_filled")
STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
CRYPTO_CHANNELS = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
_CLOSE = object()  # a connection's queue item: close after what was queued before it
_ASSET_NS = uuid.UUID("5b3c8f0e-6f7a-4c1e-9a53-3f0d6c2a9b11")


# ---------------------------------------------------------------- formatting helpers

def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(dt: datetime | None) -> str | None:
    """Alpaca's timestamps: UTC, microseconds, a Z suffix."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _rfc3339_ns(ns: int) -> str:
    """The data streams' JSON timestamps carry nanoseconds."""
    sec, rest = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rest:09d}Z"


def _fmt(x: float | None) -> str | None:
    """Alpaca sends quantities and prices as decimal strings without trailing zeros."""
    if x is None:
        return None
    s = f"{x:.9f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _size(x: float, crypto: bool) -> float | int:
    """Stock sizes go out as integers (round lots), crypto sizes as floats."""
    return x if crypto or not float(x).is_integer() else int(x)


def _is_crypto(symbol: str) -> bool:
    return "/" in symbol


def _asset_id(symbol: str) -> str:
    """Stable per symbol, so orders and positions agree across restarts."""
    return str(uuid.uuid5(_ASSET_NS, symbol))


def _wire_symbol(symbol: str) -> str:
    """Alpaca names crypto positions without the slash."""
    return symbol.replace("/", "")


def _error(status: int, code: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def _scripted_error(status: int) -> web.Response:
    if status == 429:
        return _error(429, 42910000, "rate limit exceeded", {"Retry-After": "1"})
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "error"
    return _error(status, status * 100000 + 10000, phrase)


def _split(qty: float, n: int) -> list[float]:
    """n near-equal parts: whole shares when qty is whole, else equal fractions."""
    n = max(1, int(n))
    if float(qty).is_integer() and qty >= n:
        base, extra = divmod(int(qty), n)
        return [float(base + (1 if i >= n - extra else 0)) for i in range(n)]
    part = round(qty / n, 9)
    return [part] * (n - 1) + [round(qty - part * (n - 1), 9)]


def _parse_time(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------- state records

@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: float
    limit_price: float | None
    extended_hours: bool
    position_intent: str
    seq: int
    eligible_at: float          # time.monotonic() after which it may execute (fill_delay_s)
    parts: int                  # market orders: fills it is split into
    created_at: datetime = field(default_factory=_now)
    status: str = "accepted"
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    rested: bool = False        # not marketable once: a later fill is passive, at its limit

    @property
    def remaining(self) -> float:
        return round(self.qty - self.filled_qty, 9)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def touch(self, status: str) -> datetime:
        self.status, self.updated_at = status, _now()
        return self.updated_at

    def to_json(self) -> dict:
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at or self.created_at),
            "submitted_at": _iso(self.created_at), "filled_at": _iso(self.filled_at),
            "expired_at": _iso(self.expired_at), "canceled_at": _iso(self.canceled_at),
            "failed_at": _iso(self.failed_at), "replaced_at": None, "replaced_by": None,
            "replaces": None, "asset_id": _asset_id(self.symbol), "symbol": self.symbol,
            "asset_class": "crypto" if _is_crypto(self.symbol) else "us_equity",
            "notional": None, "qty": _fmt(self.qty), "filled_qty": _fmt(self.filled_qty),
            "filled_avg_price": _fmt(self.filled_avg_price),
            "order_class": "",  # Alpaca sends "" for simple orders; alpaca-py maps it to simple
            "order_type": self.type, "type": self.type, "side": self.side,
            "position_intent": self.position_intent, "time_in_force": self.time_in_force,
            "limit_price": _fmt(self.limit_price), "stop_price": None, "status": self.status,
            "extended_hours": self.extended_hours, "legs": None, "trail_percent": None,
            "trail_price": None, "hwm": None, "subtag": None, "source": None, "expires_at": None,
        }


@dataclass
class _Quote:
    bid: float
    ask: float
    bid_size: float
    ask_size: float


@dataclass
class _Script:
    """A scripted HTTP behaviour: fail or delay the next `count` matching requests."""
    method: str
    prefix: str
    count: int
    status: int = 0
    after: bool = False
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and self.method == method.upper() and path.startswith(self.prefix)


class _Conn:
    """One websocket client: its kind, subscriptions and an outbound queue (one writer
    task per connection keeps messages in the order they were produced)."""

    def __init__(self, kind: str, ws: web.WebSocketResponse, transport, use_msgpack: bool):
        self.kind, self.ws, self.transport, self.use_msgpack = kind, ws, transport, use_msgpack
        self.queue: asyncio.Queue = asyncio.Queue()
        self.authed = False
        self.listening = False
        channels = STOCK_CHANNELS if kind == "stock" else CRYPTO_CHANNELS
        self.subs: dict[str, list[str]] = {ch: [] for ch in channels}

    def wants(self, channel: str, symbol: str) -> bool:
        syms = self.subs.get(channel, ())
        return self.authed and (symbol in syms or "*" in syms)


# ---------------------------------------------------------------- the fake

class FakeAlpaca:
    """Alpaca's trading API, trading stream and data streams on loopback (see module doc)."""

    trading_stream_binary = True  # Alpaca's trading stream answers in binary frames

    def __init__(self, port: int = 0, *, key: str = "fake-key", secret: str = "fake-secret",
                 cash: float = 100_000.0, fill_delay_s: float = 0.0):
        self.host, self.port = "127.0.0.1", port
        self.key, self.secret, self.fill_delay_s = key, secret, fill_delay_s
        # client_order_id -> POSTs that carried it, whatever they were answered (429s,
        # scripted errors, rejects and duplicates included): "sent twice" shows as 2.
        self.post_counts: dict[str, int] = {}
        # (method, path, status), appended when a request ends (a websocket: 101, when it closes).
        self.request_log: list[tuple[str, str, int]] = []
        # Guards everything below: HTTP handlers run on the server loop, the scripting and
        # inspection methods on the caller's thread.
        self._lock = threading.RLock()
        self._cash = float(cash)
        self._start_cash = float(cash)
        self._orders: dict[str, _Order] = {}
        self._by_coid: dict[str, _Order] = {}
        self._positions: dict[str, tuple[float, float]] = {}   # symbol -> (signed qty, avg entry)
        self._quotes: dict[str, _Quote] = {}
        self._marks: dict[str, float] = {}
        self._scripts: list[_Script] = []
        self._delays: list[_Script] = []
        self._rejects: list[str] = []
        self._parts = 1
        self._seq = 0
        self._trade_id = 0
        self._account_id = str(uuid.uuid4())
        self._created_at = _now()
        self._conns: set[_Conn] = set()
        self._serving = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ urls and lifecycle

    @property
    def trading_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def trading_stream_url(self) -> str:
        return f"ws://{self.host}:{self.port}/stream"

    @property
    def stock_data_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v2/iex"

    @property
    def crypto_data_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1beta3/crypto/us"

    def start(self) -> "FakeAlpaca":
        """Serve on a thread of its own; after stop(), serve the same state on the same port."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready, failure = threading.Event(), []
        thread = threading.Thread(target=self._serve, args=(loop, ready, failure),
                                  name=f"fake-alpaca:{self.port}", daemon=True)
        thread.start()
        ready.wait(30)
        if failure:
            thread.join(5)
            raise failure[0]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Drop every connection and stop serving; orders, positions, cash and ids stay."""
        if self._thread is None:
            return
        loop, thread = self._loop, self._thread
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = None

    def __enter__(self) -> "FakeAlpaca":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event, failure: list) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup(loop))
        except BaseException as e:  # noqa: BLE001 - handed to start() in the caller's thread
            failure.append(e)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self, loop: asyncio.AbstractEventLoop) -> None:
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app)
        # Short shutdown: a scripted slow reply must not hold stop() for a minute.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]  # port 0 becomes the one picked, kept for restarts
        self._runner = runner
        with self._lock:
            self._serving, self._loop = True, loop
            self._resume_locked(loop)

    def _resume_locked(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a (re)start: execute what became due while stopped, arm timers for the rest."""
        self._match_locked()
        now = time.monotonic()
        for o in self._open_orders():
            if o.eligible_at > now:
                loop.call_later(o.eligible_at - now, self._match_now)

    async def _shutdown(self) -> None:
        with self._lock:
            self._serving = False
            conns = list(self._conns)
        for c in conns:
            self._abort(c)
        await self._runner.cleanup()
        self._runner = None

    def _abort(self, conn: _Conn) -> None:
        """Drop the TCP connection without a close handshake, like a network failure."""
        if conn.transport is not None:
            conn.transport.abort()

    # ------------------------------------------------------------ market and scripting API

    def set_quote(self, symbol: str, bid: float, ask: float, bid_size: float = 100.0,
                  ask_size: float = 100.0, *, publish: bool = True) -> None:
        """Set the top of book; resting orders it makes marketable fill now."""
        with self._lock:
            self._quotes[symbol] = _Quote(float(bid), float(ask), float(bid_size), float(ask_size))
            if bid > 0 and ask > 0:
                self._marks[symbol] = (bid + ask) / 2
            if publish:
                self._publish("quotes", self._quote_msg(symbol))
            self._match_locked()

    def publish_trade(self, symbol: str, price: float, size: float) -> None:
        """A print on the data stream (it marks positions; it does not execute orders)."""
        with self._lock:
            self._trade_id += 1
            crypto = _is_crypto(symbol)
            msg = {"T": "t", "S": symbol, "i": self._trade_id, "p": float(price),
                   "s": _size(size, crypto), "t": time.time_ns()}
            if crypto:
                msg["tks"] = "B"
            else:
                msg.update({"x": "V", "c": ["@"], "z": "C"})
            self._marks[symbol] = float(price)
            self._publish("trades", msg)

    def publish_bar(self, symbol: str, o: float, h: float, l: float, c: float, v: float,
                    ts: datetime | float | None = None) -> None:
        """A minute bar; ts (datetime or epoch seconds) defaults to the minute just ended."""
        if ts is None:
            ts_ns = (time.time_ns() // 60_000_000_000 - 1) * 60_000_000_000
        elif isinstance(ts, datetime):
            ts_ns = int((ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()) * 10**9
        else:
            ts_ns = int(float(ts) * 1e9)
        msg = {"T": "b", "S": symbol, "o": float(o), "h": float(h), "l": float(l), "c": float(c),
               "v": _size(v, _is_crypto(symbol)), "t": ts_ns, "n": 1,
               "vw": round((float(h) + float(l) + float(c)) / 3, 6)}
        with self._lock:
            self._publish("bars", msg)

    def fail_next(self, method: str, path_prefix: str, status: int, *, count: int = 1,
                  after_processing: bool = False) -> None:
        """Answer the next `count` matching requests with `status`; with after_processing the
        request is carried out first (the order exists and fills) and the client still fails."""
        with self._lock:
            self._scripts.append(_Script(method.upper(), path_prefix, count, status, after_processing))

    def delay_next(self, method: str, path_prefix: str, seconds: float, *, count: int = 1) -> None:
        """Carry out the next `count` matching requests now but reply `seconds` later."""
        with self._lock:
            self._delays.append(_Script(method.upper(), path_prefix, count, seconds=seconds))

    def reject_next_order(self, message: str = "insufficient buying power", *, count: int = 1) -> None:
        """The next `count` POST /v2/orders get Alpaca's 403; nothing is created."""
        with self._lock:
            self._rejects.extend([message] * count)

    def partial_fills(self, n: int) -> None:
        """Market orders submitted from now on fill in n near-equal parts (1: whole)."""
        with self._lock:
            self._parts = max(1, int(n))

    def drop_streams(self) -> None:
        """Abort every websocket (trading and data); clients must reconnect."""
        loop = self._loop
        if loop is None:
            return

        async def drop() -> None:
            with self._lock:
                conns = list(self._conns)
            for c in conns:
                self._abort(c)

        asyncio.run_coroutine_threadsafe(drop(), loop).result(10)

    def fill_order(self, client_order_id: str, qty: float | None = None,
                   price: float | None = None) -> None:
        """Fill an open order now (qty None: all that remains; price None: its limit)."""
        with self._lock:
            o = self._open_order(client_order_id)
            if price is None:
                price = o.limit_price if o.limit_price is not None else self._touch(o)
            if price is None:
                raise ValueError(f"{client_order_id}: no price (market order and no quote)")
            self._route_locked(o, force=True)
            self._fill_locked(o, o.remaining if qty is None else float(qty), float(price))

    def cancel_order_at_venue(self, client_order_id: str) -> None:
        """The venue cancels an open order (trade_updates "canceled")."""
        with self._lock:
            self._end_locked(self._open_order(client_order_id), "canceled")

    def reject_order_at_venue(self, client_order_id: str) -> None:
        """The venue rejects an accepted order after the fact (trade_updates "rejected")."""
        with self._lock:
            self._end_locked(self._open_order(client_order_id), "rejected")

    def expire_day_orders(self) -> None:
        """The session ends: every open day order expires (trade_updates "expired")."""
        with self._lock:
            for o in self._open_orders():
                if o.time_in_force in ("day", "opg", "cls"):
                    self._end_locked(o, "expired")

    # ------------------------------------------------------------ inspection

    def orders(self) -> list[dict]:
        with self._lock:
            return [o.to_json() for o in self._orders.values()]

    def order(self, client_order_id: str) -> dict | None:
        with self._lock:
            o = self._by_coid.get(client_order_id)
            return o.to_json() if o else None

    def positions(self) -> dict[str, float]:
        with self._lock:
            return {s: q for s, (q, _) in self._positions.items()}

    def cash(self) -> float:
        with self._lock:
            return self._cash

    def trade_listeners(self) -> int:
        """Trading-stream connections listening to trade_updates now."""
        with self._lock:
            return sum(1 for c in self._conns if c.kind == "trading" and c.listening)

    def data_subscribers(self, symbol: str, channel: str = "quotes") -> int:
        """Data-stream connections that would receive `channel` messages for `symbol`."""
        with self._lock:
            return sum(1 for c in self._conns if c.kind != "trading" and c.wants(channel, symbol))

    # ------------------------------------------------------------ order engine (lock held)

    def _open_orders(self) -> list[_Order]:
        return [o for o in self._orders.values() if o.is_open]

    def _open_order(self, client_order_id: str) -> _Order:
        o = self._by_coid.get(client_order_id)
        if o is None:
            raise KeyError(client_order_id)
        if not o.is_open:
            raise ValueError(f"{client_order_id} is {o.status}")
        return o

    def _touch(self, o: _Order) -> float | None:
        """The price an aggressive order takes: the ask to buy, the bid to sell."""
        q = self._quotes.get(o.symbol)
        if q is None:
            return None
        px = q.ask if o.side == "buy" else q.bid
        return px if px > 0 else None

    def _intent(self, symbol: str, side: str) -> str:
        held = self._positions.get(symbol, (0.0, 0.0))[0]
        if side == "buy":
            return "buy_to_close" if held < 0 else "buy_to_open"
        return "sell_to_close" if held > 0 else "sell_to_open"

    def _create_locked(self, body: dict, coid: str) -> _Order:
        self._seq += 1
        o = _Order(
            id=str(uuid.uuid4()), client_order_id=coid, symbol=body["symbol"], side=body["side"],
            type=body["type"], time_in_force=body["time_in_force"], qty=float(body["qty"]),
            limit_price=float(body["limit_price"]) if body.get("limit_price") is not None else None,
            extended_hours=bool(body.get("extended_hours") or False),
            position_intent=body.get("position_intent") or self._intent(body["symbol"], body["side"]),
            seq=self._seq, eligible_at=time.monotonic() + self.fill_delay_s,
            parts=self._parts if body["type"] == "market" else 1)
        self._orders[o.id] = o
        self._by_coid[coid] = o
        return o

    def _route_locked(self, o: _Order, force: bool = False) -> None:
        """accepted -> new.  A market order waits in "accepted" until the symbol has a quote,
        as Alpaca holds orders it cannot route yet."""
        if o.status != "accepted":
            return
        if o.type == "market" and self._touch(o) is None and not force:
            return
        o.touch("new")
        self._emit("new", o)

    def _match_now(self) -> None:
        with self._lock:
            self._match_locked()

    def _match_locked(self) -> None:
        """Execute every open order that is due and marketable, oldest first."""
        now = time.monotonic()
        for o in self._open_orders():
            if now + 1e-3 < o.eligible_at:
                continue
            self._route_locked(o)
            if o.status != "accepted":
                self._execute_locked(o)

    def _execute_locked(self, o: _Order) -> None:
        px = self._touch(o)
        if o.type == "market":
            if px is not None:
                for part in _split(o.remaining, o.parts):
                    self._fill_locked(o, part, px)
            return
        q = self._quotes.get(o.symbol)
        marketable = px is not None and (px <= o.limit_price if o.side == "buy" else px >= o.limit_price)
        immediate = o.time_in_force in ("ioc", "fok")
        if marketable:
            qty = o.remaining
            if immediate:  # ioc/fok take only what the top of book shows
                qty = min(qty, q.ask_size if o.side == "buy" else q.bid_size)
            if not (o.time_in_force == "fok" and qty < o.remaining):
                self._fill_locked(o, qty, o.limit_price if o.rested else px)
        if immediate and o.is_open:
            self._end_locked(o, "canceled")
        elif not marketable:
            o.rested = True

    def _fill_locked(self, o: _Order, qty: float, px: float) -> None:
        qty = round(min(qty, o.remaining), 9)
        if qty <= 0:
            return
        done = o.filled_qty
        o.filled_avg_price = ((o.filled_avg_price or 0.0) * done + px * qty) / (done + qty)
        o.filled_qty = round(done + qty, 9)
        signed = qty if o.side == "buy" else -qty
        self._cash -= signed * px
        held = self._move_position(o.symbol, signed, px)
        self._marks[o.symbol] = px
        full = o.remaining <= 0
        t = o.touch("filled" if full else "partially_filled")
        if full:
            o.filled_at = t
        self._emit("fill" if full else "partial_fill", o, t,
                   price=_fmt(px), qty=_fmt(qty), position_qty=_fmt(held))

    def _move_position(self, symbol: str, signed: float, px: float) -> float:
        """Signed position after a fill; the average entry moves only when the position grows
        (or restarts at px when it flips side)."""
        held, avg = self._positions.get(symbol, (0.0, 0.0))
        new = round(held + signed, 9)
        if new == 0:
            self._positions.pop(symbol, None)
            return 0.0
        if held == 0 or (held > 0) == (signed > 0):
            avg = (abs(held) * avg + abs(signed) * px) / abs(new)
        elif (held > 0) != (new > 0):
            avg = px
        self._positions[symbol] = (new, avg)
        return new

    def _end_locked(self, o: _Order, status: str) -> None:
        t = o.touch(status)
        if status == "canceled":
            o.canceled_at = t
        elif status == "expired":
            o.expired_at = t
        else:
            o.failed_at = t
        self._emit(status, o, t)

    # ------------------------------------------------------------ stream fan-out

    def _emit(self, event: str, o: _Order, t: datetime | None = None, **fill: Any) -> None:
        """A trade_updates event to every listening connection (dropped when none listens:
        Alpaca does not replay)."""
        data = {"event": event, "execution_id": str(uuid.uuid4()), "order": o.to_json(),
                "timestamp": _iso(t or _now()), **fill}
        self._to_loop(self._fanout_trading, json.dumps({"stream": "trade_updates", "data": data}))

    def _publish(self, channel: str, msg: dict) -> None:
        self._to_loop(self._fanout_data, "crypto" if _is_crypto(msg["S"]) else "stock", channel, msg)

    def _to_loop(self, fn: Callable, *args: Any) -> None:
        # Called with the lock held, so callbacks queue in the order events happened.
        if self._serving:
            try:
                self._loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop closed under us: nobody is connected anyway
                pass

    def _fanout_trading(self, text: str) -> None:
        for c in list(self._conns):
            if c.kind == "trading" and c.listening:
                c.queue.put_nowait(text)

    def _fanout_data(self, kind: str, channel: str, msg: dict) -> None:
        for c in list(self._conns):
            if c.kind == kind and c.wants(channel, msg["S"]):
                c.queue.put_nowait(msg)

    async def _pump(self, c: _Conn) -> None:
        """The connection's only writer.  Data messages go out in arrays, batching whatever
        is queued (as Alpaca does); trading messages one per frame."""
        try:
            while True:
                item = await c.queue.get()
                if item is _CLOSE:
                    await c.ws.close()
                    return
                if c.kind == "trading":
                    await self._send_trading(c, item)
                    continue
                batch = [item]
                while not c.queue.empty() and len(batch) < 1000:
                    nxt = c.queue.get_nowait()
                    if nxt is _CLOSE:
                        c.queue.put_nowait(_CLOSE)
                        break
                    batch.append(nxt)
                await self._send_data(c, batch)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def _send_trading(self, c: _Conn, text: str) -> None:
        if self.trading_stream_binary:
            await c.ws.send_bytes(text.encode())
        else:
            await c.ws.send_str(text)

    async def _send_data(self, c: _Conn, batch: list[dict]) -> None:
        if c.use_msgpack:
            out = [dict(m, t=msgpack.Timestamp.from_unix_nano(m["t"])) if "t" in m else m for m in batch]
            await c.ws.send_bytes(msgpack.packb(out))
        else:
            out = [dict(m, t=_rfc3339_ns(m["t"])) if "t" in m else m for m in batch]
            await c.ws.send_str(json.dumps(out))

    # ------------------------------------------------------------ data-stream messages

    def _quote_msg(self, symbol: str) -> dict:
        q, crypto = self._quotes[symbol], _is_crypto(symbol)
        msg = {"T": "q", "S": symbol, "bp": q.bid, "bs": _size(q.bid_size, crypto),
               "ap": q.ask, "as": _size(q.ask_size, crypto), "t": time.time_ns()}
        if not crypto:
            msg.update({"bx": "V", "ax": "V", "c": ["R"], "z": "C"})
        return msg

    # ------------------------------------------------------------ HTTP plumbing

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v2/account", self._get_account)
        r.add_get("/v2/clock", self._get_clock)
        r.add_get("/v2/assets/{symbol:.+}", self._get_asset)
        r.add_post("/v2/orders", self._post_order)
        r.add_get("/v2/orders", self._get_orders)
        r.add_delete("/v2/orders", self._cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self._get_order_by_coid)
        r.add_get("/v2/orders/{order_id}", self._get_order)
        r.add_delete("/v2/orders/{order_id}", self._cancel_one)
        r.add_get("/v2/positions", self._get_positions)
        r.add_get("/v2/positions/{symbol:.+}", self._get_position)
        r.add_get("/stream", self._ws_trading)
        r.add_get("/v1beta3/crypto/{loc}", self._ws_crypto)
        r.add_get("/v2/{feed}", self._ws_stock)  # last: any other /v2/x is a stock feed

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        status = 500
        try:
            resp = await self._handle(request, handler)
            status = resp.status
            return resp
        finally:
            with self._lock:
                self.request_log.append((request.method, request.path, status))

    async def _handle(self, request: web.Request, handler) -> web.StreamResponse:
        method, path = request.method, request.path
        if method == "POST" and path == "/v2/orders":
            await self._count_post(request)
        if not _is_upgrade(request) and not self._authorized(request):
            return _error(401, 40110000, "request is not authorized")
        with self._lock:
            fail = self._take(self._scripts, method, path)
            delay = self._take(self._delays, method, path)
        if fail is not None and not fail.after:
            return _scripted_error(fail.status)
        try:
            resp = await handler(request)
        except web.HTTPException as e:  # unknown route or method: Alpaca's JSON error shape
            resp = _error(e.status, e.status * 100000 + 10000, e.reason.lower())
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        return _scripted_error(fail.status) if fail is not None else resp

    @staticmethod
    def _take(scripts: list[_Script], method: str, path: str) -> _Script | None:
        for s in scripts:
            if s.matches(method, path):
                s.count -= 1
                if s.count <= 0:
                    scripts.remove(s)
                return s
        return None

    async def _count_post(self, request: web.Request) -> None:
        """Every POST that carried a client_order_id counts, whatever its answer."""
        body = await _json_body(request)
        coid = body.get("client_order_id") if isinstance(body, dict) else None
        if coid:
            with self._lock:
                self.post_counts[coid] = self.post_counts.get(coid, 0) + 1

    def _authorized(self, request: web.Request) -> bool:
        h = request.headers
        return h.get("APCA-API-KEY-ID") == self.key and h.get("APCA-API-SECRET-KEY") == self.secret

    # ------------------------------------------------------------ REST handlers

    async def _get_account(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response(self._account_locked())

    def _account_locked(self) -> dict:
        long_mv = sum(q * self._mark(s, a) for s, (q, a) in self._positions.items() if q > 0)
        short_mv = sum(q * self._mark(s, a) for s, (q, a) in self._positions.items() if q < 0)
        equity = self._cash + long_mv + short_mv
        bp = _fmt(max(self._cash, 0.0))
        money = lambda x: _fmt(round(x, 2))  # noqa: E731
        return {
            "id": self._account_id, "account_number": "PA" + self._account_id[:8].upper(),
            "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
            "buying_power": bp, "regt_buying_power": bp, "daytrading_buying_power": "0",
            "effective_buying_power": bp, "non_marginable_buying_power": bp,
            "options_buying_power": bp, "bod_dtbp": "0", "cash": money(self._cash),
            "accrued_fees": "0", "pending_transfer_in": "0", "pending_transfer_out": "0",
            "portfolio_value": money(equity), "pattern_day_trader": False,
            "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
            "created_at": _iso(self._created_at), "trade_suspended_by_user": False,
            "multiplier": "1", "shorting_enabled": True, "equity": money(equity),
            "last_equity": money(self._start_cash), "long_market_value": money(long_mv),
            "short_market_value": money(short_mv), "position_market_value": money(long_mv - short_mv),
            "initial_margin": "0", "maintenance_margin": "0", "last_maintenance_margin": "0",
            "sma": "0", "daytrade_count": 0, "balance_asof": _now().date().isoformat(),
            "crypto_tier": 1, "options_trading_level": 0, "options_approved_level": 0,
            "intraday_adjustments": "0", "pending_reg_taf_fees": "0",
        }

    def _mark(self, symbol: str, avg: float) -> float:
        return self._marks.get(symbol, avg)

    async def _get_clock(self, request: web.Request) -> web.Response:
        # Always open: the fake has no session calendar (see module doc).
        now = _now()
        today = now.replace(hour=20, minute=0, second=0, microsecond=0)
        next_close = today if today > now else today + timedelta(days=1)
        next_open = (now + timedelta(days=1)).replace(hour=13, minute=30, second=0, microsecond=0)
        return web.json_response({"timestamp": _iso(now), "is_open": True,
                                  "next_open": _iso(next_open), "next_close": _iso(next_close)})

    async def _get_asset(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        crypto = _is_crypto(symbol)
        return web.json_response({
            "id": _asset_id(symbol), "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "NASDAQ", "symbol": symbol, "name": symbol,
            "status": "active", "tradable": True, "marginable": not crypto,
            "shortable": not crypto, "easy_to_borrow": not crypto, "fractionable": True,
            "maintenance_margin_requirement": 30, "attributes": [],
        })

    async def _post_order(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        with self._lock:
            if self._rejects:
                return _error(403, 40310000, self._rejects.pop(0))
            problem = _invalid_order(body)
            if problem:
                return _error(422, 40010001, problem)
            coid = body.get("client_order_id") or str(uuid.uuid4())
            if coid in self._by_coid:
                return _error(422, 40010001, "client_order_id must be unique")
            o = self._create_locked(body, coid)
            reply = o.to_json()  # as accepted, before the "new" event below
            self._route_locked(o)
            # Execution happens on the loop after fill_delay_s, never inside this reply.
            self._loop.call_later(self.fill_delay_s, self._match_now)
        return web.json_response(reply)

    async def _get_orders(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status", "open")
        try:
            limit = min(int(q.get("limit", 50)), 500)
        except ValueError:
            return _error(422, 40010001, "invalid limit")
        after, until = _parse_time(q.get("after")), _parse_time(q.get("until"))
        symbols = {s for s in q.get("symbols", "").split(",") if s}
        with self._lock:
            rows = [o for o in self._orders.values()
                    if (status == "all" or (status == "open") == o.is_open)
                    and (not symbols or o.symbol in symbols)
                    and (not q.get("side") or o.side == q["side"])
                    and (after is None or o.created_at > after)
                    and (until is None or o.created_at < until)]
            rows.sort(key=lambda o: o.seq, reverse=q.get("direction", "desc") != "asc")
            return web.json_response([o.to_json() for o in rows[:limit]])

    async def _get_order(self, request: web.Request) -> web.Response:
        with self._lock:
            o = self._orders.get(request.match_info["order_id"])
            return web.json_response(o.to_json()) if o else _order_not_found()

    async def _get_order_by_coid(self, request: web.Request) -> web.Response:
        with self._lock:
            o = self._by_coid.get(request.query.get("client_order_id", ""))
            return web.json_response(o.to_json()) if o else _order_not_found()

    async def _cancel_one(self, request: web.Request) -> web.Response:
        with self._lock:
            o = self._orders.get(request.match_info["order_id"])
            if o is None:
                return _order_not_found()
            if not o.is_open:
                return _error(422, 42210000, f'order is already in "{o.status}" state')
            self._end_locked(o, "canceled")
        return web.Response(status=204)

    async def _cancel_all(self, request: web.Request) -> web.Response:
        with self._lock:
            out = []
            for o in self._open_orders():
                self._end_locked(o, "canceled")
                out.append({"id": o.id, "status": 200, "body": o.to_json()})
        return web.json_response(out, status=207)

    async def _get_positions(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response([self._position_json(s) for s in sorted(self._positions)])

    async def _get_position(self, request: web.Request) -> web.Response:
        want = request.match_info["symbol"]
        with self._lock:
            for s in self._positions:
                if want in (s, _wire_symbol(s), _asset_id(s)):
                    return web.json_response(self._position_json(s))
        return _error(404, 40410000, "position does not exist")

    def _position_json(self, symbol: str) -> dict:
        qty, avg = self._positions[symbol]
        price, crypto = self._mark(symbol, avg), _is_crypto(symbol)
        cost, value = qty * avg, qty * price
        pl = value - cost
        plpc = pl / abs(cost) if cost else 0.0
        held = sum(o.remaining for o in self._open_orders()
                   if o.symbol == symbol and (o.side == "sell") == (qty > 0))
        available = max(qty - held, 0.0) if qty > 0 else min(qty + held, 0.0)
        return {
            "asset_id": _asset_id(symbol), "symbol": _wire_symbol(symbol),
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "asset_class": "crypto" if crypto else "us_equity", "asset_marginable": not crypto,
            "qty": _fmt(qty), "qty_available": _fmt(available), "avg_entry_price": _fmt(avg),
            "side": "long" if qty > 0 else "short", "market_value": _fmt(round(value, 6)),
            "cost_basis": _fmt(round(cost, 6)), "unrealized_pl": _fmt(round(pl, 6)),
            "unrealized_plpc": _fmt(round(plpc, 9)), "unrealized_intraday_pl": _fmt(round(pl, 6)),
            "unrealized_intraday_plpc": _fmt(round(plpc, 9)), "current_price": _fmt(price),
            "lastday_price": _fmt(avg), "change_today": _fmt(round((price - avg) / avg, 9) if avg else 0),
        }

    # ------------------------------------------------------------ websocket handlers

    async def _ws_trading(self, request: web.Request) -> web.StreamResponse:
        return await self._ws_session(request, "trading")

    async def _ws_stock(self, request: web.Request) -> web.StreamResponse:
        return await self._ws_session(request, "stock")

    async def _ws_crypto(self, request: web.Request) -> web.StreamResponse:
        return await self._ws_session(request, "crypto")

    async def _ws_session(self, request: web.Request, kind: str) -> web.StreamResponse:
        if not _is_upgrade(request):
            return _error(404, 40410000, "endpoint not found")
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        # alpaca-py's data streams ask for msgpack with this header; Alpaca answers in kind.
        use_msgpack = request.headers.get("Content-Type", "").startswith("application/msgpack")
        conn = _Conn(kind, ws, request.transport, use_msgpack)
        with self._lock:
            self._conns.add(conn)
        pump = asyncio.get_running_loop().create_task(self._pump(conn))
        try:
            if kind != "trading":
                conn.queue.put_nowait({"T": "success", "msg": "connected"})
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_client_message(conn, msg)
        finally:
            with self._lock:
                self._conns.discard(conn)
            pump.cancel()
        return ws

    def _on_client_message(self, conn: _Conn, msg) -> None:
        try:
            data = msgpack.unpackb(msg.data) if msg.type == WSMsgType.BINARY and conn.kind != "trading" \
                else json.loads(msg.data)
        except Exception:  # noqa: BLE001 - any undecodable frame gets the protocol's error
            data = None
        if not isinstance(data, dict):
            self._reply_error(conn, 400, "invalid syntax")
        elif conn.kind == "trading":
            self._on_trading_action(conn, data)
        else:
            self._on_data_action(conn, data)

    def _reply_error(self, conn: _Conn, code: int, text: str) -> None:
        if conn.kind == "trading":
            conn.queue.put_nowait(json.dumps({"stream": "listening", "data": {"error": text}}))
        else:
            conn.queue.put_nowait({"T": "error", "code": code, "msg": text})

    def _on_trading_action(self, conn: _Conn, data: dict) -> None:
        action, body = data.get("action"), data.get("data") or {}
        if action in ("authenticate", "auth"):
            ok = body.get("key_id") == self.key and body.get("secret_key") == self.secret
            conn.authed = ok
            reply = {"status": "authorized" if ok else "unauthorized", "action": "authenticate"}
            conn.queue.put_nowait(json.dumps({"stream": "authorization", "data": reply}))
            if not ok:
                conn.queue.put_nowait(_CLOSE)
        elif not conn.authed:
            reply = {"status": "unauthorized", "action": action}
            conn.queue.put_nowait(json.dumps({"stream": "authorization", "data": reply}))
        elif action == "listen":
            streams = [s for s in body.get("streams") or [] if s == "trade_updates"]
            with self._lock:
                conn.listening = bool(streams)
                conn.queue.put_nowait(json.dumps({"stream": "listening", "data": {"streams": streams}}))
        else:
            self._reply_error(conn, 400, "unrecognized action")

    def _on_data_action(self, conn: _Conn, data: dict) -> None:
        action = data.get("action")
        if action == "auth":
            ok = data.get("key") == self.key and data.get("secret") == self.secret
            conn.authed = ok
            if ok:
                conn.queue.put_nowait({"T": "success", "msg": "authenticated"})
            else:
                conn.queue.put_nowait({"T": "error", "code": 402, "msg": "auth failed"})
                conn.queue.put_nowait(_CLOSE)
        elif not conn.authed:
            self._reply_error(conn, 401, "not authenticated")
        elif action in ("subscribe", "unsubscribe"):
            with self._lock:
                self._resubscribe(conn, data, action == "subscribe")
                conn.queue.put_nowait(self._subscription_msg(conn))
        else:
            self._reply_error(conn, 400, "invalid syntax")

    @staticmethod
    def _resubscribe(conn: _Conn, data: dict, add: bool) -> None:
        for ch, syms in conn.subs.items():
            for s in data.get(ch) or []:
                if add and s not in syms:
                    syms.append(s)
                elif not add and s in syms:
                    syms.remove(s)

    @staticmethod
    def _subscription_msg(conn: _Conn) -> dict:
        msg = {"T": "subscription", **{ch: list(syms) for ch, syms in conn.subs.items()}}
        if conn.kind == "stock":  # Alpaca subscribes corrections and cancel errors with trades
            msg["corrections"] = list(conn.subs["trades"])
            msg["cancelErrors"] = list(conn.subs["trades"])
        return msg


# ---------------------------------------------------------------- request helpers

def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        return None


def _order_not_found() -> web.Response:
    return _error(404, 40410000, "order not found")


def _invalid_order(body: Any) -> str | None:
    """Alpaca's 422 message for an order the fake cannot take, or None."""
    if not isinstance(body, dict):
        return "invalid order request"
    if not body.get("symbol"):
        return "symbol is required"
    if body.get("side") not in ("buy", "sell"):
        return "side must be buy or sell"
    if body.get("type") not in ("market", "limit"):
        return f"order type {body.get('type')!r} is not supported by the fake (market, limit)"
    if body.get("time_in_force") not in ("day", "gtc", "ioc", "fok", "opg", "cls"):
        return "invalid time_in_force"
    if body.get("qty") is None:
        return "qty is required (notional orders are not supported by the fake)"
    try:
        qty = float(body["qty"])
        limit = None if body.get("limit_price") is None else float(body["limit_price"])
    except (TypeError, ValueError):
        return "invalid qty or limit_price"
    if not (qty > 0 and math.isfinite(qty)):
        return "qty must be > 0"
    if body["type"] == "limit" and (limit is None or not limit > 0):
        return "limit_price is required for limit orders"
    return None


# ---------------------------------------------------------------- command line

def _parse_quotes(items: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for item in items:
        for part in item.split(";"):
            sym, _, prices = part.partition("=")
            bid, _, ask = prices.partition(",")
            out[sym.strip()] = (float(bid), float(ask or bid))
    return out


class _RandomWalk:
    """Synthetic market for demos and benchmarks: a quote and a trade per symbol per tick,
    a minute bar per symbol each minute."""

    def __init__(self, fake: FakeAlpaca, symbols: list[str], start: dict[str, tuple[float, float]]):
        self.fake = fake
        self.mid = {s: (sum(start[s]) / 2 if s in start else 100.0) for s in symbols}
        self.bar: dict[str, list[float]] = {}
        self.minute = int(time.time() // 60)

    def tick(self) -> None:
        for s, mid in self.mid.items():
            mid *= math.exp(random.gauss(0.0, 2e-4))
            self.mid[s] = mid
            half = max(0.005, mid * 5e-5)
            self.fake.set_quote(s, round(mid - half, 2), round(mid + half, 2))
            self.fake.publish_trade(s, round(mid, 2), 1 if not _is_crypto(s) else 0.01)
            b = self.bar.setdefault(s, [mid, mid, mid, mid, 0.0])
            b[1], b[2], b[3], b[4] = max(b[1], mid), min(b[2], mid), mid, b[4] + 1
        minute = int(time.time() // 60)
        if minute != self.minute:
            for s, (o, h, l, c, v) in self.bar.items():
                self.fake.publish_bar(s, o, h, l, c, v, ts=self.minute * 60.0)
            self.bar, self.minute = {}, minute


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m alphad.ops.fake_alpaca",
                                description="Serve a fake Alpaca (trading API, trading and data streams).")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    p.add_argument("--key", default="fake-key")
    p.add_argument("--secret", default="fake-secret")
    p.add_argument("--cash", type=float, default=100_000.0)
    p.add_argument("--fill-delay-s", type=float, default=0.0)
    p.add_argument("--symbols", default="", help="comma list with a synthetic random-walk market")
    p.add_argument("--quote", action="append", default=[],
                   help="SYMBOL=BID,ASK starting quote (repeatable)")
    p.add_argument("--tick-ms", type=float, default=100.0, help="synthetic market tick (0: none)")
    args = p.parse_args(argv)

    fake = FakeAlpaca(args.port, key=args.key, secret=args.secret, cash=args.cash,
                      fill_delay_s=args.fill_delay_s).start()
    quotes = _parse_quotes(args.quote)
    for sym, (bid, ask) in quotes.items():
        fake.set_quote(sym, bid, ask)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    walk = _RandomWalk(fake, symbols, quotes) if symbols and args.tick_ms > 0 else None
    print(json.dumps({"trading_url": fake.trading_url, "trading_stream_url": fake.trading_stream_url,
                      "stock_data_url": fake.stock_data_url, "crypto_data_url": fake.crypto_data_url,
                      "key": fake.key, "secret": fake.secret}), flush=True)

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    period = args.tick_ms / 1000 if walk else 3600.0
    while not done.wait(period):
        if walk:
            walk.tick()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
