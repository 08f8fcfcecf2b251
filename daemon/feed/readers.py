"""The recorded file formats, read line by line and checked as they are read.

``generic``      CSV ``ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz``;
                 ``kind`` is ``quote``, ``trade`` or ``bar`` (``last_px`` = close,
                 ``last_sz`` = volume, ``ts_ns`` = the bar's end); optional columns
                 ``open_px,high_px,low_px,bar_ns`` complete a bar (without them, or with
                 those cells empty, a bar is its close alone: open = high = low = close,
                 interval 0); the cells a kind does not use are ignored; ``.gz`` allowed.
                 Rows are replayed in file order: a row earlier than one before it goes
                 backwards.
``binance``      hftbacktest-style book-ticker CSV (``symbol,local_ts_ns,update_id,
                 bid_price,bid_qty,ask_price,ask_qty``) plus, optionally, the trades
                 CSV (``…,price,qty,is_buyer_maker``) merged by receive time.
``lean_minute``  equity minute quote bars (``symbol,datetime,bid_close,bid_size,
                 ask_close,ask_size,…``; New York time) emitted at each bar's end.
``daily``        daily equity bars (``symbol,date,open,high,low,close,adjusted_close,
                 volume``), adjusted and cleaned as the research dataset does
                 (:mod:`alphad.kernels.bars`), one ``MD_BAR`` per symbol and day at the
                 16:00 New York close, every symbol's bars interleaved in time order.
``vix``          CBOE's daily VIX (``DATE,OPEN,HIGH,LOW,CLOSE``), a ``feed.also`` file.

The binance, lean, daily and vix files are sorted by time after reading: in them a row
goes backwards when it is earlier than an earlier row of the same symbol.

Every row is checked (:mod:`alphad.daemon.feed.validate` for the values, here for the
shape): a bad one is reported to the :class:`~alphad.daemon.feed.bad_records.BadRecords`
given (``on_bad``), which skips and counts it, or raises (``stop``: the default of these
functions; the config's ``feed.on_bad_record`` defaults to ``skip``).  A loader returns a
:class:`Loaded`: ``(events, skipped)``, with the counts by reason as ``.bad``.
"""
from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from alphad.daemon.feed import files
from alphad.daemon.feed.bad_records import BAD_NUMBER, MALFORMED, UNKNOWN_SYMBOL, BadRecords
from alphad.daemon.feed.validate import RowChecker
from alphad.ipc.dtypes import MD_BAR, MD_DTYPE, MD_QUOTE, MD_TRADE
from alphad.kernels import bars as daily_bars

GENERIC_COLUMNS = ["ts_ns", "symbol", "kind", "bid_px", "bid_sz", "ask_px", "ask_sz", "last_px", "last_sz"]
#: Optional generic columns: a bar's open, high, low and interval (ns).
GENERIC_BAR_COLUMNS = ["open_px", "high_px", "low_px", "bar_ns"]
_KINDS = {"quote": MD_QUOTE, "trade": MD_TRADE, "bar": MD_BAR}
NAN = float("nan")
_NAN4 = (NAN, NAN, NAN, NAN)
_I64 = 2**63
_NY = ZoneInfo("America/New_York")


class Loaded(tuple):
    """What a loader returns: ``(events, skipped)``, ``skipped`` the rows refused for any
    reason; ``.bad``: ``{reason: count}``; ``.report``: the :class:`BadRecords`."""

    def __new__(cls, events: np.ndarray, report: BadRecords):
        self = super().__new__(cls, (events, report.total))
        self.events, self.report, self.bad = events, report, report.as_dict()
        return self


def _report(on_bad) -> BadRecords:
    return on_bad if isinstance(on_bad, BadRecords) else BadRecords(on_bad)


def check_header(path: Path, found: list[str], expected: list[str]) -> None:
    missing = [c for c in expected if c not in found]
    if missing:
        raise ValueError(f"{path}: columns {expected} expected, the header was {found} (missing {missing})")


def _ts(text: str) -> int:
    """A ``ts_ns`` cell: a whole number that fits an int64."""
    v = int(text)
    if not -_I64 < v < _I64:
        raise ValueError(text)
    return v


def _ns(text: str) -> int:
    """A bar interval cell: empty (0) or a whole number of ns, 0 or more (under 2**53: it
    travels in a float64 row)."""
    if not text:
        return 0
    v = int(text)
    if not 0 <= v < 2**53:
        raise ValueError(text)
    return v


def _to_ns(t: datetime) -> int:
    """An aware time in ns since the epoch (a ValueError out of the int64 range, 1677..2262)."""
    try:
        v = int(t.timestamp()) * 1_000_000_000
    except (OverflowError, OSError):
        raise ValueError(f"{t} is outside the range of ns timestamps (1677..2262)") from None
    if not -_I64 < v < _I64:
        raise ValueError(f"{t} is outside the range of ns timestamps (1677..2262)")
    return v


def _what_failed(r: list[str], fields) -> str:
    """Which of ``fields`` (``(name, index, parser)``) did not parse: the message."""
    for name, i, parse in fields:
        try:
            parse(r[i])
        except (ValueError, OverflowError):
            what = {_ts: "a whole number of ns", _ns: "a whole number of ns, 0 or more (under 2**53)",
                    _lean_end: "an ISO date and time (New York) in 1677..2262"}.get(parse, "a number")
            return f"{name} expected {what}, was {r[i]!r}"
    return "a cell did not parse"


def _shape(chk: RowChecker, lineno: int, text: str | None, width: int) -> list[str] | None:
    """The cells of a line, or None (reported malformed: not UTF-8, or not ``width`` cells)."""
    if text is None:
        chk.reject(lineno, MALFORMED, "the line is not UTF-8 text")
        return None
    r = text.split(",")
    if len(r) != width:
        chk.reject(lineno, MALFORMED, f"{len(r)} cells, expected {width} as in the header")
        return None
    return r


def _unknown(bad: BadRecords, path, lineno: int, symbol: str) -> None:
    if bad.counts.get(UNKNOWN_SYMBOL, 0) < bad.SHOW:
        bad.add(path, lineno, UNKNOWN_SYMBOL, f"symbol {symbol!r} is not in the universe")
    else:  # counted only (a file of many symbols, a few of them traded)
        bad.counts[UNKNOWN_SYMBOL] += 1


# -- generic ----------------------------------------------------------------------------------
def generic_rows(path: Path, symbols: dict[str, int], on_bad="stop"):
    """The good rows of a generic CSV as tuples, in file order, one at a time (checked in
    batches); the bad ones go to ``on_bad`` (a :class:`BadRecords`, or a policy)."""
    bad = _report(on_bad)
    head, lines = files.read(path)
    check_header(path, head, GENERIC_COLUMNS)
    col = {c: head.index(c) for c in GENERIC_COLUMNS + GENERIC_BAR_COLUMNS if c in head}
    ohlc = all(c in col for c in GENERIC_BAR_COLUMNS)
    its, isym, ikind, ibp, ibs, iap, ias, ilp, ils = (col[c] for c in GENERIC_COLUMNS)
    io, ih, il, ib = (col[c] for c in GENERIC_BAR_COLUMNS) if ohlc else (0, 0, 0, 0)
    fields = {MD_QUOTE: [("ts_ns", its, _ts)] + [(c, col[c], float) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")],
              MD_TRADE: [("ts_ns", its, _ts), ("last_px", ilp, float), ("last_sz", ils, float)]}
    fields[MD_BAR] = fields[MD_TRADE] + ([(c, col[c], _opt) for c in GENERIC_BAR_COLUMNS[:3]]
                                         + [("bar_ns", ib, _ns)] if ohlc else [])
    chk = RowChecker(path, bad, per_instrument=False, symbols={v: k for k, v in symbols.items()})
    width = len(head)
    for lineno, text in lines:
        r = _shape(chk, lineno, text, width)
        if r is None:
            continue
        inst = symbols.get(r[isym])
        if inst is None:
            _unknown(bad, path, lineno, r[isym])
            continue
        kind = _KINDS.get(r[ikind])
        if kind is None:
            chk.reject(lineno, MALFORMED, f"kind must be one of {sorted(_KINDS)}, was {r[ikind]!r}")
            continue
        try:
            if kind == MD_QUOTE:
                row = (_ts(r[its]), inst, kind, float(r[ibp]), float(r[ibs]), float(r[iap]), float(r[ias]), NAN,
                       NAN, 0.0, 0.0, 0.0, 0)
            elif kind == MD_TRADE:
                row = (_ts(r[its]), inst, kind, NAN, NAN, NAN, NAN, float(r[ilp]), float(r[ils]), 0.0, 0.0, 0.0, 0)
            else:
                close = float(r[ilp])
                row = (_ts(r[its]), inst, kind) + _NAN4 + (close, float(r[ils])) + (
                    (_opt(r[io], close), _opt(r[ih], close), _opt(r[il], close), _ns(r[ib])) if ohlc else
                    (close, close, close, 0))  # its close alone
        except ValueError:
            chk.reject(lineno, BAD_NUMBER, _what_failed(r, fields[kind]))
            continue
        if chk.add(lineno, row):
            yield from chk.flush()
    yield from chk.flush()


def _opt(text: str, default: float = NAN) -> float:
    """An optional price cell: empty is ``default`` (a bar's close)."""
    return float(text) if text else default


def load_generic(path: Path, symbols: dict[str, int], on_bad="stop") -> Loaded:
    """Parse a generic CSV: ``(events, rows skipped)``, ``.bad`` the counts by reason."""
    bad = _report(on_bad)
    return Loaded(to_md(list(generic_rows(path, symbols, bad))), bad)


# -- binance ----------------------------------------------------------------------------------
_BINANCE_QUOTE_NAMES = {"bid_px": "bid_price", "bid_sz": "bid_qty", "ask_px": "ask_price", "ask_sz": "ask_qty"}
_BINANCE_TRADE_NAMES = {"last_px": "price", "last_sz": "qty"}


def _binance(path: Path, symbols: dict[str, int], bad: BadRecords, columns: list[str], names: dict, kind: int):
    head, lines = files.read(path)
    check_header(path, head, columns)
    isym, its, *num = (head.index(c) for c in columns)
    fields = [("local_ts_ns", its, _ts)] + [(c, head.index(c), float) for c in columns[2:]]
    chk = RowChecker(path, bad, per_instrument=True, names=names, symbols={v: k for k, v in symbols.items()})
    width = len(head)
    for lineno, text in lines:
        r = _shape(chk, lineno, text, width)
        if r is None:
            continue
        inst = symbols.get(r[isym])
        if inst is None:
            _unknown(bad, path, lineno, r[isym])
            continue
        try:
            if kind == MD_QUOTE:
                row = (_ts(r[its]), inst, kind, float(r[num[0]]), float(r[num[1]]), float(r[num[2]]),
                       float(r[num[3]]), NAN, NAN)
            else:
                row = (_ts(r[its]), inst, kind, NAN, NAN, NAN, NAN, float(r[num[0]]), float(r[num[1]]))
        except ValueError:
            chk.reject(lineno, BAD_NUMBER, _what_failed(r, fields))
            continue
        if chk.add(lineno, row):
            yield from chk.flush()
    yield from chk.flush()


def binance_quotes(path: Path, symbols: dict[str, int], on_bad="stop"):
    """The book-ticker file's good quotes, one row at a time."""
    return _binance(path, symbols, _report(on_bad), ["symbol", "local_ts_ns", "bid_price", "bid_qty", "ask_price",
                                                      "ask_qty"], _BINANCE_QUOTE_NAMES, MD_QUOTE)


def binance_trades(path: Path, symbols: dict[str, int], on_bad="stop"):
    """The trades file's good trades, one row at a time."""
    return _binance(path, symbols, _report(on_bad), ["symbol", "local_ts_ns", "price", "qty"], _BINANCE_TRADE_NAMES,
                    MD_TRADE)


def time_ordered(rows) -> bool:
    last = None
    for r in rows:
        if last is not None and r[0] < last:
            return False
        last = r[0]
    return True


def binance_rows(path: Path, trades_path: Path | None, symbols: dict[str, int], on_bad="stop"):
    """Book-ticker quotes and (optionally) trades merged by receive time, one row at a time
    (each file in time order; a quote and a trade with equal stamps: the quote first)."""
    bad = _report(on_bad)
    quotes = binance_quotes(path, symbols, bad)
    if trades_path is None:
        yield from quotes
        return
    yield from heapq.merge(quotes, binance_trades(trades_path, symbols, bad), key=lambda t: t[0])


def load_binance(path: Path, trades_path: Path | None, symbols: dict[str, int], on_bad="stop") -> Loaded:
    bad = _report(on_bad)
    rows = list(binance_quotes(path, symbols, bad))
    if trades_path is not None:
        rows += list(binance_trades(trades_path, symbols, bad))
    rows.sort(key=lambda t: t[0])  # stable: a quote and trade with equal stamps keep file order
    return Loaded(to_md(rows), bad)


# -- lean minute ------------------------------------------------------------------------------
def _lean_end(text: str) -> int:
    """A bar's ``datetime`` (its start, New York time) -> its end in ns (the quote is known then)."""
    return _to_ns(datetime.fromisoformat(text).replace(tzinfo=_NY) + timedelta(minutes=1))


def load_lean_minute(path: Path, symbols: dict[str, int], on_bad="stop") -> Loaded:
    bad = _report(on_bad)
    head, lines = files.read(path)
    columns = ["symbol", "datetime", "bid_close", "bid_size", "ask_close", "ask_size"]
    check_header(path, head, columns)
    isym, idt, ibp, ibs, iap, ias = (head.index(c) for c in columns)
    fields = [("datetime", idt, _lean_end)] + [(c, head.index(c), float) for c in columns[2:]]
    chk = RowChecker(path, bad, per_instrument=True, symbols={v: k for k, v in symbols.items()},
                     names={"bid_px": "bid_close", "bid_sz": "bid_size", "ask_px": "ask_close", "ask_sz": "ask_size"})
    rows, width = [], len(head)
    for lineno, text in lines:
        r = _shape(chk, lineno, text, width)
        if r is None:
            continue
        inst = symbols.get(r[isym])
        if inst is None:
            _unknown(bad, path, lineno, r[isym])
            continue
        try:
            row = (_lean_end(r[idt]), inst, MD_QUOTE, float(r[ibp]), float(r[ibs]), float(r[iap]), float(r[ias]),
                   NAN, NAN)
        except (ValueError, OverflowError):
            chk.reject(lineno, BAD_NUMBER, _what_failed(r, fields))
            continue
        if chk.add(lineno, row):
            rows += chk.flush()
    rows += chk.flush()
    rows.sort(key=lambda t: t[0])
    return Loaded(to_md(rows), bad)


# -- daily and vix ----------------------------------------------------------------------------
DAILY_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "adjusted_close", "volume"]
#: A daily bar is stamped at the regular session's close, New York time, and spans the
#: session (09:30-16:00): its start is its open, so an order that reached the venue after a
#: close, latency included, still fills on the next open.
DAILY_CLOSE = (16, 0)
DAILY_SESSION_NS = 23_400_000_000_000
_DAILY_NAMES = {"last_px": "close", "last_sz": "volume", "open_px": "open", "high_px": "high", "low_px": "low"}


def load_daily(path: Path, symbols: dict[str, int], on_bad="stop") -> Loaded:
    """Daily bars of the universe's symbols as ``MD_BAR`` records in time order (a day's
    bars by instrument id); ``(events, rows skipped)``, ``.bad`` the counts by reason."""
    ny = _NY
    bad = _report(on_bad)
    head, lines = files.read(path)
    if "adjusted_close" not in head and "adj_close" in head:  # the ETF file's name for it
        head = ["adjusted_close" if h == "adj_close" else h for h in head]
    check_header(path, head, DAILY_COLUMNS)
    at = [head.index(c) for c in DAILY_COLUMNS]
    iopen, ihigh, ilow, iclose, iadj, ivol = at[2:]
    day_ns: dict[str, int] = {}

    def day(text: str) -> int:
        ns = day_ns.get(text)
        if ns is None:
            try:
                close = datetime.fromisoformat(text).replace(hour=DAILY_CLOSE[0], minute=DAILY_CLOSE[1], tzinfo=ny)
                ns = _to_ns(close)
            except (ValueError, OverflowError):
                raise ValueError(f"date expected as YYYY-MM-DD, was {text!r}") from None
            day_ns[text] = ns
        return ns

    fields = [(c, i, float) for c, i in zip(DAILY_COLUMNS[2:], at[2:])]
    # gathered by column (the file can be large), then checked at once: under stop, a line that
    # does not parse is reported after the rows before it were checked (the first bad line is named)
    isym, idate, width, stop_at = at[0], at[1], len(head), None
    inst, stamps, numbered = [], [], []
    cols = [[] for _ in range(6)]
    o_, h_, l_, c_, adj_, vol_ = (col.append for col in cols)
    for lineno, text in lines:
        r = text.split(",") if text is not None else None
        if r is None or len(r) != width:
            why = (MALFORMED, "the line is not UTF-8 text" if r is None else
                   f"{len(r)} cells, expected {width} as in the header")
        else:
            i = symbols.get(r[isym])
            if i is None:
                _unknown(bad, path, lineno, r[isym])
                continue
            ts = day_ns.get(r[idate])
            try:
                if ts is None:
                    ts = day(r[idate])
                v = (float(r[iopen]), float(r[ihigh]), float(r[ilow]), float(r[iclose]), float(r[iadj]),
                     float(r[ivol]))
            except ValueError as e:
                why = (BAD_NUMBER, str(e) if ts is None else _what_failed(r, fields))
            else:
                inst.append(i)
                stamps.append(ts)
                numbered.append(lineno)
                o_(v[0]), h_(v[1]), l_(v[2]), c_(v[3]), adj_(v[4]), vol_(v[5])
                continue
        if bad.stop:
            stop_at = (lineno, *why)
            break
        bad.add(path, lineno, *why)
    n = len(inst)
    o, h, l, c, adj, vol = (np.asarray(col, np.float64) for col in cols)
    nan, zero = np.full(n, np.nan), np.zeros(n)
    a = np.column_stack([zero, np.asarray(inst, np.float64), np.full(n, float(MD_BAR)), nan, nan, nan, nan, c, vol,
                         o, h, l, zero, adj])
    ts = np.asarray(stamps, np.int64)
    chk = RowChecker(path, bad, per_instrument=True, symbols={v: k for k, v in symbols.items()}, names=_DAILY_NAMES)
    keep = chk.check(ts, a, np.asarray(numbered, np.int64))
    if stop_at is not None:
        bad.add(path, *stop_at)
    a, ts = a[keep], ts[keep]
    o, h, l, c = daily_bars.adjust(a[:, 9], a[:, 10], a[:, 11], a[:, 7], a[:, 13])
    h, l = daily_bars.clean_range(o, h, l, c)
    md = np.zeros(len(a), dtype=MD_DTYPE)
    md["ts_exch"] = ts
    md["instrument"], md["kind"], md["bar_ns"] = a[:, 1], MD_BAR, DAILY_SESSION_NS
    md["open_px"], md["high_px"], md["low_px"], md["last_px"], md["last_sz"] = o, h, l, c, a[:, 8]
    for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        md[name] = np.nan
    return Loaded(md[np.lexsort((md["instrument"], md["ts_exch"]))], bad)


VIX_COLUMNS = ["DATE", "OPEN", "HIGH", "LOW", "CLOSE"]
#: The VIX's daily close is at 16:15 New York, after the stocks'.
VIX_CLOSE = (16, 15)


def load_vix(path: Path, instrument: int, on_bad="stop") -> np.ndarray:
    """CBOE's daily VIX history (``DATE,OPEN,HIGH,LOW,CLOSE``, dates ``YYYY-MM-DD`` or
    ``MM/DD/YYYY``) as ``MD_BAR`` records of ``instrument``, stamped at its 16:15 close
    (in file order: a day before the one above it goes backwards)."""
    ny = _NY
    bad = _report(on_bad)
    head, lines = files.read(path)
    head = [h.upper() for h in head]
    check_header(path, head, VIX_COLUMNS)
    at = [head.index(c) for c in VIX_COLUMNS]
    chk = RowChecker(path, bad, per_instrument=False,
                     names={"last_px": "CLOSE", "open_px": "OPEN", "high_px": "HIGH", "low_px": "LOW"})
    rows, width = [], len(head)
    for lineno, text in lines:
        r = _shape(chk, lineno, text, width)
        if r is None:
            continue
        t = r[at[0]].strip()
        try:
            d = datetime.strptime(t, "%m/%d/%Y") if "/" in t else datetime.fromisoformat(t)
            ts = _to_ns(d.replace(hour=VIX_CLOSE[0], minute=VIX_CLOSE[1], tzinfo=ny))
            o, h, l, c = (float(r[j]) for j in at[1:])
        except (ValueError, OverflowError):
            chk.reject(lineno, BAD_NUMBER, f"expected a date and four prices, was {r!r}")
            continue
        if chk.add(lineno, (ts, instrument, MD_BAR) + _NAN4 + (c, 0.0, o, h, l, DAILY_SESSION_NS)):
            rows += chk.flush()
    rows += chk.flush()
    md = to_md(rows)
    for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        md[name] = np.nan
    return md


# -- rows to records ----------------------------------------------------------------------------
def to_md(rows: list[tuple]) -> np.ndarray:
    md = np.zeros(len(rows), dtype=MD_DTYPE)
    if not rows:
        return md
    a = np.array(rows, dtype=np.float64)  # ns stamps do not fit a float64 exactly: taken apart below
    md["ts_exch"] = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    md["instrument"] = a[:, 1]
    md["kind"] = a[:, 2]
    # rows of 9 (quotes and trades) or 13 (the generic CSV's: a bar's open, high, low and
    # interval, which stays exact in a float64: under 2**53 ns)
    names = ("bid_px", "bid_sz", "ask_px", "ask_sz", "last_px", "last_sz") + tuple(GENERIC_BAR_COLUMNS)
    for j, name in enumerate(names[: a.shape[1] - 3], start=3):
        md[name] = a[:, j]
    return md
