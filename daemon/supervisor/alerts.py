"""Webhook alerts from the supervisor (``supervisor.webhook_url``).

The supervisor loop calls :func:`alert_changes` after it journals its changes
(:func:`alphad.daemon.supervisor.recovery.journal_changes`).  Each call reads a
:class:`Snapshot` (the trading state and its reason, stage restarts, stale instruments, the
drawdown ladder's step) and :func:`changes` turns the difference with the last one into
alerts, which :class:`~alphad.daemon.risk.drawdown.AlertSender` POSTs as JSON from its own
thread (never the loop's), at most once per kind per ``supervisor.webhook_cooldown_s``; a
kill-switch trip and the ladder's KILL step bypass the cooldown.

Kinds: ``halt`` (an operator), ``kill_switch`` (HALTED by the daily loss limit or the ladder),
``reducing``, ``resume``, ``restart:<stage>``, ``stale_data``, ``data_back``,
``drawdown:escalate:<level>`` and ``drawdown:recover:<level>``.  Every body carries ``kind``,
``summary``, ``instance`` (the shm prefix), ``host``, ``time`` (UTC, ISO 8601) and
``trading_state``.
"""
from __future__ import annotations

import atexit
import socket
from datetime import datetime, timezone

import msgspec

from alphad.daemon.risk.codes import DD_EVENT_ESCALATE, DD_EVENT_RECOVER, DD_KILL
from alphad.daemon.risk.drawdown import D_LEVEL, AlertSender, event_name
from alphad.ipc.control import HALTED, REASON_OPERATOR, S_RESTARTS, STAGE_INDEX, STAGES, STATE_NAMES, W_EPOCH, W_REASON


class Snapshot(msgspec.Struct, frozen=True):
    """What the alerts compare from one loop pass to the next."""

    state: int = 0
    reason: str = ""
    #: 1 when the state was raised by an operator command.
    by_operator: bool = False
    #: The control block's state epoch: moves at every change, so HALT, RESUME, HALT between
    #: two reads is still seen.
    epoch: int = 0
    #: ``(process, restarts)``: each stage, and the live venue's gateway when there is one.
    restarts: tuple[tuple[str, int], ...] = ()
    stale: tuple[str, ...] = ()
    feed_data_down: int = 0
    #: The drawdown ladder's step; -1 before the risk stage made its state.
    dd_level: int = -1


class Alert(msgspec.Struct, frozen=True):
    kind: str
    summary: str
    fields: dict = {}
    #: Bypasses the cooldown.
    urgent: bool = False


def changes(before: Snapshot, now: Snapshot) -> list[Alert]:
    """The alerts the step from ``before`` to ``now`` calls for (oldest concern first)."""
    out = []
    if now.epoch != before.epoch:
        name = STATE_NAMES[now.state]
        fields = {"state": name, "reason": now.reason, "previous_state": STATE_NAMES[before.state]}
        if now.state == HALTED and not now.by_operator:
            out.append(Alert("kill_switch", f"kill switch tripped: trading HALTED ({now.reason}); "
                             "`alphad ctl resume` to trade", fields, urgent=True))
        elif now.state == HALTED:
            out.append(Alert("halt", "trading HALTED by an operator; `alphad ctl resume` to trade", fields))
        elif now.state == before.state:
            out.append(Alert(f"state:{name.lower()}", f"trading state changed and is {name} ({now.reason})", fields))
        else:
            kind = "resume" if name == "ACTIVE" else name.lower()
            out.append(Alert(kind, f"trading state {STATE_NAMES[before.state]} -> {name}"
                             + (f" ({now.reason})" if now.reason else ""), fields))
    old = dict(before.restarts)
    for proc, n in now.restarts:
        if n > old.get(proc, n):
            out.append(Alert(f"restart:{proc}", f"stage {proc} died and was restarted ({n} restarts so far)",
                             {"stage": proc, "restarts": n}))
    gone_stale = sorted(set(now.stale) - set(before.stale))
    back = sorted(set(before.stale) - set(now.stale))
    if gone_stale:
        out.append(Alert("stale_data", f"market data stale on {', '.join(gone_stale)}: no new orders on them",
                         {"symbols": gone_stale, "stale": list(now.stale), "feed_data_down": now.feed_data_down}))
    if back:
        out.append(Alert("data_back", f"market data back on {', '.join(back)}: orders resume",
                         {"symbols": back, "stale": list(now.stale), "feed_data_down": now.feed_data_down}))
    if before.dd_level >= 0 and now.dd_level >= 0 and now.dd_level != before.dd_level:
        up = now.dd_level > before.dd_level
        event = event_name((DD_EVENT_ESCALATE if up else DD_EVENT_RECOVER) + now.dd_level)
        out.append(Alert(f"drawdown:{event}", f"drawdown ladder {event.replace(':', ' to ')}",
                         {"level": now.dd_level, "previous_level": before.dd_level},
                         urgent=up and now.dd_level == DD_KILL))
    return out


def snapshot(sup) -> Snapshot:
    """Read supervisor ``sup``'s shared blocks."""
    words = sup.control.words
    restarts = [(s, sup.control.stage(STAGE_INDEX[s], S_RESTARTS)) for s in STAGES]
    block = getattr(sup, "gateway", None)
    if block is not None:
        from alphad.ipc.gateway_block import G_STARTS

        restarts.append((sup.gw.name, max(0, int(block.words[G_STARTS]) - 1)))
    health = sup.port.data.read()
    dd = sup.port.data.view.drawdown()
    reason = int(words[W_REASON])
    return Snapshot(state=sup.control.trading_state, reason=sup.port.reason_name(reason),
                    by_operator=reason == REASON_OPERATOR, epoch=int(words[W_EPOCH]), restarts=tuple(restarts),
                    stale=tuple(health.stale), feed_data_down=health.feed_data_down,
                    dd_level=-1 if dd is None else int(dd[D_LEVEL]))


class AlertWatch:
    """Posts the alerts of supervisor ``sup`` to ``supervisor.webhook_url``."""

    def __init__(self, sup, sender: AlertSender):
        self.sup, self.sender = sup, sender
        self.instance, self.host = sup.cfg.shm.prefix, socket.gethostname()
        self.last = snapshot(sup)

    def check(self) -> None:
        now = snapshot(self.sup)
        before, self.last = self.last, now
        for a in changes(before, now):
            self.sender.submit(a.kind, {"summary": a.summary, "instance": self.instance, "host": self.host,
                                        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                                        "trading_state": STATE_NAMES[now.state], **a.fields}, urgent=a.urgent)


def alert_changes(sup) -> None:
    """Post what changed since the last call (nothing without ``supervisor.webhook_url``);
    the first call only takes the snapshot the next ones compare with."""
    watch = getattr(sup, "alert_watch", None)
    if watch is None:
        sv = sup.cfg.supervisor
        if not sv.webhook_url:
            return
        sender = AlertSender(sv.webhook_url, sv.webhook_cooldown_s)
        atexit.register(sender.close, 2.0)  # post what is queued when the supervisor exits
        watch = sup.alert_watch = AlertWatch(sup, sender)
        return
    watch.check()
