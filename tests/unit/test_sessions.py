"""daemon/risk/sessions.py: session tables from exchange_calendars and the compiled lookups.

The outcomes are checked against known dates (holidays, weekends, an early close, daylight
saving) and against ``exchange_calendars``' own schedule, read directly.
"""
from __future__ import annotations

import time
import warnings

import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest

from alphad.daemon.risk.sessions import (
    ALWAYS_OPEN,
    SessionTable,
    build_session_table,
    in_session,
    next_open,
    session_index,
)

INT64_MAX = np.iinfo(np.int64).max
HOUR = 3_600_000_000_000
DAY = 24 * HOUR


def ns(text: str) -> int:
    """A UTC time as int64 ns since the epoch."""
    return pd.Timestamp(text, tz="UTC").value


def ts(value: int) -> pd.Timestamp:
    return pd.Timestamp(int(value), tz="UTC")


@pytest.fixture(scope="module")
def nyse() -> SessionTable:
    return build_session_table(["XNYS"], ns("2017-01-01"), ns("2021-04-30 23:59"))


def lookups(table: SessionTable, c: int):
    """The three compiled lookups bound to row ``c`` of ``table``."""
    args = (table.opens, table.closes, table.counts, c)
    return (lambda now: session_index(*args, now), lambda now: in_session(*args, now),
            lambda now: next_open(*args, now))


def test_xnys_independence_day_observed_on_friday_2020_07_03_has_no_session(nyse):
    index, inside, _ = lookups(nyse, 0)
    assert not inside(ns("2020-07-03 15:00"))
    assert inside(ns("2020-07-02 15:00")) and inside(ns("2020-07-06 15:00"))
    thursday, monday = index(ns("2020-07-02 20:00")), index(ns("2020-07-06 14:30"))
    assert monday == thursday + 1
    # summer: New York 09:30 is 13:30 UTC, so 14:30 is an hour into Monday's session
    assert ts(nyse.opens[0, monday]) == pd.Timestamp("2020-07-06 13:30", tz="UTC")
    assert ts(nyse.opens[0, thursday]) == pd.Timestamp("2020-07-02 13:30", tz="UTC")
    # the holiday lies between Thursday's session and Monday's
    assert index(ns("2020-07-03 15:00")) == thursday


def test_weekend_is_not_in_session_and_the_next_open_after_friday_is_monday(nyse):
    index, inside, following = lookups(nyse, 0)
    for t in ("2021-01-09 00:00", "2021-01-09 15:00", "2021-01-10 15:00", "2021-01-10 23:59"):
        assert not inside(ns(t)), t
    assert inside(ns("2021-01-08 20:59")) and not inside(ns("2021-01-08 21:00"))  # close is exclusive
    assert following(ns("2021-01-08 21:30")) == ns("2021-01-11 14:30")
    assert following(ns("2021-01-10 12:00")) == ns("2021-01-11 14:30")
    assert index(ns("2021-01-10 12:00")) == index(ns("2021-01-08 15:00"))
    assert inside(ns("2021-01-11 14:30"))  # the open is in session


def test_early_close_on_the_day_after_thanksgiving_2019(nyse):
    index, inside, _ = lookups(nyse, 0)
    s = index(ns("2019-11-29 15:00"))
    assert ts(nyse.closes[0, s]) == pd.Timestamp("2019-11-29 13:00", tz="America/New_York")
    assert nyse.closes[0, s] == ns("2019-11-29 18:00")
    assert inside(ns("2019-11-29 17:59"))
    assert not inside(ns("2019-11-29 18:00")) and not inside(ns("2019-11-29 18:30"))
    assert nyse.closes[0, s - 1] < ns("2019-11-28")  # Thanksgiving itself (Thursday) is a holiday
    assert nyse.opens[0, s - 1] == ns("2019-11-27 14:30")


def test_daylight_saving_moves_the_utc_open(nyse):
    index, inside, _ = lookups(nyse, 0)
    winter, summer = index(ns("2020-01-15 15:00")), index(ns("2020-07-15 15:00"))
    assert nyse.opens[0, winter] == ns("2020-01-15 14:30") and nyse.closes[0, winter] == ns("2020-01-15 21:00")
    assert nyse.opens[0, summer] == ns("2020-07-15 13:30") and nyse.closes[0, summer] == ns("2020-07-15 20:00")
    assert not inside(ns("2020-01-15 14:00")) and inside(ns("2020-07-15 14:00"))
    # the US switch (2nd Sunday of March) precedes the UK's: Monday 2020-03-09 already opens at 13:30 UTC
    assert nyse.opens[0, index(ns("2020-03-06 15:00"))] == ns("2020-03-06 14:30")
    assert nyse.opens[0, index(ns("2020-03-09 15:00"))] == ns("2020-03-09 13:30")


def test_always_open_has_a_session_every_utc_day_weekends_included():
    start, end = ns("2021-01-01"), ns("2021-03-31 12:00")
    table = build_session_table([ALWAYS_OPEN], start, end)
    assert ALWAYS_OPEN == "24/7"
    n = table.counts[0]
    opens, closes = table.opens[0, :n], table.closes[0, :n]
    assert (opens % DAY == 0).all() and (closes - opens == DAY).all()
    assert (opens[1:] == closes[:-1]).all()  # no gap: weekends included
    # every day of the range, plus one session before and one after
    assert opens[0] == ns("2020-12-31") and opens[-1] == ns("2021-04-01") and n == 90 + 2
    index, inside, following = lookups(table, 0)
    for t in ("2021-01-02 00:00", "2021-01-02 23:59:59.999999999", "2021-01-03 12:00"):  # Saturday, Sunday
        assert inside(ns(t)), t
    assert opens[index(ns("2021-01-02 23:59:59.999999999"))] == ns("2021-01-02")
    assert opens[index(ns("2021-01-03 00:00"))] == ns("2021-01-03")
    assert following(ns("2021-01-02 00:00")) == ns("2021-01-03")


def test_several_calendars_in_one_table_padded_with_int64_max():
    start, end = ns("2021-01-04"), ns("2021-01-15 23:00")
    table = build_session_table(["XNYS", ALWAYS_OPEN, "XLON"], start, end)
    assert table.names == ("XNYS", "24/7", "XLON")
    assert table.opens.dtype == table.closes.dtype == table.counts.dtype == np.int64
    # 10 weekdays each for XNYS and XLON (no holiday there), 12 days for 24/7; plus one each side
    assert list(table.counts) == [12, 14, 12]
    assert table.opens.shape == table.closes.shape == (3, 14)
    for c in (0, 2):
        assert (table.opens[c, 12:] == INT64_MAX).all() and (table.closes[c, 12:] == INT64_MAX).all()
    for c in range(3):
        n = table.counts[c]
        assert (np.diff(table.opens[c, :n]) > 0).all() and (table.opens[c, :n] < table.closes[c, :n]).all()
    # session before the range: Thursday 2020-12-31 (New Year's Day is a holiday on both)
    assert table.opens[0, 0] == ns("2020-12-31 14:30") and table.opens[2, 0] == ns("2020-12-31 08:00")
    assert table.closes[2, 0] == ns("2020-12-31 12:30")  # London's New Year's Eve early close
    assert table.opens[0, 11] == ns("2021-01-19 14:30")  # after the range: Martin Luther King Day, 18th
    assert table.opens[2, 11] == ns("2021-01-18 08:00")
    before = ns("2020-12-30")
    for c in range(3):
        assert session_index(table.opens, table.closes, table.counts, c, before) == -1
        assert not in_session(table.opens, table.closes, table.counts, c, before)
        assert next_open(table.opens, table.closes, table.counts, c, before) == table.opens[c, 0]
        assert next_open(table.opens, table.closes, table.counts, c, ns("2021-02-01")) == INT64_MAX
        last = table.counts[c] - 1
        assert session_index(table.opens, table.closes, table.counts, c, ns("2021-02-01")) == last
    now = ns("2021-01-06 10:00")  # London open, New York not yet, 24/7 always
    assert [bool(in_session(table.opens, table.closes, table.counts, c, now)) for c in range(3)] == [False, True, True]


def test_unknown_calendar_name_is_a_value_error_naming_it_and_valid_ones():
    with pytest.raises(ValueError, match="XNYZ") as info:
        build_session_table(["XNYS", "XNYZ"], ns("2021-01-01"), ns("2021-02-01"))
    assert "XNYS" in str(info.value)
    with pytest.raises(ValueError, match="'xnys'.*XNYS"):
        build_session_table(["xnys"], ns("2021-01-01"), ns("2021-02-01"))


def test_range_beyond_the_library_is_a_value_error_with_a_clear_message():
    last = type(quiet_calendar("XSHG")).bound_max()  # holidays recorded to a fixed year
    assert last is not None
    later = ns(str(last + pd.Timedelta(days=40)))
    with pytest.raises(ValueError, match=r"'XSHG' can be built only for 1990-12-03 \.\. " + str(last.date())):
        build_session_table(["XSHG"], ns("2020-01-01"), later)
    with pytest.raises(ValueError, match=r"'AIXK' can be built only for 2017-01-01"):
        build_session_table(["AIXK"], ns("2016-06-01"), ns("2018-01-01"))
    with pytest.raises(ValueError, match="start_ns .* > end_ns"):
        build_session_table(["XNYS"], ns("2021-01-02"), ns("2021-01-01"))
    # at the bound itself it builds, without a session before it
    table = build_session_table(["AIXK"], ns("2017-01-01"), ns("2017-03-01"))
    assert table.counts[0] > 30 and table.opens[0, 0] >= ns("2017-01-01")


def quiet_calendar(name: str, **kwargs):
    """``exchange_calendars.get_calendar`` without the deprecation warnings pandas 3 raises in it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return xc.get_calendar(name, **kwargs)


def test_every_xnys_session_2017_to_april_2021_equals_the_library_schedule(nyse):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sched = quiet_calendar("XNYS", start="2016-01-01", end="2022-12-31").schedule
        sched = sched.loc["2017-01-01":"2021-04-30"]
        want_opens = sched["open"].dt.tz_convert(None).to_numpy("datetime64[ns]").view(np.int64)
        want_closes = sched["close"].dt.tz_convert(None).to_numpy("datetime64[ns]").view(np.int64)
    n = nyse.counts[0]
    opens, closes = nyse.opens[0, :n], nyse.closes[0, :n]
    assert len(want_opens) == 1089
    # the table adds the session before (2016-12-30) and the one after (2021-05-03)
    assert n == len(want_opens) + 2
    assert opens[0] == ns("2016-12-30 14:30") and opens[-1] == ns("2021-05-03 13:30")
    np.testing.assert_array_equal(opens[1:-1], want_opens)
    np.testing.assert_array_equal(closes[1:-1], want_closes)
    # and the lookups agree with the library's own minute test, at each open, mid-session and close
    cal = quiet_calendar("XNYS", start="2016-01-01", end="2022-12-31")
    index, inside, following = lookups(nyse, 0)
    for s in range(1, n - 1, 37):
        o, c = opens[s], closes[s]
        assert index(o) == s and index(c - 1) == s and index(c) == s
        assert inside(o) and inside((o + c) // 2) and not inside(c)
        assert following(o) == opens[s + 1] and following(c) == opens[s + 1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert cal.is_trading_minute(ts((o + c) // 2).floor("min")) and not cal.is_open_on_minute(ts(c))


def test_build_is_fast_for_five_calendars_over_six_years():
    names = ["XNYS", "XLON", "XTKS", "CMES", ALWAYS_OPEN]
    t0 = time.perf_counter()
    table = build_session_table(names, ns("2015-01-01"), ns("2020-12-31 23:59"))
    took = time.perf_counter() - t0
    assert took < 1.0, f"{took:.2f} s"
    assert table.counts[4] == 2192 + 2 and all(1400 < table.counts[c] < 1600 for c in range(4))
