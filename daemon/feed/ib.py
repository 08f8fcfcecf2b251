"""Interactive Brokers' live market data (``feed.source: ib``) as md records.

:class:`IbMarketData` connects an ib_async ``IB()`` client to TWS / IB Gateway on a uvloop
event loop in a background thread of the feed process (an API client of its own:
``feed.ib.client_id``, never the order gateway's), qualifies the universe's contracts
(``BTC/USD``-style symbols: ``Crypto("BTC", crypto_exchange, "USD")``; every other:
``Stock(symbol, stock_exchange, "USD")``) and subscribes ``reqMktData`` for each (and
``reqRealTimeBars`` when ``bars``).  What ib_async received becomes ``MD_DTYPE`` records at
receipt:

* ``instrument``: the symbol's index in the universe;
* ``t_origin = time.monotonic_ns()`` and ``ts_recv = time.time_ns()`` when ib_async hands the
  packet's tickers over (``pendingTickersEvent``); ``ts_exch`` is the same receipt time for
  quotes and trades (TWS's market-data ticks carry no exchange time), a bar's its close
  (start + 5 s, with ``bar_ns`` = 5 s, ``open_px``/``high_px``/``low_px``, ``last_px`` the
  close and ``last_sz`` the volume);
* a quote: a packet that moved a ticker's bid or ask (price or size, live or delayed tick
  types) makes one ``MD_QUOTE`` with the ticker's bid/ask price and size, once both sides
  are known (positive prices: IB's -1 is an empty side; a side priced at zero or below with a
  size is a bad record, counted in ``bad_records`` and not emitted);
* a trade: a new last price (tick 4 / delayed 68, which carries its size) makes one
  ``MD_TRADE`` (``last_px``/``last_sz``); a last-size tick alone (5 / 71) makes one only when
  it changes the (price, size) of the last trade emitted (the size TWS repeats after the
  price is no second trade); a print priced at zero or below with a size is a bad record,
  counted and not emitted (IB's -1 with no size is no print).  When a subscription starts
  TWS sends the current state, the last trade included (an old one, or one missed while
  disconnected): the first last price within :attr:`IbMarketData.SNAPSHOT_NS` of the subscription's first ticks is where
  it starts from, not a trade, and is not emitted;
* ``seq`` is left 0: the feed step numbers what it emits.

Records wait in a bounded buffer behind a lock until the feed's loop takes them
(:meth:`drain`); when it is full the oldest go first and are counted (``dropped``).
``notify`` (set by the shell) is called after each record is buffered.

Connection life: one connect loop at a time, with doubling backoff from ``backoff_s`` up to
``backoff_max_s`` (a refused connection, a timeout and 326, "client id in use", alike).  A
disconnect starts it again (ib_async then forgets its subscriptions): each connection after
the first is a reconnect, and subscribing everything again on it a resubscribe.  1100
(TWS lost IB) marks the link down; 1101 (restored, data lost) resubscribes everything; 1102
(restored, data kept) has nothing to resubscribe.  Data-farm codes 2103/2105/2157
(broken) and 2104/2106/2158 (OK) keep a per-farm health state (``farms``,
``farms_down``).
"""
from __future__ import annotations

import asyncio
import math
import sys
import threading
import time


from alphad.daemon.feed.live_buffer import LiveSource, RecordBuffer
from alphad.daemon.feed.config import IbFeed
from alphad.ipc.dtypes import MD_BAR, MD_QUOTE, MD_TRADE

#: Interval of IB's real-time bars (five seconds, the only size ``reqRealTimeBars`` has).
BAR_NS = 5_000_000_000
NAN = math.nan
#: Tick types: a bid/ask price or size (live, then delayed), a last price, a last size.
QUOTE_TICKS = frozenset({0, 1, 2, 3, 66, 67, 69, 70})
LAST_PX_TICKS = frozenset({4, 68})
LAST_SZ_TICKS = frozenset({5, 71})
#: Data-farm codes: broken, OK (market data, historical data, security definitions).
FARM_BROKEN, FARM_OK = frozenset({2103, 2105, 2157}), frozenset({2104, 2106, 2158})
#: The link's state codes (1100 lost, 1101/1102 restored): not errors.
_NOT_ERRORS = frozenset({1100, 1101, 1102})


def contract_for(symbol: str, cfg: IbFeed):
    """The ib_async contract of a universe symbol: ``BASE/QUOTE`` is crypto on
    ``crypto_exchange``, every other a stock on ``stock_exchange`` in USD."""
    from ib_async import Crypto, Stock

    if "/" in symbol:
        base, _, quote = symbol.partition("/")
        if not base or not quote or "/" in quote:
            raise ValueError(f"feed.source ib: crypto symbol {symbol!r} expected BASE/QUOTE such as BTC/USD")
        return Crypto(base, cfg.crypto_exchange, quote)
    return Stock(symbol, cfg.stock_exchange, "USD")


def _known(px) -> bool:
    """A quoted side: a finite, positive price (ib_async leaves NaN unset, IB sends -1 empty)."""
    return px is not None and px == px and px > 0 and px != math.inf


def _impossible(px, size) -> bool:
    """A price that cannot be, with a size: a bad record to count.  IB's empty side or
    missing last (-1 or unset, with no size) is no record at all."""
    return px is not None and px == px and not _known(px) and size is not None and size > 0


def _num(v) -> float:
    return NAN if v is None else float(v)


class _Events:
    """The network thread's handlers of data feed ``md``: ticks and bars as md records, and
    TWS's codes."""

    def __init__(self, md: "IbMarketData"):
        self.md = md

    def on_tickers(self, tickers) -> None:
        """A packet's updated tickers, each in arrival order: one quote where a tick moved
        its bid or ask (the sides as the packet left them), and one trade per print (each
        tick's own price and size: two prints in one packet are two trades)."""
        md = self.md
        t0, tr = time.monotonic_ns(), time.time_ns()
        want_q, want_t = md.cfg.quotes, md.cfg.trades
        for ticker in tickers:
            inst = md._inst.get(ticker.contract.conId) if ticker.contract is not None else None
            if inst is None:
                md._unknown()
                continue
            if not ticker.ticks:
                continue
            fresh = md._fresh.get(inst, 0)  # a subscription's first ticks: the state it starts from
            if fresh == -1:
                fresh = md._fresh[inst] = t0 + md.SNAPSHOT_NS
            elif fresh and t0 > fresh:
                del md._fresh[inst]
                fresh = 0
            quoted = False
            for tick in ticker.ticks:
                tt = tick.tickType
                if tt in QUOTE_TICKS:
                    if not quoted and want_q:
                        bid, bsz, ask, asz = ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize
                        if (_known(bid) or _impossible(bid, bsz)) and (_known(ask) or _impossible(ask, asz)):
                            md._put((t0, tr, tr, 0, inst, MD_QUOTE, 0, 0, float(bid), _num(bsz), float(ask),
                                     _num(asz), NAN, NAN, 0.0, 0.0, 0.0, 0))  # _put counts an impossible side
                    quoted = True
                    continue
                if tt not in LAST_PX_TICKS and tt not in LAST_SZ_TICKS:
                    continue
                px, sz = _num(tick.price), _num(tick.size)  # a last-size tick carries the last price
                trade = (t0, tr, tr, 0, inst, MD_TRADE, 0, 0, NAN, NAN, NAN, NAN, px, sz, 0.0, 0.0, 0.0, 0)
                if not _known(px):
                    if want_t and not fresh and _impossible(px, sz):  # counted by _put, never emitted
                        md._put(trade)
                    continue
                new = tt in LAST_PX_TICKS or (px, sz) != md._last_trade.get(inst)
                md._last_trade[inst] = (px, sz)
                if fresh:  # the subscription's snapshot of the last trade: where it starts from
                    del md._fresh[inst]
                    fresh = 0
                    continue
                if want_t and new:
                    md._put(trade)

    def on_bar(self, bars, has_new_bar: bool) -> None:
        """A real-time bar (ib_async appends it to its subscription's list)."""
        md = self.md
        t0, tr = time.monotonic_ns(), time.time_ns()
        contract = getattr(bars, "contract", None)
        inst = md._inst.get(contract.conId) if contract is not None else None
        if inst is None:
            if contract is not None:  # a contract not of the universe (a list without one: not a bar of ours)
                md._unknown()
            return
        if md._bars.get(inst) is not bars or not has_new_bar or not bars:
            return
        bar = bars[-1]
        del bars[:]  # ib_async keeps every bar of a subscription: ours are in the ring
        try:
            start = int(bar.time.timestamp()) * 1_000_000_000
        except (AttributeError, OverflowError, ValueError):
            start = tr - BAR_NS
        md._put((t0, start + BAR_NS, tr, 0, inst, MD_BAR, 0, 0, NAN, NAN, NAN, NAN, _num(bar.close),
                   _num(bar.volume), _num(bar.open_), _num(bar.high), _num(bar.low), BAR_NS))

    def on_error(self, req_id, code, message, contract=None) -> None:
        """TWS's error and status codes: the link (1100/1101/1102), the data farms, errors."""
        md, message = self.md, str(message)
        if code == 1100:
            md.connected = False
            md.log("1100: connectivity between IB and TWS lost")
        elif code in (1101, 1102):
            md.connected = md.ib is not None and md.ib.isConnected()
            if code == 1101:
                md.log("1101: connectivity restored, data lost: resubscribing")
                md._resubscribe()
            else:
                md.log("1102: connectivity restored, data kept")
        elif code in FARM_BROKEN or code in FARM_OK:
            farm = message.split(":")[-1].strip() or str(code)
            ok = code in FARM_OK
            if md.farms.get(farm) != ok:
                md.log(f"{code}: data farm {farm} {'OK' if ok else 'BROKEN'}")
            md.farms[farm] = ok
        elif 2100 <= code < 2200:  # TWS's informational warnings
            pass
        elif code not in _NOT_ERRORS:
            md._on_error(f"{code}: {message[:200]}")
            what = f" ({contract.symbol})" if contract is not None and getattr(contract, "symbol", "") else ""
            md.log(f"IB error {code} on request {req_id}{what}: {message[:200]}")


class IbMarketData(LiveSource):
    """IB's market data for the universe, received on a background uvloop thread into a
    bounded buffer of md records.

    ``symbols``: the universe's symbols in id order (the id is the index).  :meth:`start`
    starts the thread (it connects in the background), :meth:`drain` takes the records,
    :meth:`stop` disconnects and ends the thread.  ``log(text)`` reports the connection's
    life (default: one line on stderr).
    """

    NAME = "ib"
    #: After a subscription's first ticks, how long its snapshot (the current state TWS sends
    #: at once, maybe over several packets) may take: the first last price in it is no trade.
    SNAPSHOT_NS = 250_000_000

    def __init__(self, symbols, cfg: IbFeed | None = None, *, capacity: int = 1 << 16, log=None):
        self.cfg = cfg = cfg if cfg is not None else IbFeed()
        symbols = list(symbols)
        if not symbols:
            raise ValueError("feed.source ib: the universe has no symbol to subscribe to")
        self.symbols = symbols
        self.contracts = [contract_for(s, cfg) for s in symbols]
        self._log = log
        self.buffer = RecordBuffer(capacity)
        self._lock = threading.Lock()  # the counters stats() reads together
        self._events = _Events(self)
        #: Called on the network thread after records were buffered (the shell rings the
        #: feed process's doorbell with it); None: nothing is called.
        self.notify = None
        self.connects = self.reconnects = self.resubscribes = self.disconnects = self.errors = 0
        self.last_error = ""
        #: Connected to TWS and TWS connected to IB (1100 clears it, 1101/1102 set it).
        self.connected = False
        #: Per-farm health from the data-farm codes: name -> OK.
        self.farms: dict[str, bool] = {}
        self.ib = None
        self._inst: dict[int, int] = {}                 # conId -> instrument
        self._tickers: dict[int, object] = {}           # instrument -> Ticker
        self._bars: dict[int, object] = {}              # instrument -> RealTimeBarList
        #: Subscriptions whose snapshot last may still come: -1 before their first ticks, then
        #: until when (CLOCK_MONOTONIC ns).
        self._fresh: dict[int, int] = {}
        self._last_trade: dict[int, tuple[float, float]] = {}
        self._subscribed = False
        self._stopping = False
        self._conn_task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._loop = self._stop_event = None
        self._started = threading.Event()

    @classmethod
    def from_config(cls, cfg, **kw) -> "IbMarketData":
        """The client a config's universe and ``feed.ib`` describe."""
        return cls([ins.symbol for ins in sorted(cfg.universe, key=lambda i: i.id)], cfg.feed.ib, **kw)

    def __repr__(self) -> str:
        return (f"IbMarketData({self.cfg.host}:{self.cfg.port} client {self.cfg.client_id}, symbols={self.symbols}, "
                f"received={self.received}, dropped={self.dropped}, reconnects={self.reconnects})")

    def log(self, text: str) -> None:
        if self._log is not None:
            self._log(text)
        else:
            print(f"alphad feed ib: {text}", file=sys.stderr, flush=True)

    @property
    def farms_down(self) -> int:
        """Data farms whose last code said broken."""
        return sum(1 for ok in list(self.farms.values()) if not ok)

    def data_down(self) -> int:
        """Broken data farms, plus 1 while the link is lost (after the first connect: before
        it nothing was received, so nothing is missed)."""
        return self.farms_down + (1 if self.connects and not self.connected else 0)

    def stats(self) -> dict:
        return {"received": self.received, "dropped": self.dropped, "pending": self.buffer.pending,
                "connected": self.connected, "connects": self.connects, "reconnects": self.reconnects,
                "resubscribes": self.resubscribes, "disconnects": self.disconnects, "farms_down": self.farms_down,
                "farms": dict(self.farms), "errors": self.errors, "last_error": self.last_error,
                "bad_records": self.bad_records()}

    # -- the handlers (network thread) -----------------------------------------------------
    def _on_tickers(self, tickers) -> None:
        self._events.on_tickers(tickers)

    def _on_bar(self, bars, has_new_bar: bool) -> None:
        self._events.on_bar(bars, has_new_bar)

    def _on_disconnect(self) -> None:
        was = self._subscribed or self.connected
        self.connected = self._subscribed = False
        if self._stopping:
            return
        if self._conn_task is not None and not self._conn_task.done():
            return  # the connect loop running disconnected a failed try: it goes on
        if was:
            self.disconnects += 1
            self.log("disconnected from TWS / IB Gateway: reconnecting")
        self._conn_task = asyncio.get_running_loop().create_task(self._connect(first=False), name="ib connect")

    # -- connection ----------------------------------------------------------------------------
    def backoff_s(self, attempt: int) -> float:
        """The wait before try ``attempt + 1``: doubling from ``backoff_s`` to ``backoff_max_s``."""
        return min(self.cfg.backoff_s * 2.0 ** min(attempt, 60), self.cfg.backoff_max_s)

    async def _connect(self, first: bool) -> None:
        """Connect and subscribe, with backoff between failed tries, until connected or stopped."""
        from ib_async import StartupFetchNONE

        cfg, ib, attempt = self.cfg, self.ib, 0
        while not self._stopping:
            try:
                await ib.connectAsync(cfg.host, cfg.port, clientId=cfg.client_id, timeout=cfg.connect_timeout_s,
                                      readonly=True, fetchFields=StartupFetchNONE)
                await self._subscribe()
            except asyncio.CancelledError:
                ib.disconnect()
                raise
            except Exception as e:  # refused, timed out, 326, nothing qualified: the same backoff
                self._on_error(f"connect: {type(e).__name__}: {str(e)[:200]}")
                ib.disconnect()
                wait = self.backoff_s(attempt)
                attempt += 1
                self.log(f"connect to {cfg.host}:{cfg.port} (client id {cfg.client_id}) failed "
                         f"({type(e).__name__}: {str(e)[:120]}); next try in {wait:g} s")
                await asyncio.sleep(wait)
                continue
            with self._lock:
                self.connects += 1
                if not first:
                    self.reconnects += 1
                    self.resubscribes += 1
            self.log(f"{'re' if not first else ''}connected to {cfg.host}:{cfg.port} (client id {cfg.client_id}): "
                     f"{len(self._inst)} of {len(self.contracts)} instruments subscribed")
            return

    async def _subscribe(self) -> None:
        """Qualify what is not yet, then subscribe every qualified contract."""
        ib, cfg = self.ib, self.cfg
        todo = [i for i, c in enumerate(self.contracts) if not c.conId]
        if todo:
            await asyncio.wait_for(ib.qualifyContractsAsync(*(self.contracts[i] for i in todo)),
                                   cfg.connect_timeout_s)
            for i in todo:
                if not self.contracts[i].conId:
                    self.log(f"{self.symbols[i]}: no contract qualified ({self.contracts[i]!r}): not subscribed")
        inst = {c.conId: i for i, c in enumerate(self.contracts) if c.conId}
        if not inst:
            raise RuntimeError("no symbol of the universe qualified as a contract")
        if not ib.isConnected():
            raise ConnectionError("disconnected while qualifying the contracts")
        self._inst = inst
        self._tickers, self._bars = {}, {}
        ib.reqMarketDataType(cfg.market_data_type)
        for i in inst.values():
            self._request(i)
        self._subscribed = True
        self.connected = True

    def _request(self, i: int) -> None:
        ib, cfg, c = self.ib, self.cfg, self.contracts[i]
        if cfg.quotes or cfg.trades:
            self._fresh[i] = -1
            self._tickers[i] = ib.reqMktData(c)
        if cfg.bars:
            self._bars[i] = ib.reqRealTimeBars(c, 5, "AGGTRADES" if c.secType == "CRYPTO" else "TRADES", False)

    def _resubscribe(self) -> None:
        """Cancel and request again every subscription of this connection (1101)."""
        if not self._subscribed:
            return  # not subscribed yet on this connection: the connect loop subscribes
        ib = self.ib
        try:
            for i in list(self._inst.values()):
                if i in self._tickers:
                    ib.cancelMktData(self.contracts[i])
                if i in self._bars:
                    ib.cancelRealTimeBars(self._bars[i])
                self._request(i)
        except (ConnectionError, OSError) as e:  # the link went meanwhile: the reconnect subscribes
            self.log(f"resubscribe failed ({type(e).__name__}: {e}); the reconnect subscribes again")
            return
        with self._lock:
            self.resubscribes += 1

    # -- lifecycle ---------------------------------------------------------------------------
    async def _main(self) -> None:
        from ib_async import IB

        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        self.ib = ib = IB()
        try:  # ib_async asks for the account summary on 1102: nothing a market-data client needs
            ib.errorEvent -= ib._onError
        except (AttributeError, ValueError):
            pass
        ib.pendingTickersEvent += self._on_tickers
        ib.barUpdateEvent += self._on_bar
        ib.errorEvent += self._events.on_error
        ib.disconnectedEvent += self._on_disconnect
        self._conn_task = asyncio.create_task(self._connect(first=True), name="ib connect")
        self._started.set()
        await self._stop_event.wait()
        self._stopping = True
        task = self._conn_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        ib.disconnect()
        self.connected = self._subscribed = False
