"""One ``@njit`` call per stage step: core work, latency stamp, counters and ring push.

Calling Numba from Python costs ~0.4 µs plus ~0.1 µs per array argument, and
every Python line between calls costs more; a stage that made five small calls
per tick spent more time in glue than in its core.  Each function here does a
stage's whole step in compiled code:

1. run the core on the input batch (``on_md_batch``, ``on_signals``, ...);
2. read CLOCK_MONOTONIC and stamp ``now - t_origin`` of every output record
   into the stage's latency row;
3. count records in and out in the stage's control-block slot;
4. push the outputs to the ring (when the consumer lives in another process;
   ``ring_h64`` is empty otherwise) and ring the consumers' doorbells.

``clock`` is the injected clock: ``-1`` reads CLOCK_MONOTONIC inside the step (the
daemon), any other value is the simulated time (the backtest).

They return ``(outputs, pushed)``: ``pushed < outputs`` only when a lossless ring
was too full to take them all (the shell then waits and pushes the rest).
The cores stay transport-agnostic; only this module knows about rings.
"""
from __future__ import annotations

from numba import njit, typeof

from alphad.ipc import metrics as mx
from alphad.ipc.control import S_EVENTS_IN, S_EVENTS_OUT, STAGE_INDEX
from alphad.ipc.doorbell import arm, disarm, sleep
from alphad.ipc.ring import ring_pending, ring_pop, ring_push
from alphad.ipc.sync import monotonic_ns
from alphad.kernels.quote_features import on_md_batch

from alphad.daemon.risk import core as rk
from alphad.daemon.feed.core import _emit as feed_emit
from alphad.daemon.infer.core import count_drift, gather_rows, size_signals
from alphad.daemon.router.venues.paper import _state_on_md as venues_on_md
from alphad.daemon.router.core import route_and_poll

_STAGE_BASE = 64
_STAGE_WORDS = 16
FEED, FEATURES, INFER, RISK = (STAGE_INDEX[s] for s in ("feed", "features", "infer", "risk"))
# feed resume words in the feed's stage slot of the control block (survive a feed restart)
FEED_POS, FEED_SEQ, FEED_LOOPS = 8, 9, 10


@njit(cache=True, inline="always")
def _publish(out_i64, words, k, m, row, ctl, stage, n_in, ring_h64, ring_b8, bells, bells_addr, out_u8, clock):
    now = monotonic_ns() if clock < 0 else clock
    for j in range(k):
        mx.observe(m, row, now - out_i64[j * words])
    base = _STAGE_BASE + _STAGE_WORDS * stage
    ctl[base + S_EVENTS_IN] += n_in
    ctl[base + S_EVENTS_OUT] += k
    if ring_h64.shape[0] == 0 or k == 0:
        return k, k
    return k, ring_push(ring_h64, ring_b8, bells, bells_addr, out_u8, k)


@njit(cache=True, inline="always")
def _clock(clock):
    return monotonic_ns() if clock < 0 else clock


@njit(cache=True)
def feed_step(events, pos, n, out, seq0, now_real, out_i64, words, m, ctl, stage,
              ring_h64, ring_b8, bells, bells_addr, out_u8, clock):
    """Emit ``events[pos:pos+n]`` stamped with t_origin = now (after parse)."""
    feed_emit(events, pos, n, out, seq0, _clock(clock), now_real)
    return _publish(out_i64, words, n, m, stage, ctl, stage, 0, ring_h64, ring_b8, bells, bells_addr, out_u8, clock)


@njit(cache=True)
def features_step(md, n, state, alpha_fast, alpha_slow, quotes_only, out, out_i64, words, m, ctl, stage,
                  ring_h64, ring_b8, bells, bells_addr, out_u8, clock):
    k = on_md_batch(md, n, state, alpha_fast, alpha_slow, quotes_only, out, _clock(clock))
    return _publish(out_i64, words, k, m, stage, ctl, stage, n, ring_h64, ring_b8, bells, bells_addr, out_u8, clock)


@njit(cache=True)
def signals_publish(out_i64, words, k, m, ctl, stage, n_in, ring_h64, ring_b8, bells, bells_addr, out_u8, clock):
    """The infer stage's publish (its core runs ONNX Runtime from Python)."""
    return _publish(out_i64, words, k, m, stage, ctl, stage, n_in, ring_h64, ring_b8, bells, bells_addr, out_u8, clock)


@njit(cache=True)
def risk_step(sigs, n, limits, book, sectors, account_limits, account, control, oo_ids, oo_vals, params, tmp, ctl, m,
              out, den, den_n, out_i64, words, stage, ring_h64, ring_b8, bells, bells_addr, out_u8, clock):
    k = rk.on_signals(sigs, n, limits, book, sectors, account_limits, account, control, oo_ids, oo_vals, params, tmp,
                      m, out, den, den_n, _clock(clock))
    return _publish(out_i64, words, k, m, stage, ctl, stage, n, ring_h64, ring_b8, bells, bells_addr, out_u8, clock)


# -- whole wakes: a process that hosts one stage sleeps and drains in one call ----------
# Entering compiled code from Python costs ~7 µs when the process wakes from a sleep with
# cold caches (against ~0.9 µs hot, whatever the argument count): a stage that returned
# from its futex to Python, then popped each ring, applied each batch and stepped in
# separate calls paid that several times before its first order went out.  With
# ``wait`` these arm the doorbell, re-check the rings and sleep (the shell has written
# the timeout into ``timespec_addr``), then drain in the order the generic loop uses
# (market data first: an order must meet the latest quote); without, they only drain.
# Either way the only Python->compiled entry comes before the sleep, off the tick's path.


@njit(cache=True, inline="always")
def _wait(bells, bells_addr, idx, timespec_addr, a_h64, a_ci, b_h64, b_ci, c_h64, c_ci):
    """Arm doorbell ``idx``, and sleep unless one of three rings already has records."""
    seq = arm(bells, idx)
    if ring_pending(a_h64, a_ci) > 0 or ring_pending(b_h64, b_ci) > 0 or ring_pending(c_h64, c_ci) > 0:
        disarm(bells, idx)
    else:
        sleep(bells, bells_addr, idx, seq, timespec_addr)


@njit(cache=True)
def features_drain(wait, timespec_addr, idx, md_h64, md_b8, md_ci, md_u8, md, max_n, state, alpha_fast, alpha_slow,
                   quotes_only, out, out_i64, words, m, ctl, stage, ring_h64, ring_b8, bells, bells_addr, out_u8):
    """The features process's wake: pop market data and run :func:`features_step` on it.
    Returns the records popped and ``(rows, pushed)``."""
    if wait:
        _wait(bells, bells_addr, idx, timespec_addr, md_h64, md_ci, md_h64, md_ci, md_h64, md_ci)
    n = ring_pop(md_h64, md_b8, md_ci, md_u8, max_n)
    if n == 0:
        return 0, 0, 0
    k = on_md_batch(md, n, state, alpha_fast, alpha_slow, quotes_only, out, monotonic_ns())
    k, pushed = _publish(out_i64, words, k, m, stage, ctl, stage, n, ring_h64, ring_b8, bells, bells_addr, out_u8, -1)
    return n, k, pushed


@njit(cache=True)
def infer_drain(wait, timespec_addr, idx, f_h64, f_b8, f_ci, f_u8, rows, max_n, n_features, x, drift_counts,
                drift_edges, bells, bells_addr):
    """The infer process's wake up to the model: pop at most ``max_n`` (the model's batch)
    feature rows and gather them into the model input ``x`` (and the live drift
    histograms; ``drift_counts`` empty: none).  Returns the rows popped; the shell runs
    the model and then :func:`signals_step`."""
    if wait:
        _wait(bells, bells_addr, idx, timespec_addr, f_h64, f_ci, f_h64, f_ci, f_h64, f_ci)
    n = ring_pop(f_h64, f_b8, f_ci, f_u8, max_n)
    if n:
        gather_rows(rows, n, n_features, x)
        if drift_counts.shape[0]:
            count_drift(drift_counts, drift_edges, x, n)
    return n


@njit(cache=True)
def signals_step(rows, n, y, scale, weight_per_unit, weight_cap, min_abs_pred, out, out_i64, words, m, ctl, stage,
                 ring_h64, ring_b8, bells, bells_addr, out_u8):
    """Predictions ``y[:n]`` of ``rows[:n]`` sized into signals, stamped and pushed."""
    k = size_signals(rows, n, y, scale, weight_per_unit, weight_cap, min_abs_pred, out, monotonic_ns())
    return _publish(out_i64, words, k, m, stage, ctl, stage, n, ring_h64, ring_b8, bells, bells_addr, out_u8, -1)


@njit(cache=True)
def risk_drain(wait, timespec_addr, idx, md_h64, md_b8, md_ci, md_u8, md, sig_h64, sig_b8, sig_ci, sig_u8, sigs,
               ex_h64, ex_b8, ex_ci, ex_u8, reports, max_n, limits, book, sectors, account_limits, account, control, oo_ids, oo_vals, params, tmp,
               ctl, m, out, den, den_n, out_i64, words, stage, ring_h64, ring_b8, bells, bells_addr, out_u8):
    """The risk process's wake: marks from the (passive) market-data ring, the gate over
    the signals (orders stamped and pushed as in :func:`risk_step`), then exec reports.

    Returns ``(md, signals, reports)`` popped and ``(orders, pushed)`` as ``risk_step``."""
    if wait:
        _wait(bells, bells_addr, idx, timespec_addr, sig_h64, sig_ci, ex_h64, ex_ci, md_h64, md_ci)
    n_md = ring_pop(md_h64, md_b8, md_ci, md_u8, max_n)
    if n_md:
        rk.on_marks(md, n_md, limits, book, sectors, account)
    n_sig = ring_pop(sig_h64, sig_b8, sig_ci, sig_u8, max_n)
    k = pushed = 0
    if n_sig:
        k = rk.on_signals(sigs, n_sig, limits, book, sectors, account_limits, account, control, oo_ids, oo_vals,
                          params, tmp, m, out, den, den_n, monotonic_ns())
        k, pushed = _publish(out_i64, words, k, m, stage, ctl, stage, n_sig, ring_h64, ring_b8, bells, bells_addr,
                             out_u8, -1)
    n_ex = ring_pop(ex_h64, ex_b8, ex_ci, ex_u8, max_n)
    if n_ex:
        rk.on_exec(reports, n_ex, oo_ids, oo_vals, limits, book, sectors, account, m)
    return n_md, n_sig, n_ex, k, pushed


@njit(cache=True)
def router_drain(wait, timespec_addr, idx, md_h64, md_b8, md_ci, md_u8, md, ord_h64, ord_b8, ord_ci, ord_u8, orders,
                 max_n, r, ctl, stage,
                 arr_h64, arr_b8, arr_u8, rep_i64, rep_words, rep_u8, ex_h64, ex_b8, bells, bells_addr):
    """The router process's wake (immediate execution): the quotes since its last look
    (passive market-data ring) to the venues, then the orders from risk routed (tick-to-trade
    stamped as each is handed over), their arrival quotes to the journal's ring
    (``arr_h64`` empty: none), and the venues' due exec reports stamped and pushed to risk.

    Returns ``(md, orders)`` popped and ``(reports, pushed)`` as the other steps."""
    if wait:
        _wait(bells, bells_addr, idx, timespec_addr, ord_h64, ord_ci, ord_h64, ord_ci, md_h64, md_ci)
    n_md = ring_pop(md_h64, md_b8, md_ci, md_u8, max_n)
    if n_md:
        venues_on_md(r.smart, md, n_md, monotonic_ns())
    n = ring_pop(ord_h64, ord_b8, ord_ci, ord_u8, max_n)
    if n == 0:
        return n_md, 0, 0, 0
    sent, k = route_and_poll(orders, n, r, monotonic_ns())
    if sent and arr_h64.shape[0]:  # an overwrite ring: never blocks
        ring_push(arr_h64, arr_b8, bells, bells_addr, arr_u8, min(sent, r.arrivals.shape[0]))
    k, pushed = _publish(rep_i64, rep_words, k, r.m, stage, ctl, stage, n, ex_h64, ex_b8, bells, bells_addr,
                         rep_u8, -1)
    return n_md, n, k, pushed


# -- the fused process (feed, features, infer and risk in one process, real clock): a tick
# reaches its orders in two compiled calls around the model.  The handler chain made one
# compiled call per stage, with Python between them, all on the tick's path (~14 µs of
# the ~19 µs feed→risk p50 in run G's fused/spin).
@njit(cache=True)
def fused_front(pos, n, seq0, loops, now_real, events, md, md_i64, md_words, m, ctl, md_h64, md_b8, bells,
                bells_addr, md_u8, limits, book, sectors, account, state, alpha_fast, alpha_slow, quotes_only, rows,
                rows_i64, rows_words, f_h64, f_b8, f_u8, max_batch, n_features, x, drift_counts, drift_edges):
    """Emit ``events[pos:pos+n]`` as :func:`feed_step` does (and record the feed's resume
    words at once: a restarted feed must never reuse a seq), mark risk's book (before the
    features they trigger, as the handler chain does), run :func:`features_step`, and
    gather the rows into the model input ``x`` when they fit one model batch.

    Returns the feature rows made; the shell runs the model over ``x[:rows]`` and then
    :func:`fused_back`, or hands a batch larger than the model's to the handler chain."""
    feed_emit(events, pos, n, md, seq0, monotonic_ns(), now_real)
    _publish(md_i64, md_words, n, m, FEED, ctl, FEED, 0, md_h64, md_b8, bells, bells_addr, md_u8, -1)
    fw = _STAGE_BASE + _STAGE_WORDS * FEED
    ctl[fw + FEED_POS] = pos + n
    ctl[fw + FEED_SEQ] = seq0 + n
    ctl[fw + FEED_LOOPS] = loops
    rk.on_marks(md, n, limits, book, sectors, account)
    k = on_md_batch(md, n, state, alpha_fast, alpha_slow, quotes_only, rows, monotonic_ns())
    _publish(rows_i64, rows_words, k, m, FEATURES, ctl, FEATURES, n, f_h64, f_b8, bells, bells_addr, f_u8, -1)
    if 0 < k <= max_batch:
        gather_rows(rows, k, n_features, x)
        if drift_counts.shape[0]:
            count_drift(drift_counts, drift_edges, x, k)
    return k


@njit(cache=True)
def fused_back(rows, n, y, scale, weight_per_unit, weight_cap, min_abs_pred, sigs, sig_i64, sig_words, m, ctl,
               s_h64, s_b8, bells, bells_addr, sig_u8, limits, book, sectors, account_limits, account, control,
               oo_ids, oo_vals, params, tmp, out, den, den_n, out_i64, words, o_h64, o_b8, out_u8):
    """The model's predictions ``y[:n]`` of ``rows[:n]`` through :func:`signals_step`
    (``s_h64`` empty: the signals stay in the process) and :func:`risk_step`.
    Returns ``(orders, pushed)`` as ``risk_step``."""
    k = size_signals(rows, n, y, scale, weight_per_unit, weight_cap, min_abs_pred, sigs, monotonic_ns())
    _publish(sig_i64, sig_words, k, m, INFER, ctl, INFER, n, s_h64, s_b8, bells, bells_addr, sig_u8, -1)
    ko = rk.on_signals(sigs, k, limits, book, sectors, account_limits, account, control, oo_ids, oo_vals, params, tmp,
                       m, out, den, den_n, monotonic_ns())
    return _publish(out_i64, words, ko, m, RISK, ctl, RISK, k, o_h64, o_b8, bells, bells_addr, out_u8, -1)


def bind(dispatcher, *args):
    """The compiled specialisation of ``dispatcher`` for these arguments' types.

    A dispatcher call first resolves the Numba type of every argument (~0.1 µs
    per plain array, ~0.2 µs per structured array, and more when that Python
    code is cold after a sleep).  A stage's argument types never change after
    start-up, so the shell binds each kernel once, while warming it, and then
    calls the entry point directly.  Callers must pass exactly these types.
    """
    return dispatcher.compile(tuple(typeof(a) for a in args))
