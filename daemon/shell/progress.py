"""Progress lines of a long backtest, on stderr: stdout carries the JSON summary alone.

On a terminal a line is rewritten in place (``\\r``, as ``alphad replay`` and ``alphad
bench`` do) every second; elsewhere (a log, CI) a plain line is written every ten
seconds, so a short run writes nothing.  A line says how many events went through, at
what rate, and how far the event clock has come: a streamed recording's total is not
known until its last chunk is read.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import Callable, TextIO

#: Seconds between two lines: on a terminal, and in a log.
TTY_EVERY_S, LOG_EVERY_S = 1.0, 10.0


class Progress:
    """Call :meth:`begin` when the replay starts, :meth:`update` as events go (often is fine: it reads the clock only every
    ``check_every`` events of :meth:`tick`), then :meth:`close`.

    Parameters
    ----------
    stream : where the lines go (stderr).
    tty : whether ``stream`` is a terminal; read from it when None.
    clock : monotonic nanoseconds (injected for tests).
    """

    def __init__(self, label: str = "backtest", stream: TextIO | None = None, *, tty: bool | None = None,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.label, self.stream = label, stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_ns = int((TTY_EVERY_S if self.tty else LOG_EVERY_S) * 1e9)
        self.clock = clock
        self._events = 0
        self.lines = 0
        self.begin()

    def begin(self) -> None:
        """The replay starts now (after loading and compiling): rates count from here."""
        self.start_ns = self.clock()
        self._next_ns = self.start_ns + self.every_ns

    def tick(self, ts: int) -> None:
        """One more event, at event time ``ts`` (the process loop's per-event hook)."""
        self._events += 1
        if self._events & 1023 == 0:
            self.update(self._events, ts)

    def update(self, events: int, ts: int) -> None:
        """``events`` done so far, the last at event time ``ts`` (ns, UTC)."""
        self._events = events
        now = self.clock()
        if now < self._next_ns:
            return
        self._next_ns = now + self.every_ns
        self._write(self._line(events, ts, now), final=False)

    def close(self, ts: int | None = None) -> None:
        """The run ended: a last line when any was written (and the terminal's newline)."""
        if self.lines:
            self._write(self._line(self._events, ts, self.clock()), final=True)

    def _line(self, events: int, ts: int | None, now: int) -> str:
        elapsed = max(now - self.start_ns, 1) / 1e9
        at = "" if ts is None else \
            f", event time {datetime.fromtimestamp(ts / 1e9, timezone.utc):%Y-%m-%d %H:%M} UTC"
        return f"{self.label}: {events:,} events, {events / elapsed:,.0f} events/s{at}"

    def _write(self, line: str, *, final: bool) -> None:
        if self.tty:
            print(f"\r{line}", end="\n" if final else "", file=self.stream, flush=True)
        else:
            print(line, file=self.stream, flush=True)
        self.lines += 1
