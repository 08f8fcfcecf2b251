"""Settings that change while the daemon runs: SIGHUP (systemd's ExecReload) and `ctl reload`
re-read the config, `ctl set` changes one value; the risk limits take effect at the next
order, a new model card is swapped in without a restart or a lost tick, and a card that
fails its checks changes nothing.  The real `alphad run` on the shipped config."""
from __future__ import annotations

import re
import shutil
import signal
import urllib.request
from pathlib import Path

import msgspec
import pytest

from daemon_rig import REPO, Daemon, eventually
from alphad.daemon.supervisor.journal import entries
from alphad.ipc import frames

pytestmark = pytest.mark.slow


def metric(d, name: str, labels: str = "") -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5).read().decode()
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}{{([^}}]*)}} (\S+)$", text, re.M):
        if labels in m.group(1):
            total += float(m.group(2))
    return total


def edit(config: Path, change) -> None:
    cfg = msgspec.yaml.decode(config.read_bytes())
    change(cfg)
    config.write_bytes(msgspec.yaml.encode(cfg))


def controls(d, command: str) -> list[dict]:
    return [e for e in entries(Path(d.config).parent / "journal" / "journal.jsonl")
            if e["type"] == "control" and e.get("command") == command]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("reload"), tag="-reload")
    try:
        d.wait_ready()
        eventually(lambda: d.status().orders >= 3, timeout=120, what="orders flowing")
        yield d
    finally:
        d.stop()


def test_sighup_applies_the_edited_limits_and_names_what_needs_a_restart(daemon):
    d = daemon
    before_denied = metric(d, "alphad_risk_denials_total", 'reason="not_tradable"')
    edit(d.config, lambda c: (c["risk"].setdefault("instrument_defaults", {}).update(tradable=False),
                              c["features"].update(ema_fast_events=7)))
    d.proc.send_signal(signal.SIGHUP)  # what `systemctl reload alphad` sends (systemd/alphad.service)
    eventually(lambda: controls(d, "reload"), timeout=30, what="the reload journaled")
    entry = controls(d, "reload")[-1]
    assert "risk.instrument_defaults" in entry["applied"] and "features.ema_fast_events" in entry["needs_restart"]
    assert entry["who"] == {"peer": "SIGHUP"}
    st = d.status()
    assert d.proc.poll() is None and st.settings_generation == 1 and all(s.alive for s in st.stages.values())
    eventually(lambda: metric(d, "alphad_risk_denials_total", 'reason="not_tradable"') > before_denied + 5,
               timeout=60, what="orders denied as not tradable under the new limits")
    orders = d.status().orders
    edit(d.config, lambda c: c["risk"]["instrument_defaults"].update(tradable=True))
    assert isinstance(d.ctl(frames.Reload()), frames.Ok)
    eventually(lambda: d.status().orders > orders, timeout=60, what="orders again after the limits were restored")


def test_set_changes_one_limit_and_refuses_a_key_that_needs_a_restart(daemon):
    d = daemon
    reply = d.ctl(frames.Set(key="risk.account.throttle_rate", value="2"))
    assert isinstance(reply, frames.Ok), reply
    assert d.status().settings == {"risk.account.throttle_rate": 2}
    reply = d.ctl(frames.Set(key="topology.name", value="fused"))
    assert isinstance(reply, frames.Error) and "restart" in reply.error
    reply = d.ctl(frames.Set(key="risk.account.daily_loss_limit", value="-1"))
    assert isinstance(reply, frames.Error) and "daily_loss_limit" in reply.error  # checked as at start
    assert d.status().settings == {"risk.account.throttle_rate": 2}


def test_reload_swaps_the_model_without_a_restart_or_a_lost_tick_and_refuses_a_bad_card(daemon, tmp_path):
    d = daemon
    st = d.status()
    infer_pid, restarts = st.stages["infer"].pid, st.stages["infer"].restarts
    lost = metric(d, "alphad_ring_overruns_total")
    good = tmp_path / "model2"
    shutil.copytree(REPO / "data" / "demo_model", good)
    bad = tmp_path / "model_bad"
    shutil.copytree(REPO / "data" / "demo_model", bad)
    card = msgspec.json.decode((bad / "model_card.json").read_bytes())
    card["onnx_sha256"] = "0" * 64  # a graph that is not the one the card was made for
    (bad / "model_card.json").write_bytes(msgspec.json.encode(card))
    gen = st.settings_generation

    edit(d.config, lambda c: c["model"].update(card=str(bad / "model_card.json")))
    reply = d.ctl(frames.Reload())
    assert isinstance(reply, frames.Error) and "sha256" in reply.error and "nothing changed" in reply.error
    assert d.status().settings_generation == gen

    signals_before = d.status().stages["infer"].events_out
    edit(d.config, lambda c: c["model"].update(card=str(good / "model_card.json")))
    reply = d.ctl(frames.Reload())
    assert isinstance(reply, frames.Ok) and "model.card" in reply.message, reply
    st = d.status()
    assert st.settings_generation == gen + 1
    assert st.stages["infer"].pid == infer_pid and st.stages["infer"].restarts == restarts  # no restart
    assert "model2" in d.output() and "in use (settings generation" in d.output()
    eventually(lambda: d.status().stages["infer"].events_out > signals_before + 10, timeout=60,
               what="signals from the new model")
    assert metric(d, "alphad_ring_overruns_total") == lost  # no record lost across the swap


def test_halting_one_instrument_stops_its_orders_alone_until_resumed(daemon):
    d = daemon
    journal = Path(d.config).parent / "journal" / "journal.jsonl"
    denied = metric(d, "alphad_risk_denials_total", 'reason="instrument_halted"')
    reply = d.ctl(frames.Halt(symbol="NOPE"))
    assert isinstance(reply, frames.Error) and "BTCUSDT" in reply.error
    assert isinstance(d.ctl(frames.Halt(symbol="ETHUSDT", reason="news")), frames.Ok)
    assert d.status().halted_instruments == ["ETHUSDT"] and d.status().trading_state == "ACTIVE"
    halted_at = controls(d, "halt")[-1]["ts_ns"]
    eventually(lambda: metric(d, "alphad_risk_denials_total", 'reason="instrument_halted"') > denied + 3,
               timeout=90, what="ETHUSDT's orders denied as instrument_halted")

    def orders_since(t: int) -> list[int]:  # a second's grace for an order already past the gate
        return [e["instrument"] for e in entries(journal) if e["type"] == "order" and e["ts_ns"] > t + 10**9]
    eventually(lambda: 0 in orders_since(halted_at), timeout=90, what="BTCUSDT trading on")
    assert 1 not in orders_since(halted_at)
    assert isinstance(d.ctl(frames.Resume(symbol="ETHUSDT")), frames.Ok)
    assert d.status().halted_instruments == []
    resumed_at = controls(d, "resume")[-1]["ts_ns"]
    eventually(lambda: 1 in orders_since(resumed_at - 10**9), timeout=90, what="ETHUSDT orders again")


def test_positions_and_orders_answer_from_risks_book(daemon):
    d = daemon
    assert isinstance(d.ctl(frames.Halt(reason="read the book")), frames.Ok)
    try:
        eventually(lambda: (r := d.ctl(frames.Orders())) and isinstance(r, frames.OrdersReply) and not r.orders,
                   timeout=30, what="no order working once halted")
        reply = d.ctl(frames.Positions())
        assert isinstance(reply, frames.PositionsReply) and reply.venue is None  # the simulated venue
        held = {s: row.position for s, row in reply.positions.items() if row.position}
        assert held == d.status().positions and held
        assert all(row.fees > 0 for row in reply.positions.values())
    finally:
        assert isinstance(d.ctl(frames.Resume()), frames.Ok)
    r = __import__("subprocess").run([__import__("sys").executable, "-m", "alphad.daemon.cli", "ctl", "orders",
                                      "--endpoint", d.endpoint], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and '"orders"' in r.stdout, r.stderr
