"""The research model trading daily bars through the daemon's cores (issue 18).

``alphad train --config configs/train_daily.yaml`` (2000..2016, with the regime models fitted
to the same end) then ``alphad backtest`` on ``configs/daily.yaml`` as shipped (the card
loaded as built, 1999..2016 warming the indicators, trading from 2017, SPY and the VIX merged
in as sizing's inputs, the full sizing, the rebalancer and NYSE sessions): orders only after
``feed.trade_from``, each filled on the open of its stock's next bar plus the venue's half
spread, never on the bar it was decided on; every order sized and its multipliers kept.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from alphad.daemon.config import load_config
from alphad.daemon.shell.backtest import backtest
from alphad.daemon.feed.sources import load_daily
from alphad.daemon.infer.model_card import read_card
from alphad.ipc.dtypes import EXEC_FILL, EXEC_PARTIAL, ORDER_F_FLATTEN, ORDER_F_TRIM


@pytest.fixture(scope="module")
def daily_backtest(daily_run, shared_data, repo_root, tmp_path_factory):
    raw = yaml.safe_load((repo_root / "configs/daily.yaml").read_text())
    raw["feed"]["path"] = str(shared_data / "daily/us_equities_daily_1999-2021.csv.gz")
    raw["feed"]["trade_from"] = str(raw["feed"]["trade_from"])
    for extra in raw["feed"]["also"]:  # the shipped paths are relative to configs/
        extra["path"] = str(shared_data / extra["path"].split("shared/data/")[1])
    raw["features"]["regime"]["params"] = str(daily_run / "regimes.json")
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
    assert summary["loop"] == "compiled"
    assert len(orders) > 500 and (orders["t_origin"] >= start).all()
    assert len(np.unique(orders["instrument"])) > 30  # the model ranks the whole panel
    assert orders["instrument"].max() <= 60  # SPY and the VIX are inputs, never traded


def test_daily_orders_when_sized_then_each_carries_its_multipliers_and_decisions_fall_on_nyse_sessions(
        daily_backtest):
    (cfg, _), orders, _, summary = daily_backtest
    sized = orders[(orders["flags"] & (ORDER_F_FLATTEN | ORDER_F_TRIM)) == 0]
    product = (sized["m_conviction"] * sized["m_kelly"] * sized["m_regime"] * sized["m_vix"] * sized["m_vol"]
               * sized["m_risk"])
    capped = np.clip(product, -cfg.risk.sizing.max_position_weight, cfg.risk.sizing.max_position_weight)
    live = sized["m_vix"] > 0  # below the kill level
    assert np.allclose(sized["target_weight"][live], capped[live], rtol=1e-12, atol=0)
    assert len(np.unique(np.round(sized["m_vix"], 6))) >= 3  # the VIX bands moved the size
    assert np.nanmin(sized["m_regime"]) < 0.5 < np.nanmax(sized["m_regime"])  # the HMM's bear state was seen
    assert np.nanmin(sized["m_vol"]) < 0.5 * np.nanmax(sized["m_vol"])  # GARCH's variance moved the size
    assert summary["denials_by_reason"].get("cost_filtered", 0) > 0  # the benefit/cost filter dropped trades
    from alphad.daemon.risk.sessions import build_session_table

    nyse = build_session_table(["XNYS"], int(orders["t_origin"].min()), int(orders["t_origin"].max()))
    sessions = set(nyse.opens[0, : nyse.counts[0]].astype("datetime64[ns]").astype("datetime64[D]").tolist())
    days = set(orders["t_origin"].astype("datetime64[ns]").astype("datetime64[D]").tolist())
    assert days <= sessions and len(days) > 200


def test_daily_vix_when_at_or_above_45_then_no_order_grows_a_position(daily_backtest, shared_data):
    """The VIX closed at or above 45 on 23 sessions, 2020-03-09 .. 2020-04-21; a decision at a
    close sees the previous close's VIX (its 16:15 bar comes after the stocks').  Flat is the
    target then: every order it makes closes what is held (below the minimum notional too)."""
    (cfg, _), orders, reports, _ = daily_backtest
    killed = orders[orders["m_vix"] == 0.0]
    assert len(killed) > 10 and (killed["target_weight"] == 0.0).all()
    positions = np.zeros(61)
    fills = reports[reports["fill_qty"] > 0]
    for o in killed:  # each reduces what was held (and working) when it was decided
        held = fills[(fills["instrument"] == o["instrument"]) & (fills["ts"] <= o["t_origin"])]
        position = float((held["side"] * held["fill_qty"]).sum())
        assert position != 0 and o["side"] == -np.sign(position) and o["qty"] <= abs(position)


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
    the drawdown KILL's flatten included, at the same mark (a ladder of a few basis points,
    so that the sized book reaches its KILL step)."""
    import msgspec

    (cfg, base), _, _, _ = daily_backtest
    tight = msgspec.structs.replace(cfg.risk.drawdown, warning=0.0002, critical=0.0003, emergency=0.0004,
                                    kill=0.0005)
    cfg = msgspec.structs.replace(cfg, risk=msgspec.structs.replace(cfg.risk, drawdown=tight))
    orders, _ = backtest(cfg, base)
    flatten = orders[(orders["flags"] & ORDER_F_FLATTEN) != 0]
    assert len(flatten) >= 2  # the KILL step: every position flattened at once
    assert len(set(flatten["t_origin"].tolist())) == 1
    python_orders, summary = backtest(cfg, base, loop="python")
    assert summary["loop"] == "python"
    assert python_orders.tobytes() == orders.tobytes()  # every field, NaN limit prices included
