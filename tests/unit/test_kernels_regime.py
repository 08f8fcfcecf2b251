"""Regime kernels against arch, hmmlearn, numpy, on real daily data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from hmmlearn import _hmmc
from hmmlearn.hmm import GaussianHMM
from scipy.special import logsumexp

from alphad.kernels import regime as rg
from alphad.ops import fit_regimes as fr


@pytest.fixture(scope="module")
def spy_returns(shared_data):
    c = pd.read_csv(shared_data / "daily/spy_daily_1999-2020.csv")["close"].to_numpy(np.float64)
    return c[1:] / c[:-1] - 1.0


@pytest.fixture(scope="module")
def garch_params(spy_returns, tmp_path_factory):
    # fitted once by the offline helper and read back through JSON, as the daemon would
    path = tmp_path_factory.mktemp("regime") / "garch.json"
    fr.write_params(path, fr.fit_garch(spy_returns))
    return fr.read_params(path)


@pytest.mark.data
def test_garch_when_fitted_params_then_variance_path_equals_arch(spy_returns, garch_params):
    # Arrange: arch's own conditional variance for exactly these parameters
    p = garch_params
    y = spy_returns * p["scale"]
    fixed = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, rescale=False).fix(
        [p["mu"], p["omega"], p["alpha"], p["beta"]])
    expected = np.asarray(fixed.conditional_volatility) ** 2
    # Act
    batch = rg.garch_variance(y, p["omega"], p["alpha"], p["beta"], p["mu"], p["backcast"])
    state = rg.garch_new(p["omega"], p["alpha"], p["beta"], p["mu"], p["backcast"])
    streamed = np.array([rg.garch_update(state, r)[0] for r in y])
    # Assert
    assert 0.0 < p["alpha"] < 0.5 and 0.5 < p["beta"] < 1.0  # a sane equity GARCH
    np.testing.assert_allclose(batch, expected, rtol=1e-8)
    np.testing.assert_allclose(streamed, batch, rtol=1e-12)
    # the 2008 and 2020 crashes show up as the largest variances
    assert expected.max() > 20 * np.median(expected)


def test_garch_when_alpha_plus_beta_not_stationary_then_clear_error():
    with pytest.raises(ValueError, match="expected omega > 0 and alpha \\+ beta < 1, was"):
        rg.garch_new(0.01, 0.2, 0.85)


@pytest.mark.data
def test_hmm_when_fitted_params_then_filter_equals_hmmlearn_forward_pass(spy_returns, tmp_path):
    # Arrange: 2 features (return, |return|), fitted offline, read back from JSON
    X = np.column_stack([spy_returns * 100, np.abs(spy_returns) * 100])
    fr.write_params(tmp_path / "hmm.json", fr.fit_hmm(X, seed=1, n_iter=50))
    p = fr.read_params(tmp_path / "hmm.json")
    oracle = GaussianHMM(n_components=3, covariance_type="diag")
    oracle.n_features = 2
    oracle.startprob_ = np.array(p["startprob"])
    oracle.transmat_ = np.array(p["transmat"])
    oracle.means_ = np.array(p["means"])
    oracle.covars_ = np.array(p["variances"])
    framelogprob = oracle._compute_log_likelihood(X)
    _, fwd = _hmmc.forward_log(oracle.startprob_, oracle.transmat_, framelogprob)
    expected = np.exp(fwd - logsumexp(fwd, axis=1, keepdims=True))  # filtered, not smoothed
    # Act
    filtered = rg.hmm_filter(X, p["startprob"], p["transmat"], p["means"], p["variances"])
    # Assert
    assert p["states"] == ["bull", "bear", "sideways"]
    means = np.array(p["means"])[:, 0]
    assert means[rg.BULL] > means[rg.SIDEWAYS] > means[rg.BEAR]
    np.testing.assert_allclose(filtered, expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(filtered.sum(axis=1), 1.0, atol=1e-12)
    # and it is really filtered: it differs from hmmlearn's smoothed predict_proba
    assert np.abs(oracle.predict_proba(X) - filtered).max() > 1e-3


@pytest.mark.data
def test_vix_regime_when_real_history_then_bands_sizing_and_kill(shared_data):
    v = pd.read_csv(shared_data / "vix/vix_daily.csv")["CLOSE"].to_numpy(np.float64)
    # Act
    codes = np.array([rg.vix_regime(x) for x in v])
    mult = np.array([rg.vix_sizing(x, rg.VIX_SIZING, rg.VIX_KILL) for x in v])
    # Assert: oracle = np.digitize on the documented bounds (a bound belongs to the upper band)
    np.testing.assert_array_equal(codes, np.digitize(v, rg.VIX_BOUNDS, right=False))
    assert set(codes) == set(range(7))  # 1990-2026 visits every regime
    assert (mult[v >= 45.0] == 0.0).all() and (v >= 45.0).sum() > 10
    assert rg.vix_regime(82.69) == rg.VIX_CRISIS
    assert [rg.vix_regime(x) for x in (11.99, 12.0, 16.0, 19.99, 25.0, 30.0, 39.99, 40.0)] == [
        rg.VIX_COMPLACENT, rg.VIX_LOW, rg.VIX_NORMAL, rg.VIX_NORMAL, rg.VIX_HIGH,
        rg.VIX_EXTREME, rg.VIX_EXTREME, rg.VIX_CRISIS]
    assert rg.vix_sizing(44.99, rg.VIX_SIZING, 45.0) == rg.VIX_SIZING[rg.VIX_CRISIS] > 0


@pytest.mark.data
def test_corr_regime_when_bank_stocks_then_matches_numpy_and_high_in_2008(shared_data):
    # Arrange: six banks/insurers, 60-day window
    df = pd.read_csv(shared_data / "daily/us_equities_daily_1999-2021.csv.gz",
                     usecols=["symbol", "date", "adjusted_close"])
    syms = ["JPM", "BAC", "C", "WFC", "GS", "AXP"]
    px = df[df["symbol"].isin(syms)].pivot(index="date", columns="symbol", values="adjusted_close")[syms]
    rets = (px.to_numpy()[1:] / px.to_numpy()[:-1] - 1.0)
    dates = px.index[1:]
    w = 60
    s = rg.corr_new(len(syms), w)
    # Act
    out = np.array([rg.corr_update(s, r) for r in rets])
    # Assert: numpy oracle on sampled windows
    for t in range(w - 1, rets.shape[0], 97):
        cm = np.corrcoef(rets[t - w + 1: t + 1].T)
        exp = cm[np.triu_indices(len(syms), 1)].mean()
        assert abs(out[t, 0] - exp) < 1e-12
    assert np.isnan(out[: w - 1, 0]).all() and (out[: w - 1, 1] == -1).all()
    crisis = (dates >= "2008-10-01") & (dates <= "2008-12-31")
    assert (out[crisis, 1] == rg.CORR_HIGH).all()
