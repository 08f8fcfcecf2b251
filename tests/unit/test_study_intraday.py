"""The ablation study's intraday measurements (ops/study/intraday.py): the OFI e_n against a
hand computation, the out-of-sample IC on a series whose label is a feature, and, on the real
Binance capture, R² bounds and a TWAP/immediate comparison over one shared set of decisions."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alphad.ops.study.intraday import interval_ofi, ofi_e, ofi_r2, oos_ic, twap_vs_immediate


def test_ofi_e_when_tiny_quote_sequence_then_equals_hand_computed_cks_terms():
    # (bid, bid_sz, ask, ask_sz); e_n = 1[Pb>=Pb']qb - 1[Pb<=Pb']qb' - 1[Pa<=Pa']qa + 1[Pa>=Pa']qa'
    bid = np.array([100.0, 100.0, 100.5, 100.0, 100.0])
    bsz = np.array([5.0, 7.0, 2.0, 4.0, 4.0])
    ask = np.array([101.0, 101.0, 101.0, 100.5, 101.0])
    asz = np.array([3.0, 3.0, 1.0, 6.0, 2.0])
    e = ofi_e(bid, bsz, ask, asz)
    assert math.isnan(e[0])
    assert e[1] == 7 - 5 - 3 + 3          # sizes change at unchanged prices: +2 on the bid
    assert e[2] == 2 - 1 + 3              # bid up (new level 2), ask same (3 -> 1)
    assert e[3] == -2 - 6                 # bid down (old level 2 left), ask down (new level 6)
    assert e[4] == 4 - 4 + 6              # bid same, ask up (old level 6 left)
    # intervals of 10 ns from t = 0: (0, 10] holds quotes 1 and 2, (10, 20] quotes 3 and 4
    ofi, dmid = interval_ofi(np.array([0, 5, 10, 15, 20]), e, 0.5 * (bid + ask), 10)
    assert ofi.tolist() == [e[1] + e[2], e[3] + e[4]]
    assert dmid.tolist() == [100.75 - 100.5, 100.5 - 100.75]


def test_oos_ic_when_label_is_a_feature_then_that_set_near_one_and_noise_near_zero():
    rng = np.random.default_rng(3)
    n, h = 4000, 10                           # 100 ms grid, a 1 s horizon = 10 steps
    steps = rng.normal(0.0, 1e-4, n + h)
    mid = 100.0 * np.exp(np.cumsum(steps))[:n]
    future = np.array([steps[i + 1:i + h + 1].sum() for i in range(n)])  # log(mid[i+h]/mid[i])
    t = np.arange(n, dtype=np.int64) * 100_000_000
    noise = rng.normal(size=(n, 3))
    feats = {"noise": noise, "informed": np.column_stack([noise, future])}
    r = oos_ic(t, mid, feats, (1,), train_fraction=0.5)
    res = r["horizons"]["1"]
    assert res["ic"]["informed"][0] > 0.99
    assert abs(res["ic"]["noise"][0]) < 0.1
    est, lo, hi = res["ic_diff"]
    assert 0.8 < lo <= est <= hi          # informed - noise, with its interval
    # a perfect forecast wins every period; each position change pays 1 or 2 units of the
    # 1 bps fee (a flip is two units; no spread given)
    pnl = res["pnl"]["informed"]
    assert pnl["hit_rate"] == 1.0 and pnl["periods"] == len(r["series"]["label"]["1"][::10])
    assert pnl["trades"] <= pnl["cost_bps"] <= 2 * pnl["trades"]
    assert pnl["net_bps"] == pytest.approx(pnl["gross_bps"] - pnl["cost_bps"])
    assert res["n_test"] == len(r["series"]["label"]["1"]) and res["n_train"] + res["n_test"] <= n


@pytest.mark.data
def test_ofi_r2_when_real_capture_then_r2_in_unit_interval_and_interval_counts_match_span(shared_data):
    r = ofi_r2(shared_data, (1, 10))
    json.dumps(r)
    for s, n in (("1", 650), ("10", 65)):  # the capture spans 650.4 s of quotes
        est, lo, hi = r["intervals"][s]["r2"]
        assert r["intervals"][s]["n"] == n and 0.0 <= lo <= est <= hi <= 1.0
        assert r["intervals"][s]["beta"] > 0  # buying pressure lifts the mid
    assert r["quotes"] == 73174


@pytest.mark.data
def test_twap_vs_immediate_when_short_window_then_costs_for_the_same_decisions(shared_data, repo_root):
    r = twap_vs_immediate(shared_data, repo_root / "config.yaml", trade_until="2024-08-08T23:55:30")
    json.dumps(r)
    s = r["series"]
    assert r["matched"] > 20 and len(s["ts"]) == len(s["immediate_is_bps"]) == len(s["twap_is_bps"]) == r["matched"]
    assert np.all(np.isfinite(s["immediate_is_bps"])) and np.all(np.isfinite(s["twap_is_bps"]))
    assert s["ts"] == sorted(s["ts"])
    m = r["matched_summary"]
    assert m["immediate"]["parents"] == m["twap"]["parents"] == r["matched"]
    est, lo, hi = r["diff_is_bps"]
    assert lo <= est <= hi
    assert est == pytest.approx(np.mean(s["twap_is_bps"]) - np.mean(s["immediate_is_bps"]))
    # the immediate orders are market orders: every fill took liquidity and paid the 1 bps fee
    assert m["immediate"]["mean_fees_bps"] == pytest.approx(1.0, rel=1e-3)
    assert m["twap"]["mean_duration_s"] > m["immediate"]["mean_duration_s"]
