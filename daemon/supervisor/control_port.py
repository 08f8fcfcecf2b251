"""The control port's side of the supervisor: ``ctl`` requests in, replies out, and the
status the port, the status line and ``alphad top`` read.

Every request is a msgspec frame of :mod:`alphad.ipc.frames`; a bad one is answered with
an :class:`~alphad.ipc.frames.Error`, never a crash.  Operator commands are journaled.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque

import numpy as np

from alphad.daemon.risk.codes import B_AVG_PX, B_FEES, B_LAST_PX, B_OPEN_BUY, B_OPEN_SELL, B_POSITION, B_REALISED
from alphad.daemon.risk.core import REASONS
from alphad.ipc import frames
from alphad.ipc import gateway_block as gb
from alphad.daemon.shell.risk_view import RiskView
from alphad.daemon.supervisor.data_health import DataWatch
from alphad.daemon.supervisor.reload import Reloader
from alphad.ipc import metrics as mx
from alphad.ipc.control import (ACTIVE, FEED_BAD_RECORDS, HALTED, PROVIDERS, REASON_OPERATOR, REDUCING, S_EVENTS_IN,
                                S_EVENTS_OUT, S_HEARTBEAT, S_INFER_PROVIDER, S_INFER_REHEARSALS, S_PID, S_READY, S_RESTARTS,
                                STAGE_INDEX, STAGES, STATE_NAMES, W_CANCEL_ALL_DONE, W_CANCEL_ALL_SENT, W_REASON,
                                W_RELOAD)


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


#: How long ``ctl cancel-all`` waits for the router to act before answering that it has not yet.
CANCEL_ALL_WAIT_S = 0.5

class ControlPort:
    """Answers the requests of :mod:`alphad.ops.ctl` for supervisor ``sup``."""

    #: ``ctl status``'s recent tick-to-trade window, seconds.
    RECENT_S = 60.0

    def __init__(self, sup):
        self.sup = sup
        self._last_status = (0, 0, 0)
        self._t2t_marks: deque[tuple[float, int]] = deque()  # (when, tick-to-trade sample count)
        #: Frames that were no request (garbage, a wrong type): answered with an Error, counted.
        self.bad_requests = 0
        self.who: dict = {"peer": "local"}  # who sent the request being handled
        self.reloader = Reloader(sup)
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
        recent, window_s = self._recent_t2t(m)
        positions = risk_positions(self.sup, self.data.view)
        data = self.data.read()
        return frames.StatusReply(
            trading_state=STATE_NAMES[self.sup.control.trading_state], state_reason=self._state_reason(),
            topology=self.sup.plan.name,
            uptime_s=round(time.monotonic() - self.sup.started, 1), stages=stages,
            orders=m.counter(STAGE_INDEX["router"], mx.C_ORDERS), fills=m.counter(STAGE_INDEX["risk"], mx.C_FILLS),
            denials=m.counter(STAGE_INDEX["risk"], mx.C_DENIALS),
            realized_pnl=round(float(m.gauges[mx.G_REALIZED_PNL]), 2),
            unrealized_pnl=round(float(m.gauges[mx.G_UNREALIZED_PNL]), 2), fees=round(float(m.gauges[mx.G_FEES]), 2),
            net_pnl=round(float(m.gauges[mx.G_REALIZED_PNL] + m.gauges[mx.G_UNREALIZED_PNL] - m.gauges[mx.G_FEES]), 2),
            tick_to_trade_us=percentiles_us(samples), tick_to_trade_recent_us=percentiles_us(recent),
            recent_window_s=window_s,
            inference_provider=PROVIDERS[self.sup.control.stage(STAGE_INDEX["infer"], S_INFER_PROVIDER)],
            infer_rehearsals=self.sup.control.stage(STAGE_INDEX["infer"], S_INFER_REHEARSALS),
            placement=self.sup.placement, positions=positions, venue=venue_status(self.sup, positions),
            feed_data_down=data.feed_data_down, stale_instruments=list(data.stale), bad_requests=self.bad_requests,
            feed_bad_records=self.sup.control.stage(STAGE_INDEX["feed"], FEED_BAD_RECORDS),
            cancel_all_pending=self.sup.control.cancel_all_requests - int(self.sup.control.words[W_CANCEL_ALL_DONE]),
            settings=self.reloader.status(), settings_generation=int(self.sup.control.words[W_RELOAD]),
            halted_instruments=self._halted())

    def _halted(self) -> list[str]:
        flags = self.data.view.halted()
        return [] if flags is None else [ins.symbol for ins, f in zip(self.sup.cfg.universe, flags) if f]

    def _recent_t2t(self, m) -> tuple[np.ndarray, float]:
        """Tick-to-trade samples of about the last RECENT_S seconds, and the window's length:
        the sample count is marked at each status (the status line asks every few seconds)."""
        now, count = time.monotonic(), m.latency_count(mx.ROW_T2T)
        marks = self._t2t_marks
        if not marks or now - marks[-1][0] >= 1.0:
            marks.append((now, count))
        while len(marks) > 1 and now - marks[1][0] >= self.RECENT_S:
            marks.popleft()  # the oldest mark still at least RECENT_S ago starts the window
        t0, since = marks[0]
        return m.samples(mx.ROW_T2T, since=since), round(now - t0, 1)

    def _state_reason(self) -> str:
        return self.reason_name(int(self.sup.control.words[W_REASON]))

    @staticmethod
    def reason_name(code: int) -> str:
        """The name of a trading-state reason code (``operator``, ``daily_loss``, ...)."""
        from alphad.daemon.risk.drawdown import event_name
        from alphad.ipc.control import REASON_LOW_DISK

        if code == 0:
            return ""
        if code == REASON_OPERATOR:
            return "operator"
        if code == REASON_LOW_DISK:  # the supervisor's halt for low disk under the journal
            return "low_disk"
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
                f"| orders {st.orders} fills {st.fills} denials {st.denials} "
                f"| pnl net {st.net_pnl:+.2f} (gross {st.realized_pnl + st.unrealized_pnl:+.2f}, fees {st.fees:.2f}) "
                f"| {t2t}{venue_line(st.venue)}{data_line(st)}")

    def handle(self, raw: bytes, who: dict | None = None) -> frames._Frame:
        """Answer one request; ``who`` (its sender: address, Curve key) is journaled with
        each command.  A frame that is not a request is counted and answered, never fatal."""
        self.who = who or {"peer": "local"}
        try:
            req = frames.request_decoder.decode(raw)
        except Exception as e:  # msgspec.DecodeError/ValidationError: reply, never die
            self.bad_requests += 1
            return frames.Error(error=f"bad request: {str(e)[:200]}")
        match req:
            case frames.Status():
                return self.status()
            case frames.Halt(symbol=symbol, reason=reason) if symbol:
                return self._halt_instrument(symbol, True, reason)
            case frames.Resume(symbol=symbol) if symbol:
                return self._halt_instrument(symbol, False, "")
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
            case frames.Positions():
                return self._positions()
            case frames.Orders():
                return self._orders()
            case frames.Reload():
                return self.reloader.reload()
            case frames.Set(key=key, value=value):
                return self.reloader.reload(key, value)
            case frames.Shutdown():
                self.sup.stopping = True
                self._journal_control("shutdown", {})
                return frames.Ok(message="shutting down")
        return frames.Error(error=f"unhandled request {type(req).__name__}")

    def _positions(self) -> frames._Frame:
        book = self.data.view.book()
        if book is None:
            return frames.Error(error="the risk stage has not made its book yet")
        rows = {}
        for ins, b in zip(self.sup.cfg.universe, book):
            if b[B_POSITION] or b[B_OPEN_BUY] or b[B_OPEN_SELL] or b[B_REALISED] or b[B_FEES]:
                last = float(b[B_LAST_PX])
                rows[ins.symbol] = frames.PositionRow(
                    position=float(b[B_POSITION]), avg_price=float(b[B_AVG_PX]), last_price=last,
                    unrealized_pnl=float(b[B_POSITION] * (last - b[B_AVG_PX])) if b[B_POSITION] and last == last else 0.0,
                    realized_pnl=float(b[B_REALISED]), fees=float(b[B_FEES]), open_buy=float(b[B_OPEN_BUY]),
                    open_sell=float(b[B_OPEN_SELL]))
        venue = venue_status(self.sup, {})  # the broker's positions alone: no whole status to build
        return frames.PositionsReply(positions=rows, venue=venue.positions if venue is not None else None)

    def _orders(self) -> frames._Frame:
        rows = self.data.view.open_orders()
        if rows is None:
            return frames.Error(error="the risk stage has not made its book yet")
        symbols = [ins.symbol for ins in self.sup.cfg.universe]
        return frames.OrdersReply(orders=[
            frames.WorkingOrder(client_order_id=cid, symbol=symbols[i] if 0 <= i < len(symbols) else str(i),
                                side="buy" if side > 0 else "sell", leaves=leaves)
            for cid, i, side, leaves in sorted(rows)])

    def _halt_instrument(self, symbol: str, halt: bool, reason: str) -> frames._Frame:
        """``ctl halt --symbol`` / ``resume --symbol``: risk's per-instrument halt flag."""
        symbols = [ins.symbol for ins in self.sup.cfg.universe]
        if symbol not in symbols:
            return frames.Error(error=f"symbol expected one of the universe {symbols}, found {symbol!r}")
        if not self.data.view.set_halted(symbols.index(symbol), halt):
            return frames.Error(error="the risk stage has not made its state yet: try again when it is ready")
        self._journal_control("halt" if halt else "resume", {"symbol": symbol, "reason": reason})
        return frames.Ok(message=f"{symbol}: {'HALTED: no new order on it' if halt else 'trading again'}")

    def poll(self) -> None:
        """The supervisor loop's turn: a SIGHUP's reload."""
        if self.reloader.hup:
            self.reloader.hup = False
            self.who = {"peer": "SIGHUP"}
            reply = self.reloader.reload()
            text = reply.message if isinstance(reply, frames.Ok) else reply.error
            print(f"alphad: SIGHUP: {text}", file=sys.stderr, flush=True)

    def _cancel_all(self) -> frames._Frame:
        """Ask the router to cancel every working order and parent; wait (at most
        :data:`CANCEL_ALL_WAIT_S`) until it has.
        The request stays in the control block: a router that has not acted yet (back-pressured
        by risk at full feed speed, or restarting) acts at its next housekeeping or start, and
        ``ctl status`` counts it in ``cancel_all_pending`` until then.  The answer never waits
        longer: an operator must hear back within a second whatever the load (with SCHED_FIFO
        stages on every CPU the answer itself can take a few hundred ms more: BENCHMARKS.md)."""
        control = self.sup.control
        request = control.request_cancel_all()
        self._journal_control("cancel-all", {})
        deadline = time.monotonic() + CANCEL_ALL_WAIT_S
        while time.monotonic() < deadline:
            if control.words[W_CANCEL_ALL_DONE] >= request:
                sent = int(control.words[W_CANCEL_ALL_SENT])
                return frames.Ok(message=f"cancel-all: cancels sent for {sent} working orders and parents "
                                         "(their CANCELED reports follow from the venues)")
            time.sleep(0.005)
        alive = control.stage(STAGE_INDEX["router"], S_READY)
        return frames.Ok(message="cancel-all requested; the router has not acted on it yet ("
                                 + ("busy: its exec reports wait for risk" if alive else "not running: it acts when it starts")
                                 + "); `ctl status` cancel_all_pending counts it until it has")

    def _journal_control(self, command: str, fields: dict) -> None:
        if self.sup.journal is not None:
            self.sup.journal.control(command, {**fields, "who": self.who})
