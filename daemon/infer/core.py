"""Infer stage core: feature rows in, sized signals out, around one model run.

The stage's buffers and parameters are one compiled object (:class:`InferState`).  The
model call is the one place a step leaves compiled code, so the step is two halves
around it, each of the shape every core's step has:

* :func:`infer_gather` ``(state, rows, n)``: copy the rows' feature vectors into the
  model input ``state.x`` and count them into the live drift histograms;
* the session predicts ``y[:n]`` (:class:`alphad.daemon.infer.session.ModelSession`);
* :func:`infer_step` ``(state, rows, n, y, out, now) -> k``: prediction → target weight.

Two sizings: linear (``model.weight_per_unit``, ``weight_cap``), or with ``risk.sizing``
infer's half of the full sizing (:func:`alphad.kernels.sizing.infer_weight`: conviction x
fractional Kelly from the card's out-of-sample statistics x HMM regime x VIX x GARCH
volatility target, from the inputs the row carries); the signal then carries each
multiplier and the cost inputs, and risk finishes the weight.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType

from alphad.daemon.infer.drift import histogram_update
from alphad.daemon.infer.session import ModelSession
from alphad.ipc.dtypes import SIG_F_SIZED
from alphad.kernels import sizing as sz


@njit(cache=True, _nrt=False)
def gather_rows(rows, n, n_features, x):
    """Copy the feature vectors of ``rows[:n]`` into the model input ``x``."""
    for k in range(n):
        for j in range(n_features):
            x[k, j] = rows[k].x[j]


@njit(cache=True, _nrt=False)
def count_drift(counts, edges, x, n):
    """Count the first ``n`` model input rows into the live drift histograms."""
    for k in range(n):
        histogram_update(counts, edges, x[k])


@njit(cache=True, _nrt=False)
def size_signals(rows, n, y, scale, weight_per_unit, weight_cap, min_abs_pred, out, now):
    """Prediction -> target weight: ``y/scale * weight_per_unit`` capped at ±``weight_cap``.

    Returns the number of signals written (rows whose |prediction| is below
    ``min_abs_pred`` still emit a signal with weight 0: flat is a target too).
    """
    for k in range(n):
        p = y[k]
        w = 0.0
        if abs(p) >= min_abs_pred:
            w = p / scale * weight_per_unit
            if w > weight_cap:
                w = weight_cap
            elif w < -weight_cap:
                w = -weight_cap
        s = out[k]
        s.t_origin = rows[k].t_origin
        s.ts = now
        s.seq = rows[k].seq
        s.instrument = rows[k].instrument
        s.prediction = p
        s.target_weight = w
        s.ref_px = rows[k].mid
        s.code = 0
        s.flags = 0
        s.m_conviction = s.m_kelly = s.m_regime = s.m_vix = s.m_vol = np.nan
        s.half_spread = s.daily_vol = s.adv = np.nan
    return n


@njit(cache=True)
def size_signals_full(rows, n, y, params, vix_table, probs, mults, out, now):
    """Infer's half of the full sizing (:func:`alphad.kernels.sizing.infer_weight`) for each
    row; the signal carries the multipliers and the cost inputs risk's half needs (daily
    volatility and traded value scaled from the row's per-bar figures)."""
    per_day = params[sz.P_PERIODS_PER_YEAR] / 252.0
    for k in range(n):
        r = rows[k]
        probs[0] = r.p_bull
        probs[1] = r.p_bear
        probs[2] = r.p_sideways
        code, w = sz.infer_weight(y[k], probs, r.vix, r.variance, params, vix_table, mults)
        s = out[k]
        s.t_origin = r.t_origin
        s.ts = now
        s.seq = r.seq
        s.instrument = r.instrument
        s.prediction = y[k]
        s.target_weight = w
        s.ref_px = r.mid
        s.code = code
        s.flags = SIG_F_SIZED
        s.m_conviction = mults[sz.M_CONVICTION]
        s.m_kelly = mults[sz.M_KELLY]
        s.m_regime = mults[sz.M_REGIME]
        s.m_vix = mults[sz.M_VIX]
        s.m_vol = mults[sz.M_VOL]
        s.half_spread = r.half_spread
        s.daily_vol = np.sqrt(r.variance * per_day) if r.variance > 0.0 else np.nan
        s.adv = r.adv * per_day
    return n


@structref.register
class _InferStateType(StructRefType):
    pass


class InferState(structref.StructRefProxy):
    """The model input ``x`` (the session's bound buffer), its batch and width, the linear
    sizing's parameters, the full sizing's (``sized``: on; ``sparams``, ``vix_table`` from
    :func:`alphad.kernels.sizing.sizing_params`; ``probs``, ``mults`` scratch), and the live
    drift histograms (``drift_counts`` with no rows: none)."""


_INFER_FIELDS = ["x", "max_batch", "n_features", "scale", "weight_per_unit", "weight_cap", "min_abs_prediction",
                 "drift_counts", "drift_edges", "sized", "sparams", "vix_table", "probs", "mults"]
structref.define_proxy(InferState, _InferStateType, _INFER_FIELDS)


@njit(cache=True)
def new_infer_state(x, max_batch, n_features, linear, drift_counts, drift_edges, full):
    scale, weight_per_unit, weight_cap, min_abs_prediction = linear
    sized, sparams, vix_table = full
    return InferState(x, max_batch, n_features, scale, weight_per_unit, weight_cap, min_abs_prediction, drift_counts,
                      drift_edges, sized, sparams, vix_table, np.zeros(3), np.zeros(sz.N_MULTS))


@njit(cache=True)
def infer_gather(s, rows, n):
    """The first half of the step: ``rows[:n]`` (at most ``s.max_batch``) into the model
    input, counted into the drift histograms; returns ``n``."""
    gather_rows(rows, n, s.n_features, s.x)
    if s.drift_counts.shape[0]:
        count_drift(s.drift_counts, s.drift_edges, s.x, n)
    return n


@njit(cache=True)
def infer_step(s, rows, n, y, out, now):
    """The second half: the model's predictions ``y[:n]`` of ``rows[:n]`` sized into signals."""
    if s.sized:
        return size_signals_full(rows, n, y, s.sparams, s.vix_table, s.probs, s.mults, out, now)
    return size_signals(rows, n, y, s.scale, s.weight_per_unit, s.weight_cap, s.min_abs_prediction, out, now)


class InferCore:
    """The session and the stage's state.

    With ``drift_counts`` (int64, features x bins) and a card that carries a drift
    reference, every model input row is also counted into the live histograms the
    exporter turns into PSI (``alphad_feature_psi``).
    """

    def __init__(self, session: ModelSession, *, weight_per_unit: float, weight_cap: float,
                 min_abs_prediction: float = 0.0, drift_counts: np.ndarray | None = None, sizing=None,
                 inputs: tuple[bool, bool, bool] = (False, False, False)):
        self.session = session
        ref = session.card.drift_reference
        self.drift_counts = drift_counts if ref is not None else None
        self.drift_edges = np.asarray(ref.edges, np.float64) if ref is not None else np.zeros((0, 0))
        self.scale = float(session.card.prediction_scale) or 1.0
        self.weight_per_unit = weight_per_unit
        self.weight_cap = weight_cap
        self.min_abs_prediction = min_abs_prediction
        self.full = (False, np.zeros(sz.N_PARAMS), np.zeros((2, 1)))
        if sizing is not None:  # risk.sizing: the card's out-of-sample statistics, the inputs configured
            c = session.card
            use_vix, use_regime, use_vol = inputs
            params, table = sz.sizing_params(sizing, oos_win_rate=c.oos_win_rate, oos_payoff_ratio=c.oos_payoff_ratio,
                                             prediction_scale=c.prediction_scale, use_vix=use_vix,
                                             use_regime=use_regime, use_vol=use_vol)
            self.full = (True, params, table)
        self.state = self._state(self.drift_counts)
        #: The same state counting no drift: warm-up and keep-warm rows are not live data.
        self.quiet = self._state(None)

    def _state(self, counts: np.ndarray | None) -> InferState:
        s = self.session
        counts = counts if counts is not None else np.zeros((0, 0), np.int64)
        edges = self.drift_edges if counts.shape[0] else np.zeros((0, 0))
        linear = (self.scale, self.weight_per_unit, self.weight_cap, self.min_abs_prediction)
        return new_infer_state(s.x, s.max_batch, s.n_features, linear, counts, edges, self.full)

    def rehearse(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Run the step on ``rows[:1]`` into the scratch ``out``, counting no drift.

        Between spaced ticks a sleeping process finds the model's code and data evicted
        (``python -m alphad.ops.infer_bench`` shows ~4 µs hot against 20–45 µs after a
        1 ms sleep); running the very same calls now and then keeps them in cache.  The
        session's input and output buffers are reused: they hold nothing between steps.
        """
        infer_gather(self.quiet, rows, 1)
        infer_step(self.quiet, rows, 1, self.session.run_bound(1), out, 0)

    def on_rows(self, rows: np.ndarray, n: int, out: np.ndarray, now: int) -> int:
        """The whole step over ``rows[:n]``, in model batches; returns the signals written."""
        s, st = self.session, self.state
        done = 0
        while done < n:  # a ring batch larger than the model's max batch runs in chunks
            m = min(n - done, s.max_batch)
            chunk = rows[done : done + m] if done or m < n else rows
            infer_gather(st, chunk, m)
            infer_step(st, chunk, m, s.run_bound(m), out[done : done + m] if done else out, now)
            done += m
        return n
