"""Feed stage core: paces a preloaded event array onto the injected clock.

The sources (:mod:`alphad.daemon.feed.sources`) parse a file up front; :class:`FeedCore`
decides how many events are due, and :func:`feed_step` ``(state, n, out, now, now_real)``
emits them:

* ``realtime`` / a multiplier ``N``: event ``k`` is due at
  ``start + (ts_exch[k] - ts_exch[0]) / N`` on the injected clock;
* ``max``: every event is due at once;
* a fixed ``rate_hz`` (the bench harness): events are spaced evenly.

:class:`LiveFeedCore` is the same contract over a live source (``feed.source: alpaca``):
whatever the source received since the last pass is due now (stamped as it is emitted).
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType
from alphad.ipc.dtypes import MD_DTYPE


@structref.register
class _FeedStateType(StructRefType):
    pass


class FeedState(structref.StructRefProxy):
    """The event array and the cursor ``[pos, seq, loops]`` (:data:`CUR_POS`, ...): the
    next event to emit, the seq it gets, and how many times the recording looped."""


structref.define_proxy(FeedState, _FeedStateType, ["events", "cursor"])

#: Words of FeedState.cursor.
CUR_POS, CUR_SEQ, CUR_LOOPS = 0, 1, 2


@njit(cache=True)
def new_feed_state(events, cursor):
    return FeedState(events, cursor)


@njit(cache=True)
def feed_step(s, n, out, now, now_real):
    """Emit the next ``n`` events into ``out`` stamped with ``t_origin = now`` (after
    parse) and ``ts_recv = now_real``, each with the next seq; advances the cursor.  A
    live source's records are stamped here too, as they enter the pipeline (the socket
    read before it is the network's time, not the daemon's)."""
    pos, seq = s.cursor[CUR_POS], s.cursor[CUR_SEQ]
    for j in range(n):
        out[j] = s.events[pos + j]
        out[j].t_origin = now
        out[j].ts_recv = now_real
        out[j].seq = seq + j
    s.cursor[CUR_POS] = pos + n
    s.cursor[CUR_SEQ] = seq + n
    return n


class FeedCore:
    """Paces a preloaded event array onto the injected clock.

    Parameters
    ----------
    events : MD_DTYPE array sorted by ``ts_exch``.
    speed : 1.0 real time, N for N× faster, 0.0 for no pacing.
    rate_hz : when given, ignore recorded spacing and emit one event every 1/rate_hz s.
    loop : start again from the first event at the end (timestamps shifted forward).
    """

    def __init__(self, events: np.ndarray, *, speed: float = 1.0, rate_hz: float | None = None,
                 loop: bool = False, max_batch: int = 64):
        if len(events) == 0:
            raise ValueError("the feed has no events (empty file, or no symbol of the universe in it)")
        _in_time_order(events, None)
        self.events = events
        self.speed = speed
        self.period_ns = int(1e9 / rate_hz) if rate_hz else 0
        self.loop = loop
        self.max_batch = max_batch
        self.cursor = np.array([0, 1, 0], np.int64)
        self.state = new_feed_state(events, self.cursor)
        self.start_ns: int | None = None
        self._ts0 = int(events["ts_exch"][0])
        self._span = int(events["ts_exch"][-1]) - self._ts0 + 1

    def _due(self, k: int) -> int:
        """Clock time when event ``pos == k`` (of the current loop) is due."""
        if self.period_ns:
            return self.start_ns + (self.loops * len(self.events) + k) * self.period_ns
        if self.speed == 0.0:
            return self.start_ns
        offset = self.loops * self._span + int(self.events["ts_exch"][k]) - self._ts0
        return self.start_ns + int(offset / self.speed)

    def refill(self, events: np.ndarray) -> None:
        """Go on with the next chunk of a streamed recording (the backtest's): the cursor
        starts again at its first event, the seq goes on."""
        if len(events) == 0:
            raise ValueError("a feed chunk holds no event")
        _in_time_order(events, int(self.events["ts_exch"][-1]))
        self.events = events
        self.cursor[CUR_POS] = 0
        self.state = new_feed_state(events, self.cursor)

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.events) and not self.loop

    def next_due(self, now: int) -> int:
        """ns until the next event is due (0: now; -1: nothing left)."""
        if self.start_ns is None:
            self.start_ns = now
        if self.exhausted:
            return -1
        return max(0, self._due(self.pos) - now)

    def take(self, now: int, limit: int) -> int:
        """How many events (up to ``limit``) starting at ``pos`` are due at ``now``.

        Wraps to the next loop at the end of the recording.  The caller emits
        ``events[pos:pos+n]`` and then calls :meth:`advance`.
        """
        if self.start_ns is None:
            self.start_ns = now
        if self.pos >= len(self.events):
            if not self.loop:
                return 0
            self.pos = 0
            self.loops += 1
        n = 0
        limit = min(len(self.events) - self.pos, self.max_batch, limit)
        if self.speed == 0.0 and not self.period_ns:
            return limit  # no pacing: every event is due (on any clock, the backtest's event time too)
        while n < limit and self._due(self.pos + n) <= now:
            n += 1
            if self.period_ns:  # spaced ticks: one per poll, never a burst
                break
        return n

    def emit(self, n: int, out: np.ndarray, now: int, now_real: int) -> int:
        """The next ``n`` events (as :meth:`take` allowed) into ``out``: :func:`feed_step`."""
        return feed_step(self.state, n, out, now, now_real)

    # the cursor's words by name (a restarted feed resumes from them)
    pos = property(lambda self: int(self.cursor[CUR_POS]), lambda self, v: self.cursor.__setitem__(CUR_POS, v))
    seq = property(lambda self: int(self.cursor[CUR_SEQ]), lambda self, v: self.cursor.__setitem__(CUR_SEQ, v))
    loops = property(lambda self: int(self.cursor[CUR_LOOPS]), lambda self, v: self.cursor.__setitem__(CUR_LOOPS, v))


def _in_time_order(events: np.ndarray, after: int | None) -> None:
    """Refuse events out of time order (the pacing and the backtest's event clock need them
    sorted; the readers skip or refuse a row that goes backwards, so this is a guard)."""
    ts = events["ts_exch"]
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back):
        k = int(back[0]) + 1
        raise ValueError(f"feed events out of time order: event {k} at {int(ts[k])} ns is before event {k - 1} at "
                         f"{int(ts[k - 1])} ns")
    if after is not None and int(ts[0]) < after:
        raise ValueError(f"feed chunk out of time order: its first event at {int(ts[0])} ns is before the last "
                         f"event of the chunk before at {after} ns")


class LiveFeedCore:
    """A live source's records, emitted as they arrive: the shell's loop drives it as it
    drives :class:`FeedCore` (``next_due``, ``take``, then ``feed_publish`` over
    :attr:`state`).

    ``source`` has ``drain(out) -> n`` (moves up to ``len(out)`` received records into
    ``out``, with the venue's ``ts_exch``) and ``pending`` (records waiting).  Each
    :meth:`take` drains into :attr:`events` (a fixed staging array, so :attr:`state` never
    changes) from position 0; :func:`feed_step` then stamps them (``t_origin``,
    ``ts_recv``) and gives them the next seqs, as it does a recording's.  A live feed
    never ends.
    """

    #: How long a blocking loop may sleep while nothing is waiting (the source also wakes
    #: it through ``notify``; this bounds a missed wake-up).
    IDLE_NS = 1_000_000
    loop = False
    exhausted = False

    def __init__(self, source, *, max_batch: int = 64):
        self.source = source
        self.max_batch = max_batch
        self.events = np.zeros(max_batch, MD_DTYPE)
        self.cursor = np.array([0, 1, 0], np.int64)
        self.state = new_feed_state(self.events, self.cursor)
        self.start_ns: int | None = None

    def next_due(self, now: int) -> int:
        """0 when records are waiting, else :attr:`IDLE_NS` (never -1: it never ends)."""
        if self.start_ns is None:
            self.start_ns = now
        return 0 if self.source.pending else self.IDLE_NS

    def ready(self) -> bool:
        """Records are waiting (the loop looks again after arming its doorbell)."""
        return self.source.pending > 0

    def take(self, now: int, limit: int) -> int:
        """Drain what the source received (up to ``limit``) into :attr:`events` from 0."""
        if self.start_ns is None:
            self.start_ns = now
        self.cursor[CUR_POS] = 0
        return self.source.drain(self.events[: min(limit, self.max_batch)])

    def emit(self, n: int, out: np.ndarray, now: int, now_real: int) -> int:
        """The ``n`` records :meth:`take` drained into ``out``: :func:`feed_step`."""
        return feed_step(self.state, n, out, now, now_real)

    def refill(self, events: np.ndarray) -> None:
        raise TypeError("a live feed is not read in chunks")

    pos = FeedCore.pos
    seq = FeedCore.seq
    loops = FeedCore.loops
