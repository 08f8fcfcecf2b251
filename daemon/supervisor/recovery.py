"""Crash-only start and the journal's record of the trading state (the supervisor's side).

At start, before any stage runs, :func:`restore_from_journal` sets the trading state the
journal last recorded and ends the orders the last run left open; while running,
:func:`journal_state_change` records each change of the trading state, which the next
start restores.  The risk stage rebuilds its book from the same journal
(:meth:`alphad.daemon.shell.stages.RiskStage.rebuild`).
"""
from __future__ import annotations

import sys
import time

from alphad.daemon.router.order_fsm import REASON_CXL_VENUE_LOST
from alphad.daemon.supervisor.journal import JournalWriter, last_run
from alphad.ipc.control import ACTIVE, STATE_NAMES, W_EPOCH, W_REASON, W_STATE
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
    found, orphans = last_run(path) if path.exists() else (None, [])
    now = time.monotonic_ns()
    for o in orphans:
        writer.append("exec", {"t_origin": now, "ts": now, "client_order_id": o["client_order_id"],
                               "instrument": o["instrument"], "side": o["side"], "status": EXEC_CANCELED,
                               "reason": REASON_CXL_VENUE_LOST, "fill_qty": 0.0, "fill_px": None, "fee": 0.0,
                               "leaves_qty": 0.0, "note": "venue ended with the last run"})
    if orphans:
        writer.flush()
        print(f"alphad: {len(orphans)} orders the last run left open journaled CANCELED (its simulated venues "
              "ended with it)", file=sys.stderr, flush=True)
    if found and found[0] != ACTIVE:
        sup.control.words[W_STATE], sup.control.words[W_REASON] = found
        print(f"alphad: trading state {STATE_NAMES[found[0]]} restored from {path} (reason "
              f"{sup.port.reason_name(found[1])}); `alphad ctl resume` to trade", file=sys.stderr, flush=True)


def journal_state_change(sup) -> None:
    """Journal each change of the trading state (operator, kill switch, ladder), which the
    next start restores."""
    epoch = int(sup.control.words[W_EPOCH])
    if epoch != sup._state_epoch and sup.journal is not None:
        sup._state_epoch = epoch
        state, reason = int(sup.control.words[W_STATE]), int(sup.control.words[W_REASON])
        sup.journal.record("state", {"state": state, "state_name": STATE_NAMES[state], "reason": reason,
                                      "reason_name": sup.port.reason_name(reason)})
