"""Bad market-data records: the reasons, and the tally a reader keeps of them.

A recorded file's reader (:mod:`alphad.daemon.feed.sources`) hands each record it refuses
to a :class:`BadRecords` with its file, line and reason.  ``feed.on_bad_record`` chooses
what happens: ``skip`` counts it by reason and keeps the first :attr:`BadRecords.SHOW` of
each reason as ``file:line: reason: detail`` lines (the feed stage prints them, then a
per-reason summary); ``stop`` raises :class:`BadRecordError` naming the file, the line and
the reason.  A row of a symbol outside the universe is counted under ``unknown_symbol``
and skipped under either policy: a file may hold more symbols than a config trades.

A live source (:mod:`alphad.daemon.feed.live_buffer`) counts what it drops under the same
reason names (:data:`LIVE_REASONS`), by index, in a list (no dict lookup per record).
"""
from __future__ import annotations

import sys

#: A row of the wrong shape: too few or too many cells, an unknown ``kind``, text that is
#: not UTF-8.
MALFORMED = "malformed"
#: A cell that should be a number is not (a price, a size, a ``ts_ns``, a date).
BAD_NUMBER = "bad_number"
#: A price or size that is NaN or infinite.
NON_FINITE = "non_finite"
#: A price at or below zero.
NON_POSITIVE_PRICE = "non_positive_price"
#: A size (or a bar's volume) below zero.
NEGATIVE_SIZE = "negative_size"
#: A quote whose bid is above its ask.
CROSSED_QUOTE = "crossed_quote"
#: An event earlier than the one before it (in the file, or of the same instrument where
#: the reader sorts the file by time: see each reader).
BACKWARDS_TS = "backwards_ts"
#: A row of a symbol outside the universe (skipped under either policy).
UNKNOWN_SYMBOL = "unknown_symbol"

REASONS = (MALFORMED, BAD_NUMBER, NON_FINITE, NON_POSITIVE_PRICE, NEGATIVE_SIZE, CROSSED_QUOTE, BACKWARDS_TS,
           UNKNOWN_SYMBOL)
#: What a live source counts, by index (``LiveSource.bad``).
LIVE_REASONS = (NON_FINITE, NON_POSITIVE_PRICE, NEGATIVE_SIZE, UNKNOWN_SYMBOL)
L_NON_FINITE, L_NON_POSITIVE_PRICE, L_NEGATIVE_SIZE, L_UNKNOWN_SYMBOL = range(len(LIVE_REASONS))
POLICIES = ("skip", "stop")


class BadRecordError(ValueError):
    """``feed.on_bad_record: stop`` met a bad record (the message names file, line, reason)."""


class BadRecords:
    """The bad records of one load: counts by reason, the first few of each as text.

    ``policy``: ``skip`` or ``stop`` (``feed.on_bad_record``)."""

    #: Lines kept per reason (the rest are only counted).
    SHOW = 3

    def __init__(self, policy: str = "skip"):
        if policy not in POLICIES:
            raise ValueError(f"feed.on_bad_record expected one of {list(POLICIES)}, was {policy!r}")
        self.policy = policy
        self.stop = policy == "stop"
        self.counts: dict[str, int] = {}
        self.shown: list[str] = []

    def add(self, path, line: int, reason: str, detail: str) -> None:
        """One bad record at ``path:line``: raised under ``stop`` (but an unknown symbol),
        else counted (and kept as text while its reason has fewer than :attr:`SHOW`)."""
        if self.stop and reason != UNKNOWN_SYMBOL:
            raise BadRecordError(f"{path}:{line}: {detail} ({reason}; feed.on_bad_record: stop)")
        n = self.counts.get(reason, 0)
        self.counts[reason] = n + 1
        if n < self.SHOW:
            self.shown.append(f"{path}:{line}: {reason}: {detail}")

    def add_many(self, reason: str, n: int) -> None:
        """``n`` more of ``reason`` beyond those :meth:`add` was given (not shown)."""
        if n > 0:
            self.counts[reason] = self.counts.get(reason, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        """``{reason: count}`` of the reasons met, in :data:`REASONS` order."""
        return {r: self.counts[r] for r in REASONS if self.counts.get(r)}

    def summary(self) -> str:
        """``N bad records skipped (reason n, ...)``, or ``no bad records``."""
        if not self.total:
            return "no bad records"
        by = ", ".join(f"{r} {n}" for r, n in self.as_dict().items())
        return f"{self.total} bad record{'s' if self.total != 1 else ''} skipped ({by})"

    def print(self, what: str, file=None) -> None:
        """The kept lines, then the summary, on stderr (nothing when there was nothing bad)."""
        if not self.total:
            return
        out = file if file is not None else sys.stderr
        for line in self.shown:
            print(f"alphad feed: {line}", file=out)
        print(f"alphad feed: {what}: {self.summary()} (feed.on_bad_record: {self.policy}; the first "
              f"{self.SHOW} of each reason are listed above)", file=out, flush=True)
