"""Feed sources: recorded files and a seeded synthetic generator, parsed up front into an
``MD_DTYPE`` array sorted by ``ts_exch`` (parsing is not part of tick-to-trade).

Supported files
---------------
``generic``      CSV ``ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz``;
                 ``kind`` is ``quote``, ``trade`` or ``bar`` (``last_px`` = close,
                 ``last_sz`` = volume, ``ts_ns`` = the bar's end); optional columns
                 ``open_px,high_px,low_px,bar_ns`` complete a bar (without them a bar is
                 its close alone: open = high = low = close, interval 0); empty cells
                 for fields a kind does not use; ``.gz`` allowed.
``binance``      hftbacktest-style book-ticker CSV (``symbol,local_ts_ns,update_id,
                 bid_price,bid_qty,ask_price,ask_qty``) plus, optionally, the trades
                 CSV (``…,price,qty,is_buyer_maker``) merged by receive time.
``lean_minute``  equity minute quote bars (``symbol,datetime,bid_close,bid_size,
                 ask_close,ask_size,…``; New York time) emitted at each bar's end.
``daily``        daily equity bars (``symbol,date,open,high,low,close,adjusted_close,
                 volume``), adjusted and cleaned as the research dataset does
                 (:mod:`alphad.kernels.bars`), one ``MD_BAR`` per symbol and day at the
                 16:00 New York close, every symbol's bars interleaved in time order.
"""
from __future__ import annotations

import csv
import gzip
import heapq
import itertools
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from alphad.ipc.dtypes import MD_BAR, MD_DTYPE, MD_F_WARMUP, MD_QUOTE, MD_TRADE
from alphad.kernels import bars as daily_bars

GENERIC_COLUMNS = ["ts_ns", "symbol", "kind", "bid_px", "bid_sz", "ask_px", "ask_sz", "last_px", "last_sz"]
#: Optional generic columns: a bar's open, high, low and interval (ns).
GENERIC_BAR_COLUMNS = ["open_px", "high_px", "low_px", "bar_ns"]
#: Those fields of a row that is not a bar (unset, as ``np.zeros`` leaves them).
_NO_BAR = (0.0, 0.0, 0.0, 0)
_KINDS = {"quote": MD_QUOTE, "trade": MD_TRADE, "bar": MD_BAR}


def _open_text(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"feed file {path} was not found")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _f(s: str) -> float:
    return float(s) if s else np.nan


def _check_header(path: Path, found: list[str], expected: list[str]) -> None:
    missing = [c for c in expected if c not in found]
    if missing:
        raise ValueError(f"{path}: columns {expected} expected, the header was {found} (missing {missing})")


def generic_rows(path: Path, symbols: dict[str, int], skipped: list[int]):
    """The rows of a generic CSV as tuples, in file order, one at a time; ``skipped[0]``
    counts the rows of symbols outside the universe."""
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        _check_header(path, header, GENERIC_COLUMNS)
        col = {c: header.index(c) for c in GENERIC_COLUMNS + GENERIC_BAR_COLUMNS if c in header}
        ohlc = all(c in col for c in GENERIC_BAR_COLUMNS)
        for lineno, r in enumerate(reader, start=2):
            inst = symbols.get(r[col["symbol"]])
            if inst is None:
                skipped[0] += 1
                continue
            kind = _KINDS.get(r[col["kind"]])
            if kind is None:
                raise ValueError(f"{path}:{lineno}: kind must be one of {sorted(_KINDS)}, was {r[col['kind']]!r}")
            row = (int(r[col["ts_ns"]]), inst, kind, _f(r[col["bid_px"]]), _f(r[col["bid_sz"]]),
                   _f(r[col["ask_px"]]), _f(r[col["ask_sz"]]), _f(r[col["last_px"]]), _f(r[col["last_sz"]]))
            if kind != MD_BAR:
                yield row + _NO_BAR
            elif ohlc:
                yield row + (_f(r[col["open_px"]]), _f(r[col["high_px"]]), _f(r[col["low_px"]]),
                             int(r[col["bar_ns"]] or 0))
            else:
                yield row + (row[7], row[7], row[7], 0)  # its close alone


def load_generic(path: Path, symbols: dict[str, int]) -> tuple[np.ndarray, int]:
    """Parse a generic CSV; returns (events, rows skipped for unknown symbols)."""
    skipped = [0]
    return _to_md(list(generic_rows(path, symbols, skipped))), skipped[0]


def _binance_quotes(path: Path, symbols: dict[str, int], skipped: list[int]):
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        _check_header(path, reader.fieldnames or [], ["symbol", "local_ts_ns", "bid_price", "bid_qty", "ask_price", "ask_qty"])
        for r in reader:
            inst = symbols.get(r["symbol"])
            if inst is None:
                skipped[0] += 1
                continue
            yield (int(r["local_ts_ns"]), inst, MD_QUOTE, float(r["bid_price"]), float(r["bid_qty"]),
                   float(r["ask_price"]), float(r["ask_qty"]), np.nan, np.nan)


def _binance_trades(path: Path, symbols: dict[str, int], skipped: list[int]):
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        _check_header(path, reader.fieldnames or [], ["symbol", "local_ts_ns", "price", "qty", "is_buyer_maker"])
        for r in reader:
            inst = symbols.get(r["symbol"])
            if inst is None:
                skipped[0] += 1
                continue
            yield (int(r["local_ts_ns"]), inst, MD_TRADE, np.nan, np.nan, np.nan, np.nan, float(r["price"]),
                   float(r["qty"]))


def _time_ordered(rows) -> bool:
    last = None
    for r in rows:
        if last is not None and r[0] < last:
            return False
        last = r[0]
    return True


def binance_rows(path: Path, trades_path: Path | None, symbols: dict[str, int], skipped: list[int]):
    """Book-ticker quotes and (optionally) trades merged by receive time, one row at a time
    (each file in time order; a quote and a trade with equal stamps: the quote first)."""
    quotes = _binance_quotes(path, symbols, skipped)
    if trades_path is None:
        yield from quotes
        return
    yield from heapq.merge(quotes, _binance_trades(trades_path, symbols, skipped), key=lambda t: t[0])


def load_binance(path: Path, trades_path: Path | None, symbols: dict[str, int]) -> tuple[np.ndarray, int]:
    skipped = [0]
    rows = list(_binance_quotes(path, symbols, skipped))
    if trades_path is not None:
        rows += list(_binance_trades(trades_path, symbols, skipped))
        rows.sort(key=lambda t: t[0])  # stable: a quote and trade with equal stamps keep file order
    return _to_md(rows), skipped[0]


def load_lean_minute(path: Path, symbols: dict[str, int]) -> tuple[np.ndarray, int]:
    ny = ZoneInfo("America/New_York")
    rows, skipped = [], 0
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        _check_header(path, reader.fieldnames or [], ["symbol", "datetime", "bid_close", "bid_size", "ask_close", "ask_size"])
        for r in reader:
            inst = symbols.get(r["symbol"])
            if inst is None:
                skipped += 1
                continue
            # Bars are stamped with their start; the quote is known at the bar's end.
            end = datetime.fromisoformat(r["datetime"]).replace(tzinfo=ny) + timedelta(minutes=1)
            rows.append((int(end.timestamp()) * 1_000_000_000, inst, MD_QUOTE, float(r["bid_close"]),
                         float(r["bid_size"]), float(r["ask_close"]), float(r["ask_size"]), np.nan, np.nan))
    rows.sort(key=lambda t: t[0])
    return _to_md(rows), skipped


DAILY_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "adjusted_close", "volume"]
#: A daily bar is stamped at the regular session's close, New York time, and spans the
#: session (09:30-16:00): its start is its open, so an order that reached the venue after a
#: close, latency included, still fills on the next open.
DAILY_CLOSE = (16, 0)
DAILY_SESSION_NS = 23_400_000_000_000


def load_daily(path: Path, symbols: dict[str, int]) -> tuple[np.ndarray, int]:
    """Daily bars of the universe's symbols as ``MD_BAR`` records in time order (a day's
    bars by instrument id); returns (events, rows skipped for other symbols)."""
    ny = ZoneInfo("America/New_York")
    inst, stamps, cols, skipped, day_ns = [], [], [[] for _ in range(6)], 0, {}
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        if "adjusted_close" not in header and "adj_close" in header:  # the ETF file's name for it
            header = ["adjusted_close" if h == "adj_close" else h for h in header]
        _check_header(path, header, DAILY_COLUMNS)
        at = [header.index(c) for c in DAILY_COLUMNS]
        for lineno, r in enumerate(reader, start=2):
            i = symbols.get(r[at[0]])
            if i is None:
                skipped += 1
                continue
            date = r[at[1]]
            if date not in day_ns:
                try:
                    close = datetime.fromisoformat(date).replace(hour=DAILY_CLOSE[0], minute=DAILY_CLOSE[1], tzinfo=ny)
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: date expected as YYYY-MM-DD, was {date!r}") from None
                day_ns[date] = int(close.timestamp()) * 1_000_000_000
            inst.append(i)
            stamps.append(day_ns[date])
            for j, c in enumerate(at[2:]):
                try:
                    cols[j].append(float(r[c]))
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: {DAILY_COLUMNS[j + 2]} expected a number, was "
                                     f"{r[c]!r}") from None
    o, h, l, c = daily_bars.adjust(*cols[:5])
    h, l = daily_bars.clean_range(o, h, l, c)
    md = np.zeros(len(inst), dtype=MD_DTYPE)
    md["ts_exch"], md["instrument"], md["kind"], md["bar_ns"] = stamps, inst, MD_BAR, DAILY_SESSION_NS
    md["open_px"], md["high_px"], md["low_px"], md["last_px"], md["last_sz"] = o, h, l, c, cols[5]
    for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        md[name] = np.nan
    return md[np.lexsort((md["instrument"], md["ts_exch"]))], skipped


VIX_COLUMNS = ["DATE", "OPEN", "HIGH", "LOW", "CLOSE"]
#: The VIX's daily close is at 16:15 New York, after the stocks'.
VIX_CLOSE = (16, 15)


def load_vix(path: Path, instrument: int) -> np.ndarray:
    """CBOE's daily VIX history (``DATE,OPEN,HIGH,LOW,CLOSE``, dates ``YYYY-MM-DD`` or
    ``MM/DD/YYYY``) as ``MD_BAR`` records of ``instrument``, stamped at its 16:15 close."""
    ny = ZoneInfo("America/New_York")
    stamps, cols = [], [[] for _ in range(4)]
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = [h.strip().upper() for h in (next(reader, None) or [])]
        _check_header(path, header, VIX_COLUMNS)
        at = [header.index(c) for c in VIX_COLUMNS]
        for lineno, r in enumerate(reader, start=2):
            text = r[at[0]]
            try:
                day = (datetime.strptime(text, "%m/%d/%Y") if "/" in text else datetime.fromisoformat(text))
                values = [float(r[c]) for c in at[1:]]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected a date and four prices, was {r!r}") from None
            close = day.replace(hour=VIX_CLOSE[0], minute=VIX_CLOSE[1], tzinfo=ny)
            stamps.append(int(close.timestamp()) * 1_000_000_000)
            for j, v in enumerate(values):
                cols[j].append(v)
    md = np.zeros(len(stamps), dtype=MD_DTYPE)
    md["ts_exch"], md["instrument"], md["kind"], md["bar_ns"] = stamps, instrument, MD_BAR, DAILY_SESSION_NS
    md["open_px"], md["high_px"], md["low_px"], md["last_px"] = cols
    for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        md[name] = np.nan
    return md


def load_extra(extra, base: Path, symbols: dict[str, int]) -> np.ndarray:
    """One ``feed.also`` source as md records (its symbols must be in the universe)."""
    from alphad.daemon.config import resolve

    path = resolve(base, extra.path)
    if extra.format == "vix":
        if extra.symbol not in symbols:
            raise ValueError(f"feed.also: {path} is the VIX of symbol {extra.symbol!r}, which is not in the universe")
        return load_vix(path, symbols[extra.symbol])
    events, _ = load_daily(path, symbols)
    if len(events) == 0:
        raise ValueError(f"feed.also: {path} holds no bar of the universe's symbols")
    return events


def _to_md(rows: list[tuple]) -> np.ndarray:
    md = np.zeros(len(rows), dtype=MD_DTYPE)
    if not rows:
        return md
    a = np.array(rows, dtype=np.float64)  # ns stamps do not fit a float64 exactly: taken apart below
    md["ts_exch"] = np.array([r[0] for r in rows], dtype=np.int64)
    md["instrument"] = a[:, 1]
    md["kind"] = a[:, 2]
    # rows of 9 (quotes and trades) or 13 (the generic CSV's: a bar's open, high, low and
    # interval, which stays exact in a float64: under 2**53 ns)
    names = ("bid_px", "bid_sz", "ask_px", "ask_sz", "last_px", "last_sz") + tuple(GENERIC_BAR_COLUMNS)
    for j, name in enumerate(names[: a.shape[1] - 3], start=3):
        md[name] = a[:, j]
    return md


def synthetic(n_events: int, n_instruments: int, *, seed: int, rate_hz: float, start_px: float,
              vol_bps: float, trade_ratio: float, t0_ns: int = 1_700_000_000_000_000_000) -> np.ndarray:
    """Seeded random-walk quotes and trades (reproducible: same seed, same events)."""
    rng = np.random.default_rng(seed)
    md = np.zeros(n_events, dtype=MD_DTYPE)
    inst = rng.integers(0, n_instruments, n_events)
    steps = rng.normal(0.0, vol_bps * 1e-4, n_events)
    logpx = np.full(n_instruments, np.log(start_px))
    is_trade = rng.random(n_events) < trade_ratio
    half_spread = rng.uniform(0.5, 3.0, n_events) * 1e-4
    for k in range(n_events):
        i = inst[k]
        logpx[i] += steps[k]
        mid = float(np.exp(logpx[i]))
        md[k]["instrument"] = i
        if is_trade[k]:
            md[k]["kind"] = MD_TRADE
            md[k]["last_px"] = mid * (1 + half_spread[k] * (1 if steps[k] > 0 else -1))
            md[k]["last_sz"] = float(rng.integers(1, 20)) * 10
        else:
            md[k]["kind"] = MD_QUOTE
            md[k]["bid_px"] = round(mid * (1 - half_spread[k]), 2)
            md[k]["ask_px"] = max(round(mid * (1 + half_spread[k]), 2), md[k]["bid_px"] + 0.01)
            md[k]["bid_sz"] = float(rng.integers(1, 50)) * 100
            md[k]["ask_sz"] = float(rng.integers(1, 50)) * 100
    md["ts_exch"] = t0_ns + (np.arange(n_events) * (1e9 / rate_hz)).astype(np.int64)
    return md


def parse_speed(speed: str) -> float:
    """``realtime`` -> 1.0, ``max`` -> 0.0 (no pacing), ``"10"`` -> 10.0."""
    if speed == "realtime":
        return 1.0
    if speed == "max":
        return 0.0
    try:
        v = float(speed)
    except ValueError:
        v = -1.0
    if v <= 0:
        raise ValueError(f"feed.speed must be 'realtime', 'max' or a positive multiplier such as '10', was {speed!r}")
    return v


#: Events per chunk of a streamed feed (~1.4 MB of MD records; the rows parsed for one chunk
#: take ~5 MB while it is built).
CHUNK_EVENTS = 16_384


def _mark_warmup(events: np.ndarray, trade_from_ns: int | None) -> np.ndarray:
    """Flag the events before ``feed.trade_from`` (``MD_F_WARMUP``): they warm, never trade."""
    if trade_from_ns is not None:
        early = events["ts_exch"] < trade_from_ns
        events["flags"][early] |= MD_F_WARMUP
    return events


def _recorded(feed_cfg) -> None:
    """A live source has nothing to read ahead: the paths that need a recording refuse it."""
    if feed_cfg.source not in ("replay", "synthetic"):
        raise ValueError(f"feed.source {feed_cfg.source} is a live market-data stream: a backtest or a replay "
                         f"needs a recording (feed.source replay, feed.path)")


def stream_events(feed_cfg, base: Path, universe, chunk: int | None = None):
    """:func:`_stream_events` with the events before ``feed.trade_from`` flagged."""
    _recorded(feed_cfg)
    start = feed_cfg.trade_from_ns()
    for events in _stream_events(feed_cfg, base, universe, chunk):
        yield _mark_warmup(events, start)


def _stream_events(feed_cfg, base: Path, universe, chunk: int | None = None):
    """The events a config's ``feed`` section describes, in chunks of at most ``chunk``
    (MD_DTYPE arrays, in time order), read as they are needed: memory does not grow with
    the file.  The generic CSV and time-ordered Binance files stream row by row; the lean
    minute bars, the synthetic feed and Binance files that step back in time are built
    whole (their order needs every row), then cut."""
    from alphad.daemon.config import resolve

    chunk = chunk or CHUNK_EVENTS
    symbols = {ins.symbol: ins.id for ins in universe}
    path, skipped = resolve(base, feed_cfg.path), [0]
    trades = resolve(base, feed_cfg.trades_path) if feed_cfg.format == "binance" and feed_cfg.trades_path else None
    if feed_cfg.source == "synthetic" or feed_cfg.format in ("lean_minute", "daily") or feed_cfg.also or (
            feed_cfg.format == "binance" and not all(_time_ordered(rows) for rows in (
                _binance_quotes(path, symbols, [0]), _binance_trades(trades, symbols, [0]) if trades else ()))):
        # Built whole, then cut: the order needs every row (the lean and daily bars, a Binance capture
        # whose files step back in time, e.g. two sessions appended: a first pass checks).
        events = load_events(feed_cfg, base, universe)
        for j in range(0, len(events), chunk):
            yield events[j : j + chunk]
        return
    if feed_cfg.format == "generic":
        rows = generic_rows(path, symbols, skipped)
    else:
        rows = binance_rows(path, trades, symbols, skipped)
    n = 0
    while batch := list(itertools.islice(rows, chunk)):
        n += len(batch)
        yield _to_md(batch)
    if n == 0:
        raise ValueError(f"feed file {path} holds no event for the universe's symbols {sorted(symbols)}")


def load_events(feed_cfg, base: Path, universe) -> np.ndarray:
    """Build the event array a config's ``feed`` section describes (the events before
    ``feed.trade_from`` flagged ``MD_F_WARMUP``)."""
    _recorded(feed_cfg)
    return _mark_warmup(_load_events(feed_cfg, base, universe), feed_cfg.trade_from_ns())


def _load_events(feed_cfg, base: Path, universe) -> np.ndarray:
    from alphad.daemon.config import resolve

    symbols = {ins.symbol: ins.id for ins in universe}
    if feed_cfg.source == "synthetic":
        s = feed_cfg.synthetic
        return synthetic(200_000, len(universe), seed=s.seed, rate_hz=s.rate_hz, start_px=s.start_px,
                         vol_bps=s.vol_bps, trade_ratio=s.trade_ratio)
    path = resolve(base, feed_cfg.path)
    if feed_cfg.format == "generic":
        events, _ = load_generic(path, symbols)
    elif feed_cfg.format == "binance":
        trades = resolve(base, feed_cfg.trades_path) if feed_cfg.trades_path else None
        events, _ = load_binance(path, trades, symbols)
    elif feed_cfg.format == "daily":
        events, _ = load_daily(path, symbols)
    else:
        events, _ = load_lean_minute(path, symbols)
    if len(events) == 0:
        raise ValueError(f"feed file {path} holds no event for the universe's symbols {sorted(symbols)}")
    if feed_cfg.also:  # merged in time, an instant's events by instrument id, over the main file's span
        last = events["ts_exch"].max()
        extra = [x[x["ts_exch"] <= last] for x in (load_extra(e, base, symbols) for e in feed_cfg.also)]
        events = np.concatenate([events] + extra)
        events = events[np.lexsort((events["instrument"], events["ts_exch"]))]
    return events
