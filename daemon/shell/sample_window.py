"""The in-sample guard of ``alphad backtest`` and ``alphad replay``.

A model judged on the days it was trained on looks better than it is.  A card from
``alphad train`` records ``train_end``, the last bar date any training label read
(:mod:`alphad.daemon.infer.model_card`); a run whose feed starts on or before that
day is refused unless the user says ``--allow-in-sample``, and its summary then says
``"in_sample": true``.  The feed's start is its first event that can trade: with
``feed.trade_from`` the events before it only warm the stages up.  The check reads the card and the feed's first event only, so
it runs before any model is loaded or kernel compiled.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from alphad.daemon.config_base import resolve
from alphad.daemon.infer.model_card import read_card

__all__ = ["InSampleError", "add_argument", "check_training_window", "first_event_ns"]


class InSampleError(ValueError):
    """The feed starts inside the model's training window.  ``alphad``'s entry point exits
    with :attr:`exit_code` (2, a usage error: the run is refused, nothing failed)."""

    exit_code = 2


def add_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-in-sample", action="store_true",
                   help="run even when the feed starts on or before the model card's train_end "
                        "(the summary then says \"in_sample\": true)")


def first_event_ns(cfg, base: Path) -> int:
    """``ts_exch`` of the first event the configured feed emits (ns since the epoch).  A
    generic CSV is read up to its first row; other formats as the feed itself reads them."""
    from alphad.daemon.feed.sources import stream_events

    chunks = stream_events(cfg.feed, base, cfg.universe, chunk=1)
    try:
        return int(next(chunks)["ts_exch"][0])
    finally:
        chunks.close()  # closes the file the generator holds open


def _utc(ts_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.timezone.utc)


def check_training_window(cfg, base: Path, *, allow_in_sample: bool) -> bool | None:
    """Whether the run is in sample: ``True`` (allowed by ``allow_in_sample``), ``False``
    (the feed starts after ``train_end``) or ``None`` (the card records no window: a note
    goes to stderr).  Raises :class:`InSampleError` when in sample and not allowed."""
    card_path = resolve(base, cfg.model.card)
    train_end = read_card(card_path).train_end_date
    if train_end is None:
        print(f"note: model card {card_path} records no training window (train_end): "
              "the in-sample check is skipped", file=sys.stderr)
        return None
    # the first event that can trade: the events before feed.trade_from only warm up
    trade_from = cfg.feed.trade_from_ns() or 0
    if _utc(trade_from).date() > train_end:
        return False  # out of sample whatever the feed's first event: no need to read the file
    first = _utc(max(first_event_ns(cfg, base), trade_from))
    if first.date() > train_end:
        return False
    where = (f"model card {card_path} has train_end {train_end.isoformat()} and the feed trades from "
             f"{first.date().isoformat()} ({first.isoformat(timespec='seconds')})")
    if allow_in_sample:
        print(f"note: running in sample (--allow-in-sample): {where}", file=sys.stderr)
        return True
    raise InSampleError(f"in-sample run refused: {where}, on or before train_end; pass --allow-in-sample "
                        f"to run it anyway, or trade after it (feed.trade_from later than {train_end.isoformat()})")
