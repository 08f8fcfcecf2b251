"""CPU pinning and scheduling policy for one stage process."""
from __future__ import annotations

import os


def fifo_priority(topology, position: int) -> int:
    """SCHED_FIFO priority of the process at ``position`` on the tick's path (feed is 0).

    Downstream processes rank higher: when a stage wakes the next one on a shared
    CPU, the woken stage preempts its waker at once, so a tick runs all the way to
    the router before upstream bookkeeping resumes. With equal priorities the waker
    keeps the CPU until it blocks, and on the 2-vCPU host that cost 213 against 141 µs
    tick-to-trade p50 (five/block, all on one CPU, BENCHMARKS.md run E).
    """
    p = topology.priority + position
    if p > 99:
        raise ValueError(f"topology.priority {topology.priority} + position {position} on the tick's path is {p}; "
                         f"SCHED_FIFO priorities end at 99, so lower topology.priority")
    return p


def apply_placement(topology, process_name: str, position: int = 0) -> str | None:
    """Pin to ``topology.cpus[process_name]`` and apply ``topology.sched``.

    ``position`` is the process's place on the tick's path (see ``fifo_priority``).
    Returns a warning text when the host refuses (e.g. SCHED_FIFO without
    CAP_SYS_NICE); the stage then runs on the default policy rather than not at all.
    """
    cpu = topology.cpus.get(process_name)
    if cpu is not None:
        available = os.sched_getaffinity(0)
        if cpu not in available:
            raise ValueError(f"topology.cpus.{process_name} is {cpu} but this process may run only on CPUs {sorted(available)}")
        os.sched_setaffinity(0, {cpu})
    if topology.sched == "fifo":
        priority = fifo_priority(topology, position)
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except PermissionError:
            return f"SCHED_FIFO priority {priority} refused (needs CAP_SYS_NICE); running on SCHED_OTHER"
    return None
