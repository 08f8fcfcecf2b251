"""What the supervisor's webhook says for each change it sees (daemon/supervisor/alerts.py):
:func:`changes` between two snapshots, and the real poster delivering them to a real local
HTTP server."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alphad.daemon.risk.drawdown import AlertSender
from alphad.daemon.supervisor.alerts import Snapshot, changes
from alphad.ipc.control import ACTIVE, HALTED, REDUCING

BASE = Snapshot(state=ACTIVE, epoch=3, restarts=(("feed", 0), ("router", 0)), dd_level=0)


def with_(s: Snapshot, **kw) -> Snapshot:
    import msgspec

    return msgspec.structs.replace(s, **kw)


def kinds(before, now) -> list[tuple[str, bool]]:
    return [(a.kind, a.urgent) for a in changes(before, now)]


def test_changes_when_nothing_moved_then_no_alert():
    assert changes(BASE, BASE) == []


def test_changes_when_operator_halts_then_halt_alert_within_cooldown():
    now = with_(BASE, state=HALTED, reason="operator", by_operator=True, epoch=4)
    (a,) = changes(BASE, now)
    assert (a.kind, a.urgent) == ("halt", False)
    assert a.fields == {"state": "HALTED", "reason": "operator", "previous_state": "ACTIVE"}


def test_changes_when_daily_loss_latches_halted_then_urgent_kill_switch_alert():
    now = with_(BASE, state=HALTED, reason="daily_loss", epoch=4)
    assert kinds(BASE, now) == [("kill_switch", True)]


def test_changes_when_state_lowered_or_reduced_then_resume_and_reducing_alerts():
    halted = with_(BASE, state=HALTED, reason="operator", by_operator=True, epoch=4)
    assert kinds(halted, with_(BASE, epoch=5)) == [("resume", False)]
    assert kinds(BASE, with_(BASE, state=REDUCING, reason="drawdown_escalate:critical", epoch=4)) == [("reducing", False)]


def test_changes_when_halt_resume_halt_between_two_reads_then_halt_seen_by_its_epoch():
    before = with_(BASE, state=HALTED, reason="operator", by_operator=True, epoch=4)
    assert kinds(before, with_(before, epoch=6)) == [("halt", False)]


def test_changes_when_a_stage_restarts_then_one_alert_per_restarted_stage():
    now = with_(BASE, restarts=(("feed", 0), ("router", 2)))
    (a,) = changes(BASE, now)
    assert a.kind == "restart:router" and a.fields == {"stage": "router", "restarts": 2}


def test_changes_when_data_goes_stale_and_comes_back_then_stale_data_then_data_back():
    stale = with_(BASE, stale=("BTCUSDT",), feed_data_down=1)
    (a,) = changes(BASE, stale)
    assert a.kind == "stale_data" and a.fields["symbols"] == ["BTCUSDT"] and a.fields["feed_data_down"] == 1
    assert kinds(stale, BASE) == [("data_back", False)]


def test_changes_when_ladder_steps_then_drawdown_alerts_and_kill_step_is_urgent():
    assert kinds(BASE, with_(BASE, dd_level=1)) == [("drawdown:escalate:warning", False)]
    assert kinds(with_(BASE, dd_level=3), with_(BASE, dd_level=4)) == [("drawdown:escalate:kill", True)]
    assert kinds(with_(BASE, dd_level=2), with_(BASE, dd_level=0)) == [("drawdown:recover:normal", False)]
    assert kinds(with_(BASE, dd_level=-1), with_(BASE, dd_level=0)) == []  # risk's state appearing is no step


@pytest.fixture
def hook():
    got, arrived = [], threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got
    server.shutdown()
    server.server_close()


def test_alerts_when_posted_then_server_receives_json_and_cooldown_holds_repeats(hook):
    url, got = hook
    sender = AlertSender(url, cooldown_s=3600.0)
    halt = with_(BASE, state=HALTED, reason="operator", by_operator=True, epoch=4)
    for _ in range(2):  # the same kind twice within the cooldown: posted once
        for a in changes(BASE, halt):
            sender.submit(a.kind, {"summary": a.summary, **a.fields}, urgent=a.urgent)
    for a in changes(halt, with_(halt, reason="daily_loss", by_operator=False, epoch=5)):
        sender.submit(a.kind, {"summary": a.summary, **a.fields}, urgent=a.urgent)
    sender.close()  # posts what is queued, then stops
    assert [b["kind"] for b in got] == ["halt", "kill_switch"]
    assert got[0]["state"] == "HALTED" and got[0]["reason"] == "operator" and "resume" in got[0]["summary"]
    assert sender.dropped_cooldown == 1 and sender.sent == 2


def test_config_when_webhook_url_not_http_then_start_refused_naming_the_key():
    from alphad.daemon.config import ConfigError, decode_config

    with pytest.raises(ConfigError, match="supervisor.webhook_url"):
        decode_config("universe: [{id: 0, symbol: AAA}]\nsupervisor: {webhook_url: 'ftp://example'}\n")
    cfg = decode_config("universe: [{id: 0, symbol: AAA}]\nsupervisor: {webhook_url: 'http://127.0.0.1:9/x', "
                        "webhook_cooldown_s: 5}\n")
    assert cfg.supervisor.webhook_url == "http://127.0.0.1:9/x" and cfg.supervisor.webhook_cooldown_s == 5.0
