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


def test_chaos_against_a_fake_alpaca_with_the_gateway_among_the_killed_then_positions_equal_the_brokers(tmp_path):
    """Issue 19's chaos run in short form: the gateway, router and risk processes SIGKILLed
    while orders wait 0.2 s at the broker for their fills; the full run: BENCHMARKS.md."""
    out = tmp_path / "chaos.json"
    run = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "chaos", "--config",
                          str(REPO / "configs" / "alpaca_paper.yaml"), "--fake-alpaca", "--kills", "5",
                          "--every", "1.5", "--stages", "gateway,router,risk", "--venue-latency-us", "200000",
                          "--drain-s", "30", "--seed", "3", "--work", str(tmp_path / "work"), "--json", str(out)],
                         capture_output=True, text=True, timeout=400)
    result = json.loads(out.read_text())
    assert run.returncode == 0, run.stderr[-3000:]
    assert result["journal_ok"] and result["duplicate_ids"] == 0 and result["unresolved"] == 0
    assert result["sent_twice"] == 0 and result["positions_equal_venue"], result["venue_positions"]
    assert result["venue_adjustments"] == 0  # equal by the fills themselves, not by the venue-wins correction
    assert result["positions_match_fills"] and result["not_back"] == [] and result["orders_at_venue"] > 0
    killed = {s: v["n"] for s, v in result["kill_to_ready_ms"].items()}
    assert sum(killed.values()) == 5 and killed.get("gateway", 0) >= 1, killed


@pytest.mark.parametrize("execution", ["immediate", "twap"])
def test_chaos_against_a_fake_tws_with_the_ib_gateway_among_the_killed_then_positions_equal_the_brokers(
        tmp_path, execution):
    """Issue 20's chaos run in short form: the IB gateway, router and risk processes SIGKILLed
    while orders wait 0.2 s at the fake TWS for their fills; with TWAP, children resting at IB
    are re-priced by modify while the router and the gateway are killed.  The full run:
    BENCHMARKS.md."""
    out = tmp_path / "chaos.json"
    run = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "chaos", "--config",
                          str(REPO / "configs" / "ib_paper.yaml"), "--fake-tws", "--kills", "5",
                          "--every", "1.5", "--stages", "gateway,router,risk", "--venue-latency-us", "200000",
                          "--execution", execution, "--horizon-s", "4", "--drain-s", "30", "--seed", "3",
                          "--work", str(tmp_path / "work"), "--json", str(out)],
                         capture_output=True, text=True, timeout=400)
    result = json.loads(out.read_text())
    assert run.returncode == 0, run.stderr[-3000:]
    assert result["journal_ok"] and result["duplicate_ids"] == 0 and result["unresolved"] == 0
    assert result["sent_twice"] == 0 and result["positions_equal_venue"], result["venue_positions"]
    assert (result["modifies"] > 0) == (execution == "twap"), result["modifies"]  # no modify sent twice (sent_twice)
    assert result["venue_adjustments"] == 0 and result["positions_match_fills"] and result["not_back"] == []
    killed = {s: v["n"] for s, v in result["kill_to_ready_ms"].items()}
    assert sum(killed.values()) == 5 and killed.get("gateway", 0) >= 1, killed
