"""Paper venue on an instrument quoted by bars only (``_on_bar``): an order fills on the
open of the first bar that starts after it arrived, plus the venue's half spread, never on
the bar it was decided on; limits fill at the open when it is through them, at the limit
when the bar reached it, and otherwise wait."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon.router.order_fsm import LIQ_TAKER, REJ_UNKNOWN_INSTRUMENT
from alphad.daemon.router.venues.paper import PaperVenue, VenueSpec
from alphad.ipc.dtypes import EXEC_ACK, EXEC_DTYPE, EXEC_FILL, EXEC_REJECT, MD_BAR, MD_DTYPE, ORDER_LIMIT, ORDER_MARKET

HOUR = 3_600_000_000_000
SESSION = 6 * HOUR + HOUR // 2  # a daily bar: 09:30 .. 16:00


def _venue(half_spread_bps=2.0, taker_bps=1.0):
    return PaperVenue(VenueSpec("p", taker_bps=taker_bps, bar_half_spread_bps=half_spread_bps), 2,
                      tick=0.01, lot=1.0, depth=1)


def _bar(v, day, open_, high, low, close, instrument=0):
    """Day ``day``'s bar of ``instrument``, stamped at its 16:00 close (day 0's close is t=0)."""
    md = np.zeros(1, MD_DTYPE)
    t = day * 24 * HOUR
    md[0] = (0, t, t, 0, instrument, MD_BAR, 0, 0, np.nan, np.nan, np.nan, np.nan, close, 1e6, open_, high, low,
             SESSION)
    v.on_md(md, t)
    return t


def _poll(v, now):
    out = np.zeros(64, EXEC_DTYPE)
    return out[: v.poll(now, out)].copy()


def test_bar_venue_when_no_bar_yet_then_order_rejected_unknown_instrument():
    v = _venue()
    v.submit_fields(1, 0, 1, ORDER_MARKET, 10.0, np.nan, 0)
    rep = _poll(v, 0)
    assert rep["status"].tolist() == [EXEC_REJECT] and rep[0]["reason"] == REJ_UNKNOWN_INSTRUMENT


@pytest.mark.parametrize("side", [1, -1])
def test_market_order_when_decided_on_a_close_then_fills_on_the_next_open_plus_half_spread(side):
    v = _venue(half_spread_bps=2.0, taker_bps=1.0)
    t0 = _bar(v, 0, 99.0, 101.0, 98.0, 100.0)  # the bar the order is decided on
    v.submit_fields(7, 0, side, ORDER_MARKET, 10.0, np.nan, t0)  # arrives at t0: day 0's close
    assert _poll(v, t0)["status"].tolist() == [EXEC_ACK]  # accepted, waiting for a bar
    _bar(v, 0, 99.0, 101.0, 98.0, 100.0, instrument=1)  # another stock's bar: not this one's
    assert len(_poll(v, t0)) == 0
    t1 = _bar(v, 1, 102.0, 104.0, 101.0, 103.0)
    rep = _poll(v, t1)
    assert rep["status"].tolist() == [EXEC_FILL]
    want = 102.0 * (1 + side * 2e-4)  # day 1's open, the half spread paid on the order's side
    assert rep[0]["fill_px"] == pytest.approx(want, rel=1e-15)
    assert rep[0]["fill_qty"] == 10.0 and rep[0]["fee"] == pytest.approx(10.0 * want * 1e-4)
    assert rep[0]["reason"] == LIQ_TAKER and rep[0]["ts"] == t1  # known when the bar is
    assert v.mass_status(t1).positions[0] == side * 10.0


def test_market_order_when_it_arrives_after_the_bar_started_then_waits_for_the_bar_after():
    v = _venue()
    _bar(v, 0, 99.0, 101.0, 98.0, 100.0)
    t_late = 24 * HOUR - SESSION + 1  # day 1 at 09:30 and 1 ns: day 1's open has traded
    v.submit_fields(8, 0, 1, ORDER_MARKET, 5.0, np.nan, t_late)
    _poll(v, t_late)
    t1 = _bar(v, 1, 102.0, 104.0, 101.0, 103.0)
    assert len(_poll(v, t1)) == 0
    t2 = _bar(v, 2, 105.0, 106.0, 104.0, 105.5)
    rep = _poll(v, t2)
    assert rep["status"].tolist() == [EXEC_FILL] and rep[0]["fill_px"] == pytest.approx(105.0 * 1.0002)


@pytest.mark.parametrize("limit, want", [(103.0, 102.0 * 1.0002),  # open through the limit: the open
                                         (101.5, 101.5),            # the low reached it: the limit
                                         (100.5, None)])            # never reached: waits
def test_buy_limit_when_the_next_bar_trades_then_fills_at_open_or_limit_or_waits(limit, want):
    v = _venue()
    t0 = _bar(v, 0, 99.0, 101.0, 98.0, 100.0)
    v.submit_fields(9, 0, 1, ORDER_LIMIT, 3.0, limit, t0)
    _poll(v, t0)
    t1 = _bar(v, 1, 102.0, 104.0, 101.0, 103.0)
    rep = _poll(v, t1)
    if want is None:
        assert len(rep) == 0 and v.resting(9) is not None
    else:
        assert rep["status"].tolist() == [EXEC_FILL] and rep[0]["fill_px"] == pytest.approx(want, rel=1e-15)


def test_sell_limit_when_the_bar_high_reaches_it_then_fills_at_the_limit():
    v = _venue()
    t0 = _bar(v, 0, 99.0, 101.0, 98.0, 100.0)
    v.submit_fields(10, 0, -1, ORDER_LIMIT, 3.0, 103.5, t0)
    _poll(v, t0)
    rep = _poll(v, _bar(v, 1, 102.0, 104.0, 101.0, 103.0))
    assert rep["status"].tolist() == [EXEC_FILL] and rep[0]["fill_px"] == 103.5


def test_generic_csv_when_bars_carry_ohlc_columns_then_md_bar_records_hold_them(tmp_path):
    from alphad.daemon.feed.sources import load_generic

    (tmp_path / "bars.csv").write_text(
        "ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz,open_px,high_px,low_px,bar_ns\n"
        "60000000000,AAA,bar,,,,,10.5,1200,10.0,10.75,9.5,60000000000\n"
        "60000000001,AAA,quote,10.4,5,10.6,7,,,,,,\n")
    md, skipped = load_generic(tmp_path / "bars.csv", {"AAA": 0})
    assert skipped == 0 and md["kind"].tolist() == [MD_BAR, 1]
    b = md[0]
    assert (b["open_px"], b["high_px"], b["low_px"], b["last_px"], b["last_sz"], b["bar_ns"]) == \
        (10.0, 10.75, 9.5, 10.5, 1200.0, 60_000_000_000)
    (tmp_path / "close_only.csv").write_text(
        "ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz\n1,AAA,bar,,,,,10.5,1200\n")
    md, _ = load_generic(tmp_path / "close_only.csv", {"AAA": 0})
    assert (md[0]["open_px"], md[0]["high_px"], md[0]["low_px"], md[0]["bar_ns"]) == (10.5, 10.5, 10.5, 0)


def test_daily_feed_when_an_order_arrives_after_the_close_with_latency_then_it_fills_on_the_next_open(shared_data):
    """The daily feed's bars span the 09:30-16:00 session: an order decided on a close that
    reaches the venue some milliseconds later still fills on the next day's open."""
    from alphad.daemon.feed.sources import load_daily

    md, _ = load_daily(shared_data / "daily/us_equities_daily_1999-2021.csv.gz", {"KO": 0})
    v = _venue()
    v.on_md(md[:1], int(md[0]["ts_exch"]))
    v.submit_fields(11, 0, 1, ORDER_MARKET, 10.0, np.nan, int(md[0]["ts_exch"]) + 5_000_000)  # 5 ms after
    _poll(v, int(md[0]["ts_exch"]) + 5_000_000)
    v.on_md(md[1:2], int(md[1]["ts_exch"]))
    rep = _poll(v, int(md[1]["ts_exch"]))
    assert rep["status"].tolist() == [EXEC_FILL]
    assert rep[0]["fill_px"] == pytest.approx(md[1]["open_px"] * 1.0002, rel=1e-15)
