"""``feed.source: ib``: Interactive Brokers' market data (ib_async) into md records, against the
wire-level fake TWS (``ops/fake_tws.py``): quotes and trades of a stock and a crypto symbol,
real-time bars, reconnects with resubscription after a dropped socket and the nightly reset,
1101/1102, the data-farm health state; the tick rules without a server; the feed stage's
choice of it; and the config's errors."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from alphad.daemon.config import ConfigError, decode_config
from alphad.daemon.feed.config import IbFeed
from alphad.daemon.feed.core import LiveFeedCore
from alphad.daemon.feed.ib import BAR_NS, IbMarketData, contract_for
from alphad.ipc.dtypes import MD_BAR, MD_DTYPE, MD_QUOTE, MD_TRADE

SYMBOLS = ["AAPL", "BTC/USD", "SPY"]  # ids 0, 1, 2
AAPL, BTC, SPY = 0, 1, 2


def _ib_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ib-md"]


@pytest.fixture(autouse=True)
def no_thread_left():
    """Every test ends with its market-data threads stopped."""
    yield
    deadline = time.monotonic() + 5
    while _ib_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ib_threads() == []


@pytest.fixture
def fake():
    from alphad.ops.fake_tws import FakeTWS

    f = FakeTWS(port=0).start()
    yield f
    f.stop()


def _cfg(fake, **kw) -> IbFeed:
    kw = {"port": fake.port, "connect_timeout_s": 3.0, "backoff_s": 0.1, "backoff_max_s": 0.5, **kw}
    return IbFeed(**kw)


class _Log(list):
    def __call__(self, text: str) -> None:
        self.append(text)


def _md(fake, symbols=SYMBOLS, **kw) -> IbMarketData:
    return IbMarketData(symbols, _cfg(fake, **kw), log=_Log())


@pytest.fixture
def md(fake):
    m = _md(fake).start()
    yield m
    m.stop()
    assert not m.running


def _wait(cond, timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.02)


def _collect(md: IbMarketData, publish, want, timeout_s: float = 15.0) -> np.ndarray:
    """Publish (again every 0.2 s: one before the subscription reaches the fake goes nowhere)
    and drain until ``want(records)`` holds; returns what was drained."""
    got, out = [], np.zeros(256, MD_DTYPE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publish()
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            n = md.drain(out)
            if n:
                got.append(out[:n].copy())
                recs = np.concatenate(got)
                if want(recs):
                    return recs
            else:
                time.sleep(0.005)
    recs = np.concatenate(got) if got else np.zeros(0, MD_DTYPE)
    pytest.fail(f"not received within {timeout_s} s; got {len(recs)} records, {md.stats()}, log {md._log[-10:]}")


def _find(recs, inst, kind, **fields):
    """The records of ``inst`` and ``kind`` whose fields equal ``fields``."""
    sel = (recs["instrument"] == inst) & (recs["kind"] == kind)
    for name, v in fields.items():
        sel &= recs[name] == v
    return recs[sel]


class _Quotes:
    """Publishes a new quote (the fake only sends what changed) each call; ``last[s]`` the latest."""

    def __init__(self, fake, base: dict[str, float]):
        self.fake, self.base, self.k, self.last = fake, base, 0, {}

    def __call__(self) -> None:
        self.k += 1
        for sym, px in self.base.items():
            q = (px + self.k / 100, px + 0.5 + self.k / 100, 100 + self.k, 200 + self.k)
            self.fake.set_quote(sym, q[0], q[1], bid_size=q[2], ask_size=q[3])
            self.last[sym] = q

    def seen(self, recs, inst, sym) -> bool:
        """A quote of ``inst`` with every field of one published (the latest or before)."""
        return any((r["bid_px"], r["ask_px"], r["bid_sz"], r["ask_sz"]) == self.quote(sym, r["bid_px"])
                   for r in _find(recs, inst, MD_QUOTE))

    def quote(self, sym, bid):
        k = round((bid - self.base[sym]) * 100)
        px = self.base[sym]
        return (px + k / 100, px + 0.5 + k / 100, 100 + k, 200 + k)


# -- against the fake TWS -----------------------------------------------------------------------
def test_stream_when_quotes_and_trades_of_a_stock_and_a_crypto_then_md_records_of_the_universe_ids(fake, md):
    t0, r0 = time.monotonic_ns(), time.time_ns()
    quotes = _Quotes(fake, {"AAPL": 189.5, "BTC": 64000.0})
    k = [0]

    def publish():
        quotes()
        k[0] += 1
        fake.publish_trade("SPY", 512.0 + k[0], 40 + k[0])
        fake.publish_trade("BTC", 64005.0 + k[0], 0.125 * k[0])

    def want(recs):
        return (quotes.seen(recs, AAPL, "AAPL") and quotes.seen(recs, BTC, "BTC")
                and len(_find(recs, SPY, MD_TRADE)) and len(_find(recs, BTC, MD_TRADE)))

    recs = _collect(md, publish, want)
    t1, r1 = time.monotonic_ns(), time.time_ns()
    q = _find(recs, AAPL, MD_QUOTE)[-1]
    assert (q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"]) == quotes.quote("AAPL", q["bid_px"])
    assert np.isnan(q["last_px"]) and np.isnan(q["last_sz"]) and q["bar_ns"] == 0 and q["aggressor"] == 0
    c = _find(recs, BTC, MD_QUOTE)[-1]
    assert (c["bid_px"], c["ask_px"], c["bid_sz"], c["ask_sz"]) == quotes.quote("BTC", c["bid_px"])
    for inst, px0, sz in ((SPY, 512.0, lambda j: 40 + j), (BTC, 64005.0, lambda j: 0.125 * j)):
        for t in _find(recs, inst, MD_TRADE):  # each trade once, with its own size
            j = round(t["last_px"] - px0)
            assert 1 <= j <= k[0] and t["last_sz"] == sz(j)
            assert np.isnan(t["bid_px"]) and np.isnan(t["ask_px"]) and t["bar_ns"] == 0
        js = [round(t["last_px"] - px0) for t in _find(recs, inst, MD_TRADE)]
        assert js == sorted(set(js))
    assert not len(recs[recs["kind"] == MD_BAR])  # bars: off by default
    # stamped at ingress: t_origin on CLOCK_MONOTONIC, ts_recv on the real clock, ts_exch the receipt
    assert np.all((recs["t_origin"] >= t0) & (recs["t_origin"] <= t1))
    assert np.all((recs["ts_recv"] >= r0) & (recs["ts_recv"] <= r1))
    assert np.all(recs["ts_exch"] == recs["ts_recv"])
    assert set(recs["seq"]) == {0}  # numbered when emitted
    s = md.stats()
    assert (s["connects"], s["reconnects"], s["resubscribes"], s["dropped"], s["errors"]) == (1, 0, 0, 0, 0), s
    assert s["connected"] and md.received >= len(recs)


def test_subscription_when_the_fake_has_a_book_then_its_quote_arrives_and_its_old_last_is_no_trade(fake):
    fake.set_quote("AAPL", 10.0, 10.5, bid_size=3, ask_size=4)
    fake.publish_trade("AAPL", 10.25, 9)  # before anyone subscribed: the state a subscription starts from
    m = _md(fake, symbols=["AAPL"]).start()
    try:
        recs = _collect(m, lambda: None, lambda r: len(_find(r, 0, MD_QUOTE)) > 0)
        time.sleep(0.3)
        out = np.zeros(64, MD_DTYPE)
        recs = np.concatenate([recs, out[: m.drain(out)]])
        q = _find(recs, 0, MD_QUOTE)[0]
        assert (q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"]) == (10.0, 10.5, 3, 4)
        assert not len(_find(recs, 0, MD_TRADE))
        recs = _collect(m, lambda: fake.publish_trade("AAPL", 10.3, 7), lambda r: len(_find(r, 0, MD_TRADE)) > 0)
        t = _find(recs, 0, MD_TRADE)[0]
        assert (t["last_px"], t["last_sz"]) == (10.3, 7)
    finally:
        m.stop()


def test_bars_when_trades_then_five_second_bars_at_their_close(fake):
    m = _md(fake, symbols=["AAPL"], bars=True, quotes=False).start()
    try:
        k = [0]

        def publish():
            k[0] += 1
            fake.publish_trade("AAPL", 100.0 + k[0], 10)

        recs = _collect(m, publish, lambda r: len(_find(r, 0, MD_BAR)) > 0, timeout_s=20)
    finally:
        m.stop()
    assert not len(_find(recs, 0, MD_QUOTE))  # quotes: off
    b = _find(recs, 0, MD_BAR)[0]
    assert b["bar_ns"] == BAR_NS == 5_000_000_000 and b["ts_exch"] % BAR_NS == 0
    assert b["ts_exch"] <= b["ts_recv"] + 10**9  # stamped at its close, known then
    assert 100.0 < b["low_px"] <= b["open_px"] <= b["high_px"] <= 100.0 + k[0]
    assert b["low_px"] <= b["last_px"] <= b["high_px"] and b["last_sz"] >= 10
    assert np.isnan(b["bid_px"]) and np.isnan(b["ask_px"])


def test_live_core_when_records_emitted_then_seq_strictly_increasing(fake, md):
    core = LiveFeedCore(md)
    core.seq = 41  # as a restarted feed stage resumes from the control block
    quotes = _Quotes(fake, {"AAPL": 100.0})
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL"))
    for i in range(5):  # one at a time: ib_async makes one ticker update of ticks read together
        pending = md.pending
        quotes()
        _wait(lambda: md.pending > pending, what=f"quote {i + 1} of 5 pending")
    assert core.next_due(time.monotonic_ns()) == 0 and core.ready()
    out, seqs = np.zeros(8, MD_DTYPE), []
    while (n := core.take(time.monotonic_ns(), 4)) > 0:
        assert core.emit(n, out, time.monotonic_ns(), time.time_ns()) == n
        seqs += list(out["seq"][:n])
    assert len(seqs) >= 5 and seqs == list(range(41, 41 + len(seqs)))


def test_reconnect_when_the_fake_drops_every_socket_then_once_and_resubscribed(fake, md):
    quotes = _Quotes(fake, {"AAPL": 10.0, "BTC": 20.0})
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL") and quotes.seen(r, BTC, "BTC"))
    assert md.reconnects == 0 and md.resubscribes == 0
    fake.drop_connections()
    _wait(lambda: md.reconnects >= 1, what="reconnected")
    quotes.base = {"AAPL": 11.0, "BTC": 21.0}  # only what arrives after the reconnect counts
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL") and quotes.seen(r, BTC, "BTC"))
    s = md.stats()
    assert (s["connects"], s["reconnects"], s["resubscribes"], s["disconnects"]) == (2, 1, 1, 1), s
    assert s["connected"]
    assert [c for c in fake.connects if c[0] == md.cfg.client_id] == [(18, "ok"), (18, "ok")]


def test_reconnect_when_the_nightly_reset_then_backoff_one_reconnect_and_data_again(fake, md):
    quotes = _Quotes(fake, {"AAPL": 10.0, "BTC": 20.0})
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL") and quotes.seen(r, BTC, "BTC"))
    t = time.monotonic()
    fake.nightly_reset(down_s=1.0, data_lost=True)
    _wait(lambda: md.reconnects >= 1, what="reconnected after the reset")
    assert time.monotonic() - t >= 0.9  # refused while down: the tries in between failed
    quotes.base = {"AAPL": 12.0, "BTC": 22.0}
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL") and quotes.seen(r, BTC, "BTC"))
    s = md.stats()
    assert s["reconnects"] == 1 and s["disconnects"] == 1 and s["connected"], s
    assert s["resubscribes"] in (1, 2), s  # the reconnect's, and 1101's when it came after it
    assert s["errors"] >= 1 and "connect" in s["last_error"], s  # the refused tries, with backoff
    assert any(line.startswith("1100") for line in md._log) and any(line.startswith("1101") for line in md._log)


def test_error_1101_when_connected_then_everything_resubscribed_and_1102_nothing(fake, md):
    quotes = _Quotes(fake, {"AAPL": 10.0, "BTC": 20.0})
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL") and quotes.seen(r, BTC, "BTC"))
    fake.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    _wait(lambda: not md.connected, what="1100 marks the link down")
    fake.send_error(1102, "Connectivity between IB and Trader Workstation has been restored - data maintained.")
    _wait(lambda: md.connected, what="1102 marks it up")
    assert md.resubscribes == 0
    fake.send_error(1101, "Connectivity between IB and Trader Workstation has been restored - data lost.")
    _wait(lambda: md.resubscribes == 1, what="1101 resubscribes")
    quotes.base = {"AAPL": 13.0, "BTC": 23.0}
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL") and quotes.seen(r, BTC, "BTC"))
    s = md.stats()
    assert (s["reconnects"], s["resubscribes"], s["errors"]) == (0, 1, 0), s


def test_farms_when_broken_and_ok_codes_then_the_health_state_moves(fake, md):
    _wait(lambda: md.farms.get("usfarm") is True, what="the connect's farm notices")  # 2104/2106/2158
    assert md.farms_down == 0 and md.farms == {"usfarm": True, "ushmds": True, "secdefnj": True}
    fake.send_error(2103, "Market data farm connection is broken:usfarm")
    fake.send_error(2105, "HMDS data farm connection is broken:ushmds")
    _wait(lambda: md.farms_down == 2, what="two farms down")
    assert md.farms["usfarm"] is False and md.stats()["farms_down"] == 2
    fake.send_error(2104, "Market data farm connection is OK:usfarm")
    _wait(lambda: md.farms_down == 1, what="usfarm OK again")
    fake.send_error(2106, "HMDS data farm connection is OK:ushmds")
    _wait(lambda: md.farms_down == 0, what="every farm OK")
    assert md.errors == 0  # farm codes are state, not errors
    fake.send_error(354, "Requested market data is not subscribed.", req_id=7)
    _wait(lambda: md.errors == 1, what="a real error counted")
    assert md.last_error.startswith("354")


def test_data_down_when_a_farm_breaks_or_the_link_is_lost_then_counted_until_ok(fake, md):
    quotes = _Quotes(fake, {"AAPL": 10.0, "BTC": 20.0})
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL") and quotes.seen(r, BTC, "BTC"))
    assert md.data_down() == 0
    fake.break_farm("usfarm", ["AAPL"])  # 2103; the fake withholds AAPL's ticks, BTC's still flow
    _wait(lambda: md.data_down() == 1, what="the broken farm counted")
    quotes.base = {"AAPL": 11.0, "BTC": 21.0}
    recs = _collect(md, quotes, lambda r: quotes.seen(r, BTC, "BTC"))
    assert not quotes.seen(recs, AAPL, "AAPL")
    fake.restore_farm("usfarm")  # 2104
    _wait(lambda: md.data_down() == 0, what="the farm OK again")
    quotes.base = {"AAPL": 12.0, "BTC": 22.0}
    _collect(md, quotes, lambda r: quotes.seen(r, AAPL, "AAPL"))
    fake.nightly_reset(down_s=1.0)  # 1100: the link lost counts until the reconnect's 1102
    _wait(lambda: md.data_down() == 1, what="the lost link counted")
    _wait(lambda: md.reconnects == 1 and md.data_down() == 0, what="reconnected: healthy")


def test_connect_when_client_id_in_use_then_backoff_and_connected(fake):
    fake.client_id_in_use(18, times=2)
    m = _md(fake, symbols=["AAPL"], connect_timeout_s=1.0).start()  # ib_async waits out its timeout on a 326
    try:
        _wait(lambda: m.connects == 1, what="connected after two 326s")
        assert [c for c in fake.connects if c[0] == 18] == [(18, "in_use"), (18, "in_use"), (18, "ok")]
        assert m.errors >= 2 and m.reconnects == 0
    finally:
        m.stop()


def test_stop_when_the_server_is_gone_then_the_thread_ends_in_bounded_time(fake):
    m = _md(fake, symbols=["AAPL"]).start()
    quotes = _Quotes(fake, {"AAPL": 1.0})
    _collect(m, quotes, lambda r: quotes.seen(r, 0, "AAPL"))
    fake.stop()  # the client now retries with backoff
    _wait(lambda: m.errors >= 2, what="refused tries")
    t = time.monotonic()
    m.stop()
    assert time.monotonic() - t < IbMarketData.STOP_TIMEOUT_S + 1 and not m.running
    assert m.reconnects == 0 and m.disconnects == 1


# -- without a server -------------------------------------------------------------------------
def _ticker(con_id, ticks, **state):
    fields = dict(bid=np.nan, ask=np.nan, bidSize=np.nan, askSize=np.nan, last=np.nan, lastSize=np.nan)
    fields.update(state)
    return SimpleNamespace(contract=SimpleNamespace(conId=con_id), ticks=[_tick(t, fields) for t in ticks], **fields)


def _tick(t, fields) -> SimpleNamespace:
    """ib_async's TickData: ``t`` a tick type (a print's price and size the ticker's last) or
    (tick type, price, size)."""
    if isinstance(t, tuple):
        return SimpleNamespace(tickType=t[0], price=t[1], size=t[2])
    last = t in (4, 5, 68, 71)
    return SimpleNamespace(tickType=t, price=fields["last"] if last else np.nan,
                           size=fields["lastSize"] if last else np.nan)


def _unit(cfg=None, capacity=64) -> IbMarketData:
    m = IbMarketData(SYMBOLS, cfg or IbFeed(), capacity=capacity, log=_Log())
    m._inst = {100: AAPL, 200: BTC, 300: SPY}
    return m


def _drained(m) -> np.ndarray:
    out = np.zeros(64, MD_DTYPE)
    return out[: m.drain(out)].copy()


def test_ticks_when_a_packet_moves_bid_ask_last_then_one_quote_then_one_trade():
    m = _unit()
    m._on_tickers([_ticker(100, [1, 2], bid=10.0, bidSize=5, ask=10.5, askSize=6)])
    m._on_tickers([_ticker(100, [1, 2, 4, 5], bid=10.1, bidSize=5, ask=10.6, askSize=6, last=10.2, lastSize=3)])
    m._on_tickers([_ticker(300, [4, 1], bid=5.0, bidSize=1, ask=5.1, askSize=2, last=5.05, lastSize=8)])
    r = _drained(m)
    assert list(zip(r["instrument"], r["kind"])) == [(AAPL, MD_QUOTE), (AAPL, MD_QUOTE), (AAPL, MD_TRADE),
                                                      (SPY, MD_TRADE), (SPY, MD_QUOTE)]  # in arrival order
    assert (r[1]["bid_px"], r[1]["bid_sz"], r[1]["ask_px"], r[1]["ask_sz"]) == (10.1, 5, 10.6, 6)
    assert (r[2]["last_px"], r[2]["last_sz"]) == (10.2, 3) and np.isnan(r[2]["bid_px"])
    assert (r[3]["last_px"], r[3]["last_sz"]) == (5.05, 8)


def test_ticks_when_only_one_side_known_or_empty_then_no_quote():
    m = _unit()
    m._on_tickers([_ticker(100, [1], bid=10.0, bidSize=5)])            # no ask yet
    m._on_tickers([_ticker(100, [2], bid=10.0, bidSize=5, ask=-1.0, askSize=0)])  # IB's empty side
    m._on_tickers([_ticker(999, [1, 2], bid=1.0, ask=2.0)])             # not of the universe
    m._on_tickers([_ticker(100, [8, 45])])                             # volume, last timestamp
    assert m.pending == 0
    m._on_tickers([_ticker(100, [3], bid=10.0, bidSize=5, ask=10.2, askSize=7)])  # a size alone moves it
    r = _drained(m)
    assert len(r) == 1 and (r[0]["bid_px"], r[0]["ask_px"], r[0]["ask_sz"]) == (10.0, 10.2, 7)


def test_ticks_when_a_size_alone_then_a_trade_only_if_the_last_trade_changed():
    m = _unit()
    m._on_tickers([_ticker(100, [4], last=10.0, lastSize=3)])
    m._on_tickers([_ticker(100, [5], last=10.0, lastSize=3)])   # the size repeated: the same trade
    m._on_tickers([_ticker(100, [5], last=10.0, lastSize=4)])   # a new size at the same price: a trade
    m._on_tickers([_ticker(100, [4], last=10.0, lastSize=4)])   # a last price: always a trade
    m._on_tickers([_ticker(100, [68, 71], last=10.1, lastSize=2)])  # delayed ticks alike
    r = _drained(m)
    assert list(r["kind"]) == [MD_TRADE] * 4
    assert [(t["last_px"], t["last_sz"]) for t in r] == [(10.0, 3), (10.0, 4), (10.0, 4), (10.1, 2)]


def test_ticks_when_two_prints_share_a_packet_then_each_is_a_trade_and_a_bad_one_is_counted():
    m = _unit()  # ib_async's ticker keeps only the packet's last print; each TickData keeps its own
    m._on_tickers([_ticker(100, [(4, 10.0, 3), (5, 10.0, 3), (4, 10.1, -1), (4, 10.2, 2)], last=10.2, lastSize=2)])
    r = _drained(m)
    assert [(t["last_px"], t["last_sz"]) for t in r] == [(10.0, 3), (10.2, 2)]
    assert m.bad_records()["negative_size"] == 1


def test_ticks_when_a_subscription_starts_then_its_snapshot_last_is_state_not_a_trade():
    m = _unit()
    m._fresh = {AAPL: -1, SPY: -1, BTC: -1}
    m._on_tickers([_ticker(100, [1, 2], bid=1.0, bidSize=1, ask=1.1, askSize=1)])
    m._on_tickers([_ticker(100, [4], bid=1.0, bidSize=1, ask=1.1, askSize=1, last=1.05, lastSize=9)])  # next packet
    m._on_tickers([_ticker(100, [5], last=1.05, lastSize=9)])  # its size again: still no trade
    m._on_tickers([_ticker(100, [4], last=1.06, lastSize=2)])  # the next last: a trade
    m._on_tickers([_ticker(300, [1, 2, 4], bid=2.0, bidSize=1, ask=2.1, askSize=1, last=2.05, lastSize=1)])
    m._on_tickers([_ticker(300, [4], last=2.07, lastSize=1)])
    r = _drained(m)
    assert list(zip(r["instrument"], r["kind"])) == [(AAPL, MD_QUOTE), (AAPL, MD_TRADE), (SPY, MD_QUOTE),
                                                      (SPY, MD_TRADE)]
    assert [t["last_px"] for t in r[r["kind"] == MD_TRADE]] == [1.06, 2.07]
    assert m._fresh == {BTC: -1}
    m.SNAPSHOT_NS = 0  # a snapshot without a last: the first trade after it is one
    m._on_tickers([_ticker(200, [1, 2], bid=3.0, bidSize=1, ask=3.1, askSize=1)])
    time.sleep(0.001)
    m._on_tickers([_ticker(200, [4], bid=3.0, bidSize=1, ask=3.1, askSize=1, last=3.05, lastSize=4)])
    r = _drained(m)
    assert list(r["kind"]) == [MD_QUOTE, MD_TRADE] and r[1]["last_px"] == 3.05 and m._fresh == {}


def test_ticks_when_quotes_or_trades_off_then_not_emitted():
    m = _unit(IbFeed(quotes=False))
    m._on_tickers([_ticker(100, [1, 2, 4], bid=1.0, ask=1.1, last=1.05, lastSize=2)])
    assert list(_drained(m)["kind"]) == [MD_TRADE]
    m = _unit(IbFeed(trades=False))
    m._on_tickers([_ticker(100, [1, 2, 4], bid=1.0, ask=1.1, last=1.05, lastSize=2)])
    assert list(_drained(m)["kind"]) == [MD_QUOTE]


def test_bar_when_received_then_stamped_at_its_close_and_not_kept():
    from datetime import datetime, timezone

    m = _unit(IbFeed(bars=True))
    start = datetime(2024, 3, 1, 14, 31, 5, tzinfo=timezone.utc)
    bars = [SimpleNamespace(time=start, open_=1.0, high=2.0, low=0.5, close=1.5, volume=12.5)]
    bars = type("Bars", (list,), {})(bars)
    bars.contract = SimpleNamespace(conId=200)
    m._bars = {BTC: bars}
    m._on_bar(bars, True)
    m._on_bar(type("Other", (list,), {})([bars]), True)  # another subscriber's list: not ours
    r = _drained(m)
    assert len(r) == 1 and len(bars) == 0
    b = r[0]
    assert (b["instrument"], b["kind"], b["bar_ns"]) == (BTC, MD_BAR, BAR_NS)
    assert b["ts_exch"] == int(start.timestamp()) * 10**9 + BAR_NS
    assert (b["open_px"], b["high_px"], b["low_px"], b["last_px"], b["last_sz"]) == (1.0, 2.0, 0.5, 1.5, 12.5)


def test_buffer_when_full_then_oldest_dropped_and_counted():
    m = _unit(capacity=3)
    rung = []
    m.notify = lambda: rung.append(1)
    for i in range(5):
        m._on_tickers([_ticker(300, [1], bid=float(i + 1), bidSize=1, ask=i + 1.5, askSize=2)])
    assert (m.pending, m.received, m.dropped, len(rung)) == (3, 5, 2, 5)
    out = np.zeros(2, MD_DTYPE)
    assert m.drain(out) == 2 and list(out["bid_px"]) == [3.0, 4.0] and set(out["instrument"]) == {SPY}
    assert m.drain(out) == 1 and out["bid_px"][0] == 5.0 and m.drain(out) == 0
    assert m.stats()["dropped"] == 2


def test_contracts_when_symbols_then_stock_or_crypto_on_the_configured_exchanges():
    cfg = IbFeed(stock_exchange="ISLAND", crypto_exchange="ZEROHASH")
    s, c = contract_for("AAPL", cfg), contract_for("ETH/USD", cfg)
    assert (s.secType, s.symbol, s.exchange, s.currency) == ("STK", "AAPL", "ISLAND", "USD")
    assert (c.secType, c.symbol, c.exchange, c.currency) == ("CRYPTO", "ETH", "ZEROHASH", "USD")
    d = contract_for("BTC/USD", IbFeed())
    assert (d.secType, d.symbol, d.exchange, d.currency) == ("CRYPTO", "BTC", "PAXOS", "USD")
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        contract_for("BTC/", cfg)
    with pytest.raises(ValueError, match="no symbol"):
        IbMarketData([])
    assert m_backoff() == [0.1, 0.2, 0.4, 0.5, 0.5]


def m_backoff():
    m = IbMarketData(["AAPL"], IbFeed(backoff_s=0.1, backoff_max_s=0.5))
    return [m.backoff_s(a) for a in range(5)]


# -- config --------------------------------------------------------------------------------
UNIVERSE = "universe: [{id: 0, symbol: AAPL}, {id: 1, symbol: BTC/USD}]\n"


def test_config_when_ib_with_replay_keys_then_valid_and_unused():
    cfg = decode_config(UNIVERSE + "feed: {source: ib, path: none.csv, format: binance, trades_path: t.csv, "
                                   "speed: max, loop: false, trade_from: '2024-01-02', "
                                   "ib: {host: gw.local, port: 7497, client_id: 30, bars: true, "
                                   "market_data_type: 3, crypto_exchange: ZEROHASH}}\n")
    i = cfg.feed.ib
    assert cfg.feed.source == "ib"
    assert (i.host, i.port, i.client_id, i.bars, i.market_data_type, i.crypto_exchange) == \
        ("gw.local", 7497, 30, True, 3, "ZEROHASH")
    d = decode_config(UNIVERSE).feed.ib
    assert d == IbFeed()
    assert (d.host, d.port, d.client_id, d.stock_exchange, d.crypto_exchange, d.quotes, d.trades, d.bars,
            d.market_data_type, d.backoff_s, d.backoff_max_s) == \
        ("127.0.0.1", 4002, 18, "SMART", "PAXOS", True, True, False, 1, 1.0, 30.0)


def test_config_when_feed_and_router_both_ib_then_client_ids_must_differ():
    with pytest.raises(ConfigError, match=r"feed\.ib\.client_id and router\.ib\.client_id are both 17"):
        decode_config(UNIVERSE + "feed: {source: ib, ib: {client_id: 17}}\nrouter: {venue: ib}\n")
    with pytest.raises(ConfigError, match=r"feed\.ib\.client_id and router\.ib\.client_id are both 5"):
        decode_config(UNIVERSE + "feed: {source: ib, ib: {client_id: 5}}\nrouter: {venue: ib, ib: {client_id: 5}}\n")
    cfg = decode_config(UNIVERSE + "feed: {source: ib}\nrouter: {venue: ib}\n")  # the defaults differ
    assert (cfg.feed.ib.client_id, cfg.router.ib.client_id) == (18, 17)
    decode_config(UNIVERSE + "feed: {source: ib, ib: {client_id: 17}}\n")  # no IB gateway: no clash


@pytest.mark.parametrize("feed, message", [
    ("{source: ib, also: [{path: x.csv}]}", "feed.also merges recorded files.*source ib is a live stream"),
    ("{source: ib, ib: {quotes: false, trades: false}}", "subscribe to one at least"),
    ("{source: ib, ib: {market_data_type: 5}}", r"\$\.feed\.ib\.market_data_type"),
    ("{source: ib, ib: {client_id: 0}}", r"\$\.feed\.ib\.client_id"),
    ("{source: ib, ib: {port: -1}}", r"\$\.feed\.ib\.port"),
    ("{source: ib, ib: {backoff_s: 5, backoff_max_s: 1}}", "backoff_max_s .* must be at least"),
    ("{source: ib, ib: {host: ''}}", r"feed\.ib\.host must not be empty"),
    ("{source: ib, ib: {account: DU1}}", r"unknown field `account`"),
    ("{source: ibkr}", r"\$\.feed\.source"),
])
def test_config_when_invalid_then_error_says_why(feed, message):
    with pytest.raises(ConfigError, match=message):
        decode_config(UNIVERSE + f"feed: {feed}\n")


# -- the feed stage ------------------------------------------------------------------------------
def _shell(cfg, *, wait="block"):
    """What FeedStage and Warmup read of a process runner, with the segments as plain arrays."""
    from alphad.daemon.shell.ports import out_port
    from alphad.daemon.shell.runner import ProcessRunner
    from alphad.ipc import control, metrics

    words = np.zeros(4096, np.int32)
    bells = SimpleNamespace(words=words, addr=words.ctypes.data)
    m, ctl = np.zeros(metrics.SIZE // 8, np.int64), np.zeros(control.SIZE // 8, np.int64)
    recs = np.zeros(256, MD_DTYPE)
    shell = SimpleNamespace(cfg=cfg, base=None, ctl=ctl, m=m, bells=bells, index=0, wait=wait,
                            bufs_dtype=ProcessRunner.bufs_dtype)
    shell.ports = {"md": out_port(recs, None, bells, m, ctl, 0)}
    return shell, recs


def test_feed_stage_when_source_ib_then_live_core_over_the_ib_client(fake):
    from alphad.daemon.shell.stages import FEED, FeedStage, Warmup
    from alphad.ipc.control import FEED_SEQ, stage_word

    cfg = decode_config(UNIVERSE + f"feed: {{source: ib, ib: {{port: {fake.port}, backoff_s: 0.1}}}}\n")
    shell, recs = _shell(cfg)
    with pytest.raises(ValueError, match="live market-data stream: a backtest or a replay needs a recording"):
        FeedStage(shell, simulated=True, bench_rate_hz=None)
    with pytest.raises(ValueError, match="alphad bench paces a recorded feed; feed.source ib"):
        FeedStage(shell, simulated=False, bench_rate_hz=1000.0)
    shell.ctl[stage_word(FEED, FEED_SEQ)] = 500  # a restarted feed stage: seq resumes
    stage = FeedStage(shell, simulated=False, bench_rate_hz=None)
    try:
        assert stage.live and isinstance(stage.source, IbMarketData) and isinstance(stage.core, LiveFeedCore)
        assert stage.core.seq == 500 and stage.source.symbols == ["AAPL", "BTC/USD"]
        assert not stage.source.running  # connects once warm
        stage.warm(Warmup(shell))
        assert stage.source.running
        shell.bells.words[1] = 1  # as if the loop slept: the network thread rings its doorbell
        k = [0]

        def publish():
            k[0] += 1
            fake.set_quote("AAPL", 50.0 + k[0] / 100, 50.5 + k[0] / 100)
            fake.publish_trade("BTC", 60000.0 + k[0], 0.5)

        deadline = time.monotonic() + 15
        while stage.source.pending == 0 and time.monotonic() < deadline:
            publish()
            time.sleep(0.2)
        assert stage.source.pending and shell.bells.words[0] > 0
        core, got = stage.core, []
        while (n := core.take(time.monotonic_ns(), 256)) > 0:
            n_pub, pushed = stage.publish(core.state, n, time.time_ns(), stage.port, -1)
            assert n_pub == pushed == n
            got.append(recs[:n].copy())
        got = np.concatenate(got)
        assert list(got["seq"]) == list(range(500, 500 + len(got)))
        assert set(got["instrument"]) <= {0, 1} and np.all(got["t_origin"] > 0)
    finally:
        stage.close()
    assert not stage.source.running


def test_recorded_paths_when_source_ib_then_refused(repo_root):
    from alphad.daemon.feed.sources import load_events, stream_events

    cfg = decode_config(UNIVERSE + "feed: {source: ib}\n")
    with pytest.raises(ValueError, match="feed.source ib is a live market-data stream"):
        load_events(cfg.feed, repo_root, cfg.universe)
    with pytest.raises(ValueError, match="feed.source ib is a live market-data stream"):
        next(stream_events(cfg.feed, repo_root, cfg.universe))
