"""The ``features:`` section: which feature set the features stage computes (:mod:`alphad.daemon.features`)."""
from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from alphad.daemon.config_base import Base, PositiveFloat, PositiveInt


class Regime(Base):
    """``features.regime``: the market inputs ``risk.sizing`` reads (daemon/features/regime.py).

    ``vix_symbol``: the instrument whose level is the VIX ('' : none, the VIX multiplier is 1);
    ``index_symbol``: the index the HMM filter runs on ('' : none, the regime multiplier is 1);
    ``params``: the ``regimes.json`` ``alphad train`` writes beside the card (HMM on the
    index, GARCH(1,1) per symbol, fitted only up to the training end; a symbol without
    GARCH parameters has no variance forecast, so the volatility target gives it no risk);
    ``adv_bars``: bars in the traded-value EMA of the impact estimate.  Mark the inputs
    ``risk.instruments: {VIX: {tradable: false}}``: they then make no feature rows."""

    vix_symbol: str = ""
    index_symbol: str = ""
    params: str = ""
    adv_bars: PositiveInt = 20


class Features(Base):
    #: The named, ordered feature set the stage computes and publishes, which the model card
    #: must list exactly.  On quotes and trades (kernels/quote_features.py): ``quote``, the 8
    #: quote/trade columns, or ``micro``, those plus 8 microstructure columns (microprice,
    #: order-flow imbalance, imbalance statistics, VPIN).  On bars (kernels/feature_sets.py,
    #: the research dataset's own kernels): ``daily`` (16 scale-free columns, what ``alphad
    #: train`` uses), ``core`` (16) or ``full`` (29); a row per bar once every column is warm.
    set: Literal["quote", "micro", "daily", "core", "full"] = "quote"
    #: Emit a feature row on every md event (``event``) or only on quotes (``quote``); the
    #: bar sets emit on bars whatever this says.
    trigger: Literal["event", "quote"] = "quote"
    ema_fast_events: PositiveFloat = 10.0
    ema_slow_events: PositiveFloat = 100.0
    #: ``micro``: quotes in the rolling imbalance window (mean, momentum, persistence).
    imbalance_window: Annotated[int, Meta(ge=3)] = 50
    #: ``micro``: VPIN bucket size in quote currency traded, and buckets averaged.
    vpin_bucket_notional: PositiveFloat = 50_000.0
    vpin_buckets: PositiveInt = 20
    #: Sizing's market inputs (VIX, HMM regime, GARCH variance); none when absent.
    regime: Regime | None = None

    def state_params(self) -> dict:
        """Keyword arguments of :func:`alphad.kernels.quote_features.new_state` for this set."""
        return {"imbalance_window": self.imbalance_window, "vpin_bucket_notional": self.vpin_bucket_notional,
                "vpin_buckets": self.vpin_buckets}
