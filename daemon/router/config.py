"""The ``router:`` section: execution, algorithms, live impact and the simulated venues
(:mod:`alphad.daemon.router`; each venue's own keys are :class:`VenueSpec` in
``daemon/router/venues/paper.py``)."""
from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from alphad.daemon.config_base import Base, Fraction, NonNegFloat, PositiveFloat, PositiveInt
from alphad.daemon.router.venues.alpaca_config import AlpacaVenue
from alphad.daemon.router.venues.ib_config import IbVenue
from alphad.daemon.router.venues.paper import VenueSpec


class Algo(Base):
    """How the router works each approved order when ``router.execution`` is an algorithm
    (``twap``, ``vwap``, ``pov``; daemon/router/algos.py).  The order becomes a parent that
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
    (daemon/router/impact_live.py), refitted in housekeeping and published as
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
    (daemon/router/venues/paper.py: fees and rebates, entry/response latency, displayed-size
    matching, queue position) by expected all-in cost."""

    #: ``immediate``: each approved order goes to the venue at once (a market order).
    #: ``twap`` / ``vwap`` / ``pov``: each becomes a parent worked by that algorithm
    #: (parameters in ``algo``); risk sees fills against the order it approved.  On the
    #: simulated venues and on IB (children re-priced by IB's in-place modify); not on
    #: Alpaca yet.
    execution: Literal["immediate", "twap", "vwap", "pov"] = "immediate"
    algo: Algo = Algo()
    impact: ImpactLive = ImpactLive()
    #: ``paper``: the simulated venues of ``venues``, inside the router process.
    #: ``alpaca``: Alpaca through a gateway process (``alpaca``; extra ``alpaca``).
    #: ``ib``: Interactive Brokers (TWS or IB Gateway) through a gateway process (``ib``;
    #: extra ``ib``).
    venue: Literal["paper", "alpaca", "ib"] = "paper"
    alpaca: AlpacaVenue = AlpacaVenue()
    ib: IbVenue = IbVenue()
    venues: tuple[VenueSpec, ...] = (VenueSpec(name="paper", taker_bps=1.0),)
    #: Cost charged per ms of a venue's expected round trip when choosing one, bps.
    latency_bps_per_ms: NonNegFloat = 0.0
    #: Price levels per side each simulated venue keeps.
    book_depth: PositiveInt = 5
    #: Resting orders each simulated venue holds at once.
    resting_capacity: PositiveInt = 1024
    #: An order older than this when the router sees it (``now - t_origin``: a frozen or
    #: restarted stage, a ring far behind) is never sent: risk gets a REJECT (``stale``).
    max_order_age_ms: PositiveFloat = 2000.0

    def __post_init__(self):
        if self.venue != "alpaca" and self.alpaca != AlpacaVenue():
            raise ValueError(f"router.alpaca is set but router.venue is {self.venue}: the Alpaca gateway's keys only "
                             "apply with router.venue alpaca")
        if self.venue != "ib" and self.ib != IbVenue():
            raise ValueError(f"router.ib is set but router.venue is {self.venue}: the IB gateway's keys only apply "
                             "with router.venue ib")
        if self.venue == "alpaca" and self.execution != "immediate":
            raise ValueError(f"router.execution {self.execution} with router.venue alpaca is not built yet: an "
                             "algorithm re-prices its children by replace, which the Alpaca gateway does not make; "
                             "use execution immediate (or router.venue ib, or paper)")
        if self.venue == "ib" and self.execution != "immediate" and self.ib.time_in_force == "ioc":
            raise ValueError(f"router.execution {self.execution} with router.ib.time_in_force ioc: an algorithm's "
                             "children rest at their limit, which IOC forbids; set router.ib.time_in_force to gtc "
                             "or day")
        if self.execution == "vwap" and not (self.algo.profile and sum(self.algo.profile) > 0):
            raise ValueError("router.algo.profile expected volume shares with a positive sum for "
                             f"execution vwap, was {list(self.algo.profile)}")
