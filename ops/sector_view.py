"""A backtest's day-end book by sector: exposure and PnL attribution.

Sectors are the config universe's ``sector``; an instrument without one (an ETF, an
index) is under :data:`NO_SECTOR`.  Per instrument at each day end (from
:class:`~alphad.daemon.shell.day_samples.DaySamples`):

* exposure: ``position * mark`` (the price risk values it at), summed per sector, as a
  fraction of that day's equity; gross sums ``|position * mark|``, net keeps the sign;
* PnL since the start: realised + ``position * (mark - average price)`` - fees, the risk
  book's own columns; the sectors' PnL adds up to the account's realised + unrealised
  PnL - fees (= equity - initial equity, up to the book's incremental rounding).
"""
from __future__ import annotations

import numpy as np

NO_SECTOR = "(no sector)"


def sector_names(universe) -> tuple[list[str], np.ndarray]:
    """The sectors in order of first appearance, and each instrument's sector index."""
    names: list[str] = []
    index = []
    for ins in universe:
        name = ins.sector or NO_SECTOR
        if name not in names:
            names.append(name)
        index.append(names.index(name))
    return names, np.array(index, np.int64)


def _by_sector(values: np.ndarray, index: np.ndarray, n_sectors: int) -> np.ndarray:
    """Sum the instrument columns of ``values`` (days x instruments) into sector columns."""
    out = np.zeros((values.shape[0], n_sectors))
    for s in range(n_sectors):
        out[:, s] = values[:, index == s].sum(axis=1)
    return out


def exposure(samples: dict, universe) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(sectors, gross, net)``: days x sectors, fractions of each day's equity."""
    names, index = sector_names(universe)
    value = samples["book_position"] * samples["mark"]
    equity = samples["equity"][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        gross = _by_sector(np.abs(value), index, len(names)) / equity
        net = _by_sector(value, index, len(names)) / equity
    return names, gross, net


def pnl(samples: dict, universe) -> tuple[list[str], np.ndarray]:
    """``(sectors, pnl)``: PnL since the start, days x sectors, quote currency."""
    names, index = sector_names(universe)
    per_instrument = (samples["book_realised"]
                      + samples["book_position"] * (samples["mark"] - samples["book_avg_px"])
                      - samples["book_fees"])
    return names, _by_sector(per_instrument, index, len(names))
