"""Append-only, hash-chained journal: orders, arrival quotes, exec reports, risk denials, control commands.

One JSON object per line.  Each line carries ``prev`` (the previous line's
hash) and ``hash`` = sha256 of ``prev`` + the line's canonical JSON without the
``hash`` field, so editing, dropping or reordering any line breaks every hash
after it (:func:`verify` finds the first broken line).  Lines are flushed and
fsynced in batches by the supervisor's journal thread, off the hot path: the
thread is an ordinary consumer of the lossless orders and exec rings.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from alphad.ipc import dtypes
from alphad.ipc.ring import Ring, ring_pending, ring_pop

from alphad.daemon.risk.codes import REASON_NAMES

GENESIS = "0" * 64

#: Journal entry type of each ring the journal reads.
_ENTRY = {"orders": "order", "exec": "exec", "denials": "denial", "arrivals": "arrival"}


def _digest(prev: str, body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + canonical).encode()).hexdigest()


class JournalWriter:
    """Appends entries to the daemon's hash-chained journal ``DIRECTORY/journal.jsonl`` (see above).

    Not :class:`alphad.ops.tca.TcaJournalWriter`, which writes TCA events without a chain.
    """

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "journal.jsonl"
        self.prev, self.n = GENESIS, 0
        if self.path.exists():  # crash-only: continue the chain where it stopped
            last = None
            with self.path.open("rb") as f:
                for line in f:
                    if line.strip():
                        last = line
                        self.n += 1
            if last is not None:
                try:
                    self.prev = json.loads(last)["hash"]
                except (ValueError, KeyError):
                    raise RuntimeError(f"{self.path}: last line is not a journal entry; run verify and repair") from None
        self.file = self.path.open("a", encoding="utf-8")

    def append(self, kind: str, fields: dict) -> None:
        body = {"n": self.n, "ts_ns": time.time_ns(), "type": kind, **fields, "prev": self.prev}
        h = _digest(self.prev, body)
        body["hash"] = h
        self.file.write(json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")
        self.prev = h
        self.n += 1

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.flush()
        self.file.close()


def verify(path: str | Path) -> tuple[int, int | None]:
    """Check the chain; returns (lines checked, index of the first bad line or None)."""
    prev = GENESIS
    n = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            body = json.loads(line)
            h = body.pop("hash", None)
            if body.get("prev") != prev or _digest(prev, body) != h:
                return n, n
            prev = h
    return n + 1 if prev != GENESIS else 0, None


def entries(path: str | Path):
    """The journal's entries as dicts, in order; a torn last line (a crash mid-write) is
    left out, any other unreadable line raises ``ValueError`` naming it."""
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for n, line in enumerate(lines):
        try:
            yield json.loads(line)
        except ValueError:
            if n == len(lines) - 1 and not line.endswith("\n"):
                return  # torn by a crash while it was written: never acted on
            raise ValueError(f"{path}:{n + 1}: not a journal entry") from None


def records(path: str | Path, entry: str, kind: str) -> np.ndarray:
    """Every ``entry`` line (``order``, ``exec``) of the journal as ``kind`` records."""
    dtype = dtypes.RECORDS[kind]
    rows = [e for e in entries(path) if e.get("type") == entry]
    out = np.zeros(len(rows), dtype)
    for name in dtype.names:
        if name != "pad":
            out[name] = [np.nan if r.get(name) is None else r[name] for r in rows]
    return out


def last_run(path: str | Path) -> tuple[tuple[int, int] | None, list[dict]]:
    """What a start needs from the journal: the trading state and its reason code as last
    recorded (``state`` entries; None when none), and the approved orders with no end
    (fill, cancel, reject) journaled."""
    state, orders, ended = None, {}, set()
    for e in entries(path):
        kind = e.get("type")
        if kind == "state":
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
    """Drains the orders and exec rings (as consumer ``journal``) into the journal."""

    def __init__(self, writer: JournalWriter, rings: dict[str, Ring], period_s: float = 0.005):
        super().__init__(name="alphad-journal", daemon=True)
        self.writer = writer
        self.period_s = period_s
        self.sources = []
        for kind, ring in rings.items():
            if kind in _ENTRY and "journal" in ring.consumer_names():
                buf = np.zeros(256, dtype=dtypes.RECORDS[kind])
                self.sources.append((kind, ring, ring.consumer_index("journal"), buf))
        self.sources.sort(key=lambda s: s[0] == "exec")  # orders before the reports on them (drain)
        self.lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.drain()
            self._halt.wait(self.period_s)
        self.drain()

    def drain(self) -> int:
        total = 0
        with self.lock:
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
                        self.writer.append(_ENTRY[kind], fields)
                    total += n
                    if n == 0 or (left < 0 and n < len(buf)):
                        break
            if total:
                self.writer.flush()
        return total

    def control(self, command: str, fields: dict) -> None:
        self.record("control", {"command": command, **fields})

    def record(self, entry: str, fields: dict) -> None:
        """One entry of the supervisor's own (control commands, trading-state changes), flushed."""
        with self.lock:
            self.writer.append(entry, fields)
            self.writer.flush()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
