"""Low disk under the journal: no new orders while the journal may not be able to record them.

Orders are journaled before they leave (write-ahead), so a full disk would leave orders
the journal never saw.  Once a second the supervisor reads the free space of the journal's
filesystem; under ``journal.min_free_mb`` it raises the trading state to HALTED with reason
``low_disk`` (``REASON_LOW_DISK``), alerts and journals a ``disk`` entry.  When the space
is back it asks the risk stage to resume, as ``ctl resume`` does, but only while the halt
is still its own: a halt an operator, the kill switch or the ladder raised meanwhile stays
(``ctl halt`` takes over the reason word, ``operator``; ``reduce`` while halted leaves it,
so the journal thread tells this watch about both: :meth:`DiskWatch.operator_command`).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from alphad.ipc.control import HALTED, REASON_LOW_DISK, W_REASON

MB = 1024 * 1024


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskWatch:
    """Watches the free space under ``directory``; ``free``: how it is read (tests pass their own)."""

    def __init__(self, directory: Path, min_free_mb: float, free=free_bytes, interval_s: float = 1.0):
        self.dir = Path(directory)
        self.min_free = int(min_free_mb * MB)
        self.free = free
        self.interval_s = interval_s
        self.next_check = 0.0
        self.low = False
        self.resume_asked = False
        #: an operator asked for halt or reduce since this watch halted: never resume
        self.operator_spoke = False

    def operator_command(self, command: str) -> None:
        if command in ("halt", "reduce"):
            self.operator_spoke = True

    def check(self, control, journal, now: float | None = None) -> None:
        """One look (at most every ``interval_s``): halt on low space, resume when it is back."""
        now = time.monotonic() if now is None else now
        if not self.min_free or now < self.next_check:
            return
        self.next_check = now + self.interval_s
        free = self.free(self.dir)
        fields = {"free_mb": round(free / MB, 1), "min_free_mb": self.min_free / MB, "dir": str(self.dir)}
        if free < self.min_free:
            self.resume_asked = False
            if not self.low:
                self.low = True
                halted = control.raise_trading_state(HALTED, time.monotonic_ns(), reason=REASON_LOW_DISK)
                self.operator_spoke = self.operator_spoke and not halted
                journal.record("disk", {"low": True, "halted": halted, **fields})
                print(f"alphad: alert: {fields['free_mb']:g} MB free under the journal ({self.dir}), below "
                      f"journal.min_free_mb {fields['min_free_mb']:g}: "
                      + ("trading HALTED (low_disk) until space returns" if halted else "trading already halted"),
                      file=sys.stderr, flush=True)
            return
        own = (control.trading_state == HALTED and int(control.words[W_REASON]) == REASON_LOW_DISK
               and not self.operator_spoke)
        if self.low or (own and not self.resume_asked):  # also a low_disk halt restored at start
            self.low = False
            if own and not self.resume_asked:
                control.request_resume()
                self.resume_asked = True
            journal.record("disk", {"low": False, "resumed": own, **fields})
            print(f"alphad: {fields['free_mb']:g} MB free under the journal again: "
                  + ("resume requested (the halt was low_disk's)" if own else
                     "the trading state stays (another halt was raised meanwhile)"), file=sys.stderr, flush=True)


def watch_disk(sup) -> None:
    """The supervisor loop's look at the journal's disk (no journal: nothing to watch)."""
    if sup.journal is not None:
        sup.journal.disk.check(sup.control, sup.journal)
