"""Compositions over the cores' steps: ring I/O, latency stamps and counters around them.

Every stage core has one state object and one step of one shape, ``step(state, in, n,
out, now) -> k`` (:mod:`alphad.daemon.feed.core`, :mod:`~alphad.daemon.features.core`,
:mod:`~alphad.daemon.infer.core`, :mod:`~alphad.daemon.risk.core`,
:mod:`~alphad.daemon.router.core`).  This module is the only place that puts rings around
them, written once for every path:

* ``*_publish``: one step, then :func:`publish` (stamp ``now - t_origin`` of every
  output into the stage's latency row, count records in and out in its control-block
  slot, push to the ring when the consumer lives in another process).  The handler chain
  of a process that hosts several stages, spinning processes and the backtest use them.
* ``*_drain``: a blocking process that hosts one stage arms its doorbell, re-checks its
  rings, sleeps, pops and runs the same step in one compiled call, so the only
  Python->compiled entry (~7 µs with cold caches after a sleep) comes before the sleep,
  off the tick's path.
* ``fused_front``/``fused_back``: the ``fused`` process takes a tick from the feed to its
  orders in two compiled calls around the model.

``clock`` is the injected clock: ``-1`` reads CLOCK_MONOTONIC (the daemon), any other
value is the simulated time (the backtest).  The drains and the fused pair are the
daemon's alone, so they read CLOCK_MONOTONIC.  Steps return ``(outputs, pushed)``:
``pushed < outputs`` only when a lossless ring was too full to take them all (the shell
then waits and pushes the rest).
"""
from __future__ import annotations

from numba import njit

from alphad.daemon.features.core import features_step
from alphad.daemon.feed.core import CUR_LOOPS, CUR_POS, CUR_SEQ, feed_step
from alphad.daemon.infer.core import infer_gather, infer_step
from alphad.daemon.risk.core import risk_fills, risk_marks, risk_step
from alphad.daemon.router.core import route_and_poll, router_on_md
from alphad.ipc import metrics as mx
from alphad.ipc.control import FEED_LOOPS, FEED_POS, FEED_SEQ, S_EVENTS_IN, S_EVENTS_OUT, STAGE_INDEX, stage_word
from alphad.ipc.doorbell import arm, disarm, sleep
from alphad.ipc.ring import ring_pending, ring_pop, ring_push
from alphad.ipc.sync import monotonic_ns

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
def risk_drain(wait, w, md_in, sig_in, ex_in, max_n, rs, p):
    """The risk process's wake: marks from the (passive) market-data ring, the gate over
    the signals, then exec reports.  Returns ``(md, signals, reports)`` popped and
    ``(orders, pushed)``."""
    if wait:
        _wait(w, sig_in, ex_in, md_in)
    n_md = _pop(md_in, max_n)
    if n_md:
        risk_marks(rs, md_in.recs, n_md)
    n_sig = _pop(sig_in, max_n)
    k = pushed = 0
    if n_sig:
        k, pushed = publish(p, risk_step(rs, sig_in.recs, n_sig, p.recs, monotonic_ns()), n_sig, -1)
    n_ex = _pop(ex_in, max_n)
    if n_ex:
        risk_fills(rs, ex_in.recs, n_ex)
    return n_md, n_sig, n_ex, k, pushed


@njit(cache=True)
def router_drain(wait, w, md_in, ord_in, max_n, r, arrivals, p):
    """The router process's wake (immediate execution): the quotes since its last look to
    the venues, then the orders routed (tick-to-trade stamped as each is handed over),
    their arrival quotes pushed to ``arrivals`` (the journal's overwrite ring; none when
    its ring is empty) and the due exec reports published to risk.  Returns ``(md,
    orders)`` popped and ``(reports, pushed)``."""
    if wait:
        _wait(w, ord_in, ord_in, md_in)
    n_md = _pop(md_in, max_n)
    if n_md:
        router_on_md(r, md_in.recs, n_md, monotonic_ns())
    n = _pop(ord_in, max_n)
    if n == 0:
        return n_md, 0, 0, 0
    sent, k = route_and_poll(ord_in.recs, n, r, monotonic_ns())
    if sent and arrivals.ring_h64.shape[0]:  # an overwrite ring: never blocks
        ring_push(arrivals.ring_h64, arrivals.ring_b8, arrivals.bells, arrivals.bells_addr, arrivals.u8,
                  min(sent, arrivals.recs.shape[0]))
    k, pushed = publish(p, k, n, -1)
    return n_md, n, k, pushed


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
def fused_back(st, rows, n, y, sigs, rs, orders):
    """The model's predictions ``y[:n]`` of ``rows.recs[:n]`` sized (signals stay in the
    process unless ``sigs`` has a ring) and through the gate; ``(orders, pushed)``."""
    k, _ = publish(sigs, infer_step(st, rows.recs, n, y, sigs.recs, monotonic_ns()), n, -1)
    return publish(orders, risk_step(rs, sigs.recs, k, orders.recs, monotonic_ns()), k, -1)
