"""The value checks of a recorded file's rows, vectorised over batches of rows.

A reader parses each line into a row tuple ``(ts_ns, instrument, kind, bid_px, bid_sz,
ask_px, ask_sz, last_px, last_sz[, open_px, high_px, low_px, bar_ns[, adjusted_close]])``
(what a line cannot be parsed into it reports itself) and hands it to a
:class:`RowChecker`, which checks a batch at a time with numpy and hands back the rows that
pass, in file order.  A row is refused for its first failed check, in this order:

* ``non_finite``: a price or size the row's kind uses is NaN or infinite (a quote: bid and
  ask price and size; a trade: last price and size; a bar: its close and volume, and its
  open, high and low when the row has them; the daily file's adjusted close);
* ``non_positive_price``: one of those prices is at or below zero;
* ``negative_size``: one of those sizes is below zero;
* ``crossed_quote``: a quote's bid is above its ask;
* ``backwards_ts``: its time is before the latest time of the rows accepted before it: of
  the whole file (``per_instrument=False``: a file that is replayed in its own order), or of
  the same instrument (``per_instrument=True``: a reader that sorts the file by time
  afterwards, whose files hold one instrument after another).  A row refused for another
  reason does not move that latest time.

Every refusal goes to the :class:`~alphad.daemon.feed.bad_records.BadRecords` with its
line; under ``stop`` the first bad row of the batch raises, so an error names the first bad
line of the file (a reader flushes the batch before it reports a line it could not parse).
"""
from __future__ import annotations

import numpy as np

from alphad.daemon.feed.bad_records import (BACKWARDS_TS, CROSSED_QUOTE, NEGATIVE_SIZE, NON_FINITE,
                                            NON_POSITIVE_PRICE, BadRecords)
from alphad.ipc.dtypes import MD_BAR, MD_QUOTE

#: Rows per vectorised check.
BATCH = 8192
_I64_MIN = np.iinfo(np.int64).min
#: The row's numeric columns by position (3..), with the md field name each becomes.
COLUMNS = ("bid_px", "bid_sz", "ask_px", "ask_sz", "last_px", "last_sz", "open_px", "high_px", "low_px", "bar_ns",
           "adjusted_close")


class RowChecker:
    """Checks the rows of file ``path`` in batches; :meth:`flush` returns those that pass.

    ``names``: the file's own name of each md column (``{"bid_px": "bid_price"}``), for the
    messages; ``symbols``: instrument id -> symbol, for the messages."""

    def __init__(self, path, bad: BadRecords, *, per_instrument: bool, names: dict | None = None,
                 symbols: dict | None = None, batch: int = BATCH):
        self.path, self.bad, self.per_instrument, self.batch = path, bad, per_instrument, batch
        self.names = names or {}
        self.symbols = symbols or {}
        self.rows: list[tuple] = []
        self.lines: list[int] = []
        self._last = _I64_MIN                 # the file's latest accepted time
        self._last_of: dict[int, int] = {}    # or each instrument's

    def add(self, lineno: int, row: tuple) -> bool:
        """Queue a parsed row; True when a batch is due (call :meth:`flush`)."""
        self.rows.append(row)
        self.lines.append(lineno)
        return len(self.rows) >= self.batch

    def reject(self, lineno: int, reason: str, detail: str) -> None:
        """A line the reader could not parse.  Under ``stop`` the queued rows are checked
        first: an earlier bad row is the one named."""
        if self.bad.stop:
            self.flush()
        self.bad.add(self.path, lineno, reason, detail)

    def flush(self) -> list[tuple]:
        """Check the queued rows; returns those that pass, in order."""
        rows, lines = self.rows, self.lines
        if not rows:
            return []
        self.rows, self.lines = [], []
        keep, _, _ = self._check(rows, np.asarray(lines, np.int64))
        if keep.all():
            return rows
        return [r for r, k in zip(rows, keep.tolist()) if k]

    def flush_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`flush` as arrays: the times (int64) and the rows (float64, a row per row)
        that pass (for a reader that builds its records whole, without a second conversion)."""
        rows, lines = self.rows, self.lines
        self.rows, self.lines = [], []
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0))
        keep, ts, a = self._check(rows, np.asarray(lines, np.int64))
        return ts[keep], a[keep]

    # -- the checks ---------------------------------------------------------------------------
    def _check(self, rows: list[tuple], lines: np.ndarray):
        """(the rows that pass, the times, the rows as float64)"""
        a = np.array(rows, dtype=np.float64)  # the numbers (a ns stamp is not exact here: taken apart)
        ts = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        return self.check(ts, a, lines), ts, a

    def check(self, ts: np.ndarray, a: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """Check rows given as arrays (``ts`` int64, ``a`` float64 with a row per row, in the
        row layout, ``lines`` their line numbers); returns which pass.  For a reader that
        gathers its columns itself (the daily bars): it calls this once it has them all."""
        inst = a[:, 1].astype(np.int64)
        quote = a[:, 2] == MD_QUOTE
        q = quote[:, None]
        px = np.where(q, a[:, [3, 5]], a[:, [7, 7]])          # the prices the kind uses
        sz = np.where(q, a[:, [4, 6]], a[:, [8, 8]])          # and the sizes
        if a.shape[1] > 9:  # a bar's open, high and low (another row: its first price again)
            px = np.concatenate([px, np.where((a[:, 2] == MD_BAR)[:, None], a[:, 9:12], px[:, [0, 0, 0]])], axis=1)
        if a.shape[1] > 13:  # the daily file's adjusted close: a price of every row
            px = np.concatenate([px, a[:, 13:]], axis=1)
        with np.errstate(invalid="ignore"):
            non_finite = ~(np.isfinite(px).all(axis=1) & np.isfinite(sz).all(axis=1))
            non_positive = ~non_finite & (px <= 0).any(axis=1)
            negative = ~non_finite & ~non_positive & (sz < 0).any(axis=1)
            crossed = ~non_finite & ~non_positive & ~negative & quote & (a[:, 3] > a[:, 5])
        ok = ~(non_finite | non_positive | negative | crossed)
        before = self._latest_before(ts, inst, ok)
        backwards = ok & (ts < before)
        bad = ~ok | backwards
        if not bad.any():
            return ok
        masks = ((NON_FINITE, non_finite), (NON_POSITIVE_PRICE, non_positive), (NEGATIVE_SIZE, negative),
                 (CROSSED_QUOTE, crossed), (BACKWARDS_TS, backwards))
        if self.bad.stop:  # the first bad row of the batch
            j = int(np.argmax(bad))
            reason = next(r for r, m in masks if m[j])
            self.bad.add(self.path, int(lines[j]), reason, self._detail(reason, a[j], int(ts[j]), int(before[j])))
        for reason, m in masks:
            idx = np.flatnonzero(m)
            shown = max(0, min(len(idx), self.bad.SHOW - self.bad.counts.get(reason, 0)))
            for j in idx[:shown].tolist():
                self.bad.add(self.path, int(lines[j]), reason, self._detail(reason, a[j], int(ts[j]), int(before[j])))
            self.bad.add_many(reason, len(idx) - shown)
        return ~bad

    def _latest_before(self, ts: np.ndarray, inst: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """For each row, the latest time of the accepted rows before it (of the file, or of its
        instrument), earlier batches included; carries the latest time over to the next batch.
        A row of ``ok`` earlier than it goes backwards (and, refused, moves nothing)."""
        if not self.per_instrument:
            before = self._run(ts, ok, self._last)
            if ok.any():
                self._last = max(self._last, int(ts[ok].max()))
            return before
        before = np.full(len(ts), _I64_MIN, np.int64)
        for i in np.unique(inst[ok]).tolist():
            sel = np.flatnonzero(ok & (inst == i))
            last = self._last_of.get(i, _I64_MIN)
            before[sel] = self._run(ts[sel], np.ones(len(sel), bool), last)
            self._last_of[i] = max(last, int(ts[sel].max()))
        return before

    @staticmethod
    def _run(ts: np.ndarray, ok: np.ndarray, last: int) -> np.ndarray:
        """For each ``k``: the latest of ``last`` and the ``ok`` times before ``k``."""
        t = np.where(ok, ts, _I64_MIN)
        return np.maximum.accumulate(np.concatenate([np.array([last], np.int64), t[:-1]])) if len(t) else t

    def _detail(self, reason: str, a: np.ndarray, t: int, before: int) -> str:
        """The text of one refusal (only for the rows that are shown)."""
        name = self.names.get
        cols = {c: float(a[3 + k]) for k, c in enumerate(COLUMNS) if 3 + k < len(a)}
        used = (("bid_px", "ask_px", "bid_sz", "ask_sz") if a[2] == MD_QUOTE else
                ("last_px", "last_sz") + (("open_px", "high_px", "low_px") if a[2] == MD_BAR and len(a) > 9 else ())
                + (("adjusted_close",) if len(a) > 13 else ()))
        if reason == NON_FINITE:
            c = next((c for c in used if not np.isfinite(cols[c])), used[0])
            return f"{name(c, c)} is {cols[c]!r}, expected a finite number"
        if reason == NON_POSITIVE_PRICE:
            c = next((c for c in used if not c.endswith("_sz") and cols[c] <= 0), used[0])
            return f"{name(c, c)} is {cols[c]!r}, expected a price above 0"
        if reason == NEGATIVE_SIZE:
            c = next((c for c in used if c.endswith("_sz") and cols[c] < 0), used[-1])
            return f"{name(c, c)} is {cols[c]!r}, expected a size of 0 or more"
        if reason == CROSSED_QUOTE:
            return f"{name('bid_px', 'bid_px')} {cols['bid_px']!r} is above {name('ask_px', 'ask_px')} {cols['ask_px']!r}"
        whose = f" of {self.symbols.get(int(a[1]), int(a[1]))}" if self.per_instrument else ""
        return f"time {t} is before {before}, the latest time{whose} before it"
