"""``router.alpaca``: the Alpaca gateway's keys (:mod:`alphad.daemon.router.venues.alpaca`).

Kept apart from the gateway so a config is read without alpaca-py installed (extra
``alpaca``)."""
from __future__ import annotations

from typing import Literal

from alphad.daemon.config_base import Base, PositiveFloat, PositiveInt


class AlpacaVenue(Base):
    """Orders to Alpaca through alpaca-py, in a gateway process of their own.

    The keys come from the environment (``key_env``/``secret_env``, Alpaca's own names by
    default), never from this file, and are never written to logs, the journal or ``ctl
    status``.  ``endpoint: live`` trades real money and must be written out; the default is
    Alpaca's paper account."""

    endpoint: Literal["paper", "live"] = "paper"
    #: The trading REST base URL and the ``trade_updates`` websocket URL, as alpaca-py's
    #: ``url_override``; empty: Alpaca's own for ``endpoint`` (tests and proxies set them).
    url_override: str = ""
    stream_url_override: str = ""
    key_env: str = "APCA_API_KEY_ID"
    secret_env: str = "APCA_API_SECRET_KEY"
    #: Prefix of every client order id alphad sends (``<prefix><id>``): orders of the same
    #: account without it (placed by hand, another program) are never touched.
    client_order_prefix: str = "alphad-"
    time_in_force: Literal["day", "gtc", "ioc"] = "day"
    #: One HTTP request's limit; past it the order's fate is unknown until a query settles it.
    http_timeout_s: PositiveFloat = 5.0
    #: Backoff after a 429 or a failed request: doubles from ``backoff_s`` up to ``backoff_max_s``.
    backoff_s: PositiveFloat = 0.25
    backoff_max_s: PositiveFloat = 8.0
    #: A request refused with 429 is tried again at most this many times, then rejected.
    max_retries: PositiveInt = 6
    #: Open orders and positions are read back this often (missed stream events made good).
    reconcile_interval_s: PositiveFloat = 2.0
    #: Threads for the blocking REST client (alpaca-py's is synchronous).
    http_workers: PositiveInt = 4
    #: Start-up reconciliation must finish within this; otherwise the gateway is not ready.
    start_timeout_s: PositiveFloat = 30.0

    def __post_init__(self) -> None:
        if not self.client_order_prefix or len(self.client_order_prefix) > 24:
            raise ValueError("router.alpaca.client_order_prefix expected 1..24 characters (Alpaca's client order "
                             f"ids are at most 48), was {self.client_order_prefix!r}")
