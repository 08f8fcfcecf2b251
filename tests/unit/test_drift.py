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
    PSI_WARN,
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


def test_reference_when_an_atom_and_a_tight_cluster_then_bins_that_cannot_degenerate():
    rng = np.random.default_rng(3)
    # an atom: 90% of the rows exactly 0 (a one-event return is 0 between trades)
    atom = np.where(rng.random(20_000) < 0.9, 0.0, rng.normal(0, 1e-4, 20_000))
    # a tight cluster (one tick in bps at one price level, jittering with the price) and a wide one
    cluster = np.r_[0.0017 + rng.normal(0, 1e-6, 10_000), rng.uniform(0.03, 0.05, 10_000)]
    ref = reference_histograms(np.c_[atom, cluster], ["ret_1", "spread_bps"], 10)
    e_atom = list(ref.edges[0])
    assert 0.0 in e_atom and ref.fractions[0][e_atom.index(0.0) + 1] > 0.85  # the atom alone in its bin
    assert ref.fractions[0][0] > 0.01 and sum(ref.fractions[0][e_atom.index(0.0) + 2:]) > 0.01  # below, above
    e = np.asarray(ref.edges[1])
    inner = e[e < 1e30]
    lo, hi = np.quantile(cluster, [0.01, 0.99])
    assert np.all(np.diff(inner) >= 0.01 * (hi - lo) * (1 - 1e-6))  # no two edges inside the jitter


def test_reference_when_the_demo_replays_its_own_recording_then_no_feature_reads_as_drifted(repo_root):
    """The shipped demo warned of spread_bps drift on its own data (PSI 0.2: quantile edges
    inside the one-tick spread's cluster, which moves with the price level)."""
    from alphad.daemon.config import load_config
    from alphad.daemon.feed.sources import load_events
    from alphad.kernels.quote_features import FEATURE_SETS, quote_features_batch

    cfg, base = load_config(repo_root / "config.yaml")
    f = cfg.features
    names = list(FEATURE_SETS[f.set])
    rows = quote_features_batch(load_events(cfg.feed, base, cfg.universe), len(cfg.universe),
                                fast=f.ema_fast_events, slow=f.ema_slow_events, quotes_only=f.trigger == "quote",
                                feature_set=f.set, **f.state_params())
    x = rows["x"][:, :len(names)].astype(np.float64)
    ref = reference_histograms(x[: int(0.7 * len(x))], names, 10)  # as train-demo makes it
    counts = np.zeros((len(names), 10), np.int64)
    edges = np.asarray(ref.edges)
    for row in x.astype(np.float32):
        histogram_update(counts, edges, row)
    values = psi(np.asarray(ref.fractions), counts)
    assert np.all(values < PSI_WARN / 2), dict(zip(names, values.round(3)))
