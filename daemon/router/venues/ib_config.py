"""``router.ib``: the Interactive Brokers gateway's keys (:mod:`alphad.daemon.router.venues.ib`).

Kept apart from the gateway so a config is read without ib_async installed (extra ``ib``)."""
from __future__ import annotations

import re
from typing import Literal

from alphad.daemon.config_base import Base, PositiveFloat, PositiveInt


class IbVenue(Base):
    """Orders to TWS or IB Gateway through ib_async, in a gateway process of their own.

    ``port``: 4002 is IB Gateway's paper port (4001 live), 7497 TWS's paper port (7496
    live).  ``client_id`` must be unused by any other API client of the same TWS;
    ``account``: the account to trade (empty: the only one the login manages)."""

    host: str = "127.0.0.1"
    port: PositiveInt = 4002
    client_id: PositiveInt = 17
    account: str = ""
    #: Prefix of every order reference alphad sends (``<prefix><id>``): the orders of the
    #: account without it are never touched.
    order_ref_prefix: str = "alphad-"
    time_in_force: Literal["day", "gtc", "ioc"] = "day"
    #: Stocks route to ``stock_exchange``; a symbol with a ``/`` (``BTC/USD``) is crypto
    #: on ``crypto_exchange``.
    stock_exchange: str = "SMART"
    crypto_exchange: str = "PAXOS"
    connect_timeout_s: PositiveFloat = 10.0
    #: Between connection attempts (one reconnect loop at a time): doubling from
    #: ``backoff_s`` up to ``backoff_max_s``; a "client id in use" (326) waits the same.
    backoff_s: PositiveFloat = 1.0
    backoff_max_s: PositiveFloat = 30.0
    #: Open orders, executions and positions are read back this often.
    reconcile_interval_s: PositiveFloat = 5.0
    #: Start-up reconciliation must finish within this; otherwise the gateway is not ready.
    start_timeout_s: PositiveFloat = 60.0
    #: The daily restart of TWS / IB Gateway, local time of ``reset_timezone``
    #: (``"23:45-00:45"``); a disconnect inside it is expected and logged, not alerted.
    #: Empty: none.
    reset_window: str = ""
    reset_timezone: str = "America/New_York"

    def __post_init__(self) -> None:
        if self.reset_window and not re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", self.reset_window):
            raise ValueError(f"router.ib.reset_window expected HH:MM-HH:MM (e.g. 23:45-00:45), was {self.reset_window!r}")
        if not self.order_ref_prefix:
            raise ValueError("router.ib.order_ref_prefix must not be empty: it tells alphad's orders from others'")
