"""Drawdown ladder: real 2008 and 2020 equity paths, rolling windows vs a brute-force oracle,
the ladder's effects on the gate, and webhook alerts against a real local HTTP server."""
from __future__ import annotations

import http.server
import json
import threading
import time

import msgspec
import numpy as np
import pandas as pd
import pytest

from alphad.daemon.risk import codes as rc
from alphad.ipc import control as cw
from alphad.daemon.risk.drawdown import (
    AlertSender,
    DrawdownArrays,
    event_name,
    start_session_drawdown,
    update_drawdown,
)
from alphad.daemon.risk.portfolio import apply_fill, on_mark
from alphad.daemon.risk.checks import check_order, resume
from alphad.daemon.risk.config import DrawdownConfig, RiskConfig, build_risk_arrays

NS_DAY_CLOSE = 21 * 3600 * 10**9  # 16:00 New York is ~21:00 UTC; daily samples at the close


def _spy_ladder(shared_data, start, end):
    """Buy and hold $1M of SPY at the first close; feed the account equity to the ladder daily."""
    df = pd.read_csv(shared_data / "daily" / "spy_daily_1999-2020.csv", parse_dates=["date"])
    d = df[(df.date >= start) & (df.date <= end)]
    cfg = msgspec.convert({}, type=RiskConfig)
    a = build_risk_arrays(cfg, [("SPY", "", 0.01, 1.0)], equity=1_000_000.0)
    px0 = float(d.close.iloc[0])
    assert on_mark(0, px0, a.limits, a.book, a.sectors, a.account)
    # Whole shares; the residual cash stays in the account.
    assert apply_fill(0, 1, float(int(1_000_000 // px0)), px0, 0.0, a.limits, a.book, a.sectors,
                      a.account) == 0
    ladder = DrawdownArrays(float(a.account[rc.A_EQUITY]), capacity=64)
    thr = cfg.drawdown.threshold_table()
    events = []
    states = []
    for day, close in zip(d.date, d.close):
        ts = int(np.datetime64(day, "ns").astype(np.int64)) + NS_DAY_CLOSE
        assert on_mark(0, float(close), a.limits, a.book, a.sectors, a.account)
        ev = update_drawdown(ts, float(a.account[rc.A_EQUITY]), ladder.state, ladder.idx,
                             ladder.win_ts, ladder.win_eq, thr, cfg.drawdown.recovery_hysteresis,
                             cfg.drawdown.emergency_risk_multiplier, a.control, a.account)
        if ev:
            events.append((day.strftime("%Y-%m-%d"), event_name(ev)))
            states.append((int(a.control[cw.C_STATE]), float(a.account[rc.A_RISK_MULT]),
                           int(a.control[cw.C_FLATTEN])))
    return events, states, a, ladder


@pytest.mark.data
def test_ladder_when_spy_held_into_2008_then_walks_every_step_to_kill(shared_data):
    # Arrange / Act: SPY bought at the 2008-05-01 close (141.1), held through the crash.
    events, states, a, ladder = _spy_ladder(shared_data, "2008-05-01", "2009-03-31")
    # Assert: the dates were computed once from the data and checked against the tape: SPY
    # slid through June 2008 (-10% from the May high by 06-26), long before Lehman.
    assert events == [
        ("2008-05-23", "escalate:warning"),
        ("2008-05-29", "recover:normal"),
        ("2008-06-03", "escalate:warning"),
        ("2008-06-05", "recover:normal"),
        ("2008-06-06", "escalate:warning"),
        ("2008-06-11", "escalate:critical"),
        ("2008-06-20", "escalate:emergency"),
        ("2008-06-26", "escalate:kill"),
    ]
    # Effects: warning alerts only; critical -> REDUCING; emergency halves risk; kill halts and
    # asks for a flatten.
    assert states[0] == (cw.ACTIVE, 1.0, 0)
    assert states[5] == (cw.REDUCING, 1.0, 0)
    assert states[6] == (cw.REDUCING, 0.5, 0)
    assert states[7] == (cw.HALTED, 0.5, 1)
    # The deepest peak-to-trough drawdown of the path is the March 2009 low (SPY 68.11 vs the
    # 2008-05-19 high of 142.66 close): about -52%.
    assert ladder.state[2 + 7] == pytest.approx(1 - 68.11 / 142.66, abs=0.01)
    # No new order passes the gate after the kill step until resume, not even a reducing sell.
    assert check_order(0, 1, 1.0, float("nan"), 0, *a.gate_args()) == rc.DENY_HALTED
    assert check_order(0, -1, 100.0, float("nan"), 0, *a.gate_args()) == rc.DENY_HALTED
    resume(a.control, a.account, 0)
    assert check_order(0, -1, 100.0, float("nan"), 0, *a.gate_args()) == rc.OK


@pytest.mark.data
def test_ladder_when_2020_crash_and_recovery_then_recovery_reported_but_halt_kept(shared_data):
    events, states, a, _ = _spy_ladder(shared_data, "2020-01-02", "2020-08-28")
    # The Covid crash gaps from CRITICAL straight to KILL (SPY 297.5 on 2020-02-27, -12% from the
    # 338.3 close of 02-19); the rebound is reported step by step (the June retest re-escalates)
    # and is back to NORMAL on 2020-08-05 (SPY 332.1, -1.8%).
    assert events == [
        ("2020-01-31", "escalate:warning"),
        ("2020-02-03", "recover:normal"),
        ("2020-02-24", "escalate:warning"),
        ("2020-02-25", "escalate:critical"),
        ("2020-02-27", "escalate:kill"),
        ("2020-03-04", "recover:emergency"),
        ("2020-03-05", "escalate:kill"),
        ("2020-06-03", "recover:emergency"),
        ("2020-06-05", "recover:critical"),
        ("2020-06-11", "escalate:kill"),
        ("2020-06-16", "recover:emergency"),
        ("2020-06-24", "escalate:kill"),
        ("2020-07-02", "recover:emergency"),
        ("2020-07-06", "recover:critical"),
        ("2020-07-21", "recover:warning"),
        ("2020-07-24", "escalate:critical"),
        ("2020-07-29", "recover:warning"),
        ("2020-08-05", "recover:normal"),
    ]
    # Recovery restores the risk multiplier but the KILL halt needs an operator resume.
    assert states[-1] == (cw.HALTED, 1.0, 1)


def _brute_dd(ts, eq, k, span):
    m = eq[k]
    for j in range(k, -1, -1):
        if ts[j] <= ts[k] - span:
            break
        m = max(m, eq[j])
    return 1.0 - eq[k] / m


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rolling_windows_when_random_intraday_path_then_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    ts = np.cumsum(rng.integers(1, 20, n)) * 10**9     # 1-19 s apart: ~8 h
    eq = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    lad = DrawdownArrays(eq[0], capacity=4096)
    thr = DrawdownConfig().threshold_table()
    control = np.zeros(cw.N_CONTROL_COLS, np.int64)
    acct = np.zeros(rc.N_ACCOUNT_COLS)
    peak = 0.0
    for k in range(n):
        update_drawdown(int(ts[k]), float(eq[k]), lad.state, lad.idx, lad.win_ts, lad.win_eq, thr,
                        0.2, 0.5, control, acct)
        peak = max(peak, eq[k])
        d = lad.drawdowns()
        if k % 7 == 0:
            assert d["rolling_1h"] == pytest.approx(_brute_dd(ts, eq, k, 3600 * 10**9), abs=1e-12)
            assert d["rolling_4h"] == pytest.approx(_brute_dd(ts, eq, k, 4 * 3600 * 10**9), abs=1e-12)
            assert d["peak"] == pytest.approx(1 - eq[k] / peak, abs=1e-12)


def test_intraday_measure_when_session_restarts_then_measures_from_session_high():
    lad = DrawdownArrays(100.0)
    thr = DrawdownConfig().threshold_table()
    control = np.zeros(cw.N_CONTROL_COLS, np.int64)
    acct = np.zeros(rc.N_ACCOUNT_COLS)
    day = 86_400 * 10**9
    update_drawdown(0, 100.0, lad.state, lad.idx, lad.win_ts, lad.win_eq, thr, 0.2, 0.5, control, acct)
    update_drawdown(day, 90.0, lad.state, lad.idx, lad.win_ts, lad.win_eq, thr, 0.2, 0.5, control, acct)
    start_session_drawdown(lad.state, 90.0)
    update_drawdown(2 * day, 91.0, lad.state, lad.idx, lad.win_ts, lad.win_eq, thr, 0.2, 0.5, control, acct)
    update_drawdown(2 * day + 60 * 10**9, 89.18, lad.state, lad.idx, lad.win_ts, lad.win_eq, thr,
                    0.2, 0.5, control, acct)
    d = lad.drawdowns()
    assert d["intraday"] == pytest.approx(1 - 89.18 / 91.0)
    assert d["peak"] == pytest.approx(1 - 89.18 / 100.0)


def test_ladder_when_fast_intraday_drop_then_rolling_measure_escalates():
    """A 5.5% drop inside an hour after a long rise: peak-to-trough is small relative to the old
    peak only if equity made new highs; here the rolling 1 h measure is the one that fires."""
    cfg = DrawdownConfig(rolling_1h=(0.01, 0.02, 0.04, 0.06))
    thr = cfg.threshold_table()
    lad = DrawdownArrays(100.0)
    control = np.zeros(cw.N_CONTROL_COLS, np.int64)
    acct = np.zeros(rc.N_ACCOUNT_COLS)
    acct[rc.A_RISK_MULT] = 1.0
    ev = [update_drawdown(k * 60 * 10**9, 100.0 - 1.1 * k, lad.state, lad.idx, lad.win_ts,
                          lad.win_eq, thr, 0.2, 0.5, control, acct) for k in range(6)]
    assert [event_name(e) for e in ev if e] == [
        "escalate:warning", "escalate:critical", "escalate:emergency"]
    assert int(lad.state[3]) == rc.DD_ROLLING_1H
    assert control[cw.C_STATE] == cw.REDUCING and acct[rc.A_RISK_MULT] == 0.5


def test_drawdown_config_when_thresholds_not_ascending_then_error_names_them():
    with pytest.raises(msgspec.ValidationError, match="strictly ascending"):
        msgspec.convert({"critical": 0.02}, type=DrawdownConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"kil": 0.2}, type=DrawdownConfig)


# -- webhook -------------------------------------------------------------------------------------
class _Hook(http.server.BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server naming
        n = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    class Hook(_Hook):
        bodies = []

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/alert", Hook.bodies
    srv.shutdown()
    srv.server_close()
    th.join(5)


def _eventually(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_alert_sender_when_alerts_within_cooldown_then_dropped_and_kill_bypasses(hook_server):
    url, bodies = hook_server
    now = [1000.0]
    sender = AlertSender(url, cooldown_s=300.0, clock=lambda: now[0])
    try:
        lad = DrawdownArrays(100.0)
        assert sender.submit_event(rc.DD_EVENT_ESCALATE + rc.DD_WARNING, lad, 1)
        assert not sender.submit_event(rc.DD_EVENT_ESCALATE + rc.DD_WARNING, lad, 2)  # cooldown
        assert sender.submit_event(rc.DD_EVENT_ESCALATE + rc.DD_KILL, lad, 3)
        assert sender.submit_event(rc.DD_EVENT_ESCALATE + rc.DD_KILL, lad, 4)  # urgent: no cooldown
        now[0] += 300.0
        assert sender.submit_event(rc.DD_EVENT_ESCALATE + rc.DD_WARNING, lad, 5)  # cooldown over
        assert _eventually(lambda: sender.sent == 4)
    finally:
        sender.close()
    assert [(b["kind"], b["ts_ns"]) for b in bodies] == [
        ("escalate:warning", 1), ("escalate:kill", 3), ("escalate:kill", 4),
        ("escalate:warning", 5)]
    assert bodies[0]["drawdowns"]["peak"] == 0.0 and bodies[0]["level"] == "normal"
    assert sender.dropped_cooldown == 1 and sender.failed == 0


def test_alert_sender_when_webhook_down_then_counts_failure_without_raising():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens on this port now
    sender = AlertSender(f"http://127.0.0.1:{port}/", cooldown_s=0.0, timeout_s=1.0)
    try:
        assert sender.submit("escalate:kill", {"x": 1})
        assert _eventually(lambda: sender.failed == 1)
    finally:
        sender.close()
    assert sender.sent == 0


def test_alert_sender_when_url_not_http_then_error_names_it():
    with pytest.raises(ValueError, match="was 'ftp://x'"):
        AlertSender("ftp://x")


@pytest.mark.parametrize("operator_reducing", [False, True])
def test_ladder_when_recovering_below_critical_then_lifts_only_its_own_reducing(operator_reducing):
    from alphad.daemon.risk.checks import set_state

    thr = DrawdownConfig().threshold_table()
    lad = DrawdownArrays(100.0)
    control = np.zeros(cw.N_CONTROL_COLS, np.int64)
    acct = np.zeros(rc.N_ACCOUNT_COLS)
    acct[rc.A_RISK_MULT] = 1.0
    if operator_reducing:
        set_state(control, cw.REDUCING, cw.REASON_OPERATOR, 0)
    day = 86_400 * 10**9

    def feed(k, e):
        return event_name(update_drawdown(k * day, e, lad.state, lad.idx, lad.win_ts, lad.win_eq,
                                          thr, 0.2, 0.5, control, acct))

    assert feed(0, 100.0) == "none"
    assert feed(1, 91.5) == "escalate:emergency"           # 8.5%: three steps at once
    assert control[cw.C_STATE] == cw.REDUCING and acct[rc.A_RISK_MULT] == 0.5
    assert feed(2, 93.0) == "none"                          # 7% < 8% but not below 6.4%: stays
    assert feed(3, 94.0) == "recover:critical"              # 6% < 8% x 0.8
    assert acct[rc.A_RISK_MULT] == 1.0 and control[cw.C_STATE] == cw.REDUCING
    assert feed(4, 99.0) == "recover:normal"
    assert control[cw.C_STATE] == (cw.REDUCING if operator_reducing else cw.ACTIVE)
