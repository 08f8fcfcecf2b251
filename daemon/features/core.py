"""Features stage core: per-instrument state folded by the kernels research uses, one
float32 row per trigger: the quote sets (``quote``, ``micro``) of
:mod:`alphad.kernels.quote_features` on quotes and trades, or the bar sets (``daily``,
``core``, ``full``) of :mod:`alphad.kernels.feature_sets` on bars.

The stage's arrays and parameters are one compiled object (:class:`FeatureState`) and
its step has the shape every core's has: ``features_step(state, md, n, rows, now) -> k``.

With ``features.regime`` (the inputs of ``risk.sizing``, :mod:`alphad.daemon.features.regime`)
or an instrument that is not tradable (an index, the VIX: inputs, never traded), the step
goes event by event: each event updates the regime state before the rows it triggers are
written, so a row carries exactly what was known at its event, whatever the batch, and a
non-tradable instrument makes no row.
"""
from __future__ import annotations

from pathlib import Path

from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType

import numpy as np

from alphad.daemon.features.regime import RegimeInputs, regime_into_row, regime_on_md
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
    (:class:`alphad.kernels.feature_sets.FeatureSet`, no rows for a quote set) and columns;
    ``per_event``: go event by event (regime inputs or a non-tradable instrument); ``emits``:
    1 where an instrument makes rows; ``reg`` ... ``hx``: the regime state
    (:class:`alphad.daemon.features.regime.RegimeInputs`)."""


_FEATURE_FIELDS = ["table", "alpha_fast", "alpha_slow", "quotes_only", "plan", "n_cols", "per_event", "emits", "reg",
                   "inst", "hmm", "startprob", "transmat", "means", "variances", "hx"]
structref.define_proxy(FeatureState, _FeatureStateType, _FEATURE_FIELDS)


@njit(cache=True)
def new_feature_state(table, alpha_fast, alpha_slow, quotes_only, plan, n_cols, per_event, emits, regime):
    reg, inst, hmm, startprob, transmat, means, variances, hx = regime
    return FeatureState(table, alpha_fast, alpha_slow, quotes_only, plan, n_cols, per_event, emits, reg, inst, hmm,
                        startprob, transmat, means, variances, hx)


def feature_names(feature_set: str) -> tuple[str, ...]:
    """The ordered columns a set publishes (what the model card must list)."""
    if feature_set in BAR_SETS:
        return fsets.get_feature_set(feature_set).names
    return tuple(qf.FEATURE_SETS[feature_set])


class FeatureCore:
    """The stage's state for the config's ``features`` section (a compiled object's fields
    are not visible from Python, so the parts are kept here too)."""

    def __init__(self, features_cfg, n_instruments: int, *, symbols: list[str] | None = None,
                 tradable: list[bool] | None = None, base: Path = Path(".")):
        f = features_cfg
        symbols = symbols if symbols is not None else [str(i) for i in range(n_instruments)]
        self.regime = RegimeInputs(f.regime, symbols, base)
        self.emits = np.array([1 if t else 0 for t in (tradable or [True] * n_instruments)], np.uint8)
        per_event = f.regime is not None or not bool(self.emits.all())
        if f.set in BAR_SETS:
            bar_set = fsets.get_feature_set(f.set)
            self.table = bar_set.new_state(n_instruments)
            plan, n_cols = bar_set.plan, len(bar_set.names)
        else:
            self.table = qf.new_state(n_instruments, f.set, **f.state_params())
            plan, n_cols = NO_BAR_SET
        self.params = (2.0 / (f.ema_fast_events + 1.0), 2.0 / (f.ema_slow_events + 1.0), f.trigger == "quote", plan,
                       n_cols, per_event, self.emits)
        self.state = new_feature_state(self.table, *self.params, self.regime.arrays())

    def scratch_state(self) -> FeatureState:
        """A twin over a copy of the rows (warm-up runs on it, never on the live rows)."""
        return new_feature_state(self.table.copy(), *self.params, self.regime.copy())


@njit(cache=True)
def _set_step(s, md, n, rows, now):
    if s.n_cols:
        return fsets.on_bar_batch(md, n, s.plan, s.table, s.n_cols, rows, now)
    return qf.on_md_batch(md, n, s.table, s.alpha_fast, s.alpha_slow, s.quotes_only, rows, now)


@njit(cache=True)
def features_step(s, md, n, rows, now):
    """Fold ``md[:n]`` into the state and write the triggered feature rows; returns how many."""
    if not s.per_event:
        return _set_step(s, md, n, rows, now)
    k = 0
    for j in range(n):
        regime_on_md(md[j], s.reg, s.inst, s.hmm, s.startprob, s.transmat, s.means, s.variances, s.hx)
        m = _set_step(s, md[j:j + 1], 1, rows[k:], now)
        if m and s.emits[rows[k].instrument]:
            regime_into_row(rows[k], s.reg, s.inst)
            k += 1
    return k
