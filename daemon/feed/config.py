"""The ``feed:`` section: where market data comes from (:mod:`alphad.daemon.feed`)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from alphad.daemon.config_base import Base, Fraction, PositiveFloat, PositiveInt


class Synthetic(Base):
    seed: int = 7
    rate_hz: PositiveFloat = 1000.0
    start_px: PositiveFloat = 100.0
    vol_bps: PositiveFloat = 1.0       # per-event log-price std, in bps
    trade_ratio: Fraction = 0.2        # share of events that are trades


class Extra(Base):
    """One more recorded file merged into the feed by time (``feed.also``): ``daily`` (the
    daily layout; ``adj_close`` is read as ``adjusted_close``, as in the ETF file) or
    ``vix`` (CBOE's ``DATE,OPEN,HIGH,LOW,CLOSE``, the bars of universe symbol ``symbol``,
    stamped at the VIX's 16:15 close)."""

    path: str
    format: Literal["daily", "vix"] = "daily"
    symbol: str = "VIX"


class AlpacaFeed(Base):
    """``feed.alpaca``: Alpaca's live market-data streams (``feed.source: alpaca``;
    :mod:`alphad.daemon.feed.alpaca`).

    The universe's symbols are subscribed: one with a ``/`` (``BTC/USD``) on the crypto
    stream, every other on the stock stream (``stocks_feed``: ``iex``, or ``sip`` with a
    subscription that includes it).  ``quotes``, ``trades`` and ``bars`` (one-minute bars,
    emitted at their close) choose the channels.  ``stock_url_override`` and
    ``crypto_url_override`` point the streams elsewhere (a proxy, a test server; alpaca-py's
    ``url_override``); empty: Alpaca's own endpoints.  The API key and secret are read when
    the feed starts from the environment variables ``key_env`` and ``secret_env``: never
    from this file.
    """

    stocks_feed: Literal["iex", "sip"] = "iex"
    stock_url_override: str = ""
    crypto_url_override: str = ""
    quotes: bool = True
    trades: bool = True
    bars: bool = False
    key_env: str = "APCA_API_KEY_ID"
    secret_env: str = "APCA_API_SECRET_KEY"

    def __post_init__(self) -> None:
        if not (self.quotes or self.trades or self.bars):
            raise ValueError("feed.alpaca: quotes, trades and bars are all false: subscribe to one at least")
        for name in ("stock_url_override", "crypto_url_override"):
            url = getattr(self, name)
            if url and not url.startswith(("ws://", "wss://")):
                raise ValueError(f"feed.alpaca.{name} expected a ws:// or wss:// URL (or empty: Alpaca's own), "
                                 f"was {url!r}")
        for name in ("key_env", "secret_env"):
            if not getattr(self, name):
                raise ValueError(f"feed.alpaca.{name} must name an environment variable")


class IbFeed(Base):
    """``feed.ib``: Interactive Brokers' market data from TWS / IB Gateway through ib_async
    (``feed.source: ib``; :mod:`alphad.daemon.feed.ib`).

    The feed connects as an API client of its own: ``client_id`` must differ from every
    other client of the same TWS, the order gateway's ``router.ib.client_id`` (17) included.
    ``port``: 4002 is IB Gateway's paper port (4001 live), 7497 TWS's paper port (7496
    live).  The universe's symbols are subscribed: one with a ``/`` (``BTC/USD``) as
    ``Crypto("BTC", crypto_exchange, "USD")``, every other as ``Stock(symbol,
    stock_exchange, "USD")``.  ``quotes`` and ``trades`` choose what ``reqMktData``'s ticks
    become; ``bars``: IB's 5-second real-time bars (``reqRealTimeBars``, emitted at their
    close).  ``market_data_type``: 1 live, 2 frozen, 3 delayed, 4 delayed frozen
    (``reqMarketDataType``; delayed needs no market-data subscription).  Between connection
    attempts (one reconnect loop at a time) the wait doubles from ``backoff_s`` up to
    ``backoff_max_s``.  No credential is read: TWS / IB Gateway holds the login.
    """

    host: str = "127.0.0.1"
    port: PositiveInt = 4002
    client_id: PositiveInt = 18
    stock_exchange: str = "SMART"
    crypto_exchange: str = "PAXOS"
    quotes: bool = True
    trades: bool = True
    bars: bool = False
    market_data_type: Literal[1, 2, 3, 4] = 1
    connect_timeout_s: PositiveFloat = 10.0
    backoff_s: PositiveFloat = 1.0
    backoff_max_s: PositiveFloat = 30.0

    def __post_init__(self) -> None:
        if not (self.quotes or self.trades or self.bars):
            raise ValueError("feed.ib: quotes, trades and bars are all false: subscribe to one at least")
        for name in ("host", "stock_exchange", "crypto_exchange"):
            if not getattr(self, name):
                raise ValueError(f"feed.ib.{name} must not be empty")
        if self.backoff_max_s < self.backoff_s:
            raise ValueError(f"feed.ib.backoff_max_s ({self.backoff_max_s:g}) must be at least feed.ib.backoff_s "
                             f"({self.backoff_s:g})")


class Feed(Base):
    """Where market data comes from.

    ``source``: ``replay`` (recorded file at ``path``), ``synthetic``, ``alpaca`` (Alpaca's
    live stock and crypto streams, configured by ``alpaca``) or ``ib`` (Interactive Brokers'
    market data from TWS / IB Gateway, configured by ``ib``); with a live source the keys
    that describe a recording, ``path``, ``format``, ``trades_path``, ``speed``, ``loop``,
    ``trade_from``, are unused, and ``also`` and ``trade_until`` are refused.  A live source
    runs in the daemon alone: the backtest and ``alphad replay`` need a recording.
    ``format``: ``generic`` (``ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz``),
    ``binance`` (the book-ticker CSV; trades from ``trades_path`` merged by time),
    ``lean_minute`` (equity minute quote CSV) or ``daily`` (daily equity bars, adjusted as
    the research dataset adjusts them; feed/sources.py).  ``trade_from``: an ISO date or
    time (UTC unless it names a zone): the events before it only warm the stages up (the
    features stage makes no row for them), so a backtest trades from there on with
    indicators warmed on the history before; empty: every event trades.  ``trade_until``:
    an ISO date or time (UTC unless it names a zone), after ``trade_from``: the recording
    ends before its first event at or after it, as at the end of the file (no event,
    order or day sample from there on); empty: the whole file.  A feed that ends there
    cannot loop: it needs ``loop: false``. ``speed``: ``realtime``, ``max``, or a
    multiplier such as ``"10"`` (ten times real time). ``loop`` restarts the file at its end.
    ``also``: more recorded files merged in by time (e.g. an index and the VIX beside the
    daily stocks: the inputs of ``features.regime``), read up to the main file's last event.
    ``on_bad_record``: what a bad row of a recorded file does (a malformed row, a bad
    number, a non-finite or non-positive price, a negative size, a crossed quote, a time
    that goes backwards; :mod:`alphad.daemon.feed.bad_records`): ``skip`` (counted by
    reason, the first few printed with file and line, then the counts) or ``stop`` (the
    load stops with an error naming file, line and reason).  A row of a symbol outside
    the universe is counted and skipped either way.  A live source always drops (and
    counts) a non-finite or non-positive price and a negative size.
    """

    source: Literal["replay", "synthetic", "alpaca", "ib"] = "replay"
    path: str = "data/demo_btc_eth_quotes_trades.csv.gz"
    format: Literal["generic", "binance", "lean_minute", "daily"] = "generic"
    trades_path: str = ""
    speed: str = "realtime"
    loop: bool = True
    trade_from: str = ""
    trade_until: str = ""
    also: list[Extra] = []
    on_bad_record: Literal["skip", "stop"] = "skip"
    synthetic: Synthetic = Synthetic()
    alpaca: AlpacaFeed = AlpacaFeed()
    ib: IbFeed = IbFeed()

    def __post_init__(self) -> None:
        start, end = self.trade_from_ns(), self.trade_until_ns()  # a bad date fails when the config is read
        if end is not None:
            if self.source in ("alpaca", "ib"):
                raise ValueError(f"feed.trade_until ends a recording; feed.source {self.source} is a live stream "
                                 "that never ends: remove feed.trade_until (or replay the recordings)")
            if start is not None and end <= start:
                raise ValueError(f"feed.trade_until ({self.trade_until}) must be after feed.trade_from "
                                 f"({self.trade_from}): nothing would trade")
            # Refused rather than looped: a loop would restart the file at its start, and the
            # ``loop: true`` default would otherwise turn a bounded window into an endless one.
            if self.loop:
                raise ValueError(f"feed.trade_until ({self.trade_until}) ends the replay there; feed.loop true "
                                 "would restart it: set feed.loop false")
        if self.also and self.source in ("alpaca", "ib"):
            raise ValueError(f"feed.also merges recorded files into a replay; feed.source {self.source} is a live "
                             "stream: remove feed.also (or replay the recordings)")
        if self.also and (self.source != "replay" or self.format != "daily"):
            raise ValueError(f"feed.also merges recorded files into a daily replay (source replay, format daily), "
                             f"was source {self.source}, format {self.format}")

    def trade_from_ns(self) -> int | None:
        """``trade_from`` in ns since the epoch (None when unset)."""
        return _iso_ns("trade_from", self.trade_from)

    def trade_until_ns(self) -> int | None:
        """``trade_until`` in ns since the epoch (None when unset)."""
        return _iso_ns("trade_until", self.trade_until)


def _iso_ns(key: str, value: str) -> int | None:
    """``feed.<key>``, an ISO date or time (UTC unless it names a zone), in ns since the
    epoch (None when empty)."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"feed.{key} expected an ISO date or time such as 2017-01-01, was {value!r}") from None
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
