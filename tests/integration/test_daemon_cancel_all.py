"""``alphad ctl cancel-all`` and a halt on the real daemon: working TWAP parents (a 60 s
schedule) end CANCELED at once, each with its remainder, instead of working on."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alphad.daemon.router.order_fsm import REASON_CXL_USER
from alphad.daemon.supervisor.journal import entries, last_run, verify
from alphad.ipc import frames
from alphad.ipc.dtypes import EXEC_CANCELED

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import Daemon, eventually  # noqa: E402

pytestmark = pytest.mark.slow


def open_orders(journal: Path) -> set[int]:
    return {o["client_order_id"] for o in last_run(journal)[1]} if journal.exists() else set()


def cancelled_by_user(journal: Path) -> set[int]:
    return {e["client_order_id"] for e in entries(journal)
            if e["type"] == "exec" and e["status"] == EXEC_CANCELED and e["reason"] == REASON_CXL_USER}


def test_cancel_all_then_halt_when_twap_parents_work_then_every_working_order_ends_at_once(tmp_path):
    d = Daemon(tmp_path, tag="-cxl", sections={"router": {"execution": "twap",
                                                          "algo": {"horizon_s": 60.0, "slices": 10, "step_ms": 50}}})
    journal = tmp_path / "journal" / "journal.jsonl"
    try:
        d.wait_ready()
        eventually(lambda: len(open_orders(journal)) >= 2, timeout=60, what="two parents working")
        working = open_orders(journal)
        ctl = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "ctl", "cancel-all", "--endpoint", d.endpoint],
                             capture_output=True, text=True, timeout=30)
        assert ctl.returncode == 0, ctl.stderr
        message = json.loads(ctl.stdout)["message"]
        sent = int(re.search(r"cancels sent for (\d+) working", message).group(1))
        assert sent >= len(working)  # every parent working when asked (and any that came since)
        # each ends CANCELED by the user within seconds, not after its 60 s schedule
        eventually(lambda: working <= cancelled_by_user(journal), timeout=10, what="the working parents cancelled")
        assert d.status().trading_state == "ACTIVE"  # cancel-all leaves the state alone: trading goes on
        eventually(lambda: open_orders(journal) - working, timeout=60, what="new parents after the cancel-all")

        # a router that cannot act (stopped here; at full feed speed, back-pressured by risk):
        # the answer still comes within a second, says so, and status counts the request
        # until the router acts on it
        router_pid = d.status().stages["router"].pid
        os.kill(router_pid, signal.SIGSTOP)
        try:
            reply = d.ctl(frames.CancelAll())  # answered after CANCEL_ALL_WAIT_S (BENCHMARKS: timings are measured there)
            assert isinstance(reply, frames.Ok) and "has not acted on it yet" in reply.message, reply
            assert d.status().cancel_all_pending == 1
        finally:
            os.kill(router_pid, signal.SIGCONT)
        eventually(lambda: d.status().cancel_all_pending == 0, timeout=30, what="the router acting on it")

        assert isinstance(d.ctl(frames.Halt(reason="test")), frames.Ok)
        # the halt cancels what works at the venues, and risk lets nothing new through
        eventually(lambda: not open_orders(journal), timeout=10, what="every order ended after the halt")
        assert isinstance(d.ctl(frames.Shutdown()), frames.Ok)
        assert d.proc.wait(timeout=30) == 0
    finally:
        d.stop()
    assert verify(journal)[1] is None
    control = [e["command"] for e in entries(journal) if e["type"] == "control"]
    assert "cancel-all" in control and "halt" in control
