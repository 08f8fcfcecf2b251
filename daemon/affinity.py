"""CPU pinning and scheduling policy for one stage process."""
from __future__ import annotations

import os


def apply_placement(topology, process_name: str) -> str | None:
    """Pin to ``topology.cpus[process_name]`` and apply ``topology.sched``.

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
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(topology.priority))
        except PermissionError:
            return f"SCHED_FIFO priority {topology.priority} refused (needs CAP_SYS_NICE); running on SCHED_OTHER"
    return None
