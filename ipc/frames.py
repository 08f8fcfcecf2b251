"""Control-port frames: one msgspec tagged union per direction, msgpack on the wire.

A request is a single ZMQ frame holding one of :data:`Request`; the reply is one
of :data:`Reply`.  A frame that does not decode gets an :class:`Error` reply
naming what was wrong (msgspec's ``$.path`` message); it never stops the daemon.
"""
from __future__ import annotations

from typing import Any

import msgspec


class _Frame(msgspec.Struct, tag_field="cmd", tag=str.lower, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class Status(_Frame):
    """Ask for trading state and per-stage liveness."""


class Halt(_Frame):
    """Trading state -> HALTED: the risk stage denies every new order.  With ``symbol``, that
    instrument alone: no new order on it (``instrument_halted``), the rest trade on."""
    reason: str = ""
    symbol: str = ""


class Resume(_Frame):
    """Trading state -> ACTIVE.  With ``symbol``: that instrument's halt lifted (the trading
    state is unchanged)."""
    symbol: str = ""


class Reduce(_Frame):
    """Trading state -> REDUCING: only orders that shrink a position pass."""


class Flatten(_Frame):
    """Close every position with reduce-only orders (allowed even while HALTED)."""


class CancelAll(_Frame, tag="cancel-all"):
    """Cancel every working order and algorithm parent at every venue (the trading state
    is unchanged: risk may send new orders unless halted too)."""


class Reload(_Frame):
    """Read the config file again and apply what may change while running: the risk limits
    and the model card (the new model swapped in between two batches)."""


class Set(_Frame):
    """One setting changed live, as ``reload`` applies it (a risk limit, ``model.card``):
    ``key`` dotted (``risk.account.daily_loss_limit``), ``value`` YAML (``0.03``)."""
    key: str
    value: str


class Positions(_Frame):
    """Risk's book per instrument (and the broker's positions with a live venue)."""


class Orders(_Frame):
    """The orders working now, as risk holds them (sent, not yet ended)."""


class Shutdown(_Frame):
    """Stop every stage, remove shared memory, exit."""


Request = Status | Halt | Resume | Reduce | Flatten | CancelAll | Reload | Set | Positions | Orders | Shutdown


class StageStatus(msgspec.Struct, kw_only=True, frozen=True):
    alive: bool
    ready: bool
    pid: int
    restarts: int
    events_in: int
    events_out: int
    heartbeat_age_s: float
    #: Ready but its heartbeat is older than ``supervisor.stale_after_s`` (frozen): the
    #: supervisor kills and restarts it.
    stale: bool = False


class Placement(msgspec.Struct, kw_only=True, frozen=True):
    """Where the stage processes run: ``topology.placement`` and the keys it resolved to
    (daemon/shell/affinity.py); ``cpus`` is keyed by each process's first stage."""
    mode: str                    # auto | manual
    cpus: dict[str, int]
    sched: str                   # other | fifo
    idle_poll: bool
    infer_keep_warm_us: int
    reason: str                  # the host facts behind an auto choice, and the choice


class VenueStatus(msgspec.Struct, kw_only=True, frozen=True):
    """A live venue's gateway process (router.venue other than paper): its connection,
    what it has done, and the positions and account the broker holds (never the keys)."""
    venue: str
    ready: bool
    pid: int
    starts: int                  # 1 = never restarted
    stream_up: bool              # the broker's order-event stream is connected
    reconnects: int
    http_errors: int             # 5xx, timeouts, refused connections
    rate_limited: int            # HTTP 429 answers
    sent: int
    rejects: int
    unknown: int                 # orders whose fate is unknown now (settled by a query)
    recovered_fills: int         # fills learnt from a query, not the stream (missed events made good)
    adjustments: int = 0         # position differences booked the broker's way (the venue wins)
    disconnects: int = 0         # the venue's link lost (it reconnects: ``reconnects``)
    data_farms_down: int = 0     # market-data farms the venue reports broken (IB)
    positions: dict[str, float]  # as the broker holds them
    positions_age_s: float       # since they were read (-1: never)
    cash: float
    equity: float
    #: symbol -> [alphad's position, the broker's] where they differ
    mismatches: dict[str, list[float]] = {}


class StatusReply(_Frame):
    trading_state: str
    state_reason: str            # why the state was last raised: operator, daily_loss, drawdown_kill, ...
    topology: str
    uptime_s: float
    stages: dict[str, StageStatus]
    orders: int
    fills: int
    denials: int
    realized_pnl: float          # gross of fees, as unrealized_pnl
    unrealized_pnl: float
    tick_to_trade_us: dict[str, float]  # the last 10,000 orders, however old
    inference_provider: str = ""  # ONNX Runtime provider the infer stage's session runs on
    infer_rehearsals: int = 0  # keep-warm runs of the inference step (topology.infer_keep_warm_us)
    placement: Placement | None = None  # where the stage processes run, and why
    positions: dict[str, float] = {}  # the risk stage's book (non-zero positions)
    venue: VenueStatus | None = None  # a live venue's gateway, when router.venue is a broker
    feed_data_down: int = 0  # a live feed's broken data farms, plus 1 while its link is lost
    stale_instruments: list[str] = []  # no new orders for lack of data (risk.max_data_age_ms)
    feed_bad_records: int = 0  # market data the feed skipped as bad (a recording's rows, a live source's messages)
    bad_requests: int = 0  # control frames that were no request (answered with an Error)
    cancel_all_pending: int = 0  # `ctl cancel-all` requests the router has not acted on yet
    fees: float = 0.0  # paid so far (commissions, exchange fees)
    net_pnl: float = 0.0  # realized + unrealized - fees: what the account really made
    tick_to_trade_recent_us: dict[str, float] = {}  # the orders of about the last minute only
    recent_window_s: float = 0.0  # how long that window really is (shorter just after a start)
    settings: dict[str, Any] = {}  # the `ctl set` values in force
    halted_instruments: list[str] = []  # `ctl halt --symbol`: no new order on these
    settings_generation: int = 0  # ctl reload / set / SIGHUP: the settings the stages run (0: the file's)


class Ok(_Frame):
    message: str


class Error(_Frame):
    error: str


class PositionRow(msgspec.Struct, kw_only=True, frozen=True):
    position: float
    avg_price: float
    last_price: float
    unrealized_pnl: float
    realized_pnl: float  # gross of fees
    fees: float
    open_buy: float  # working, not yet filled
    open_sell: float


class PositionsReply(_Frame, tag="positions-reply"):
    positions: dict[str, PositionRow]  # every instrument risk has held or works an order in
    venue: dict[str, float] | None = None  # the broker's, as last read (a live venue)


class WorkingOrder(msgspec.Struct, kw_only=True, frozen=True):
    client_order_id: int
    symbol: str
    side: str  # buy / sell
    leaves: float  # quantity not yet filled


class OrdersReply(_Frame, tag="orders-reply"):
    orders: list[WorkingOrder]


Reply = StatusReply | Ok | Error | PositionsReply | OrdersReply

request_decoder = msgspec.msgpack.Decoder(Request)
reply_decoder = msgspec.msgpack.Decoder(Reply)
encoder = msgspec.msgpack.Encoder()
