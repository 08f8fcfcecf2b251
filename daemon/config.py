"""config.yaml, decoded once into frozen msgspec types.

Unknown keys are rejected and every error names the path of the offending
value (``$.risk.max_order_notional``) and what was expected, so a typo fails at
start-up instead of at 3 a.m.  Hot code never sees these objects: each stage
copies the values it needs into plain ints, floats and arrays.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from alphad.ipc.control import STAGES as _STAGES

from alphad.daemon.router.venues.paper import VenueSpec
from alphad.daemon.risk.config import RiskConfig

PositiveInt = Annotated[int, Meta(gt=0)]
NonNegInt = Annotated[int, Meta(ge=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegFloat = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
PowerOfTwo = Annotated[int, Meta(ge=2, le=1 << 24)]

StageName = Literal["feed", "features", "infer", "risk", "router"]
WaitStrategy = Literal["spin", "yield", "block"]


class Base(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every config section: keyword-only, immutable, unknown keys are errors."""


class Instrument(Base):
    id: NonNegInt
    symbol: str
    sector: str = ""
    tick_size: PositiveFloat = 0.01
    lot_size: PositiveFloat = 1.0


class Topology(Base):
    """Which stages share a process, and how each process waits and is scheduled.

    ``name``: ``five`` (one process per stage), ``fused`` (feed+features+infer+risk
    in one process, router apart) or ``single`` (everything in one process on a
    simulated clock: the backtest).
    """

    name: Literal["five", "fused", "single"] = "five"
    wait: WaitStrategy = "block"
    #: Per-process overrides of ``wait``, keyed by the process's first stage.
    wait_overrides: dict[str, WaitStrategy] = {}
    #: CPU to pin each process to, keyed by the process's first stage (absent: not pinned).
    cpus: dict[str, NonNegInt] = {}
    #: ``other`` (CFS) or ``fifo`` (SCHED_FIFO; needs CAP_SYS_NICE, else a warning).
    sched: Literal["other", "fifo"] = "other"
    #: SCHED_FIFO priority of the feed; each later process on the tick's path gets one
    #: more (features 11, infer 12, ...), so a woken downstream stage preempts its waker.
    priority: Annotated[int, Meta(ge=1, le=95)] = 10
    #: Start a SCHED_IDLE busy-poll process per CPU so idle vCPUs never halt (see
    #: daemon/idle_poll.py); for VMs whose kernel boot line cannot say ``idle=poll``.
    idle_poll: bool = False
    #: Keep the inference step warm: while the process hosting ``infer`` is idle, run the
    #: step on a scratch copy of its last row every this many µs (0: off).  A stage that
    #: sleeps between spaced ticks finds the model's code and data evicted; see
    #: README.md "Keeping the model warm" for what it buys and costs.
    infer_keep_warm_us: NonNegInt = 0

    def __post_init__(self):
        for key, table in (("cpus", self.cpus), ("wait_overrides", self.wait_overrides)):
            unknown = sorted(set(table) - set(_STAGES))
            if unknown:
                raise ValueError(f"topology.{key} expected keys among {list(_STAGES)} (a process's first stage), "
                                 f"found {unknown}")


class Rings(Base):
    md: PowerOfTwo = 4096
    features: PowerOfTwo = 1024
    signals: PowerOfTwo = 1024
    orders: PowerOfTwo = 1024
    exec: PowerOfTwo = 1024
    denials: PowerOfTwo = 1024
    arrivals: PowerOfTwo = 1024


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


class Features(Base):
    #: The named, ordered feature set the stage computes and publishes (kernels/quote_features.py):
    #: ``quote``, the 8 quote/trade columns, or ``micro``, those plus 8 microstructure columns
    #: (microprice, order-flow imbalance, imbalance statistics, VPIN).  The model card must list
    #: exactly the set's columns.  (The bar sets ``core``/``full``/``daily`` of
    #: kernels/feature_sets.py need OHLC bars in the md record, not there yet.)
    set: Literal["quote", "micro"] = "quote"
    #: Emit a feature row on every md event (``event``) or only on quotes (``quote``).
    trigger: Literal["event", "quote"] = "quote"
    ema_fast_events: PositiveFloat = 10.0
    ema_slow_events: PositiveFloat = 100.0
    #: ``micro``: quotes in the rolling imbalance window (mean, momentum, persistence).
    imbalance_window: Annotated[int, Meta(ge=3)] = 50
    #: ``micro``: VPIN bucket size in quote currency traded, and buckets averaged.
    vpin_bucket_notional: PositiveFloat = 50_000.0
    vpin_buckets: PositiveInt = 20

    def state_params(self) -> dict:
        """Keyword arguments of :func:`alphad.kernels.quote_features.new_state` for this set."""
        return {"imbalance_window": self.imbalance_window, "vpin_bucket_notional": self.vpin_bucket_notional,
                "vpin_buckets": self.vpin_buckets}


class Model(Base):
    card: str = "data/demo_model/model_card.json"
    #: ``auto``: CUDA where onnxruntime-gpu sees a GPU, else CPU; or ``cpu`` / ``cuda``.
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    max_batch: PositiveInt = 64
    #: prediction / prediction_scale * weight_per_unit, capped at +-weight_cap.
    weight_per_unit: NonNegFloat = 0.01
    weight_cap: Fraction = 0.02
    min_abs_prediction: NonNegFloat = 0.0


class Risk(RiskConfig):
    """The ``risk:`` section: every limit of the pre-trade gate, sizing and drawdown ladder
    (:class:`alphad.daemon.risk.config.RiskConfig`), plus the account's start."""

    initial_equity: PositiveFloat = 1_000_000.0
    #: Orders smaller than this notional are not worth sending (a threshold, not a denial).
    min_order_notional: NonNegFloat = 0.0


class Algo(Base):
    """How the router works each approved order when ``router.execution`` is an algorithm
    (``twap``, ``vwap``, ``pov``; daemon/algos.py).  The order becomes a parent that
    expires ``horizon_s`` after it arrived; its children are limit orders priced between
    the near touch (urgency 0) and the far touch (urgency 1), repriced by cancel/replace."""

    #: Life of a parent, seconds.  At the end its open children are cancelled and the
    #: unfilled remainder is reported to risk as cancelled (expired).
    horizon_s: PositiveFloat = 60.0
    #: TWAP: equal slices over the horizon; slice ``k`` is due once it has begun.
    slices: PositiveInt = 10
    #: VWAP (required there): expected share of market volume in each of equal buckets
    #: covering the horizon, e.g. from ``algos.intraday_volume_profile``; normalised.
    profile: tuple[NonNegFloat, ...] = ()
    #: POV: our share of all traded volume, ours included (0 < participation < 1).
    participation: Annotated[float, Meta(gt=0, lt=1)] = 0.1
    #: 0 joins the near touch (passive) .. 1 prices at the far touch (marketable).
    urgency: Fraction = 0.3
    #: Worst price a child may have, in bps from the arrival mid (above it for a buy,
    #: below for a sell); 0 = no limit.
    limit_offset_bps: NonNegFloat = 0.0
    #: Behind schedule by more than this share of the parent: children cross the spread.
    catch_up: Fraction = 0.1
    #: Share of the horizon at its end in which children cross the spread so the parent
    #: completes rather than expires (0: strictly passive, a parent may expire unfilled).
    finish_fraction: Fraction = 0.1
    #: A child working this long while the price the algorithm wants moved is replaced.
    replace_after_s: PositiveFloat = 2.0
    #: Smallest child worth sending, in lots (except the last one).
    min_child_lots: PositiveInt = 1
    #: How often working parents are stepped (schedule, repricing, expiry), milliseconds;
    #: a step costs ~5 µs per working parent in the router process.
    step_ms: PositiveFloat = 100.0
    #: Parents working at once; an order beyond it is rejected back to risk.
    max_parents: PositiveInt = 1024


class ImpactLive(Base):
    """Per-instrument market-impact calibration from the router's own fills
    (daemon/impact_live.py), refitted in housekeeping and published as
    ``alphad_impact_coefficient{instrument, param}``."""

    enabled: bool = True
    #: Horizon of the volume ``V`` and volatility ``sigma`` that ``x = Q / V`` and the
    #: coefficients refer to, seconds (sampled 60 times per horizon).
    horizon_s: PositiveFloat = 60.0
    #: Observations an instrument needs before its first fit.
    min_observations: Annotated[int, Meta(ge=10)] = 50
    #: Most recent observations kept (and fitted) per instrument.
    window: Annotated[int, Meta(ge=10)] = 1000
    #: Least time between two fits of one instrument, seconds (a fit takes ~15 ms of the
    #: router's housekeeping, so it is rare).
    refit_interval_s: PositiveFloat = 300.0


class Router(Base):
    """Where orders go: ``paper`` routes across the simulated venues of ``venues``
    (daemon/paper_venue.py: fees and rebates, entry/response latency, displayed-size
    matching, queue position) by expected all-in cost."""

    #: ``immediate``: each approved order goes to the venue at once (a market order).
    #: ``twap`` / ``vwap`` / ``pov``: each becomes a parent worked by that algorithm
    #: (parameters in ``algo``); risk sees fills against the order it approved.
    execution: Literal["immediate", "twap", "vwap", "pov"] = "immediate"
    algo: Algo = Algo()
    impact: ImpactLive = ImpactLive()
    venue: Literal["paper"] = "paper"
    venues: tuple[VenueSpec, ...] = (VenueSpec(name="paper", taker_bps=1.0),)
    #: Cost charged per ms of a venue's expected round trip when choosing one, bps.
    latency_bps_per_ms: NonNegFloat = 0.0
    #: Price levels per side each simulated venue keeps.
    book_depth: PositiveInt = 5
    #: Resting orders each simulated venue holds at once.
    resting_capacity: PositiveInt = 1024

    def __post_init__(self):
        if self.execution == "vwap" and not (self.algo.profile and sum(self.algo.profile) > 0):
            raise ValueError("router.algo.profile expected volume shares with a positive sum for "
                             f"execution vwap, was {list(self.algo.profile)}")


class Control(Base):
    endpoint: str = "tcp://127.0.0.1:7701"


class Metrics(Base):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 9101


class Journal(Base):
    enabled: bool = True
    dir: str = "var/journal"


class Shm(Base):
    #: Prefix of every /dev/shm segment of this instance (two instances need two prefixes).
    prefix: str = "alphad"


class Supervisor(Base):
    status_interval_s: PositiveFloat = 5.0
    #: A stage that dies is restarted at most this many times per minute.
    max_restarts_per_minute: PositiveInt = 10
    #: Seconds a stage gets to report ready (Numba cache + ONNX session warm-up).  A cold
    #: cache compiles every kernel in all five processes at once: 45 s on the idle 2-core CI
    #: host (session 2), so the default leaves room for a loaded or slower machine.
    start_timeout_s: PositiveFloat = 180.0
    watchdog: bool = True


class Config(Base):
    universe: list[Instrument]
    topology: Topology = Topology()
    rings: Rings = Rings()
    feed: Feed = Feed()
    features: Features = Features()
    model: Model = Model()
    risk: Risk = Risk()
    router: Router = Router()
    control: Control = Control()
    metrics: Metrics = Metrics()
    journal: Journal = Journal()
    shm: Shm = Shm()
    supervisor: Supervisor = Supervisor()

    def __post_init__(self):
        ids = [i.id for i in self.universe]
        if ids != list(range(len(ids))):
            raise ValueError(f"universe ids must be 0..{len(ids) - 1} in order, were {ids}")
        symbols = [i.symbol for i in self.universe]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"universe symbols must be unique, were {symbols}")


class ConfigError(ValueError):
    """config.yaml could not be decoded; the message names the file and the path."""


def load_config(path: str | Path) -> tuple[Config, Path]:
    """Decode ``path``; relative paths inside the config resolve against its folder.

    Returns the config and the folder it came from.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} was not found") from None
    return decode_config(raw, source=str(path)), path.resolve().parent


def decode_config(raw: bytes | str, *, source: str = "<config>") -> Config:
    try:
        return msgspec.yaml.decode(raw, type=Config)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {e}") from None
    except msgspec.DecodeError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None


def resolve(base: Path, p: str) -> Path:
    """A path from the config, relative to the config's folder unless absolute."""
    q = Path(p)
    return q if q.is_absolute() else base / q
