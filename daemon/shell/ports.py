"""A stage's ring ends as compiled objects, so the compositions over the cores' steps
(:mod:`alphad.daemon.shell.tick`) take a handful of arguments, not forty.

* :class:`OutPort`: one output record kind of one process: the preallocated buffer the
  step writes into (``recs``, and its ``u8``/``i64`` views), the ring it is pushed to
  (``ring_h64`` empty: no consumer in another process), the doorbells, and where its
  latency and event counts go (the metrics words ``m``, the control words ``ctl``,
  ``stage``).
* :class:`InPort`: one input ring of one process: header, body, this process's cursor,
  and the buffer records are popped into.
* :class:`Waiter`: this process's doorbell and the timespec the shell writes its
  timeout into.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType


@structref.register
class _OutPortType(StructRefType):
    pass


@structref.register
class _InPortType(StructRefType):
    pass


@structref.register
class _WaiterType(StructRefType):
    pass


class OutPort(structref.StructRefProxy):
    """See the module docstring."""


class InPort(structref.StructRefProxy):
    """See the module docstring."""


class Waiter(structref.StructRefProxy):
    """See the module docstring."""


structref.define_proxy(OutPort, _OutPortType, ["recs", "u8", "i64", "words", "ring_h64", "ring_b8", "bells",
                                               "bells_addr", "m", "ctl", "stage"])
structref.define_proxy(InPort, _InPortType, ["h64", "b8", "ci", "u8", "recs"])
structref.define_proxy(Waiter, _WaiterType, ["bells", "bells_addr", "idx", "timespec_addr"])


@njit(cache=True)
def _new_out(recs, u8, i64, words, ring_h64, ring_b8, bells, bells_addr, m, ctl, stage):
    return OutPort(recs, u8, i64, words, ring_h64, ring_b8, bells, bells_addr, m, ctl, stage)


@njit(cache=True)
def _new_in(h64, b8, ci, u8, recs):
    return InPort(h64, b8, ci, u8, recs)


@njit(cache=True)
def _new_waiter(bells, bells_addr, idx, timespec_addr):
    return Waiter(bells, bells_addr, idx, timespec_addr)


NO_RING = (np.zeros(0, np.int64), np.zeros(0, np.uint8))


def out_port(recs: np.ndarray, ring, bells, m: np.ndarray, ctl: np.ndarray, stage: int) -> OutPort:
    """A port over ``recs``; ``ring`` None: the records stay in this process."""
    h64, b8 = (ring.h64, ring.b8) if ring is not None else NO_RING
    return _new_out(recs, recs.view(np.uint8), recs.view(np.int64), recs.dtype.itemsize // 8, h64, b8, bells.words,
                    bells.addr, m, ctl, stage)


def in_port(ring, ci: int, recs: np.ndarray) -> InPort:
    return _new_in(ring.h64, ring.b8, ci, recs.view(np.uint8), recs)


def idle_in(ring, recs: np.ndarray) -> InPort:
    """A port over a zeroed copy of ``ring``'s header: never anything to pop (warm-up)."""
    return _new_in(np.zeros(ring.h64.shape[0], np.int64), NO_RING[1], 0, recs.view(np.uint8), recs)


def waiter(bells, idx: int, timespec_addr: int) -> Waiter:
    return _new_waiter(bells.words, bells.addr, idx, timespec_addr)


def drain_ports(adapter, shell, live: bool) -> dict:
    """The input ports of ``adapter``'s drain (its ``DRAIN_INPUTS``): live, or over zeroed
    headers (nothing to pop: warm-up)."""
    ports = {}
    for kind in adapter.DRAIN_INPUTS:
        ring, ci, recs = shell.input(kind)
        ports[kind] = in_port(ring, ci, recs) if live else idle_in(ring, recs)
    return ports
