"""The research model trading daily bars through the daemon's cores (issue 18).

``alphad train --config configs/train_daily.yaml`` (2000..2016) then ``alphad backtest`` on
``configs/daily.yaml`` as shipped (the card loaded as built, 1999..2016 warming the
indicators, trading from 2017): orders only after ``feed.trade_from``, each filled on the open
of its stock's next bar plus the venue's half spread, never on the bar it was decided on.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from alphad.daemon.config import load_config
from alphad.daemon.shell.backtest import backtest
from alphad.daemon.feed.sources import load_daily
from alphad.daemon.infer.model_card import read_card
from alphad.ipc.dtypes import EXEC_FILL, EXEC_PARTIAL, ORDER_F_FLATTEN


@pytest.fixture(scope="module")
def daily_backtest(daily_run, shared_data, repo_root, tmp_path_factory):
    raw = yaml.safe_load((repo_root / "configs/daily.yaml").read_text())
    raw["feed"]["path"] = str(shared_data / "daily/us_equities_daily_1999-2021.csv.gz")
    raw["feed"]["trade_from"] = str(raw["feed"]["trade_from"])
    raw["model"]["card"] = str(daily_run / "model_card.json")
    path = tmp_path_factory.mktemp("daily") / "daily.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg, base = load_config(path)
    reports: list[np.ndarray] = []
    orders, summary = backtest(cfg, base, reports=reports)
    return (cfg, base), orders, np.concatenate(reports), summary


def test_daily_config_when_trained_to_2016_then_it_trades_2017_on_out_of_sample(daily_backtest, daily_run):
    (cfg, _), orders, _, summary = daily_backtest
    start = cfg.feed.trade_from_ns()
    card = read_card(daily_run / "model_card.json")
    assert card.feature_set == cfg.features.set == "daily"
    assert card.train_end_date.isoformat() <= "2016-12-31" and cfg.feed.trade_from == "2017-01-01"
    assert summary["events"] == 327_676 and summary["loop"] == "compiled"
    assert len(orders) > 1000 and (orders["t_origin"] >= start).all()
    assert len(np.unique(orders["instrument"])) > 30  # the model ranks the whole panel


def test_daily_fills_when_an_order_is_decided_on_a_close_then_it_fills_on_the_next_open(daily_backtest, shared_data):
    (cfg, _), orders, reports, _ = daily_backtest
    fills = reports[np.isin(reports["status"], [EXEC_FILL, EXEC_PARTIAL]) & (reports["fill_qty"] > 0)]
    assert len(fills) > 1000
    bars, _ = load_daily(shared_data / "daily/us_equities_daily_1999-2021.csv.gz",
                         {ins.symbol: ins.id for ins in cfg.universe})
    half_spread = cfg.router.venues[0].bar_half_spread_bps * 1e-4
    decided = dict(zip(orders["client_order_id"].tolist(), orders["t_origin"].tolist()))
    for f in fills[:: max(1, len(fills) // 500)]:  # 500 fills across the run
        mine = bars[bars["instrument"] == f["instrument"]]
        k = int(np.searchsorted(mine["ts_exch"], decided[int(f["client_order_id"])], side="right"))
        bar = mine[k]  # the first bar of that stock after the decision
        assert f["ts"] == bar["ts_exch"]
        assert f["fill_px"] == pytest.approx(bar["open_px"] * (1 + f["side"] * half_spread), rel=1e-12)


def test_daily_backtest_when_the_python_loop_runs_it_then_the_same_orders_and_flatten(daily_backtest):
    """The process loop (Python between the steps) and the compiled loop: the same orders,
    the drawdown KILL's flatten included, at the same mark."""
    (cfg, base), orders, _, _ = daily_backtest
    flatten = orders[(orders["flags"] & ORDER_F_FLATTEN) != 0]
    assert len(flatten) > 10  # March 2020 struck the KILL step: every position flattened at once
    assert len(set(flatten["t_origin"].tolist())) == 1
    python_orders, summary = backtest(cfg, base, loop="python")
    assert summary["loop"] == "python"
    assert python_orders.tobytes() == orders.tobytes()  # every field, NaN limit prices included
