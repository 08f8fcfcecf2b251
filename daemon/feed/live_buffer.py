"""The bounded buffer between a live source's network thread and the feed's loop, and what
every live source shares (:class:`LiveSource`).

The network thread ``put``s one md record per message; the feed's loop ``drain``s them in
order.  When the loop falls behind, the oldest records go (counted in ``dropped``): market data
is overwrite-not-block, as the md ring is.

A record with a price that is not finite or not above zero, or a negative size, is never
buffered: :meth:`LiveSource._put` counts it by reason in ``bad`` (a list indexed as
:data:`~alphad.daemon.feed.bad_records.LIVE_REASONS`; ``stats()["bad_records"]`` names them).
A size that is NaN (not known yet) passes.  A message of a symbol outside the universe is
counted as ``unknown_symbol`` by the source (:meth:`LiveSource._unknown`).
"""
from __future__ import annotations

import asyncio
import sys
import threading

import numpy as np

from alphad.daemon.feed.bad_records import (L_NEGATIVE_SIZE, L_NON_FINITE, L_NON_POSITIVE_PRICE, L_UNKNOWN_SYMBOL,
                                            LIVE_REASONS)
from alphad.ipc.dtypes import MD_BAR, MD_DTYPE, MD_QUOTE

_INF = float("inf")


def bad_reason(rec: tuple) -> int:
    """-1 for a record fit to emit, else the index of what is wrong with it in
    :data:`~alphad.daemon.feed.bad_records.LIVE_REASONS` (``rec`` in ``MD_DTYPE``'s field
    order: a quote's bid/ask price and size at 8..11, a trade's or bar's price and size at
    12..13, a bar's open, high and low at 14..16).  A few comparisons: no allocation."""
    kind = rec[5]
    if kind == MD_QUOTE:
        bp, bs, ap, asz = rec[8], rec[9], rec[10], rec[11]
        if 0.0 < bp < _INF and 0.0 < ap < _INF and not (bs < 0.0 or asz < 0.0 or bs == _INF or asz == _INF):
            return -1
        prices, sizes = (bp, ap), (bs, asz)
    else:
        px, sz = rec[12], rec[13]
        if kind == MD_BAR:
            o, h, lo = rec[14], rec[15], rec[16]
            if 0.0 < px < _INF and 0.0 < o < _INF and 0.0 < h < _INF and 0.0 < lo < _INF and not (
                    sz < 0.0 or sz == _INF):
                return -1
            prices, sizes = (px, o, h, lo), (sz,)
        else:
            if 0.0 < px < _INF and not (sz < 0.0 or sz == _INF):
                return -1
            prices, sizes = (px,), (sz,)
    if any(p != p or p in (_INF, -_INF) for p in prices) or any(z in (_INF, -_INF) for z in sizes):
        return L_NON_FINITE
    if any(p <= 0.0 for p in prices):
        return L_NON_POSITIVE_PRICE
    return L_NEGATIVE_SIZE


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


class LiveSource:
    """What a live market-data source shares (``feed/alpaca.py``, ``feed/ib.py``): the buffer
    its network thread fills and the feed's loop drains, and a bounded stop of that thread.
    A source sets ``buffer``, ``notify``, ``_lock``, ``errors``, ``last_error``, ``_thread``
    (None), ``_started`` (an Event); its ``_main()`` coroutine sets ``_loop`` and
    ``_stop_event``, sets ``_started`` once running and returns when ``_stop_event`` is set.
    ``NAME`` names it in messages; ``_prepare()`` runs before the thread starts."""

    NAME = "live"
    STOP_TIMEOUT_S = 5.0

    def data_down(self) -> int:
        """How much of the market data the source reports down (IB: broken data farms, a lost
        link); 0 when healthy.  Sources without such reports are always healthy."""
        return 0

    @property
    def pending(self) -> int:
        """Records received and not yet drained."""
        return self.buffer.pending

    received = property(lambda self: self.buffer.received)
    dropped = property(lambda self: self.buffer.dropped)

    @property
    def bad(self) -> list[int]:
        """Records refused, by reason (indexed as ``LIVE_REASONS``; made on first use)."""
        counts = self.__dict__.get("_bad")
        if counts is None:
            counts = self.__dict__["_bad"] = [0] * len(LIVE_REASONS)
        return counts

    def bad_records(self) -> dict[str, int]:
        """``{reason: count}`` of every reason a live source counts (``stats()`` has it)."""
        return dict(zip(LIVE_REASONS, self.bad))

    def _unknown(self) -> None:
        """A message of a symbol outside the universe (counted, not emitted)."""
        self.bad[L_UNKNOWN_SYMBOL] += 1

    def _put(self, rec: tuple) -> None:
        why = bad_reason(rec)
        if why >= 0:  # never buffered: counted
            self.bad[why] += 1
            return
        self.buffer.put(rec)
        notify = self.notify  # the shell rings the feed process's doorbell with it
        if notify is not None:
            notify()

    def drain(self, out: np.ndarray) -> int:
        """Move up to ``len(out)`` buffered records, oldest first, into ``out``; returns how many."""
        return self.buffer.drain(out)

    def _on_error(self, text: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = text

    def _prepare(self) -> None:
        """What a source builds before its thread starts (nothing by default)."""

    def start(self, timeout_s: float = 5.0):
        """Start the source on its thread (it connects in the background); returns self."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} was already started")
        self._prepare()
        self._thread = threading.Thread(target=self._thread_main, name=f"{self.NAME}-md", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError(f"the {self.NAME} market-data thread did not start within {timeout_s} s")
        return self

    def _thread_main(self) -> None:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 - reported, the thread ends
            self._on_error(f"market-data thread {type(e).__name__}: {e}")
            print(f"alphad feed {self.NAME}: the market-data thread ended: {type(e).__name__}: {e}", file=sys.stderr,
                  flush=True)
        finally:
            try:
                rest = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in rest:  # an SDK's own requests left waiting on a closed connection
                    t.cancel()
                if rest:
                    loop.run_until_complete(asyncio.wait(rest, timeout=1.0))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                self._started.set()  # a start() that waits never hangs on a thread that failed

    def stop(self, timeout_s: float | None = None) -> None:
        """End the network thread: bounded (a thread that does not end in time is left behind
        as a daemon thread, and reported)."""
        timeout_s = self.STOP_TIMEOUT_S if timeout_s is None else timeout_s
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        thread.join(timeout_s)
        if thread.is_alive():
            print(f"alphad feed {self.NAME}: the market-data thread did not stop within {timeout_s} s",
                  file=sys.stderr, flush=True)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
