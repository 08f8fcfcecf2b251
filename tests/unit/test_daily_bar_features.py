"""Daily bars through the daemon's feed and features stage give the research dataset's
feature rows, bit for bit, for every one of the 61 symbols (issue 18, must-show 2).

The feed reads ``us_equities_daily_1999-2021.csv.gz`` as the daemon does (``feed.format:
daily``: adjusted and cleaned by :mod:`alphad.kernels.bars`, every symbol interleaved in
time order); the features stage's own step (``features_step`` with ``features.set:
daily``) turns the bars into rows.  Research builds its rows with ``ops/dataset.py``
(``load_daily`` then ``feature_matrix``).  Every row the stage emits must equal research's
row for that symbol and date in every bit, and the stage must emit exactly the rows research
has with no NaN column (the warm-up rows research drops).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphad.daemon.features.config import Features
from alphad.daemon.features.core import FeatureCore, feature_names, features_step
from alphad.daemon.feed.sources import DAILY_SESSION_NS, load_daily
from alphad.ipc.dtypes import FEATURE_DTYPE, MD_BAR
from alphad.ops import dataset as dsm

DAILY = "daily/us_equities_daily_1999-2021.csv.gz"


@pytest.fixture(scope="module")
def daily_path(shared_data):
    return shared_data / DAILY


def stage_rows(md: np.ndarray, n_instruments: int, feature_set: str) -> np.ndarray:
    """The features stage's rows for ``md``, fed to its step a chunk at a time as the feed does."""
    core = FeatureCore(Features(set=feature_set), n_instruments)
    out, rows = [], np.zeros(4096, FEATURE_DTYPE)
    for a in range(0, len(md), 4096):
        chunk = md[a : a + 4096]
        k = features_step(core.state, chunk, len(chunk), rows, 0)
        out.append(rows[:k].copy())
    return np.concatenate(out)


def test_daily_feed_when_every_symbol_streams_then_the_stage_rows_equal_research_rows_bit_for_bit(daily_path):
    symbols = sorted(pd.read_csv(daily_path, usecols=["symbol"])["symbol"].unique())
    assert len(symbols) == 61
    ids = {s: i for i, s in enumerate(symbols)}
    md, skipped = load_daily(daily_path, ids)
    assert skipped == 0 and (md["kind"] == MD_BAR).all() and (md["bar_ns"] == DAILY_SESSION_NS).all()
    assert DAILY_SESSION_NS == 6.5 * 3_600_000_000_000  # a bar spans the 09:30-16:00 session
    assert (np.diff(md["ts_exch"]) >= 0).all()  # interleaved in time order
    md["seq"] = np.arange(1, len(md) + 1)  # what the feed's step stamps
    rows = stage_rows(md, len(symbols), "daily")

    bars = dsm.load_daily(daily_path)
    names, research = dsm.feature_matrix(bars, "daily")
    assert tuple(names) == feature_names("daily")
    finite = np.isfinite(research).all(axis=1)
    # research's (symbol, date) of each of its rows, and the stage's, through the md record
    want = pd.DataFrame({"symbol": bars["symbol"], "day": bars["date"].dt.strftime("%Y-%m-%d")})[finite]
    src = md[rows["seq"].astype(np.int64) - 1]
    assert (src["instrument"] == rows["instrument"]).all()
    days = pd.to_datetime(src["ts_exch"], utc=True).tz_convert("America/New_York").strftime("%Y-%m-%d")
    got = pd.DataFrame({"symbol": np.array(symbols)[rows["instrument"]], "day": days})
    assert len(got) == len(want) == int(finite.sum())
    key_got = got["symbol"] + " " + got["day"]
    key_want = want["symbol"] + " " + want["day"]
    assert set(key_got) == set(key_want)  # exactly the rows research keeps, every symbol
    order = pd.Series(np.arange(len(key_want)), index=key_want.to_numpy())[key_got.to_numpy()].to_numpy()
    n = len(names)
    theirs = research[finite][order]
    ours = rows["x"][:, :n]
    assert ours.dtype == theirs.dtype == np.float32
    differ = ours.view(np.uint32) != theirs.view(np.uint32)
    assert not differ.any(), f"{int(differ.any(axis=1).sum())} rows differ, first: {key_got[differ.any(axis=1)][:3]}"
    assert (rows["n"] == n).all()
    assert np.array_equal(rows["mid"], src["last_px"])  # the close: the signal's reference price
    assert len(set(got["symbol"])) == 61


def test_trade_from_when_set_then_earlier_bars_warm_the_state_but_make_no_row(daily_path):
    """``feed.trade_from``: the history before it warms the indicators (the rows after it are
    the very rows of a run over the whole history) and makes no row, so nothing trades on it."""
    from alphad.daemon.feed.config import Feed
    from alphad.daemon.feed.sources import load_events
    from alphad.ipc.dtypes import MD_F_WARMUP

    class Instrument:
        def __init__(self, i, symbol):
            self.id, self.symbol = i, symbol

    universe = [Instrument(0, "AAPL"), Instrument(1, "KO"), Instrument(2, "XOM")]
    whole = load_events(Feed(path=str(daily_path), format="daily"), daily_path.parent, universe)
    late = load_events(Feed(path=str(daily_path), format="daily", trade_from="2017-01-01"), daily_path.parent,
                       universe)
    start = Feed(trade_from="2017-01-01").trade_from_ns()
    assert start == 1_483_228_800_000_000_000  # 2017-01-01T00:00Z
    assert ((late["flags"] & MD_F_WARMUP) != 0).tolist() == (late["ts_exch"] < start).tolist()
    assert not (whole["flags"] & MD_F_WARMUP).any()
    for md in (whole, late):
        md["seq"] = np.arange(1, len(md) + 1)
    rows_whole, rows_late = stage_rows(whole, 3, "daily"), stage_rows(late, 3, "daily")
    ts = lambda md, rows: md["ts_exch"][rows["seq"].astype(np.int64) - 1]  # noqa: E731
    assert (ts(late, rows_late) >= start).all() and len(rows_late) > 3 * 1000  # 2017 .. 2021-04: ~1,080 days
    kept = rows_whole[ts(whole, rows_whole) >= start]
    assert np.array_equal(kept["x"], rows_late["x"]) and np.array_equal(kept["seq"], rows_late["seq"])


def test_trade_from_when_not_a_date_then_config_error_names_it():
    from alphad.daemon.feed.config import Feed

    with pytest.raises(ValueError, match="feed.trade_from expected an ISO date.*'Jan 2017'"):
        Feed(trade_from="Jan 2017")
