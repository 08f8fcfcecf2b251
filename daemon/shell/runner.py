"""The stage shell: runs the stages of one process and moves records between them.

One :class:`ProcessRunner` per process of the topology.  It attaches the shared
segments and the rings, builds one adapter per stage it hosts
(:mod:`alphad.daemon.shell.stages`), warms them, marks its stages READY in the control
block, then loops:

1. the feed (if here) emits the events that are due;
2. each input ring is drained in batches (``ring_pop``) and every batch handed to the
   local consumers of its kind, whose outputs are handed on in turn (:meth:`emitted`),
   and pushed to a ring where a consumer lives in another process;
3. with nothing to do it waits: ``spin`` (retry), ``yield`` (sched_yield) or ``block``
   (arm its doorbell, re-check, futex-wait with a timeout that also covers the feed's
   next due event and pending paper fills).  A blocking process that hosts one stage
   other than the feed does 2-3 in one compiled call per wake instead (the stage's
   ``*_drain``), and the ``fused`` process takes a due tick to its orders in two
   compiled calls around the model (:mod:`alphad.daemon.shell.fused`);
4. with ``topology.infer_keep_warm_us``, the process hosting ``infer`` first re-runs the
   inference step on a scratch copy of its last row once it has been idle that long, so
   a spaced tick finds the model in cache.

Signals only set a flag (the futex wait returns on EINTR or its timeout).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from alphad.daemon.config import Config
from alphad.daemon.shell import stages as st
from alphad.daemon.shell.reload import ReloadWatch
from alphad.daemon.shell.fused import FUSED_STAGES, FusedTick
from alphad.daemon.shell.ports import out_port
from alphad.daemon.shell.tick import Loop, hand_on
from alphad.daemon.shell.topology import EDGES, Plan, segment_names
from alphad.ipc import dtypes
from alphad.ipc.control import S_HEARTBEAT, S_PID, S_READY, STAGE_INDEX, ControlBlock
from alphad.ipc.doorbell import Doorbells, Sleeper
from alphad.ipc.metrics import MetricsBlock
from alphad.ipc.ring import Ring, ring_push

BATCH = 256


class ProcessRunner:
    """Runs the stages of process ``index`` of ``plan``.

    Parameters
    ----------
    simulated : run on the feed's own timestamps (the ``single`` topology's backtest
        clock) instead of CLOCK_MONOTONIC; the feed is then replayed at max speed.
    replay : one process of a lockstep replay (``alphad replay``): simulated, but waiting
        as the daemon's processes do, the feed waiting for every stage after each event.
    bench_rate_hz / bench_ticks : for ``alphad bench``: emit evenly spaced ticks and stop
        after ``bench_ticks`` of them.
    """

    batch = BATCH

    def __init__(self, cfg: Config, base: Path, plan: Plan, index: int, *, simulated: bool = False,
                 replay: bool = False, bench_rate_hz: float | None = None, bench_ticks: int | None = None):
        self.cfg, self.base, self.plan, self.index = cfg, base, plan, index
        self.stages = plan.processes[index]
        #: ``replay``: a process of ``alphad replay`` (lockstep, event time, the daemon's waits).
        simulated = simulated or replay
        self.simulated, self.replay = simulated, replay
        self.bench_ticks = bench_ticks
        self.stopping = False
        self.names = names = segment_names(cfg.shm.prefix)
        self.bells = Doorbells.attach(names["doorbells"])
        self.control = ControlBlock.attach(names["control"])
        self.metrics = MetricsBlock.attach(names["metrics"])
        self.m, self.ctl = self.metrics.words, self.control.words
        self.wait = cfg.topology.wait_overrides.get(self.stages[0], cfg.topology.wait)
        self.sleeper = Sleeper(self.bells, index)
        self._attach_rings()
        # one buffer and one port per output kind; a consumer in this process gets it by call
        self.bufs = {kind: np.zeros(BATCH, dtypes.RECORDS[kind]) for kind in EDGES}
        self.ports = {kind: self.out_port(kind, STAGE_INDEX[EDGES[kind][0]], self.bufs[kind]) for kind in EDGES}
        self.adapters = self._build_adapters(bench_rate_hz)
        # live settings changes (ctl reload): the daemon's processes only, never a backtest's or replay's
        self.reload_watch = None if simulated or replay else ReloadWatch(self)
        if "router" in self.adapters:  # the router writes its reports into its own buffer
            self.bufs["exec"], self.ports["exec"] = self.adapters["router"].core.reports, self.adapters["router"].port
        self.handlers: dict[str, list] = {kind: [] for kind in EDGES}
        for kind, (_, consumers) in EDGES.items():  # in EDGES' order: a quote reaches router and risk first
            for stage in consumers:
                if stage in self.adapters:
                    self.handlers[kind].append(self.adapters[stage].consumers()[kind])
        self.fused = (not simulated and self.stages == FUSED_STAGES
                      and not {"features", "signals"} & set(self.out_rings))
        kinds = tuple(kind for kind, _, _ in self.inputs)
        self.drainer = None  # the one adapter whose drain this process runs
        if self.wait == "block" and not simulated and len(self.stages) == 1:
            a = self.adapters[self.stages[0]]
            if getattr(a, "DRAIN_INPUTS", None) == kinds and (a.name != "router" or (
                    a.core.parents is None and not getattr(a.core, "live", False))):
                self.drainer = a

    def _attach_rings(self) -> None:
        """Outputs we produce for other processes; inputs we consume (one cursor per process)."""
        self.out_rings: dict[str, Ring] = {}
        self.inputs: list[tuple[str, Ring, int]] = []
        self.in_bufs: dict[str, np.ndarray] = {}
        for kind, spec in self.plan.rings.items():
            if spec.producer in self.stages:
                ring = Ring.attach(self.names[f"ring.{kind}"], dtypes.RECORDS[kind], self.bells)
                ring.claim_producer()
                self.out_rings[kind] = ring
            mine = [c for c in spec.consumers if c in self.stages]
            if mine:
                ring = Ring.attach(self.names[f"ring.{kind}"], dtypes.RECORDS[kind], self.bells)
                ci = ring.consumer_index(mine[0])  # named after the first local consumer
                ring.claim(ci)
                self.inputs.append((kind, ring, ci))
                self.in_bufs[kind] = np.zeros(BATCH, dtypes.RECORDS[kind])

    def _build_adapters(self, bench_rate_hz) -> dict:
        keep_warm_ns = 0 if self.simulated or "infer" not in self.stages else self.cfg.topology.infer_keep_warm_us * 1000
        build = {
            "feed": lambda: st.FeedStage(self, simulated=self.simulated, bench_rate_hz=bench_rate_hz),
            "features": lambda: st.FeaturesStage(self),
            "infer": lambda: st.InferStage(self, keep_warm_ns=keep_warm_ns),
            "risk": lambda: st.RiskStage(self, simulated=self.simulated),
            "router": lambda: st.RouterStage(self),
        }
        return {s: build[s]() for s in self.stages}

    # -- what adapters use --------------------------------------------------------------
    def out_port(self, kind: str, stage: int, recs: np.ndarray):
        """A port over ``recs`` pushing to ``kind``'s ring when another process consumes it."""
        return out_port(recs, self.out_rings.get(kind), self.bells, self.m, self.ctl, stage)

    def input(self, kind: str) -> tuple[Ring, int, np.ndarray]:
        ring, ci = next((r, c) for k, r, c in self.inputs if k == kind)
        return ring, ci, self.in_bufs[kind]

    @staticmethod
    def bufs_dtype(kind: str) -> np.dtype:
        return dtypes.RECORDS[kind]

    def add_sink(self, kind: str, sink) -> None:
        """Call ``sink(recs, n, clock)`` with every batch of ``kind`` this process emits,
        before its consumers (the backtest collects its orders so)."""
        self.handlers[kind].insert(0, sink)

    def emitted(self, kind: str, k: int, pushed: int, clock: int) -> None:
        """After a step: finish a push a full lossless ring refused, hand on to local consumers."""
        hand_on(self, kind, k, pushed, clock)

    # -- lifecycle ----------------------------------------------------------------------
    def warm(self) -> None:
        """Compile or load from the cache every kernel this process will call, bind each to
        its compiled entry point, and run the ONNX session, without touching live state:
        scratch copies, no ring pushes, n = 0."""
        w = st.Warmup(self)
        for a in self.adapters.values():
            a.warm(w)
        for _, ring, _ in self.inputs:
            ring_push(ring.h64, ring.b8, self.bells.words, self.bells.addr, np.zeros(0, np.uint8), 0)
        self.fused_tick = FusedTick(self, w).tick if self.fused else None
        self.loop = Loop(self, w, self.drainer)

    def mark_ready(self, ready: bool) -> None:
        for s in self.stages:
            i = STAGE_INDEX[s]
            self.control.set_stage(i, S_PID, os.getpid() if ready else 0)
            self.control.set_stage(i, S_READY, 1 if ready else 0)
            self.control.set_stage(i, S_HEARTBEAT, time.monotonic_ns())

    def install_signal_handlers(self) -> None:
        def stop(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self) -> int:
        """The loop (:class:`alphad.daemon.shell.tick.Loop`).  Returns 0 on a requested stop."""
        return self.loop.run()

    @property
    def event_clock(self) -> int:
        """What housekeeping stamps and routes on: the event clock of a backtest or replay
        (the last event's time), or -1 (CLOCK_MONOTONIC) in the daemon."""
        return self.loop.sim_now if self.simulated else -1

    def beat(self, now: int) -> None:
        """The heartbeat of this process's stages (the supervisor kills a stale one)."""
        for s in self.stages:
            self.control.set_stage(STAGE_INDEX[s], S_HEARTBEAT, now)

    def housekeeping(self, now: int) -> None:
        self.beat(now)
        if self.control.shutdown_requested:
            self.stopping = True
        if self.reload_watch is not None:
            self.reload_watch.check()
        for a in self.adapters.values():
            a.housekeeping(now)

    def close(self) -> None:
        self.mark_ready(False)
        risk = self.adapters.get("risk")
        if risk is not None:
            risk.close()
