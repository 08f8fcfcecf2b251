"""Streaming quote features: one event at a time equals the batch form, and both
equal an independent pandas computation on the real demo slice."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphad.daemon.feed import load_generic
from alphad.ipc.dtypes import FEATURE_DTYPE, MD_QUOTE
from alphad.kernels.quote_features import FEATURE_NAMES, N_FEATURES, new_state, on_md_batch, quote_features_batch

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
