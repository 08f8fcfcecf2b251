"""What ``alphad top`` shows, read once per refresh: the control port's status, positions and
working orders, and risk's state in shared memory (exposure by sector, account, drawdown).

Everything is read-only.  A daemon that does not answer is no error here: the snapshot says
so (``answered`` False) and the caller keeps asking.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from alphad.ipc import frames
from alphad.ops.ctl import request


@dataclass
class RiskState:
    """Risk's arrays as read from shared memory (copies)."""
    sectors: dict[str, float]
    account: np.ndarray      # columns A_* of alphad.daemon.risk.codes
    drawdown: np.ndarray     # columns D_* of alphad.daemon.risk.drawdown


@dataclass
class Snapshot:
    endpoint: str
    taken: float                                # wall clock of this read (time.time())
    status: frames.StatusReply | None = None    # None: no answer
    positions: frames.PositionsReply | None = None
    positions_error: str = ""                   # an Error reply, or why positions are missing
    working: int | None = None                  # working orders (None: not known)
    risk: RiskState | None = None
    risk_note: str = ""                         # why risk's state is not shown
    last_answer: float | None = None            # wall clock of the last answer (for a gone daemon)
    error: str = ""                             # an Error reply to status

    @property
    def answered(self) -> bool:
        return self.status is not None


class RiskReader:
    """Risk's state segment, re-attached when the daemon restarts: a restart unlinks the old
    segment and makes a new one, and a mapping of the old one would show frozen figures."""

    def __init__(self, cfg, segment: str):
        self.cfg, self.segment = cfg, segment
        self._view = None
        self._inode: int | None = None

    def read(self) -> tuple[RiskState | None, str]:
        from alphad.daemon.shell.risk_view import RiskView
        from alphad.ipc.shm import segment_path

        path = segment_path(self.segment)
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            self._view = None
            return None, f"no shared memory {path} (is the daemon on this host, with this config's shm.prefix?)"
        except PermissionError:
            return None, f"shared memory {path}: permission denied (run top as the daemon's user)"
        if self._view is None or inode != self._inode:
            self._view, self._inode = RiskView(self.segment, self.cfg), inode
        try:
            figures = self._view.figures()
        except (OSError, RuntimeError) as e:  # the segment went away between stat and attach, or is empty
            self._view = None
            return None, f"shared memory {path}: {e}"
        if figures is None:
            return None, "the risk stage has not made its state yet"
        return RiskState(figures.sectors, figures.account, figures.drawdown), ""


class Source:
    """One daemon, polled: its control ``endpoint`` (``curve``: CurveZMQ keys, as ``ctl``),
    and ``risk`` (a :class:`RiskReader`, or None without a config to find the segment)."""

    def __init__(self, endpoint: str, timeout_s: float, curve=None, risk: RiskReader | None = None,
                 risk_note: str = ""):
        self.endpoint, self.timeout_s, self.curve = endpoint, timeout_s, curve
        self.risk, self.risk_note = risk, risk_note
        self.last: Snapshot | None = None  # the last snapshot with an answer

    def _ask(self, req) -> frames._Frame | None:
        return request(self.endpoint, req, self.timeout_s, self.curve)

    def poll(self) -> Snapshot:
        snap = Snapshot(endpoint=self.endpoint, taken=time.time())
        status = self._ask(frames.Status())
        if not isinstance(status, frames.StatusReply):
            # no answer (or, from a foreign server, no status): keep what was last seen to show
            snap.last_answer = self.last.taken if self.last else None
            if isinstance(status, frames.Error):
                snap.error = status.error
            return snap
        snap.status, snap.last_answer = status, snap.taken
        pos = self._ask(frames.Positions())
        if isinstance(pos, frames.PositionsReply):
            snap.positions = pos
        else:
            snap.positions_error = pos.error if isinstance(pos, frames.Error) else "no answer to positions"
        orders = self._ask(frames.Orders())
        if isinstance(orders, frames.OrdersReply):
            snap.working = len(orders.orders)
        if self.risk is not None:
            snap.risk, snap.risk_note = self.risk.read()
        else:
            snap.risk_note = self.risk_note
        self.last = snap
        return snap
