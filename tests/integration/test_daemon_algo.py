"""The real daemon with ``router.execution: twap``: risk's orders are worked as parents by the
router stage, and the journal shows them filled by their children (daemon/parents.py)."""
from __future__ import annotations

import json
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from alphad.daemon.supervisor.journal import verify
from alphad.ipc import frames
from alphad.ipc.dtypes import EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import Daemon, eventually  # noqa: E402

pytestmark = pytest.mark.slow


def test_twap_when_daemon_runs_then_journal_shows_parents_filled_or_expired_against_risk_orders(tmp_path):
    # A 3 s impact horizon so the live calibration fits within the test's seconds.
    d = Daemon(tmp_path, topology="fused", tag="-twap",
               sections={"router": {"execution": "twap", "algo": {"horizon_s": 1.0, "slices": 4, "step_ms": 20},
                                    "impact": {"horizon_s": 3.0, "min_observations": 10, "refit_interval_s": 1.0}}})
    journal = tmp_path / "journal" / "journal.jsonl"

    def completed() -> int:  # parents whose last child fill has reached the journal
        text = journal.read_text() if journal.exists() else ""
        return sum(1 for line in text.splitlines() if '"type":"exec"' in line and '"status":3,' in line)

    try:
        d.wait_ready()
        eventually(lambda: completed() >= 3, timeout=20, what="three parents completed")
        # the router's own fills calibrate the impact model, published on /metrics
        def observations() -> float:
            body = urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5).read().decode()
            key = 'alphad_impact_coefficient{instrument="0",param="observations"}'
            return next((float(line.split()[-1]) for line in body.splitlines() if line.startswith(key)), 0.0)

        assert eventually(observations, timeout=20, what="impact coefficients on /metrics") >= 10
        assert isinstance(d.ctl(frames.Shutdown()), frames.Ok)
        assert d.proc.wait(timeout=30) == 0
    finally:
        d.stop()
    assert verify(journal)[1] is None
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    qty = {e["client_order_id"]: e["qty"] for e in entries if e["type"] == "order"}
    execs = defaultdict(list)
    for e in entries:
        if e["type"] == "exec":
            execs[e["client_order_id"]].append(e)
    assert execs and set(execs) <= set(qty)  # every report is against an order risk approved: no child leaks
    filled = [cid for cid, ev in execs.items() if ev[-1]["status"] == EXEC_FILL]
    assert filled, "no parent completed"
    for cid in filled:  # children sum exactly to the parent
        assert sum(e["fill_qty"] for e in execs[cid]) == pytest.approx(qty[cid], rel=1e-9)
    # worked over time: some parent was filled by more than one child
    assert max(sum(e["status"] in (EXEC_PARTIAL, EXEC_FILL) for e in execs[cid]) for cid in filled) > 1
    for cid, ev in execs.items():  # a parent that expired reports what it did not fill
        if ev[-1]["status"] == EXEC_CANCELED:
            got = sum(e["fill_qty"] for e in ev)
            assert got + ev[-1]["leaves_qty"] == pytest.approx(qty[cid], rel=1e-9)
