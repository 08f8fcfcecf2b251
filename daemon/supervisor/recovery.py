"""Crash-only start and the journal's record of the trading state (the supervisor's side).

At start, before any stage runs, :func:`restore_from_journal` sets the trading state the
journal last recorded, the day-start equity and daily-loss reference when the last run
recorded them the same (UTC) day, and ends the orders the last run left open; while
running, :func:`journal_state_change` and :func:`journal_day_change` record each change of
the trading state and of the day references, which the next start restores.  The risk stage rebuilds its book from the same journal
(:meth:`alphad.daemon.shell.stages.RiskStage.rebuild`).  Each reader here starts from the
journal's last ``checkpoint`` when there is one: the files before it may have been pruned
(:mod:`alphad.daemon.supervisor.journal_checkpoint`).
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

from alphad.daemon.router.order_fsm import REASON_CXL_VENUE_LOST
from alphad.daemon.supervisor.alerts import alert_changes
from alphad.daemon.supervisor.disk_watch import watch_disk
from alphad.daemon.supervisor.journal import JournalWriter, entries, last_run
from alphad.daemon.supervisor.journal_checkpoint import check_universe, last_checkpoint
from alphad.ipc.control import ACTIVE, STATE_NAMES, W_DAY_RESTORED, W_EPOCH, W_REASON, W_STATE
from alphad.ipc.dtypes import EXEC_CANCELED


def restore_from_journal(sup, writer: JournalWriter) -> None:
    """Crash-only, before any stage starts:

    * the trading state and its reason as the journal last recorded them (an operator
      HALT, a kill-switch latch): a HALTED daemon comes back HALTED until ``ctl resume``;
    * the orders the last run left without an end: its simulated venues lived in its
      router process and ended with it, so each is journaled CANCELED (reason
      ``REASON_CXL_VENUE_LOST``); the risk stage then rebuilds from a journal in which
      every order has ended."""
    path = writer.path
    # before any stage: a risk stage that failed on it would be restarted onto an empty book
    check_universe(last_checkpoint(path), sup.cfg)
    found, orphans = last_run(path) if path.exists() else (None, [])
    now = time.monotonic_ns()
    if getattr(sup, "gateway", None) is not None:  # a broker outlives the daemon: ask it, never assume
        hand_to_gateway(sup, path, orphans, now)
        orphans = []
    for o in orphans:
        writer.append("exec", {"t_origin": now, "ts": now, "client_order_id": o["client_order_id"],
                               "instrument": o["instrument"], "side": o["side"], "status": EXEC_CANCELED,
                               "reason": REASON_CXL_VENUE_LOST, "fill_qty": 0.0, "fill_px": None, "fee": 0.0,
                               "leaves_qty": 0.0, "note": "venue ended with the last run"})
    if orphans:
        writer.flush()
        print(f"alphad: {len(orphans)} orders the last run left open journaled CANCELED (its simulated venues "
              "ended with it)", file=sys.stderr, flush=True)
    day = last_day(path) if path.exists() else None
    if day is not None and day["date"] == utc_date():  # a restart the same day keeps its references
        sup.control.set_day_references(day["day_start_equity"], day["loss_ref"])
        sup.control.words[W_DAY_RESTORED] = 1
        sup._day_journaled = (day["day_start_equity"], day["loss_ref"])
        print(f"alphad: day-start equity {day['day_start_equity']:.2f} and daily-loss reference "
              f"{day['loss_ref']:.2f} restored from {path} (same UTC day {day['date']})", file=sys.stderr, flush=True)
    if found and found[0] != ACTIVE:
        sup.control.words[W_STATE], sup.control.words[W_REASON] = found
        print(f"alphad: trading state {STATE_NAMES[found[0]]} restored from {path} (reason "
              f"{sup.port.reason_name(found[1])}); `alphad ctl resume` to trade", file=sys.stderr, flush=True)


def hand_to_gateway(sup, path, orphans: list[dict], now: int) -> None:
    """The orders the last run left without an end, into the gateway's order table with
    unknown fate and the fills the journal holds for each: the gateway asks the broker
    about every one before it is ready and reports what happened while the daemon was
    down (fills, cancels) or that the order still works (the router then adopts it)."""
    if not orphans:
        return
    filled = orphan_fills(path, {int(o["client_order_id"]) for o in orphans})
    from alphad.daemon.router.venues.gateway_core import TIF_CODES
    from alphad.ipc.gateway_block import GS_UNKNOWN

    tif = TIF_CODES[getattr(sup.cfg.router, sup.cfg.router.venue).time_in_force]
    for o in orphans:
        cid = int(o["client_order_id"])
        px = o.get("limit_px")
        sup.gateway.enter(cid, int(o["instrument"]), int(o["side"]), int(o.get("kind") or 0), tif, float(o["qty"]),
                          float("nan") if px is None else float(px), now, now, state=GS_UNKNOWN,
                          reported=filled[cid][0], reported_value=filled[cid][1])
    print(f"alphad: {len(orphans)} orders the last run left open handed to the {sup.cfg.router.venue} gateway: it "
          "asks the broker what became of each before the daemon is ready", file=sys.stderr, flush=True)


def orphan_fills(path, cids: set[int]) -> dict[int, list[float]]:
    """The quantity and value the journal holds filled of each order of ``cids``."""
    filled = {c: [0.0, 0.0] for c in cids}
    for e in entries(path):
        if e.get("type") == "checkpoint":  # the fills before it, of the orders it holds open
            filled = {c: [0.0, 0.0] for c in cids}
            filled.update({o["client_order_id"]: list(o["filled"]) for o in e["open_orders"]
                           if o["client_order_id"] in cids})
        elif e.get("type") == "exec" and e.get("client_order_id") in cids and (e.get("fill_qty") or 0) > 0:
            f = filled[int(e["client_order_id"])]
            f[0] += float(e["fill_qty"])
            f[1] += float(e["fill_qty"]) * float(e["fill_px"])
    return filled


def utc_date() -> str:
    """The trading day, until a trading calendar exists: the UTC date."""
    return datetime.now(timezone.utc).date().isoformat()


def last_day(path) -> dict | None:
    """The journal's last ``day`` entry (the risk stage's day references), or None."""
    day = None
    for e in entries(path):
        if e.get("type") == "day":
            day = e
        elif e.get("type") == "checkpoint":  # the last one before it
            day = e["day"]
    return day


def journal_changes(sup) -> None:
    """Every change the next start restores or an audit reads: the trading state, the day
    references, a live venue's link, a live feed's data health; then the webhook alerts of
    what changed (:mod:`alphad.daemon.supervisor.alerts`).  First the journal's disk: a
    low-disk halt is journaled in the same pass."""
    watch_disk(sup)
    journal_state_change(sup)
    journal_day_change(sup)
    if getattr(sup, "gw", None) is not None:
        sup.gw.journal_link()
    sup.port.data.check()
    alert_changes(sup)


def journal_day_change(sup) -> None:
    """Journal the day-start equity and daily-loss reference risk publishes when they
    change (a start, a resume, the ladder), which a restart the same day restores."""
    refs = sup.control.day_references
    if sup.journal is not None and refs != sup._day_journaled and all(r > 0 for r in refs):
        sup._day_journaled = refs
        sup.journal.record("day", {"date": utc_date(), "day_start_equity": refs[0], "loss_ref": refs[1]})


def journal_state_change(sup) -> None:
    """Journal each change of the trading state (operator, kill switch, ladder), which the
    next start restores."""
    epoch = int(sup.control.words[W_EPOCH])
    if epoch != sup._state_epoch and sup.journal is not None:
        sup._state_epoch = epoch
        state, reason = int(sup.control.words[W_STATE]), int(sup.control.words[W_REASON])
        sup.journal.record("state", {"state": state, "state_name": STATE_NAMES[state], "reason": reason,
                                      "reason_name": sup.port.reason_name(reason)})
