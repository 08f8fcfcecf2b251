"""Doorbells: one futex word per process, rung by every producer it consumes from.

A process that waits on several rings (risk reads signals, exec reports and
market data) cannot sleep on several futexes at once, so each *process* owns a
doorbell and each ring consumer slot records which doorbell to ring.

Layout of a doorbell (64 bytes, its own cache line), as int32 words:
``[0] seq`` (the futex word, bumped on every ring), ``[1] sleeping`` (1 while
the owner is between :func:`arm` and :func:`disarm`).

Handshake (no lost wake-up): the sleeper stores ``sleeping=1``, fences, reads
``seq``, then re-checks its rings, and only then calls ``futex_wait(seq)``.  A
producer publishes its ring head, fences, and rings only if ``sleeping`` is set.
With both fences, either the sleeper sees the new head or the producer sees the
flag; a bump that lands between the read of ``seq`` and the wait makes the
futex return at once.  Producers skip the syscall entirely while the consumer
is awake, so a busy pipeline pays one load per hop, not a syscall.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .shm import Segment
from .sync import INT32_MAX, fence, futex_wait, futex_wake

DOORBELL_BYTES = 64
MAX_DOORBELLS = 64
_WORDS = DOORBELL_BYTES // 4


@njit(cache=True, _nrt=False)
def ring_doorbell(bells, bells_addr, idx):
    """Wake doorbell ``idx`` if its owner sleeps (caller has fenced after publishing)."""
    if bells[idx * _WORDS + 1] != 0:
        bells[idx * _WORDS] += 1
        futex_wake(bells_addr + idx * DOORBELL_BYTES, INT32_MAX)


@njit(cache=True, _nrt=False)
def arm(bells, idx):
    """Announce that the owner is about to sleep; returns the seq to wait on."""
    bells[idx * _WORDS + 1] = 1
    fence()
    return bells[idx * _WORDS]


@njit(cache=True, _nrt=False)
def disarm(bells, idx):
    bells[idx * _WORDS + 1] = 0


@njit(cache=True, _nrt=False)
def sleep(bells, bells_addr, idx, seq, timespec_addr):
    """Block until rung (or timeout); the caller then disarms and re-polls."""
    r = futex_wait(bells_addr + idx * DOORBELL_BYTES, seq, timespec_addr)
    bells[idx * _WORDS + 1] = 0
    return r


class Doorbells:
    """The doorbell segment: ``words`` is the int32 view the njit functions take."""

    def __init__(self, segment: Segment):
        self.segment = segment
        self.words = segment.buf.view(np.int32)
        self.addr = self.words.ctypes.data

    @classmethod
    def create(cls, name: str, *, exist_ok: bool = False) -> "Doorbells":
        return cls(Segment.create(name, DOORBELL_BYTES * MAX_DOORBELLS, exist_ok=exist_ok))

    @classmethod
    def attach(cls, name: str) -> "Doorbells":
        return cls(Segment.attach(name))


class Sleeper:
    """The waiting side of one doorbell, with a preallocated timeout."""

    def __init__(self, bells: Doorbells, idx: int, timeout_ns: int = 50_000_000):
        if not 0 <= idx < MAX_DOORBELLS:
            raise ValueError(f"doorbell index must be in [0, {MAX_DOORBELLS}), was {idx}")
        self.bells = bells
        self.idx = idx
        # struct timespec {int64 tv_sec; int64 tv_nsec}; the timeout bounds how long a
        # stage goes without looking at its control flags and signals.
        self._timespec = np.array([timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000], dtype=np.int64)
        self.timespec_addr = self._timespec.ctypes.data
