"""The backtest report's PNG plots (matplotlib, drawn off-screen on its Agg canvas).

Each function draws one figure from arrays the report already computed and saves it
to ``path``.  Figures are built with ``matplotlib.figure.Figure`` (no pyplot): no global
state and no display backend, so a report can be written from any process or thread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 110
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _figure(rows: int = 1, cols: int = 1, *, size=(9.0, 4.5), **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def _dates(ts: np.ndarray) -> np.ndarray:
    return np.asarray(ts, np.int64).astype("datetime64[ns]").astype("datetime64[ms]")


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def equity_and_drawdown(path: Path, ts: np.ndarray, equity: np.ndarray, drawdown: np.ndarray) -> None:
    """Equity above (the initial equity, then each day end), its drawdown from the running
    peak (%) below."""
    fig, ax = _figure(2, 1, size=(9.0, 6.0), sharex=True, height_ratios=(2, 1))
    t = _dates(ts)
    ax[0, 0].plot(t, equity, marker="o" if len(t) < 60 else None, ms=3, lw=1.2, color="tab:blue")
    ax[0, 0].set_ylabel("equity")
    ax[0, 0].set_title("Equity at each UTC day end")
    ax[0, 0].grid(alpha=0.3)
    ax[1, 0].fill_between(t, 100.0 * drawdown, 0.0, color="tab:red", alpha=0.4)
    ax[1, 0].plot(t, 100.0 * drawdown, color="tab:red", lw=1.0, marker="o" if len(t) < 60 else None, ms=2)
    ax[1, 0].set_ylabel("drawdown (%)")
    ax[1, 0].grid(alpha=0.3)
    _date_axis(ax[1, 0])
    fig.savefig(path)


def monthly_returns(path: Path, months: np.ndarray, returns: np.ndarray) -> None:
    """A year x month heatmap of the compounded monthly returns (%), each cell labelled."""
    years = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month_of_year = months.astype(np.int64) % 12
    first = int(years.min()) if len(years) else 1970
    grid = np.full((max(int(years.max()) - first + 1, 1) if len(years) else 1, 12), np.nan)
    grid[years - first, month_of_year] = 100.0 * returns
    fig, ax = _figure(size=(9.0, 1.2 + 0.45 * grid.shape[0]))
    a = ax[0, 0]
    bound = max(float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0, 1e-9)
    image = a.imshow(grid, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    for (y, m), v in np.ndenumerate(grid):
        if np.isfinite(v):
            a.text(m, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
    a.set_xticks(range(12), MONTHS)
    a.set_yticks(range(grid.shape[0]), [str(first + y) for y in range(grid.shape[0])])
    a.set_title("Monthly returns (%, compounded from the day-end equity)")
    fig.colorbar(image, ax=a, label="%")
    fig.savefig(path)


def _colours(n: int):
    """One colour per sector, distinct for up to 20 (the default cycle repeats after 10)."""
    from matplotlib import colormaps

    return [colormaps["tab20"](k % 20) for k in range(n)]


def sector_exposure(path: Path, ts: np.ndarray, sectors: list[str], gross: np.ndarray, net: np.ndarray) -> None:
    """Gross exposure by sector stacked (left: their sum is the book's gross) and net
    exposure by sector (right) at each day end, as % of equity."""
    fig, ax = _figure(1, 2, size=(11.0, 4.5))
    t = _dates(ts)
    marker = "o" if len(t) < 60 else None
    colours = _colours(len(sectors))
    if len(t) > 1:
        ax[0, 0].stackplot(t, 100.0 * np.nan_to_num(gross.T), labels=sectors, colors=colours, alpha=0.85)
    else:  # one day: nothing to stack along time
        ax[0, 0].bar(sectors, 100.0 * gross[0], color=colours)
        ax[0, 0].tick_params(axis="x", labelrotation=45)
    for s, name in enumerate(sectors):
        ax[0, 1].plot(t, 100.0 * net[:, s], label=name, marker=marker, ms=3, lw=1.0, color=colours[s])
    for a, title in zip(ax[0], ("Gross exposure by sector (% of equity, stacked)",
                                "Net exposure by sector (% of equity)")):
        a.set_title(title)
        a.grid(alpha=0.3)
    _date_axis(ax[0, 1])
    if len(t) > 1:
        _date_axis(ax[0, 0])
    ax[0, 1].axhline(0.0, color="black", lw=0.6)
    ax[0, 1].legend(fontsize=8, loc="best")
    fig.savefig(path)


def sector_pnl(path: Path, ts: np.ndarray, sectors: list[str], pnl: np.ndarray) -> None:
    """PnL attribution by sector: the run's total per sector (left), over time (right)."""
    fig, ax = _figure(1, 2, size=(11.0, 4.5))
    final = pnl[-1] if len(pnl) else np.zeros(len(sectors))
    ax[0, 0].barh(sectors, final, color=["tab:green" if v >= 0 else "tab:red" for v in final])
    colours = _colours(len(sectors))
    ax[0, 0].axvline(0.0, color="black", lw=0.6)
    ax[0, 0].set_title("PnL by sector over the run (after fees)")
    ax[0, 0].grid(alpha=0.3, axis="x")
    t = _dates(ts)
    for s, name in enumerate(sectors):
        ax[0, 1].plot(t, pnl[:, s], label=name, marker="o" if len(t) < 60 else None, ms=3, lw=1.2, color=colours[s])
    ax[0, 1].axhline(0.0, color="black", lw=0.6)
    ax[0, 1].set_title("Cumulative PnL by sector at each day end")
    ax[0, 1].grid(alpha=0.3)
    ax[0, 1].legend(fontsize=8, loc="best")
    _date_axis(ax[0, 1])
    fig.savefig(path)


def sizing_multipliers(path: Path, days: np.ndarray, means: dict[str, np.ndarray], titles: dict[str, str],
                       references: dict[str, list[tuple[str, float]]]) -> None:
    """One panel per multiplier (stacked, one time axis): its mean over each decision day's
    orders as a step held until the next decision day, the values it can take (the regime
    states, the VIX bands, the caps) as dotted lines named on the right.  A constant (the
    Kelly fraction) gets a low panel that says its value."""
    constant = {f: _constant(means[f]) for f in titles}
    ratios = [0.5 if constant[f] is not None and not references.get(f) else 1.0 for f in titles]
    fig, ax = _figure(len(titles), 1, size=(9.0, 0.6 + 1.9 * sum(ratios)), sharex=True, height_ratios=ratios)
    t = _dates(days)
    for a, (field, title) in zip(ax[:, 0], titles.items()):
        a.step(t, means[field], where="post", lw=1.0, color="tab:blue", marker="o" if len(t) < 60 else None, ms=3)
        for name, level in references.get(field, []):
            a.axhline(level, color="grey", lw=0.7, ls=":")
            a.text(1.005, level, name, transform=a.get_yaxis_transform(), fontsize=7, va="center", color="dimgrey")
        c = constant[field]
        if c is not None:
            title = f"{title}: {c:.4g} throughout"
            if not references.get(field):
                a.set_ylim(min(0.0, 1.5 * c), max(0.0, 1.5 * c) or 1.0)
        a.set_title(title, fontsize=9, loc="left")
        a.grid(alpha=0.3)
    fig.suptitle("Sizing multipliers: mean over each decision day's orders (gaps: no order carried it)", fontsize=10)
    _date_axis(ax[-1, 0])
    fig.savefig(path)


def _constant(v: np.ndarray) -> float | None:
    """The value of a series that never changes (NaN aside), else None."""
    finite = v[np.isfinite(v)]
    return float(finite[0]) if len(finite) and np.ptp(finite) == 0.0 else None


def pnl_by_label(path: Path, panels: list[tuple[str, dict]]) -> None:
    """One bar chart per labelling (side by side): the PnL summed over the days under each
    label, the number of those days beside the label."""
    rows = max(len(table) for _, table in panels)
    fig, ax = _figure(1, len(panels), size=(5.5 * len(panels), 1.6 + 0.5 * rows))
    for a, (title, table) in zip(ax[0], panels):
        names = list(table)
        pnl = np.array([table[n]["pnl"] for n in names], np.float64)
        y = np.arange(len(names))
        a.barh(y, pnl, color=["tab:green" if v >= 0 else "tab:red" for v in pnl])
        a.set_yticks(y, [f"{n}\n{_days(table[n]['days'])}" for n in names], fontsize=8)
        a.invert_yaxis()  # the first label on top
        a.axvline(0.0, color="black", lw=0.6)
        for k, v in enumerate(pnl):
            a.annotate(f"{v:,.2f}", (v, k), xytext=(3 if v >= 0 else -3, 0), textcoords="offset points",
                       ha="left" if v >= 0 else "right", va="center", fontsize=8)
        a.margins(x=0.2)
        a.set_title(title, fontsize=10)
        a.grid(alpha=0.3, axis="x")
    first = panels[0][1].values()
    fig.suptitle(f"Day-end PnL (equity change) by the label of the day's decisions: "
                 f"{_days(sum(r['days'] for r in first))}, total {sum(r['pnl'] for r in first):,.2f}", fontsize=10)
    fig.savefig(path)


def _days(n: int) -> str:
    return f"{n:,} day{'' if n == 1 else 's'}"
