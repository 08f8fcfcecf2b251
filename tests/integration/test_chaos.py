"""``alphad chaos`` in short (CI) form: SIGKILLs of the router, risk and features stages of a
real daemon with 20 ms venue latency, immediate and TWAP execution; no duplicated id, no
order left without its end, the journal verifies, risk's positions equal the venues' fills.  The long runs: BENCHMARKS.md."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from daemon_rig import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("execution", ["immediate", "twap"])
def test_chaos_when_stages_sigkilled_under_venue_latency_then_no_duplicate_no_unresolved_journal_verifies(
        tmp_path, execution):
    out = tmp_path / "chaos.json"
    run = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "chaos", "--config", str(REPO / "config.yaml"),
                          "--kills", "5", "--every", "1.0", "--stages", "router,risk,features",
                          "--venue-latency-us", "20000", "--execution", execution, "--horizon-s", "4",
                          "--seed", "4", "--work", str(tmp_path / "work"), "--json", str(out)],
                         capture_output=True, text=True, timeout=400)
    result = json.loads(out.read_text())
    assert run.returncode == 0, run.stderr[-3000:]
    assert result["journal_ok"] and result["duplicate_ids"] == 0 and result["unresolved"] == 0
    assert result["positions_match_fills"], result["position_mismatch"]  # risk's book = the venues' fills
    assert result["not_back"] == [] and result["orders"] > 0
    killed = {s: v["n"] for s, v in result["kill_to_ready_ms"].items()}
    assert sum(killed.values()) == 5 and killed.get("router", 0) >= 1, killed
