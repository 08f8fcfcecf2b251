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
from alphad.ipc.control import S_EVENTS_IN, S_EVENTS_OUT
from alphad.ipc.ring import ring_push
from alphad.ipc.sync import monotonic_ns
from alphad.kernels.quote_features import on_md_batch

from . import risk as rk
from .feed import _emit as feed_emit

_STAGE_BASE = 64
_STAGE_WORDS = 16


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


def bind(dispatcher, *args):
    """The compiled specialisation of ``dispatcher`` for these arguments' types.

    A dispatcher call first resolves the Numba type of every argument (~0.1 µs
    per plain array, ~0.2 µs per structured array, and more when that Python
    code is cold after a sleep).  A stage's argument types never change after
    start-up, so the shell binds each kernel once, while warming it, and then
    calls the entry point directly.  Callers must pass exactly these types.
    """
    return dispatcher.compile(tuple(typeof(a) for a in args))
