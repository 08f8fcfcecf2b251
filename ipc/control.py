"""The shared control block: trading state and per-stage liveness.

One small segment every process maps.  The risk stage reads the trading state
on every order (one int64 load), so a ``halt`` from the control port takes
effect on the next order without any message in the hot path, and it survives a
restart of the risk stage because it does not live in that process.

This module is the one home of the block's layout: its words ``W_*``, the trading
states, the columns ``C_*`` of the risk control array (the risk library's ``control``
argument is the view :attr:`ControlBlock.risk_control`; :mod:`alphad.daemon.risk.codes`
imports them from here) and the fields ``S_*`` of the stage slots.

Words (int64):

=========================  ===========================================================
``W_MAGIC`` 0              magic
``W_VERSION`` 1            layout version
``W_SHUTDOWN`` 4           shutdown requested (1 = every stage exits its loop)
``W_SUPERVISOR_PID`` 6     supervisor pid
``W_RESUME_REQUESTS`` 8    resume requests (counter; the risk stage performs the resume)
``W_ID_SESSION`` 10        this daemon run's number: the high bits of every client order id
``W_CANCEL_ALL_*`` 12..14  ``ctl cancel-all``: requests, requests the router acted on, cancels sent
``RISK_CONTROL`` 16..22    the risk control array, columns ``C_*`` (words ``W_STATE`` ..
                           ``W_EPOCH``): trading state (ACTIVE=0, REDUCING=1, HALTED=2),
                           reason, when, flatten request, throttle clock, warning bits, epoch
``W_DAY_START_EQUITY`` 24  the day-start equity and daily-loss reference risk publishes
``W_LOSS_REF`` 25          (float64 bits); ``W_DAY_RESTORED`` 26: 1 when restored from the journal
``W_REPLAY_DONE`` 27       ``alphad replay``: the feed is done and so is every stage
``W_REPLAY_POLL_*`` 28..31 ``alphad replay``: the router's poll between events (time, asked, done, wanted)
``W_RELOAD`` 32            ``ctl reload``/``set``/SIGHUP: settings generation asked (stages: ``S_RELOADED``)
64+                        stage ``i``'s slot of 16 words, field ``f`` at
                           :func:`stage_word` ``(i, f)`` = ``64 + 16*i + f``: pid, ready,
                           heartbeat ns, restarts, events in, events out (``S_*``), then
                           stage-private words (infer: ``S_INFER_*``; feed: ``FEED_*``, its data health
                           ``FEED_DATA_DOWN``)
=========================  ===========================================================

Only the risk stage lowers the trading state (``resume`` re-arms the daily loss
limit from the equity it holds), so the control port asks for a resume by
bumping ``W_RESUME_REQUESTS`` rather than writing the state.
"""
from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from .shm import Segment

MAGIC = int.from_bytes(b"ALPHDCTL", "little")
VERSION = 2

# -- trading states (the word W_STATE: the risk control array's C_STATE) ---------------------
#: Orders pass the gate subject to every check.
ACTIVE = 0
#: Only orders that shrink ``|position|`` pass (drawdown CRITICAL step or an operator command).
REDUCING = 1
#: No new order passes; only :func:`alphad.daemon.risk.checks.resume` leaves this state.
HALTED = 2
STATE_NAMES = {ACTIVE: "ACTIVE", REDUCING: "REDUCING", HALTED: "HALTED"}

# -- block words ----------------------------------------------------------------------------
W_MAGIC, W_VERSION = 0, 1
W_SHUTDOWN = 4
W_SUPERVISOR_PID = 6
W_RESUME_REQUESTS = 8
#: This daemon run's number (the supervisor's, one more at every start): the high bits of
#: every client order id risk gives (alphad.daemon.risk.core.ID_SESSION_SHIFT).
W_ID_SESSION = 10
#: ``ctl cancel-all``: requests made (the supervisor), requests the router has acted on, and
#: how many working orders and parents it sent cancels for at the last one.
W_CANCEL_ALL_REQUESTS, W_CANCEL_ALL_DONE, W_CANCEL_ALL_SENT = 12, 13, 14

# -- the risk control array (int64, words RISK_CONTROL .. RISK_CONTROL + N_CONTROL_COLS) -----
# The trading state word, kill switch latch and throttle clock: no Python objects, so the
# risk stage's ``control`` is a view on this block and survives a restart of that stage.
#: First word of the risk control array.
RISK_CONTROL = 16
#: Trading state: ACTIVE, REDUCING or HALTED.
C_STATE = 0
#: Why the state was last raised: a gate code (``DENY_DAILY_LOSS``), ``DD_EVENT_ESCALATE +
#: level`` (:mod:`alphad.daemon.risk.codes`), ``REASON_OPERATOR`` or ``REASON_LOW_DISK``; 0 when ACTIVE.
C_STATE_REASON = 1
#: When the state was last raised, stage clock ns.
C_STATE_TS = 2
#: 1 when the risk stage must flatten every position (KILL step, ``ctl flatten``).
C_FLATTEN = 3
#: Throttle clock: last refill time, ns; -1 before the first order (0: never initialised).
C_THROTTLE_NS = 4
#: Warning bits of the last check_order call (``WARN_*``).
C_WARNINGS = 5
#: Incremented on every state change, so a reader can tell a change happened.
C_EPOCH = 6
N_CONTROL_COLS = 7

#: ``C_STATE_REASON`` when an operator command set the state.
REASON_OPERATOR = 999
#: ``C_STATE_REASON`` when the supervisor halted for low disk under the journal
#: (``journal.min_free_mb``, daemon/supervisor/disk_watch.py); it resumes when space returns.
REASON_LOW_DISK = 998

# The risk control array's columns as words of the block.
W_STATE = RISK_CONTROL + C_STATE
W_REASON = RISK_CONTROL + C_STATE_REASON
W_STATE_TS = RISK_CONTROL + C_STATE_TS
W_FLATTEN = RISK_CONTROL + C_FLATTEN
W_THROTTLE_NS = RISK_CONTROL + C_THROTTLE_NS
W_WARNINGS = RISK_CONTROL + C_WARNINGS
W_EPOCH = RISK_CONTROL + C_EPOCH

# -- the trading day's references (float64 bits in int64 words) -----------------------------
#: The risk stage's day-start equity and daily-loss reference, published as it runs; the
#: supervisor journals them (``day`` entries) so a restart the same day keeps them.
W_DAY_START_EQUITY, W_LOSS_REF = 24, 25
#: 1 when the supervisor restored the two words above from the journal for risk's rebuild.
W_DAY_RESTORED = 26
#: ``alphad replay``: 1 once the feed has emitted its last event and every stage is done with it.
W_REPLAY_DONE = 27
#: ``alphad replay``: the feed asks the router to poll its venues at event time ``_TS``
#: between two events (requests made, requests done), as the backtest's loop does.
W_REPLAY_POLL_TS, W_REPLAY_POLL_REQ, W_REPLAY_POLL_DONE = 28, 29, 30
#: ``alphad replay``: 1 while the router wants polls (venue latency, working parents), as
#: its ``poll_ns`` says after each pass; 0 spares the feed the round trip.
W_REPLAY_POLL_WANTED = 31
#: ``ctl reload`` / ``ctl set`` / SIGHUP: the generation of the settings the supervisor asks
#: the stages to apply (the file :func:`alphad.daemon.shell.reload.reload_path`); each stage
#: answers in its slot's ``S_RELOADED``.
W_RELOAD = 32

#: Stage slots, in pipeline order.  Indices are part of the shared layout.
STAGES = ("feed", "features", "infer", "risk", "router")
STAGE_INDEX = {name: i for i, name in enumerate(STAGES)}

_STAGE_BASE = 64
_STAGE_WORDS = 16
S_PID, S_READY, S_HEARTBEAT, S_RESTARTS, S_EVENTS_IN, S_EVENTS_OUT = range(6)
#: Infer slot, first stage-private word: the ONNX Runtime provider the session runs on
#: (a code of :data:`PROVIDERS`), so ``ctl status`` and the exporter report it.
S_INFER_PROVIDER = 6
#: Infer slot: how many keep-warm rehearsals of the inference step have run
#: (``topology.infer_keep_warm_us``).
S_INFER_REHEARSALS = 7
#: Feed slot: the feed's resume words (its cursor: next event, next seq, loops done),
#: written as it emits, so a restarted feed never reuses a seq.
FEED_POS, FEED_SEQ, FEED_LOOPS = 8, 9, 10
#: Feed slot: a live source's market data reported down: its broken data farms (IB's 2103,
#: 2105, 2157) plus 1 while its link is lost (1100); 0 when healthy, and for a recording.
#: Risk stops new orders on the instruments whose data it then lacks (``risk.max_data_age_ms``).
FEED_DATA_DOWN = 11
#: Every slot, in a lockstep replay: moves by one when the process starts a pass over its
#: inputs and by one when it has handed on what it made (odd: mid-step).
S_WORK = 12
#: Every slot: the last settings generation (``W_RELOAD``) the stage applied; minus it when
#: the stage could not (the model card it was given did not load).
S_RELOADED = 13
#: Feed slot: records the feed skipped as bad (``feed.on_bad_record: skip``): a recording's
#: rows, counted when it is loaded, or a live source's messages, counted as they come.
FEED_BAD_RECORDS = 14
PROVIDERS = ("", "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")


def provider_code(name: str) -> int:
    """Code of an ONNX Runtime provider name for :data:`S_INFER_PROVIDER` (0 if unknown)."""
    return PROVIDERS.index(name) if name in PROVIDERS else 0


SIZE = 4096


@register_jitable
def stage_word(stage: int, field: int) -> int:
    """Index of word ``field`` of stage ``stage``'s slot (plain Python and compiled code)."""
    return _STAGE_BASE + _STAGE_WORDS * stage + field


class ControlBlock:
    def __init__(self, segment: Segment):
        self.segment = segment
        self.words = segment.buf.view(np.int64)

    @classmethod
    def create(cls, name: str, *, exist_ok: bool = False) -> "ControlBlock":
        seg = Segment.create(name, SIZE, exist_ok=exist_ok)
        w = seg.buf.view(np.int64)
        if w[W_MAGIC] != MAGIC:
            w[W_VERSION] = VERSION
            w[W_THROTTLE_NS] = -1  # the risk throttle has not refilled yet
            w[W_MAGIC] = MAGIC
        return cls(seg)

    @classmethod
    def attach(cls, name: str) -> "ControlBlock":
        seg = Segment.attach(name)
        w = seg.buf.view(np.int64)
        if seg.size < SIZE or w[W_MAGIC] != MAGIC or w[W_VERSION] != VERSION:
            raise RuntimeError(
                f"{seg.path} is not an alphad control block of version {VERSION} "
                f"(magic {int(w[W_MAGIC]):#x}, version {int(w[W_VERSION])})"
            )
        return cls(seg)

    # -- trading state
    @property
    def trading_state(self) -> int:
        return int(self.words[W_STATE])

    @property
    def risk_control(self) -> np.ndarray:
        """The int64 view the risk library's ``control`` argument takes."""
        return self.words[RISK_CONTROL : RISK_CONTROL + N_CONTROL_COLS]

    def raise_trading_state(self, state: int, now_ns: int, reason: int = REASON_OPERATOR) -> bool:
        """HALTED or REDUCING from outside risk (an operator, the supervisor's disk watch: its
        ``reason``); never lowers the state (see :meth:`request_resume`).  An operator's halt
        during a ``low_disk`` halt takes over its reason.  Returns True when the state changed."""
        if state not in (REDUCING, HALTED):
            raise ValueError(f"an operator may raise the state to REDUCING or HALTED, was {state}")
        if state == HALTED == self.words[W_STATE] and reason == REASON_OPERATOR \
                and self.words[W_REASON] == REASON_LOW_DISK:
            self.words[W_REASON] = reason  # the operator's halt now holds it: space coming back must not lift it
            return False
        if state <= self.words[W_STATE]:
            return False
        self.words[W_REASON] = reason
        self.words[W_STATE_TS] = now_ns
        self.words[W_STATE] = state
        self.words[W_EPOCH] += 1
        return True

    def request_resume(self) -> None:
        self.words[W_RESUME_REQUESTS] += 1

    @property
    def resume_requests(self) -> int:
        return int(self.words[W_RESUME_REQUESTS])

    def request_cancel_all(self) -> int:
        """Ask the router to cancel every working order; returns the request's number."""
        self.words[W_CANCEL_ALL_REQUESTS] += 1
        return int(self.words[W_CANCEL_ALL_REQUESTS])

    @property
    def cancel_all_requests(self) -> int:
        return int(self.words[W_CANCEL_ALL_REQUESTS])

    def cancel_all_done(self, request: int, sent: int) -> None:
        """The router acted on requests up to ``request``, sending ``sent`` cancels."""
        self.words[W_CANCEL_ALL_SENT] = sent
        self.words[W_CANCEL_ALL_DONE] = request

    def request_flatten(self) -> None:
        self.words[W_FLATTEN] = 1

    @property
    def shutdown_requested(self) -> bool:
        return bool(self.words[W_SHUTDOWN])

    def request_shutdown(self) -> None:
        self.words[W_SHUTDOWN] = 1

    # -- the trading day
    @property
    def day_references(self) -> tuple[float, float]:
        """``(day-start equity, daily-loss reference)`` as risk last published them."""
        f = self.words.view(np.float64)
        return float(f[W_DAY_START_EQUITY]), float(f[W_LOSS_REF])

    def set_day_references(self, day_start_equity: float, loss_ref: float) -> None:
        f = self.words.view(np.float64)
        f[W_DAY_START_EQUITY], f[W_LOSS_REF] = day_start_equity, loss_ref

    # -- stages
    def stage(self, stage: int, field: int) -> int:
        return int(self.words[stage_word(stage, field)])

    def set_stage(self, stage: int, field: int, value: int) -> None:
        self.words[stage_word(stage, field)] = value

    def close(self) -> None:
        self.words = None
        self.segment.close()

    def unlink(self) -> None:
        self.segment.unlink()
