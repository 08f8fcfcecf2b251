"""The feed's side of a lockstep replay (``alphad replay``): wait until every stage is done
with the last event before the next one exists.

Between two events the router polls its venues at the first one's time (:meth:`poll_router`),
as the backtest's loop does.  Done means: every ring a stage reads is drained, and no
process is between a pop and the hand-on of what it made (each process's work word, :data:`alphad.ipc.control.S_WORK`, is odd
while it is, and moves on every pass).  The words are read before and after the rings: a
process that popped and pushed in between shows as a moved word, never as a false "done".
"""
from __future__ import annotations

import time

import numpy as np

from alphad.ipc import dtypes
from alphad.ipc.control import (S_WORK, STAGE_INDEX, W_REPLAY_POLL_DONE, W_REPLAY_POLL_REQ, W_REPLAY_POLL_TS,
                                stage_word)
from alphad.ipc.doorbell import ring_doorbell
from alphad.ipc.ring import Ring, ring_pending


class Lockstep:
    def __init__(self, shell):
        plan, names = shell.plan, shell.names
        self.ctl = shell.ctl
        self._rings, self._cursors = [], []  # every stage consumer of every ring (the journal reads apart)
        for kind, spec in plan.rings.items():
            ring = Ring.attach(names[f"ring.{kind}"], dtypes.RECORDS[kind], shell.bells)
            self._rings.append(ring)
            self._cursors += [(ring.h64, ring.consumer_index(c)) for c in spec.consumers if c in STAGE_INDEX]
        mine = set(shell.stages)
        self._words = np.array([stage_word(STAGE_INDEX[g[0]], S_WORK) for g in plan.processes if not mine & set(g)])
        self.bells = shell.bells
        self._router = plan.process_index("router")

    def done(self) -> bool:
        before = self.ctl[self._words]  # a copy (fancy index)
        if (before & 1).any():
            return False
        if any(ring_pending(h64, ci) > 0 for h64, ci in self._cursors):
            return False
        return bool((self.ctl[self._words] == before).all())

    def poll_router(self, ts: int, stopping, drain_own) -> None:
        """Between two events, as the backtest's loop does: the router collects the venues'
        reports due by ``ts`` (venue latency, algorithm steps); then every stage is done
        with them."""
        ctl = self.ctl
        ctl[W_REPLAY_POLL_TS] = ts
        ctl[W_REPLAY_POLL_REQ] += 1
        request = int(ctl[W_REPLAY_POLL_REQ])
        ring_doorbell(self.bells.words, self.bells.addr, self._router)
        while ctl[W_REPLAY_POLL_DONE] < request:
            if stopping():
                return
            if not drain_own():
                time.sleep(20e-6)
        self.wait(stopping, drain_own)

    def wait(self, stopping, drain_own) -> None:
        """Until :meth:`done`; ``drain_own()`` serves this process's own inputs meanwhile (a
        process that hosts the feed and more stages)."""
        while not self.done():
            if stopping():
                return
            if not drain_own():
                time.sleep(20e-6)
