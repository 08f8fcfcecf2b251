"""Risk denials into the journal at a bounded rate.

At the feed's full speed the gate can deny tens of thousands of signals a second (a HALT
denies every one), and one line each made the journal grow at megabytes a second.  Up to
``journal.denials_per_s`` denials in each one-second window are journaled one line each
(``denial``), as before; the rest of the window is counted, and when the window ends one
``denial_summary`` entry per (instrument, reason) says how many there were and when.
"""
from __future__ import annotations


class DenialGate:
    """Decides, denial by denial, whether it gets its own line or goes into a summary.
    ``now`` is the journal thread's clock in seconds (any monotonic clock)."""

    def __init__(self, per_s: int, interval_s: float = 1.0):
        self.limit = max(1, int(per_s * interval_s))
        self.interval_s = interval_s
        self.window_end: float | None = None
        self.count = 0
        self.summaries: dict[tuple[int, int], dict] = {}

    def route(self, fields: dict, now: float) -> list[tuple[str, dict]]:
        """The entries to journal for the denial ``fields``: an ended window's summaries
        first, then the denial itself while the window is under the limit."""
        out = self.due(now)
        if self.window_end is None:
            self.window_end = now + self.interval_s
        self.count += 1
        if self.count <= self.limit:
            out.append(("denial", fields))
            return out
        key = (fields["instrument"], fields["reason"])
        s = self.summaries.get(key)
        if s is None:
            s = self.summaries[key] = {"instrument": fields["instrument"], "reason": fields["reason"],
                                       "reason_name": fields.get("reason_name"), "count": 0,
                                       "first_ts": fields["ts"], "last_ts": fields["ts"],
                                       "interval_s": self.interval_s, "limit": self.limit}
        s["count"] += 1
        s["last_ts"] = fields["ts"]
        return out

    def due(self, now: float, final: bool = False) -> list[tuple[str, dict]]:
        """The summaries of the window once it has ended (``final``: now, at shutdown)."""
        if self.window_end is None or (now < self.window_end and not final):
            return []
        out = [("denial_summary", s) for s in self.summaries.values()]
        self.summaries, self.count, self.window_end = {}, 0, None
        return out
