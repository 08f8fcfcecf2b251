"""The ``feed:`` section: where market data comes from (:mod:`alphad.daemon.feed`)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from alphad.daemon.config_base import Base, Fraction, PositiveFloat


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


class Feed(Base):
    """Where market data comes from.

    ``source``: ``replay`` (recorded file at ``path``), ``synthetic``, or ``alpaca`` (Alpaca's
    live stock and crypto streams, configured by ``alpaca``; the keys that describe a
    recording, ``path``, ``format``, ``trades_path``, ``speed``, ``loop``, ``trade_from``,
    are then unused, and ``also`` is refused).  A live source runs in the daemon alone: the
    backtest and ``alphad replay`` need a recording.
    ``format``: ``generic`` (``ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz``),
    ``binance`` (the book-ticker CSV; trades from ``trades_path`` merged by time),
    ``lean_minute`` (equity minute quote CSV) or ``daily`` (daily equity bars, adjusted as
    the research dataset adjusts them; feed/sources.py).  ``trade_from``: an ISO date or
    time (UTC unless it names a zone): the events before it only warm the stages up (the
    features stage makes no row for them), so a backtest trades from there on with
    indicators warmed on the history before; empty: every event trades. ``speed``: ``realtime``, ``max``, or a
    multiplier such as ``"10"`` (ten times real time). ``loop`` restarts the file at its end.
    ``also``: more recorded files merged in by time (e.g. an index and the VIX beside the
    daily stocks: the inputs of ``features.regime``), read up to the main file's last event.
    """

    source: Literal["replay", "synthetic", "alpaca"] = "replay"
    path: str = "data/demo_btc_eth_quotes_trades.csv.gz"
    format: Literal["generic", "binance", "lean_minute", "daily"] = "generic"
    trades_path: str = ""
    speed: str = "realtime"
    loop: bool = True
    trade_from: str = ""
    also: list[Extra] = []
    synthetic: Synthetic = Synthetic()
    alpaca: AlpacaFeed = AlpacaFeed()

    def __post_init__(self) -> None:
        self.trade_from_ns()  # a bad date fails when the config is read
        if self.also and self.source == "alpaca":
            raise ValueError("feed.also merges recorded files into a replay; feed.source alpaca is a live stream: "
                             "remove feed.also (or replay the recordings)")
        if self.also and (self.source != "replay" or self.format != "daily"):
            raise ValueError(f"feed.also merges recorded files into a daily replay (source replay, format daily), "
                             f"was source {self.source}, format {self.format}")

    def trade_from_ns(self) -> int | None:
        """``trade_from`` in ns since the epoch (None when unset)."""
        if not self.trade_from:
            return None
        try:
            t = datetime.fromisoformat(self.trade_from)
        except ValueError:
            raise ValueError(f"feed.trade_from expected an ISO date or time such as 2017-01-01, was "
                             f"{self.trade_from!r}") from None
        t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
