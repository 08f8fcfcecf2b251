"""The control port's side of the supervisor: ``ctl`` requests in, replies out, and the
status the port, the status line and ``alphad top`` read.

Every request is a msgspec frame of :mod:`alphad.ipc.frames`; a bad one is answered with
an :class:`~alphad.ipc.frames.Error`, never a crash.  Operator commands are journaled.
"""
from __future__ import annotations

import os
import time

import numpy as np

from alphad.daemon.risk.core import REASONS
from alphad.ipc import frames
from alphad.ipc import gateway_block as gb
from alphad.daemon.shell.risk_view import RiskView
from alphad.daemon.supervisor.data_health import DataWatch
from alphad.ipc import metrics as mx
from alphad.ipc.control import (ACTIVE, HALTED, PROVIDERS, REASON_OPERATOR, REDUCING, S_EVENTS_IN, S_EVENTS_OUT,
                                S_HEARTBEAT, S_INFER_PROVIDER, S_INFER_REHEARSALS, S_PID, S_READY, S_RESTARTS,
                                STAGE_INDEX, STAGES, STATE_NAMES, W_CANCEL_ALL_DONE, W_CANCEL_ALL_SENT, W_REASON)


def percentiles_us(samples: np.ndarray) -> dict[str, float]:
    if len(samples) == 0:
        return {}
    q = np.percentile(samples, [50, 90, 99, 99.9]) / 1e3
    return {"p50": round(float(q[0]), 2), "p90": round(float(q[1]), 2), "p99": round(float(q[2]), 2),
            "p999": round(float(q[3]), 2), "max": round(float(samples.max()) / 1e3, 2)}


def stale(control, stage: int, now_ns: int, limit_s: float) -> bool:
    """Stage ``stage`` is ready but its heartbeat is older than ``limit_s`` (frozen)."""
    hb = control.stage(stage, S_HEARTBEAT)
    return bool(control.stage(stage, S_READY)) and hb > 0 and now_ns - hb > limit_s * 1e9


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def risk_positions(sup, view: RiskView) -> dict[str, float]:
    """The risk stage's non-zero positions (empty before the risk stage has made its book)."""
    held = view.positions()
    if held is None:
        return {}
    return {ins.symbol: float(q) for ins, q in zip(sup.cfg.universe, held) if q}


def venue_status(sup, positions: dict[str, float]) -> frames.VenueStatus | None:
    """The gateway block as ``ctl status`` shows it; positions compared with risk's."""
    block = getattr(sup, "gateway", None)
    if block is None:
        return None
    w = block.words
    held = {ins.symbol: float(q) for ins, q in zip(sup.cfg.universe, block.positions) if q == q}
    tol = 1e-9
    mismatches = {}
    # compared only when the broker's positions were read after the last change to any
    # order and nothing works: otherwise a fill on its way is no mismatch
    settled = not len(block.open_rows()) and int(w[gb.G_POSITIONS_TS]) > int(block.orders["updated"].max(initial=0))
    if w[gb.G_POSITIONS_TS] and settled:
        for ins in sup.cfg.universe:
            ours, theirs = positions.get(ins.symbol, 0.0), held.get(ins.symbol, 0.0)
            if abs(ours - theirs) > tol * max(1.0, abs(theirs)):
                mismatches[ins.symbol] = [ours, theirs]
    ts = int(w[gb.G_POSITIONS_TS])
    return frames.VenueStatus(
        venue=sup.cfg.router.venue, ready=bool(w[gb.G_READY]), pid=int(w[gb.G_PID]), starts=int(w[gb.G_STARTS]),
        stream_up=bool(w[gb.G_STREAM_UP]), reconnects=int(w[gb.G_RECONNECTS]), http_errors=int(w[gb.G_HTTP_ERRORS]),
        rate_limited=int(w[gb.G_RATE_LIMITED]), sent=int(w[gb.G_SENT]), rejects=int(w[gb.G_REJECTS]),
        unknown=int(w[gb.G_UNKNOWN]), recovered_fills=int(w[gb.G_RECOVERED_FILLS]), adjustments=int(w[gb.G_ADJUSTMENTS]),
        disconnects=int(w[gb.G_DISCONNECTS]), data_farms_down=int(w[gb.G_FARMS_DOWN]),
        positions={s: q for s, q in held.items() if q}, positions_age_s=round((time.monotonic_ns() - ts) / 1e9, 3) if ts else -1.0,
        cash=float(block.account[gb.A_CASH]), equity=float(block.account[gb.A_EQUITY]), mismatches=mismatches)


def venue_line(v: frames.VenueStatus | None) -> str:
    """The live venue's part of the status line ('' without one)."""
    if v is None:
        return ""
    line = f" | {v.venue} {'stream up' if v.stream_up else 'STREAM DOWN'} sent {v.sent} unknown {v.unknown}"
    return line + (f" MISMATCH {sorted(v.mismatches)}" if v.mismatches else "")


def data_line(st: frames.StatusReply) -> str:
    """A live feed's data trouble on the status line ('' while healthy)."""
    if not st.feed_data_down and not st.stale_instruments:
        return ""
    return f" | DATA DOWN {st.feed_data_down} stale {st.stale_instruments}"


class ControlPort:
    """Answers the requests of :mod:`alphad.ops.ctl` for supervisor ``sup``."""

    def __init__(self, sup):
        self.sup = sup
        self._last_status = (0, 0, 0)
        #: A live feed's data health and risk's stale instruments (journaled from the loop).
        self.data = DataWatch(sup)

    def status(self) -> frames.StatusReply:
        stages = {}
        now_ns = time.monotonic_ns()
        for s in STAGES:
            i = STAGE_INDEX[s]
            pid = self.sup.control.stage(i, S_PID)
            hb = self.sup.control.stage(i, S_HEARTBEAT)
            stages[s] = frames.StageStatus(
                alive=bool(pid) and pid_alive(pid), ready=bool(self.sup.control.stage(i, S_READY)), pid=pid,
                restarts=self.sup.control.stage(i, S_RESTARTS), events_in=self.sup.control.stage(i, S_EVENTS_IN),
                events_out=self.sup.control.stage(i, S_EVENTS_OUT),
                heartbeat_age_s=round((now_ns - hb) / 1e9, 3) if hb else -1.0,
                stale=stale(self.sup.control, i, now_ns, self.sup.cfg.supervisor.stale_after_s))
        m = self.sup.metrics
        samples = m.samples(mx.ROW_T2T)[-10_000:]
        positions = risk_positions(self.sup, self.data.view)
        data = self.data.read()
        return frames.StatusReply(
            trading_state=STATE_NAMES[self.sup.control.trading_state], state_reason=self._state_reason(),
            topology=self.sup.plan.name,
            uptime_s=round(time.monotonic() - self.sup.started, 1), stages=stages,
            orders=m.counter(STAGE_INDEX["router"], mx.C_ORDERS), fills=m.counter(STAGE_INDEX["risk"], mx.C_FILLS),
            denials=m.counter(STAGE_INDEX["risk"], mx.C_DENIALS),
            realized_pnl=round(float(m.gauges[mx.G_REALIZED_PNL]), 2),
            unrealized_pnl=round(float(m.gauges[mx.G_UNREALIZED_PNL]), 2),
            tick_to_trade_us=percentiles_us(samples),
            inference_provider=PROVIDERS[self.sup.control.stage(STAGE_INDEX["infer"], S_INFER_PROVIDER)],
            infer_rehearsals=self.sup.control.stage(STAGE_INDEX["infer"], S_INFER_REHEARSALS),
            placement=self.sup.placement, positions=positions, venue=venue_status(self.sup, positions),
            feed_data_down=data.feed_data_down, stale_instruments=list(data.stale))

    def _state_reason(self) -> str:
        return self.reason_name(int(self.sup.control.words[W_REASON]))

    @staticmethod
    def reason_name(code: int) -> str:
        """The name of a trading-state reason code (``operator``, ``daily_loss``, ...)."""
        from alphad.daemon.risk.drawdown import event_name

        if code == 0:
            return ""
        if code == REASON_OPERATOR:
            return "operator"
        if code >= 100:
            try:
                return f"drawdown_{event_name(code)}"
            except ValueError:
                return str(code)
        return REASONS.get(code, str(code))

    def status_line(self) -> str:
        st = self.status()
        m = self.sup.metrics
        n_t2t = m.latency_count(mx.ROW_T2T)
        recent = m.samples(mx.ROW_T2T, since=self._last_status[0])
        self._last_status = (n_t2t, 0, 0)
        p = percentiles_us(recent)
        t2t = f"t2t p50 {p['p50']:.1f}us p99 {p['p99']:.1f}us" if p else "t2t -"
        alive = sum(1 for s in st.stages.values() if s.alive)
        return (f"alphad [{st.trading_state}] stages {alive}/{len(STAGES)} | events {st.stages['feed'].events_out} "
                f"| orders {st.orders} fills {st.fills} denials {st.denials} | pnl {st.realized_pnl + st.unrealized_pnl:+.2f} "
                f"| {t2t}{venue_line(st.venue)}{data_line(st)}")

    def handle(self, raw: bytes) -> frames._Frame:
        try:
            req = frames.request_decoder.decode(raw)
        except Exception as e:  # msgspec.DecodeError/ValidationError: reply, never die
            return frames.Error(error=f"bad request: {e}")
        match req:
            case frames.Status():
                return self.status()
            case frames.Halt(reason=reason):
                self.sup.control.raise_trading_state(HALTED, time.monotonic_ns())
                self._journal_control("halt", {"reason": reason})
                return frames.Ok(message="trading state HALTED")
            case frames.Reduce():
                changed = self.sup.control.raise_trading_state(REDUCING, time.monotonic_ns())
                self._journal_control("reduce", {})
                state = STATE_NAMES[self.sup.control.trading_state]
                return frames.Ok(message="trading state REDUCING" if changed else
                                 f"trading state stays {state} (reduce never lowers it; resume first)")
            case frames.Resume():
                # Only the risk stage lowers the state: it re-arms the daily loss limit from
                # the equity it holds.  Ask, then wait for it to act.
                self.sup.control.request_resume()
                self._journal_control("resume", {})
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    if self.sup.control.trading_state == ACTIVE:
                        return frames.Ok(message="trading state ACTIVE")
                    time.sleep(0.005)
                return frames.Error(error="resume requested, but the risk stage did not act on it within 2 s "
                                          f"(state {STATE_NAMES[self.sup.control.trading_state]}; is risk running?)")
            case frames.Flatten():
                self.sup.control.request_flatten()
                self._journal_control("flatten", {})
                return frames.Ok(message="flatten requested: the risk stage sends reduce-only orders to zero every position")
            case frames.CancelAll():
                return self._cancel_all()
            case frames.Shutdown():
                self.sup.stopping = True
                self._journal_control("shutdown", {})
                return frames.Ok(message="shutting down")
        return frames.Error(error=f"unhandled request {type(req).__name__}")

    def _cancel_all(self) -> frames._Frame:
        """Ask the router to cancel every working order and parent; wait (2 s) until it has."""
        control = self.sup.control
        request = control.request_cancel_all()
        self._journal_control("cancel-all", {})
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if control.words[W_CANCEL_ALL_DONE] >= request:
                sent = int(control.words[W_CANCEL_ALL_SENT])
                return frames.Ok(message=f"cancel-all: cancels sent for {sent} working orders and parents "
                                         "(their CANCELED reports follow from the venues)")
            time.sleep(0.005)
        return frames.Error(error="cancel-all requested, but the router did not act on it within 2 s "
                                  "(is the router running? it acts when it starts)")

    def _journal_control(self, command: str, fields: dict) -> None:
        if self.sup.journal is not None:
            self.sup.journal.control(command, fields)
