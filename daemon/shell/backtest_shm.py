"""The backtest's own shared-memory segments: their prefix, the leftovers of a killed run,
and removing them when the run is stopped by a signal.

A backtest (``alphad backtest``, one process) makes its segments under
``/dev/shm/alphad-backtest-<pid>.*`` and removes them when it ends, however it ends:

* normally, or with an error: the ``finally`` of :func:`~alphad.daemon.shell.backtest.single_process`;
* SIGTERM or SIGINT: :func:`stop_on_signals` turns either into :class:`Stopped` (a
  ``SystemExit`` with status 128 + the signal's number), which unwinds through that
  ``finally``; a second signal while it cleans up is ignored;
* SIGKILL cannot be caught: the next backtest to start removes the leftovers
  (:func:`sweep_leftovers`): the segments of every ``alphad-backtest-<pid>`` whose process
  is gone, and those of its own prefix (left by an earlier process with the same pid).
  It never reuses them: a backtest's segments start zeroed.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from pathlib import Path

from alphad.ipc.shm import SHM_DIR

PREFIX = "alphad-backtest"
_OWNER = re.compile(rf"^{PREFIX}-(\d+)\.")


def prefix_for(pid: int) -> str:
    """The segment prefix of the backtest in process ``pid``."""
    return f"{PREFIX}-{pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_leftovers(shm_dir: Path | None = None) -> list[Path]:
    """Remove the segments killed backtests left (see the module); returns what was removed.
    Only this user's files are touched."""
    shm_dir = SHM_DIR if shm_dir is None else shm_dir
    me, uid, removed, alive = os.getpid(), os.getuid(), [], {}
    try:
        entries = list(shm_dir.iterdir())
    except OSError:
        return removed
    for path in entries:
        m = _OWNER.match(path.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid != me and alive.setdefault(pid, _alive(pid)):
            continue
        try:
            if path.stat().st_uid != uid:
                continue
            path.unlink()
        except OSError:  # gone meanwhile, or not ours to remove
            continue
        removed.append(path)
    return removed


class Stopped(SystemExit):
    """The backtest was stopped by ``signum`` (exit status 128 + ``signum``)."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    """While inside: each of ``signals`` raises :class:`Stopped` (once; a later one is
    ignored while the stack unwinds), so ``finally`` blocks run.  A signal the process
    ignores (SIG_IGN, e.g. SIGINT in a background job) stays ignored.  Outside the main
    thread nothing changes (Python delivers signals to it alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise Stopped(signum)

    previous = {s: signal.getsignal(s) for s in signals}
    for s, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            if old is not signal.SIG_IGN:
                signal.signal(s, old if old is not None else signal.SIG_DFL)
