"""A process's loop: emit due ticks, drain inputs, poll the router, housekeep, wait.

See :mod:`alphad.daemon.shell.runner` for the steps; this module is only their order
and the wait (``spin``, ``yield`` or ``block``).
"""
from __future__ import annotations

import os
import time

import numpy as np
from numba import njit

from alphad.daemon.jit import bind
from alphad.ipc.control import S_READY, STAGE_INDEX
from alphad.ipc.doorbell import arm, disarm, sleep
from alphad.ipc.ring import ring_pending, ring_pop

HOUSEKEEPING_NS = 20_000_000
MAX_WAIT_NS = 50_000_000


@njit(cache=True)
def any_pending(h64s, cis):
    """True when any input ring has records for this process (checked after arming)."""
    for j in range(len(h64s)):
        if ring_pending(h64s[j], cis[j]) > 0:
            return True
    return False


class Loop:
    """The loop of one :class:`~alphad.daemon.shell.runner.ProcessRunner`, its compiled
    ring and doorbell calls bound while warming (on scratch copies: nothing armed)."""

    def __init__(self, shell):
        self.shell = shell
        inputs = shell.inputs
        # a tuple for any_pending(), not a numba.typed.List: building a typed List compiles its
        # (uncached) methods, ~0.35 s of every stage's start.  No input rings: a blank header.
        self._h64s = tuple(ring.h64 for _, ring, _ in inputs) or (np.zeros(512, np.int64),)
        self._cis = np.array([ci for _, _, ci in inputs] or [0], dtype=np.int64)
        bells, idx = shell.bells, shell.index
        self._pop = ring_pop
        if inputs:
            _, ring, ci = inputs[0]
            buf = shell.in_bufs[inputs[0][0]].view(np.uint8)
            self._pop = bind(ring_pop, ring.h64, ring.b8, ci, buf, 0)
            self._pop(ring.h64, ring.b8, ci, buf, 0)
        self._any_pending = bind(any_pending, self._h64s, self._cis)
        self._any_pending(self._h64s, self._cis)
        scratch = np.zeros_like(bells.words)  # arm/disarm warmed on a scratch copy
        self._arm = bind(arm, scratch, idx)
        self._arm(scratch, idx)
        self._disarm = bind(disarm, scratch, idx)
        self._disarm(scratch, idx)
        self._sleep = bind(sleep, bells.words, bells.addr, idx, 0, shell.sleeper.timespec_addr)
        self._inputs = [(kind, ring, ci, shell.in_bufs[kind], shell.handlers[kind]) for kind, ring, ci in inputs]
        self.sim_now = 0

    def _emit_due(self, feed) -> int:
        """Emit what the feed has due; returns how many events (0: none)."""
        shell = self.shell
        core = feed.core
        now = self.sim_now if shell.simulated else time.monotonic_ns()
        if shell.simulated and core.pos < len(core.events):
            self.sim_now = now = int(core.events["ts_exch"][core.pos])
        n = core.take(now, shell.batch)
        if n:
            if shell.fused_tick is not None:
                shell.fused_tick(n)
            else:
                feed.emit(n, now if shell.simulated else -1)
        return n

    def _drain_inputs(self) -> bool:
        busy = False
        for kind, ring, ci, buf, handlers in self._inputs:
            n = self._pop(ring.h64, ring.b8, ci, buf.view(np.uint8), self.shell.batch)
            if n:
                busy = True
                for handler in handlers:
                    handler(buf, n, -1)
        return busy

    def run(self) -> int:
        shell = self.shell
        feed = shell.adapters.get("feed")
        router = shell.adapters.get("router")
        infer = shell.adapters.get("infer")
        keep_warm = infer.keep_warm_ns if infer is not None else 0
        spin, block, simulated = shell.wait == "spin", shell.wait == "block", shell.simulated
        drain = shell.drain
        bells, idx, sleeper = shell.bells, shell.index, shell.sleeper
        go = simulated or feed is None
        next_housekeeping = ticks = warm_at = 0  # warm_at: when this process last worked or rehearsed
        while not shell.stopping:
            busy = False
            if not go:  # the feed holds its first tick until every stage is warm
                go = all(shell.control.stage(i, S_READY) for i in range(len(STAGE_INDEX)))
            if feed is not None and go:
                n = self._emit_due(feed)
                if n:
                    busy = True
                    ticks += n
                    if shell.bench_ticks and ticks >= shell.bench_ticks:
                        feed = None
                elif simulated and feed.core.exhausted:
                    break  # backtest: the recording is exhausted
            if drain is not None:
                busy = drain(False) or busy
            elif self._inputs:
                busy = self._drain_inputs() or busy
            if router is not None and router.poll_ns:  # venue latency: reports come due later
                now = self.sim_now if simulated else time.monotonic_ns()
                if router.poll(now, now if simulated else -1):
                    busy = True
            if busy or spin or simulated:
                if not simulated or ticks & 0x3FF == 0:
                    now = time.monotonic_ns()
                    if now >= next_housekeeping:
                        shell.housekeeping(now)
                        next_housekeeping = now + HOUSEKEEPING_NS
                    if keep_warm:
                        if busy:
                            warm_at = now
                        elif now - warm_at >= keep_warm:
                            infer.rehearse()
                            warm_at = time.monotonic_ns()
                continue
            now = time.monotonic_ns()
            if now >= next_housekeeping:
                shell.housekeeping(now)
                next_housekeeping = now + HOUSEKEEPING_NS
            if keep_warm and now - warm_at >= keep_warm:
                infer.rehearse()
                warm_at = time.monotonic_ns()
                continue  # a tick may have come meanwhile: look before sleeping
            if not block:
                os.sched_yield()
                continue
            # block: arm, re-check, sleep until rung or the next timed event
            timeout = MAX_WAIT_NS if go else 5_000_000
            if feed is not None and go:
                d = feed.core.next_due(now)
                if d == 0:
                    continue
                if d > 0:
                    timeout = min(timeout, d)
            if router is not None and router.poll_ns:
                timeout = min(timeout, router.poll_ns)
            if keep_warm:
                timeout = min(timeout, max(warm_at + keep_warm - now, 1_000))
            ts = sleeper._timespec
            ts[0] = timeout // 1_000_000_000
            ts[1] = timeout % 1_000_000_000
            if drain is not None:  # sleep and drain in one compiled call (the stage's *_drain)
                if drain(True) and keep_warm:
                    warm_at = time.monotonic_ns()
                continue
            seq = self._arm(bells.words, idx)
            if self._inputs and self._any_pending(self._h64s, self._cis):
                self._disarm(bells.words, idx)
                continue
            self._sleep(bells.words, bells.addr, idx, seq, sleeper.timespec_addr)
        return 0
