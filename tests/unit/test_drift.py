"""Population stability index: reference bins, njit live counts, warnings."""
from __future__ import annotations

import logging

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.ops import dataset as dsm
from alphad.daemon.infer.drift import (
    PSI_EPS,
    DriftMonitor,
    DriftReference,
    histogram_update,
    psi,
    reference_histograms,
)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_bins=st.integers(2, 12))
def test_histogram_update_when_rows_then_counts_equal_numpy_searchsorted(seed, n_bins):
    rng = np.random.default_rng(seed)
    train = rng.standard_t(3, size=(500, 4)).astype(np.float32)
    train[:, 3] = np.round(train[:, 3])  # ties: duplicate quantiles collapse
    ref = reference_histograms(train, list("abcd"), n_bins)
    edges = np.asarray(ref.edges)
    live = rng.standard_t(3, size=(300, 4)).astype(np.float32)
    live[::17, 1] = np.nan
    counts = np.zeros((4, n_bins), np.int64)
    skipped = sum(histogram_update(counts, edges, row) for row in live)
    assert skipped == np.isnan(live).sum()
    for f in range(4):
        col = live[:, f][np.isfinite(live[:, f])].astype(np.float64)
        oracle = np.bincount(np.searchsorted(edges[f], col, side="right"), minlength=n_bins)
        np.testing.assert_array_equal(counts[f], oracle)
    # Reference fractions are the same binning applied to the training data.
    fr = np.asarray(ref.fractions)
    np.testing.assert_allclose(fr.sum(axis=1), 1.0)


def test_psi_when_hand_computed_then_equal():
    ref = np.array([[0.5, 0.5], [0.25, 0.75]])
    counts = np.array([[30, 70], [0, 10]])
    a = np.array([0.3, 0.7])
    exp0 = np.sum((a - 0.5) * np.log(a / 0.5))
    b = np.array([PSI_EPS, 1.0])
    exp1 = np.sum((b - ref[1]) * np.log(b / ref[1]))
    np.testing.assert_allclose(psi(ref, counts), [exp0, exp1])
    assert np.isnan(psi(ref, np.zeros((2, 2))))[0]


@pytest.mark.data
def test_drift_monitor_when_real_features_then_same_period_stable_and_shifted_period_warns(shared_data, caplog):
    bars = dsm.load_daily(shared_data / "daily/us_equities_daily_1999-2021.csv.gz",
                          symbols=["AAPL", "JPM", "XOM", "KO", "GE", "PFE"])
    names, X = dsm.feature_matrix(bars)
    dates = bars["date"].to_numpy()
    ok = np.all(np.isfinite(X), axis=1)
    before = X[ok & (dates < np.datetime64("2007-01-01"))]
    # Reference and "same population" sample: alternate rows of the same years.
    train, same = before[0::2], before[1::2]
    crisis = X[ok & (dates >= np.datetime64("2008-09-01")) & (dates < np.datetime64("2009-04-01"))]
    ref = msgspec.json.decode(msgspec.json.encode(reference_histograms(train, names, 10)), type=DriftReference)

    mon = DriftMonitor(ref)
    for row in same:
        mon.update(row)
    same_psi = mon.psi()
    assert mon.check() == []
    mon.reset()
    for row in crisis:
        mon.update(row)
    crisis_psi = dict(zip(names, mon.psi()))

    assert same_psi.max() < 0.02
    # The 2008 crash drove volatility far outside the 1999-2006 distribution.
    assert crisis_psi["vol_20"] > 1.0
    with caplog.at_level(logging.WARNING, logger="alphad.drift"):
        warned = dict(mon.check())
    assert "vol_20" in warned and "bbwidth_20_2" in warned  # the bands widen with volatility
    assert "feature drift: vol_20 PSI" in caplog.text
    assert all(v > 0.25 for v in warned.values())


def test_reference_histograms_when_bad_shape_then_error():
    with pytest.raises(ValueError, match=r"expected shape \(n, 2\); was \(5, 3\)"):
        reference_histograms(np.zeros((5, 3)), ["a", "b"])
