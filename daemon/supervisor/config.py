"""The ``control:``, ``metrics:``, ``journal:`` and ``supervisor:`` sections (:mod:`alphad.daemon.supervisor`)."""
from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from alphad.daemon.config_base import Base, PositiveFloat, PositiveInt


class Control(Base):
    endpoint: str = "tcp://127.0.0.1:7701"


class Metrics(Base):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 9101


class Journal(Base):
    enabled: bool = True
    dir: str = "var/journal"


class Supervisor(Base):
    status_interval_s: PositiveFloat = 5.0
    #: A stage that dies is restarted at most this many times per minute.
    max_restarts_per_minute: PositiveInt = 10
    #: Seconds a stage gets to report ready (Numba cache + ONNX session warm-up).  A cold
    #: cache compiles every kernel in all five processes at once: 45 s on the idle 2-core CI
    #: host (session 2), so the default leaves room for a loaded or slower machine.
    start_timeout_s: PositiveFloat = 180.0
    watchdog: bool = True
    #: A dead stage is restarted after this delay, doubled for each restart of that stage in
    #: the last minute (0.25, 0.5, 1, ... s) up to ``restart_backoff_max_s``: a stage that
    #: dies at start does not spin through its restarts in a few seconds.
    restart_backoff_s: PositiveFloat = 0.25
    restart_backoff_max_s: PositiveFloat = 10.0
    #: A ready stage whose heartbeat is older than this (frozen, stopped, stuck in a call)
    #: is reported stale, alerted, killed and restarted.  Stages beat at least every 50 ms.
    stale_after_s: PositiveFloat = 2.0
