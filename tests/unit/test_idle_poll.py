"""Idle pollers run at SCHED_IDLE, one pinned to each CPU, and stop when told."""
from __future__ import annotations

import os
import time

from alphad.daemon.shell import idle_poll


def test_pollers_when_started_then_sched_idle_pinned_and_stopped_cleanly():
    cpu = min(os.sched_getaffinity(0))
    pollers = idle_poll.start({cpu})
    try:
        assert len(pollers) == 1
        pid = pollers[0].pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.sched_getscheduler(pid) != os.SCHED_IDLE:
            time.sleep(0.01)
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.sched_getaffinity(pid) == {cpu}
    finally:
        idle_poll.stop(pollers)
    assert all(p.poll() is not None for p in pollers)
