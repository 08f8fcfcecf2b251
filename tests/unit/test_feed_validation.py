"""Bad input in recorded feed files (issue 21): every reader checks every row as it reads.

A malformed row, a bad number, a non-finite or non-positive price, a negative size, a
crossed quote, a time that goes backwards and a row of an unknown symbol are counted by
reason and reported with file and line (``feed.on_bad_record: skip``), or stop the load
with an error naming file, line and reason (``stop``); a file that cannot be read (missing,
a directory, a truncated gzip, a plain file named ``.gz``) is an error naming it.  The
feed's pacing never waits on an event that went backwards (the backtest's 100%-CPU hang)."""
from __future__ import annotations

import gzip

import msgspec
import numpy as np
import pytest

from alphad.daemon.config import load_config
from alphad.daemon.feed import sources
from alphad.daemon.feed.bad_records import BadRecordError, BadRecords
from alphad.daemon.feed.core import FeedCore
from alphad.daemon.feed.sources import (load_binance, load_daily, load_generic, load_lean_minute, load_vix,
                                        read_events, stream_events)
from alphad.ipc.dtypes import MD_BAR, MD_DTYPE, MD_QUOTE, MD_TRADE

HEADER = "ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz"
SYMS = {"AAA": 0, "BBB": 1}

# line: text, and the reason it is refused (None: kept)
GENERIC_ROWS = [
    ("1000,AAA,quote,10,1,11,2,,", None),                 # 2
    ("1001,AAA,quote,10,1", "malformed"),                 # 3: a short row
    ("abc,AAA,quote,10,1,11,2,,", "bad_number"),          # 4: a bad ts_ns
    ("1002,AAA,quote,nan,1,11,2,,", "non_finite"),        # 5
    ("1003,AAA,trade,,,,,0,5", "non_positive_price"),     # 6
    ("1004,AAA,trade,,,,,10.5,-1", "negative_size"),      # 7
    ("1005,AAA,quote,12,1,11,2,,", "crossed_quote"),      # 8
    ("1010,AAA,trade,,,,,10.5,3", None),                  # 9
    ("1009,BBB,quote,10,1,11,2,,", "backwards_ts"),       # 10: before line 9 (the file's order)
    ("1011,ZZZ,quote,10,1,11,2,,", "unknown_symbol"),     # 11
    ("1012,AAA,quoet,10,1,11,2,,", "malformed"),          # 12: an unknown kind
    ("1013,AAA,quote,,1,11,2,,", "bad_number"),           # 13: a quote without its bid
    ("1014,AAA,quote,10,inf,11,2,,", "non_finite"),       # 14
    ("1015,AAA,bar,,,,,10,-5", "negative_size"),          # 15: a bar's volume
    ("1016,BBB,bar,,,,,10,5", None),                      # 16
    ("1017,AAA,quote,10,1,11,2,,,,", "malformed"),        # 17: a long row
    ("99999999999999999999,AAA,quote,10,1,11,2,,", "bad_number"),  # 18: ts_ns past int64
    ("", None),                                           # 19: an empty line is no row
    ("1018,AAA,trade,garbage,,,,-3,1", "non_positive_price"),  # 20: an unused cell is not read
]


def _counts(rows) -> dict:
    out = {}
    for _, why in rows:
        if why:
            out[why] = out.get(why, 0) + 1
    return out


def _write(path, lines, header=HEADER, gz=False, raw_tail=b""):
    data = ("\n".join([header, *lines]) + "\n").encode() + raw_tail
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_generic_when_every_kind_of_bad_row_then_each_counted_by_reason_with_file_and_line(tmp_path):
    p = _write(tmp_path / "x.csv", [t for t, _ in GENERIC_ROWS], raw_tail=b"1019,AAA,\xff\xfe,1,1,2,1,,\n")
    loaded = load_generic(p, SYMS, "skip")
    want = _counts(GENERIC_ROWS)
    want["malformed"] += 1  # the line that is not UTF-8
    assert loaded.bad == want
    md, skipped = loaded
    assert skipped == sum(want.values())
    assert md["ts_exch"].tolist() == [1000, 1010, 1016] and md["kind"].tolist() == [MD_QUOTE, MD_TRADE, MD_BAR]
    shown = loaded.report.shown
    assert f"{p}:3: malformed: 5 cells, expected 9 as in the header" in shown
    assert f"{p}:4: bad_number: ts_ns expected a whole number of ns, was 'abc'" in shown
    assert f"{p}:5: non_finite: bid_px is nan, expected a finite number" in shown
    assert f"{p}:6: non_positive_price: last_px is 0.0, expected a price above 0" in shown
    assert f"{p}:8: crossed_quote: bid_px 12.0 is above ask_px 11.0" in shown
    assert f"{p}:10: backwards_ts: time 1009 is before 1010, the latest time before it" in shown
    assert f"{p}:11: unknown_symbol: symbol 'ZZZ' is not in the universe" in shown
    assert f"{p}:12: malformed: kind must be one of ['bar', 'quote', 'trade'], was 'quoet'" in shown
    assert f"{p}:13: bad_number: bid_px expected a number, was ''" in shown
    assert len([s for s in shown if ": malformed: " in s]) == BadRecords.SHOW  # the 4th is counted only
    p = _write(tmp_path / "u.csv", ["1000,AAA,quote,10,1,11,2,,"], raw_tail=b"1019,AAA,\xff\xfe,1,1,2,1,,\n")
    with pytest.raises(BadRecordError, match=r"u\.csv:3: the line is not UTF-8 text \(malformed"):
        load_generic(p, SYMS, "stop")


def test_generic_when_stop_then_the_first_bad_line_is_the_error(tmp_path):
    p = _write(tmp_path / "x.csv", [t for t, _ in GENERIC_ROWS])
    with pytest.raises(BadRecordError, match=r"x\.csv:3: 5 cells, expected 9 as in the header \(malformed; "
                                             r"feed\.on_bad_record: stop\)"):
        load_generic(p, SYMS, "stop")
    # a value checked in batches before a line that does not parse: the earlier one is named
    p = _write(tmp_path / "y.csv", ["1000,AAA,quote,10,1,11,2,,", "1001,AAA,trade,,,,,10,-2", "1002,AAA"])
    with pytest.raises(BadRecordError, match=r"y\.csv:3: last_sz is -2\.0, expected a size of 0 or more "
                                             r"\(negative_size"):
        load_generic(p, SYMS, "stop")
    # an unknown symbol is skipped under stop too (a file may hold more symbols than are traded)
    p = _write(tmp_path / "z.csv", ["1000,ZZZ,quote,10,1,11,2,,", "1001,AAA,quote,10,1,11,2,,"])
    assert load_generic(p, SYMS, "stop").bad == {"unknown_symbol": 1}


def test_report_when_many_of_one_reason_then_the_first_few_listed_then_the_counts(tmp_path, capsys):
    p = _write(tmp_path / "x.csv", [f"{1000 + k},AAA,trade,,,,,10,-{k + 1}" for k in range(10)]
               + ["2000,AAA,trade,,,,,10,1"])
    loaded = load_generic(p, SYMS, "skip")
    assert loaded.bad == {"negative_size": 10} and len(loaded.events) == 1
    loaded.report.print("x.csv")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == BadRecords.SHOW + 1
    assert [e.split(": ")[1] for e in err[:-1]] == [f"{p}:{k}" for k in (2, 3, 4)]
    assert "10 bad records skipped (negative_size 10)" in err[-1]


def _binance_quotes(path, rows):
    return _write(path, rows, header="symbol,local_ts_ns,update_id,bid_price,bid_qty,ask_price,ask_qty")


def test_binance_when_one_symbol_after_another_then_only_a_step_back_within_a_symbol_goes_backwards(tmp_path):
    p = _binance_quotes(tmp_path / "q.csv", [
        "AAA,10,1,1.0,1,1.1,1", "AAA,20,2,1.0,1,1.1,1",
        "BBB,5,3,2.0,1,2.1,1",    # the next symbol's block starts earlier: not backwards
        "BBB,6,4,2.0,-1,2.1,1",   # negative size
        "AAA,15,5,1.0,1,1.1,1",   # before AAA's 20: backwards
        "BBB,7,6,2.2,1,2.1,1",    # crossed
        "CCC,8,7,1,1,1,1",        # unknown
        "BBB,x,8,2.0,1,2.1,1",    # bad number
    ])
    t = _write(tmp_path / "t.csv", ["AAA,12,1,2,3,10.0,0.5,true", "AAA,13,1,2,3,0,0.5,true"],
               header="symbol,local_ts_ns,event_time_ms,trade_time_ms,trade_id,price,qty,is_buyer_maker")
    loaded = load_binance(p, t, SYMS, "skip")
    assert loaded.bad == {"bad_number": 1, "non_positive_price": 1, "negative_size": 1, "crossed_quote": 1,
                          "backwards_ts": 1, "unknown_symbol": 1}
    md = loaded.events
    assert md["ts_exch"].tolist() == [5, 10, 12, 20] and md["instrument"].tolist() == [1, 0, 0, 0]
    assert f"{p}:6: backwards_ts: time 15 is before 20, the latest time of AAA before it" in loaded.report.shown
    assert f"{p}:5: negative_size: bid_qty is -1.0, expected a size of 0 or more" in loaded.report.shown
    assert f"{t}:3: non_positive_price: price is 0.0, expected a price above 0" in loaded.report.shown


def test_lean_minute_when_bad_rows_then_counted_and_the_good_ones_in_time_order(tmp_path):
    header = "symbol,datetime,bid_open,bid_high,bid_low,bid_close,bid_size,ask_open,ask_high,ask_low,ask_close,ask_size"
    p = _write(tmp_path / "l.csv", [
        "AAA,2013-10-04 09:30:00,1,1,1,10.0,100,1,1,1,10.1,100",
        "AAA,2013-10-04 09:31:00,1,1,1,10.2,100,1,1,1,10.1,100",   # crossed
        "AAA,2013-10-04 9h32,1,1,1,10.0,100,1,1,1,10.1,100",       # bad datetime
        "AAA,2013-10-04 09:29:00,1,1,1,10.0,100,1,1,1,10.1,100",   # backwards
        "BBB,2013-10-04 09:29:00,1,1,1,-1,100,1,1,1,10.1,100",     # negative price
        "BBB,2013-10-04 09:30:00,1,1,1,9.0,100,1,1,1,9.1,100",
        "AAA,9999-12-31 23:59:00,1,1,1,9.0,100,1,1,1,9.1,100",     # past 2262
    ], header=header)
    loaded = load_lean_minute(p, SYMS, "skip")
    assert loaded.bad == {"bad_number": 2, "non_positive_price": 1, "crossed_quote": 1, "backwards_ts": 1}
    assert len(loaded.events) == 2 and loaded.events["instrument"].tolist() == [0, 1]
    assert f"{p}:4: bad_number: datetime expected an ISO date and time (New York) in 1677..2262, was " \
           f"'2013-10-04 9h32'" in loaded.report.shown
    assert f"{p}:6: non_positive_price: bid_close is -1.0, expected a price above 0" in loaded.report.shown


DAILY_HEADER = "symbol,date,open,high,low,close,adjusted_close,volume"


def test_daily_when_bad_bars_then_counted_and_the_good_ones_adjusted(tmp_path):
    p = _write(tmp_path / "d.csv", [
        "AAA,2020-01-02,10,11,9,10,5,100",
        "AAA,2020-01-03,10,11,9,0,5,100",       # zero close
        "AAA,2020-01-06,10,11,9,10,nan,100",    # adjusted close NaN
        "AAA,2020-01-07,10,11,9,10,5,-1",       # negative volume
        "AAA,2020-01-01,10,11,9,10,5,100",      # backwards
        "AAA,2020-13-01,10,11,9,10,5,100",      # bad date
        "AAA,2020-01-08,10,eleven,9,10,5,100",  # bad number
        "AAA,2020-01-09,10,11,9",               # short
        "ZZZ,2020-01-09,10,11,9,10,5,100",      # unknown
        "BBB,2019-12-31,20,21,19,20,20,100",    # another symbol, earlier: not backwards
    ], header=DAILY_HEADER)
    loaded = load_daily(p, SYMS, "skip")
    assert loaded.bad == {"malformed": 1, "bad_number": 2, "non_finite": 1, "non_positive_price": 1,
                          "negative_size": 1, "backwards_ts": 1, "unknown_symbol": 1}
    md = loaded.events
    assert md["instrument"].tolist() == [1, 0] and md["last_px"].tolist() == [20.0, 5.0]
    assert md["open_px"][1] == 5.0  # adjusted by adjusted_close / close
    assert f"{p}:7: bad_number: date expected as YYYY-MM-DD, was '2020-13-01'" in loaded.report.shown
    assert f"{p}:8: bad_number: high expected a number, was 'eleven'" in loaded.report.shown
    assert f"{p}:4: non_finite: adjusted_close is nan, expected a finite number" in loaded.report.shown
    # under stop, a price checked at the end is still named before a later line that did not parse
    with pytest.raises(BadRecordError, match=r"d\.csv:3: close is 0\.0, expected a price above 0"):
        load_daily(p, SYMS, "stop")


def test_vix_when_bad_days_then_counted(tmp_path):
    p = _write(tmp_path / "v.csv", ["2020-01-02,12,13,11,12.5", "2020-01-03,12,13,-11,12.5", "01/01/2020,12,13,11,12",
                                    "someday,1,1,1,1", "2020-01-06,12,13,11"], header="DATE,OPEN,HIGH,LOW,CLOSE")
    bad = BadRecords("skip")
    md = load_vix(p, 3, bad)
    assert bad.as_dict() == {"malformed": 1, "bad_number": 1, "non_positive_price": 1, "backwards_ts": 1}
    assert len(md) == 1 and md["instrument"][0] == 3 and md["last_px"][0] == 12.5


# -- the file itself -------------------------------------------------------------------------
def _readers(tmp_path):
    """Each reader over a file named ``name`` (the test writes what it holds)."""
    return {
        "generic": lambda p: load_generic(p, SYMS, "skip"),
        "binance": lambda p: load_binance(p, None, SYMS, "skip"),
        "lean_minute": lambda p: load_lean_minute(p, SYMS, "skip"),
        "daily": lambda p: load_daily(p, SYMS, "skip"),
        "vix": lambda p: load_vix(p, 0, "skip"),
    }


GOOD_HEADERS = {
    "generic": HEADER,
    "binance": "symbol,local_ts_ns,update_id,bid_price,bid_qty,ask_price,ask_qty",
    "lean_minute": "symbol,datetime,bid_close,bid_size,ask_close,ask_size",
    "daily": DAILY_HEADER,
    "vix": "DATE,OPEN,HIGH,LOW,CLOSE",
}


@pytest.mark.parametrize("reader", sorted(GOOD_HEADERS))
@pytest.mark.parametrize("case", ["missing", "directory", "plain file named .gz", "truncated gzip", "corrupt gzip",
                                  "below a file"])
def test_file_when_unreadable_then_a_clear_error_naming_it(tmp_path, reader, case):
    load = _readers(tmp_path)[reader]
    body = (GOOD_HEADERS[reader] + "\n" + "".join(f"AAA,{k},1,2,3,4,5,6\n" for k in range(20_000))).encode()
    p = tmp_path / "feed.csv.gz"
    if case == "directory":
        p.mkdir()
    elif case == "plain file named .gz":
        p.write_bytes(body)
    elif case == "truncated gzip":
        z = gzip.compress(body)
        p.write_bytes(z[: len(z) // 2])
    elif case == "corrupt gzip":
        z = bytearray(gzip.compress(body))
        z[len(z) // 2: len(z) // 2 + 64] = b"\xff" * 64
        p.write_bytes(bytes(z))
    elif case == "below a file":
        (tmp_path / "f").write_text("x")
        p = tmp_path / "f" / "feed.csv.gz"
    expect = {"missing": (FileNotFoundError, "was not found"), "directory": (ValueError, "is a directory"),
              "plain file named .gz": (ValueError, "is named .gz but is not gzip data"),
              "truncated gzip": (ValueError, "is a truncated gzip file"),
              "corrupt gzip": (ValueError, "gzip"), "below a file": (ValueError, "cannot be opened")}[case]
    with pytest.raises(expect[0]) as e:
        load(p)
    assert str(p) in str(e.value) and expect[1] in str(e.value), str(e.value)


# -- from the config: skip, stop, counts on the result, the stream and at load ---------------
def _config(tmp_path, repo_root, feed: dict):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"].update(feed)
    raw["model"]["card"] = str(repo_root / raw["model"]["card"])
    raw["universe"] = [{"id": 0, "symbol": "AAA"}, {"id": 1, "symbol": "BBB"}]
    (tmp_path / "c.yaml").write_bytes(msgspec.yaml.encode(raw))
    return load_config(tmp_path / "c.yaml")


def test_config_when_skip_then_counts_on_the_loaded_result_the_stream_and_printed_at_load(tmp_path, repo_root,
                                                                                          capsys):
    p = _write(tmp_path / "x.csv.gz", [t for t, _ in GENERIC_ROWS], gz=True)
    cfg, base = _config(tmp_path, repo_root, {"path": str(p)})
    assert cfg.feed.on_bad_record == "skip"  # the default
    loaded = read_events(cfg.feed, base, cfg.universe)
    assert loaded.bad == _counts(GENERIC_ROWS) and len(loaded.events) == 3
    stream = stream_events(cfg.feed, base, cfg.universe, chunk=2)
    chunks = list(stream)
    assert np.concatenate(chunks).tobytes() == loaded.events.tobytes() and stream.bad.as_dict() == loaded.bad
    capsys.readouterr()
    events = sources.load_events(cfg.feed, base, cfg.universe)  # what the daemon's feed stage calls
    err = capsys.readouterr().err
    assert len(events) == 3 and f"{p}:3: malformed:" in err
    assert "15 bad records skipped (malformed 3, bad_number 3, non_finite 2" in err


def test_config_when_stop_then_load_and_stream_name_file_line_and_reason(tmp_path, repo_root):
    p = _write(tmp_path / "x.csv", [t for t, _ in GENERIC_ROWS])
    cfg, base = _config(tmp_path, repo_root, {"path": str(p), "on_bad_record": "stop"})
    with pytest.raises(ValueError, match=r"x\.csv:3: .*\(malformed; feed\.on_bad_record: stop\)"):
        read_events(cfg.feed, base, cfg.universe)
    with pytest.raises(ValueError, match=r"x\.csv:3: .*malformed"):
        list(stream_events(cfg.feed, base, cfg.universe))


def test_config_when_on_bad_record_unknown_then_rejected_naming_the_key(tmp_path, repo_root):
    from alphad.daemon.config import ConfigError

    with pytest.raises(ConfigError, match=r"on_bad_record"):
        _config(tmp_path, repo_root, {"on_bad_record": "ignore"})


def test_config_when_every_row_is_bad_then_no_events_says_why(tmp_path, repo_root):
    p = _write(tmp_path / "x.csv", ["1000,AAA,quote,-1,1,11,2,,", "1001,ZZZ,quote,1,1,2,2,,"])
    cfg, base = _config(tmp_path, repo_root, {"path": str(p)})
    with pytest.raises(ValueError, match=r"holds no event .*2 bad records skipped \(non_positive_price 1, "
                                         r"unknown_symbol 1\)"):
        read_events(cfg.feed, base, cfg.universe)


# -- the pacing: the root of the backtest's hang ---------------------------------------------
def _events(ts):
    md = np.zeros(len(ts), MD_DTYPE)
    md["ts_exch"] = ts
    md["kind"] = MD_QUOTE
    return md


def test_feedcore_when_max_speed_on_the_event_clock_then_every_event_due_even_before_the_start():
    """The backtest's clock is each event's own time; with no pacing an event is due whatever
    the clock says (an event earlier than the first one waited for the clock to reach the
    first forever: the 100%-CPU hang)."""
    feed = FeedCore(_events([100, 200, 300]), speed=0.0)
    assert feed.take(100, 1) == 1
    feed.pos = 1
    assert feed.take(50, 1) == 1 and feed.take(0, 8) == 2


def test_feedcore_when_events_out_of_time_order_then_refused():
    with pytest.raises(ValueError, match="event 2 at 150 ns is before event 1 at 200 ns"):
        FeedCore(_events([100, 200, 150]), speed=0.0)
    feed = FeedCore(_events([100, 200]), speed=0.0)
    with pytest.raises(ValueError, match="first event at 150 ns is before the last event of the chunk before at 200"):
        feed.refill(_events([150, 300]))
