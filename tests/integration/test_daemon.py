"""The daemon end to end: `alphad run` starts the five real stage processes.

One daemon per module (start-up compiles or loads every kernel in five processes);
the tests run in file order and the last one shuts it down.
"""
from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest

from alphad.daemon.infer.session import choose_providers
from alphad.ipc import frames
from alphad.ipc.shm import list_segments

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import STAGES, Daemon, eventually  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("daemon"))
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def test_run_when_started_then_five_stage_processes_alive_and_orders_fill_within_10s(daemon):
    st = daemon.status()
    assert set(st.stages) == set(STAGES)
    pids = {s.pid for s in st.stages.values()}
    assert len(pids) == 5 and all(s.alive and s.ready for s in st.stages.values())
    for pid in pids:  # really separate processes, children of the supervisor
        assert Path(f"/proc/{pid}/status").read_text().count(f"PPid:\t{daemon.proc.pid}") == 1
    # the shipped placement: auto; status says what was chosen, and the stages really run that way
    p = st.placement
    assert p is not None and p.mode == "auto" and p.infer_keep_warm_us == 100, p
    assert f"alphad: placement auto: {p.reason}" in daemon.output()
    for stage, s in st.stages.items():
        assert os.sched_getaffinity(s.pid) == ({p.cpus[stage]} if stage in p.cpus else os.sched_getaffinity(0))
        assert os.sched_getscheduler(s.pid) == (os.SCHED_FIFO if p.sched == "fifo" else os.SCHED_OTHER)
    st = eventually(lambda: (s := daemon.status()).fills > 0 and s, timeout=10, what="a fill")
    assert st.orders >= st.fills > 0
    assert st.trading_state == "ACTIVE"
    # the provider the session really runs on (config provider: auto), read back from ORT
    assert st.inference_provider == choose_providers("auto")[0]


def test_metrics_when_scraped_then_tick_to_trade_histogram_and_counters_served(daemon):
    eventually(lambda: daemon.status().fills > 5, timeout=15, what="some fills")
    body = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).read().decode()
    assert 'alphad_tick_to_trade_seconds_bucket{le="1e-06"}' in body
    assert 'alphad_tick_to_trade_seconds_bucket{le="0.01"}' in body
    count = [l for l in body.splitlines() if l.startswith("alphad_tick_to_trade_seconds_count")]
    assert count and float(count[0].split()[-1]) > 0
    for name in ("alphad_orders_total", "alphad_fills_total", "alphad_events_total", "alphad_risk_denials_total"):
        assert f"# TYPE {name} counter" in body
    # live drift of every model input against the card's training histograms
    psi = {l.split('"')[1]: float(l.split()[-1]) for l in body.splitlines() if l.startswith("alphad_feature_psi{")}
    assert set(psi) == {"ret_1", "ema_ret_fast", "ema_ret_slow", "mid_ema_dev", "imbalance_l1", "spread_bps",
                        "trade_flow", "vol_ema"}
    assert all(v >= 0 for v in psi.values())
    assert f'alphad_inference_provider{{provider="{choose_providers("auto")[0]}"}} 1.0' in body
    assert 'alphad_sizing_multiplier{kind="risk"} 1.0' in body  # the drawdown ladder's, at NORMAL


def test_control_when_frame_malformed_then_error_reply_and_daemon_keeps_running(daemon):
    bad = daemon.ctl(b"\x93\x01\x02")  # msgpack, but not a request
    assert isinstance(bad, frames.Error) and "bad request" in bad.error
    unknown = daemon.ctl(msgspec.msgpack.encode({"cmd": "launch_missiles"}))
    assert isinstance(unknown, frames.Error) and "launch_missiles" in unknown.error
    assert daemon.status().trading_state == "ACTIVE"


def test_halt_when_risk_stage_restarted_then_no_order_until_resume(daemon):
    assert isinstance(daemon.ctl(frames.Halt(reason="test")), frames.Ok)
    time.sleep(0.5)  # orders already past risk may still fill
    before = daemon.status()
    daemon.kill_stage("risk")
    denials0 = daemon.status().denials
    eventually(lambda: daemon.status().denials > denials0, timeout=15, what="denials while halted")
    after = daemon.status()
    assert after.trading_state == "HALTED"
    assert after.orders == before.orders  # nothing passed the gate, across the restart
    assert isinstance(daemon.ctl(frames.Resume()), frames.Ok)
    eventually(lambda: daemon.status().orders > after.orders, timeout=15, what="orders after resume")


def test_reduce_when_halted_then_state_stays_halted_and_flatten_closes_positions(daemon):
    eventually(lambda: daemon.status().fills > 0, timeout=15, what="fills")
    assert isinstance(daemon.ctl(frames.Halt(reason="flatten test")), frames.Ok)
    reply = daemon.ctl(frames.Reduce())
    assert isinstance(reply, frames.Ok) and "stays HALTED" in reply.message
    fills = daemon.status().fills
    assert isinstance(daemon.ctl(frames.Flatten()), frames.Ok)
    # reduce-only orders pass even while HALTED and fill
    eventually(lambda: daemon.status().fills > fills, timeout=15, what="flatten fills")
    st = daemon.status()
    assert st.trading_state == "HALTED" and st.state_reason == "operator"
    assert isinstance(daemon.ctl(frames.Resume()), frames.Ok)
    assert daemon.status().trading_state == "ACTIVE"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_sigkilled_when_running_then_restarted_and_pipeline_goes_on(daemon, stage):
    st2 = daemon.kill_stage(stage)
    assert st2.stages[stage].restarts >= 1
    fills = st2.fills
    eventually(lambda: daemon.status().fills > fills, timeout=20, what=f"fills after {stage} restart")


def test_shutdown_when_requested_then_no_process_and_no_shm_segment_left(daemon):
    pids = [s.pid for s in daemon.status().stages.values()]
    assert list_segments(daemon.prefix), "segments should exist while running"
    assert isinstance(daemon.ctl(frames.Shutdown()), frames.Ok)
    assert daemon.proc.wait(timeout=30) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert list_segments(daemon.prefix) == []
    out = daemon.output()
    assert "shared memory removed" in out
    journal = Path(daemon.config).parent / "journal" / "journal.jsonl"
    from alphad.daemon.supervisor.journal import verify

    n, bad = verify(journal)
    assert n > 0 and bad is None
    import json

    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    kinds = {e["type"] for e in entries}
    assert {"order", "arrival", "exec", "denial", "control"} <= kinds
    # every decision is there: the denials while halted carry their reason
    assert any(e["type"] == "denial" and e["reason_name"] == "halted" for e in entries)
    assert [e["command"] for e in entries if e["type"] == "control"][:2] == ["halt", "resume"]
    # and `alphad tca` reads this very journal: one parent per order, priced at its arrival quote
    from alphad.daemon.cli import main as alphad_main
    from alphad.ops.tca import analyze, read_journal

    rows = analyze(read_journal(journal))
    orders = {e["client_order_id"] for e in entries if e["type"] == "order"}
    assert 0 < len(rows) <= len(orders)
    assert all(r.arrival_mid > 0 and 0.0 <= r.fill_rate <= 1.0 for r in rows)
    assert any(r.filled > 0 and r.rating in "ABCD" for r in rows)
    out = journal.parent / "tca"
    assert alphad_main(["tca", str(journal), "-o", str(out)]) == 0
    assert (out / "tca_report.md").exists() and (out / "tca.png").stat().st_size > 0
