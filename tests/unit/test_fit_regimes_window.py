"""Regime parameters fitted offline without look-ahead (ops/fit_regimes.py fit_daily_regimes, CLI --end).

Real data: the 61-stock daily equities file and the Lean ETF file (SPY's adj_close).  The Lean
file is rights-reserved: truncated copies go to tmp_path only, never into the repository.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from alphad.kernels import regime as rg
from alphad.ops import fit_regimes as fr

EQ = "daily/us_equities_daily_1999-2021.csv.gz"
IDX = "daily/lean_etf_daily_2007-2021.csv.gz"
SYMS = ["AAPL", "KO", "XOM"]

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def files(shared_data):
    return shared_data / EQ, shared_data / IDX


@pytest.fixture(scope="module")
def fit_2012(files):
    return fr.fit_daily_regimes(*files, end="2012-12-31", symbols=SYMS)


def test_fit_when_input_files_end_at_the_fit_end_then_same_parameters_as_full_files(files, fit_2012, tmp_path):
    # Arrange: copies of both files cut at 2012-12-31 (tmp_path only: the Lean data stays out of the repo)
    eq, idx = files
    cut_eq, cut_idx = tmp_path / "eq.csv.gz", tmp_path / "idx.csv.gz"
    e = pd.read_csv(eq, dtype=str)
    e[e["date"] <= "2012-12-31"].to_csv(cut_eq, index=False)
    i = pd.read_csv(idx, dtype=str)
    i[i["date"] <= "2012-12-31"].to_csv(cut_idx, index=False)
    # Act
    cut = fr.fit_daily_regimes(cut_eq, cut_idx, end="2012-12-31", symbols=SYMS)
    later = fr.fit_daily_regimes(eq, idx, end="2016-12-31", symbols=SYMS)
    # Assert: rows after the end change nothing (bit for bit), a later end changes everything
    assert json.dumps(cut, sort_keys=True) == json.dumps(fit_2012, sort_keys=True)
    assert fit_2012["fit_end"] == "2012-12-31" and fit_2012["return_scale"] == 100.0
    assert sorted(fit_2012["garch"]) == sorted(SYMS + ["SPY"]) and fit_2012["skipped"] == []
    assert max(fit_2012["last_date"].values()) <= "2012-12-31"
    assert fit_2012["last_date"]["SPY"] == "2012-12-31" and later["last_date"]["SPY"] == "2016-12-30"
    for s in SYMS + ["SPY"]:
        assert later["nobs"][s] > fit_2012["nobs"][s]
        assert later["garch"][s]["omega"] != fit_2012["garch"][s]["omega"]
    assert later["hmm"]["means"] != fit_2012["hmm"]["means"]
    # Lean's SPY: 1,510 rows 2007-01-03 .. 2012-12-31, so 1,509 returns
    assert fit_2012["nobs"]["SPY"] == fit_2012["hmm"]["nobs"] == fit_2012["garch"]["SPY"]["nobs"] == 1509


def test_fit_when_returns_then_they_are_the_feed_bar_closes(files, fit_2012):
    # the daemon's feed (load_daily) adjusts the bars; the fit's returns come from the same closes
    from alphad.daemon.feed.sources import load_daily

    md, _ = load_daily(files[0], {s: i for i, s in enumerate(SYMS)})
    got = fr.daily_returns(files[0], "2012-12-31", SYMS)
    for i, s in enumerate(SYMS):
        bars = md[md["instrument"] == i]
        day = (bars["ts_exch"] // 86_400_000_000_000).astype("datetime64[D]")
        c = bars["last_px"][day <= np.datetime64("2012-12-31")]
        np.testing.assert_array_equal(got[s][1], c[1:] / c[:-1] - 1.0)
        assert fit_2012["nobs"][s] == c.size - 1


@pytest.mark.parametrize("symbol", ["AAPL", "SPY"])
def test_garch_when_kernel_runs_fitted_params_then_variance_equals_arch_in_window(files, fit_2012, symbol):
    # Arrange: the symbol's in-window returns, read independently of fit_regimes
    if symbol == "SPY":
        df = pd.read_csv(files[1])
        px = df[(df["symbol"] == "SPY") & (df["date"] <= "2012-12-31")]["adj_close"].to_numpy(np.float64)
    else:
        df = pd.read_csv(files[0])
        px = df[(df["symbol"] == symbol) & (df["date"] <= "2012-12-31")]["adjusted_close"].to_numpy(np.float64)
    p = json.loads(json.dumps(fit_2012))["garch"][symbol]  # through JSON, as the daemon reads it
    y = (px[1:] / px[:-1] - 1.0) * fit_2012["return_scale"]
    res = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False).fit(disp="off")
    # Act: the daemon's kernel, state by state
    s = rg.garch_new(p["omega"], p["alpha"], p["beta"], p["mu"], p["backcast"])
    streamed = np.array([rg.garch_update(s, r)[0] for r in y])
    batch = rg.garch_variance(y, p["omega"], p["alpha"], p["beta"], p["mu"], p["backcast"])
    # Assert
    assert p["nobs"] == y.size
    np.testing.assert_allclose(streamed, np.asarray(res.conditional_volatility) ** 2, rtol=1e-6)
    np.testing.assert_allclose(batch, streamed, rtol=1e-12)
    assert p["alpha"] + p["beta"] < 1.0


def test_hmm_when_fitted_then_states_bull_bear_sideways_by_mean(fit_2012):
    h = fit_2012["hmm"]
    means = np.array(h["means"])[:, 0]
    assert h["states"] == ["bull", "bear", "sideways"]
    assert means[rg.BULL] > means[rg.SIDEWAYS] > means[rg.BEAR]
    assert means[rg.BULL] > 0 > means[rg.BEAR]
    var = np.array(h["variances"])[:, 0]
    assert var[rg.BEAR] > var[rg.BULL]  # the falling regime is the volatile one
    np.testing.assert_allclose(np.array(h["transmat"]).sum(axis=1), 1.0, atol=1e-12)
    # and the daemon's filter accepts the parameters
    x = np.array([[0.5]])
    p = rg.hmm_filter(x, h["startprob"], h["transmat"], h["means"], h["variances"])
    assert p.shape == (1, 3) and abs(p.sum() - 1.0) < 1e-12


def test_fit_when_symbol_has_too_few_returns_before_end_then_skipped_with_reason(files, tmp_path):
    # Arrange: NFLX listed from mid-2012 only (145 returns to the end of 2012)
    e = pd.read_csv(files[0], dtype=str)
    e = e[(e["symbol"] == "KO") | ((e["symbol"] == "NFLX") & (e["date"] >= "2012-06-01"))]
    e.to_csv(tmp_path / "eq.csv", index=False)
    # Act
    out = fr.fit_daily_regimes(tmp_path / "eq.csv", files[1], end="2012-12-31")
    # Assert
    assert sorted(out["garch"]) == ["KO", "SPY"]
    assert out["nobs"]["NFLX"] < 250
    (sk,) = out["skipped"]
    assert sk["symbol"] == "NFLX" and "fewer than 250" in sk["reason"]


def test_fit_when_bad_arguments_then_clear_errors(files):
    with pytest.raises(ValueError, match=r"end expected a date such as 2016-12-31, found 'soon'"):
        fr.fit_daily_regimes(*files, end="soon", symbols=SYMS)
    with pytest.raises(ValueError, match=r"symbols \['NOPE'\] were requested but are not in the file"):
        fr.fit_daily_regimes(*files, end="2012-12-31", symbols=["NOPE"])
    with pytest.raises(ValueError, match=r"no rows for index symbol 'QQQ'; the file has \['EEM', 'IWM', 'SPY'\]"):
        fr.fit_daily_regimes(*files, end="2012-12-31", symbols=SYMS, index_symbol="QQQ")
    with pytest.raises(ValueError, match=r"SPY has \d+ returns up to 2007-06-29, expected >= 250"):
        fr.fit_daily_regimes(*files, end="2007-06-29", symbols=SYMS)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "alphad.ops.fit_regimes", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_when_end_given_then_only_rows_up_to_it(shared_data, tmp_path):
    # Arrange: the pandas-ta SPY file (date column, 1999-11-01 .. 2020-08-28)
    spy = shared_data / "daily/spy_daily_1999-2020.csv"
    c = pd.read_csv(spy)
    c = c[c["date"] <= "2012-12-31"]["close"].to_numpy(np.float64)
    # Act
    r_garch = _cli("garch", spy, "--end", "2012-12-31", "-o", tmp_path / "g.json")
    r_hmm = _cli("hmm", spy, "--end", "2012-12-31", "-o", tmp_path / "h.json")
    # Assert
    assert r_garch.returncode == 0, r_garch.stderr
    assert r_hmm.returncode == 0, r_hmm.stderr
    assert fr.read_params(tmp_path / "g.json") == fr.fit_garch(c[1:] / c[:-1] - 1.0)
    assert fr.read_params(tmp_path / "h.json")["nobs"] == c.size - 1


def test_cli_when_end_is_not_a_date_then_exit_2_and_a_message(shared_data, tmp_path):
    spy = shared_data / "daily/spy_daily_1999-2020.csv"
    r = _cli("garch", spy, "--end", "2012-13-45", "-o", tmp_path / "g.json")
    assert r.returncode == 2
    assert "argument --end: end expected a date such as 2016-12-31, found '2012-13-45'" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "g.json").exists()
    r = _cli("daily", shared_data / EQ, shared_data / IDX, "--end", "last year", "-o", tmp_path / "d.json")
    assert r.returncode == 2 and "found 'last year'" in r.stderr and "Traceback" not in r.stderr


def test_cli_when_no_rows_up_to_end_then_message_without_traceback(shared_data, tmp_path):
    spy = shared_data / "daily/spy_daily_1999-2020.csv"
    r = _cli("hmm", spy, "--end", "1990-01-01", "-o", tmp_path / "h.json")
    assert r.returncode == 1
    assert "no rows dated on or before 1990-01-01" in r.stderr and "Traceback" not in r.stderr


def test_cli_daily_when_end_then_writes_the_fit(files, fit_2012, tmp_path):
    r = _cli("daily", *files, "--end", "2012-12-31", "--symbols", ",".join(SYMS), "-o", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "fitted GARCH on 4 symbols and the HMM on SPY up to 2012-12-31" in r.stderr
    assert fr.read_params(tmp_path / "r.json") == json.loads(json.dumps(fit_2012))
