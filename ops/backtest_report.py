"""``alphad backtest --report DIR``: the files a quant judges a backtest by.

From the run's day-end samples (:mod:`alphad.daemon.shell.day_samples`), its exec
reports and its orders' arrival quotes:

* ``metrics.json``: the statistics of :mod:`alphad.ops.perf_metrics` (empyrical's
  definitions) on the daily returns, the costs of :mod:`alphad.ops.trade_costs`, the
  turnover, counts and the PnL by sector; an undefined value (e.g. a Sharpe ratio from
  one day) is ``null``;
* ``equity.csv``: ``ts,equity``, one row per event-time UTC day: the account's equity
  after that day's last event (``ts``, ISO 8601 UTC to the nanosecond);
* ``report.md``: the metrics table, the definitions and choices, the plots linked;
* the PNG plots of :mod:`alphad.ops.report_plots`.

With ``risk.sizing`` every sized order carries its multipliers (ORDER_DTYPE ``m_*``): the report
then plots them per decision day (``sizing_multipliers.png``) and attributes each day's PnL to
the HMM regime and the VIX band those multipliers name (``pnl_by_regime`` and
``pnl_by_vix_band`` in metrics.json, ``pnl_by_regime.png``); without it both are ``null``.

Daily returns: ``equity[d] / equity[d - 1] - 1``, the first day's from the equity before
the first event sampled (the config's ``risk.initial_equity``; with ``feed.trade_from``
the warm-up's days are not sampled); ``periods_per_year`` annualises them (252 for equities, 365 for
crypto).  ``turnover``: the mean over days of that day's traded notional / its day-end
equity, times ``periods_per_year`` (how many times a year the book trades its equity).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from alphad.daemon.shell.day_samples import DAY_NS
from alphad.ipc.dtypes import ARRIVAL_DTYPE, EXEC_DTYPE
from alphad.ops import perf_metrics, sector_view, trade_costs

#: The plots, by file name: their titles in report.md.
PLOTS = {
    "equity_drawdown.png": "Equity and drawdown",
    "monthly_returns.png": "Monthly returns",
    "sector_exposure.png": "Exposure by sector over time",
    "sector_pnl.png": "PnL attribution by sector",
}
#: The sizing's plots, written when the orders carry multipliers (``risk.sizing``).
SIZING_PLOTS = {
    "sizing_multipliers.png": "Sizing multipliers over time",
    "pnl_by_regime.png": "PnL by HMM regime and by VIX band",
}
#: The multipliers plotted, by order field.  The conviction (the prediction scaled to [-1, 1])
#: is left out: it is each order's own bet, not a state of the market or the account.
MULTIPLIERS = {
    "m_regime": "HMM regime",
    "m_vix": "VIX band",
    "m_vol": "volatility target (GARCH)",
    "m_risk": "drawdown ladder (risk)",
    "m_kelly": "fractional Kelly",
}
#: The HMM states, in the order of ``risk.sizing.regime_multipliers``.
REGIMES = ("bull", "bear", "sideways")
#: The label of the days before the first order that carried the multiplier.
UNKNOWN = "unknown"
#: The label of every sized day when the input is not configured (``features.regime``): the
#: multiplier is then 1, which names no state.
NO_INPUT = "no input"


def prepare(path: str | os.PathLike) -> Path:
    """Make the report's folder (and its parents) now, before the run, and check that the
    report can be drawn: a folder that cannot be made or written, or a missing
    matplotlib, is a ``ValueError`` that says so."""
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"--report expected a folder, {folder} is a file") from None
    except OSError as e:
        raise ValueError(f"--report: the folder {folder} could not be created: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--report expected a folder this user can write to, {folder} is not writable")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--report draws its plots with matplotlib, which is not installed here: "
                         "pip install 'alphad[train]' (or pip install matplotlib)") from None
    return folder


def write(folder: Path, cfg, orders: np.ndarray, summary: dict, *, reports: list, arrivals: list, samples,
          periods_per_year: float = 252, config_path: str | None = None, base: Path | None = None) -> dict:
    """Write every file of the report into ``folder``; returns the metrics written.  ``base``:
    the config's folder, to read the feed's bars again when fills on bars need pricing."""
    from alphad.ops import report_plots

    metrics, s = compute(cfg, orders, summary, reports=reports, arrivals=arrivals, samples=samples,
                         periods_per_year=periods_per_year, base=base)
    ts, equity, initial = s["ts"], s["equity"], samples.start_equity
    r = perf_metrics.period_returns(equity, initial)
    sectors, gross, net = sector_view.exposure(s, cfg.universe)
    _, pnl = sector_view.pnl(s, cfg.universe)
    sizing = sizing_view(cfg, orders, ts, equity, initial)
    (folder / "metrics.json").write_text(json.dumps(finite(metrics), indent=2) + "\n")
    with open(folder / "equity.csv", "w") as f:
        f.write("ts,equity\n")
        f.writelines(f"{_iso(int(t))},{float(e)!r}\n" for t, e in zip(ts, equity))

    # the curve starts at the initial equity, at the first event's time
    report_plots.equity_and_drawdown(folder / "equity_drawdown.png", np.r_[samples.start_ts, ts], np.r_[initial, equity],
                                     np.r_[0.0, perf_metrics.drawdowns(r)])
    report_plots.monthly_returns(folder / "monthly_returns.png", *perf_metrics.monthly_returns(ts, r))
    report_plots.sector_exposure(folder / "sector_exposure.png", ts, sectors, gross, net)
    report_plots.sector_pnl(folder / "sector_pnl.png", ts, sectors, pnl)
    _sizing_plots(folder, cfg, sizing)
    (folder / "report.md").write_text(_markdown(metrics, summary, cfg, config_path, sizing))
    return metrics


def compute(cfg, orders: np.ndarray, summary: dict, *, reports: list, arrivals: list, samples,
            periods_per_year: float = 252, base: Path | None = None) -> tuple[dict, dict]:
    """The report's metrics (what ``metrics.json`` holds) and the day-end sample arrays they
    came from, without writing anything (``alphad study`` keeps these per run)."""
    s = samples.arrays()
    if len(s["ts"]) == 0:
        raise RuntimeError("no day to report: the backtest sampled no event (does the feed end before "
                           "feed.trade_from?)")
    reports_arr = np.concatenate(reports) if reports else np.zeros(0, EXEC_DTYPE)
    arrivals_arr = np.concatenate(arrivals) if arrivals else np.zeros(0, ARRIVAL_DTYPE)
    initial = samples.start_equity  # risk.initial_equity, unless a warm-up traded (it never does)
    ts, equity = s["ts"], s["equity"]
    fills = trade_costs.fills_of(reports_arr)
    closing = trade_costs.closing_results(fills, len(cfg.universe))
    sectors, gross, net = sector_view.exposure(s, cfg.universe)
    _, pnl = sector_view.pnl(s, cfg.universe)

    metrics = perf_metrics.performance(samples.start_ts, ts, equity, initial, periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):  # a day that ended at zero equity: undefined
        turnover = float(np.mean(trade_costs.daily_notional(fills, ts) / equity) * periods_per_year)
    costs = trade_costs.cost_split(fills, arrivals_arr)
    if costs["fills_without_reference"] and base is not None:  # fills on bars: priced from the feed's bars
        from alphad.daemon.feed.sources import stream_events

        bars = trade_costs.BarPrices(stream_events(cfg.feed, base, cfg.universe), len(cfg.universe))
        costs = trade_costs.cost_split(fills, arrivals_arr, orders, bars)
    metrics.update(costs)
    metrics.update({
        "turnover": turnover,
        "hit_rate": trade_costs.hit_rate(closing),
        "closing_fills": len(closing),
        "orders": len(orders),
        "fills": len(fills),
        "denials": summary.get("denials"),
        "days": len(ts),
        "periods_per_year": periods_per_year,
        "start": _iso(samples.start_ts),
        "end": _iso(int(ts[-1])),
        "initial_equity": initial,
        "final_equity": float(equity[-1]),
        "realized_pnl": float(s["realised"][-1]),
        "unrealized_pnl": float(s["unrealised"][-1]),
        "pnl_by_sector": {name: float(v) for name, v in zip(sectors, pnl[-1])},
    })
    sizing = sizing_view(cfg, orders, ts, equity, initial)
    for key in ("pnl_by_regime", "pnl_by_vix_band"):
        metrics[key] = None if sizing is None else sizing[key]
    return metrics, s


# -- sizing: the multipliers over time, the PnL by regime --------------------------------------------


def sizing_view(cfg, orders: np.ndarray, ts: np.ndarray, equity: np.ndarray, initial: float) -> dict | None:
    """The multipliers per decision day and the day-end PnL by HMM regime and by VIX band, or
    None when no order carries a multiplier (a config without ``risk.sizing`` sizes linearly):
    a report draws nothing it would have to make up."""
    if cfg.risk.sizing is None or not any(np.isfinite(orders[m]).any() for m in MULTIPLIERS):
        return None
    days, means = daily_multipliers(orders)
    regimes, vix = regime_bands(cfg), vix_bands(cfg)
    pnl = np.diff(np.r_[initial, equity])  # each day's equity change, the first from the initial equity
    return {
        "days": days,
        "means": means,
        "regimes": regimes,
        "vix_bands": vix,
        "pnl_by_regime": attribution(carried(ts, days, nearest(means["m_regime"], regimes)), pnl, regimes),
        "pnl_by_vix_band": attribution(carried(ts, days, nearest(means["m_vix"], vix)), pnl, vix),
    }


def daily_multipliers(orders: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(days, means)``: each UTC day (its start, ns) on which an order was decided
    (``t_origin``) and, per multiplier, the mean over that day's orders that carry it: what
    the sizing saw that day.  NaN where none did (flatten and trim orders carry none; a
    VIX-kill order only its VIX multiplier, 0, and the risk multiplier)."""
    days, k = np.unique(orders["t_origin"] // DAY_NS, return_inverse=True)
    means = {}
    for name in MULTIPLIERS:
        v = orders[name]
        ok = np.isfinite(v)
        with np.errstate(invalid="ignore"):  # 0 / 0: no order carried it that day
            means[name] = np.bincount(k[ok], v[ok], len(days)) / np.bincount(k[ok], minlength=len(days))
    return days * DAY_NS, means


def regime_bands(cfg) -> list[tuple[str, float]] | None:
    """The HMM states and their multipliers (``risk.sizing.regime_multipliers``); None
    without an index to run the HMM on (``features.regime.index_symbol``)."""
    reg = cfg.features.regime
    if not (reg and reg.index_symbol):
        return None
    return _merged(zip(REGIMES, cfg.risk.sizing.regime_multipliers))


def vix_bands(cfg) -> list[tuple[str, float]] | None:
    """The VIX bands and their multipliers: band k covers ``[vix_breaks[k-1], vix_breaks[k])``,
    the last up to ``vix_kill``, then the kill level's 0 (``"<20", "20-25", ..., "35-45",
    ">=45 (kill)"``); None without a VIX input (``features.regime.vix_symbol``)."""
    reg = cfg.features.regime
    if not (reg and reg.vix_symbol):
        return None
    s = cfg.risk.sizing
    bands = []
    for lo, hi, m in zip([-math.inf, *s.vix_breaks], [*s.vix_breaks, s.vix_kill], s.vix_multipliers):
        if lo < s.vix_kill:  # a band at or above the kill level never applies
            hi = min(hi, s.vix_kill)
            bands.append((f"<{hi:g}" if lo == -math.inf else f"{lo:g}-{hi:g}", m))
    return _merged([*bands, (f">={s.vix_kill:g} (kill)", 0.0)])


def _merged(bands) -> list[tuple[str, float]]:
    """Labels that share a multiplier cannot be told apart by it: they become one label."""
    out: dict[float, str] = {}
    for name, m in bands:
        out[float(m)] = f"{out[float(m)]}/{name}" if float(m) in out else name
    return [(name, m) for m, name in out.items()]


def nearest(means: np.ndarray, bands: list[tuple[str, float]] | None) -> list[str]:
    """Each decision day's label: the band whose multiplier is nearest the day's mean (a mean
    of regime multipliers blends the states by their probabilities); ``""`` where the day has
    no mean, :data:`NO_INPUT` for every day when the input is not configured."""
    if bands is None:
        return [NO_INPUT if math.isfinite(v) else "" for v in means]
    mult = np.array([m for _, m in bands])
    return [bands[int(np.argmin(np.abs(mult - v)))][0] if math.isfinite(v) else "" for v in means]


def carried(ts: np.ndarray, days: np.ndarray, labels: list[str]) -> list[str]:
    """Each day-end sample's label: that of the last decision day at or before its UTC day with
    one (carried forward over days without orders); :data:`UNKNOWN` before the first."""
    has = np.array([bool(x) for x in labels], bool)
    kept = [x for x in labels if x]
    k = np.searchsorted(days[has], np.asarray(ts, np.int64) // DAY_NS * DAY_NS, side="right") - 1
    return [kept[i] if i >= 0 else UNKNOWN for i in k]


def attribution(labels: list[str], pnl: np.ndarray, bands: list[tuple[str, float]] | None) -> dict:
    """``{label: {"pnl": sum of the days' PnL, "days": count}}``: every configured band (0 days
    when it never held), then the other labels met (:data:`UNKNOWN`, :data:`NO_INPUT`)."""
    out = {name: {"pnl": 0.0, "days": 0} for name, _ in bands or []}
    for label, p in zip(labels, pnl):
        row = out.setdefault(label, {"pnl": 0.0, "days": 0})
        row["pnl"] += float(p)
        row["days"] += 1
    return out


def _sizing_plots(folder: Path, cfg, sizing: dict | None) -> None:
    """Draw the sizing's two plots; without multipliers, remove those an earlier report left
    in the folder, so that none is mistaken for this run's."""
    from alphad.ops import report_plots

    if sizing is None:
        for name in SIZING_PLOTS:
            (folder / name).unlink(missing_ok=True)
        return
    emergency = cfg.risk.drawdown.emergency_risk_multiplier
    references = {
        "m_regime": sizing["regimes"] or [],
        "m_vix": sizing["vix_bands"] or [],
        "m_vol": [("cap", cfg.risk.sizing.max_vol_multiplier), ("1", 1.0)],
        "m_risk": [("normal", 1.0), ("EMERGENCY", emergency)],
    }
    report_plots.sizing_multipliers(folder / "sizing_multipliers.png", sizing["days"], sizing["means"],
                                    MULTIPLIERS, references)
    report_plots.pnl_by_label(folder / "pnl_by_regime.png", [
        ("PnL by HMM regime of the day's decisions", sizing["pnl_by_regime"]),
        ("PnL by VIX band of the day's decisions", sizing["pnl_by_vix_band"]),
    ])


def _iso(ts: int) -> str:
    return f"{np.datetime64(int(ts), 'ns')}Z"


def finite(value):
    """JSON has no NaN or infinity: an undefined statistic is null (in dicts and lists too)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: report.md's table: key, label, how the value is shown, definition.
_ROWS = [
    ("cagr", "CAGR", "pct", "compound annual growth: prod(1 + r) ** (A / n) - 1"),
    ("volatility", "Volatility", "pct", "std(r, ddof=1) * sqrt(A)"),
    ("sharpe", "Sharpe", "num", "mean(r) / std(r, ddof=1) * sqrt(A), risk-free 0"),
    ("sortino", "Sortino", "num", "mean(r) * A / (sqrt(mean(min(r, 0)^2)) * sqrt(A))"),
    ("max_drawdown", "Max drawdown", "pct", "lowest equity / running peak - 1 (from the initial equity)"),
    ("max_drawdown_days", "Longest drawdown", "days", "calendar days from a peak back to it (or to the end)"),
    ("calmar", "Calmar", "num", "CAGR / \\|max drawdown\\|"),
    ("total_return", "Total return", "pct", "final equity / initial equity - 1"),
    ("win_rate", "Winning days", "pct", "share of non-zero daily returns that are positive"),
    ("hit_rate", "Hit rate", "pct", "share of closing fills with a positive realised PnL (average cost, before fees)"),
    ("turnover", "Turnover (per year)", "num", "mean of daily traded notional / day-end equity, times A"),
    ("traded_notional", "Traded notional", "money", "sum of fill quantity x fill price"),
    ("fees", "Fees", "money", "venue fees paid"),
    ("spread_cost", "Spread cost", "money", "half the arrival spread per unit taken (earned when making)"),
    ("impact_cost", "Impact cost", "money", "side x (fill - arrival mid) x quantity, less the spread cost"),
    ("orders", "Orders", "int", "orders risk sent"),
    ("fills", "Fills", "int", "exec reports that filled a quantity"),
    ("denials", "Denials", "int", "signals the pre-trade gate denied"),
    ("final_equity", "Final equity", "money", "cash + positions at their marks, at the last event"),
]


def _show(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return f"{100.0 * value:.2f}%"
    if kind == "money":  # + 0.0: a rounding residue shows as 0.00, not -0.00
        return f"{round(value, 2) + 0.0:,.2f}"
    if kind in ("int", "days"):
        return f"{int(value):,}"
    return f"{value:.3f}"


def _markdown(m: dict, summary: dict, cfg, config_path: str | None, sizing: dict | None = None) -> str:
    a = m["periods_per_year"]
    plots = {**PLOTS, **(SIZING_PLOTS if sizing else {})}
    lines = [
        "# Backtest report",
        "",
        f"- config: `{config_path or '?'}`; feed `{cfg.feed.path}` ({cfg.feed.format}); "
        f"{len(cfg.universe)} instruments",
        f"- event time {m['start']} .. {m['end']}: {m['days']} UTC day{'s' if m['days'] != 1 else ''}, {summary.get('events', 0):,} events, "
        f"loop `{summary.get('loop')}`",
        f"- initial equity {m['initial_equity']:,.2f}; daily returns annualised with A = {a} periods per year",
        "",
        "## Metrics",
        "",
        "| metric | value | definition |",
        "|---|---|---|",
        *[f"| {label} | {_show(m.get(key), kind)} | {text} |" for key, label, kind, text in _ROWS],
        "",
        "PnL by sector (realised + unrealised - fees): "
        + ", ".join(f"{k} {v:,.2f}" for k, v in m["pnl_by_sector"].items()),
        "",
        *(_regime_tables(m) if sizing else []),
        "## Plots",
        "",
        *[f"### {title}\n\n![{title}]({name})\n" for name, title in plots.items()],
        "## How it is computed",
        "",
        "- **Samples.** The account's equity (cash + every position at its last mark: the quote's mid or the "
        "last trade) and the book are read after the last event of each UTC day of event time has gone "
        "through every stage, its immediate fills included; the run's end closes the last day. `equity.csv` "
        "holds one row per UTC day in which the feed has events (with `feed.trade_from`, from that day on: "
        "the warm-up's days are not sampled).",
        f"- **Returns.** r = equity[d] / equity[d-1] - 1, the first day's from the initial equity. A = {a}: "
        "252 suits exchange-traded equities (trading days), 365 crypto (`--periods-per-year`). A day with no "
        "event has no sample, so a gap in the recording is one period.",
        "- **Statistics** follow empyrical (`empyrical-reloaded`): `annual_return` (CAGR), `annual_volatility`, "
        "`sharpe_ratio`, `sortino_ratio`, `max_drawdown` (negative), `calmar_ratio`; the tests check them "
        "against the library within 1e-9. n/a: undefined (e.g. under two daily returns).",
        "- **Costs** are in quote currency, positive = paid, against the quote each order met when the router "
        "handed it to the venues (the decision event's book): spread = half that spread per unit taken, "
        "impact = side x (fill price - arrival mid) x quantity minus the spread part (depth walked, the "
        "market's move during the venue's latency). An instrument quoted by bars has no quote: its fills "
        "are priced against the close of the bar the order was decided on and the open of the bar it "
        "filled on: spread = side x (fill price - that open) x quantity (the venue's half spread), impact "
        "= side x (open - decision close) x quantity (the move to the next open; the paper venue has no "
        f"impact model for bars yet). Fills neither could price: {m['fills_without_reference']}.",
        "- **Exposure** is position x mark per sector, as a fraction of the day's equity.",
        *(_sizing_definitions(cfg) if sizing else []),
        "",
        "## Not in this report",
        "",
        *(_sizing_caveats() if sizing else [_no_sizing(cfg)]),
        "",
    ]
    return "\n".join(lines)


def _regime_tables(m: dict) -> list[str]:
    """report.md's PnL by regime: one table per labelling."""
    lines = ["## PnL by regime", "",
             "Each day's PnL (its day-end equity change) under the regime the sizing saw when that day's "
             "decisions were made (see *How it is computed*).", ""]
    for key, title in (("pnl_by_regime", "HMM regime"), ("pnl_by_vix_band", "VIX band")):
        lines += [f"| {title} | days | PnL |", "|---|---|---|",
                  *[f"| {label} | {row['days']:,} | {_show(row['pnl'], 'money')} |" for label, row in m[key].items()],
                  ""]
    return lines


def _sizing_definitions(cfg) -> list[str]:
    """report.md's definitions of the multipliers plotted and of a day's regime."""
    s = cfg.risk.sizing
    regimes = "/".join(f"{m:g}" for m in s.regime_multipliers)
    return [
        "- **Sizing multipliers** are those each order carries (`m_regime`, `m_vix`, `m_vol`, `m_risk`, "
        "`m_kelly`): per UTC day of decision (`t_origin`), the mean over that day's orders that carry the "
        "multiplier (flatten and trim orders carry none; a VIX-kill order only its VIX multiplier, 0, and the "
        "risk multiplier). "
        "Fractional Kelly is one constant (the model card's out-of-sample statistics).",
        f"- **Regimes.** A day's PnL is its equity change in `equity.csv`. Its HMM regime is the state "
        f"(bull/bear/sideways, `regime_multipliers` {regimes}) whose multiplier is nearest the mean `m_regime` "
        f"of the orders decided that UTC day, its VIX band the band (`vix_breaks` "
        f"{', '.join(f'{b:g}' for b in s.vix_breaks)}, kill at {s.vix_kill:g}) whose multiplier is nearest "
        "their mean `m_vix`; a day without such orders keeps the last label, and the days before the first "
        f"are `{UNKNOWN}` (`{NO_INPUT}`: `features.regime` configures no such input). The labels come from "
        "the multipliers the orders carry, so they are what the sizing saw at the time, with no look-ahead "
        "(no smoothed HMM, no later VIX).",
    ]


def _sizing_caveats() -> list[str]:
    return [
        "- **PnL by regime per position**: a day's whole equity change goes to that day's label, though part "
        "of it comes from positions decided earlier (on daily bars an order fills at the next open), "
        "possibly under another label; and on daily bars the day's decisions are made at its close, so "
        "its label may already reflect the day's own move. A signal that made no order (cost-filtered, "
        "denied, already at its target) leaves no multiplier, so it sets no label.",
        "- **The conviction multiplier** (the prediction scaled to [-1, 1]) is not plotted: it is each "
        "order's own bet, not a state of the market or the account.",
    ]


def _no_sizing(cfg) -> str:
    why = ("this run sized linearly (the config has no `risk.sizing`), so its orders carry no multipliers"
           if cfg.risk.sizing is None else "no order of this run carries a multiplier")
    return (f"- **Sizing multipliers and PnL by regime**: {why}: there is no multiplier to plot and no regime "
            "to attribute PnL to. They are left out rather than drawn from made-up values.")
