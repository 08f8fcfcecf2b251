"""``alphad top``'s frame as plain lines: the one rendering of a :class:`Snapshot`, printed as
it is by ``--once`` and painted (truncated to the terminal) by the curses screen.

ASCII only, so a line's length is its width on any terminal.  Each line carries a style
(``title``, ``head``, ``alert``, ``dim`` or none) that the screen turns into attributes
and ``--once`` ignores.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

from alphad.daemon.risk.codes import A_CASH, A_EQUITY, A_GROSS, A_NET, A_RISK_MULT, DD_LEVEL_NAMES, DD_MEASURE_NAMES
from alphad.daemon.risk.drawdown import D_DRAWDOWN, D_LEVEL, D_MAX_DRAWDOWN
from alphad.ops.top_source import Snapshot


class Line(NamedTuple):
    text: str
    style: str = ""


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def money(x: float, sign: bool = True) -> str:
    if not math.isfinite(x):
        return "-"
    x = round(x, 2) + 0.0  # + 0.0: a loss that rounds to nothing shows as 0.00, not -0.00
    return f"{x:+,.2f}" if sign else f"{x:,.2f}"


def price(x: float) -> str:
    return "-" if not math.isfinite(x) or x == 0 else f"{x:,.2f}"


def qty(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.8g}"


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def level_name(level: int) -> str:
    return DD_LEVEL_NAMES[level] if 0 <= level < len(DD_LEVEL_NAMES) else str(level)


def render(snap: Snapshot, *, interval_s: float, timeout_s: float, last: Snapshot | None = None,
           keys: bool = False) -> list[Line]:
    """The frame of ``snap``.  A snapshot without an answer shows the endpoint it waits for
    and, below it, ``last`` (the last answered snapshot) marked with its time."""
    head = f"alphad top | {snap.endpoint} | {clock(snap.taken)} | every {interval_s:g} s"
    lines = [Line(head + (" | q quits" if keys else ""), "title")]
    body = snap
    if not snap.answered:
        why = f" ({snap.error})" if snap.error else ""
        lines.append(Line(f"no answer from {snap.endpoint} within {timeout_s:g} s{why}: retrying every "
                          f"{interval_s:g} s", "alert"))
        if last is None or last.status is None:
            lines.append(Line("(is the daemon running, and is the endpoint its control.endpoint?)", "dim"))
            return lines
        lines.append(Line(f"last answer at {clock(last.taken)}: the figures below are from then", "dim"))
        body = last
    return lines + summary(body) + [Line("")] + alerts(body) + [Line("")] + stages(body) + [Line("")] \
        + positions(body) + [Line("")] + risk(body)


def summary(snap: Snapshot) -> list[Line]:
    st = snap.status
    state = f"STATE {st.trading_state}" + (f" ({st.state_reason})" if st.state_reason else "")
    gross = st.realized_pnl + st.unrealized_pnl
    working = "?" if snap.working is None else str(snap.working)
    return [
        Line(f"{state} | topology {st.topology} | up {st.uptime_s:,.0f} s | inference {st.inference_provider or '-'}",
             "" if st.trading_state == "ACTIVE" else "alert"),
        Line(f"PnL net {money(st.net_pnl)} | gross {money(gross)} (realized {money(st.realized_pnl)}, "
             f"unrealized {money(st.unrealized_pnl)}) | fees {money(st.fees, sign=False)}"),
        Line(f"orders {st.orders} | fills {st.fills} | denials {st.denials} | working orders {working}"),
        Line("tick-to-trade us  recent " + latency(st.tick_to_trade_recent_us, f"{st.recent_window_s:g} s")),
        Line("tick-to-trade us  all-time " + latency(st.tick_to_trade_us, "last 10,000 orders")),
    ]


def latency(p: dict[str, float], window: str) -> str:
    if not p:
        return f"({window}): no order yet"
    return f"({window}): " + "  ".join(f"{k} {p[k]:,.1f}" for k in ("p50", "p90", "p99", "p999", "max") if k in p)


def alerts(snap: Snapshot) -> list[Line]:
    """What needs an operator's eye; 'none' when nothing does."""
    st, out = snap.status, []
    if st.trading_state != "ACTIVE":
        out.append(f"trading {st.trading_state}" + (f": {st.state_reason}" if st.state_reason else ""))
    if st.halted_instruments:
        out.append(f"halted instruments: {', '.join(st.halted_instruments)}")
    if st.stale_instruments:
        out.append(f"stale market data, no new orders: {', '.join(st.stale_instruments)}")
    if st.feed_data_down:
        out.append(f"feed data down: {st.feed_data_down} (data farms broken, or the feed's link lost)")
    if st.feed_bad_records:
        out.append(f"feed skipped {st.feed_bad_records:,} bad records (feed.on_bad_record; reasons on its stderr)")
    for name, s in st.stages.items():
        trouble = [w for w, bad in (("not alive", not s.alive), ("not ready", not s.ready), ("STALE heartbeat", s.stale))
                   if bad]
        if trouble:
            out.append(f"stage {name}: {', '.join(trouble)}")
    v = st.venue
    if v is not None:
        trouble = [w for w, bad in (("not ready", not v.ready), ("stream down", not v.stream_up),
                                    (f"{v.unknown} orders of unknown fate", v.unknown)) if bad]
        if trouble:
            out.append(f"venue {v.venue}: {', '.join(trouble)}")
        for sym, (ours, theirs) in sorted(v.mismatches.items()):
            out.append(f"venue {v.venue} mismatch {sym}: alphad {qty(ours)}, broker {qty(theirs)}")
    if snap.risk is not None and snap.risk.drawdown[D_LEVEL] > 0:
        out.append(f"drawdown ladder at {level_name(int(snap.risk.drawdown[D_LEVEL]))}")
    if st.bad_requests:
        out.append(f"bad control requests: {st.bad_requests}")
    lines = [Line("ALERTS", "head")] + [Line("  " + a, "alert") for a in out]
    if v is not None:
        lines.append(Line(f"  venue {v.venue}: {'ready' if v.ready else 'NOT READY'}, stream "
                          f"{'up' if v.stream_up else 'DOWN'}, sent {v.sent}, rejects {v.rejects}, "
                          f"reconnects {v.reconnects}, disconnects {v.disconnects}, http errors {v.http_errors}, "
                          f"429s {v.rate_limited}, mismatches {len(v.mismatches)}"))
    return lines if len(lines) > 1 else lines + [Line("  none")]


def stages(snap: Snapshot) -> list[Line]:
    out = [Line(f"{'STAGE':<10}{'ALIVE':>6}{'READY':>7}{'RESTARTS':>10}{'HEARTBEAT':>11}{'EVENTS IN':>13}"
                f"{'EVENTS OUT':>13}{'PID':>9}", "head")]
    for name, s in snap.status.stages.items():
        hb = "-" if s.heartbeat_age_s < 0 else f"{s.heartbeat_age_s:.2f} s"
        ready = "STALE" if s.stale else ("yes" if s.ready else "NO")
        out.append(Line(f"{name:<10}{'yes' if s.alive else 'NO':>6}{ready:>7}{s.restarts:>10}{hb:>11}"
                        f"{s.events_in:>13,}{s.events_out:>13,}{s.pid:>9}",
                        "" if s.alive and s.ready and not s.stale else "alert"))
    return out


def positions(snap: Snapshot) -> list[Line]:
    if snap.positions is None:
        return [Line("POSITIONS", "head"), Line(f"  {snap.positions_error or 'not known'}", "dim")]
    venue = snap.positions.venue
    out = [Line(f"{'POSITIONS':<12}{'POSITION':>14}{'AVG PRICE':>13}{'LAST PRICE':>13}{'UNREALIZED':>13}"
                f"{'REALIZED':>13}{'FEES':>11}{'OPEN BUY':>11}{'OPEN SELL':>11}" + (f"{'BROKER':>14}" if venue is not None
                                                                                 else ""), "head")]
    rows = snap.positions.positions
    for sym, r in sorted(rows.items()):
        out.append(Line(f"{sym:<12}{qty(r.position):>14}{price(r.avg_price):>13}{price(r.last_price):>13}"
                        f"{money(r.unrealized_pnl):>13}{money(r.realized_pnl):>13}{money(r.fees, sign=False):>11}"
                        f"{qty(r.open_buy):>11}{qty(r.open_sell):>11}"
                        + (f"{qty(venue.get(sym, 0.0)):>14}" if venue is not None else "")))
    return out if rows else out + [Line("  no position and no order yet", "dim")]


def risk(snap: Snapshot) -> list[Line]:
    r = snap.risk
    if r is None:
        return [Line("RISK", "head"), Line(f"  {snap.risk_note or 'not read'}", "dim")]
    a, dd = r.account, r.drawdown
    equity = float(a[A_EQUITY])
    share = (lambda v: f" ({pct(v / equity)} of equity)") if equity > 0 else (lambda v: "")
    level = int(dd[D_LEVEL])
    sectors = ", ".join(f"{name} {money(v, sign=False)}{share(v)}" for name, v in r.sectors.items()) or "no sectors"
    measures = "  ".join(f"{name} {pct(float(dd[D_DRAWDOWN + k]))}" for k, name in enumerate(DD_MEASURE_NAMES))
    return [
        Line("RISK", "head"),
        Line(f"  equity {money(equity, sign=False)} | cash {money(float(a[A_CASH]), sign=False)} | gross exposure "
             f"{money(float(a[A_GROSS]), sign=False)} | net {money(float(a[A_NET]))} | risk multiplier "
             f"{float(a[A_RISK_MULT]):g}"),
        Line(f"  exposure by sector: {sectors}"),
        Line(f"  drawdown ladder: {level_name(level)} (level {level} of {len(DD_LEVEL_NAMES) - 1}) | "
             f"{measures} | worst {pct(float(dd[D_MAX_DRAWDOWN]))}", "" if level == 0 else "alert"),
    ]
