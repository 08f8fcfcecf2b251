"""Placement of a stage process: pinning and the SCHED_FIFO ladder along the tick's path."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from alphad.daemon.shell.affinity import fifo_priority
from alphad.daemon.shell.config import Topology

# Runs in a child so the test process's own policy and affinity are left alone.
_CHILD = """
import json, os, sys
from alphad.daemon.shell.affinity import apply_placement
from alphad.daemon.shell.config import Topology
cpu, position = int(sys.argv[1]), int(sys.argv[2])
warning = apply_placement(Topology(sched="fifo", priority=20, cpus={"risk": cpu}), "risk", position=position)
print(json.dumps({"warning": warning, "policy": os.sched_getscheduler(0),
                  "priority": os.sched_getparam(0).sched_priority, "cpus": sorted(os.sched_getaffinity(0))}))
"""


def test_fifo_priority_when_later_on_the_path_then_higher():
    topology = Topology(sched="fifo", priority=10)
    assert [fifo_priority(topology, k) for k in range(5)] == [10, 11, 12, 13, 14]


def test_fifo_priority_when_ladder_passes_99_then_error_names_the_key():
    with pytest.raises(ValueError, match="topology.priority 95 \\+ position 5 .* is 100"):
        fifo_priority(Topology(sched="fifo", priority=95), 5)


def test_apply_placement_when_risk_is_fourth_then_pinned_at_base_plus_three():
    cpu = max(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(cpu), "3"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["cpus"] == [cpu]
    if got["warning"] is None:
        assert (got["policy"], got["priority"]) == (os.SCHED_FIFO, 23)
    else:  # a host without CAP_SYS_NICE: the stage says so and runs on the default policy
        assert got["warning"].startswith("SCHED_FIFO priority 23 refused")
        assert got["policy"] == os.SCHED_OTHER


def test_apply_placement_when_cpu_not_allowed_then_error_names_the_cpus():
    from alphad.daemon.shell.affinity import apply_placement
    bad = max(os.sched_getaffinity(0)) + 64
    with pytest.raises(ValueError, match=f"topology.cpus.feed is {bad} but this process may run only on CPUs"):
        apply_placement(Topology(cpus={"feed": bad}), "feed")
