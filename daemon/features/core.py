"""Features stage core: per-instrument quote/micro state folded by the kernels of
:mod:`alphad.kernels.quote_features`, one float32 row per trigger.

The stage's arrays and parameters are one compiled object (:class:`FeatureState`) and
its step has the shape every core's has: ``features_step(state, md, n, rows, now) -> k``.
"""
from __future__ import annotations

from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType

from alphad.kernels import quote_features as qf


@structref.register
class _FeatureStateType(StructRefType):
    pass


class FeatureState(structref.StructRefProxy):
    """``table``: the per-instrument state rows (:func:`alphad.kernels.quote_features.new_state`);
    the EMA weights; ``quotes_only``: emit rows on quotes only (``features.trigger: quote``)."""


structref.define_proxy(FeatureState, _FeatureStateType, ["table", "alpha_fast", "alpha_slow", "quotes_only"])


@njit(cache=True)
def new_feature_state(table, alpha_fast, alpha_slow, quotes_only):
    return FeatureState(table, alpha_fast, alpha_slow, quotes_only)


class FeatureCore:
    """The stage's state for the config's ``features`` section (a compiled object's fields
    are not visible from Python, so the parts are kept here too)."""

    def __init__(self, features_cfg, n_instruments: int):
        f = features_cfg
        self.table = qf.new_state(n_instruments, f.set, **f.state_params())
        self.params = (2.0 / (f.ema_fast_events + 1.0), 2.0 / (f.ema_slow_events + 1.0), f.trigger == "quote")
        self.state = new_feature_state(self.table, *self.params)

    def scratch_state(self) -> FeatureState:
        """A twin over a copy of the rows (warm-up runs on it, never on the live rows)."""
        return new_feature_state(self.table.copy(), *self.params)


@njit(cache=True)
def features_step(s, md, n, rows, now):
    """Fold ``md[:n]`` into the state and write the triggered feature rows; returns how many."""
    return qf.on_md_batch(md, n, s.table, s.alpha_fast, s.alpha_slow, s.quotes_only, rows, now)
