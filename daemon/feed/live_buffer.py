"""The bounded buffer between a live source's network thread and the feed's loop, and what
every live source shares (:class:`LiveSource`).

The network thread ``put``s one md record per message; the feed's loop ``drain``s them in
order.  When the loop falls behind, the oldest records go (counted in ``dropped``): market data
is overwrite-not-block, as the md ring is.
"""
from __future__ import annotations

import asyncio
import sys
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

    def _put(self, rec: tuple) -> None:
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
