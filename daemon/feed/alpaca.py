"""Alpaca's live market data (``feed.source: alpaca``) as md records.

:class:`AlpacaMarketData` runs alpaca-py's ``StockDataStream`` and/or ``CryptoDataStream``
(raw messages: no pydantic models on the way) on a uvloop event loop in a background thread
of the feed process.  Each quote, trade and one-minute bar becomes one ``MD_DTYPE`` record
at receipt:

* ``instrument``: the symbol's index in the universe (``BTC/USD``-style symbols go to the
  crypto stream, every other to the stock stream);
* ``t_origin = time.monotonic_ns()`` and ``ts_recv = time.time_ns()`` when the handler
  runs (after alpaca-py parsed the frame: the feed's ingress); ``ts_exch`` the message's
  own time (ns since the epoch), a bar's being its close (start + 60 s: a bar is known at
  its close), with ``bar_ns`` = 60 s, ``open_px``/``high_px``/``low_px``, ``last_px`` the
  close and ``last_sz`` the volume; a crypto trade's taker side is its ``aggressor``;
* ``seq`` is left 0: the feed step numbers what it emits.

Records wait in a bounded buffer behind a lock until the feed's loop takes them
(:meth:`drain`; :class:`~alphad.daemon.feed.core.LiveFeedCore`); when it is full the oldest
go first and are counted (``dropped``).  ``notify`` (set by the shell) is called after each
record is buffered: it rings the feed process's doorbell.  alpaca-py reconnects and
resubscribes by itself (with backoff); each connection after the first counts as a
reconnect.
"""
from __future__ import annotations

import asyncio
import math
import os
import re
import sys
import threading
import time
import warnings
from datetime import datetime, timezone


from alphad.daemon.feed.live_buffer import LiveSource, RecordBuffer
from alphad.daemon.feed.config import AlpacaFeed
from alphad.ipc.dtypes import MD_BAR, MD_QUOTE, MD_TRADE

#: Interval of Alpaca's streamed bars (one minute).
BAR_NS = 60_000_000_000
NAN = math.nan
_RFC3339 = re.compile(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$")
_TAKER = {"B": 1, "S": -1}


class MissingCredentials(RuntimeError):
    """An Alpaca key or secret is not in the environment (the message names the variable)."""


def read_keys(cfg: AlpacaFeed, env=None) -> tuple[str, str]:
    """The API key and secret from the environment variables ``cfg`` names."""
    env = os.environ if env is None else env
    found = []
    for var, field in ((cfg.key_env, "key_env"), (cfg.secret_env, "secret_env")):
        value = env.get(var, "")
        if not value:
            raise MissingCredentials(f"feed.source alpaca: the environment variable {var} (feed.alpaca.{field}) "
                                     f"is not set or empty; export the Alpaca API {field.split('_')[0]} there")
        found.append(value)
    return found[0], found[1]


def split_symbols(symbols) -> tuple[list[str], list[str]]:
    """(stock symbols, crypto symbols): a symbol with a ``/`` (``BTC/USD``) is crypto."""
    return [s for s in symbols if "/" not in s], [s for s in symbols if "/" in s]


def timestamp_ns(t, default: int) -> int:
    """A message's time in ns since the epoch: a msgpack ``Timestamp`` (Alpaca's wire
    format), a ``datetime``, an RFC 3339 string (nanoseconds kept) or ns; else ``default``."""
    if hasattr(t, "to_unix_nano"):
        return int(t.to_unix_nano())
    if isinstance(t, datetime):
        t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
    if isinstance(t, str):
        m = _RFC3339.match(t.strip().replace("Z", "+00:00"))
        if m:
            base, frac, zone = m.groups()
            try:
                d = datetime.fromisoformat(base + zone)
            except ValueError:
                return default
            d = d if d.tzinfo else d.replace(tzinfo=timezone.utc)
            return int(d.timestamp()) * 1_000_000_000 + (int((frac + "00000000")[:9]) if frac else 0)
        return default
    if isinstance(t, int) and not isinstance(t, bool):
        return t
    return default


def _f(m: dict, key: str) -> float:
    """A number of the message; NaN when missing or not a number (a price then is counted
    as non-finite and not emitted, a size is unknown)."""
    v = m.get(key)
    if v is None:
        return NAN
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return NAN


def _streams_module():
    """alpaca-py's live data streams, imported on first use (``websockets.legacy``, which
    alpaca-py uses, warns that it is deprecated when imported: not ours to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="websockets.legacy is deprecated", category=DeprecationWarning)
        from alpaca.data.live import crypto, stock
    return stock.StockDataStream, crypto.CryptoDataStream


def _counting(cls, label: str, on_connect, on_error):
    """``cls`` whose every successful connect-and-authenticate calls ``on_connect(label)``
    and every failed one ``on_error(text)`` (alpaca-py retries it)."""

    class Counted(cls):
        async def _start_ws(self):
            try:
                await super()._start_ws()
            except Exception as e:
                on_error(f"{label} stream {type(e).__name__}: {e}")
                raise
            on_connect(label)

    Counted.__name__ = f"Counted{cls.__name__}"
    return Counted


class AlpacaMarketData(LiveSource):
    """Alpaca's stock and crypto streams, received on a background uvloop thread into a
    bounded buffer of md records.

    ``symbols``: the universe's symbols in id order (the id is the index).  The keys are
    read from the environment (``cfg.key_env``/``cfg.secret_env``) here, when the feed
    starts; a missing one raises :class:`MissingCredentials`.  :meth:`start` connects,
    :meth:`drain` takes the records, :meth:`stop` ends the streams and the thread.
    """

    NAME = "alpaca"

    def __init__(self, symbols, cfg: AlpacaFeed | None = None, *, capacity: int = 1 << 16, env=None):
        self.cfg = cfg = cfg if cfg is not None else AlpacaFeed()
        symbols = list(symbols)
        if not symbols:
            raise ValueError("feed.source alpaca: the universe has no symbol to subscribe to")
        self.ids = {s: i for i, s in enumerate(symbols)}
        self.stocks, self.crypto = split_symbols(symbols)
        self._key, self._secret = read_keys(cfg, env)
        self.buffer = RecordBuffer(capacity)  # daemon/feed/live_buffer.py
        self._lock = threading.Lock()  # the counters stats() reads together
        #: Called on the network thread after records were buffered (the shell rings the
        #: feed process's doorbell with it); None: nothing is called.
        self.notify = None
        self.connects = self.reconnects = self.errors = 0
        self.last_error = ""
        self._connected_once: set[str] = set()
        self._streams: list = []
        self._labels: list[str] = []
        self._thread: threading.Thread | None = None
        self._loop = self._stop_event = None
        self._started = threading.Event()

    @classmethod
    def from_config(cls, cfg, **kw) -> "AlpacaMarketData":
        """The streams a config's universe and ``feed.alpaca`` describe."""
        return cls([ins.symbol for ins in sorted(cfg.universe, key=lambda i: i.id)], cfg.feed.alpaca, **kw)

    def __repr__(self) -> str:  # never the keys
        return (f"AlpacaMarketData(stocks={self.stocks}, crypto={self.crypto}, received={self.received}, "
                f"dropped={self.dropped}, reconnects={self.reconnects})")

    def stats(self) -> dict:
        return {"received": self.received, "dropped": self.dropped, "pending": self.buffer.pending,
                "connects": self.connects, "reconnects": self.reconnects, "errors": self.errors,
                "last_error": self.last_error, "bad_records": self.bad_records()}

    # -- the handlers (network thread) -----------------------------------------------------
    async def _on_quote(self, m: dict) -> None:
        t0, tr = time.monotonic_ns(), time.time_ns()
        inst = self.ids.get(m.get("S"))
        if inst is not None:
            self._put((t0, timestamp_ns(m.get("t"), tr), tr, 0, inst, MD_QUOTE, 0, 0, _f(m, "bp"), _f(m, "bs"),
                       _f(m, "ap"), _f(m, "as"), NAN, NAN, 0.0, 0.0, 0.0, 0))
        else:
            self._unknown()

    async def _on_trade(self, m: dict) -> None:
        t0, tr = time.monotonic_ns(), time.time_ns()
        inst = self.ids.get(m.get("S"))
        if inst is not None:
            self._put((t0, timestamp_ns(m.get("t"), tr), tr, 0, inst, MD_TRADE, _TAKER.get(m.get("tks"), 0), 0,
                       NAN, NAN, NAN, NAN, _f(m, "p"), _f(m, "s"), 0.0, 0.0, 0.0, 0))
        else:
            self._unknown()

    async def _on_bar(self, m: dict) -> None:
        t0, tr = time.monotonic_ns(), time.time_ns()
        inst = self.ids.get(m.get("S"))
        if inst is not None:
            start = timestamp_ns(m.get("t"), tr - BAR_NS)
            self._put((t0, start + BAR_NS, tr, 0, inst, MD_BAR, 0, 0, NAN, NAN, NAN, NAN, _f(m, "c"), _f(m, "v"),
                       _f(m, "o"), _f(m, "h"), _f(m, "l"), BAR_NS))
        else:
            self._unknown()

    def _on_connect(self, name: str) -> None:
        with self._lock:
            self.connects += 1
            if name in self._connected_once:
                self.reconnects += 1
            self._connected_once.add(name)

    # -- lifecycle ---------------------------------------------------------------------------
    def _build_streams(self) -> list:
        stock_cls, crypto_cls = _streams_module()
        from alpaca.data.enums import DataFeed

        cfg, streams = self.cfg, []
        for label, symbols, cls, url, kw in (
                ("stock", self.stocks, stock_cls, cfg.stock_url_override, {"feed": DataFeed(cfg.stocks_feed)}),
                ("crypto", self.crypto, crypto_cls, cfg.crypto_url_override, {})):
            if not symbols:
                continue
            counted = _counting(cls, label, self._on_connect, self._on_error)
            s = counted(self._key, self._secret, raw_data=True, url_override=url or None, **kw)
            if cfg.quotes:
                s.subscribe_quotes(self._on_quote, *symbols)
            if cfg.trades:
                s.subscribe_trades(self._on_trade, *symbols)
            if cfg.bars:
                s.subscribe_bars(self._on_bar, *symbols)
            streams.append(s)
            self._labels.append(label)
        return streams

    def _prepare(self) -> None:
        self._streams = self._build_streams()

    async def _main(self) -> None:
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        tasks = [asyncio.create_task(s._run_forever(), name=f"alpaca {label} stream")
                 for label, s in zip(self._labels, self._streams)]
        for t in tasks:
            t.add_done_callback(self._stream_ended)
        self._started.set()
        await self._stop_event.wait()
        for s in self._streams:  # stop: no reconnect, then close the sockets (their recv ends)
            await s.stop_ws()
        for s in self._streams:
            ws = s._ws
            if ws is not None:
                try:
                    await asyncio.wait_for(ws.close(), 1.0)
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
        _, pending = await asyncio.wait(tasks, timeout=2.0)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stream_ended(self, task) -> None:
        if self._stop_event is not None and self._stop_event.is_set():
            return
        why = "cancelled" if task.cancelled() else repr(task.exception()) if task.exception() else "returned"
        self._on_error(f"{task.get_name()} ended ({why}); no more data from it")
        print(f"alphad feed alpaca: {task.get_name()} ended ({why}): no more market data from it "
              "(an 'insufficient subscription' error ends it; see the log above)", file=sys.stderr, flush=True)
