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

from alphad.ipc.dtypes import ARRIVAL_DTYPE, EXEC_DTYPE
from alphad.ops import perf_metrics, sector_view, trade_costs

#: The plots, by file name: their titles in report.md.
PLOTS = {
    "equity_drawdown.png": "Equity and drawdown",
    "monthly_returns.png": "Monthly returns",
    "sector_exposure.png": "Exposure by sector over time",
    "sector_pnl.png": "PnL attribution by sector",
}


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

    s = samples.arrays()
    if len(s["ts"]) == 0:
        raise RuntimeError("no day to report: the backtest sampled no event (does the feed end before "
                           "feed.trade_from?)")
    reports_arr = np.concatenate(reports) if reports else np.zeros(0, EXEC_DTYPE)
    arrivals_arr = np.concatenate(arrivals) if arrivals else np.zeros(0, ARRIVAL_DTYPE)
    initial = samples.start_equity  # risk.initial_equity, unless a warm-up traded (it never does)
    ts, equity = s["ts"], s["equity"]
    r = perf_metrics.period_returns(equity, initial)
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
    (folder / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2) + "\n")
    with open(folder / "equity.csv", "w") as f:
        f.write("ts,equity\n")
        f.writelines(f"{_iso(int(t))},{float(e)!r}\n" for t, e in zip(ts, equity))

    # the curve starts at the initial equity, at the first event's time
    report_plots.equity_and_drawdown(folder / "equity_drawdown.png", np.r_[samples.start_ts, ts], np.r_[initial, equity],
                                     np.r_[0.0, perf_metrics.drawdowns(r)])
    report_plots.monthly_returns(folder / "monthly_returns.png", *perf_metrics.monthly_returns(ts, r))
    report_plots.sector_exposure(folder / "sector_exposure.png", ts, sectors, gross, net)
    report_plots.sector_pnl(folder / "sector_pnl.png", ts, sectors, pnl)
    (folder / "report.md").write_text(_markdown(metrics, summary, cfg, config_path))
    return metrics


def _iso(ts: int) -> str:
    return f"{np.datetime64(int(ts), 'ns')}Z"


def _finite(value):
    """JSON has no NaN or infinity: an undefined statistic is null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
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


def _markdown(m: dict, summary: dict, cfg, config_path: str | None) -> str:
    a = m["periods_per_year"]
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
        "## Plots",
        "",
        *[f"### {title}\n\n![{title}]({name})\n" for name, title in PLOTS.items()],
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
        "",
        "## Not in this report",
        "",
        "- **Sizing multipliers over time and PnL by regime**: the daemon does not size with the regime, VIX, "
        "GARCH or Kelly multipliers yet (`risk.sizing` is decoded but no stage applies it; issue 18), so "
        "there is no multiplier or regime to plot. They are left out rather than drawn from made-up values.",
        "",
    ]
    return "\n".join(lines)
