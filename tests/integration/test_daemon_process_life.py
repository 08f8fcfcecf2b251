"""Process life of a real daemon: a refused second instance touches nothing of the live one,
a frozen stage is found, alerted, killed and restarted (with backoff) and its stale decisions
are never acted on, and no stage outlives a SIGKILLed supervisor."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from alphad.daemon.risk.codes import A_CASH, A_DAY_START_EQUITY, A_FEES, A_LOSS_REF, A_REALISED, B_POSITION
from alphad.daemon.supervisor.control_port import pid_alive
from alphad.ipc import frames
from alphad.ipc.shm import list_segments

from daemon_rig import Daemon, eventually, free_port

pytestmark = pytest.mark.slow

MAX_AGE_MS = 1000  # risk.max_signal_age_ms and router.max_order_age_ms in these runs
STALE_AFTER_S = 1.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("life"), tag="life", risk={"max_signal_age_ms": MAX_AGE_MS},
               sections={"supervisor": {"stale_after_s": STALE_AFTER_S},
                         "router": {"max_order_age_ms": MAX_AGE_MS}})
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def stale_signal_denials(d) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5).read().decode()
    lines = [l for l in body.splitlines() if l.startswith("alphad_risk_denials_total") and 'reason="stale_signal"' in l]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def test_second_run_when_same_prefix_then_refused_and_the_live_instance_keeps_trading(daemon, tmp_path):
    segments = sorted(p.name for p in list_segments(daemon.prefix))
    orders = daemon.status().orders
    second = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(daemon.config),
                             "--control", f"tcp://127.0.0.1:{free_port()}", "--metrics-port", str(free_port())],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert second.returncode != 0
    assert "another alphad instance" in second.stderr and "Traceback" not in second.stderr, second.stderr
    assert sorted(p.name for p in list_segments(daemon.prefix)) == segments  # nothing removed
    eventually(lambda: daemon.status().orders > orders, timeout=15, what="orders after the refused start")
    daemon.kill_stage("router")  # and the live instance can still restart a stage on its segments


def test_frozen_stage_when_sigstopped_then_alerted_killed_restarted_and_its_stale_decisions_dropped(daemon):
    daemon.status()
    pid = daemon.status().stages["risk"].pid
    before = stale_signal_denials(daemon)
    os.kill(pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        eventually(lambda: "alert: stage risk" in daemon.output(), timeout=10, interval=0.05, what="stale alert")
        detected_after = time.monotonic() - frozen_at
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
    # the heartbeat is at most ~50 ms old when frozen; the supervisor looks every 100 ms
    assert STALE_AFTER_S <= detected_after < STALE_AFTER_S + 1.0
    assert "restarting in 0.25 s" in daemon.output()  # the first restart's backoff
    st = eventually(lambda: (s := daemon.status()).stages["risk"].ready and s.stages["risk"].pid != pid and s,
                    timeout=60, what="risk restarted")
    assert not st.stages["risk"].stale and st.stages["risk"].restarts >= 1
    # the signals that waited in the ring while risk was frozen are older than the age: denied, not traded
    eventually(lambda: stale_signal_denials(daemon) > before, timeout=15, what="stale signals denied")
    orders = st.orders
    eventually(lambda: daemon.status().orders > orders, timeout=15, what="orders after the restart")
    journal = daemon.config.parent / "journal" / "journal.jsonl"
    eventually(lambda: journal.exists() and journal.stat().st_size > 0, timeout=10, what="journal")
    ages = [e["ts"] - e["t_origin"] for e in map(json.loads, journal.read_text().splitlines()) if e["type"] == "order"
            and e.get("flags", 0) == 0]
    assert ages and max(ages) <= MAX_AGE_MS * 1_000_000  # no decision older than the age was acted on


def test_supervisor_when_sigkilled_then_no_stage_outlives_it_and_a_new_run_cleans_up_and_starts(tmp_path):
    (tmp_path / "a").mkdir()
    first = Daemon(tmp_path / "a", tag="orphan")
    try:
        first.wait_ready()
        pids = [s.pid for s in first.status().stages.values()]
        assert all(pid_alive(p) for p in pids)
        first.proc.kill()  # SIGKILL: no shutdown code runs
        first.proc.wait()
        eventually(lambda: not any(pid_alive(p) for p in pids), timeout=10, what="every stage dead")
        assert list_segments(first.prefix)  # what the dead instance left
        (tmp_path / "b").mkdir()
        second = Daemon(tmp_path / "b", tag="orphan")  # the same shm prefix
        try:
            second.wait_ready()
            eventually(lambda: second.status().fills > 0, timeout=30, what="fills on the new instance")
        finally:
            second.stop()
    finally:
        first.stop()


def risk_book(d) -> tuple[np.ndarray, np.ndarray]:
    """Positions and (cash, realised PnL, fees, day-start equity, daily-loss reference) as
    the risk stage holds them in its segment."""
    from alphad.daemon.config import load_config
    from alphad.daemon.risk import core as rk
    from alphad.daemon.shell.topology import segment_names
    from alphad.ipc.shm import Segment, state_views

    cfg, _ = load_config(str(d.config))
    specs = rk.state_specs_of(cfg)
    seg = Segment.attach(segment_names(cfg.shm.prefix)["risk_state"])
    try:
        views = [v.copy() for v in state_views(seg.buf, specs[:3])]  # book, sectors, account
    finally:
        seg.close()
    book, _, account = views
    return book[:, B_POSITION], account[[A_CASH, A_REALISED, A_FEES, A_DAY_START_EQUITY, A_LOSS_REF]]


def session_ids(journal) -> dict[int, list[int]]:
    """The journal's order ids by daemon run (their high bits)."""
    from alphad.daemon.risk.core import ID_SESSION_SHIFT
    from alphad.daemon.supervisor.journal import entries

    out: dict[int, list[int]] = {}
    for e in entries(journal):
        if e["type"] == "order":
            out.setdefault(e["client_order_id"] >> ID_SESSION_SHIFT, []).append(e["client_order_id"])
    return out


def test_full_restart_when_halted_with_fills_then_pnl_and_halt_restored_from_the_journal(tmp_path):
    first = Daemon(tmp_path, tag="restart")
    try:
        first.wait_ready()
        eventually(lambda: first.status().fills > 5, timeout=30, what="fills")
        assert isinstance(first.ctl(frames.Halt(reason="restart test")), frames.Ok)
        time.sleep(1.0)  # orders already past risk fill or end
        before = first.status()
        positions, money = risk_book(first)
        assert positions.any() and money[2] > 0  # something to restore: positions and fees
        assert isinstance(first.ctl(frames.Shutdown()), frames.Ok)
        first.proc.wait(timeout=60)
    finally:
        first.stop()
    second = Daemon(tmp_path, tag="restart")  # the same journal directory
    try:
        second.wait_ready()
        after = second.status()
        assert after.trading_state == "HALTED" and after.state_reason == "operator"
        assert after.realized_pnl == before.realized_pnl  # the fills replayed from the journal
        restored, restored_money = risk_book(second)
        np.testing.assert_allclose(restored, positions, rtol=1e-12, atol=1e-12)
        # cash, realised PnL, fees, and the day's references (the same day: not re-armed from
        # the rebuilt equity, so a restart never resets the daily loss limit)
        np.testing.assert_allclose(restored_money, money, rtol=1e-12)
        assert "day-start equity" in second.output()
        assert "rebuilt from" in second.output() and "restored from" in second.output()
        denials = after.denials
        eventually(lambda: second.status().denials > denials, timeout=15, what="denials while halted")
        assert second.status().orders == 0  # nothing passed the restored HALT
        second.proc.kill()  # and a SIGKILLed supervisor: the HALT is in the journal already
        second.proc.wait()
    finally:
        second.stop()
    third = Daemon(tmp_path, tag="restart")
    try:
        third.wait_ready()
        assert third.status().trading_state == "HALTED"
        assert isinstance(third.ctl(frames.Resume()), frames.Ok)
        eventually(lambda: third.status().orders > 0, timeout=20, what="orders after resume")
        journal = tmp_path / "journal" / "journal.jsonl"
        eventually(lambda: len(session_ids(journal)) == 2, timeout=20, what="the third run's orders journaled")
    finally:
        third.stop()
    # the id sequence goes on across restarts: every id of the third run (session 3; the
    # halted second run sent none) above every id of the first
    ids = session_ids(journal)
    assert sorted(ids) == [1, 3] and min(ids[3]) > max(ids[1])
