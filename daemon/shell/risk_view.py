"""Risk's state as other processes read it: the arrays of the ``risk_state`` segment.

The supervisor shows them (``ctl status``, /metrics) and the gateway compares risk's
positions with the broker's; both only read.  The layout is
:func:`alphad.daemon.risk.core.state_specs`, after :data:`alphad.ipc.shm.STATE_HEADER`.
"""
from __future__ import annotations

import numpy as np

from alphad.daemon.risk.codes import B_POSITION, DATA_STALE_SINCE
from alphad.daemon.risk.core import state_specs_of
from alphad.ipc.shm import Segment, state_size, state_views

#: Indices of the arrays read here in :func:`~alphad.daemon.risk.core.state_specs`.
_BOOK, _DATA = 0, -1


class RiskView:
    """Read-only view of risk's state for config ``cfg``; attaches lazily (risk makes the
    segment)."""

    def __init__(self, name: str, cfg):
        self.name, self.specs = name, state_specs_of(cfg)
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
