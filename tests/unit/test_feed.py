"""Feed loaders on real files and the pacing of FeedCore on an injected clock."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon.feed.core import FeedCore
from alphad.daemon.feed.sources import load_binance, load_generic, load_lean_minute, parse_speed, synthetic
from alphad.ipc.dtypes import MD_DTYPE, MD_QUOTE, MD_TRADE

def poll(feed, now, now_real, out):
    """What the shell does with a feed: take the due events, emit them."""
    n = feed.take(now, len(out))
    return feed.emit(n, out, now, now_real) if n else 0


SYMS = {"BTCUSDT": 0, "ETHUSDT": 1}


def test_generic_when_demo_slice_then_quotes_and_trades_in_time_order(repo_root):
    md, skipped = load_generic(repo_root / "data/demo_btc_eth_quotes_trades.csv.gz", SYMS)
    assert skipped == 0 and len(md) == 44_282
    assert np.all(np.diff(md["ts_exch"]) >= 0)
    q = md[md["kind"] == MD_QUOTE]
    t = md[md["kind"] == MD_TRADE]
    assert len(q) + len(t) == len(md) and len(t) > 1000
    assert np.all(q["ask_px"] > q["bid_px"])
    assert np.all(t["last_px"] > 0) and np.all(np.isnan(t["bid_px"]))


def test_generic_when_unknown_kind_then_error_names_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz\n1,BTCUSDT,quoet,1,1,2,1,,\n")
    with pytest.raises(ValueError, match=r"x.csv:2: kind must be one of \['bar', 'quote', 'trade'\], was 'quoet'"):
        load_generic(p, SYMS)


def test_generic_when_column_missing_then_error_lists_expected_and_found(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("ts_ns,symbol,bid_px\n")
    with pytest.raises(ValueError, match="missing"):
        load_generic(p, SYMS)


@pytest.mark.data
def test_binance_when_book_ticker_and_trades_then_merged_by_receive_time(shared_data):
    l2 = shared_data / "l2"
    md, skipped = load_binance(l2 / "binance_spot_book_ticker.csv.gz", l2 / "binance_spot_trades.csv.gz", SYMS)
    assert skipped == 0
    assert (md["kind"] == MD_QUOTE).sum() == 131_932 and (md["kind"] == MD_TRADE).sum() == 34_419
    assert np.all(np.diff(md["ts_exch"]) >= 0)


@pytest.mark.data
def test_lean_minute_when_quote_bars_then_stamped_at_bar_end_in_utc(shared_data):
    md, skipped = load_lean_minute(shared_data / "intraday/lean_equity_minute_quotes.csv.gz", {"SPY": 0})
    assert skipped > 0 and len(md) > 1000
    # 2013-10-04 09:30 New York (EDT, UTC-4) bar ends 09:31 = 13:31 UTC
    first_session = md["ts_exch"] == np.datetime64("2013-10-04T13:31:00", "ns").astype(np.int64)
    assert first_session.sum() == 1
    assert np.all(md["ask_px"] >= md["bid_px"])


def test_synthetic_when_same_seed_then_same_events():
    a = synthetic(2000, 3, seed=5, rate_hz=1000, start_px=100, vol_bps=1, trade_ratio=0.2)
    b = synthetic(2000, 3, seed=5, rate_hz=1000, start_px=100, vol_bps=1, trade_ratio=0.2)
    c = synthetic(2000, 3, seed=6, rate_hz=1000, start_px=100, vol_bps=1, trade_ratio=0.2)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    q = a[a["kind"] == MD_QUOTE]
    assert np.all(q["ask_px"] > q["bid_px"])


def _events(ts):
    md = np.zeros(len(ts), MD_DTYPE)
    md["ts_exch"] = ts
    md["kind"] = MD_QUOTE
    return md


def test_feedcore_when_realtime_then_events_due_at_recorded_spacing():
    feed = FeedCore(_events([0, 1_000, 5_000]), speed=1.0)
    out = np.zeros(8, MD_DTYPE)
    assert poll(feed, 100, 0, out) == 1  # clock starts at 100
    assert feed.next_due(100) == 1_000
    assert poll(feed, 1_099, 0, out) == 0
    assert poll(feed, 1_100, 7, out) == 1 and out[0]["t_origin"] == 1_100 and out[0]["ts_recv"] == 7
    assert poll(feed, 10_000, 0, out) == 1 and out[0]["seq"] == 3
    assert feed.next_due(10_000) == -1 and feed.exhausted


def test_feedcore_when_speed_ten_and_loop_then_time_compressed_and_seq_keeps_rising():
    feed = FeedCore(_events([0, 1_000]), speed=10.0, loop=True)
    out = np.zeros(8, MD_DTYPE)
    assert poll(feed, 0, 0, out) == 1
    assert feed.next_due(0) == 100
    assert poll(feed, 100, 0, out) == 1
    # second loop: shifted by the recording's span (1001 ns / 10), both events now due
    assert poll(feed, 10_000, 0, out) == 2 and list(out[:2]["seq"]) == [3, 4] and feed.loops == 1


def test_feedcore_when_rate_then_one_tick_per_period():
    feed = FeedCore(_events([0, 0, 0, 0]), rate_hz=1000.0)
    out = np.zeros(8, MD_DTYPE)
    assert poll(feed, 0, 0, out) == 1
    assert poll(feed, 5_000_000, 0, out) == 1  # late: still one per poll, never a burst
    assert feed.next_due(5_000_000) == 0


def test_parse_speed():
    assert parse_speed("realtime") == 1.0 and parse_speed("max") == 0.0 and parse_speed("2.5") == 2.5
    with pytest.raises(ValueError, match="feed.speed"):
        parse_speed("fast")
