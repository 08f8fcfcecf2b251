"""Optional idle pollers: keep the host's CPUs out of HLT between ticks.

On a virtual machine an idle vCPU halts, and waking it (the futex wake of the
next stage) costs a VM exit and re-entry.  On the 2-vCPU CI VM that is most of
a block-mode hop: ``python -m alphad.ops.hopbench --wait block`` measured p50
~35 µs and a p99 of milliseconds, against 22 µs / 76 µs with these pollers
(BENCHMARKS.md).  The kernel's ``idle=poll`` or the haltpoll cpuidle driver do
the same job better; this is for hosts where the boot line cannot change.

Each poller is a process pinned to one CPU at SCHED_IDLE, the lowest priority
there is: it runs only when nothing else wants that CPU, and any stage that
wakes up preempts it at once.  The price is that every "idle" CPU shows as
busy.  Off unless ``topology.idle_poll: true``.
"""
from __future__ import annotations

import os
import subprocess
import sys

_LOOP = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)\n"  # PR_SET_PDEATHSIG: die with the caller
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"  # a Ctrl-C is the daemon's to handle: it stops these
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "while True:\n"
    "    pass\n"
)


def start(cpus: set[int] | None = None) -> list[subprocess.Popen]:
    """One SCHED_IDLE busy loop per CPU (default: every CPU this process may use)."""
    cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    return [subprocess.Popen([sys.executable, "-c", _LOOP, str(c)], stdin=subprocess.DEVNULL) for c in cpus]


def stop(pollers: list[subprocess.Popen]) -> None:
    for p in pollers:
        if p.poll() is None:
            p.kill()
    for p in pollers:
        p.wait()
