"""The ``features:`` section: which feature set the features stage computes (:mod:`alphad.daemon.features`)."""
from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from alphad.daemon.config_base import Base, PositiveFloat, PositiveInt


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
