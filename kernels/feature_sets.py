"""Named, ordered feature sets over OHLCV bars, and the one-call streaming update.

A feature set is an ordered list of indicator specs such as ``("macd", (12, 26, 9))``.
:func:`get_feature_set` compiles it into

* ``names``: the ordered column names (``ret_1``, ``macd_12_26_9``, ...), which the
  features stage publishes and the inference stage compares with the model card;
* a *plan*: an int64 array, one row ``[kind, state_offset, state_len, out_col]`` per spec;
* a state template: every indicator's state (see :mod:`alphad.kernels.indicators`)
  concatenated into one float64 vector per instrument.

:func:`update_row` is the features stage's hot call: one ``@njit`` call applies one bar
to one instrument's state and writes the whole feature row.  :func:`compute` runs the
same call over a series (batch), so streaming and batch cannot disagree.

Column names are ``<feature>_<params>`` and are documented in ``docs/features.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from alphad.ipc.dtypes import MD_BAR, MD_F_WARMUP
from alphad.kernels import indicators as ind

# Numba's cache (cache=True) is keyed by the content of the file that defines a function,
# not of the files it calls into: update_row and _compute_batch compile the indicators'
# code into themselves, so a cache built before an edit of indicators.py is still loaded
# after it.  Whoever changes indicators.py must change this file too (this line will do)
# or clear kernels/__pycache__/feature_sets.*.nb[ic].  Last such change: O(1) window sums.
# (test_feature_set_when_full_then_every_column_is_its_standalone_indicator_bit_for_bit
# fails on a stale cache.)

__all__ = [
    "FEATURE_SETS", "FeatureSet", "get_feature_set", "column_names", "update_row", "compute",
]

# -- kind codes (plan column 0) -------------------------------------------------------------
K_RET = 1
K_LOGRET = 2
K_SMA = 3
K_EMA = 4
K_RSI = 5
K_MACD = 6
K_ATR = 7
K_BBANDS = 8
K_STOCH = 9
K_VOL = 10
K_ZSCORE = 11
K_VOLZ = 12
K_NMA = 13
K_SKEW = 14
K_KURT = 15
K_VWAP = 16
K_VOLRATIO = 17


def _p(x) -> str:
    # 2.0 -> "2", 2.5 -> "2.5": names stay short and stable
    return str(int(x)) if float(x).is_integer() else str(x)


#: kind name -> (code, state factory, column-name function, default params)
_KINDS = {
    "ret": (K_RET, ind.ret_new, lambda k: [f"ret_{k}"], (1,)),
    "logret": (K_LOGRET, ind.ret_new, lambda k: [f"logret_{k}"], (1,)),
    "sma": (K_SMA, ind.sma_new, lambda n: [f"sma_{n}"], (20,)),
    "ema": (K_EMA, ind.ema_new, lambda n: [f"ema_{n}"], (20,)),
    "rsi": (K_RSI, ind.rsi_new, lambda n: [f"rsi_{n}"], (14,)),
    "macd": (K_MACD, ind.macd_new,
             lambda f, s, g: [f"macd_{f}_{s}_{g}", f"macdsignal_{f}_{s}_{g}", f"macdhist_{f}_{s}_{g}"],
             (12, 26, 9)),
    "atr": (K_ATR, ind.atr_new, lambda n: [f"atr_{n}"], (14,)),
    "bbands": (K_BBANDS, ind.bbands_new,
               lambda n, k: [f"bbpctb_{n}_{_p(k)}", f"bbwidth_{n}_{_p(k)}"], (20, 2.0)),
    "stoch": (K_STOCH, ind.stoch_new,
              lambda fk, sk, sd: [f"stochk_{fk}_{sk}", f"stochd_{fk}_{sk}_{sd}"], (14, 3, 3)),
    "vol": (K_VOL, ind.vol_new, lambda n: [f"vol_{n}"], (20,)),
    "zscore": (K_ZSCORE, ind.zscore_new, lambda n: [f"zscore_{n}"], (20,)),
    "volz": (K_VOLZ, ind.zscore_new, lambda n: [f"volz_{n}"], (20,)),
    "nma": (K_NMA, ind.nma_new, lambda n: [f"nma_{n}"], (20,)),
    "skew": (K_SKEW, ind.moments_new, lambda n: [f"skew_{n}"], (20,)),
    "kurt": (K_KURT, ind.moments_new, lambda n: [f"kurt_{n}"], (20,)),
    "vwap": (K_VWAP, lambda: ind.vwap_new(), lambda: ["vwapdev"], ()),
    "volratio": (K_VOLRATIO, ind.volratio_new, lambda n: [f"volratio_{n}"], (20,)),
}

_CORE = (
    ("ret", (1,)), ("logret", (1,)), ("sma", (20,)), ("ema", (20,)), ("rsi", (14,)),
    ("macd", (12, 26, 9)), ("atr", (14,)), ("bbands", (20, 2.0)), ("stoch", (14, 3, 3)),
    ("vol", (20,)), ("zscore", (20,)), ("volz", (20,)),
)
_HORIZONS = (1, 5, 20, 63, 126)

#: Named feature sets: name -> ordered specs.  ``core`` is the issue's list; ``full`` is
#: every price/volume feature (29 columns, within ``ipc.dtypes.MAX_FEATURES``).
FEATURE_SETS: dict[str, tuple[tuple[str, tuple], ...]] = {
    "core": _CORE,
    "full": tuple(("ret", (k,)) for k in _HORIZONS)
    + tuple(("logret", (k,)) for k in _HORIZONS)
    + _CORE[2:]
    + (("nma", (20,)), ("skew", (20,)), ("kurt", (20,)), ("vwap", ()), ("volratio", (20,))),
    # The research set for daily bars (ops/dataset.py): scale-free columns only, so one
    # model can rank many instruments whose prices and volumes differ by orders of magnitude.
    "daily": (
        ("logret", (1,)), ("logret", (5,)), ("logret", (20,)), ("logret", (63,)),
        ("vol", (5,)), ("vol", (20,)), ("vol", (63,)), ("rsi", (14,)), ("nma", (20,)), ("nma", (50,)),
        ("bbands", (20, 2.0)), ("stoch", (14, 3, 3)), ("volz", (20,)), ("volratio", (20,)),
    ),
}


def column_names(specs) -> tuple[str, ...]:
    """Ordered column names of a list of ``(kind, params)`` specs."""
    names: list[str] = []
    for kind, params in specs:
        if kind not in _KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; expected one of {sorted(_KINDS)}")
        names.extend(_KINDS[kind][2](*params))
    return tuple(names)


@dataclass(frozen=True)
class FeatureSet:
    """A compiled feature set.

    Attributes
    ----------
    name : str
        The set's name (``--set`` / config value).
    names : tuple of str
        Ordered column names; row ``out[j]`` is ``names[j]``.
    plan : numpy.ndarray
        int64 ``(n_specs, 4)``: ``[kind, state_offset, state_len, out_col]``.
    template : numpy.ndarray
        float64 initial state of one instrument; copy it per instrument (``new_state``).
    lookback : int
        Rows of warm-up until every column is non-NaN (the largest TA-Lib-style lookback).
    """

    name: str
    names: tuple[str, ...]
    plan: np.ndarray
    template: np.ndarray
    lookback: int

    def new_state(self, n_instruments: int | None = None) -> np.ndarray:
        """Fresh state: 1-D for one instrument, or ``(n_instruments, state_len)``."""
        if n_instruments is None:
            return self.template.copy()
        return np.tile(self.template, (int(n_instruments), 1))

    def compute(self, open_, high, low, close, volume, session=None) -> tuple[tuple[str, ...], np.ndarray]:
        """Batch form over one instrument's bars; returns ``(names, float64 (n_rows, n_cols))``."""
        return self.names, compute(self, open_, high, low, close, volume, session)


_LOOKBACK = {
    "ret": lambda k: k, "logret": lambda k: k, "sma": lambda n: n - 1, "ema": lambda n: n - 1,
    "rsi": lambda n: n, "macd": lambda f, s, g: s + g - 2, "atr": lambda n: n,
    "bbands": lambda n, k: n - 1, "stoch": lambda fk, sk, sd: fk + sk + sd - 3,
    "vol": lambda n: n, "zscore": lambda n: n - 1, "volz": lambda n: n - 1, "nma": lambda n: n - 1,
    "skew": lambda n: n, "kurt": lambda n: n, "vwap": lambda: 0, "volratio": lambda n: n - 1,
}


def build_feature_set(name: str, specs) -> FeatureSet:
    """Compile ``(kind, params)`` specs into a :class:`FeatureSet` (validates every param)."""
    names = column_names(specs)
    rows, states = [], []
    off = col = 0
    lookback = 0
    for kind, params in specs:
        code, factory, namer, _ = _KINDS[kind]
        st = factory(*params)
        rows.append((code, off, st.shape[0], col))
        states.append(st)
        off += st.shape[0]
        col += len(namer(*params))
        lookback = max(lookback, _LOOKBACK[kind](*params))
    plan = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return FeatureSet(name, names, plan, np.concatenate(states), lookback)


def get_feature_set(name: str) -> FeatureSet:
    """The named set from :data:`FEATURE_SETS`; raises ``ValueError`` naming the choices."""
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; expected one of {sorted(FEATURE_SETS)}")
    return build_feature_set(name, FEATURE_SETS[name])


@njit(cache=True)
def update_row(plan, state, o, h, l, c, v, session, out):
    """Apply one bar to one instrument's state and write every feature into ``out``.

    Parameters
    ----------
    plan : int64 (n_specs, 4)
        From :class:`FeatureSet`.
    state : float64 (state_len,)
        The instrument's state (updated in place).
    o, h, l, c, v : float
        Bar open/high/low/close (price units) and volume (shares or base units).
    session : float
        Session key for VWAP resets (e.g. ``yyyymmdd``).
    out : float array (>= n_cols,)
        Receives the row, NaN during each column's warm-up.  float32 rows (the ring's
        ``x`` field) work too.
    """
    for r in range(plan.shape[0]):
        kind = plan[r, 0]
        so = plan[r, 1]  # the spec's state offset (``o`` is the bar's open)
        j = plan[r, 3]
        if kind == K_RET:
            out[j] = ind._ret(state, so, c)
        elif kind == K_LOGRET:
            out[j] = ind._logret(state, so, c)
        elif kind == K_SMA:
            out[j] = ind._sma(state, so, c)
        elif kind == K_EMA:
            out[j] = ind._ema(state, so, c)
        elif kind == K_RSI:
            out[j] = ind._rsi(state, so, c)
        elif kind == K_MACD:
            out[j], out[j + 1], out[j + 2] = ind._macd(state, so, c)
        elif kind == K_ATR:
            out[j] = ind._atr(state, so, h, l, c)
        elif kind == K_BBANDS:
            _, _, _, out[j], out[j + 1] = ind._bbands(state, so, c)
        elif kind == K_STOCH:
            out[j], out[j + 1] = ind._stoch(state, so, h, l, c)
        elif kind == K_VOL:
            out[j] = ind._vol(state, so, c)
        elif kind == K_ZSCORE:
            out[j] = ind._zscore(state, so, c)
        elif kind == K_VOLZ:
            out[j] = ind._zscore(state, so, v)
        elif kind == K_NMA:
            out[j] = ind._nma(state, so, c)
        elif kind == K_SKEW:
            out[j] = ind._skew(state, so, c)
        elif kind == K_KURT:
            out[j] = ind._kurt(state, so, c)
        elif kind == K_VWAP:
            _, out[j] = ind._vwap(state, so, session, h, l, c, v)
        elif kind == K_VOLRATIO:
            out[j] = ind._volratio(state, so, v)


@njit(cache=True)
def on_bar_batch(md, n, plan, table, n_cols, out_rows, now):
    """The features stage's step on a bar set: every ``MD_BAR`` of ``md[:n]`` through
    :func:`update_row` on its instrument's row of ``table``, the row written straight into
    the feature record (float32, as research casts its float64 rows).  A row is emitted only
    when every column is finite (research drops warm-up rows, so a model never saw one) and
    the bar is not flagged ``MD_F_WARMUP`` (before ``feed.trade_from``).  Other kinds are
    ignored.  VWAP's session key is 0 (one session), as research computes
    it.  Returns the rows written to ``out_rows``."""
    k = 0
    for j in range(n):
        e = md[j]
        i = e.instrument
        if e.kind != MD_BAR or i < 0 or i >= table.shape[0]:
            continue
        r = out_rows[k]
        x = r.x
        update_row(plan, table[i], e.open_px, e.high_px, e.low_px, e.last_px, e.last_sz, 0.0, x)
        finite = True
        for c in range(n_cols):
            if not np.isfinite(x[c]):
                finite = False
        if not finite or e.flags & MD_F_WARMUP:  # warm-up bars fold into the state only
            continue
        r.t_origin = e.t_origin
        r.ts = now
        r.seq = e.seq
        r.instrument = i
        r.n = n_cols
        r.mid = e.last_px  # the close: what the signal's weight is converted at
        k += 1
    return k


@njit(cache=True)
def _compute_batch(plan, state, o, h, l, c, v, sess, out):
    for i in range(c.shape[0]):
        update_row(plan, state, o[i], h[i], l[i], c[i], v[i], sess[i], out[i])


def compute(fs: FeatureSet, open_, high, low, close, volume, session=None) -> np.ndarray:
    """Batch: run :func:`update_row` over one instrument's series.

    Parameters
    ----------
    fs : FeatureSet
    open_, high, low, close, volume : array_like, 1-D, same length, finite
    session : array_like, optional
        VWAP session keys per row; default: one session for the whole series.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_rows, len(fs.names))``.
    """
    c = ind._as_series("close", close)
    n = c.shape[0]
    o = ind._as_series("open", open_, n)
    h = ind._as_series("high", high, n)
    l = ind._as_series("low", low, n)
    v = ind._as_series("volume", volume, n)
    sess = np.zeros(n) if session is None else ind._as_series("session", session, n)
    out = np.empty((n, len(fs.names)))
    _compute_batch(fs.plan, fs.new_state(), o, h, l, c, v, sess, out)
    return out
