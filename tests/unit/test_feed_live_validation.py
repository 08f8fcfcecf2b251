"""Bad values from a live stream (issue 21): a quote, trade or bar with a price that is not
finite or not above zero, or a negative size, is counted by reason and never emitted, by the
Alpaca and the IB sources alike (their real handlers, without a server); a message of a
symbol outside the universe is counted too; ``stats()`` carries the counts."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np

from alphad.daemon.feed.alpaca import AlpacaMarketData
from alphad.daemon.feed.config import AlpacaFeed, IbFeed
from alphad.daemon.feed.ib import IbMarketData
from alphad.ipc.dtypes import MD_BAR, MD_DTYPE, MD_QUOTE, MD_TRADE
from test_feed_ib import _ticker

KEYS = {"APCA_API_KEY_ID": "fake-key", "APCA_API_SECRET_KEY": "fake-secret"}
SYMBOLS = ["AAPL", "BTC/USD", "SPY"]


def _drained(m) -> np.ndarray:
    out = np.zeros(64, MD_DTYPE)
    return out[: m.drain(out)].copy()


def test_alpaca_when_bad_prices_and_sizes_then_counted_by_reason_and_not_emitted():
    m = AlpacaMarketData(SYMBOLS, AlpacaFeed(bars=True), env=KEYS)
    rung = []
    m.notify = lambda: rung.append(1)
    t = "2024-03-01T14:30:00.123456789Z"

    async def feed():
        await m._on_quote({"S": "SPY", "bp": 500.0, "bs": 1, "ap": 500.1, "as": 2, "t": t})     # good
        await m._on_quote({"S": "SPY", "bp": float("nan"), "bs": 1, "ap": 500.1, "as": 2, "t": t})
        await m._on_quote({"S": "SPY", "bp": 0, "bs": 0, "ap": 500.1, "as": 2, "t": t})         # an empty side
        await m._on_quote({"S": "SPY", "bp": 500.0, "bs": -3, "ap": 500.1, "as": 2, "t": t})
        await m._on_quote({"S": "SPY", "bp": "garbage", "bs": 1, "ap": 500.1, "as": 2, "t": t})
        await m._on_trade({"S": "AAPL", "p": -189.5, "s": 10, "t": t})
        await m._on_trade({"S": "AAPL", "p": 189.5, "s": float("-inf"), "t": t})
        await m._on_trade({"S": "AAPL", "p": 189.5, "s": 10, "t": t})                          # good
        await m._on_trade({"S": "AAPL", "p": 189.5, "t": t})                                   # size unknown: good
        await m._on_bar({"S": "BTC/USD", "o": 1.0, "h": 2.0, "l": 0.0, "c": 1.5, "v": 3.0, "t": t})
        await m._on_bar({"S": "BTC/USD", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": -3.0, "t": t})
        await m._on_bar({"S": "BTC/USD", "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 3.0, "t": t})  # good
        await m._on_quote({"S": "NOT-OURS", "bp": 1.0, "bs": 1, "ap": 1.1, "as": 1, "t": t})
    asyncio.run(feed())
    r = _drained(m)
    assert list(zip(r["instrument"], r["kind"])) == [(2, MD_QUOTE), (0, MD_TRADE), (0, MD_TRADE), (1, MD_BAR)]
    assert np.isnan(r[2]["last_sz"]) and len(rung) == 4
    assert m.stats()["bad_records"] == {"non_finite": 3, "non_positive_price": 3, "negative_size": 2,
                                        "unknown_symbol": 1}
    assert m.received == 4  # what was refused never reached the buffer


def test_ib_when_bad_sizes_and_bars_then_counted_by_reason_and_not_emitted():
    m = IbMarketData(SYMBOLS, IbFeed(bars=True), log=lambda text: None)
    m._inst = {100: 0, 200: 1, 300: 2}
    m._on_tickers([_ticker(100, [1, 2], bid=10.0, bidSize=5, ask=10.5, askSize=6)])     # good
    m._on_tickers([_ticker(100, [1, 2], bid=10.0, bidSize=-5, ask=10.5, askSize=6)])    # negative size
    m._on_tickers([_ticker(300, [4], last=5.0, lastSize=-1)])                           # negative size
    m._on_tickers([_ticker(300, [4], last=5.0, lastSize=float("inf"))])                 # infinite size
    m._on_tickers([_ticker(300, [1, 2], bid=-1.0, ask=5.1)])    # IB's empty side: no quote, not counted
    m._on_tickers([_ticker(300, [4], last=-1.0, lastSize=0.0)])  # IB's "no last yet": not counted
    m._on_tickers([_ticker(300, [4], last=-2.5, lastSize=3.0)])  # a print at a price that cannot be
    m._on_tickers([_ticker(300, [4], last=0.0, lastSize=1.0)])   # nor can a zero one
    m._on_tickers([_ticker(100, [1, 2], bid=0.0, bidSize=4, ask=10.5, askSize=6)])  # a zero bid with size
    m._on_tickers([_ticker(999, [1, 2], bid=1.0, ask=2.0)])     # not of the universe
    start = datetime(2024, 3, 1, 14, 31, 5, tzinfo=timezone.utc)
    bars = type("Bars", (list,), {})([SimpleNamespace(time=start, open_=1.0, high=float("nan"), low=0.5, close=1.5,
                                                      volume=12.5)])
    bars.contract = SimpleNamespace(conId=200)
    m._bars = {1: bars}
    m._on_bar(bars, True)
    r = _drained(m)
    assert list(zip(r["instrument"], r["kind"])) == [(0, MD_QUOTE)]
    assert m.stats()["bad_records"] == {"non_finite": 2, "non_positive_price": 3, "negative_size": 2,
                                        "unknown_symbol": 1}
