"""What a backtest's fills cost and how its closing trades did, from its exec reports and
the quotes its orders met on arrival.

Costs are in quote currency, positive = paid, summed over fills; a fill's order met the
arrival quote ``bid``/``ask`` when the router handed it to the venues (the router's
``arrivals``: the decision event's book), ``P0 = (bid + ask) / 2``, ``h0 = (ask - bid) / 2``,
``s`` = +1 buy / -1 sell, ``q`` and ``p`` the fill's quantity and price (``ops/tca.py``'s
split, in currency):

* ``fees``: the venue's fees (the reports' ``fee``);
* ``spread_cost``: ``q * h0`` for a fill that took liquidity, ``-q * h0`` for one that
  made it (half the quoted spread paid or earned);
* ``impact_cost``: ``s * q * (p - P0) - spread_cost``: what the fill paid beyond the half
  spread against the arrival mid (depth walked, the book's move during the venue's
  latency); with the paper venue's top-of-book fills and no latency it is zero;
* an instrument quoted by bars only (``MD_BAR``: no bid or ask) has no arrival quote; its
  fills are priced from the feed's bars instead (:class:`BarPrices`): ``P0`` = the close
  of the instrument's last bar at the order's time (the bar it was decided on), ``O`` =
  the open of the bar it filled on (the paper venue fills a bar order on the next bar's
  open plus its half spread): ``spread_cost`` = ``s * q * (p - O)`` (the venue's half
  spread), ``impact_cost`` = ``s * q * (O - P0)`` (the move from the decision close to the
  next open: the paper venue has no impact model for bars yet);
* a fill neither a quote nor a bar can price is left out of both and counted in
  ``fills_without_reference``.

``hit_rate``: the share of closing fills (a fill that reduces a position) with a positive
realised PnL before fees, on the risk book's average-cost accounting.
"""
from __future__ import annotations

import math

import numpy as np

from alphad.daemon.router.order_fsm import LIQ_MAKER, LIQ_TAKER
from alphad.ipc.dtypes import ARRIVAL_DTYPE, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, MD_BAR


def fills_of(reports: np.ndarray) -> np.ndarray:
    """The exec reports that filled something, in the order they were booked."""
    if len(reports) == 0:
        return np.zeros(0, EXEC_DTYPE)
    return reports[np.isin(reports["status"], (EXEC_FILL, EXEC_PARTIAL)) & (reports["fill_qty"] > 0.0)]


class BarPrices:
    """Each instrument's bars (time, open, close) from a feed's event chunks."""

    def __init__(self, chunks, n_instruments: int) -> None:
        parts = [c[c["kind"] == MD_BAR][["instrument", "ts_exch", "open_px", "last_px"]] for c in chunks]
        bars = np.concatenate(parts) if parts else np.zeros(0, [("instrument", "i4"), ("ts_exch", "i8"),
                                                                 ("open_px", "f8"), ("last_px", "f8")])
        self.count = len(bars)
        # per instrument, in time order (the feed's)
        self._rows = [bars[bars["instrument"] == i] for i in range(n_instruments)]

    def at(self, instrument: np.ndarray, ts: np.ndarray, column: str) -> np.ndarray:
        """``column`` (``open_px`` or ``last_px``) of each instrument's last bar at or before
        ``ts``; NaN where there is none."""
        out = np.full(len(ts), np.nan)
        for i in np.unique(instrument):
            rows, mine = self._rows[i] if 0 <= i < len(self._rows) else self._rows[:0], instrument == i
            if len(rows) == 0:
                continue
            k = np.searchsorted(rows["ts_exch"], ts[mine], side="right") - 1
            out[mine] = np.where(k >= 0, rows[column][k.clip(0)], np.nan)
        return out


def cost_split(fills: np.ndarray, arrivals: np.ndarray, orders: np.ndarray | None = None,
               bars: BarPrices | None = None) -> dict[str, float]:
    """Fees, spread and impact cost (see the module's text); ``orders`` and ``bars`` price
    the fills on bar-quoted instruments."""
    arrivals = arrivals if len(arrivals) else np.zeros(0, ARRIVAL_DTYPE)
    cid, first = np.unique(arrivals["client_order_id"], return_index=True)
    arr = arrivals[first]
    j = np.searchsorted(cid, fills["client_order_id"]).clip(0, max(len(cid) - 1, 0))
    matched = (cid[j] == fills["client_order_id"]) if len(cid) else np.zeros(len(fills), bool)
    bid = np.where(matched, arr["bid"][j] if len(cid) else np.nan, np.nan)
    ask = np.where(matched, arr["ask"][j] if len(cid) else np.nan, np.nan)
    priced = np.isfinite(bid) & np.isfinite(ask) & (bid > 0.0) & (ask >= bid)
    q, p, s = fills["fill_qty"], fills["fill_px"], fills["side"].astype(np.float64)
    mid, half = 0.5 * (bid + ask), 0.5 * (ask - bid)
    liquidity = np.where(fills["reason"] == LIQ_TAKER, 1.0, np.where(fills["reason"] == LIQ_MAKER, -1.0, 0.0))
    spread = np.where(priced, q * half * liquidity, 0.0)
    shortfall = np.where(priced, s * q * (p - mid), 0.0)
    if bars is not None and orders is not None and bars.count and not priced.all():
        order_ts = dict(zip(orders["client_order_id"].tolist(), orders["ts"].tolist()))
        decided = np.array([order_ts.get(c, -1) for c in fills["client_order_id"].tolist()], np.int64)
        close = bars.at(fills["instrument"], decided, "last_px")  # the bar the order was decided on
        open_ = bars.at(fills["instrument"], fills["ts"], "open_px")  # the bar it filled on
        by_bar = ~priced & (decided >= 0) & np.isfinite(close) & np.isfinite(open_)
        spread = np.where(by_bar, s * q * (p - open_), spread)
        shortfall = np.where(by_bar, s * q * (p - close), shortfall)
        priced = priced | by_bar
    return {
        "fees": float(np.sum(fills["fee"])),
        "spread_cost": float(np.sum(spread)),
        "impact_cost": float(np.sum(shortfall) - np.sum(spread)),
        "traded_notional": float(np.sum(q * p)),
        "fills_without_reference": int(np.count_nonzero(~priced)),
    }


def closing_results(fills: np.ndarray, n_instruments: int) -> np.ndarray:
    """Realised PnL (before fees) of every fill that closed part of a position, average cost
    as the risk book keeps it (``risk/portfolio.py`` ``apply_fill``)."""
    pos, avg = np.zeros(n_instruments), np.zeros(n_instruments)
    out = []
    for i, side, qty, px in zip(fills["instrument"].tolist(), fills["side"].tolist(), fills["fill_qty"].tolist(),
                                fills["fill_px"].tolist()):
        d = side * qty
        if pos[i] == 0.0 or (pos[i] > 0.0) == (d > 0.0):
            new = pos[i] + d
            avg[i] = (abs(pos[i]) * avg[i] + qty * px) / abs(new)
        else:
            closed = min(abs(d), abs(pos[i]))
            out.append(closed * (px - avg[i]) * (1.0 if pos[i] > 0.0 else -1.0))
            new = pos[i] + d
            if abs(new) < 1e-12 * max(1.0, abs(pos[i])):
                new, avg[i] = 0.0, 0.0
            elif (new > 0.0) != (pos[i] > 0.0):
                avg[i] = px  # crossed zero: the rest opened at the fill price
        pos[i] = new
    return np.array(out, np.float64)


def hit_rate(closing: np.ndarray) -> float:
    return float(np.mean(closing > 0.0)) if len(closing) else math.nan


def daily_notional(fills: np.ndarray, day_ts: np.ndarray) -> np.ndarray:
    """Traded notional per day-end sample: each fill counts on the first day end at or after
    its time (the last day for a fill after the last sample)."""
    out = np.zeros(len(day_ts))
    if len(day_ts) and len(fills):
        k = np.searchsorted(day_ts, fills["ts"], side="left").clip(0, len(day_ts) - 1)
        np.add.at(out, k, fills["fill_qty"] * fills["fill_px"])
    return out
