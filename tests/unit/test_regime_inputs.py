"""The features stage's regime inputs (daemon/features/regime.py) against the batch kernels.

Bars of a stock, an index and the VIX go through ``features_step`` of a bar feature set with
``features.regime``: the rows carry the VIX level last seen, the HMM filter's probabilities
on the index's returns (equal to :func:`alphad.kernels.regime.hmm_filter` on the same
returns, itself tested against hmmlearn), the stock's GARCH one-step variance (equal to
:func:`alphad.kernels.regime.garch_variance`'s recursion, tested against arch), and its
traded-value EMA over ``adv_bars``; the index and the VIX, not tradable, make no rows.
"""
from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest

from alphad.daemon.features.config import Features
from alphad.daemon.features.core import FeatureCore, features_step
from alphad.ipc.dtypes import FEATURE_DTYPE, MD_BAR, MD_DTYPE, MD_QUOTE
from alphad.kernels.regime import garch_new, garch_update, hmm_filter

DAY = 86_400 * 10**9
HMM = {"startprob": [0.6, 0.2, 0.2], "transmat": [[0.95, 0.01, 0.04], [0.02, 0.9, 0.08], [0.05, 0.05, 0.9]],
       "means": [[0.1], [-0.3], [0.0]], "variances": [[0.5], [4.0], [1.2]]}
GARCH = {"omega": 0.05, "alpha": 0.08, "beta": 0.9, "mu": 0.05, "backcast": 1.5}


def bars(n=160, seed=2):
    """n days of bars: STK (0), IDX (1), VIX (2) at each close, in that order."""
    rng = np.random.default_rng(seed)
    px = {0: 50.0 * np.exp(np.cumsum(rng.normal(0, 0.015, n))), 1: 300.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n))),
          2: np.abs(20 + np.cumsum(rng.normal(0, 1.0, n)))}
    vol = rng.uniform(1e5, 2e5, n)
    md = np.zeros(3 * n, MD_DTYPE)
    for d in range(n):
        for i in range(3):
            e = md[3 * d + i]
            e["ts_exch"], e["instrument"], e["kind"], e["seq"] = (d + 1) * DAY, i, MD_BAR, 3 * d + i + 1
            c = px[i][d]
            e["open_px"], e["high_px"], e["low_px"], e["last_px"] = c, c * 1.01, c * 0.99, c
            e["last_sz"] = vol[d] if i == 0 else 0.0
            e["bid_px"] = e["ask_px"] = np.nan
    return md, px, vol


def features(regime: dict) -> Features:
    return msgspec.convert({"set": "daily", "regime": regime}, type=Features)


@pytest.fixture
def core(tmp_path):
    (tmp_path / "regimes.json").write_text(json.dumps({"return_scale": 100.0, "hmm": HMM, "garch": {"STK": GARCH}}))
    cfg = features({"vix_symbol": "VIX", "index_symbol": "IDX", "params": "regimes.json", "adv_bars": 10})
    return FeatureCore(cfg, 3, symbols=["STK", "IDX", "VIX"], tradable=[True, False, False], base=tmp_path)


def test_rows_when_bars_stream_then_they_carry_the_vix_hmm_garch_and_adv_known_at_their_event(core):
    md, px, vol = bars()
    rows = np.zeros(len(md), FEATURE_DTYPE)
    k = 0
    for j in range(0, len(md), 7):  # odd batches: a row must not depend on how events were batched
        m = min(7, len(md) - j)
        k += features_step(core.state, md[j:j + m], m, rows[k:], 0)
    rows = rows[:k]
    assert k > 50 and (rows["instrument"] == 0).all()  # the index and the VIX make no rows
    day = (rows["seq"] - 1) // 3  # each row is STK's bar of that day: it sees the VIX and IDX of the day before
    assert np.array_equal(rows["vix"], px[2][day - 1])
    idx_r = (px[1][1:] / px[1][:-1] - 1.0) * 100.0
    probs = hmm_filter(idx_r[:, None], np.array(HMM["startprob"]), np.array(HMM["transmat"]), np.array(HMM["means"]),
                       np.array(HMM["variances"]))
    got = np.stack([rows["p_bull"], rows["p_bear"], rows["p_sideways"]], axis=1)
    np.testing.assert_allclose(got, probs[day - 2], rtol=0, atol=1e-12)  # IDX returns from day 1: index day-2
    s = garch_new(GARCH["omega"], GARCH["alpha"], GARCH["beta"], GARCH["mu"], GARCH["backcast"])
    stk_r = (px[0][1:] / px[0][:-1] - 1.0) * 100.0
    nxt = np.array([garch_update(s, r)[1] for r in stk_r])
    np.testing.assert_allclose(rows["variance"], nxt[day - 1] / 1e4, rtol=1e-14)
    value = px[0] * vol
    adv = np.empty_like(value)
    adv[0] = value[0]
    for d in range(1, len(value)):
        adv[d] = adv[d - 1] + 2.0 / 11.0 * (value[d] - adv[d - 1])
    np.testing.assert_allclose(rows["adv"], adv[day], rtol=1e-12)
    assert np.isnan(rows["half_spread"]).all()  # bars: no quote


def test_quote_of_the_vix_when_it_arrives_then_its_mid_is_the_level_and_spreads_are_kept(core):
    md = np.zeros(2, MD_DTYPE)
    md["kind"], md["instrument"] = MD_QUOTE, [2, 0]
    md["bid_px"], md["ask_px"] = [30.0, 99.0], [30.2, 101.0]
    features_step(core.state, md, 2, np.zeros(2, FEATURE_DTYPE), 0)
    assert core.regime.reg[0] == pytest.approx(30.1)
    assert core.regime.inst[0, 8] == pytest.approx(0.01)  # half spread of STK, fraction of the mid


def test_regime_config_when_a_symbol_or_the_params_are_wrong_then_the_error_names_them(tmp_path):
    bad = features({"vix_symbol": "VXX"})
    with pytest.raises(ValueError, match="vix_symbol expected a symbol of the universe, was 'VXX'"):
        FeatureCore(bad, 2, symbols=["A", "VIX"], base=tmp_path)
    missing = features({"index_symbol": "A", "params": "nope.json"})
    with pytest.raises(ValueError, match="nope.json not found"):
        FeatureCore(missing, 2, symbols=["A", "VIX"], base=tmp_path)
    (tmp_path / "r.json").write_text("{}")
    no_hmm = features({"index_symbol": "A", "params": "r.json"})
    with pytest.raises(ValueError, match="needs HMM parameters"):
        FeatureCore(no_hmm, 2, symbols=["A", "VIX"], base=tmp_path)
