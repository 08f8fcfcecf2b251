"""The ``control:``, ``metrics:``, ``journal:`` and ``supervisor:`` sections (:mod:`alphad.daemon.supervisor`)."""
from __future__ import annotations

import posixpath
from typing import Annotated

from msgspec import Meta

from alphad.daemon.config_base import Base, PositiveFloat, PositiveInt


class Control(Base):
    #: Where ``alphad ctl`` reaches the daemon.  Loopback (or an ``ipc://`` path) unless the
    #: two Curve keys below are set: the daemon refuses any other endpoint without them.
    endpoint: str = "tcp://127.0.0.1:7701"
    #: CurveZMQ: the daemon's secret key file (``alphad ctl keygen --name server``), relative
    #: to the config file.  With it, only clients whose public key is in
    #: ``curve_authorized_dir`` get answers.
    curve_secret_key: str = ""
    #: The directory of authorised clients' public ``*.key`` files.
    curve_authorized_dir: str = ""
    #: A request larger than this drops its sender's connection before it is buffered.
    max_frame_bytes: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 65536

    def __post_init__(self):
        from alphad.daemon.supervisor.control_socket import endpoint_host

        try:
            endpoint_host(self.endpoint)
        except ValueError as e:
            raise ValueError(f"control.endpoint: {e}") from None
        if bool(self.curve_secret_key) != bool(self.curve_authorized_dir):
            raise ValueError("control.curve_secret_key and control.curve_authorized_dir go together: set both "
                             "(CurveZMQ) or neither (loopback only)")


class Metrics(Base):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 9101


class Journal(Base):
    """The journal (daemon/supervisor/journal.py; README "Journal and audit")."""

    enabled: bool = True
    #: Its folder (relative to the config file): ``journal.jsonl`` (the active file), the
    #: rotated ``journal.<first entry>.<UTC day>.jsonl``, ``journal.anchor`` and ``session``.
    dir: str = "var/journal"
    #: The HMAC-SHA256 key of the chain (64 hex characters), relative to the config file;
    #: empty: ``journal.key`` beside ``dir`` (in its parent).  Created with mode 0600 on the
    #: first start.  Never inside ``dir``: a key that travels with the journal protects nothing.
    key_file: str = ""
    #: The active file is rotated when it reaches this size, and at the first entry of each
    #: new UTC day.
    rotate_mb: PositiveFloat = 256.0
    #: Cap on the journal's files together: beyond it the oldest rotated files are removed
    #: (a ``pruned`` entry records them and where the kept chain starts).  0: no cap.  A
    #: ``checkpoint`` entry written first holds what a full restart reads back from the
    #: files removed (risk's book, cash, PnL and fees, open orders, per-symbol halts, the
    #: trading state and day references), so a restart rebuilds the same from the files kept.
    max_total_mb: Annotated[float, Meta(ge=0)] = 0.0
    #: Below this much free space on the journal's filesystem, new orders stop (HALTED,
    #: reason ``low_disk``) until space returns.  0: not watched.
    min_free_mb: Annotated[float, Meta(ge=0)] = 100.0
    #: Risk denials journaled one line each per second, at most; beyond it, one
    #: ``denial_summary`` per (instrument, reason) per second with the count.
    denials_per_s: PositiveInt = 100

    def __post_init__(self):
        if self.max_total_mb and self.max_total_mb < 2 * self.rotate_mb:
            raise ValueError(f"journal.max_total_mb expected 0 (no cap) or at least twice journal.rotate_mb "
                             f"({2 * self.rotate_mb:g}: the active file and one rotated file), was {self.max_total_mb:g}")
        if self.key_file and self.dir:
            d, k = posixpath.normpath(posixpath.join("/", self.dir)), posixpath.normpath(posixpath.join("/", self.key_file))
            if posixpath.isabs(self.dir) == posixpath.isabs(self.key_file) and (k == d or k.startswith(d + "/")):
                raise ValueError(f"journal.key_file expected outside the journal directory {self.dir!r} (a key "
                                 f"beside the journal protects nothing), was {self.key_file!r}")


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
    #: http(s) endpoint the supervisor POSTs a JSON alert to on each halt, kill-switch trip,
    #: other trading-state change, stage restart, stale-data change and drawdown ladder step
    #: (daemon/supervisor/alerts.py); empty: no webhook.
    webhook_url: str = ""
    #: Seconds between two alerts of the same kind (a kill-switch trip and the KILL step always go).
    webhook_cooldown_s: Annotated[float, Meta(ge=0)] = 60.0

    def __post_init__(self):
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError(f"supervisor.webhook_url expected http:// or https://, was {self.webhook_url!r}")
