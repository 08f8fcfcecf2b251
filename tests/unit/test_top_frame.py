"""``alphad top``'s frame (render), its fit to a terminal, and its answers without a daemon."""
from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np

from alphad.daemon.risk.codes import A_CASH, A_EQUITY, A_GROSS, A_NET, A_RISK_MULT, N_ACCOUNT_COLS
from alphad.daemon.risk.drawdown import D_DRAWDOWN, D_LEVEL, D_MAX_DRAWDOWN, N_DD_STATE
from alphad.ipc import frames
from alphad.ops.top_render import Line, render
from alphad.ops.top_screen import fit
from alphad.ops.top_source import RiskState, Snapshot

STAGES = ("feed", "features", "infer", "risk", "router")


def status(**over) -> frames.StatusReply:
    stage = frames.StageStatus(alive=True, ready=True, pid=100, restarts=0, events_in=5, events_out=5,
                               heartbeat_age_s=0.01)
    fields = dict(trading_state="ACTIVE", state_reason="", topology="five", uptime_s=12.0,
                  stages={s: stage for s in STAGES}, orders=7, fills=6, denials=2, realized_pnl=10.0,
                  unrealized_pnl=5.0, fees=2.5, net_pnl=12.5, tick_to_trade_us={"p50": 20.0, "p99": 40.0},
                  tick_to_trade_recent_us={"p50": 21.0, "p99": 41.0}, recent_window_s=60.0)
    return frames.StatusReply(**{**fields, **over})


def risk_state(level: int = 0) -> RiskState:
    account = np.zeros(N_ACCOUNT_COLS)
    account[[A_CASH, A_EQUITY, A_GROSS, A_NET, A_RISK_MULT]] = [90_000.0, 100_000.0, 2_000.0, -500.0, 1.0]
    dd = np.zeros(N_DD_STATE)
    dd[D_LEVEL], dd[D_DRAWDOWN], dd[D_MAX_DRAWDOWN] = level, 0.012, 0.02
    return RiskState({"crypto": 2_000.0}, account, dd)


def snapshot(st: frames.StatusReply | None, **over) -> Snapshot:
    row = frames.PositionRow(position=0.5, avg_price=100.0, last_price=110.0, unrealized_pnl=5.0, realized_pnl=10.0,
                             fees=2.5, open_buy=0.0, open_sell=0.1)
    fields = dict(endpoint="tcp://127.0.0.1:7701", taken=0.0, status=st,
                  positions=frames.PositionsReply(positions={"BTCUSDT": row}), working=1, risk=risk_state())
    return Snapshot(**{**fields, **over})


def text_of(lines: list[Line]) -> str:
    return "\n".join(line.text for line in lines)


def test_render_when_active_then_state_pnl_net_with_gross_and_fees_stages_positions_and_risk():
    text = text_of(render(snapshot(status()), interval_s=1, timeout_s=1))
    assert "STATE ACTIVE" in text
    assert "PnL net +12.50 | gross +15.00 (realized +10.00, unrealized +5.00) | fees 2.50" in text
    assert "orders 7 | fills 6 | denials 2 | working orders 1" in text
    assert "recent (60 s): p50 21.0  p99 41.0" in text and "p50 20.0  p99 40.0" in text
    assert all(f"\n{s} " in text for s in STAGES)
    assert "\nBTCUSDT " in text and "+5.00" in text
    assert "exposure by sector: crypto 2,000.00 (2.00% of equity)" in text
    assert "drawdown ladder: normal (level 0 of 4) | peak 1.20%" in text and "worst 2.00%" in text
    assert "ALERTS\n  none" in text


def test_render_when_halted_with_trouble_then_each_is_an_alert():
    venue = frames.VenueStatus(venue="alpaca", ready=True, pid=1, starts=1, stream_up=False, reconnects=2,
                               http_errors=0, rate_limited=0, sent=3, rejects=0, unknown=1, recovered_fills=0,
                               positions={}, positions_age_s=1.0, cash=0.0, equity=0.0,
                               mismatches={"ETHUSDT": [1.0, 0.5]})
    dead = frames.StageStatus(alive=False, ready=False, pid=0, restarts=3, events_in=0, events_out=0,
                              heartbeat_age_s=-1.0)
    st = status(trading_state="HALTED", state_reason="daily_loss", halted_instruments=["BTCUSDT"],
                stale_instruments=["ETHUSDT"], feed_data_down=1, bad_requests=4, venue=venue,
                stages={**status().stages, "infer": dead})
    lines = render(snapshot(st, risk=risk_state(level=2)), interval_s=1, timeout_s=1)
    alerts = [line.text.strip() for line in lines if line.style == "alert"]
    for expected in ("trading HALTED: daily_loss", "halted instruments: BTCUSDT",
                     "stale market data, no new orders: ETHUSDT", "stage infer: not alive, not ready",
                     "venue alpaca: stream down, 1 orders of unknown fate",
                     "venue alpaca mismatch ETHUSDT: alphad 1, broker 0.5", "drawdown ladder at critical",
                     "bad control requests: 4"):
        assert expected in alerts, alerts


def test_render_when_no_answer_then_says_so_and_shows_the_last_figures_with_their_time():
    gone = snapshot(None, positions=None, risk=None)
    alone = text_of(render(gone, interval_s=2, timeout_s=1))
    assert "no answer from tcp://127.0.0.1:7701 within 1 s: retrying every 2 s" in alone
    assert "STATE" not in alone
    later = text_of(render(gone, interval_s=2, timeout_s=1, last=snapshot(status())))
    assert "the figures below are from then" in later and "STATE ACTIVE" in later


def test_fit_when_terminal_small_then_lines_cut_and_the_rest_counted():
    lines = [Line("x" * 200, "head") for _ in range(30)]
    cut = fit(lines, 10, 40)
    assert len(cut) == 10 and all(len(line.text) <= 39 for line in cut)
    assert cut[-1].text.startswith("... 21 more lines") and cut[0].style == "head"
    assert fit(lines, 0, 40) == [] and fit(lines, 5, 1) == []
    assert fit(lines[:3], 10, 300) == lines[:3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def top(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "top", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_top_once_when_no_daemon_then_clear_message_and_exit_3():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = top("--once", "--endpoint", endpoint, "--timeout", "0.2")
    assert out.returncode == 3, out
    assert f"no answer from {endpoint} within 0.2 s" in out.stderr and "Traceback" not in out.stderr


def test_top_when_not_a_terminal_or_config_missing_then_clear_error():
    no_tty = top("--endpoint", f"tcp://127.0.0.1:{free_port()}")
    assert no_tty.returncode == 1 and "needs a terminal" in no_tty.stderr and "--once" in no_tty.stderr
    missing = top("--once", "--config", "/nonexistent/config.yaml")
    assert missing.returncode == 1 and "config file /nonexistent/config.yaml was not found" in missing.stderr
