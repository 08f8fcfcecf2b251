"""The ``fused`` process's tick: feed through risk in two compiled calls around the model
(:func:`~alphad.daemon.shell.tick.fused_front`, then ``fused_back``).

The handler chain made one compiled call per stage with Python between them, all on the
tick's path (~14 µs of the ~19 µs feed→risk p50 in run G's fused/spin).
"""
from __future__ import annotations

import time

import numpy as np

from alphad.daemon.feed.core import new_feed_state
from alphad.daemon.jit import bind
from alphad.daemon.shell import tick

FUSED_STAGES = ("feed", "features", "infer", "risk")


class FusedTick:
    """Bound to the process's live state; warmed with n = 0 on scratch copies."""

    def __init__(self, shell, w):
        self.shell = shell
        feed, feat, inf, risk = (shell.adapters[s] for s in FUSED_STAGES)
        self.feed, self.infer, self.risk = feed, inf, risk
        ports = shell.ports
        self._front_args = (ports["md"], risk.state, feat.state, ports["features"], inf.state)
        self._back_args = (ports["signals"], risk.state, ports["orders"], risk.denials)
        scratch_feed = new_feed_state(feed.core.events, feed.core.cursor.copy())
        front_idle = (w.out("md", tick.FEED), risk.core.scratch_state(), feat.core.scratch_state(),
                      w.out("features", tick.FEATURES), inf.core.quiet)
        self._front = bind(tick.fused_front, scratch_feed, 0, 0, *front_idle)
        self._front(scratch_feed, 0, 0, *front_idle)
        y = inf.session.y[:1, 0]
        back_idle = (w.out("signals", tick.INFER), risk.core.scratch_state(), w.out("orders", tick.RISK),
                     w.out("denials", tick.RISK, np.zeros(2, risk.core.denials.dtype)))
        self._back = bind(tick.fused_back, inf.core.quiet, ports["features"], 0, y, *back_idle)
        self._back(inf.core.quiet, w.out("features", tick.FEATURES), 0, y, *back_idle)

    def tick(self, n: int) -> None:
        """The feed's ``n`` due events through features, the model and the gate."""
        shell, session = self.shell, self.infer.session
        k = self._front(self.feed.core.state, n, time.time_ns(), *self._front_args)
        if k > session.max_batch:  # more rows than one model run: the handler chain
            shell.emitted("features", k, k, -1)
        elif k:
            n_orders, pushed = self._back(self.infer.state, shell.ports["features"], k, session.run_bound(k),
                                          *self._back_args)
            self.infer.last_rows = shell.bufs["features"]  # what a keep-warm rehearsal replays
            shell.emitted("orders", n_orders, pushed, -1)
