"""Streaming quote features: one event at a time equals the batch form, and both
equal an independent pandas computation on the real demo slice."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphad.daemon.feed.sources import load_generic
from alphad.ipc.dtypes import FEATURE_DTYPE, MD_QUOTE
from alphad.kernels.quote_features import (FEATURE_NAMES, FEATURE_SETS, N_FEATURES, new_state, on_md_batch,
                                          quote_features_batch)

FAST, SLOW = 10.0, 100.0


@pytest.fixture(scope="module")
def md(repo_root):
    events, _ = load_generic(repo_root / "data/demo_btc_eth_quotes_trades.csv.gz", {"BTCUSDT": 0, "ETHUSDT": 1})
    return events[:20_000]


def test_streaming_when_fed_one_event_at_a_time_then_equals_batch(md):
    batch = quote_features_batch(md, 2, fast=FAST, slow=SLOW)
    state = new_state(2)
    out = np.zeros(1, FEATURE_DTYPE)
    rows = []
    for k in range(len(md)):
        if on_md_batch(md[k : k + 1], 1, state, 2 / (FAST + 1), 2 / (SLOW + 1), True, out, 0):
            rows.append(out[0].copy())
    stream = np.array(rows, dtype=FEATURE_DTYPE)
    assert len(stream) == len(batch)
    np.testing.assert_array_equal(stream["x"], batch["x"])  # same code path: bit-identical


def test_batch_when_compared_with_pandas_then_agree(md):
    rows = quote_features_batch(md, 2, fast=FAST, slow=SLOW)
    q = md[(md["kind"] == MD_QUOTE) & (md["instrument"] == 0)]
    mine = rows[rows["instrument"] == 0]
    mid = pd.Series((q["bid_px"] + q["ask_px"]) / 2)
    ret = np.log(mid / mid.shift(1)).fillna(0.0) * 1e4
    # pandas ewm(adjust=False) seeded at the first value; ours seeds ret EMAs at 0 on the first quote
    ema_fast = ret.ewm(alpha=2 / (FAST + 1), adjust=False).mean()
    ema_mid = mid.ewm(alpha=2 / (SLOW + 1), adjust=False).mean()
    var = (ret**2).ewm(alpha=2 / (SLOW + 1), adjust=False).mean()
    imb = (q["bid_sz"] - q["ask_sz"]) / (q["bid_sz"] + q["ask_sz"])
    spread = (q["ask_px"] - q["bid_px"]) / mid * 1e4
    x = mine["x"].astype(np.float64)
    idx = {n: i for i, n in enumerate(FEATURE_NAMES)}
    np.testing.assert_allclose(x[:, idx["ret_1"]], ret, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x[:, idx["ema_ret_fast"]], ema_fast, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[:, idx["mid_ema_dev"]], (mid - ema_mid) / mid * 1e4, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x[:, idx["vol_ema"]], np.sqrt(var), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[:, idx["imbalance_l1"]], imb, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(x[:, idx["spread_bps"]], spread, rtol=1e-6, atol=1e-6)
    assert N_FEATURES == len(FEATURE_NAMES) == 8


def test_quote_when_crossed_then_not_propagated():
    state = new_state(1)
    md = np.zeros(2, dtype=md_dtype())
    md["kind"] = MD_QUOTE
    md["bid_px"], md["ask_px"], md["bid_sz"], md["ask_sz"] = [100, 101], [100.5, 100.9], 1, 1
    out = np.zeros(2, FEATURE_DTYPE)
    assert on_md_batch(md, 2, state, 0.1, 0.01, True, out, 0) == 1  # the crossed second quote is dropped
    assert out[0]["mid"] == 100.25


def md_dtype():
    from alphad.ipc.dtypes import MD_DTYPE

    return MD_DTYPE


# -- the micro set --------------------------------------------------------------------------

MICRO = dict(imbalance_window=50, vpin_bucket_notional=20_000.0, vpin_buckets=10)


def _micro_rows(md):
    return quote_features_batch(md, 2, fast=FAST, slow=SLOW, feature_set="micro", **MICRO)


def test_micro_when_streamed_then_equals_batch_and_quote_columns_unchanged(md):
    batch = _micro_rows(md)
    assert set(batch["n"]) == {len(FEATURE_SETS["micro"])} == {16}
    quote = quote_features_batch(md, 2, fast=FAST, slow=SLOW)
    np.testing.assert_array_equal(batch["x"][:, :N_FEATURES], quote["x"][:, :N_FEATURES])
    state = new_state(2, "micro", **MICRO)
    out = np.zeros(1, FEATURE_DTYPE)
    rows = [out[0].copy() for k in range(len(md))
            if on_md_batch(md[k : k + 1], 1, state, 2 / (FAST + 1), 2 / (SLOW + 1), True, out, 0)]
    np.testing.assert_array_equal(np.array(rows, FEATURE_DTYPE)["x"], batch["x"])


def test_micro_when_compared_with_independent_pandas_then_agree(md):
    rows = _micro_rows(md)
    names = FEATURE_SETS["micro"]
    idx = {n: i for i, n in enumerate(names)}
    for inst in (0, 1):
        q = pd.DataFrame(md[(md["kind"] == MD_QUOTE) & (md["instrument"] == inst)][
            ["bid_px", "bid_sz", "ask_px", "ask_sz"]]).astype(np.float64)
        x = rows[rows["instrument"] == inst]["x"].astype(np.float64)
        assert len(x) == len(q)
        mid = (q.bid_px + q.ask_px) / 2
        micro = (q.bid_px * q.ask_sz + q.ask_px * q.bid_sz) / (q.bid_sz + q.ask_sz)
        np.testing.assert_allclose(x[:, idx["microprice_dev"]], (micro - mid) / mid * 1e4, rtol=1e-5, atol=1e-6)
        imb = (q.bid_sz - q.ask_sz) / (q.bid_sz + q.ask_sz)
        mean = imb.rolling(MICRO["imbalance_window"]).mean().fillna(0.0)
        np.testing.assert_allclose(x[:, idx["imb_mean"]], mean, rtol=1e-5, atol=1e-6)
        lag1 = imb.rolling(MICRO["imbalance_window"]).apply(
            lambda w: np.sum((w[1:] - w.mean()) * (w[:-1] - w.mean())) / np.sum((w - w.mean()) ** 2), raw=True)
        np.testing.assert_allclose(x[:, idx["imb_persistence"]], lag1.fillna(0.0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(x[:, idx["imb_velocity"]], imb.diff().fillna(0.0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x[:, idx["imb_accel"]], imb.diff().diff().fillna(0.0), rtol=1e-5, atol=1e-6)
        # Cont-Kukanov-Stoikov e_n from the previous quote, vectorised
        pb, qb, pa, qa = (q[c].shift(1) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
        e = (q.bid_sz * (q.bid_px >= pb) - qb * (q.bid_px <= pb) - q.ask_sz * (q.ask_px <= pa)
             + qa * (q.ask_px >= pa))
        alpha = 2 / (FAST + 1)
        k = np.arange(1, len(e))
        # pandas seeds the EMA with the first value; ours starts from 0: z_k = y_k - (1 - alpha)^k e_1
        ofi = e.iloc[1:].ewm(alpha=alpha, adjust=False).mean() - (1 - alpha) ** k * e.iloc[1]
        depth = (q.bid_sz + q.ask_sz) / 2
        dep = depth.ewm(alpha=alpha, adjust=False).mean()
        np.testing.assert_allclose(x[1:, idx["ofi_flow"]], ofi / dep.iloc[1:], rtol=1e-4, atol=1e-6)
    vpin = x[:, idx["vpin"]]
    assert (vpin >= 0).all() and (vpin <= 1).all() and (vpin > 0).any()  # buckets filled on this slice


def test_micro_vpin_when_trades_signed_then_equals_bucket_definition():
    # two instruments' worth of trades is not needed: one instrument, alternating aggressor runs
    from alphad.ipc.dtypes import MD_DTYPE, MD_TRADE

    md = np.zeros(1 + 40, MD_DTYPE)
    md[0]["kind"], md[0]["bid_px"], md[0]["ask_px"], md[0]["bid_sz"], md[0]["ask_sz"] = MD_QUOTE, 99.5, 100.5, 1, 1
    md[1:]["kind"] = MD_TRADE
    md[1:]["last_sz"] = 1.0
    md[1:]["last_px"] = np.where(np.arange(40) % 4 == 0, 99.5, 100.5)  # 3 buys per sell, at the touch
    state = new_state(1, "micro", imbalance_window=3, vpin_bucket_notional=400.0, vpin_buckets=3)
    out = np.zeros(41, FEATURE_DTYPE)
    on_md_batch(md, 41, state, 0.1, 0.01, False, out, 0)
    # every 4 trades: 3 x 100.5 bought, 1 x 99.5 sold = 401 notional; buckets of 400 split pro rata
    notional = np.where(np.arange(40) % 4 == 0, -99.5, 100.5)
    buy = sell = 0.0
    buckets = []
    for v in notional:
        rem, fb = abs(v), 1.0 if v > 0 else 0.0
        while rem > 0:
            take = min(rem, 400.0 - (buy + sell))
            buy, sell, rem = buy + take * fb, sell + take * (1 - fb), rem - take
            if buy + sell >= 400.0:
                buckets.append(abs(buy - sell) / 400.0)
                buy = sell = 0.0
    assert len(buckets) >= 3
    assert out[40]["x"][FEATURE_SETS["micro"].index("vpin")] == pytest.approx(np.mean(buckets[-3:]), rel=1e-6)
