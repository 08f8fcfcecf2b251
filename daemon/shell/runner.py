"""The stage shell: runs the cores of one process and moves records between them.

One :class:`ProcessRunner` per process of the topology.  It attaches the
shared segments, builds the cores of its stages, warms every kernel and the
ONNX session, marks its stages READY in the control block, then loops:

1. the feed (if here) emits the events that are due;
2. each input ring is drained in batches (``ring_pop``);
3. every batch is handed to the local consumers of its kind, whose outputs
   are handed on in turn, and pushed to a ring where a consumer lives in
   another process;
4. with nothing to do it waits: ``spin`` (retry), ``yield`` (sched_yield) or
   ``block`` (arm its doorbell, re-check, futex-wait with a timeout that also
   covers the feed's next due event and pending paper fills).  A blocking process
   that hosts one stage other than the feed does 2-4 in one compiled call per wake
   instead (``steps.*_drain``): it returns to Python only after its step.  The
   ``fused`` process (feed through risk) likewise takes a due tick to its orders in
   two compiled calls around the model (``steps.fused_front``/``fused_back``);
5. with ``topology.infer_keep_warm_us``, the process hosting ``infer`` first re-runs
   the inference step on a scratch copy of its last row once it has been idle that
   long, so a spaced tick finds the model in cache (``_rehearse``).

Signals only set a flag (the futex wait returns on EINTR or its timeout).
Per-stage latency is ``now - t_origin`` stamped when a stage emits.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from alphad.ipc import dtypes, feature_list, metrics as mx
from alphad.ipc.control import (S_EVENTS_IN, S_HEARTBEAT, S_INFER_PROVIDER, S_INFER_REHEARSALS, S_PID, S_READY,
                                STAGE_INDEX, ControlBlock, provider_code, stage_word)
from alphad.ipc.doorbell import Doorbells, Sleeper, arm, disarm, sleep
from alphad.ipc.metrics import MetricsBlock
from alphad.ipc.ring import Ring, ring_pending, ring_pop, ring_push
from alphad.ipc.shm import Segment
from alphad.kernels import quote_features as qf

from alphad.daemon.risk import core as rk
from alphad.daemon.shell import compiled as steps
from alphad.daemon.router import core as rt
from alphad.daemon.config import Config, resolve
from alphad.daemon.risk.drawdown import D_LEVEL, AlertSender, DrawdownArrays
from alphad.daemon.risk.portfolio import purge_tombstones
from alphad.daemon.risk.codes import DD_EVENT_ESCALATE, DD_EVENT_RECOVER
from alphad.daemon.feed.core import FeedCore, load_events, parse_speed
from alphad.daemon.infer.core import InferCore, ModelSession
from alphad.daemon.shell.compiled import FEED_LOOPS, FEED_POS, FEED_SEQ
from alphad.daemon.shell.topology import EDGES, Plan, segment_names

BATCH = 256
FEED, FEATURES, INFER, RISK, ROUTER = (STAGE_INDEX[s] for s in ("feed", "features", "infer", "risk", "router"))
HOUSEKEEPING_NS = 20_000_000
MAX_WAIT_NS = 50_000_000
FUSED_STAGES = ("feed", "features", "infer", "risk")

#: The input rings (in ring order) of a single-stage process that drains in one call.
DRAIN_INPUTS = {"features": ("md",), "infer": ("features",), "risk": ("md", "signals", "exec"),
                "router": ("md", "orders")}


@njit(cache=True)
def any_pending(h64s, cis):
    """True when any input ring has records for this process (checked after arming)."""
    for j in range(len(h64s)):
        if ring_pending(h64s[j], cis[j]) > 0:
            return True
    return False


def shared_arrays(name: str, specs: list[tuple[tuple[int, ...], type]]):
    """Arrays in segment ``name`` that outlive this process (risk positions, router ids).

    Returns ``(segment, fresh, views)``; ``fresh`` is False when a previous
    incarnation of the stage left its state there, which the caller then adopts.
    """
    nbytes = [int(np.prod(shape)) * np.dtype(dt).itemsize for shape, dt in specs]
    seg = Segment.create(name, 64 + sum(nbytes), exist_ok=True)
    fresh = seg.buf[0] == 0
    views, off = [], 64
    for (shape, dt), nb in zip(specs, nbytes):
        views.append(seg.buf[off : off + nb].view(dt).reshape(shape))
        off += nb
    seg.buf[0] = 1  # written last: a stage killed while initialising starts fresh again
    return seg, fresh, views


class _Out:
    """A preallocated output buffer for one record kind."""

    def __init__(self, kind: str, size: int = BATCH, recs: np.ndarray | None = None):
        self.kind = kind
        self.recs = recs if recs is not None else np.zeros(size, dtype=dtypes.RECORDS[kind])
        self.u8 = self.recs.view(np.uint8)
        self.i64 = self.recs.view(np.int64)
        self.words = dtypes.RECORDS[kind].itemsize // 8

    @classmethod
    def over(cls, kind: str, recs: np.ndarray) -> "_Out":
        """Wrap an existing buffer (the smart router's report buffer)."""
        return cls(kind, recs=recs)


class ProcessRunner:
    """Runs the stages of process ``index`` of ``plan``.

    Parameters
    ----------
    simulated : run on the feed's own timestamps (the ``single`` topology's backtest
        clock) instead of CLOCK_MONOTONIC; the feed is then replayed at max speed.
    bench_rate_hz / bench_ticks : for ``alphad bench``: emit evenly spaced ticks and stop
        after ``bench_ticks`` of them.
    """

    def __init__(self, cfg: Config, base: Path, plan: Plan, index: int, *, simulated: bool = False,
                 bench_rate_hz: float | None = None, bench_ticks: int | None = None):
        self.cfg = cfg
        self.plan = plan
        self.index = index
        self.stages = plan.processes[index]
        self.simulated = simulated
        self.stopping = False
        names = segment_names(cfg.shm.prefix)
        self.bells = Doorbells.attach(names["doorbells"])
        self.control = ControlBlock.attach(names["control"])
        self.metrics = MetricsBlock.attach(names["metrics"])
        self.m = self.metrics.words
        self.ctl = self.control.words
        first = self.stages[0]
        self.wait = cfg.topology.wait_overrides.get(first, cfg.topology.wait)
        self.sleeper = Sleeper(self.bells, index)
        self._out = {kind: _Out(kind) for kind in EDGES}

        # -- rings: outputs we produce for other processes, inputs we consume
        self.out_rings: dict[str, Ring] = {}
        self.inputs: list[tuple[str, Ring, int, _Out]] = []
        for kind, spec in plan.rings.items():
            if spec.producer in self.stages:
                ring = Ring.attach(names[f"ring.{kind}"], dtypes.RECORDS[kind], self.bells)
                ring.claim_producer()
                self.out_rings[kind] = ring
            mine = [c for c in spec.consumers if c in self.stages]
            if mine:
                ring = Ring.attach(names[f"ring.{kind}"], dtypes.RECORDS[kind], self.bells)
                # one cursor per consuming process: named after the first local consumer
                ci = ring.consumer_index(mine[0])
                ring.claim(ci)
                self.inputs.append((kind, ring, ci, _Out(kind)))

        # a tuple for any_pending(), not a numba.typed.List: building a typed List compiles its
        # (uncached) methods, ~0.35 s of every stage's start.  A process without input rings
        # gets a blank header.
        self._pending_h64s = tuple(ring.h64 for _, ring, _, _ in self.inputs) or (np.zeros(512, np.int64),)
        self._pending_cis = np.array([ci for _, _, ci, _ in self.inputs] or [0], dtype=np.int64)
        # ring arguments for each output kind: empty arrays where no other process consumes it
        no_ring = (np.zeros(0, np.int64), np.zeros(0, np.uint8))
        self._ring_args = {kind: ((self.out_rings[kind].h64, self.out_rings[kind].b8) if kind in self.out_rings
                                  else no_ring) + (self.bells.words, self.bells.addr) for kind in EDGES}

        # -- cores
        self.handlers: dict[str, list] = {kind: [] for kind in EDGES}
        n_inst = len(cfg.universe)
        self.feed: FeedCore | None = None
        if "feed" in self.stages:
            events = load_events(cfg.feed, base, cfg.universe)
            speed = 0.0 if simulated else parse_speed(cfg.feed.speed)
            loop = cfg.feed.loop and not simulated
            if bench_rate_hz:
                speed, loop = 1.0, True
            self.feed = FeedCore(events, speed=speed, rate_hz=bench_rate_hz, loop=loop)
            fw = stage_word(STAGE_INDEX["feed"], 0)
            if self.ctl[fw + FEED_SEQ] > 0 and not simulated:  # restarted: resume, never reuse a seq
                self.feed.pos = int(self.ctl[fw + FEED_POS]) % len(events)
                self.feed.seq = int(self.ctl[fw + FEED_SEQ])
                self.feed.loops = int(self.ctl[fw + FEED_LOOPS])
            self._feed_words = fw
        self.bench_ticks = bench_ticks
        for consumer in EDGES["md"][1]:
            if consumer in self.stages:
                self.handlers["md"].append(getattr(self, f"_{consumer}_on_md"))
        if "features" in self.stages:
            f = cfg.features
            self._feature_seg = Segment.attach(names["feature_list"])
            feature_list.publish(self._feature_seg, f.set, qf.FEATURE_SETS[f.set])
            self.feat_state = qf.new_state(n_inst, f.set, **f.state_params())
            self.alpha_fast = 2.0 / (f.ema_fast_events + 1.0)
            self.alpha_slow = 2.0 / (f.ema_slow_events + 1.0)
            self.quotes_only = f.trigger == "quote"
        if "infer" in self.stages:
            seg = Segment.attach(names["feature_list"])
            _, published = feature_list.read(seg, cfg.supervisor.start_timeout_s)
            seg.close()
            session = ModelSession(resolve(base, cfg.model.card), published,
                                   provider=cfg.model.provider, max_batch=cfg.model.max_batch)
            print(f"alphad stage infer: model {cfg.model.card}, ONNX Runtime providers in use: "
                  f"{session.providers}" + ("" if session.fast_path else " (public run_with_iobinding: slower)"),
                  file=sys.stderr, flush=True)
            self.control.set_stage(STAGE_INDEX["infer"], S_INFER_PROVIDER, provider_code(session.providers[0]))
            drift = None
            ref = session.card.drift_reference
            if ref is not None:  # live histograms in shared memory: the exporter computes PSI from them
                shape = (len(ref.feature_names), len(ref.fractions[0]))
                self._drift_seg, _, (drift,) = shared_arrays(names["drift"], [(shape, np.int64)])
            self.infer = InferCore(session, weight_per_unit=cfg.model.weight_per_unit,
                                   weight_cap=cfg.model.weight_cap, min_abs_prediction=cfg.model.min_abs_prediction,
                                   drift_counts=drift)
            self.handlers["features"].append(self._infer_on_rows)
        # keep-warm rehearsals of the inference step while idle (never on the simulated clock)
        self._keep_warm_ns = 0 if simulated or "infer" not in self.stages else cfg.topology.infer_keep_warm_us * 1000
        self._rehearsals = 0
        if "risk" in self.stages:
            n_sectors = max(1, len({i.sector for i in cfg.universe if i.sector}))
            specs = rk.state_specs(n_inst, n_sectors, rk.RiskCore.OO_CAPACITY, cfg.risk.drawdown.window_capacity)
            self._risk_seg, fresh, views = shared_arrays(names["risk_state"], specs)
            self.risk = rk.RiskCore(cfg.universe, cfg.risk, self.control.risk_control, shared=(views, fresh))
            self._resumes_seen = self.control.resume_requests
            self._next_purge = 0
            self._alerts = None
            self._dd_level = int(self.risk.dd_state[D_LEVEL])
            if cfg.risk.drawdown.webhook_url:  # ladder alerts, posted off the hot path by a thread
                self._alerts = AlertSender(cfg.risk.drawdown.webhook_url, cfg.risk.drawdown.alert_cooldown_s)
                self._ladder = DrawdownArrays(cfg.risk.initial_equity, 16)
                self._ladder.state = self.risk.dd_state
            self.handlers["signals"].append(self._risk_on_signals)
            self.handlers["exec"].append(self._risk_on_exec)
        if "router" in self.stages:
            self._router_seg, _, (last_cid,) = shared_arrays(names["router_state"], [((n_inst,), np.uint64)])
            self.router = rt.RouterCore(cfg.universe, cfg.router, last_cid, metrics=self.m,
                                        impact_out=self.metrics.impact)
            self._reports = _Out.over("exec", self.router.reports)
            self.handlers["orders"].append(self._router_on_orders)
        # The fused process (feed through risk, on the real clock) takes a tick to its
        # orders in two compiled calls around the model (steps.fused_front / fused_back).
        self._fused = (not simulated and self.stages == FUSED_STAGES
                       and not {"features", "signals"} & set(self.out_rings))
        # A blocking process that hosts one stage (features, infer, risk, or router with
        # immediate execution) sleeps and drains its rings in one compiled call
        # (steps.*_drain), so it returns to Python only after its step; the others, and
        # spinning or yielding processes, pop ring by ring.
        kinds = tuple(kind for kind, _, _, _ in self.inputs)
        self._drain_kind = None
        if self.wait == "block" and not simulated and len(self.stages) == 1:
            stage = self.stages[0]
            if DRAIN_INPUTS.get(stage) == kinds and (stage != "router" or self.router.parents is None):
                self._drain_kind = stage

    # -- handlers: one per (stage, input kind) ----------------------------------------
    def _router_on_md(self, md, n, clock):
        self.router.on_md(md, n, time.monotonic_ns() if clock < 0 else clock)

    def _risk_on_md(self, md, n, clock):
        # Live, marks only: the drawdown ladder runs from housekeeping (every 20 ms), and the
        # daily-loss kill switch is also checked by the gate on every order, so nothing
        # beyond the revaluation sits on the per-quote path (in `fused` it precedes features).
        r = self.risk
        self._on_marks(md, n, r.limits, r.book, r.sectors, r.account)
        if clock >= 0:  # the backtest: the ladder must see simulated time, not housekeeping's
            self._watch(clock, r.account_limits, r.account, r.control, r.dd_state, r.dd_idx, r.win_ts, r.win_eq,
                        r.thresholds, r.params)

    def _features_on_md(self, md, n, clock):
        out = self._out["features"]
        h64, b8, bells, addr = self._ring_args["features"]
        k, pushed = self._features_step(md, n, self.feat_state, self.alpha_fast, self.alpha_slow, self.quotes_only, out.recs,
                                out.i64, out.words, self.m, self.ctl, FEATURES, h64, b8, bells, addr, out.u8, clock)
        self._published("features", out, k, pushed, clock)

    def _infer_on_rows(self, rows, n, clock):
        self._last_rows = rows  # what a keep-warm rehearsal replays
        out = self._out["signals"]
        now = clock if clock >= 0 else time.monotonic_ns()
        k = self.infer.on_rows(rows, n, out.recs, now)
        h64, b8, bells, addr = self._ring_args["signals"]
        k, pushed = self._publish(out.i64, out.words, k, self.m, self.ctl, INFER, n, h64, b8, bells, addr, out.u8,
                                  clock)
        self._published("signals", out, k, pushed, clock)

    def _risk_on_signals(self, sigs, n, clock):
        out = self._out["orders"]
        h64, b8, bells, addr = self._ring_args["orders"]
        r = self.risk
        k, pushed = self._risk_step(sigs, n, r.limits, r.book, r.sectors, r.account_limits, r.account, r.control,
                                    r.oo_ids, r.oo_vals, r.params, r.tmp, self.ctl, self.m, out.recs, r.denials,
                                    r.den_n, out.i64, out.words, RISK, h64, b8, bells, addr, out.u8, clock)
        if r.den_n[0]:
            self._journal_denials()
        self._published("orders", out, k, pushed, clock)

    def _journal_denials(self) -> None:
        """Hand the step's denials to the journal (an overwrite ring: never blocks the gate)."""
        r = self.risk
        ring = self.out_rings.get("denials")
        if ring is not None:
            ring_push(ring.h64, ring.b8, self.bells.words, self.bells.addr, r.denials.view(np.uint8), int(r.den_n[0]))
        r.den_n[0] = 0

    def _risk_on_exec(self, reports, n, clock):
        r = self.risk
        self._on_exec(reports, n, r.oo_ids, r.oo_vals, r.limits, r.book, r.sectors, r.account, self.m)

    def _router_on_orders(self, orders, n, clock):
        r = self.router
        now = time.monotonic_ns() if clock < 0 else clock
        sent, k = r.on_orders(orders, n, now)  # routed, and the reports already due collected
        self.ctl[stage_word(ROUTER, 0) + S_EVENTS_IN] += n
        ring = self.out_rings.get("arrivals")
        if sent and ring is not None:  # for the journal's TCA; an overwrite ring never blocks
            ring_push(ring.h64, ring.b8, self.bells.words, self.bells.addr, r.arrivals.view(np.uint8),
                      min(sent, len(r.arrivals)))
        self._router_publish(k, clock)

    def _router_poll(self, now: int, clock: int) -> int:
        """Collect the venues' due exec reports and send them on to risk."""
        return self._router_publish(self.router.poll(now), clock)

    def _router_publish(self, k: int, clock: int) -> int:
        """Send the router's ``reports[:k]`` on to risk."""
        if k:
            out = self._reports
            h64, b8, bells, addr = self._ring_args["exec"]
            k, pushed = self._publish(out.i64, out.words, k, self.m, self.ctl, ROUTER, 0, h64, b8, bells, addr,
                                      out.u8, clock)
            self._published("exec", out, k, pushed, clock)
        return k

    # -- plumbing ----------------------------------------------------------------------
    def _published(self, kind: str, out: _Out, k: int, pushed: int, clock: int) -> None:
        """After a step: finish a push a full lossless ring refused, hand on to local consumers."""
        if pushed < k:  # the consumer is behind (or restarting): wait, push the rest
            self._push(self.out_rings[kind], out.u8[pushed * out.recs.dtype.itemsize :], k - pushed)
        if k:
            for handler in self.handlers[kind]:
                handler(out.recs, k, clock)

    def _push(self, ring: Ring, u8: np.ndarray, n: int) -> None:
        size = ring.dtype.itemsize
        done = ring_push(ring.h64, ring.b8, self.bells.words, self.bells.addr, u8, n)
        while done < n:  # lossless ring full: the consumer is behind (or restarting)
            if self.stopping or self.control.shutdown_requested:
                return
            os.sched_yield()
            done += ring_push(ring.h64, ring.b8, self.bells.words, self.bells.addr, u8[done * size :], n - done)

    # -- lifecycle ---------------------------------------------------------------------
    def warm(self) -> None:
        """Compile or load from the cache every kernel this process will call, bind each
        to its compiled entry point (steps.bind), and run the ONNX session, without
        touching live state: scratch copies, no ring pushes, n = 0."""
        m, ctl = np.zeros_like(self.m), np.zeros_like(self.ctl)
        no_h64, no_b8 = np.zeros(0, np.int64), np.zeros(0, np.uint8)
        bells = (self.bells.words, self.bells.addr)
        md = np.zeros(1, dtypes.MD_DTYPE)
        scratch = {kind: _Out(kind, 2) for kind in EDGES}

        def bound(dispatcher, *args):
            ep = steps.bind(dispatcher, *args)
            ep(*args)
            return ep

        self._ring_pop, self._any_pending = ring_pop, any_pending
        if self.inputs:
            _, ring, ci, buf = self.inputs[0]
            self._ring_pop = bound(ring_pop, ring.h64, ring.b8, ci, buf.u8, 0)
            self._any_pending = bound(any_pending, self._pending_h64s, self._pending_cis)
        for kind, ring in self.out_rings.items():
            ring_push(ring.h64, ring.b8, *bells, no_b8, 0)
        bell_words = np.zeros_like(self.bells.words)  # arm/disarm on a scratch copy
        self._arm = bound(arm, bell_words, self.index)
        self._disarm = bound(disarm, bell_words, self.index)
        self._sleep = steps.bind(sleep, self.bells.words, self.bells.addr, self.index, 0, self.sleeper.timespec_addr)
        o = scratch["md"]
        self._publish = bound(steps.signals_publish, o.i64, o.words, 0, m, ctl, INFER, 0, no_h64, no_b8, *bells,
                              o.u8, -1)
        if self.feed is not None:
            self._feed_step = bound(steps.feed_step, self.feed.events, 0, 0, o.recs, 0, 0, o.i64, o.words, m, ctl,
                                    FEED, no_h64, no_b8, *bells, o.u8, -1)
        if "features" in self.stages:
            o = scratch["features"]
            self._features_step = bound(steps.features_step, md, 1, qf.new_state(1), 0.1, 0.01, True, o.recs, o.i64,
                                        o.words, m, ctl, FEATURES, no_h64, no_b8, *bells, o.u8, -1)
        if "infer" in self.stages:
            self.infer.session.warm()
            counts, self.infer.drift_counts = self.infer.drift_counts, None  # warm-up rows are not live data
            self.infer.bind(scratch["features"].recs, scratch["signals"].recs)
            self.infer.on_rows(scratch["features"].recs, 2, scratch["signals"].recs, 0)
            self.infer.drift_counts = counts
            if counts is not None:
                self.infer.bind(scratch["features"].recs, scratch["signals"].recs)
            self._last_rows, self._rehearsal_out = scratch["features"].recs, scratch["signals"].recs
        if "risk" in self.stages:
            r = self.risk
            a = [x.copy() for x in (r.limits, r.book, r.sectors, r.account_limits, r.account, r.control, r.oo_ids,
                                    r.oo_vals, r.dd_state, r.dd_idx, r.win_ts, r.win_eq)]
            limits, book, sectors, account_limits, account, control, oo_ids, oo_vals, dds, ddi, wts, weq = a
            o = scratch["orders"]
            self._risk_step = bound(steps.risk_step, scratch["signals"].recs, 1, limits, book, sectors,
                                    account_limits, account, control, oo_ids, oo_vals, r.params, r.tmp, ctl, m,
                                    o.recs, r.denials.copy(), np.zeros(1, np.int64), o.i64, o.words, RISK, no_h64,
                                    no_b8, *bells, o.u8, -1)
            self._on_exec = bound(rk.on_exec, scratch["exec"].recs, 1, oo_ids, oo_vals, limits, book, sectors,
                                  account, m)
            self._on_marks = bound(rk.on_marks, md, 1, limits, book, sectors, account)
            self._watch = bound(rk.watch, 0, account_limits, account, control, dds, ddi, wts, weq, r.thresholds,
                                r.params)
            self._flatten = bound(rk.flatten, 0, limits, book, sectors, account, control, oo_ids, oo_vals, r.f_inst,
                                  r.f_side, r.f_qty, o.recs, 0)
            self._resume = bound(rk.operator_resume, control, account, 0)
            rk.publish_gauges(account, np.zeros(mx.N_GAUGES))
        if "router" in self.stages:
            self.router.warm(md)  # n = 0: every router kernel, without touching a venue or the store
        if self._drain_kind is not None:
            self._drain, self._drain_args = self._bind_drain(no_h64, no_b8, bells, m, ctl)
        if self._fused:
            self._bind_fused(m, ctl)

    def _bind_fused(self, m, ctl) -> None:
        """steps.fused_front / fused_back with this process's live arguments, bound and warmed
        with n = 0 on scratch counters and copies of the state (nothing emitted or pushed)."""
        s, core, r = self.infer.session, self.infer, self.risk
        md, rows, sigs, orders = (self._out[k] for k in ("md", "features", "signals", "orders"))
        drift, edges = core.drift_arrays()
        no_drift = np.zeros((0, 0), np.int64)

        def front(m, ctl, limits, book, sectors, account, feat_state, drift_counts):
            return (self.feed.events, md.recs, md.i64, md.words, m, ctl, *self._ring_args["md"], md.u8, limits, book,
                    sectors, account, feat_state, self.alpha_fast, self.alpha_slow, self.quotes_only, rows.recs,
                    rows.i64, rows.words, *self._ring_args["features"][:2], rows.u8, s.max_batch, s.n_features, s.x,
                    drift_counts, edges)

        def back(m, ctl, gate, den_n):
            return (core.scale, core.weight_per_unit, core.weight_cap, core.min_abs_prediction, sigs.recs, sigs.i64,
                    sigs.words, m, ctl, *self._ring_args["signals"], sigs.u8, *gate, orders.recs, r.denials, den_n,
                    orders.i64, orders.words, *self._ring_args["orders"][:2], orders.u8)

        marks = (r.limits, r.book, r.sectors, r.account)
        gate = (r.limits, r.book, r.sectors, r.account_limits, r.account, r.control, r.oo_ids, r.oo_vals, r.params,
                r.tmp)
        self._front_args = front(self.m, self.ctl, *marks, self.feat_state, drift)
        self._back_args = back(self.m, self.ctl, gate, r.den_n)
        head = (self.feed.pos, 0, self.feed.seq, self.feed.loops, 0)
        self._front = steps.bind(steps.fused_front, *head, *self._front_args)
        self._front(*head, *front(m, ctl, *[a.copy() for a in (*marks, self.feat_state)], no_drift))
        y = s.y[:1, 0]
        self._back = steps.bind(steps.fused_back, rows.recs, 0, y, *self._back_args)
        self._back(rows.recs, 0, y, *back(m, ctl, [a.copy() for a in gate], r.den_n.copy()))

    def _bind_drain(self, no_h64, no_b8, bells, m, ctl):
        """The compiled drain of this process and its live arguments, warmed on an empty
        ring (a zeroed header: nothing to pop, so no state is touched)."""
        live, idle = [], []
        for kind, ring, ci, buf in self.inputs:
            live += [ring.h64, ring.b8, ci, buf.u8, buf.recs]
            idle += [np.zeros(ring.h64.shape[0], np.int64), no_b8, 0, buf.u8, buf.recs]
        if self._drain_kind == "features":
            out = self._out["features"]
            h64, b8, bell_words, addr = self._ring_args["features"]
            args = [BATCH, self.feat_state, self.alpha_fast, self.alpha_slow, self.quotes_only, out.recs, out.i64,
                    out.words]
            live += [*args, self.m, self.ctl, FEATURES, h64, b8, bell_words, addr, out.u8]
            args[1] = self.feat_state.copy()
            idle += [*args, m, ctl, FEATURES, no_h64, no_b8, *bells, out.u8]
            dispatcher = steps.features_drain
        elif self._drain_kind == "infer":
            s, core = self.infer.session, self.infer
            drift = core.drift_arrays()
            live += [s.max_batch, s.n_features, s.x, *drift, self.bells.words, self.bells.addr]
            idle += [s.max_batch, s.n_features, s.x, np.zeros((0, 0), np.int64), drift[1], *bells]
            dispatcher = steps.infer_drain
            out = self._out["signals"]
            h64, b8, bell_words, addr = self._ring_args["signals"]
            common = (core.scale, core.weight_per_unit, core.weight_cap, core.min_abs_prediction, out.recs, out.i64,
                      out.words)
            self._signals_args = (*common, self.m, self.ctl, INFER, h64, b8, bell_words, addr, out.u8)
            y = s.y[:1, 0]
            rows = self.inputs[0][3].recs
            self._signals_step = steps.bind(steps.signals_step, rows, 0, y, *common, m, ctl, INFER, no_h64, no_b8,
                                            *bells, out.u8)
            self._signals_step(rows, 0, y, *common, m, ctl, INFER, no_h64, no_b8, *bells, out.u8)
        elif self._drain_kind == "risk":
            r, out = self.risk, self._out["orders"]
            h64, b8, bell_words, addr = self._ring_args["orders"]
            state = [r.limits, r.book, r.sectors, r.account_limits, r.account, r.control, r.oo_ids, r.oo_vals,
                     r.params, r.tmp]
            tail = [out.recs, r.denials, r.den_n, out.i64, out.words, RISK]
            live += [BATCH, *state, self.ctl, self.m, *tail, h64, b8, bell_words, addr, out.u8]
            idle += [BATCH, *[a.copy() for a in state], ctl, m, *tail, no_h64, no_b8, *bells, out.u8]
            dispatcher = steps.risk_drain
        else:
            rt_ = self.router
            arrivals = self.out_rings.get("arrivals")
            arr = (arrivals.h64, arrivals.b8) if arrivals is not None else (no_h64, no_b8)
            out = self._reports
            h64, b8, bell_words, addr = self._ring_args["exec"]
            live += [BATCH, rt_.state, self.ctl, ROUTER, *arr, rt_.arrivals.view(np.uint8), out.i64, out.words,
                     out.u8, h64, b8, bell_words, addr]
            idle += [BATCH, rt_.state, ctl, ROUTER, no_h64, no_b8, rt_.arrivals.view(np.uint8), out.i64, out.words,
                     out.u8, no_h64, no_b8, *bells]
            dispatcher = steps.router_drain
        head = (False, self.sleeper.timespec_addr, self.index)  # warmed without waiting
        ep = steps.bind(dispatcher, *head, *idle)
        ep(*head, *idle)
        return ep, tuple(live)

    def mark_ready(self, ready: bool) -> None:
        for s in self.stages:
            st = STAGE_INDEX[s]
            self.control.set_stage(st, S_PID, os.getpid() if ready else 0)
            self.control.set_stage(st, S_READY, 1 if ready else 0)
            self.control.set_stage(st, S_HEARTBEAT, time.monotonic_ns())

    def install_signal_handlers(self) -> None:
        def stop(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self) -> int:
        """The loop.  Returns 0 on a requested stop."""
        self._sim_now = 0
        feed = self.feed
        md_out = self._out["md"]
        inputs = self.inputs
        next_housekeeping = 0
        ticks = 0
        spin, block = self.wait == "spin", self.wait == "block"
        bells, bells_addr, idx = self.bells.words, self.bells.addr, self.index
        sleeper = self.sleeper
        router = self.router if "router" in self.stages else None
        md_ring = self._ring_args["md"]
        md_handlers = self.handlers["md"]
        pop = self._ring_pop
        drain = self._drain if self._drain_kind is not None else None
        drain_args = self._drain_args if drain is not None else ()
        drained = getattr(self, f"_{self._drain_kind}_drained", None)
        ts_addr = sleeper.timespec_addr
        real = -1  # the steps read CLOCK_MONOTONIC themselves
        go = self.simulated or feed is None
        fused = self._fused
        keep_warm = self._keep_warm_ns
        warm_at = 0  # when this process last did work or rehearsed (keep-warm's clock)
        while not self.stopping:
            busy = False
            if not go:  # the feed holds its first tick until every stage is warm
                go = all(self.control.stage(i, S_READY) for i in range(len(STAGE_INDEX)))
            if feed is not None and go:
                now = self._sim_now if self.simulated else time.monotonic_ns()
                if self.simulated and feed.pos < len(feed.events):
                    self._sim_now = now = int(feed.events["ts_exch"][feed.pos])
                n = feed.take(now, BATCH)
                if n:
                    busy = True
                    ticks += n
                    clock = now if self.simulated else real
                    if fused:
                        self._fused_tick(n)
                    else:
                        k, pushed = self._feed_step(feed.events, feed.pos, n, md_out.recs, feed.seq,
                                                    time.time_ns(), md_out.i64, md_out.words, self.m, self.ctl,
                                                    FEED, *md_ring, md_out.u8, clock)
                        feed.advance(n)
                        self.ctl[self._feed_words + FEED_POS] = feed.pos
                        self.ctl[self._feed_words + FEED_SEQ] = feed.seq
                        self.ctl[self._feed_words + FEED_LOOPS] = feed.loops
                        for handler in md_handlers:
                            handler(md_out.recs, n, clock)
                    if self.bench_ticks and ticks >= self.bench_ticks:
                        feed = self.feed = None
                elif self.simulated and feed.exhausted:
                    break  # backtest: the recording is exhausted
            if drain is not None:
                if drained(drain(False, ts_addr, idx, *drain_args)):
                    busy = True
            else:
                for kind, ring, ci, buf in inputs:
                    n = pop(ring.h64, ring.b8, ci, buf.u8, BATCH)
                    if n:
                        busy = True
                        for handler in self.handlers[kind]:
                            handler(buf.recs, n, real)
            if router is not None and router.poll_ns:  # venue latency: reports come due later
                now = self._sim_now if self.simulated else time.monotonic_ns()
                if self._router_poll(now, now if self.simulated else real):
                    busy = True
            if busy or spin or self.simulated:
                if not self.simulated or ticks & 0x3FF == 0:
                    now = time.monotonic_ns()
                    if now >= next_housekeeping:
                        self._housekeeping(now)
                        next_housekeeping = now + HOUSEKEEPING_NS
                    if keep_warm:
                        if busy:
                            warm_at = now
                        elif now - warm_at >= keep_warm:
                            warm_at = self._rehearse()
                continue
            now = time.monotonic_ns()
            if now >= next_housekeeping:
                self._housekeeping(now)
                next_housekeeping = now + HOUSEKEEPING_NS
            if keep_warm and now - warm_at >= keep_warm:
                warm_at = self._rehearse()
                continue  # a tick may have come meanwhile: look before sleeping
            if not block:
                os.sched_yield()
                continue
            # block: arm, re-check, sleep until rung or the next timed event
            timeout = MAX_WAIT_NS if go else 5_000_000
            if feed is not None and go:
                d = feed.next_due(now)
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
            if drain is not None:  # sleep and drain in one compiled call (steps.*_drain)
                if drained(drain(True, ts_addr, idx, *drain_args)) and keep_warm:
                    warm_at = time.monotonic_ns()
                continue
            seq = self._arm(bells, idx)
            if inputs and self._any_pending(self._pending_h64s, self._pending_cis):
                self._disarm(bells, idx)
                continue
            self._sleep(bells, bells_addr, idx, seq, sleeper.timespec_addr)
        return 0

    # -- after a drain (steps.*_drain): finish a push a full ring refused, hand on, journal.
    # Each returns whether anything was popped.
    def _features_drained(self, result) -> bool:
        n, k, pushed = result
        if k:
            self._published("features", self._out["features"], k, pushed, -1)
        return n > 0

    def _infer_drained(self, n: int) -> bool:
        """The drain gathered ``n`` rows into the model input: run the model, size, push."""
        if n:
            rows = self.inputs[0][3].recs
            self._last_rows = rows  # what a keep-warm rehearsal replays
            k, pushed = self._signals_step(rows, n, self.infer.session.run_bound(n), *self._signals_args)
            self._published("signals", self._out["signals"], k, pushed, -1)
        return n > 0

    def _risk_drained(self, result) -> bool:
        n_md, n_sig, n_ex, k, pushed = result
        if self.risk.den_n[0]:
            self._journal_denials()
        if k:
            self._published("orders", self._out["orders"], k, pushed, -1)
        return bool(n_md or n_sig or n_ex)

    def _router_drained(self, result) -> bool:
        n_md, n, k, pushed = result
        if k:
            self._published("exec", self._reports, k, pushed, -1)
        return bool(n_md or n)

    def _fused_tick(self, n: int) -> None:
        """The feed's due batch through features, the model and the gate (steps.fused_front,
        then fused_back); the feed's resume words are written in fused_front."""
        feed = self.feed
        k = self._front(feed.pos, n, feed.seq, feed.loops, time.time_ns(), *self._front_args)
        rows = self._out["features"]
        if k > self.infer.session.max_batch:  # more rows than one model run: the handler chain
            self._published("features", rows, k, k, -1)
        elif k:
            n_orders, pushed = self._back(rows.recs, k, self.infer.session.run_bound(k), *self._back_args)
            self._last_rows = rows.recs  # what a keep-warm rehearsal replays
            if self.risk.den_n[0]:
                self._journal_denials()
            self._published("orders", self._out["orders"], n_orders, pushed, -1)
        feed.advance(n)  # after the orders left: the control block's resume words are already written

    def _rehearse(self) -> int:
        """One keep-warm run of the inference step on a scratch copy; returns when it ended."""
        self.infer.rehearse(self._last_rows, self._rehearsal_out)
        self._rehearsals += 1
        return time.monotonic_ns()

    def _housekeeping(self, now: int) -> None:
        for s in self.stages:
            self.control.set_stage(STAGE_INDEX[s], S_HEARTBEAT, now)
        if self.control.shutdown_requested:
            self.stopping = True
        if "risk" in self.stages:
            self._risk_housekeeping(now)
        if "router" in self.stages:
            self.router.housekeeping(now)
        if self._keep_warm_ns:
            self.control.set_stage(INFER, S_INFER_REHEARSALS, self._rehearsals)

    def _risk_housekeeping(self, now: int) -> None:
        """Operator requests (resume, flatten), the ladder on time alone, the status gauges."""
        r = self.risk
        requests = self.control.resume_requests
        if requests != self._resumes_seen:
            self._resumes_seen = requests
            self._resume(r.control, r.account, now)
        if not self.simulated:  # a backtest runs the ladder on simulated time, per mark
            self._watch(now, r.account_limits, r.account, r.control, r.dd_state, r.dd_idx, r.win_ts, r.win_eq,
                        r.thresholds, r.params)
        level = int(r.dd_state[D_LEVEL])
        if level != self._dd_level:  # a ladder step (up or down) since the last look
            event = (DD_EVENT_ESCALATE if level > self._dd_level else DD_EVENT_RECOVER) + level
            self._dd_level = level
            if self._alerts is not None:
                self._alerts.submit_event(event, self._ladder, now)
        if r.control[3] == 1:  # C_FLATTEN: ctl flatten, or the drawdown KILL step
            out = self._out["orders"]
            seq = int(self.ctl[stage_word(FEED, 0) + FEED_SEQ])
            k = self._flatten(seq, r.limits, r.book, r.sectors, r.account, r.control, r.oo_ids, r.oo_vals, r.f_inst,
                              r.f_side, r.f_qty, out.recs, now)
            if k:
                h64, b8, bells, addr = self._ring_args["orders"]
                k, pushed = self._publish(out.i64, out.words, k, self.m, self.ctl, RISK, 0, h64, b8, bells, addr,
                                          out.u8, -1)
                self._published("orders", out, k, pushed, -1)
            r.control[3] = 0
        rk.publish_gauges(r.account, self.metrics.gauges)
        if now >= self._next_purge:  # keep the open-order table's probe chains short
            purge_tombstones(r.oo_ids, r.oo_vals)
            self._next_purge = now + 1_000_000_000

    def close(self) -> None:
        self.mark_ready(False)
        if getattr(self, "_alerts", None) is not None:
            self._alerts.close(timeout_s=2.0)
