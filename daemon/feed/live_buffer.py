"""The bounded buffer between a live source's network thread and the feed's loop.

The network thread ``put``s one md record per message; the feed's loop ``drain``s them in
order.  When the loop falls behind, the oldest records go (counted in ``dropped``): market data
is overwrite-not-block, as the md ring is.
"""
from __future__ import annotations

import threading

import numpy as np

from alphad.ipc.dtypes import MD_DTYPE


class RecordBuffer:
    """``capacity`` md records in a circle, behind one lock."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, was {capacity}")
        self._ring = np.zeros(capacity, MD_DTYPE)
        self._head = self._count = 0
        self._lock = threading.Lock()
        self.received = self.dropped = 0

    @property
    def pending(self) -> int:
        return self._count

    def put(self, rec: tuple) -> None:
        ring = self._ring
        cap = len(ring)
        with self._lock:
            if self._count == cap:  # full: the oldest goes
                self._head = (self._head + 1) % cap
                self._count -= 1
                self.dropped += 1
            ring[(self._head + self._count) % cap] = rec
            self._count += 1
            self.received += 1

    def drain(self, out: np.ndarray) -> int:
        """Move up to ``len(out)`` records, oldest first, into ``out``; returns how many."""
        ring = self._ring
        cap = len(ring)
        with self._lock:
            n = min(len(out), self._count)
            if n == 0:
                return 0
            h = self._head
            first = min(n, cap - h)
            out[:first] = ring[h : h + first]
            if n > first:
                out[first:n] = ring[: n - first]
            self._head = (h + n) % cap
            self._count -= n
        return n
