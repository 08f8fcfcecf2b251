"""The shell's part of a tick's path, in one file: the process loop and the compiled
compositions it calls around the cores' steps.

Every stage core has one state object and one step of one shape, ``step(state, in, n,
out, now) -> k`` (:mod:`alphad.daemon.feed.core`, :mod:`~alphad.daemon.features.core`,
:mod:`~alphad.daemon.infer.core`, :mod:`~alphad.daemon.risk.core`,
:mod:`~alphad.daemon.router.core`).  This module is the only place that puts rings around
them, written once for every path:

* ``*_publish``: one step, then :func:`publish` (stamp ``now - t_origin`` of every
  output into the stage's latency row, count records in and out in its control-block
  slot, push to the ring when the consumer lives in another process).  The feed, the
  handler chain of a process that hosts several stages, spinning processes and the
  backtest use them.
* ``*_drain``: a blocking process that hosts one stage arms its doorbell, re-checks its
  rings, sleeps, pops and runs the same step in one compiled call, so the only
  Python->compiled entry (~7 µs with cold caches after a sleep) comes before the sleep,
  off the tick's path.  Each returns ``(popped, outputs, pushed)`` (infer's returns the
  rows gathered: the loop runs the model, then :func:`infer_publish`).
* ``fused_front``/``fused_back``: the ``fused`` process takes a tick from the feed to its
  orders in two compiled calls around the model (:mod:`alphad.daemon.shell.fused`).
* :class:`Loop`: a process's loop (emit due ticks, drain, poll the router, housekeep,
  wait) and :func:`hand_on` (finish a push a full ring refused, call local consumers).

``clock`` is the injected clock: ``-1`` reads CLOCK_MONOTONIC (the daemon), any other
value is the simulated time (the backtest).  The drains and the fused pair are the
daemon's alone, so they read CLOCK_MONOTONIC.  Steps return ``(outputs, pushed)``:
``pushed < outputs`` only when a lossless ring was too full to take them all (the shell
then waits and pushes the rest).
"""
from __future__ import annotations

import ctypes
import os
import time

import numpy as np
from numba import njit

from alphad.daemon.features.core import features_step
from alphad.daemon.feed.core import CUR_LOOPS, CUR_POS, CUR_SEQ, feed_step
from alphad.daemon.infer.core import infer_gather, infer_step
from alphad.daemon.infer.trees import evaluate
from alphad.daemon.risk.core import risk_fills, risk_flatten, risk_rebalance, risk_marks, risk_step, risk_watch
from alphad.daemon.router.core import route_and_poll, router_on_md
from alphad.ipc import metrics as mx
from alphad.daemon.jit import bind
from alphad.daemon.shell.ports import drain_ports, waiter
from alphad.ipc.control import (C_EPOCH, C_FLATTEN, C_STATE, FEED_LOOPS, FEED_POS, FEED_SEQ, HALTED, S_EVENTS_IN,
                                S_EVENTS_OUT, S_READY, S_WORK, STAGE_INDEX, W_REPLAY_DONE, W_REPLAY_POLL_DONE, W_REPLAY_POLL_REQ,
                                W_REPLAY_POLL_TS, W_REPLAY_POLL_WANTED, stage_word)
from alphad.ipc.doorbell import DOORBELL_BYTES, arm, disarm, sleep
from alphad.ipc.ring import ring_pending, ring_pop, ring_push
from alphad.ipc.sync import FUTEX_WAIT, SYS_FUTEX, monotonic_ns

FEED, FEATURES, INFER, RISK, ROUTER = (STAGE_INDEX[s] for s in ("feed", "features", "infer", "risk", "router"))


@njit(cache=True, inline="always")
def _clock(clock):
    return monotonic_ns() if clock < 0 else clock


@njit(cache=True, inline="always")
def publish(p, k, n_in, clock):
    """Stamp, count and push ``p.recs[:k]`` (made from ``n_in`` inputs); ``(k, pushed)``."""
    now = _clock(clock)
    for j in range(k):
        mx.observe(p.m, p.stage, now - p.i64[j * p.words])
    p.ctl[stage_word(p.stage, S_EVENTS_IN)] += n_in
    p.ctl[stage_word(p.stage, S_EVENTS_OUT)] += k
    if p.ring_h64.shape[0] == 0 or k == 0:
        return k, k
    return k, ring_push(p.ring_h64, p.ring_b8, p.bells, p.bells_addr, p.u8, k)


@njit(cache=True)
def publish_records(p, k, n_in, clock):
    """:func:`publish` on its own (the router's reports, risk's flatten orders)."""
    return publish(p, k, n_in, clock)


@njit(cache=True, inline="always")
def _resume_words(fd, ctl):
    """The feed's cursor into its control-block slot: a restarted feed resumes there and
    never reuses a seq."""
    ctl[stage_word(FEED, FEED_POS)] = fd.cursor[CUR_POS]
    ctl[stage_word(FEED, FEED_SEQ)] = fd.cursor[CUR_SEQ]
    ctl[stage_word(FEED, FEED_LOOPS)] = fd.cursor[CUR_LOOPS]


# -- one step, then publish --------------------------------------------------------------
@njit(cache=True)
def feed_publish(fd, n, now_real, p, clock):
    feed_step(fd, n, p.recs, _clock(clock), now_real)
    res = publish(p, n, 0, clock)
    _resume_words(fd, p.ctl)
    return res


@njit(cache=True)
def features_publish(fs, md, n, p, clock):
    return publish(p, features_step(fs, md, n, p.recs, _clock(clock)), n, clock)


@njit(cache=True)
def infer_publish(st, rows, n, y, p, clock):
    """The second half of the infer step (after the shell ran the model on ``x[:n]``)."""
    return publish(p, infer_step(st, rows, n, y, p.recs, _clock(clock)), n, clock)


@njit(cache=True)
def risk_publish(rs, sigs, n, p, clock):
    return publish(p, risk_step(rs, sigs, n, p.recs, _clock(clock)), n, clock)


# -- whole wakes: a process that hosts one stage sleeps and drains in one call ------------
@njit(cache=True, inline="always")
def _wait(w, a, b, c):
    """Arm the doorbell, and sleep unless one of three input ports already has records."""
    seq = arm(w.bells, w.idx)
    if ring_pending(a.h64, a.ci) > 0 or ring_pending(b.h64, b.ci) > 0 or ring_pending(c.h64, c.ci) > 0:
        disarm(w.bells, w.idx)
    else:
        sleep(w.bells, w.bells_addr, w.idx, seq, w.timespec_addr)


@njit(cache=True, inline="always")
def _pop(q, max_n):
    return ring_pop(q.h64, q.b8, q.ci, q.u8, max_n)


@njit(cache=True)
def features_drain(wait, w, md_in, max_n, fs, p):
    """The features process's wake; returns the records popped and ``(rows, pushed)``."""
    if wait:
        _wait(w, md_in, md_in, md_in)
    n = _pop(md_in, max_n)
    if n == 0:
        return 0, 0, 0
    k, pushed = publish(p, features_step(fs, md_in.recs, n, p.recs, monotonic_ns()), n, -1)
    return n, k, pushed


@njit(cache=True)
def infer_drain(wait, w, rows_in, st):
    """The infer process's wake up to the model: pop at most one model batch of rows and
    gather them (:func:`~alphad.daemon.infer.core.infer_gather`); returns the rows popped.
    The shell runs the model and then :func:`infer_publish`."""
    if wait:
        _wait(w, rows_in, rows_in, rows_in)
    n = _pop(rows_in, st.max_batch)
    if n:
        infer_gather(st, rows_in.recs, n)
    return n


@njit(cache=True)
def risk_drain(wait, w, md_in, sig_in, ex_in, max_n, rs, p, denials):
    """The risk process's wake: marks from the (passive) market-data ring, the gate over
    the signals (its denials pushed to ``denials``, the journal's overwrite ring), then
    exec reports.  Returns the records popped and ``(orders, pushed)``."""
    if wait:
        _wait(w, sig_in, ex_in, md_in)
    n_md = _pop(md_in, max_n)
    if n_md:
        risk_marks(rs, md_in.recs, n_md)
    n_sig = _pop(sig_in, max_n)
    k = pushed = 0
    if n_sig:
        k, pushed = publish(p, risk_step(rs, sig_in.recs, n_sig, p.recs, monotonic_ns()), n_sig, -1)
        push_denials(rs, denials)
    n_ex = _pop(ex_in, max_n)
    if n_ex:
        risk_fills(rs, ex_in.recs, n_ex)
    return n_md + n_sig + n_ex, k, pushed


@njit(cache=True)
def push_denials(rs, denials):
    """The gate's denials since the last call to the journal's ring (an overwrite ring:
    never blocks the gate); ``denials`` is a port over ``rs.denials``."""
    d = rs.den_n[0]
    if d and denials.ring_h64.shape[0]:
        ring_push(denials.ring_h64, denials.ring_b8, denials.bells, denials.bells_addr, denials.u8, d)
    rs.den_n[0] = 0


@njit(cache=True)
def router_drain(wait, w, md_in, ord_in, max_n, r, arrivals, p):
    """The router process's wake (immediate execution): the quotes since its last look to
    the venues, then the orders routed (tick-to-trade stamped as each is handed over),
    their arrival quotes pushed to ``arrivals`` (the journal's overwrite ring; none when
    its ring is empty) and the due exec reports published to risk.  Returns the records
    popped and ``(reports, pushed)``."""
    if wait:
        _wait(w, ord_in, ord_in, md_in)
    n_md = _pop(md_in, max_n)
    waiting = 0
    if n_md:
        waiting = router_on_md(r, md_in.recs, n_md, monotonic_ns())  # fills the market data caused
    n = _pop(ord_in, max_n)
    if n == 0 and waiting == 0:
        return n_md, 0, 0
    sent, k = route_and_poll(ord_in.recs, n, r, monotonic_ns())
    if sent and arrivals.ring_h64.shape[0]:  # an overwrite ring: never blocks
        ring_push(arrivals.ring_h64, arrivals.ring_b8, arrivals.bells, arrivals.bells_addr, arrivals.u8,
                  min(sent, arrivals.recs.shape[0]))
    k, pushed = publish(p, k, n, -1)
    return n_md + n, k, pushed


# -- the fused process (feed, features, infer and risk in one process, real clock) --------
@njit(cache=True)
def fused_front(fd, n, now_real, md, rs, fs, rows, st):
    """Emit the feed's next ``n`` events as :func:`feed_publish` does (its resume words
    written at once), mark risk's book (before the features they trigger), run the
    features step, and gather the rows into the model input when they fit one batch.

    Returns the feature rows made; the shell runs the model over ``x[:rows]`` and then
    :func:`fused_back`, or hands a batch larger than the model's to the handler chain."""
    feed_step(fd, n, md.recs, monotonic_ns(), now_real)
    publish(md, n, 0, -1)
    _resume_words(fd, md.ctl)
    risk_marks(rs, md.recs, n)
    k, _ = publish(rows, features_step(fs, md.recs, n, rows.recs, monotonic_ns()), n, -1)
    if 0 < k <= st.max_batch:
        infer_gather(st, rows.recs, k)
    return k


@njit(cache=True)
def fused_back(st, rows, n, y, sigs, rs, orders, denials):
    """The model's predictions ``y[:n]`` of ``rows.recs[:n]`` sized (signals stay in the
    process unless ``sigs`` has a ring) and through the gate; ``(orders, pushed)``."""
    k, _ = publish(sigs, infer_step(st, rows.recs, n, y, sigs.recs, monotonic_ns()), n, -1)
    res = publish(orders, risk_step(rs, sigs.recs, k, orders.recs, monotonic_ns()), k, -1)
    push_denials(rs, denials)
    return res


# -- the backtest: every stage, one event at a time, in one compiled loop ------------------
@njit(cache=True)
def _reports_to_risk(rs, p, k, now, sink, n_sink):
    """The router's ``k`` exec reports published (counted, stamped), kept in ``sink`` from
    ``n_sink`` and applied to risk's book; returns the new sink count."""
    k, _ = publish(p, k, 0, now)
    if k:
        sink[n_sink : n_sink + k] = p.recs[:k]
        risk_fills(rs, p.recs, k)
    return n_sink + k


@njit(cache=True)
def _route_orders(r, rs, orders, ko, reports, now, sinks, n_o, n_r, n_a):
    """The backtest's ``orders.recs[:ko]`` kept, routed at ``now`` (with the quote each met)
    and their due reports applied to risk; returns the new counts kept."""
    order_sink, report_sink, arrival_sink = sinks
    order_sink[n_o : n_o + ko] = orders.recs[:ko]
    sent, kr = route_and_poll(orders.recs, ko, r, now)
    sent = min(sent, r.arrivals.shape[0])  # the router keeps one batch's arrivals
    arrival_sink[n_a : n_a + sent] = r.arrivals[:sent]
    reports.ctl[stage_word(ROUTER, S_EVENTS_IN)] += ko
    return n_o + ko, _reports_to_risk(rs, reports, kr, now, report_sink, n_r), n_a + sent


@njit(cache=True)
def backtest_events(cores, ports, model, sinks, limit, poll):
    """Up to ``limit`` events of the feed through every stage, each on its own clock and
    each to its end (fills included) before the next exists, in one compiled call: the
    ``single`` topology's handler chain (:class:`Loop` on the simulated clock) without
    Python between the steps.  The model is a compiled tree ensemble
    (:mod:`alphad.daemon.infer.trees`, ``model.runtime: compiled``).

    ``cores``: feed, features, infer, risk and router states; ``ports``: the md, feature,
    signal, order and exec ports; ``model``: ``(roots, nodes, leaves, base, y)``; ``sinks``:
    where the orders, exec reports and arrival quotes (the book each order met when handed to
    the venues, for the report's cost split) are kept for the caller (it stops with room left
    for one more event's); ``poll``: the venues have latency (reports come due later).
    Returns ``(events, orders kept, reports kept, arrivals kept)``."""
    fd, fs, st, rs, r = cores
    md, rows, sigs, orders, reports = ports
    roots, nodes, leaves, base, y = model
    order_sink, report_sink, _ = sinks
    room = min(order_sink.shape[0] - orders.recs.shape[0], report_sink.shape[0] - 2 * reports.recs.shape[0])
    events = fd.events
    done = n_o = n_r = n_a = 0
    epoch = rs.control[C_EPOCH]
    while done < limit and fd.cursor[CUR_POS] < events.shape[0] and n_o <= room and n_r <= room:
        if rs.control[C_STATE] == HALTED and rs.control[C_EPOCH] != epoch:
            break  # halted by the last event: the caller cancels working orders before the next
        now = events[fd.cursor[CUR_POS]].ts_exch
        feed_step(fd, 1, md.recs, now, now)
        publish(md, 1, 0, now)
        _resume_words(fd, md.ctl)
        done += 1
        # the market data's consumers in the handler chain's order: router, risk, features
        # fills the market data caused (a resting order, a bar) reach risk when the event is
        # done, as the process loop and the replay's feed ask the router to poll then
        waiting = router_on_md(r, md.recs, 1, now)
        risk_marks(rs, md.recs, 1)
        risk_watch(rs, now)
        if rs.control[C_FLATTEN] == 1:  # the drawdown KILL: flatten at the mark that struck it
            ko, _ = publish(orders, risk_flatten(rs, orders.recs, now), 0, now)
            rs.control[C_FLATTEN] = 0
            if ko:
                n_o, n_r, n_a = _route_orders(r, rs, orders, ko, reports, now, sinks, n_o, n_r, n_a)
        ko, _ = publish(orders, risk_rebalance(rs, orders.recs, now), 0, now)  # sector trims, through the gate
        rs.den_n[0] = 0
        if ko:
            n_o, n_r, n_a = _route_orders(r, rs, orders, ko, reports, now, sinks, n_o, n_r, n_a)
        k, _ = publish(rows, features_step(fs, md.recs, 1, rows.recs, now), 1, now)
        j = 0
        while j < k:  # rows in model batches
            m = min(k - j, st.max_batch)
            batch = rows.recs[j : j + m]
            infer_gather(st, batch, m)
            evaluate(st.x, m, roots, nodes, leaves, base, y)
            ks, _ = publish(sigs, infer_step(st, batch, m, y, sigs.recs, now), m, now)
            ko, _ = publish(orders, risk_step(rs, sigs.recs, ks, orders.recs, now), ks, now)
            rs.den_n[0] = 0  # no journal in a backtest
            if ko:
                n_o, n_r, n_a = _route_orders(r, rs, orders, ko, reports, now, sinks, n_o, n_r, n_a)
            j += m
        if poll or waiting:  # venue latency, or fills the market data caused: the reports due by now
            _, kr = route_and_poll(orders.recs, 0, r, now)
            n_r = _reports_to_risk(rs, reports, kr, now, report_sink, n_r)
    return done, n_o, n_r, n_a


# -- the process loop ---------------------------------------------------------------------
HOUSEKEEPING_NS = 20_000_000
MAX_WAIT_NS = 50_000_000
#: What the stage a blocking process drains emits.
DRAIN_OUTPUT = {"features": "features", "infer": "signals", "risk": "orders", "router": "exec"}


@njit(cache=True)
def any_pending(h64s, cis):
    """True when any input ring has records for this process (checked after arming)."""
    for j in range(len(h64s)):
        if ring_pending(h64s[j], cis[j]) > 0:
            return True
    return False


#: How long a stage waits before pushing again into a full lossless ring (its consumer is
#: behind or restarting).
FULL_RING_BACKOFF_S = 100e-6


def wait_for_room(shell) -> bool:
    """A lossless ring this process pushes to is full (its consumer is behind or
    restarting): beat the heartbeat and back off; False once the process is stopping."""
    if shell.stopping or shell.control.shutdown_requested:
        return False
    shell.beat(time.monotonic_ns())  # waiting on a consumer is not being frozen
    # sleep, not sched_yield: at SCHED_FIFO a yield gives the CPU only to tasks of the
    # same priority, so a stage spinning here starved the lower ones on its CPU (the
    # feed, a restarting consumer warming up) until the watchdog killed them
    time.sleep(FULL_RING_BACKOFF_S)
    return True


def hand_on(shell, kind: str, k: int, pushed: int, clock: int) -> None:
    """After a step: finish a push a full lossless ring refused, hand on to local consumers."""
    recs = shell.bufs[kind]
    if pushed < k:  # the consumer is behind (or restarting): wait, push the rest
        ring, bells, size = shell.out_rings[kind], shell.bells, recs.dtype.itemsize
        u8, n, done = recs.view(np.uint8)[pushed * size :], k - pushed, 0
        while done < n:
            done += ring_push(ring.h64, ring.b8, bells.words, bells.addr, u8[done * size :], n - done)
            if done < n and not wait_for_room(shell):
                return
    if k:
        for handler in shell.handlers[kind]:
            handler(recs, k, clock)


_libc_syscall = None


def sleep_releasing_gil(bells, bells_addr, idx, seq, timespec_addr):
    """:func:`~alphad.ipc.doorbell.sleep` through ctypes, which lets go of the GIL while it
    waits: the process of a live feed has a network thread (a compiled wait holds the GIL,
    and that thread would only run between two sleeps)."""
    global _libc_syscall
    if _libc_syscall is None:
        f = ctypes.CDLL(None, use_errno=True).syscall
        f.restype, f.argtypes = ctypes.c_long, [ctypes.c_long] * 5
        _libc_syscall = f
    r = _libc_syscall(SYS_FUTEX, bells_addr + idx * DOORBELL_BYTES, FUTEX_WAIT, int(seq), timespec_addr)
    bells[idx * (DOORBELL_BYTES // 4) + 1] = 0
    return r


class Loop:
    """The loop of one :class:`~alphad.daemon.shell.runner.ProcessRunner`, its compiled
    ring and doorbell calls bound while warming (on scratch copies: nothing armed).

    ``drainer``: the one stage adapter of a blocking process that hosts one stage; its
    ``DRAIN`` composition is bound here, warmed on idle ports (``w``: the warm-up's
    scratch outputs) and then called on the live ones."""

    def __init__(self, shell, w, drainer=None):
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
        #: ``on_event(ts)``, called on the simulated clock before each event is emitted (the
        #: backtest's day-end samples and progress); None: nothing is called.
        self.on_event = None
        # A lockstep replay: each pass over the inputs moves this process's work word, the
        # records' own time is the clock, and the feed waits for every stage (shell/lockstep.py).
        self._work = stage_word(STAGE_INDEX[shell.stages[0]], S_WORK) if shell.replay else -1
        self._lockstep = None
        # a replay's router polls its venues when the feed asks, between two events, never on its own
        if shell.replay:
            self._drain_inputs = self._drain_inputs_replay
        self._replay_router = shell.replay and "router" in shell.adapters
        self._polls_done = int(shell.ctl[W_REPLAY_POLL_DONE])
        if self._replay_router:
            shell.ctl[W_REPLAY_POLL_WANTED] = shell.adapters["router"].wants_poll
        if shell.replay and "feed" in shell.adapters:
            from alphad.daemon.shell.lockstep import Lockstep

            self._lockstep = Lockstep(shell)
        self.drain = None if drainer is None else self._bind_drain(drainer, w)
        # a live feed's network thread wakes this process (its doorbell) and needs the GIL meanwhile
        feed = shell.adapters.get("feed")
        self._live = feed if feed is not None and feed.live else None
        if self._live is not None:
            self._sleep = sleep_releasing_gil

    def _bind_drain(self, a, w):
        """``drain(wait) -> busy``: one wake of the drainer's stage in one compiled call."""
        shell = self.shell
        ts_addr = shell.sleeper.timespec_addr
        idle = (False, waiter(shell.bells, shell.index, ts_addr), *a.drain_args(drain_ports(a, shell, live=False), w))
        ep = bind(a.DRAIN, *idle)
        ep(*idle)
        live = (waiter(shell.bells, shell.index, ts_addr), *a.drain_args(drain_ports(a, shell, live=True), None))
        out = DRAIN_OUTPUT[a.name]
        if a.name == "infer":  # gather, the model, then the signals step
            port, rows = a.port, shell.in_bufs["features"]
            publish_signals = a.publish
            model = []

            def bind_model():  # and again after a model swap (ctl reload): the new state and session
                model[:] = [(live[0], *a.drain_args(drain_ports(a, shell, live=True), None)), a.state, a.session]
            bind_model()
            a.rebind = bind_model

            def drain(wait):
                args, state, session = model
                n = ep(wait, *args)
                if n:
                    a.last_rows = rows  # what a keep-warm rehearsal replays
                    k, pushed = publish_signals(state, rows, n, session.run_bound(n), port, -1)
                    if k:
                        hand_on(shell, out, k, pushed, -1)
                return n > 0
            return drain

        def drain(wait):
            popped, k, pushed = ep(wait, *live)
            if k:
                hand_on(shell, out, k, pushed, -1)
            return popped > 0
        return drain

    def _emit_due(self, feed) -> int:
        """Emit what the feed has due; returns how many events (0: none).

        On the simulated clock (the backtest) one event at a time, at its own time: every
        stage, the venues included, sees event ``i`` and what it caused before event
        ``i + 1`` exists.  A batch would let the venues' books take in events after the one
        a decision was made on, before its order arrives (look-ahead)."""
        shell = self.shell
        core = feed.core
        now = self.sim_now if shell.simulated else time.monotonic_ns()
        if shell.simulated and core.pos < len(core.events):
            self.sim_now = now = int(core.events["ts_exch"][core.pos])
            if self.on_event is not None:
                self.on_event(now)
        n = core.take(now, 1 if shell.simulated else shell.batch)
        if n:
            if shell.fused_tick is not None:
                shell.fused_tick(n)
            else:
                clock = now if shell.simulated else -1
                k, pushed = feed.publish(core.state, n, time.time_ns(), feed.port, clock)
                hand_on(shell, "md", k, pushed, clock)
        return n

    def _replay_poll(self, router) -> bool:
        """The poll the replay's feed asked for (see shell/lockstep.py); False: none asked."""
        ctl, work = self.shell.ctl, self._work
        request = int(ctl[W_REPLAY_POLL_REQ])
        if request == self._polls_done:
            return False
        ctl[work] += 1
        if router.wants_poll:
            t = int(ctl[W_REPLAY_POLL_TS])
            router.poll(t, t)
        ctl[W_REPLAY_POLL_WANTED] = router.wants_poll
        ctl[work] += 1
        self._polls_done = request
        ctl[W_REPLAY_POLL_DONE] = request
        return True

    def _drain_inputs(self) -> bool:
        busy = False
        for kind, ring, ci, buf, handlers in self._inputs:
            n = self._pop(ring.h64, ring.b8, ci, buf.view(np.uint8), self.shell.batch)
            if n:
                busy = True
                for handler in handlers:
                    handler(buf, n, -1)
        return busy

    def _drain_inputs_replay(self) -> bool:
        """:meth:`_drain_inputs` in a lockstep replay: the pass moves this process's work
        word (odd while popping, stepping, handing on), and the records' time (one event's)
        is the clock."""
        busy, ctl, work = False, self.shell.ctl, self._work
        ctl[work] += 1
        for kind, ring, ci, buf, handlers in self._inputs:
            n = self._pop(ring.h64, ring.b8, ci, buf.view(np.uint8), self.shell.batch)
            if n:
                busy = True
                self.sim_now = clock = int(buf["t_origin"][0])  # also this process's housekeeping clock
                for handler in handlers:
                    handler(buf, n, clock)
        if self._replay_router:  # before the pass ends: the feed reads it once all is done
            ctl[W_REPLAY_POLL_WANTED] = self.shell.adapters["router"].wants_poll
        ctl[work] += 1
        return busy

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self._live is not None:
                self._live.close()

    def _run(self) -> int:
        shell = self.shell
        feed = shell.adapters.get("feed")
        router = shell.adapters.get("router")
        infer = shell.adapters.get("infer")
        keep_warm = infer.keep_warm_ns if infer is not None else 0
        spin, block, simulated = shell.wait == "spin", shell.wait == "block", shell.simulated
        drain = self.drain
        bells, idx, sleeper = shell.bells, shell.index, shell.sleeper
        lockstep, replay_router = self._lockstep, self._replay_router
        go = (simulated and not shell.replay) or feed is None
        # the backtest never waits; a replay's processes wait as the daemon's do
        never_wait = simulated and not shell.replay
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
                    if lockstep is not None:  # every stage done with it before the next
                        lockstep.wait(lambda: shell.stopping, self._drain_inputs)
                        if shell.ctl[W_REPLAY_POLL_WANTED]:
                            lockstep.poll_router(self.sim_now, lambda: shell.stopping, self._drain_inputs)
                    if shell.bench_ticks and ticks >= shell.bench_ticks:
                        feed = None
                elif simulated and feed.core.exhausted and not feed.next_chunk():
                    if lockstep is not None:
                        shell.ctl[W_REPLAY_DONE] = 1
                    break  # backtest or replay: the recording is exhausted
            if drain is not None:
                busy = drain(False) or busy
            elif self._inputs:
                busy = self._drain_inputs() or busy
            if replay_router:
                busy = self._replay_poll(router) or busy
            elif router is not None and router.wants_poll:  # venue latency, or fills the market data caused
                now = self.sim_now if simulated else time.monotonic_ns()
                if router.poll(now, now if simulated else -1):
                    busy = True
            if busy or spin or never_wait:
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
            if (self._inputs and self._any_pending(self._h64s, self._cis)) or (
                    replay_router and shell.ctl[W_REPLAY_POLL_REQ] != self._polls_done) or (
                    self._live is not None and self._live.core.ready()):
                self._disarm(bells.words, idx)
                continue
            self._sleep(bells.words, bells.addr, idx, seq, sleeper.timespec_addr)
        return 0
