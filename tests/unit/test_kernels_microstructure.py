"""Microstructure kernels on the Binance capture and LOBSTER book, against numpy/pandas oracles."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphad.kernels import microstructure as ms


@pytest.fixture(scope="module")
def ticker(shared_data):
    t = pd.read_csv(shared_data / "l2/binance_spot_book_ticker.csv.gz")
    return t[t["symbol"] == "BTCUSDT"].reset_index(drop=True)


@pytest.mark.data
def test_ofi_when_book_ticker_stream_then_equals_vectorised_formula(ticker):
    pb, qb = ticker["bid_price"].to_numpy(), ticker["bid_qty"].to_numpy()
    pa, qa = ticker["ask_price"].to_numpy(), ticker["ask_qty"].to_numpy()
    s = ms.ofi_new()
    # Act
    e = np.array([ms.ofi_update(s, *row) for row in zip(pb, qb, pa, qa)])
    # Assert: Cont-Kukanov-Stoikov, vectorised with pandas shifts
    exp = ((pb[1:] >= pb[:-1]) * qb[1:] - (pb[1:] <= pb[:-1]) * qb[:-1]
           - (pa[1:] <= pa[:-1]) * qa[1:] + (pa[1:] >= pa[:-1]) * qa[:-1])
    assert np.isnan(e[0])
    np.testing.assert_allclose(e[1:], exp, rtol=0, atol=1e-12)
    # OFI over the capture explains mid moves: positive correlation of sums over 1000 updates
    mid = 0.5 * (pb + pa)
    k = 1000
    m = (e.shape[0] - 1) // k
    ofi_sum = e[1: 1 + m * k].reshape(m, k).sum(axis=1)
    dmid = mid[k: 1 + m * k: k] - mid[0: m * k: k]
    assert np.corrcoef(ofi_sum, dmid)[0, 1] > 0.2


@pytest.mark.data
def test_quote_features_when_book_ticker_then_match_numpy(ticker):
    pb, qb = ticker["bid_price"].to_numpy(), ticker["bid_qty"].to_numpy()
    pa, qa = ticker["ask_price"].to_numpy(), ticker["ask_qty"].to_numpy()
    imb = np.array([ms.l1_imbalance(b, a) for b, a in zip(qb, qa)])
    mp = np.array([ms.microprice(*r) for r in zip(pb, qb, pa, qa)])
    sp = np.array([ms.spread_bps(b, a) for b, a in zip(pb, pa)])
    np.testing.assert_allclose(imb, (qb - qa) / (qb + qa), rtol=1e-12)
    np.testing.assert_allclose(mp, (pb * qa + pa * qb) / (qb + qa), rtol=1e-12)
    assert ((mp >= pb) & (mp <= pa)).all()
    np.testing.assert_allclose(sp, 1e4 * (pa - pb) / ((pa + pb) / 2), rtol=1e-12)
    # rolling stats against pandas
    n = 50
    s = ms.imbalance_stats_new(n)
    got = np.array([ms.imbalance_stats_update(s, x) for x in imb[:3000]])
    ser = pd.Series(imb[:3000])
    np.testing.assert_allclose(got[n - 1:, 0], ser.rolling(n).mean()[n - 1:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[:, 1][n - 1:], (ser - ser.rolling(n).mean())[n - 1:], atol=1e-12)
    w = np.lib.stride_tricks.sliding_window_view(imb[:3000], n)
    d = w - w.mean(axis=1, keepdims=True)
    rho = (d[:, 1:] * d[:, :-1]).sum(axis=1) / (d * d).sum(axis=1)
    np.testing.assert_allclose(got[n - 1:, 2], rho, atol=1e-9)
    np.testing.assert_allclose(got[1:, 3], np.diff(imb[:3000]), atol=1e-15)
    np.testing.assert_allclose(got[2:, 4], np.diff(imb[:3000], 2), atol=1e-12)


@pytest.mark.data
def test_depth_imbalance_when_lobster_10_levels_then_weights_levels(shared_data):
    ob = pd.read_csv(shared_data / "l2/lobster_AAPL_2012-06-21_orderbook_10_subset.csv", header=None).to_numpy(float)
    ask_sz, bid_sz = ob[:, 1::4], ob[:, 3::4]
    for row in range(0, ob.shape[0], 50):
        w = np.exp(-0.5 * np.arange(10))
        exp = (w @ bid_sz[row] - w @ ask_sz[row]) / (w @ bid_sz[row] + w @ ask_sz[row])
        assert abs(ms.depth_imbalance(bid_sz[row], ask_sz[row], 0.5) - exp) < 1e-12
        assert abs(ms.depth_imbalance(bid_sz[row], ask_sz[row], 50.0)
                   - ms.l1_imbalance(bid_sz[row, 0], ask_sz[row, 0])) < 1e-12


@pytest.mark.data
def test_tick_rule_and_vpin_when_binance_trades_then_agree_with_aggressor_flag(shared_data):
    tr = pd.read_csv(shared_data / "l2/binance_spot_trades.csv.gz")
    tr = tr[tr["symbol"] == "BTCUSDT"]
    px, q = tr["price"].to_numpy(), tr["qty"].to_numpy()
    true_sign = np.where(tr["is_buyer_maker"].to_numpy(), -1, 1)  # buyer maker = seller aggressed
    s = ms.tick_rule_new()
    sign = np.array([ms.tick_rule_update(s, p) for p in px])
    # the tick rule is an estimate: it must beat a coin flip clearly on real trades
    moved = sign != 0
    assert (sign[moved] == true_sign[moved]).mean() > 0.75
    # VPIN with the true aggressor, against a plain-Python bucket oracle
    V, n = 5.0, 20
    st = ms.vpin_new(V, n)
    got = np.array([ms.vpin_update(st, x if sg > 0 else 0.0, x if sg < 0 else 0.0)
                    for x, sg in zip(q, true_sign)])
    buckets, cb, cs = [], 0.0, 0.0
    for x, sg in zip(q, true_sign):
        while x > 1e-15:
            take = min(x, V - cb - cs)
            cb, cs = (cb + take, cs) if sg > 0 else (cb, cs + take)
            x -= take
            if cb + cs >= V - 1e-12:
                buckets.append(abs(cb - cs) / V)
                cb = cs = 0.0
    assert len(buckets) > n
    assert abs(got[-1] - np.mean(buckets[-n:])) < 1e-9
    assert 0.0 <= np.nanmin(got) and np.nanmax(got) <= 1.0


def test_ohlcv_fallbacks_when_bars_then_bounded_and_split_volume():
    assert ms.bar_imbalance(10.0, 12.0, 9.0, 12.0) == pytest.approx(2 / 3)
    assert ms.bar_imbalance(10.0, 10.0, 10.0, 10.0) == 0.0
    assert ms.bvc_buy_volume(100.0, 0.0, 1.0) == pytest.approx(50.0)
    assert ms.bvc_buy_volume(100.0, 1.0, 1.0) == pytest.approx(84.134474606854, rel=1e-9)
    assert ms.bvc_buy_volume(100.0, 5.0, 0.0) == 50.0
