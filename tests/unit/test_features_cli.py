"""``alphad features``: real files in, feature CSV out, through the real CLI entry point."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from alphad.daemon import cli
from alphad.kernels import feature_sets as fsets
from alphad.ops import features_cli


@pytest.mark.data
def test_features_when_daily_file_with_symbols_then_per_symbol_adjusted_columns(shared_data, tmp_path):
    # Arrange: three symbols of the repo's daily file (date / adjusted_close layout)
    src = pd.read_csv(shared_data / "daily/us_equities_daily_1999-2021.csv.gz")
    src = src[src["symbol"].isin(["AAPL", "KO", "NFLX"])]
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.to_csv(inp, index=False)
    # Act
    rc = cli.main(["features", str(inp), "-o", str(out), "--set", "core"])
    # Assert
    assert rc == 0
    res = pd.read_csv(out)
    assert list(res.columns) == ["timestamp", "symbol", *fsets.get_feature_set("core").names]
    assert len(res) == len(src)
    for sym in ("AAPL", "NFLX"):
        g = src[src["symbol"] == sym]
        r = res[res["symbol"] == sym]
        c = g["adjusted_close"].to_numpy()
        # computed per symbol on adjusted closes: equals TA-Lib on that symbol alone
        np.testing.assert_allclose(r["rsi_14"].to_numpy(), talib.RSI(c, 14), rtol=1e-9)
        np.testing.assert_allclose(r["ema_20"].to_numpy(), talib.EMA(c, 20), rtol=1e-9)
        assert r["macd_12_26_9"].isna().sum() == 33  # TA-Lib's MACD warm-up, per symbol


@pytest.mark.data
def test_features_when_minute_bars_then_vwap_resets_by_day(shared_data, tmp_path):
    src = pd.read_csv(shared_data / "intraday/lean_equity_minute_trades.csv.gz")
    src = src[src["symbol"] == "IBM"].rename(columns={"datetime": "timestamp"}).drop(columns="symbol")
    inp, out = tmp_path / "ibm.csv", tmp_path / "ibm_features.csv"
    src.to_csv(inp, index=False)
    args = type("A", (), {"input": str(inp), "output": str(out), "feature_set": "full"})()
    assert features_cli.run(args) == 0
    res = pd.read_csv(out)
    first = pd.to_datetime(res["timestamp"]).dt.date.ne(pd.to_datetime(res["timestamp"]).dt.date.shift())
    c, h, l = src["close"].to_numpy(), src["high"].to_numpy(), src["low"].to_numpy()
    tp = (h + l + c) / 3.0
    # first bar of each day: VWAP is that bar's typical price
    np.testing.assert_allclose(res.loc[first.to_numpy(), "vwapdev"], (c / tp - 1.0)[first.to_numpy()],
                               rtol=1e-6, atol=1e-9)


def test_features_when_column_missing_then_error_names_it(tmp_path, capsys):
    inp = tmp_path / "bad.csv"
    pd.DataFrame({"timestamp": ["2020-01-02"], "open": [1.0], "high": [1.0], "close": [1.0]}).to_csv(inp, index=False)
    rc = cli.main(["features", str(inp), "-o", str(tmp_path / "o.csv")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "missing low, volume" in err and "columns were: timestamp, open, high, close" in err


def test_features_when_nan_price_then_error_names_symbol_and_row(tmp_path, capsys):
    inp = tmp_path / "nan.csv"
    pd.DataFrame({"timestamp": ["2020-01-02", "2020-01-03"], "symbol": ["X", "X"], "open": [1.0, 1.0],
                  "high": [1.0, 1.0], "low": [1.0, 1.0], "close": [1.0, np.nan],
                  "volume": [5.0, 5.0]}).to_csv(inp, index=False)
    assert cli.main(["features", str(inp), "-o", str(tmp_path / "o.csv")]) == 1
    assert "(symbol X): close: expected finite values, row 1 was nan" in capsys.readouterr().err
