"""``alphad backtest --report DIR``: day-end samples taken exactly at each UTC day's last event
by both loops, without changing an order or a fill, and a report whose metrics equal
empyrical's on its own ``equity.csv``.

Feeds: the demo replay (one UTC day), the Lean equity minute quotes in ../shared/data (four
stocks in two sectors and SPY, thirteen UTC days over two periods) and the Binance capture
(166k events across a UTC midnight, in the middle of a feed chunk).  The sizing's part (the
multipliers over time, the PnL by regime) on a synthetic run: orders with chosen multipliers on
chosen days and a chosen equity."""
from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import empyrical
import msgspec
import numpy as np
import pandas as pd
import pytest

from alphad.daemon import cli
from alphad.daemon.config import load_config
from alphad.daemon.features.config import Regime
from alphad.daemon.feed.sources import load_events
from alphad.daemon.risk.config import DrawdownConfig, SizingConfig
from alphad.daemon.shell.backtest import backtest
from alphad.daemon.shell.day_samples import DAY_NS, DaySamples
from alphad.daemon.shell.progress import Progress
from alphad.ipc.dtypes import MD_QUOTE, ORDER_DTYPE, ORDER_F_FLATTEN

REQUIRED = ("cagr", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_days", "volatility", "turnover",
            "hit_rate", "fees", "spread_cost", "impact_cost", "orders", "fills")
PLOTS = ("equity_drawdown.png", "monthly_returns.png", "sector_exposure.png", "sector_pnl.png")
SIZING_PLOTS = ("sizing_multipliers.png", "pnl_by_regime.png")
TIMING = ("replay_s", "events_per_s", "setup_s", "load_s")
LEAN = [("AAPL", "Information Technology"), ("IBM", "Information Technology"), ("BAC", "Financials"),
        ("AIG", "Financials"), ("SPY", "")]


@pytest.fixture(scope="module")
def configs(repo_root, shared_data, tmp_path_factory):
    """Config paths by name: ``lean`` (equity minute quotes, compiled model, immediate fills)
    and ``binance`` (the capture, compiled model, 2 ms entry and response latency)."""
    folder = tmp_path_factory.mktemp("configs")
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["model"].update(card=str(repo_root / raw["model"]["card"]), runtime="compiled")
    raw["router"]["impact"] = {"enabled": False}
    lean = {**raw, "universe": [{"id": i, "symbol": s, "sector": sec, "tick_size": 0.01, "lot_size": 1.0}
                                for i, (s, sec) in enumerate(LEAN)]}
    lean["feed"] = {**raw["feed"], "path": str(shared_data / "intraday/lean_equity_minute_quotes.csv.gz"),
                    "format": "lean_minute", "loop": False}
    binance = {**raw, "feed": {**raw["feed"], "format": "binance", "loop": False,
                               "path": str(shared_data / "l2/binance_spot_book_ticker.csv.gz"),
                               "trades_path": str(shared_data / "l2/binance_spot_trades.csv.gz")}}
    binance["router"] = {**raw["router"], "venues": [{**v, "entry": {"median_ns": 2_000_000},
                                                      "response": {"median_ns": 2_000_000}}
                                                     for v in raw["router"]["venues"]]}
    paths = {}
    for name, c in (("lean", lean), ("binance", binance)):
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_bytes(msgspec.yaml.encode(c))
    return paths


@pytest.fixture(scope="module")
def runs(configs):
    """``run(feed, loop, recorded)``, cached: ``(orders, reports, summary, samples, arrivals)``;
    ``recorded`` adds arrivals, day-end samples and progress (to a buffer) as --report does."""
    cache = {}

    def run(feed: str, loop: str, recorded: bool):
        key = (feed, loop, recorded)
        if key not in cache:
            cfg, base = load_config(configs[feed])
            reports: list = []
            extra = {"arrivals": [], "samples": DaySamples(),
                     "progress": Progress(stream=io.StringIO(), tty=False)} if recorded else {}
            orders, summary = backtest(cfg, base, loop=loop, reports=reports, **extra)
            cache[key] = (orders, np.concatenate(reports), summary, extra.get("samples"),
                          np.concatenate(extra["arrivals"]) if recorded else None)
        return cache[key]
    return run


def run_cli(capsys, *args) -> tuple[int, dict | None, str]:
    rc = cli.main(["backtest", *args])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else None), out.err


def read_equity(folder) -> pd.DataFrame:
    df = pd.read_csv(folder / "equity.csv")
    assert list(df.columns) == ["ts", "equity"]
    df["ns"] = pd.to_datetime(df["ts"], utc=True).astype("int64")
    return df


@pytest.mark.data
@pytest.mark.parametrize("feed", ["lean", "binance"])
@pytest.mark.parametrize("loop", ["auto", "python"])
def test_backtest_when_day_ends_recorded_then_orders_and_fills_identical_to_a_run_without(runs, feed, loop):
    orders, reports, summary, _, _ = runs(feed, loop, recorded=False)
    r_orders, r_reports, r_summary, samples, arrivals = runs(feed, loop, recorded=True)
    assert summary["loop"] == ("compiled" if loop == "auto" else "python")
    assert len(orders) > 1000 and r_orders.tobytes() == orders.tobytes()
    assert r_reports.tobytes() == reports.tobytes()
    assert {k: v for k, v in r_summary.items() if k not in TIMING} == \
        {k: v for k, v in summary.items() if k not in TIMING}
    assert len(samples) >= 2
    # every order has its arrival quote, once
    assert np.array_equal(np.sort(arrivals["client_order_id"]), np.sort(orders["client_order_id"]))


@pytest.mark.data
@pytest.mark.parametrize("feed", ["lean", "binance"])
def test_day_samples_when_compiled_loop_then_equal_to_the_process_loop(runs, feed):
    *_, compiled, c_arrivals = runs(feed, "auto", recorded=True)
    *_, python, p_arrivals = runs(feed, "python", recorded=True)
    a, b = compiled.arrays(), python.arrays()
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert compiled.start_ts == python.start_ts
    assert c_arrivals.tobytes() == p_arrivals.tobytes()


@pytest.mark.data
@pytest.mark.parametrize("feed", ["lean", "binance"])
def test_day_samples_when_feed_spans_days_then_one_per_utc_day_at_its_last_event(runs, configs, feed):
    *_, samples, _ = runs(feed, "auto", recorded=True)
    cfg, base = load_config(configs[feed])
    ts = load_events(cfg.feed, base, cfg.universe)["ts_exch"]
    day = ts // DAY_NS
    last_of_day = ts[np.r_[np.flatnonzero(np.diff(day)), len(ts) - 1]]
    assert len(last_of_day) == len(np.unique(day)) >= 2
    s = samples.arrays()
    assert s["ts"].tolist() == last_of_day.tolist() and samples.start_ts == ts[0]
    assert np.all(np.isfinite(s["equity"])) and s["book_position"].shape == (len(last_of_day), len(cfg.universe))


@pytest.mark.data
@pytest.mark.parametrize("loop", ["auto", "python"])
def test_day_samples_when_a_feed_chunk_ends_at_a_day_end_then_the_same_as_in_one_chunk(runs, configs, monkeypatch,
                                                                                      loop):
    from alphad.daemon.feed import sources

    *_, whole, _ = runs("lean", loop, recorded=True)
    cfg, base = load_config(configs["lean"])
    day = load_events(cfg.feed, base, cfg.universe)["ts_exch"] // DAY_NS
    first_day_len = int(np.flatnonzero(np.diff(day))[0]) + 1
    monkeypatch.setattr(sources, "CHUNK_EVENTS", first_day_len)  # the first chunk ends with the first day
    samples = DaySamples()
    backtest(cfg, base, loop=loop, samples=samples)
    a, b = samples.arrays(), whole.arrays()
    assert len(a["ts"]) == 13 and all(a[k].tobytes() == b[k].tobytes() for k in a)


@pytest.mark.data
@pytest.mark.parametrize("loop", ["auto", "python"])
def test_day_samples_when_trade_from_then_the_warm_up_days_are_not_sampled(configs, tmp_path, loop):
    raw = msgspec.yaml.decode(configs["lean"].read_bytes())
    raw["feed"]["trade_from"] = "2013-10-08"
    (tmp_path / "c.yaml").write_bytes(msgspec.yaml.encode(raw))
    cfg, base = load_config(tmp_path / "c.yaml")
    samples = DaySamples(from_ns=cfg.feed.trade_from_ns())
    orders, _ = backtest(cfg, base, loop=loop, samples=samples)
    ts = load_events(cfg.feed, base, cfg.universe)["ts_exch"]
    trading = ts[ts >= cfg.feed.trade_from_ns()]
    s = samples.arrays()
    assert samples.start_ts == trading[0] and len(s["ts"]) == len(np.unique(trading // DAY_NS)) == 10
    assert samples.start_equity == cfg.risk.initial_equity  # the warm-up never trades
    assert len(orders) > 0 and orders["ts"].min() >= trading[0]


@pytest.mark.data
def test_report_when_multi_day_feed_then_costs_and_attribution_add_up(runs, configs):
    orders, reports, summary, samples, arrivals = runs("lean", "auto", recorded=True)
    cfg, base = load_config(configs["lean"])
    from alphad.ops import backtest_report, trade_costs

    folder = backtest_report.prepare(configs["lean"].parent / "report-costs")
    m = backtest_report.write(folder, cfg, orders, summary, reports=[reports], arrivals=[arrivals], samples=samples)
    fills = trade_costs.fills_of(reports)
    # the half spread of the quote each order was decided on, found in the feed itself
    md = load_events(cfg.feed, base, cfg.universe)
    md = md[md["kind"] == MD_QUOTE]
    by_cid = {int(o["client_order_id"]): o for o in orders}
    half = []
    for f in fills:
        o = by_cid[int(f["client_order_id"])]
        q = md[(md["instrument"] == o["instrument"]) & (md["ts_exch"] <= o["ts"])][-1]
        half.append(0.5 * (q["ask_px"] - q["bid_px"]))
    assert m["spread_cost"] == pytest.approx(float(np.sum(fills["fill_qty"] * np.array(half))), rel=1e-12)
    assert m["spread_cost"] > 0.0
    # immediate market orders take the touch: nothing beyond the half spread
    assert abs(m["impact_cost"]) < 1e-9 * m["traded_notional"]
    final = samples.arrays()
    assert m["fees"] == pytest.approx(final["fees"][-1], rel=1e-12) and m["fees"] > 0
    assert m["fills"] == summary["fills"] and m["orders"] == summary["orders"] == len(orders)
    # the fill-by-fill average cost replays risk's own realised PnL; the sectors add up to the equity
    realised = trade_costs.closing_results(fills, len(cfg.universe))
    assert float(np.sum(realised)) == pytest.approx(summary["realized_pnl"], rel=1e-9)
    assert 0.0 < m["hit_rate"] < 1.0 and m["closing_fills"] == len(realised)
    assert sum(m["pnl_by_sector"].values()) == pytest.approx(m["final_equity"] - m["initial_equity"], abs=1e-6)
    assert set(m["pnl_by_sector"]) == {"Information Technology", "Financials", "(no sector)"}


@pytest.mark.data
def test_report_when_venue_latency_then_impact_cost_measured(runs):
    _, reports, _, _, arrivals = runs("binance", "auto", recorded=True)
    from alphad.ops import trade_costs

    costs = trade_costs.cost_split(trade_costs.fills_of(reports), arrivals)
    # 2 ms after the decision the book has moved for some orders: their fills differ from the touch
    assert costs["spread_cost"] > 0.0 and abs(costs["impact_cost"]) > 1e-6 * costs["traded_notional"]
    assert costs["fills_without_reference"] == 0


@pytest.mark.data
@pytest.mark.parametrize("periods_per_year", [252, 365])
def test_report_when_multi_day_feed_then_metrics_equal_empyrical_on_equity_csv(configs, tmp_path, capsys,
                                                                             periods_per_year):
    out = tmp_path / "report"
    rc, summary, _ = run_cli(capsys, "--config", str(configs["lean"]), "--report", str(out), "--quiet",
                             "--periods-per-year", str(periods_per_year))
    assert rc == 0 and summary["report"] == str(out) and summary["report_s"] > 0
    m = json.loads((out / "metrics.json").read_text())
    eq = read_equity(out)
    assert len(eq) == m["days"] == 13 and m["periods_per_year"] == periods_per_year
    r = np.concatenate(([m["initial_equity"]], eq["equity"].to_numpy()))
    r = r[1:] / r[:-1] - 1.0
    oracle = {
        "cagr": empyrical.cagr(r, annualization=periods_per_year),
        "sharpe": empyrical.sharpe_ratio(r, annualization=periods_per_year),
        "sortino": empyrical.sortino_ratio(r, annualization=periods_per_year),
        "calmar": empyrical.calmar_ratio(r, annualization=periods_per_year),
        "max_drawdown": empyrical.max_drawdown(r),
        "volatility": empyrical.annual_volatility(r, annualization=periods_per_year),
    }
    for k, v in oracle.items():
        assert math.isfinite(v) and m[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    assert m["final_equity"] == eq["equity"].iloc[-1]
    assert isinstance(m["max_drawdown_days"], int) and m["max_drawdown_days"] > 0


def test_report_when_demo_config_then_every_file_is_written_and_linked(repo_root, tmp_path, capsys):
    out = tmp_path / "new" / "report"  # parents made too
    rc, summary, err = run_cli(capsys, "--config", str(repo_root / "config.yaml"), "--report", str(out))
    assert rc == 0  # stdout was the JSON summary alone
    m = json.loads((out / "metrics.json").read_text())
    assert set(REQUIRED) <= set(m)
    assert m["orders"] == summary["orders"] > 1000 and m["fills"] == summary["fills"]
    assert m["fees"] > 0 and m["spread_cost"] > 0 and m["max_drawdown"] <= 0
    eq = read_equity(out)
    assert len(eq) == 1 and eq["equity"].iloc[0] == m["final_equity"]  # four minutes: one UTC day
    assert m["sharpe"] is None  # one daily return: undefined, written as null
    md = (out / "report.md").read_text()
    for name in PLOTS:
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, name
        assert f"]({name})" in md
    assert "Sizing multipliers" in md and "| Sharpe | n/a |" in md
    # config.yaml sizes linearly: no multiplier, no regime
    assert "sized linearly" in md and m["pnl_by_regime"] is None and m["pnl_by_vix_band"] is None
    assert not any((out / name).exists() for name in SIZING_PLOTS)


def test_cli_when_report_folder_cannot_be_made_then_one_line_error_and_no_run(repo_root, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for target, says in ((blocker / "report", "could not be created"), (blocker, "is a file")):
        rc, _, err = run_cli(capsys, "--config", str(repo_root / "config.yaml"), "--report", str(target))
        assert rc == 1 and says in err and str(target) in err and "Traceback" not in err
        assert "events" not in err  # refused before the backtest ran


def test_cli_help_when_backtest_then_the_report_flags_are_explained(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["backtest", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    for flag in ("--report DIR", "--periods-per-year N", "--quiet"):
        assert flag in text
    assert "252" in text and "365" in text


# -- the sizing's part, on a synthetic run -----------------------------------------------------------

DAY0 = 19_000 * DAY_NS  # 2022-01-08 UTC
HOUR = 3_600_000_000_000
#: Day-end equity of six UTC days from 1000: daily PnL 10, -5, 20, -6, 40, -12 (total 47).
EQUITY = [1010.0, 1005.0, 1025.0, 1019.0, 1059.0, 1047.0]
#: The orders, per day: (m_regime, m_vix, flags); days 0, 2 and 5 decide nothing.
ORDERS = [
    (1, 0.3, 0.6, 0), (1, 0.35, 0.6, 0),    # bear (mean 0.325), VIX 25-30
    (3, math.nan, 0.0, 0),                  # a VIX-kill order: VIX multiplier 0 alone
    (4, 0.62, 1.0, 0), (4, 0.58, 1.0, 0),   # sideways (mean 0.6), VIX under 20
    (4, math.nan, math.nan, ORDER_F_FLATTEN),  # a flatten order carries no multiplier
]


def synthetic_orders(sized: bool = True) -> np.ndarray:
    orders = np.zeros(len(ORDERS), ORDER_DTYPE)
    for o, (day, regime, vix, flags) in zip(orders, ORDERS):
        o["t_origin"] = o["ts"] = DAY0 + day * DAY_NS + 20 * HOUR  # decided at 20:00 UTC that day
        o["flags"] = flags
        o["qty"] = 1.0
        o["limit_px"] = math.nan
        for name in ("prediction", "target_weight", "m_conviction", "m_regime", "m_vix", "m_vol", "m_risk",
                     "m_kelly"):
            o[name] = math.nan
        if sized and not flags:
            o["m_regime"], o["m_vix"] = regime, vix
            o["m_risk"] = 1.0
            if math.isfinite(regime):  # a VIX-kill order has no other multiplier
                o["m_kelly"], o["m_vol"], o["m_conviction"] = 0.01, 0.5 + 0.1 * day, 0.4
    return orders


def synthetic_cfg(sizing: bool = True, regime: Regime | None = Regime(vix_symbol="VIX", index_symbol="SPY")):
    """The few config fields the report reads: one instrument, risk.sizing's defaults."""
    return SimpleNamespace(
        universe=[SimpleNamespace(sector="Tech")],
        feed=SimpleNamespace(path="synthetic.csv", format="bars"),
        features=SimpleNamespace(regime=regime),
        risk=SimpleNamespace(sizing=SizingConfig() if sizing else None, drawdown=DrawdownConfig()))


def synthetic_samples():
    """Six day ends (21:00 UTC) of an account that holds nothing but whose equity moves."""
    n = len(EQUITY)
    zeros = np.zeros((n, 1))
    arrays = {"ts": DAY0 + np.arange(n, dtype=np.int64) * DAY_NS + 21 * HOUR, "equity": np.array(EQUITY),
              "realised": np.zeros(n), "unrealised": np.zeros(n), "fees": np.zeros(n), "cash": np.array(EQUITY),
              "book_position": zeros, "book_avg_px": zeros, "book_last_px": zeros, "book_realised": zeros,
              "book_fees": zeros, "mark": np.ones((n, 1))}
    return SimpleNamespace(arrays=lambda: arrays, start_ts=DAY0 + 9 * HOUR, start_equity=1000.0)


def write_synthetic(folder, cfg, orders) -> tuple[dict, dict, str]:
    from alphad.ops import backtest_report

    m = backtest_report.write(folder, cfg, orders, {"events": 6, "loop": "python"}, reports=[], arrivals=[],
                              samples=synthetic_samples())
    return m, json.loads((folder / "metrics.json").read_text()), (folder / "report.md").read_text()


def test_report_when_orders_carry_multipliers_then_each_day_pnl_goes_to_its_regime_and_vix_band(tmp_path):
    m, written, md = write_synthetic(tmp_path, synthetic_cfg(), synthetic_orders())
    # day 0: before any order (unknown); days 1-3 bear (day 2 carried, day 3's kill order has no
    # regime multiplier: carried); days 4-5 sideways (day 5 carried); bull never held
    assert written["pnl_by_regime"] == m["pnl_by_regime"] == {
        "bull": {"pnl": 0.0, "days": 0}, "bear": {"pnl": -5.0 + 20.0 - 6.0, "days": 3},
        "sideways": {"pnl": 40.0 - 12.0, "days": 2}, "unknown": {"pnl": 10.0, "days": 1}}
    assert written["pnl_by_vix_band"] == {
        "<20": {"pnl": 28.0, "days": 2}, "20-25": {"pnl": 0.0, "days": 0}, "25-30": {"pnl": 15.0, "days": 2},
        "30-35": {"pnl": 0.0, "days": 0}, "35-45": {"pnl": 0.0, "days": 0}, ">=45 (kill)": {"pnl": -6.0, "days": 1},
        "unknown": {"pnl": 10.0, "days": 1}}
    for key in ("pnl_by_regime", "pnl_by_vix_band"):  # every day once, the PnL in full
        assert sum(r["days"] for r in written[key].values()) == written["days"] == 6
        assert sum(r["pnl"] for r in written[key].values()) == written["final_equity"] - written["initial_equity"]
    for name in SIZING_PLOTS:
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, name
        assert f"]({name})" in md
    assert "| bear | 3 | 9.00 |" in md and "| >=45 (kill) | 1 | -6.00 |" in md
    # the definition: from the multipliers the orders carry, carried forward, without look-ahead
    assert "nearest the mean `m_regime`" in md and "keeps the last label" in md and "no look-ahead" in md
    assert "sized linearly" not in md


def test_report_when_orders_carry_no_multiplier_then_no_sizing_plot_and_says_why(tmp_path):
    for name in SIZING_PLOTS:  # an earlier report's, in the same folder
        (tmp_path / name).write_bytes(b"old")
    for cfg, why in ((synthetic_cfg(), "no order of this run carries a multiplier"),
                     (synthetic_cfg(sizing=False), "sized linearly")):
        m, written, md = write_synthetic(tmp_path, cfg, synthetic_orders(sized=False))
        assert m["pnl_by_regime"] is None and written["pnl_by_vix_band"] is None
        assert not any((tmp_path / name).exists() for name in SIZING_PLOTS)
        assert why in md and "Sizing multipliers and PnL by regime" in md and "## PnL by regime" not in md
        assert all((tmp_path / name).exists() for name in PLOTS)


def test_report_when_no_regime_input_then_its_days_are_labelled_no_input(tmp_path):
    """Without features.regime the regime and VIX multipliers are 1: they name no state."""
    orders = synthetic_orders()
    orders["m_regime"] = np.where(np.isfinite(orders["m_regime"]), 1.0, np.nan)
    orders["m_vix"] = np.where(np.isfinite(orders["m_vix"]), 1.0, np.nan)
    m, _, _ = write_synthetic(tmp_path, synthetic_cfg(regime=None), orders)
    assert m["pnl_by_regime"] == {"unknown": {"pnl": 10.0, "days": 1}, "no input": {"pnl": 37.0, "days": 5}}
    assert m["pnl_by_vix_band"] == m["pnl_by_regime"]


def test_vix_bands_when_breaks_and_kill_then_one_label_per_band_and_shared_multipliers_merged():
    from alphad.ops import backtest_report

    cfg = synthetic_cfg()
    assert backtest_report.vix_bands(cfg) == [("<20", 1.0), ("20-25", 0.8), ("25-30", 0.6), ("30-35", 0.4),
                                              ("35-45", 0.25), (">=45 (kill)", 0.0)]
    cfg.risk.sizing = SizingConfig(vix_breaks=(20.0, 30.0), vix_multipliers=(1.0, 1.0, 0.5), vix_kill=40.0,
                                   regime_multipliers=(1.0, 0.5, 0.5))
    assert backtest_report.vix_bands(cfg) == [("<20/20-30", 1.0), ("30-40", 0.5), (">=40 (kill)", 0.0)]
    assert backtest_report.regime_bands(cfg) == [("bull", 1.0), ("bear/sideways", 0.5)]
