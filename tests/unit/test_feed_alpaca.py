"""``feed.source: alpaca``: Alpaca's stock and crypto streams into md records, against the
wire-level fake (``ops/fake_alpaca.py``), the live feed core, the feed stage's choice of it,
the GIL-free wait of a live feed's process, and the config's errors."""
from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import msgpack
import numpy as np
import pytest

from alphad.daemon.config import ConfigError, decode_config
from alphad.daemon.feed.alpaca import BAR_NS, AlpacaMarketData, MissingCredentials, timestamp_ns
from alphad.daemon.feed.config import AlpacaFeed
from alphad.daemon.feed.core import LiveFeedCore
from alphad.ipc.dtypes import MD_BAR, MD_DTYPE, MD_QUOTE, MD_TRADE

KEYS = {"APCA_API_KEY_ID": "fake-key", "APCA_API_SECRET_KEY": "fake-secret"}
SYMBOLS = ["AAPL", "BTC/USD", "SPY"]  # ids 0, 1, 2


def _alpaca_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "alpaca-md"]


@pytest.fixture(autouse=True)
def no_thread_left():
    """Every test ends with its market-data threads stopped."""
    yield
    deadline = time.monotonic() + 5
    while _alpaca_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alpaca_threads() == []


@pytest.fixture
def fake():
    from alphad.ops.fake_alpaca import FakeAlpaca

    f = FakeAlpaca(port=0).start()
    yield f
    f.stop()


def _cfg(fake, **kw) -> AlpacaFeed:
    return AlpacaFeed(stock_url_override=fake.stock_data_url, crypto_url_override=fake.crypto_data_url, **kw)


@pytest.fixture
def md(fake):
    m = AlpacaMarketData(SYMBOLS, _cfg(fake, bars=True), env=KEYS).start()
    yield m
    m.stop()
    assert not m.running


def _collect(md: AlpacaMarketData, publish, want, timeout_s: float = 15.0) -> np.ndarray:
    """Publish (again every 0.2 s: a publish before the subscription reaches the server
    goes nowhere) and drain until ``want(records)`` holds; returns what was drained."""
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
    pytest.fail(f"not received within {timeout_s} s; got {len(recs)} records, {md.stats()}")


def _find(recs, inst, kind, **fields):
    """The records of ``inst`` and ``kind`` whose fields equal ``fields``."""
    sel = (recs["instrument"] == inst) & (recs["kind"] == kind)
    for name, v in fields.items():
        sel &= recs[name] == v
    return recs[sel]


# -- against the fake server ------------------------------------------------------------------
def test_stream_when_quotes_trades_bars_then_md_records_of_the_universe_ids(fake, md):
    t0, r0 = time.monotonic_ns(), time.time_ns()

    def publish():
        fake.set_quote("AAPL", 189.5, 189.52, bid_size=300, ask_size=200)
        fake.set_quote("BTC/USD", 64000.0, 64010.5, bid_size=0.25, ask_size=1.5)
        fake.publish_trade("SPY", 512.25, 40)
        fake.publish_trade("BTC/USD", 64005.0, 0.125)
        fake.publish_bar("AAPL", 189.0, 190.0, 188.5, 189.75, 12345)

    def want(recs):
        return all(len(_find(recs, i, k)) for i, k in ((0, MD_QUOTE), (1, MD_QUOTE), (2, MD_TRADE), (1, MD_TRADE),
                                                        (0, MD_BAR)))

    recs = _collect(md, publish, want)
    t1, r1 = time.monotonic_ns(), time.time_ns()
    q = _find(recs, 0, MD_QUOTE)[0]
    assert (q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"]) == (189.5, 189.52, 300, 200)
    assert np.isnan(q["last_px"]) and q["bar_ns"] == 0
    c = _find(recs, 1, MD_QUOTE)[0]
    assert (c["bid_px"], c["ask_px"], c["bid_sz"], c["ask_sz"]) == (64000.0, 64010.5, 0.25, 1.5)
    t = _find(recs, 2, MD_TRADE)[0]
    assert (t["last_px"], t["last_sz"]) == (512.25, 40) and np.isnan(t["bid_px"])
    ct = _find(recs, 1, MD_TRADE)[0]
    assert (ct["last_px"], ct["last_sz"]) == (64005.0, 0.125)
    b = _find(recs, 0, MD_BAR)[0]
    assert (b["open_px"], b["high_px"], b["low_px"], b["last_px"], b["last_sz"]) == (189.0, 190.0, 188.5, 189.75,
                                                                                      12345)
    assert b["bar_ns"] == BAR_NS
    # stamped at ingress: t_origin on CLOCK_MONOTONIC, ts_recv on the real clock, exchange time from the message
    assert np.all((recs["t_origin"] >= t0) & (recs["t_origin"] <= t1))
    assert np.all((recs["ts_recv"] >= r0) & (recs["ts_recv"] <= r1))
    live = recs[recs["kind"] != MD_BAR]
    assert np.all(np.abs(live["ts_exch"] - live["ts_recv"]) < 60 * 10**9)
    assert set(recs["seq"]) == {0}  # numbered when emitted
    assert md.received >= len(recs) and md.dropped == 0 and md.connects == 2 and md.reconnects == 0


def test_bar_when_streamed_then_stamped_at_its_close(fake, md):
    from datetime import datetime, timezone

    start = datetime(2024, 3, 1, 14, 31, tzinfo=timezone.utc)  # the bar of 14:31-14:32 UTC
    recs = _collect(md, lambda: (fake.publish_bar("SPY", 1.0, 2.0, 0.5, 1.5, 10, ts=start),
                                 fake.publish_bar("BTC/USD", 3.0, 4.0, 2.5, 3.5, 0.75, ts=start)),
                    lambda r: len(_find(r, 2, MD_BAR)) > 0 and len(_find(r, 1, MD_BAR)) > 0)
    close_ns = int(start.timestamp()) * 10**9 + BAR_NS
    s, c = _find(recs, 2, MD_BAR)[0], _find(recs, 1, MD_BAR)[0]
    assert s["ts_exch"] == c["ts_exch"] == close_ns and s["bar_ns"] == c["bar_ns"] == BAR_NS
    assert (c["open_px"], c["high_px"], c["low_px"], c["last_px"], c["last_sz"]) == (3.0, 4.0, 2.5, 3.5, 0.75)
    assert np.isnan(s["bid_px"]) and np.isnan(s["ask_px"])


def test_live_core_when_records_emitted_then_seq_strictly_increasing_and_ingress_stamps_kept(fake, md):
    core = LiveFeedCore(md)
    core.seq = 41  # as a restarted feed stage resumes from the control block
    assert core.next_due(time.monotonic_ns()) == LiveFeedCore.IDLE_NS and not core.exhausted
    k = [0]

    def publish():
        k[0] += 1
        fake.set_quote("AAPL", 100.0 + k[0] / 100, 100.5 + k[0] / 100)

    _collect(md, publish, lambda r: True)  # subscribed: quotes arrive
    for _ in range(20):
        publish()
    deadline = time.monotonic() + 10
    while md.pending < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert core.next_due(time.monotonic_ns()) == 0 and core.ready()
    out, seqs, stamps = np.zeros(8, MD_DTYPE), [], []
    while True:
        now = time.monotonic_ns()
        n = core.take(now, len(out) // 2)  # small batches: several passes
        if n == 0:
            break
        assert core.emit(n, out, now, time.time_ns()) == n
        assert np.all(out["t_origin"][:n] == now)  # stamped as they enter the pipeline, as a replay's are
        seqs += list(out["seq"][:n])
        stamps += list(out["ts_recv"][:n])
    assert len(seqs) >= 5 and seqs == list(range(41, 41 + len(seqs)))
    assert core.seq == 41 + len(seqs) and core.pos <= 4
    assert all(s > 0 for s in stamps)


def test_stream_when_server_drops_connections_then_reconnects_and_resubscribes(fake, md):
    _collect(md, lambda: (fake.set_quote("AAPL", 10.0, 10.1), fake.set_quote("BTC/USD", 20.0, 20.5)),
             lambda r: len(_find(r, 0, MD_QUOTE)) and len(_find(r, 1, MD_QUOTE)))
    assert md.reconnects == 0
    fake.drop_streams()
    recs = _collect(md, lambda: (fake.set_quote("AAPL", 11.0, 11.1), fake.set_quote("BTC/USD", 21.0, 21.5)),
                    lambda r: len(_find(r, 0, MD_QUOTE, bid_px=11.0)) and len(_find(r, 1, MD_QUOTE, bid_px=21.0)),
                    timeout_s=30)
    assert len(recs) and md.reconnects >= 2 and md.connects >= 4  # both streams back, subscribed again


def test_stop_when_server_is_gone_then_the_thread_ends_in_bounded_time(fake):
    m = AlpacaMarketData(["AAPL"], _cfg(fake), env=KEYS).start()
    _collect(m, lambda: fake.set_quote("AAPL", 1.0, 1.1), lambda r: True)
    fake.stop()  # the streams now retry with backoff
    time.sleep(0.5)
    t = time.monotonic()
    m.stop()
    assert time.monotonic() - t < AlpacaMarketData.STOP_TIMEOUT_S + 1 and not m.running


def test_stream_when_wrong_keys_then_errors_counted_and_no_key_printed(fake, capsys):
    m = AlpacaMarketData(["AAPL"], _cfg(fake), env={**KEYS, "APCA_API_SECRET_KEY": "not-the-secret"}).start()
    try:
        deadline = time.monotonic() + 10
        while m.errors == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert m.errors >= 1 and m.connects == 0, m.stats()
    finally:
        m.stop()
    out = capsys.readouterr()
    assert "not-the-secret" not in out.out + out.err + repr(m) + str(m.stats())


# -- without a server -------------------------------------------------------------------------
def test_keys_when_key_missing_then_error_names_the_variable():
    with pytest.raises(MissingCredentials, match="APCA_API_KEY_ID"):
        AlpacaMarketData(["AAPL"], AlpacaFeed(), env={"APCA_API_SECRET_KEY": "s"})
    with pytest.raises(MissingCredentials, match="APCA_API_SECRET_KEY"):
        AlpacaMarketData(["AAPL"], AlpacaFeed(), env={"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": ""})
    with pytest.raises(MissingCredentials, match="MY_KEY") as e:
        AlpacaMarketData(["AAPL"], AlpacaFeed(key_env="MY_KEY", secret_env="MY_SECRET"), env={"MY_SECRET": "hush"})
    assert "hush" not in str(e.value)
    assert _alpaca_threads() == []


def test_keys_when_from_the_process_environment_then_read_at_start(monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
    with pytest.raises(MissingCredentials, match="APCA_API_KEY_ID"):
        AlpacaMarketData(["AAPL"])
    monkeypatch.setenv("APCA_API_KEY_ID", "KEY-7f3a")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "SECRET-9b1c")
    m = AlpacaMarketData(["AAPL", "ETH/USD"])
    assert (m.stocks, m.crypto) == (["AAPL"], ["ETH/USD"])
    assert "KEY-7f3a" not in repr(m) + str(m.stats()) and "SECRET-9b1c" not in repr(m) + str(m.stats())


def test_buffer_when_full_then_oldest_dropped_and_counted():
    m = AlpacaMarketData(SYMBOLS, AlpacaFeed(), env=KEYS, capacity=3)
    rung = []
    m.notify = lambda: rung.append(1)

    async def feed():
        for i in range(5):
            await m._on_quote({"T": "q", "S": "SPY", "bp": float(i + 1), "bs": 1, "ap": i + 1.5, "as": 2,
                               "t": msgpack.Timestamp(1_700_000_000, i)})
        await m._on_quote({"T": "q", "S": "NOT-IN-UNIVERSE", "bp": 1.0, "ap": 2.0})

    asyncio.run(feed())
    assert (m.pending, m.received, m.dropped, len(rung)) == (3, 5, 2, 5)
    out = np.zeros(2, MD_DTYPE)
    assert m.drain(out) == 2 and list(out["bid_px"]) == [3.0, 4.0]
    assert list(out["ts_exch"]) == [1_700_000_000_000_000_002, 1_700_000_000_000_000_003]
    assert set(out["instrument"]) == {2}
    assert m.drain(out) == 1 and out["bid_px"][0] == 5.0 and m.drain(out) == 0


def test_crypto_trade_when_taker_side_then_aggressor():
    m = AlpacaMarketData(SYMBOLS, AlpacaFeed(), env=KEYS)

    async def feed():
        await m._on_trade({"T": "t", "S": "BTC/USD", "p": 1.0, "s": 2.0, "tks": "B", "t": "2024-03-01T12:00:00Z"})
        await m._on_trade({"T": "t", "S": "BTC/USD", "p": 1.0, "s": 2.0, "tks": "S", "t": "2024-03-01T12:00:00Z"})
        await m._on_trade({"T": "t", "S": "AAPL", "p": 1.0, "s": 2.0, "t": "2024-03-01T12:00:00Z"})

    asyncio.run(feed())
    out = np.zeros(4, MD_DTYPE)
    assert m.drain(out) == 3 and list(out["aggressor"][:3]) == [1, -1, 0]


def test_timestamp_when_each_wire_form_then_ns_since_epoch():
    from datetime import datetime, timezone

    ns = 1_709_294_400_123_456_789  # 2024-03-01T12:00:00.123456789Z
    assert timestamp_ns(msgpack.Timestamp.from_unix_nano(ns), 0) == ns
    assert timestamp_ns("2024-03-01T12:00:00.123456789Z", 0) == ns
    assert timestamp_ns("2024-03-01T07:00:00.123456789-05:00", 0) == ns
    assert timestamp_ns("2024-03-01T12:00:00Z", 0) == ns - 123_456_789
    assert timestamp_ns(datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), 0) == ns - 789
    assert timestamp_ns(ns, 0) == ns
    assert timestamp_ns(None, 7) == 7 and timestamp_ns("garbage", 7) == 7


# -- config --------------------------------------------------------------------------------
UNIVERSE = "universe: [{id: 0, symbol: AAPL}, {id: 1, symbol: BTC/USD}]\n"


def test_config_when_alpaca_with_replay_keys_then_valid_and_unused():
    cfg = decode_config(UNIVERSE + "feed: {source: alpaca, path: none.csv, format: binance, trades_path: t.csv, "
                                   "speed: max, loop: false, trade_from: '2024-01-02', "
                                   "alpaca: {stocks_feed: sip, bars: true, key_env: K, secret_env: S}}\n")
    a = cfg.feed.alpaca
    assert cfg.feed.source == "alpaca"
    assert (a.stocks_feed, a.quotes, a.trades, a.bars, a.key_env, a.secret_env) == ("sip", True, True, True, "K", "S")
    assert (a.stock_url_override, a.crypto_url_override) == ("", "")
    assert decode_config(UNIVERSE).feed.alpaca == AlpacaFeed()


@pytest.mark.parametrize("feed, message", [
    ("{source: alpaca, also: [{path: x.csv}]}", "feed.also merges recorded files.*source alpaca is a live stream"),
    ("{source: alpaca, alpaca: {quotes: false, trades: false}}", "subscribe to one at least"),
    ("{source: alpaca, alpaca: {stock_url_override: 'http://x'}}", r"stock_url_override expected a ws://"),
    ("{source: alpaca, alpaca: {stocks_feed: otc}}", r"\$\.feed\.alpaca\.stocks_feed"),
    ("{source: alpaca, alpaca: {api_key: abc}}", r"unknown field `api_key`"),
    ("{source: alpaca, alpaca: {key_env: ''}}", "key_env must name an environment variable"),
    ("{source: alpaka}", r"\$\.feed\.source"),
])
def test_config_when_invalid_then_error_says_why(feed, message):
    with pytest.raises(ConfigError, match=message):
        decode_config(UNIVERSE + f"feed: {feed}\n")


# -- the feed stage and the loop's wait ---------------------------------------------------------
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


def _alpaca_config(fake):
    return decode_config(f"universe: [{{id: 0, symbol: AAPL}}, {{id: 1, symbol: BTC/USD}}]\n"
                         f"feed: {{source: alpaca, alpaca: {{stock_url_override: '{fake.stock_data_url}', "
                         f"crypto_url_override: '{fake.crypto_data_url}'}}}}\n")


def test_feed_stage_when_source_alpaca_then_live_core_and_compiled_publish(fake, monkeypatch):
    from alphad.daemon.shell.stages import FEED, FeedStage, Warmup
    from alphad.ipc.control import FEED_SEQ, stage_word

    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    cfg = _alpaca_config(fake)
    shell, recs = _shell(cfg)
    with pytest.raises(ValueError, match="live market-data stream: a backtest or a replay needs a recording"):
        FeedStage(shell, simulated=True, bench_rate_hz=None)
    shell.ctl[stage_word(FEED, FEED_SEQ)] = 500  # a restarted feed stage: seq resumes
    stage = FeedStage(shell, simulated=False, bench_rate_hz=None)
    try:
        assert stage.live and isinstance(stage.core, LiveFeedCore) and stage.core.seq == 500
        assert not stage.source.running  # connects once warm
        stage.warm(Warmup(shell))
        assert stage.source.running
        shell.bells.words[1] = 1  # as if the loop slept: the network thread rings its doorbell
        deadline = time.monotonic() + 15
        while stage.source.pending == 0 and time.monotonic() < deadline:
            fake.set_quote("AAPL", 50.0, 50.5)
            fake.publish_trade("BTC/USD", 60000.0, 0.5)
            time.sleep(0.2)
        assert stage.source.pending and shell.bells.words[0] > 0
        core, got = stage.core, []
        while (n := core.take(time.monotonic_ns(), 256)) > 0:
            k, pushed = stage.publish(core.state, n, time.time_ns(), stage.port, -1)
            assert k == pushed == n
            got.append(recs[:n].copy())
        got = np.concatenate(got)
        assert list(got["seq"]) == list(range(500, 500 + len(got)))
        assert shell.ctl[stage_word(FEED, FEED_SEQ)] == 500 + len(got)  # what a restart resumes from
        assert set(got["instrument"]) <= {0, 1} and np.all(got["t_origin"] > 0)
    finally:
        stage.close()
    assert not stage.source.running


def test_feed_stage_when_replay_source_then_the_recorded_core(repo_root):
    from alphad.daemon.feed.core import FeedCore
    from alphad.daemon.shell.stages import FeedStage

    cfg = decode_config("universe: [{id: 0, symbol: BTCUSDT}, {id: 1, symbol: ETHUSDT}]\n"
                        "feed: {source: replay, path: data/demo_btc_eth_quotes_trades.csv.gz}\n")
    shell, _ = _shell(cfg)
    shell.base = repo_root
    stage = FeedStage(shell, simulated=False, bench_rate_hz=None)
    assert not stage.live and type(stage.core) is FeedCore


def test_live_wait_when_rung_from_another_thread_then_wakes_and_lets_it_run():
    from alphad.daemon.shell.tick import sleep_releasing_gil
    from alphad.ipc.doorbell import arm, ring_doorbell

    words = np.zeros(64 * 16, np.int32)
    addr = words.ctypes.data
    ts = np.array([5, 0], np.int64)  # 5 s: woken long before
    ran = []

    def ring():
        ran.append(time.monotonic())  # Python code: needs the GIL while the main thread waits
        ring_doorbell(words, addr, 3)

    seq = arm(words, 3)
    t = time.monotonic()
    threading.Timer(0.1, ring).start()
    sleep_releasing_gil(words, addr, 3, seq, ts.ctypes.data)
    assert ran and time.monotonic() - t < 2.0 and words[3 * 16 + 1] == 0 and words[3 * 16] == seq + 1


def test_recorded_paths_when_source_alpaca_then_refused(repo_root):
    from alphad.daemon.feed.sources import load_events, stream_events

    cfg = decode_config(UNIVERSE + "feed: {source: alpaca}\n")
    with pytest.raises(ValueError, match="live market-data stream: a backtest or a replay needs a recording"):
        load_events(cfg.feed, repo_root, cfg.universe)
    with pytest.raises(ValueError, match="live market-data stream"):
        next(stream_events(cfg.feed, repo_root, cfg.universe))
