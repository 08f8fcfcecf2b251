"""Risk's positions as other processes read them: the book in the ``risk_state`` segment.

The supervisor shows them (``ctl status``) and the gateway compares them with the
broker's; both only read.  The book is the segment's first array
(:func:`alphad.daemon.risk.core.state_specs`), after :data:`alphad.ipc.shm.STATE_HEADER`.
"""
from __future__ import annotations

import numpy as np

from alphad.daemon.risk.codes import B_POSITION, N_BOOK_COLS
from alphad.ipc.shm import STATE_HEADER, Segment


class RiskView:
    """Read-only view of risk's positions; attaches lazily (risk makes the segment)."""

    def __init__(self, name: str, n_instruments: int):
        self.name, self.n = name, n_instruments
        self._seg = None

    def positions(self) -> np.ndarray | None:
        """Net position per instrument (a copy), or None before the risk stage made its book."""
        if self._seg is None:
            try:
                self._seg = Segment.attach(self.name)
            except FileNotFoundError:
                return None
        size = self.n * N_BOOK_COLS * 8
        if self._seg.buf[0] == 0 or self._seg.size < STATE_HEADER + size:
            return None
        book = self._seg.buf[STATE_HEADER:STATE_HEADER + size].view(np.float64).reshape(self.n, N_BOOK_COLS)
        return book[:, B_POSITION].copy()
