"""Risk's state as other processes read it: the arrays of the ``risk_state`` segment.

The supervisor shows them (``ctl status``, /metrics) and the gateway compares risk's
positions with the broker's; both only read.  The layout is
:func:`alphad.daemon.risk.core.state_specs`, after :data:`alphad.ipc.shm.STATE_HEADER`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from alphad.daemon.risk.codes import B_POSITION, DATA_STALE_SINCE, SEC_EXPOSURE
from alphad.daemon.risk.core import state_specs_of
from alphad.ipc.shm import Segment, state_size, state_views

#: Reads of :meth:`RiskView.figures` before it settles for the last one.
FIGURE_READS = 8


class RiskFigures(NamedTuple):
    """Risk's book at one moment: net position per instrument, the account row (``A_*``),
    gross exposure per sector, the drawdown ladder (``D_*``)."""
    positions: np.ndarray
    account: np.ndarray
    sectors: dict[str, float]
    drawdown: np.ndarray

#: Indices of the arrays read here in :func:`~alphad.daemon.risk.core.state_specs`.
_BOOK, _OO_IDS, _OO_VALS, _DATA, _HALTS = 0, 3, 4, 14, 15
_SECTORS, _ACCOUNT, _DRAWDOWN = 1, 2, 5


class RiskView:
    """Read-only view of risk's state for config ``cfg``; attaches lazily (risk makes the
    segment)."""

    def __init__(self, name: str, cfg):
        self.name, self.specs = name, state_specs_of(cfg)
        #: Names of the rows of risk's sector array (as risk.config.build_risk_arrays orders them).
        self.sector_names = sorted({i.sector for i in cfg.universe if i.sector})
        self._seg = None
        self._views: list[np.ndarray] | None = None

    def _arrays(self) -> list[np.ndarray] | None:
        if self._seg is None:
            try:
                self._seg = Segment.attach(self.name)
            except FileNotFoundError:
                return None
        if self._seg.buf[0] == 0 or self._seg.size < state_size(self.specs):
            return None  # risk has not made its state yet
        if self._views is None:
            self._views = state_views(self._seg.buf, self.specs)
        return self._views

    def positions(self) -> np.ndarray | None:
        """Net position per instrument (a copy), or None before the risk stage made its book."""
        views = self._arrays()
        return None if views is None else views[_BOOK][:, B_POSITION].copy()

    def stale_since(self) -> np.ndarray | None:
        """Per instrument, when its data became stale (0: fresh; see
        :func:`alphad.daemon.risk.core.risk_data_watch`), or None before risk made its state."""
        views = self._arrays()
        return None if views is None else views[_DATA][:, DATA_STALE_SINCE].copy()

    def book(self) -> np.ndarray | None:
        """Risk's whole book (columns ``B_*``; a copy), or None before risk made it."""
        views = self._arrays()
        return None if views is None else views[_BOOK].copy()

    def open_orders(self) -> list[tuple[int, int, int, float]] | None:
        """(client order id, instrument, side, leaves) of every order risk counts as working."""
        from alphad.daemon.risk.portfolio import OO_INSTRUMENT, OO_LEAVES, OO_SIDE

        views = self._arrays()
        if views is None:
            return None
        ids, vals = views[_OO_IDS].copy(), views[_OO_VALS].copy()
        live = np.flatnonzero(ids > 0)
        return [(int(ids[j]), int(vals[j, OO_INSTRUMENT]), int(vals[j, OO_SIDE]), float(vals[j, OO_LEAVES]))
                for j in live if vals[j, OO_LEAVES] > 0]

    def halted(self) -> np.ndarray | None:
        """Per instrument, 1 while an operator halted it (``ctl halt --symbol``), or None before
        risk made its state."""
        views = self._arrays()
        return None if views is None else views[_HALTS].copy()

    def set_halted(self, i: int, halted: bool) -> bool:
        """The supervisor's halt (or resume) of instrument ``i``: the array's one writer once
        risk made it (risk reads it at every order).  False before risk made its state."""
        views = self._arrays()
        if views is None:
            return False
        views[_HALTS][i] = 1 if halted else 0
        return True

    def figures(self) -> RiskFigures | None:
        """Positions, account, sector exposure and drawdown copied from one moment, or None
        before risk made its state.  Risk writes while this reads, and a scrape's gross must
        equal its sectors' sum: the arrays are copied until two copies in a row agree (a few
        microseconds; risk writes at most once per event), at most :data:`FIGURE_READS` times."""
        views = self._arrays()
        if views is None:
            return None
        arrays = (views[_BOOK], views[_ACCOUNT], views[_SECTORS], views[_DRAWDOWN])
        last = [a.copy() for a in arrays]
        for _ in range(FIGURE_READS - 1):
            now = [a.copy() for a in arrays]
            if all(np.array_equal(a, b, equal_nan=True) for a, b in zip(now, last)):
                break
            last = now
        book, account, sectors, dd = last
        return RiskFigures(book[:, B_POSITION].copy(), account,
                           {name: float(v) for name, v in zip(self.sector_names, sectors[:, SEC_EXPOSURE])}, dd)

    def drawdown(self) -> np.ndarray | None:
        """The drawdown ladder's state (columns ``D_*`` of :mod:`alphad.daemon.risk.drawdown`:
        level, each measure's drawdown, ...; a copy), or None before risk made its state."""
        views = self._arrays()
        return None if views is None else views[_DRAWDOWN].copy()
