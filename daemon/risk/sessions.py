"""Exchange trading sessions for the risk stage, from the ``exchange_calendars`` library.

Why: the risk stage rolls its daily loss limit at each session open and denies orders outside
trading hours, so it needs every session's open and close, with the exchange's holidays, early
closes (half days) and daylight-saving shifts.  Those rules are kept by the maintained library
``exchange_calendars``, not here.  A :class:`SessionTable` is built once at start from the
library's schedules (pandas, vectorised) as int64 nanoseconds since the epoch, UTC; the compiled
steps (:func:`session_index`, :func:`in_session`, :func:`next_open`) only binary-search those
int64 arrays, allocate nothing and never touch pandas.

Conventions
-----------
* A session is ``[open, close)``: the open is in session, the close is not.
* :data:`ALWAYS_OPEN` (``"24/7"``, the library's always-open calendar) has one session per UTC
  day, ``[00:00, next 00:00)``, weekends included.
* Lunch breaks (XHKG, XSHG, XTKS) are not modelled: a session runs from its open to its close.
* ``exchange_calendars`` and pandas are imported by :func:`build_session_table` only, so importing
  this module for the compiled steps costs no pandas import.
"""
from __future__ import annotations

import contextlib
import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

#: Name of the always-open calendar: sessions are UTC days ``[00:00, next 00:00)``.
ALWAYS_OPEN = "24/7"
#: Padding of the session arrays, and :func:`next_open`'s answer when there is no later session.
INT64_MAX = np.iinfo(np.int64).max

DAY_NS = 86_400_000_000_000
# Days read around the requested range to find the session before its start and the one after its
# end; the longer pad is used only when the shorter finds none (a long closure).
_PADS_DAYS = (31, 400)
# Days pandas can represent as ns timestamps (1677-09-22 .. 2262-04-10), a day inside each end.
_PANDAS_DAYS = (-106_751, 106_750)
# First and last day each canonical calendar can be built for, found once.
_BOUNDS: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True)
class SessionTable:
    """Sessions of several calendars, one row per calendar.

    Attributes
    ----------
    names : tuple of str
        Calendar names as requested; ``names[c]`` is row ``c``.
    opens : np.ndarray
        int64 ``(n_calendars, width)``: session opens, ns since the epoch UTC, increasing along a
        row; ``opens[c, counts[c]:]`` is padding (``INT64_MAX``).
    closes : np.ndarray
        int64 ``(n_calendars, width)``: session closes (exclusive), same layout and padding.
    counts : np.ndarray
        int64 ``(n_calendars,)``: number of sessions in each row.
    """

    names: tuple[str, ...]
    opens: np.ndarray
    closes: np.ndarray
    counts: np.ndarray

    def row(self, name: str) -> int:
        """Row of calendar ``name`` (the first, if it was requested twice)."""
        return self.names.index(name)


def build_session_table(names: Sequence[str], start_ns: int, end_ns: int) -> SessionTable:
    """Sessions of each calendar in ``names`` that overlap ``[start_ns, end_ns]``.

    Each row also holds the session just before the first overlapping one and the one just after
    the last, when the library has them, so the session containing or preceding ``start_ns`` and
    the next open after ``end_ns`` are known.

    Parameters
    ----------
    names : sequence of str
        ``exchange_calendars`` names or aliases (``"XNYS"``, ``"XLON"``, ``"NYSE"``, ...), or
        :data:`ALWAYS_OPEN`.
    start_ns, end_ns : int
        Range, ns since the epoch UTC, ``start_ns <= end_ns``.

    Returns
    -------
    SessionTable

    Raises
    ------
    ValueError
        An unknown calendar name (the message names it and suggests valid ones); a range the
        library does not cover for a calendar (e.g. XSHG's holidays are recorded only to a given
        year); ``start_ns > end_ns``; or a calendar the library fails to build.
    """
    import exchange_calendars as xc

    names = tuple(names)
    start_ns, end_ns = int(start_ns), int(end_ns)
    if start_ns > end_ns:
        raise ValueError(f"session range is empty: start_ns {start_ns} > end_ns {end_ns}")
    known = set(xc.get_calendar_names(include_aliases=True))
    for name in names:
        if name not in known:
            raise ValueError(_unknown_name_message(name, sorted(known)))

    rows = [_sessions(xc, name, start_ns, end_ns) for name in names]
    counts = np.array([len(o) for o, _ in rows], dtype=np.int64)
    width = max(1, int(counts.max()) if len(rows) else 0)
    opens = np.full((len(rows), width), INT64_MAX, dtype=np.int64)
    closes = np.full((len(rows), width), INT64_MAX, dtype=np.int64)
    for c, (o, cl) in enumerate(rows):
        opens[c, : len(o)] = o
        closes[c, : len(cl)] = cl
    return SessionTable(names=names, opens=opens, closes=closes, counts=counts)


def _unknown_name_message(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(name).upper(), valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    examples = ", ".join(n for n in ("XNYS", "XNAS", "XLON", "XTKS", "CMES", ALWAYS_OPEN) if n in valid)
    return (f"unknown exchange calendar {name!r}.{hint} Valid names include {examples} "
            f"({len(valid)} in exchange_calendars.get_calendar_names()).")


def _sessions(xc, name: str, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(opens, closes) of ``name``: the overlapping sessions plus one on each side when they exist."""
    start_day, end_day = start_ns // DAY_NS, end_ns // DAY_NS
    for pad in _PADS_DAYS:
        opens, closes, lo_clamped, hi_clamped = _schedule(xc, name, start_day - pad, end_day + pad,
                                                          start_day, end_day)
        first = int(np.searchsorted(closes, start_ns, side="right"))  # first session with close > start
        stop = int(np.searchsorted(opens, end_ns, side="right"))  # first session with open > end
        before_known = first > 0 or lo_clamped
        after_known = stop < len(opens) or hi_clamped
        if before_known and after_known:
            break
    lo, hi = max(first - 1, 0), min(stop + 1, len(opens))
    return opens[lo:hi].copy(), closes[lo:hi].copy()


def _schedule(xc, name, lo_day, hi_day, start_day, end_day):
    """Opens and closes (int64 ns UTC) of ``name``'s sessions labelled ``lo_day .. hi_day``.

    The padded days ``lo_day``/``hi_day`` are clamped to the calendar's bounds; the requested
    ``start_day .. end_day`` must lie inside them.  Returns ``(opens, closes, lo_clamped,
    hi_clamped)``.
    """
    import pandas as pd

    bmin, bmax = _bounds(xc, name)
    if start_day < bmin or end_day > bmax:
        raise ValueError(
            f"exchange calendar {name!r} can be built only for {_day(bmin)} .. {_day(bmax)} "
            f"(exchange_calendars {xc.__version__}); the requested range {_day(start_day)} .. "
            f"{_day(end_day)} is outside it")
    lo, hi = max(lo_day, bmin), min(hi_day, bmax)
    try:
        with _quiet():
            cal = xc.get_calendar(name, start=pd.Timestamp(lo * DAY_NS), end=pd.Timestamp(hi * DAY_NS))
            sched = cal.schedule
            opens = sched["open"].dt.tz_convert(None).to_numpy("datetime64[ns]").view(np.int64)
            closes = sched["close"].dt.tz_convert(None).to_numpy("datetime64[ns]").view(np.int64)
    except Exception as e:  # the library's own failure, named rather than shown as its traceback
        raise ValueError(
            f"exchange_calendars {xc.__version__} (pandas {pd.__version__}) could not build calendar "
            f"{name!r} for {_day(lo)} .. {_day(hi)}: {type(e).__name__}: {str(e)[:300]}") from e
    return opens, closes, lo > lo_day, hi < hi_day


def _bounds(xc, name: str) -> tuple[int, int]:
    """First and last day (days since the epoch) ``name`` can be built for."""
    canonical = xc.resolve_alias(name)
    if canonical not in _BOUNDS:
        lo, hi = _PANDAS_DAYS
        cls = _calendar_class(xc, canonical)
        if cls is not None:
            bmin, bmax = cls.bound_min(), cls.bound_max()
            if bmin is not None:
                lo = max(lo, bmin.value // DAY_NS)
            if bmax is not None:
                hi = min(hi, bmax.value // DAY_NS)
        _BOUNDS[canonical] = (lo, hi)
    return _BOUNDS[canonical]


def _calendar_class(xc, canonical: str):
    """The calendar class behind ``canonical`` (its ``bound_min``/``bound_max`` give the range
    the library covers), or None when it cannot be found."""
    dispatcher = xc.calendar_utils.global_calendar_dispatcher
    factory = getattr(dispatcher, "_calendar_factories", {}).get(canonical)
    return factory if isinstance(factory, type) else None


def _day(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


@contextlib.contextmanager
def _quiet():
    """Silences the deprecation warnings pandas 3 raises inside exchange_calendars (e.g.
    ``Series.values`` on tz-aware data), which a ``-W error`` run would turn into failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


@njit(cache=True)
def session_index(opens, closes, counts, c, now):
    """Index of the latest session of row ``c`` whose open is ``<= now``.

    Parameters
    ----------
    opens, closes : np.ndarray
        int64 ``(n_calendars, width)`` of a :class:`SessionTable`.
    counts : np.ndarray
        int64 ``(n_calendars,)`` sessions per row.
    c : int
        Calendar row.
    now : int
        ns since the epoch UTC.

    Returns
    -------
    int
        Session index in ``0 .. counts[c] - 1``, or -1 when no session of the row opens at or
        before ``now``.
    """
    lo = 0
    hi = counts[c]
    while lo < hi:  # first session with open > now
        mid = (lo + hi) >> 1
        if opens[c, mid] <= now:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@njit(cache=True)
def in_session(opens, closes, counts, c, now):
    """True when ``opens[c, s] <= now < closes[c, s]`` for some session ``s`` of row ``c``.

    Parameters
    ----------
    opens, closes, counts, c, now
        As for :func:`session_index`.

    Returns
    -------
    bool
    """
    s = session_index(opens, closes, counts, c, now)
    return s >= 0 and now < closes[c, s]


@njit(cache=True)
def next_open(opens, closes, counts, c, now):
    """The first session open of row ``c`` strictly after ``now``.

    Parameters
    ----------
    opens, closes, counts, c, now
        As for :func:`session_index`.

    Returns
    -------
    int
        ns since the epoch UTC, or ``INT64_MAX`` when the row has no later session.
    """
    s = session_index(opens, closes, counts, c, now) + 1
    if s < counts[c]:
        return opens[c, s]
    return INT64_MAX
