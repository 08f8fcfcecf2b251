"""``feed.trade_until``: a recorded replay ends before its first event at or after it, as at
the end of the file.  The config refuses a bad date, an end on or before ``trade_from``, a
feed that would loop and a live source; the backtest of a window is the start of the
backtest of the whole file: the same events, orders, fills and day samples up to the end,
nothing from there on.  Feeds: the Lean equity minute quotes in ../shared/data (read whole,
then cut into chunks) and the demo generic CSV (streamed row by row)."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from alphad.daemon.config import ConfigError, decode_config, load_config
from alphad.daemon.feed.config import Feed
from alphad.daemon.feed.sources import load_events, stream_events
from alphad.daemon.shell.backtest import backtest
from alphad.daemon.shell.day_samples import DaySamples

MIN = "universe: [{id: 0, symbol: AAA}]\n"
LEAN = [("AAPL", "Information Technology"), ("IBM", "Information Technology"), ("BAC", "Financials"),
        ("AIG", "Financials"), ("SPY", "")]
#: Mid-session on 2013-10-10 (14:00 New York): the cut falls inside a UTC day and a feed chunk.
UNTIL = "2013-10-10T18:00:00+00:00"
FROM = "2013-10-08"


def iso(ns: int) -> str:
    """An ISO time in UTC, to the microsecond (what ``datetime.fromisoformat`` holds)."""
    return f"{np.datetime64(ns, 'ns').astype('datetime64[us]')}+00:00"


# -- config ----------------------------------------------------------------------------------
@pytest.mark.parametrize("written", ["2017-04-01", '"2017-04-01"', "2017-03-31T20:00:00-04:00"])
def test_decode_when_trade_until_is_a_yaml_date_or_text_then_that_instant(written):
    cfg = decode_config(MIN + f"feed: {{trade_from: 2017-01-01, trade_until: {written}, loop: false}}\n")
    assert cfg.feed.trade_until_ns() == 1_491_004_800 * 1_000_000_000
    assert decode_config(MIN).feed.trade_until_ns() is None


def test_decode_when_trade_until_is_not_a_date_then_error_names_key_format_and_value():
    with pytest.raises(ConfigError, match=r"feed.trade_until expected an ISO date or time such as 2017-01-01, "
                                          r"was 'April'.*\$\.feed"):
        decode_config(MIN + "feed: {trade_until: April, loop: false}\n")


@pytest.mark.parametrize("until", ["2017-01-01", "2016-12-31", "2016-12-31T23:59:59"])
def test_decode_when_trade_until_on_or_before_trade_from_then_error_names_both(until):
    with pytest.raises(ConfigError, match=rf"feed.trade_until \({until}\) must be after feed.trade_from "
                                          r"\(2017-01-01\).*\$\.feed"):
        decode_config(MIN + f"feed: {{trade_from: 2017-01-01, trade_until: '{until}', loop: false}}\n")


def test_decode_when_trade_until_one_instant_after_trade_from_then_valid():
    cfg = decode_config(MIN + "feed: {trade_from: 2017-01-01, trade_until: '2017-01-01T00:00:00.000001', "
                              "loop: false}\n")
    assert cfg.feed.trade_until_ns() - cfg.feed.trade_from_ns() == 1000


def test_decode_when_trade_until_and_the_feed_loops_then_refused():
    # loop: true is the default: a window must say loop: false
    for feed in ("{trade_until: 2017-04-01}", "{trade_until: 2017-04-01, loop: true}"):
        with pytest.raises(ConfigError, match=r"feed.trade_until \(2017-04-01\) ends the replay there; feed.loop "
                                              r"true would restart it: set feed.loop false.*\$\.feed"):
            decode_config(MIN + f"feed: {feed}\n")


@pytest.mark.parametrize("source", ["alpaca", "ib"])
def test_decode_when_live_source_with_trade_until_then_refused_like_also(source):
    with pytest.raises(ConfigError, match=rf"feed.trade_until ends a recording; feed.source {source} is a live "
                                          r"stream.*\$\.feed"):
        decode_config(MIN + f"feed: {{source: {source}, trade_until: 2017-04-01, loop: false}}\n")


# -- the events ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lean(repo_root, shared_data, tmp_path_factory):
    """``with_(**feed)``: the path of the Lean config (demo model, compiled, immediate fills)
    with these ``feed`` keys over it."""
    folder = tmp_path_factory.mktemp("trade_until")
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["model"].update(card=str(repo_root / raw["model"]["card"]), runtime="compiled")
    raw["router"]["impact"] = {"enabled": False}
    raw["universe"] = [{"id": i, "symbol": s, "sector": sec, "tick_size": 0.01, "lot_size": 1.0}
                       for i, (s, sec) in enumerate(LEAN)]
    raw["feed"] = {**raw["feed"], "path": str(shared_data / "intraday/lean_equity_minute_quotes.csv.gz"),
                   "format": "lean_minute", "loop": False, "trade_from": FROM}

    def with_(**feed):
        path = folder / f"lean-{len(list(folder.iterdir()))}.yaml"
        path.write_bytes(msgspec.yaml.encode({**raw, "feed": {**raw["feed"], **feed}}))
        return path
    return with_


@pytest.mark.data
def test_events_when_trade_until_then_the_whole_files_events_before_it(lean):
    cfg, base = load_config(lean())
    whole = load_events(cfg.feed, base, cfg.universe)
    cut_cfg, _ = load_config(lean(trade_until=UNTIL))
    end = cut_cfg.feed.trade_until_ns()
    assert whole["ts_exch"].min() < end < whole["ts_exch"].max()  # the cut is inside the file
    cut = load_events(cut_cfg.feed, base, cut_cfg.universe)
    before = whole[whole["ts_exch"] < end]
    assert len(cut) == len(before) and cut.tobytes() == before.tobytes()
    # streamed in chunks that do not end at the cut: the same events, then the stream ends
    streamed = np.concatenate(list(stream_events(cut_cfg.feed, base, cut_cfg.universe, chunk=1000)))
    assert streamed.tobytes() == before.tobytes()


def test_events_when_generic_file_streamed_then_it_ends_before_trade_until(repo_root):
    cfg = decode_config((repo_root / "config.yaml").read_text())
    whole = load_events(cfg.feed, repo_root, cfg.universe)
    end = int(whole["ts_exch"][len(whole) // 3]) // 1000 * 1000  # an event's time, to the µs an ISO time holds
    k = int(np.searchsorted(whole["ts_exch"], end))
    assert 0 < k < len(whole)
    feed = msgspec.structs.replace(cfg.feed, loop=False, trade_until=iso(end))
    Feed(**msgspec.structs.asdict(feed))  # valid as a config
    assert feed.trade_until_ns() == end
    streamed = np.concatenate(list(stream_events(feed, repo_root, cfg.universe, chunk=4096)))
    assert streamed.tobytes() == whole[:k].tobytes() and streamed["ts_exch"].max() < end
    assert load_events(feed, repo_root, cfg.universe).tobytes() == whole[:k].tobytes()


def test_events_when_trade_until_at_or_before_the_first_event_then_error_names_it(repo_root):
    cfg = decode_config((repo_root / "config.yaml").read_text())
    first = int(load_events(cfg.feed, repo_root, cfg.universe)["ts_exch"][0])
    feed = msgspec.structs.replace(cfg.feed, loop=False, trade_until=iso(first))
    message = r"feed.trade_until \(.*\) is at or before the feed's first event \(.*\): the feed .* would be empty"
    with pytest.raises(ValueError, match=message):
        load_events(feed, repo_root, cfg.universe)
    with pytest.raises(ValueError, match=message):
        next(stream_events(feed, repo_root, cfg.universe))


# -- the backtest ----------------------------------------------------------------------------
@pytest.mark.data
@pytest.mark.parametrize("loop", ["auto", "python"])
def test_backtest_when_trade_until_then_it_stops_there_and_before_it_equals_the_whole_run(lean, loop):
    runs = {}
    for name, feed in (("whole", {}), ("cut", {"trade_until": UNTIL})):
        cfg, base = load_config(lean(**feed))
        reports: list = []
        samples = DaySamples(from_ns=cfg.feed.trade_from_ns())
        orders, summary = backtest(cfg, base, loop=loop, reports=reports, samples=samples)
        runs[name] = (orders, np.concatenate(reports), summary, samples.arrays())
    end = cfg.feed.trade_until_ns()
    (orders, reports, summary, samples), (w_orders, w_reports, w_summary, w_samples) = runs["cut"], runs["whole"]
    events = load_events(cfg.feed, base, cfg.universe)
    assert summary["events"] == len(events) < w_summary["events"] and events["ts_exch"].max() < end
    # nothing at or after the end
    assert len(orders) > 100 and orders["ts"].max() < end and reports["ts"].max() < end
    assert samples["ts"].max() == events["ts_exch"].max()  # the last day is sampled at the last event kept
    # before it, the same orders and fills as the run over the whole file
    w_early = w_orders[w_orders["ts"] < end]
    assert orders.tobytes() == w_early.tobytes()
    assert reports.tobytes() == w_reports[w_reports["ts"] < end].tobytes()
    # the days that ended before the cut were sampled the same
    days = samples["ts"][:-1]
    assert len(days) == 2 and days.tolist() == w_samples["ts"][:2].tolist()
    assert all(samples[k][:2].tobytes() == w_samples[k][:2].tobytes() for k in samples)
