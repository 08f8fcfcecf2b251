"""The shared control block: trading state and per-stage liveness.

One small segment every process maps.  The risk stage reads the trading state
on every order (one int64 load), so a ``halt`` from the control port takes
effect on the next order without any message in the hot path, and it survives a
restart of the risk stage because it does not live in that process.

Words (int64):

======  ===========================================================
0       magic
1       layout version
4       shutdown requested (1 = every stage exits its loop)
6       supervisor pid
8       resume requests (counter; the risk stage performs the resume)
16..22  the risk control array (layout ``C_*`` in
        :mod:`alphad.daemon.risk.codes`): trading state (ACTIVE=0,
        REDUCING=1, HALTED=2), reason, when, flatten request, throttle
        clock, warning bits, epoch
64+     stage ``i`` at ``64 + 16*i``: pid, ready, heartbeat ns, restarts,
        events in, events out, then stage-private words (16 words; infer's
        first private word is its ONNX Runtime provider)
======  ===========================================================

Only the risk stage lowers the trading state (``resume`` re-arms the daily loss
limit from the equity it holds), so the control port asks for a resume by
bumping word 8 rather than writing the state.
"""
from __future__ import annotations

import numpy as np

from .shm import Segment

MAGIC = int.from_bytes(b"ALPHDCTL", "little")
VERSION = 2

ACTIVE = 0
REDUCING = 1
HALTED = 2
STATE_NAMES = {ACTIVE: "ACTIVE", REDUCING: "REDUCING", HALTED: "HALTED"}

W_MAGIC, W_VERSION = 0, 1
W_SHUTDOWN = 4
W_SUPERVISOR_PID = 6
W_RESUME_REQUESTS = 8
#: First word of the risk control array; its columns are risk_codes.C_* (checked by a test).
RISK_CONTROL = 16
N_RISK_CONTROL = 7
W_STATE = RISK_CONTROL + 0       # C_STATE
W_REASON = RISK_CONTROL + 1      # C_STATE_REASON
W_FLATTEN = RISK_CONTROL + 3     # C_FLATTEN
W_THROTTLE_NS = RISK_CONTROL + 4  # C_THROTTLE_NS
W_EPOCH = RISK_CONTROL + 6       # C_EPOCH

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
PROVIDERS = ("", "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")


def provider_code(name: str) -> int:
    """Code of an ONNX Runtime provider name for :data:`S_INFER_PROVIDER` (0 if unknown)."""
    return PROVIDERS.index(name) if name in PROVIDERS else 0

#: ``W_REASON`` when an operator command set the state (risk_codes.C_REASON_OPERATOR).
REASON_OPERATOR = 999

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
        return self.words[RISK_CONTROL : RISK_CONTROL + N_RISK_CONTROL]

    def raise_trading_state(self, state: int, now_ns: int) -> bool:
        """HALTED or REDUCING from an operator; never lowers the state (see :meth:`request_resume`).
        Returns True when the state changed."""
        if state not in (REDUCING, HALTED):
            raise ValueError(f"an operator may raise the state to REDUCING or HALTED, was {state}")
        if state <= self.words[W_STATE]:
            return False
        self.words[W_REASON] = REASON_OPERATOR
        self.words[RISK_CONTROL + 2] = now_ns
        self.words[W_STATE] = state
        self.words[W_EPOCH] += 1
        return True

    def request_resume(self) -> None:
        self.words[W_RESUME_REQUESTS] += 1

    @property
    def resume_requests(self) -> int:
        return int(self.words[W_RESUME_REQUESTS])

    def request_flatten(self) -> None:
        self.words[W_FLATTEN] = 1

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
