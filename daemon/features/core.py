"""Features stage core: per-instrument state folded by the kernels research uses, one
float32 row per trigger: the quote sets (``quote``, ``micro``) of
:mod:`alphad.kernels.quote_features` on quotes and trades, or the bar sets (``daily``,
``core``, ``full``) of :mod:`alphad.kernels.feature_sets` on bars.

The stage's arrays and parameters are one compiled object (:class:`FeatureState`) and
its step has the shape every core's has: ``features_step(state, md, n, rows, now) -> k``.
"""
from __future__ import annotations

from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType

import numpy as np

from alphad.kernels import feature_sets as fsets
from alphad.kernels import quote_features as qf

#: The feature sets computed from bars (the rest from quotes and trades).
BAR_SETS = tuple(fsets.FEATURE_SETS)
#: ``plan, n_cols`` of a quote set's state: no bar plan.
NO_BAR_SET = (np.zeros((0, 4), np.int64), 0)


@structref.register
class _FeatureStateType(StructRefType):
    pass


class FeatureState(structref.StructRefProxy):
    """``table``: the per-instrument state rows (:func:`alphad.kernels.quote_features.new_state`,
    or a bar set's state per instrument); the EMA weights; ``quotes_only``: emit rows on
    quotes only (``features.trigger: quote``); ``plan`` and ``n_cols``: a bar set's plan
    (:class:`alphad.kernels.feature_sets.FeatureSet`, no rows for a quote set) and columns."""


structref.define_proxy(FeatureState, _FeatureStateType, ["table", "alpha_fast", "alpha_slow", "quotes_only", "plan",
                                                         "n_cols"])


@njit(cache=True)
def new_feature_state(table, alpha_fast, alpha_slow, quotes_only, plan, n_cols):
    return FeatureState(table, alpha_fast, alpha_slow, quotes_only, plan, n_cols)


def feature_names(feature_set: str) -> tuple[str, ...]:
    """The ordered columns a set publishes (what the model card must list)."""
    if feature_set in BAR_SETS:
        return fsets.get_feature_set(feature_set).names
    return tuple(qf.FEATURE_SETS[feature_set])


class FeatureCore:
    """The stage's state for the config's ``features`` section (a compiled object's fields
    are not visible from Python, so the parts are kept here too)."""

    def __init__(self, features_cfg, n_instruments: int):
        f = features_cfg
        if f.set in BAR_SETS:
            bar_set = fsets.get_feature_set(f.set)
            self.table = bar_set.new_state(n_instruments)
            plan, n_cols = bar_set.plan, len(bar_set.names)
        else:
            self.table = qf.new_state(n_instruments, f.set, **f.state_params())
            plan, n_cols = NO_BAR_SET
        self.params = (2.0 / (f.ema_fast_events + 1.0), 2.0 / (f.ema_slow_events + 1.0), f.trigger == "quote", plan,
                       n_cols)
        self.state = new_feature_state(self.table, *self.params)

    def scratch_state(self) -> FeatureState:
        """A twin over a copy of the rows (warm-up runs on it, never on the live rows)."""
        return new_feature_state(self.table.copy(), *self.params)


@njit(cache=True)
def features_step(s, md, n, rows, now):
    """Fold ``md[:n]`` into the state and write the triggered feature rows; returns how many."""
    if s.n_cols:
        return fsets.on_bar_batch(md, n, s.plan, s.table, s.n_cols, rows, now)
    return qf.on_md_batch(md, n, s.table, s.alpha_fast, s.alpha_slow, s.quotes_only, rows, now)
