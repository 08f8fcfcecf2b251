"""The daemon's journal: orders, arrival quotes, exec reports, risk denials, control commands.

One JSON object per line, chained and keyed (:mod:`journal_chain`): each line carries
``prev`` (the previous line's hash) and ``hash`` (HMAC-SHA256 under a key kept outside the
journal directory), so editing, dropping or reordering any line breaks the chain after it,
and nobody without the key can recompute it.  The files rotate by size and UTC day
(:mod:`journal_files`, :mod:`journal_writer`); every reader here takes the whole rotated
set in order, so ``entries("var/journal/journal.jsonl")`` reads everything the journal
holds; what a restart reads back starts at the last ``checkpoint`` when there is one
(:mod:`journal_checkpoint`).  ``alphad audit verify`` (:mod:`journal_verify`) checks it end
to end.

The supervisor's journal thread writes, flushes and fsyncs, off the hot path: it is an
ordinary consumer of the lossless orders and exec rings, and takes the supervisor's own
entries (control commands, state changes) from a queue, so a control command never waits
for journal I/O.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from alphad.ipc import dtypes
from alphad.ipc.ring import Ring, ring_pending, ring_pop

from alphad.daemon.risk.codes import REASON_NAMES
from alphad.daemon.supervisor.disk_watch import DiskWatch
from alphad.daemon.supervisor.journal_chain import GENESIS
from alphad.daemon.supervisor.journal_denials import DenialGate
from alphad.daemon.supervisor.journal_checkpoint import as_records
from alphad.daemon.supervisor.journal_files import entries
from alphad.daemon.supervisor.journal_verify import verify
from alphad.daemon.supervisor.journal_writer import JournalWriter

__all__ = ["GENESIS", "JournalWriter", "JournalThread", "entries", "records", "last_run", "verify"]

#: Journal entry type of each ring the journal reads.
_ENTRY = {"orders": "order", "exec": "exec", "denials": "denial", "arrivals": "arrival"}


def records(path: str | Path, entry: str, kind: str) -> np.ndarray:
    """Every ``entry`` line (``order``, ``exec``) of the journal as ``kind`` records."""
    return as_records([e for e in entries(path) if e.get("type") == entry], kind)


def last_run(path: str | Path) -> tuple[tuple[int, int] | None, list[dict]]:
    """What a start needs from the journal: the trading state and its reason code as last
    recorded (``state`` entries; None when none), and the approved orders with no end
    (fill, cancel, reject) journaled.  From the last checkpoint on, when there is one
    (:mod:`journal_checkpoint`: the files before it may have been pruned)."""
    state, orders, ended = None, {}, set()
    for e in entries(path):
        kind = e.get("type")
        if kind == "checkpoint":  # everything before it, as it left these two
            state = None if e["state"] is None else tuple(e["state"])
            orders, ended = {o["client_order_id"]: o for o in e["open_orders"]}, set()
        elif kind == "state":
            state = (int(e["state"]), int(e["reason"]))
        elif kind == "order":
            orders[e["client_order_id"]] = e
        elif kind == "exec" and e["status"] in (dtypes.EXEC_FILL, dtypes.EXEC_CANCELED, dtypes.EXEC_REJECT):
            ended.add(e["client_order_id"])  # an older alphad's journal may hold it before its order
    return state, [o for cid, o in orders.items() if cid not in ended]


def _record_fields(rec: np.void) -> dict:
    out = {}
    for name in rec.dtype.names:
        if name == "pad":
            continue
        v = rec[name]
        out[name] = v.item() if hasattr(v, "item") else v
        if isinstance(out[name], float) and out[name] != out[name]:
            out[name] = None  # NaN is not JSON
    return out


class JournalThread(threading.Thread):
    """Drains the orders, exec, denials and arrivals rings (as consumer ``journal``) and the
    supervisor's own entries into the journal, flushing after each pass; owns the watch on
    the journal's disk (:mod:`disk_watch`).  ``cfg``: the ``journal`` config section."""

    def __init__(self, writer: JournalWriter, rings: dict[str, Ring], cfg=None, period_s: float = 0.005):
        super().__init__(name="alphad-journal", daemon=True)
        from alphad.daemon.supervisor.config import Journal

        cfg = cfg or Journal()
        self.writer = writer
        self.period_s = period_s
        self.sources = []
        for kind, ring in rings.items():
            if kind in _ENTRY and "journal" in ring.consumer_names():
                buf = np.zeros(256, dtype=dtypes.RECORDS[kind])
                self.sources.append((kind, ring, ring.consumer_index("journal"), buf))
        self.sources.sort(key=lambda s: s[0] == "exec")  # orders before the reports on them (drain)
        #: The supervisor's own entries, waiting for this thread: record() never touches the
        #: writer, so a control command never waits behind journal I/O.
        self.pending: deque[tuple[str, dict]] = deque()
        self.lock = threading.Lock()  # one drain at a time (this thread's, or stop()'s last)
        self._halt = threading.Event()
        self._wake = threading.Event()
        self.denials = DenialGate(cfg.denials_per_s)
        self.disk = DiskWatch(writer.dir, cfg.min_free_mb)
        self.failures = 0
        self._alerted = 0.0

    def run(self) -> None:
        while not self._halt.is_set():
            self._drain_or_alert()
            self._wake.wait(self.period_s)
            self._wake.clear()
        self._drain_or_alert(final=True)

    def _drain_or_alert(self, final: bool = False) -> None:
        try:
            self.drain(final)
        except Exception as e:  # a full or failing disk: say so, keep the thread, try again
            # (a dead journal thread would stop journaling silently; the lossless rings would
            # then fill and stall the router)
            self.failures += 1
            if time.monotonic() - self._alerted > 5.0:
                self._alerted = time.monotonic()
                print(f"alphad: alert: journal write failed ({e}); {self.failures} failures so far, retrying",
                      file=sys.stderr, flush=True)

    def drain(self, final: bool = False) -> int:
        """One pass: the queued entries, then the rings; flushed (fsync, anchor) when anything
        was written.  ``final``: the denial summaries of the current window too."""
        total = 0
        now = time.monotonic()
        with self.lock:
            written = self.writer.n
            while self.pending:
                entry, fields = self.pending.popleft()
                self.writer.append(entry, fields)
                total += 1
            # Every exec report's order was pushed before the report: count the reports that
            # are there now, journal every order, then only those reports, and an order always
            # comes before its reports in the file.
            due = {kind: ring_pending(ring.h64, ci) for kind, ring, ci, _ in self.sources if kind == "exec"}
            for kind, ring, ci, buf in self.sources:
                left = due.get(kind, -1)
                while left != 0:
                    n = ring_pop(ring.h64, ring.b8, ci, buf.view(np.uint8), len(buf) if left < 0 else min(left, len(buf)))
                    left = left - n if left > 0 else left
                    for k in range(n):
                        fields = _record_fields(buf[k])
                        if kind == "denials":
                            fields["reason_name"] = REASON_NAMES[fields["reason"]]
                            for entry, f in self.denials.route(fields, now):
                                self.writer.append(entry, f)
                        else:
                            self.writer.append(_ENTRY[kind], fields)
                    total += n
                    if n == 0 or (left < 0 and n < len(buf)):
                        break
            for entry, f in self.denials.due(now, final):
                self.writer.append(entry, f)
            if self.writer.n != written:
                self.writer.flush()
        return total

    def control(self, command: str, fields: dict) -> None:
        self.disk.operator_command(command)
        self.record("control", {"command": command, **fields})

    def record(self, entry: str, fields: dict) -> None:
        """One entry of the supervisor's own (control commands, trading-state changes): handed
        to the journal thread, which writes and flushes it within its period."""
        self.pending.append((entry, fields))
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread after a last pass; whatever is still queued is written here."""
        self._halt.set()
        self._wake.set()
        if self.ident is not None:
            self.join(timeout=5)
        if not self.is_alive():
            self.drain(final=True)
