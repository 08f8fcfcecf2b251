"""The ``feed:`` section: where market data comes from (:mod:`alphad.daemon.feed`)."""
from __future__ import annotations

from typing import Literal

from alphad.daemon.config_base import Base, Fraction, PositiveFloat


class Synthetic(Base):
    seed: int = 7
    rate_hz: PositiveFloat = 1000.0
    start_px: PositiveFloat = 100.0
    vol_bps: PositiveFloat = 1.0       # per-event log-price std, in bps
    trade_ratio: Fraction = 0.2        # share of events that are trades


class Feed(Base):
    """Where market data comes from.

    ``source``: ``replay`` (recorded file at ``path``) or ``synthetic``.
    ``format``: ``generic`` (``ts_ns,symbol,kind,bid_px,bid_sz,ask_px,ask_sz,last_px,last_sz``),
    ``binance`` (the book-ticker CSV; trades from ``trades_path`` merged by time) or
    ``lean_minute`` (equity minute quote CSV). ``speed``: ``realtime``, ``max``, or a
    multiplier such as ``"10"`` (ten times real time). ``loop`` restarts the file at its end.
    """

    source: Literal["replay", "synthetic"] = "replay"
    path: str = "data/demo_btc_eth_quotes_trades.csv.gz"
    format: Literal["generic", "binance", "lean_minute"] = "generic"
    trades_path: str = ""
    speed: str = "realtime"
    loop: bool = True
    synthetic: Synthetic = Synthetic()
