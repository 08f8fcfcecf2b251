"""Dataset building on the real daily panel: labels, windows, weights, features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.kernels import feature_sets as fsets
from alphad.ops import dataset as dsm

DAILY = "daily/us_equities_daily_1999-2021.csv.gz"
SYMS = ["AAPL", "KO", "XOM", "NFLX"]  # NFLX starts in 2002: ragged panel


@pytest.fixture(scope="module")
def bars(shared_data):
    return dsm.load_daily(shared_data / DAILY, symbols=SYMS, end="2012-12-31")


@pytest.mark.data
def test_load_daily_when_read_then_ohlc_adjusted_and_sorted(shared_data, bars):
    raw = pd.read_csv(shared_data / DAILY, parse_dates=["date"])
    raw = raw[(raw.symbol == "AAPL") & (raw.date <= "2012-12-31")]
    a = bars[bars.symbol == "AAPL"]
    np.testing.assert_allclose(a["close"].to_numpy(), raw["adjusted_close"].to_numpy())
    f = raw["adjusted_close"].to_numpy() / raw["close"].to_numpy()
    np.testing.assert_allclose(a["high"].to_numpy(), raw["high"].to_numpy() * f)
    assert list(bars.columns) == ["symbol", "date", "open", "high", "low", "close", "volume"]
    assert (bars.groupby("symbol")["date"].diff().dropna() > pd.Timedelta(0)).all()


@pytest.mark.data
def test_load_daily_when_unknown_symbol_then_error_names_it(shared_data):
    with pytest.raises(ValueError, match=r"\['ZZZZ'\] were requested"):
        dsm.load_daily(shared_data / DAILY, symbols=["AAPL", "ZZZZ"])


@pytest.mark.data
def test_forward_returns_when_panel_then_match_per_symbol_shift_and_never_cross_symbols(bars):
    h = 5
    y, end_row = dsm.forward_returns(bars, h)
    lc = np.log(bars["close"])
    oracle = (lc.groupby(bars["symbol"]).shift(-h) - lc).to_numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(oracle))
    np.testing.assert_allclose(y[~np.isnan(y)], oracle[~np.isnan(oracle)], rtol=0, atol=1e-12)
    ok = end_row >= 0
    assert (bars["symbol"].to_numpy()[end_row[ok]] == bars["symbol"].to_numpy()[ok]).all()
    assert (end_row[ok] - np.flatnonzero(ok) == h).all()


def _triple_barrier_oracle(closes, h, pt, sl, vol_window):
    lc = np.log(closes)
    r = np.r_[np.nan, np.diff(lc)]
    sig = pd.Series(r).rolling(vol_window).std().to_numpy()
    lab = np.full(len(lc), np.nan)
    end = np.full(len(lc), -1)
    for t in range(len(lc) - h):
        if not sig[t] > 0:
            continue
        up, dn = pt * sig[t] * np.sqrt(h), -sl * sig[t] * np.sqrt(h)
        lab[t], end[t] = 0, t + h
        for j in range(t + 1, t + h + 1):
            if lc[j] - lc[t] >= up:
                lab[t], end[t] = 1, j
                break
            if lc[j] - lc[t] <= dn:
                lab[t], end[t] = -1, j
                break
    return lab, end


@pytest.mark.data
def test_triple_barrier_when_real_bars_then_matches_bruteforce_oracle(bars):
    h, pt, sl = 10, 1.0, 1.5
    lab, ret, end = dsm.triple_barrier(bars, h, pt=pt, sl=sl, vol_window=20)
    for sym in ("AAPL", "NFLX"):
        idx = np.flatnonzero(bars["symbol"].to_numpy() == sym)
        o_lab, o_end = _triple_barrier_oracle(bars["close"].to_numpy()[idx], h, pt, sl, 20)
        np.testing.assert_array_equal(np.nan_to_num(lab[idx], nan=9), np.nan_to_num(o_lab, nan=9))
        np.testing.assert_array_equal(np.where(end[idx] >= 0, end[idx] - idx[0], -1), o_end)
    # All three outcomes occur on real data, and touches end early.
    assert set(np.unique(lab[~np.isnan(lab)])) == {dsm.TB_LOWER, dsm.TB_TIME, dsm.TB_UPPER}
    ok = end >= 0
    assert np.all(end[ok] - np.flatnonzero(ok) <= h) and np.any(end[ok] - np.flatnonzero(ok) < h)
    lc = np.log(bars["close"].to_numpy())
    np.testing.assert_allclose(ret[ok], lc[end[ok]] - lc[ok], atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_uniqueness_weights_when_random_windows_then_match_bruteforce(data):
    n = data.draw(st.integers(5, 40))
    starts = np.array(sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=30))))
    ends = np.array([data.draw(st.integers(s, n - 1)) for s in starts])
    w = dsm.uniqueness_weights(starts, ends, n)
    conc = np.zeros(n)
    for s, e in zip(starts, ends):
        conc[s : e + 1] += 1
    oracle = [np.mean(1.0 / conc[s : e + 1]) for s, e in zip(starts, ends)]
    np.testing.assert_allclose(w, oracle, rtol=1e-12)
    assert np.all((w > 0) & (w <= 1 + 1e-12))


@pytest.mark.data
def test_feature_matrix_when_real_bars_then_rsi_and_sma_match_talib(bars):
    names, X = dsm.feature_matrix(bars)
    assert names == list(dsm.FEATURE_NAMES) and X.dtype == np.float32
    for sym in SYMS:
        idx = np.flatnonzero(bars["symbol"].to_numpy() == sym)
        c = bars["close"].to_numpy()[idx]
        # float32 columns: compare at float32 precision; warm-up NaNs where TA-Lib has them.
        np.testing.assert_allclose(X[idx, names.index("rsi_14")], talib.RSI(c, 14), rtol=1e-6)
        np.testing.assert_allclose(X[idx, names.index("nma_50")], c / talib.SMA(c, 50) - 1.0, rtol=1e-5, atol=1e-7)
        vol = talib.STDDEV(np.r_[np.nan, np.diff(np.log(c))], 20, 1.0)  # population std
        n20 = 20
        np.testing.assert_allclose(X[idx, names.index("vol_20")], vol * np.sqrt(n20 / (n20 - 1)), rtol=1e-5)


@pytest.mark.data
def test_feature_matrix_when_streamed_bar_by_bar_then_equals_the_features_stage_call(bars):
    """Research rows are what a live stage publishes: the same update_row, bar by bar."""
    fs = fsets.get_feature_set(dsm.DEFAULT_FEATURE_SET)
    names, X = dsm.feature_matrix(bars)
    assert tuple(names) == fs.names
    o, h, l, c, v = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume"))
    h, l = dsm._clean_range(o, h, l, c)
    sym = bars["symbol"].to_numpy()
    states = {s: fs.new_state() for s in SYMS}
    row = np.empty(len(names), np.float32)  # the ring's float32 row, as the stage writes it
    for i in range(len(bars)):
        fsets.update_row(fs.plan, states[sym[i]], o[i], h[i], l[i], c[i], v[i], 0.0, row)
        np.testing.assert_array_equal(row, X[i])


@pytest.mark.data
def test_feature_matrix_when_future_bars_removed_then_past_rows_unchanged(bars):
    _, X_full = dsm.feature_matrix(bars)
    cut = bars[bars["date"] <= "2008-06-30"].reset_index(drop=True)
    _, X_cut = dsm.feature_matrix(cut)
    keep = np.flatnonzero((bars["date"] <= "2008-06-30").to_numpy())
    np.testing.assert_array_equal(X_full[keep], X_cut)  # no look-ahead


@pytest.mark.data
def test_build_dataset_when_panel_then_sorted_by_date_windows_valid_and_demeaned(bars):
    ds = dsm.build_dataset(bars, horizon=5, demean=True, weights=True)
    assert np.all(np.diff(ds.t_start.view(np.int64)) >= 0)
    assert np.all(ds.t_end > ds.t_start)
    assert np.isfinite(ds.X).all() and np.isfinite(ds.y).all()
    per_date = pd.Series(ds.y).groupby(ds.t_start).agg(["mean", "size"])
    assert per_date["size"].max() == len(SYMS)
    np.testing.assert_allclose(per_date["mean"], 0.0, atol=1e-12)
    # Steady-state uniqueness of overlapping 6-bar windows (t..t+5) is 1/6.
    assert np.median(ds.weight) == pytest.approx(1 / 6, rel=1e-9)
    # Row (date, symbol) pairs are unique and the hash is stable.
    assert not pd.DataFrame({"d": ds.t_start, "s": ds.symbol}).duplicated().any()
    assert ds.sha256() == dsm.build_dataset(bars, horizon=5, demean=True, weights=True).sha256()


@pytest.mark.data
def test_build_dataset_when_triple_barrier_then_end_is_touch_time(bars):
    ds = dsm.build_dataset(bars, label="triple_barrier", horizon=10, pt=1.0, sl=1.0)
    assert set(np.unique(ds.y)) == {-1.0, 0.0, 1.0}
    span = (ds.t_end - ds.t_start).astype("timedelta64[D]").astype(int)
    # A time-limit event spans 10 bars (>= 14 calendar days); touches can be shorter.
    assert span[ds.y == 0].min() >= 14
    assert span[ds.y != 0].min() < 14


def test_build_dataset_when_bad_label_or_unsorted_bars_then_clear_errors():
    bars = pd.DataFrame(
        {"symbol": ["A", "A", "B", "A"], "date": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-01", "2020-01-03"]),
         "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
    )
    with pytest.raises(ValueError, match="contiguous"):
        dsm.feature_matrix(bars)
    with pytest.raises(ValueError, match="horizon must be >= 1 bar; was 0"):
        dsm.forward_returns(bars.iloc[:2], 0)
    with pytest.raises(ValueError, match="label kind expected .* was 'fwd'"):
        dsm.build_dataset(bars.iloc[:2], label="fwd")
