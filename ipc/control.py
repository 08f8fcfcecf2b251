"""The shared control block: trading state and per-stage liveness.

One small segment every process maps.  The risk stage reads the trading state
on every order (one int64 load), so a ``halt`` from the control port takes
effect on the next order without any message in the hot path, and it survives a
restart of the risk stage because it does not live in that process.

Words (int64):

====  =============================================================
0     magic
1     layout version
2     trading state: ACTIVE=0, REDUCING=1, HALTED=2
3     epoch: bumped on every state change (lets stages notice one)
4     shutdown requested (1 = every stage exits its loop)
5     flatten requests (counter; risk flattens when it changes)
6     supervisor pid
7     reason of the last state change (control command or risk code)
64+   stage ``i`` at ``64 + 16*i``: pid, ready, heartbeat ns, restarts,
      events in, events out, busy ns (16 words)
====  =============================================================
"""
from __future__ import annotations

import numpy as np

from .shm import Segment

MAGIC = int.from_bytes(b"ALPHDCTL", "little")
VERSION = 1

ACTIVE = 0
REDUCING = 1
HALTED = 2
STATE_NAMES = {ACTIVE: "ACTIVE", REDUCING: "REDUCING", HALTED: "HALTED"}

W_MAGIC, W_VERSION, W_STATE, W_EPOCH, W_SHUTDOWN, W_FLATTEN, W_SUPERVISOR_PID, W_REASON = range(8)

#: Stage slots, in pipeline order.  Indices are part of the shared layout.
STAGES = ("feed", "features", "infer", "risk", "router")
STAGE_INDEX = {name: i for i, name in enumerate(STAGES)}

_STAGE_BASE = 64
_STAGE_WORDS = 16
S_PID, S_READY, S_HEARTBEAT, S_RESTARTS, S_EVENTS_IN, S_EVENTS_OUT = range(6)

# -- reasons recorded with a state change
REASON_CONTROL = 1        # an operator command on the control port
REASON_DAILY_LOSS = 2     # the risk stage's daily loss limit
REASON_DRAWDOWN = 3       # the drawdown ladder

SIZE = 4096


def stage_word(stage: int, field: int) -> int:
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

    def set_trading_state(self, state: int, reason: int = REASON_CONTROL) -> None:
        if state not in STATE_NAMES:
            raise ValueError(f"trading state must be one of {sorted(STATE_NAMES)}, was {state}")
        self.words[W_REASON] = reason
        self.words[W_STATE] = state
        self.words[W_EPOCH] += 1

    def request_flatten(self) -> None:
        self.words[W_FLATTEN] += 1

    @property
    def shutdown_requested(self) -> bool:
        return bool(self.words[W_SHUTDOWN])

    def request_shutdown(self) -> None:
        self.words[W_SHUTDOWN] = 1

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
