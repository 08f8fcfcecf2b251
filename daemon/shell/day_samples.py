"""The backtest's account and book at the end of each event-time UTC day.

A sample is the risk stage's state after the last event of a UTC day (the day of
``ts_exch``) has gone through every stage, its immediate fills included, and before
the first event of the next day exists; the run's end is the last day's end.  Both
backtest loops take it at that exact point:

* the process loop calls :meth:`DaySamples.at_event` before it emits each event
  (``Loop.on_event``): an event of a new day first closes the day before;
* the compiled loop asks :meth:`DaySamples.limit` how many events its next call may
  take: never past the last event of the current day, so the call returns there.

With ``feed.trade_from``, the events before it only warm the stages up: the samples
start with the first event at or after it (``from_ns``), the first return from the
equity just before that event (:attr:`DaySamples.start_equity`).

Sampling only reads the arrays: it changes no order, fill or counter.
"""
from __future__ import annotations

import numpy as np

from alphad.daemon.risk.codes import (A_CASH, A_EQUITY, A_FEES, A_REALISED, A_UNREALISED, B_AVG_PX, B_FEES,
                                      B_LAST_PX, B_POSITION, B_REALISED)

#: Nanoseconds in a UTC day (event time is ns since the Unix epoch, UTC, without leap seconds).
DAY_NS = 86_400_000_000_000

#: The book columns a sample keeps, by the name the report reads.
BOOK_COLUMNS = {"position": B_POSITION, "avg_px": B_AVG_PX, "last_px": B_LAST_PX, "realised": B_REALISED,
                "fees": B_FEES}
#: The account columns a sample keeps.
ACCOUNT_COLUMNS = {"equity": A_EQUITY, "cash": A_CASH, "realised": A_REALISED, "unrealised": A_UNREALISED,
                   "fees": A_FEES}


class DaySamples:
    """Day-end samples of one backtest from event time ``from_ns`` on (all when None);
    :meth:`attach` it to the run's risk core first.

    After the run, :meth:`arrays` returns ``ts`` (int64 ns, the day's last event),
    the account columns (``equity``, ``cash``, ``realised``, ``unrealised``, ``fees``;
    one value per day) and the book columns (``position``, ``avg_px``, ``last_px``,
    ``realised``, ``fees`` as ``book_*``; days x instruments), plus ``mark``: the price
    risk values each position at (its last mark, mid or trade, else the average price).
    """

    def __init__(self, from_ns: int | None = None) -> None:
        self.from_ns = from_ns or 0
        self._account = self._book = None
        self._day: int | None = None  # UTC day of the last event seen
        self._ts = 0                  # its time
        self._ts_rows: list[int] = []
        self._account_rows: list[np.ndarray] = []
        self._book_rows: list[np.ndarray] = []
        self._chunk = None            # the feed chunk whose times _chunk_ts holds
        self._chunk_ts = np.zeros(0, np.int64)
        #: time of the first event sampled, and the equity just before it (the first return's base)
        self.start_ts: int | None = None
        self.start_equity: float | None = None

    def attach(self, risk_core) -> None:
        self._account, self._book = risk_core.account, risk_core.book

    def at_event(self, ts: int) -> None:
        """The event at ``ts`` comes next: a new day first closes the one before."""
        if ts < self.from_ns:
            return  # warming up
        day = ts // DAY_NS
        if day != self._day:
            if self._day is None:
                self.start_ts, self.start_equity = ts, float(self._account[A_EQUITY])
            else:
                self._take()
            self._day = day
        self._ts = ts

    def limit(self, events: np.ndarray, pos: int) -> int:
        """For the compiled loop, before it steps from ``events[pos]``: :meth:`at_event` for
        that event, then how many events from ``pos`` on share its UTC day (the call's limit;
        while warming up, also never past ``from_ns``)."""
        if events is not self._chunk:  # a contiguous copy once per chunk: searchsorted needs one
            self._chunk, self._chunk_ts = events, np.ascontiguousarray(events["ts_exch"])
        ts = int(self._chunk_ts[pos])
        self.at_event(ts)
        bound = (ts // DAY_NS + 1) * DAY_NS
        if ts < self.from_ns:
            bound = min(bound, self.from_ns)
        return int(np.searchsorted(self._chunk_ts, bound, side="left")) - pos

    def processed_until(self, ts: int) -> None:
        """The compiled loop's call ended after the event at ``ts`` (the same day)."""
        if ts >= self.from_ns:
            self._ts = ts

    def finish(self) -> None:
        """The run ended: the last day's sample (none when no event ran)."""
        if self._day is not None:
            self._take()
            self._day = None

    def _take(self) -> None:
        self._ts_rows.append(self._ts)
        self._account_rows.append(self._account[list(ACCOUNT_COLUMNS.values())])
        self._book_rows.append(self._book[:, list(BOOK_COLUMNS.values())])

    def __len__(self) -> int:
        return len(self._ts_rows)

    def arrays(self) -> dict[str, np.ndarray]:
        n_inst = 0 if self._book is None else self._book.shape[0]
        acc = np.array(self._account_rows, np.float64).reshape(len(self), len(ACCOUNT_COLUMNS))
        book = np.array(self._book_rows, np.float64).reshape(len(self), n_inst, len(BOOK_COLUMNS))
        out = {"ts": np.array(self._ts_rows, np.int64)}
        out.update({name: acc[:, j] for j, name in enumerate(ACCOUNT_COLUMNS)})
        out.update({f"book_{name}": book[:, :, j] for j, name in enumerate(BOOK_COLUMNS)})
        # as portfolio.mark_price: the last mark, else the average entry price, else 0
        last, avg = out["book_last_px"], out["book_avg_px"]
        out["mark"] = np.where(last > 0.0, last, np.where(avg > 0.0, avg, 0.0))
        return out
