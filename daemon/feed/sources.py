"""Feed sources: recorded files and a seeded synthetic generator, parsed up front into an
``MD_DTYPE`` array sorted by ``ts_exch`` (parsing is not part of tick-to-trade).

The file formats (``generic``, ``binance``, ``lean_minute``, ``daily``, and ``vix`` for
``feed.also``) are read in :mod:`alphad.daemon.feed.readers`, every row checked as it is
read: a bad one is skipped and counted by reason, or stops the load
(``feed.on_bad_record``; :mod:`alphad.daemon.feed.bad_records`).  :func:`load_events`
(the daemon's feed stage) prints what it skipped; :func:`read_events` returns the counts
(``.bad``) instead; :func:`stream_events` (the backtest) keeps them on the stream
(``.bad``, complete once it is exhausted).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from alphad.daemon.feed.bad_records import BadRecords
from alphad.daemon.feed.readers import (DAILY_CLOSE, DAILY_COLUMNS, DAILY_SESSION_NS, GENERIC_BAR_COLUMNS,
                                        GENERIC_COLUMNS, VIX_CLOSE, VIX_COLUMNS, Loaded, binance_quotes,
                                        binance_rows, binance_trades, generic_rows, load_binance, load_daily,
                                        load_generic, load_lean_minute, load_vix, time_ordered)
from alphad.daemon.feed.readers import to_md as _to_md
from alphad.ipc.dtypes import MD_DTYPE, MD_F_WARMUP, MD_QUOTE, MD_TRADE

__all__ = [  # the readers' names too, where they were before (daemon/feed/readers.py)
    "CHUNK_EVENTS", "DAILY_CLOSE", "DAILY_COLUMNS", "DAILY_SESSION_NS", "GENERIC_BAR_COLUMNS", "GENERIC_COLUMNS",
    "VIX_CLOSE", "VIX_COLUMNS", "EventStream", "Loaded", "binance_rows", "generic_rows", "load_binance", "load_daily",
    "load_events", "load_extra", "load_generic", "load_lean_minute", "load_vix", "parse_speed", "read_events",
    "stream_events", "synthetic"]


def load_extra(extra, base: Path, symbols: dict[str, int], on_bad="stop") -> np.ndarray:
    """One ``feed.also`` source as md records (its symbols must be in the universe)."""
    from alphad.daemon.config import resolve

    path = resolve(base, extra.path)
    if extra.format == "vix":
        if extra.symbol not in symbols:
            raise ValueError(f"feed.also: {path} is the VIX of symbol {extra.symbol!r}, which is not in the universe")
        return load_vix(path, symbols[extra.symbol], on_bad)
    events, _ = load_daily(path, symbols, on_bad)
    if len(events) == 0:
        raise ValueError(f"feed.also: {path} holds no bar of the universe's symbols")
    return events


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


def _until(events: np.ndarray, trade_until_ns: int | None) -> np.ndarray:
    """The events before ``feed.trade_until`` (all of them when unset): the feed ends at
    its first event at or after it, as at the end of the file."""
    if trade_until_ns is None:
        return events
    return events[: int(np.searchsorted(events["ts_exch"], trade_until_ns, side="left"))]


def _nothing_before(feed_cfg, first_ns: int) -> str:
    from datetime import datetime, timezone

    first = datetime.fromtimestamp(first_ns / 1e9, tz=timezone.utc).isoformat()
    return (f"feed.trade_until ({feed_cfg.trade_until}) is at or before the feed's first event ({first}): "
            f"the feed {feed_cfg.path} would be empty")


def _recorded(feed_cfg) -> None:
    """A live source has nothing to read ahead: the paths that need a recording refuse it."""
    if feed_cfg.source not in ("replay", "synthetic"):
        raise ValueError(f"feed.source {feed_cfg.source} is a live market-data stream: a backtest or a replay "
                         f"needs a recording (feed.source replay, feed.path)")


class EventStream:
    """The chunks :func:`stream_events` reads (an iterator); :attr:`bad` is the load's
    :class:`~alphad.daemon.feed.bad_records.BadRecords`, complete once it is exhausted."""

    def __init__(self, chunks, bad: BadRecords):
        self._chunks, self.bad = chunks, bad

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        return next(self._chunks)

    def close(self) -> None:
        """Stop early (closes the file being read)."""
        self._chunks.close()


def stream_events(feed_cfg, base: Path, universe, chunk: int | None = None) -> EventStream:
    """:func:`_stream_events` with the events before ``feed.trade_from`` flagged, ending
    before ``feed.trade_until``, as an :class:`EventStream` (its ``bad``: the records
    skipped so far, by reason)."""
    bad = BadRecords(feed_cfg.on_bad_record)

    def chunks():
        _recorded(feed_cfg)
        start, end = feed_cfg.trade_from_ns(), feed_cfg.trade_until_ns()
        source = _stream_events(feed_cfg, base, universe, chunk, bad)
        try:
            first = True
            for events in source:
                kept = _until(events, end)
                if first and len(kept) == 0:
                    raise ValueError(_nothing_before(feed_cfg, int(events["ts_exch"][0])))
                first = False
                if len(kept):
                    yield _mark_warmup(kept, start)
                if len(kept) < len(events):
                    return  # the rest of the file is at or after trade_until: not read
        finally:
            source.close()  # stopped early: closes the file being read
    return EventStream(chunks(), bad)


def _stream_events(feed_cfg, base: Path, universe, chunk: int | None, bad: BadRecords):
    """The events a config's ``feed`` section describes, in chunks of at most ``chunk``
    (MD_DTYPE arrays, in time order), read as they are needed: memory does not grow with
    the file.  The generic CSV and time-ordered Binance files stream row by row; the lean
    minute bars, the synthetic feed and Binance files that step back in time are built
    whole (their order needs every row), then cut."""
    from alphad.daemon.config import resolve

    chunk = chunk or CHUNK_EVENTS
    symbols = {ins.symbol: ins.id for ins in universe}
    path = resolve(base, feed_cfg.path)
    trades = resolve(base, feed_cfg.trades_path) if feed_cfg.format == "binance" and feed_cfg.trades_path else None
    if feed_cfg.source == "synthetic" or feed_cfg.format in ("lean_minute", "daily") or feed_cfg.also or (
            feed_cfg.format == "binance" and not all(time_ordered(rows) for rows in (
                binance_quotes(path, symbols, BadRecords(bad.policy)),
                binance_trades(trades, symbols, BadRecords(bad.policy)) if trades else ()))):
        # Built whole, then cut: the order needs every row (the lean and daily bars, a Binance capture
        # whose files step back in time, e.g. two sessions appended: a first pass checks).
        events = _load_events(feed_cfg, base, universe, bad)
        for j in range(0, len(events), chunk):
            yield events[j : j + chunk]
        return
    if feed_cfg.format == "generic":
        rows = generic_rows(path, symbols, bad)
    else:
        rows = binance_rows(path, trades, symbols, bad)
    n = 0
    while batch := list(itertools.islice(rows, chunk)):
        n += len(batch)
        yield _to_md(batch)
    if n == 0:
        raise ValueError(_no_events(path, symbols, bad))


def _no_events(path: Path, symbols: dict[str, int], bad: BadRecords) -> str:
    why = f" ({bad.summary()})" if bad.total else ""
    return f"feed file {path} holds no event for the universe's symbols {sorted(symbols)}{why}"


def load_events(feed_cfg, base: Path, universe) -> np.ndarray:
    """Build the event array a config's ``feed`` section describes (the events before
    ``feed.trade_from`` flagged ``MD_F_WARMUP``, none at or after ``feed.trade_until``);
    what was skipped is printed on stderr (the first few of each reason with file and line,
    then the counts)."""
    return read_and_report(feed_cfg, base, universe).events


def read_and_report(feed_cfg, base: Path, universe) -> Loaded:
    """:func:`read_events`, its bad records printed as :func:`load_events` prints them."""
    loaded = read_events(feed_cfg, base, universe)
    loaded.report.print(f"{feed_cfg.path}: {len(loaded.events)} events read")
    return loaded


def read_events(feed_cfg, base: Path, universe) -> Loaded:
    """:func:`load_events` without printing: ``(events, rows skipped)``, ``.bad`` the counts
    by reason, ``.report`` the :class:`~alphad.daemon.feed.bad_records.BadRecords`."""
    _recorded(feed_cfg)
    bad = BadRecords(feed_cfg.on_bad_record)
    events = _load_events(feed_cfg, base, universe, bad)
    kept = _until(events, feed_cfg.trade_until_ns())
    if len(kept) == 0:
        raise ValueError(_nothing_before(feed_cfg, int(events["ts_exch"][0])))
    return Loaded(_mark_warmup(kept, feed_cfg.trade_from_ns()), bad)


def _load_events(feed_cfg, base: Path, universe, bad: BadRecords) -> np.ndarray:
    from alphad.daemon.config import resolve

    symbols = {ins.symbol: ins.id for ins in universe}
    if feed_cfg.source == "synthetic":
        s = feed_cfg.synthetic
        return synthetic(200_000, len(universe), seed=s.seed, rate_hz=s.rate_hz, start_px=s.start_px,
                         vol_bps=s.vol_bps, trade_ratio=s.trade_ratio)
    path = resolve(base, feed_cfg.path)
    if feed_cfg.format == "generic":
        events, _ = load_generic(path, symbols, bad)
    elif feed_cfg.format == "binance":
        trades = resolve(base, feed_cfg.trades_path) if feed_cfg.trades_path else None
        events, _ = load_binance(path, trades, symbols, bad)
    elif feed_cfg.format == "daily":
        events, _ = load_daily(path, symbols, bad)
    else:
        events, _ = load_lean_minute(path, symbols, bad)
    if len(events) == 0:
        raise ValueError(_no_events(path, symbols, bad))
    if feed_cfg.also:  # merged in time, an instant's events by instrument id, over the main file's span
        last = events["ts_exch"].max()
        extra = [x[x["ts_exch"] <= last] for x in (load_extra(e, base, symbols, bad) for e in feed_cfg.also)]
        events = np.concatenate([events] + extra)
        events = events[np.lexsort((events["instrument"], events["ts_exch"]))]
    return events
