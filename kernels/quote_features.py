"""Streaming quote/trade features for the daemon's features stage.

State is one float64 row per instrument (``state[instrument, S_*]``); the update
functions are pure ``@njit`` over that array, and the batch form
:func:`quote_features_batch` runs the very same update over a recorded series,
so research rows and live rows come from one implementation.

Feature list (ordered; the model card must list exactly these):

==================  =========================================================
``ret_1``           log return of the mid since the previous quote, bps
``ema_ret_fast``    EMA of ``ret_1`` over ``fast`` quotes (alpha = 2/(fast+1)), bps
``ema_ret_slow``    EMA of ``ret_1`` over ``slow`` quotes, bps
``mid_ema_dev``     (mid − EMA_slow(mid)) / mid, bps
``imbalance_l1``    (bid_sz − ask_sz) / (bid_sz + ask_sz), in [−1, 1]
``spread_bps``      (ask − bid) / mid, bps
``trade_flow``      EMA over ``fast`` trades of the tick-rule trade sign × size
                    share, in [−1, 1] (buy pressure > 0)
``vol_ema``         sqrt(EMA_slow(ret_1²)), bps
==================  =========================================================

The first quote of an instrument seeds the state and yields ret_1 = 0.

Set ``micro`` (``features.set: micro``) appends the microstructure columns of
:mod:`alphad.kernels.microstructure`, updated by the same quote/trade events:

==================  =========================================================
``microprice_dev``  (microprice − mid) / mid, bps
``ofi_flow``        EMA over ``fast`` quotes of the best-level order-flow
                    imbalance (Cont–Kukanov–Stoikov), divided by the EMA of
                    the touch depth: a dimensionless buy pressure
``imb_mean``        mean of ``imbalance_l1`` over the last ``imbalance_window``
                    quotes
``imb_momentum``    ``imbalance_l1 − imb_mean``
``imb_persistence`` lag-1 autocorrelation of ``imbalance_l1`` in that window
``imb_velocity``    change of ``imbalance_l1`` since the previous quote
``imb_accel``       change of ``imb_velocity``
``vpin``            VPIN: mean |buy − sell| / V over the last ``vpin_buckets``
                    buckets of V = ``vpin_bucket_notional`` traded (quote
                    currency), trades signed as for ``trade_flow``
==================  =========================================================

A column that is not defined yet (the first quotes of a window, VPIN before
its buckets fill) is 0, like ``ret_1`` on the first quote.  The set is chosen by
the shape of the state: :func:`new_state` with ``feature_set="micro"`` makes
the wider rows, and the same ``on_md_batch`` call serves both sets.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.ipc.dtypes import MD_F_WARMUP, MD_QUOTE, MD_TRADE
from alphad.kernels import microstructure as ms

FEATURE_NAMES = (
    "ret_1",
    "ema_ret_fast",
    "ema_ret_slow",
    "mid_ema_dev",
    "imbalance_l1",
    "spread_bps",
    "trade_flow",
    "vol_ema",
)
N_FEATURES = len(FEATURE_NAMES)
MICRO_NAMES = (
    "microprice_dev",
    "ofi_flow",
    "imb_mean",
    "imb_momentum",
    "imb_persistence",
    "imb_velocity",
    "imb_accel",
    "vpin",
)
#: Feature set name -> ordered columns (what the stage publishes and the model card must list).
FEATURE_SETS = {"quote": FEATURE_NAMES, "micro": FEATURE_NAMES + MICRO_NAMES}

# state columns
S_SEEN = 0
S_MID = 1
S_EMA_RET_FAST = 2
S_EMA_RET_SLOW = 3
S_EMA_MID = 4
S_IMBALANCE = 5
S_SPREAD = 6
S_FLOW = 7
S_VAR = 8
S_LAST_TRADE_PX = 9
S_LAST_SIGN = 10
S_RET = 11
S_TRADE_SZ_EMA = 12
N_STATE = 13
# micro columns, after the quote set's
M_OFI = N_STATE            # ms.ofi_new() state, 5 words
M_OFI_EMA = N_STATE + 5
M_DEPTH_EMA = N_STATE + 6
M_OUT = N_STATE + 7        # the 8 micro outputs, in MICRO_NAMES order
M_IMB = M_OUT + 8          # ms.imbalance_stats_new(n) state, 4 + n words, then ms.vpin_new(...)


def new_state(n_instruments: int, feature_set: str = "quote", *, imbalance_window: int = 50,
              vpin_bucket_notional: float = 50_000.0, vpin_buckets: int = 20) -> np.ndarray:
    """Per-instrument state rows for ``feature_set`` (``quote`` or ``micro``)."""
    if feature_set == "quote":
        return np.zeros((n_instruments, N_STATE), dtype=np.float64)
    if feature_set != "micro":
        raise ValueError(f"quote feature set expected one of {sorted(FEATURE_SETS)}, found {feature_set!r}")
    row = np.concatenate([np.zeros(M_IMB), ms.imbalance_stats_new(imbalance_window),
                          ms.vpin_new(vpin_bucket_notional, vpin_buckets)])
    return np.tile(row, (n_instruments, 1))


def n_features(state: np.ndarray) -> int:
    """Columns a stage with this state emits."""
    return N_FEATURES + (len(MICRO_NAMES) if state.shape[1] > N_STATE else 0)


@njit(cache=True, inline="always")
def _defined(x):
    return x if np.isfinite(x) else 0.0


@njit(cache=True, _nrt=False)
def update_micro_quote(s, bid, bid_sz, ask, ask_sz, alpha_fast):
    """Micro columns on an accepted quote (``s`` one instrument's state row)."""
    mid = 0.5 * (bid + ask)
    s[M_OUT] = (ms.microprice(bid, bid_sz, ask, ask_sz) - mid) / mid * 1e4
    e = ms.ofi_update(s[M_OFI:M_OFI + 5], bid, bid_sz, ask, ask_sz)
    depth = 0.5 * (bid_sz + ask_sz)
    if np.isfinite(e):
        s[M_OFI_EMA] = _ema(s[M_OFI_EMA], e, alpha_fast)
        s[M_DEPTH_EMA] = _ema(s[M_DEPTH_EMA], depth, alpha_fast)
    else:  # first quote seeds the depth scale
        s[M_DEPTH_EMA] = depth
    s[M_OUT + 1] = s[M_OFI_EMA] / s[M_DEPTH_EMA] if s[M_DEPTH_EMA] > 0.0 else 0.0
    n = int(s[M_IMB + 1])
    m, mom, rho, vel, acc = ms.imbalance_stats_update(s[M_IMB:M_IMB + 4 + n], s[S_IMBALANCE])
    s[M_OUT + 2] = _defined(m)
    s[M_OUT + 3] = _defined(mom)
    s[M_OUT + 4] = _defined(rho)
    s[M_OUT + 5] = _defined(vel)
    s[M_OUT + 6] = _defined(acc)


@njit(cache=True, _nrt=False)
def update_micro_trade(s, px, sz):
    """VPIN on a trade, signed like ``trade_flow`` (call after :func:`update_trade`)."""
    v0 = M_IMB + 4 + int(s[M_IMB + 1])
    notional = px * sz
    buy = notional if s[S_LAST_SIGN] > 0.0 else 0.0
    sell = notional if s[S_LAST_SIGN] < 0.0 else 0.0
    if buy + sell > 0.0:  # an unsigned first trade is not classified
        s[M_OUT + 7] = _defined(ms.vpin_update(s[v0:v0 + 5 + int(s[v0 + 2])], buy, sell))


@njit(cache=True, inline="always")
def _ema(prev, x, alpha):
    return prev + alpha * (x - prev)


@njit(cache=True, _nrt=False)
def update_quote(state, i, bid, bid_sz, ask, ask_sz, alpha_fast, alpha_slow):
    """Fold one top-of-book quote into instrument ``i``'s state.

    Returns 1 when the quote was used, 0 when it was rejected (crossed, locked
    or non-positive prices/sizes are not propagated).
    """
    if not (bid > 0.0 and ask > bid and bid_sz >= 0.0 and ask_sz >= 0.0):
        return 0
    mid = 0.5 * (bid + ask)
    s = state[i]
    if s[S_SEEN] == 0.0:
        s[S_SEEN] = 1.0
        s[S_MID] = mid
        s[S_EMA_MID] = mid
        s[S_RET] = 0.0
    else:
        r = np.log(mid / s[S_MID]) * 1e4
        s[S_RET] = r
        s[S_MID] = mid
        s[S_EMA_RET_FAST] = _ema(s[S_EMA_RET_FAST], r, alpha_fast)
        s[S_EMA_RET_SLOW] = _ema(s[S_EMA_RET_SLOW], r, alpha_slow)
        s[S_EMA_MID] = _ema(s[S_EMA_MID], mid, alpha_slow)
        s[S_VAR] = _ema(s[S_VAR], r * r, alpha_slow)
    tot = bid_sz + ask_sz
    s[S_IMBALANCE] = (bid_sz - ask_sz) / tot if tot > 0.0 else 0.0
    s[S_SPREAD] = (ask - bid) / mid * 1e4
    return 1


@njit(cache=True, _nrt=False)
def update_trade(state, i, px, sz, alpha_fast):
    """Fold one trade print: tick-rule sign against the mid (or the last trade)."""
    if not (px > 0.0 and sz > 0.0):
        return 0
    s = state[i]
    mid = s[S_MID]
    if mid > 0.0 and px != mid:
        sign = 1.0 if px > mid else -1.0
    elif px != s[S_LAST_TRADE_PX] and s[S_LAST_TRADE_PX] > 0.0:
        sign = 1.0 if px > s[S_LAST_TRADE_PX] else -1.0
    else:
        sign = s[S_LAST_SIGN]
    s[S_LAST_SIGN] = sign
    s[S_LAST_TRADE_PX] = px
    # Size-weighted sign, normalised by the EMA of trade size so it stays in [-1, 1]-ish.
    s[S_TRADE_SZ_EMA] = _ema(s[S_TRADE_SZ_EMA], sz, alpha_fast) if s[S_TRADE_SZ_EMA] > 0.0 else sz
    w = sz / (sz + s[S_TRADE_SZ_EMA])
    s[S_FLOW] = _ema(s[S_FLOW], sign * 2.0 * w, alpha_fast)
    return 1


@njit(cache=True, _nrt=False)
def write_features(state, i, out):
    """Write instrument ``i``'s current feature values into ``out[:N_FEATURES]``."""
    s = state[i]
    out[0] = s[S_RET]
    out[1] = s[S_EMA_RET_FAST]
    out[2] = s[S_EMA_RET_SLOW]
    out[3] = (s[S_MID] - s[S_EMA_MID]) / s[S_MID] * 1e4 if s[S_MID] > 0.0 else 0.0
    out[4] = s[S_IMBALANCE]
    out[5] = s[S_SPREAD]
    out[6] = s[S_FLOW]
    out[7] = np.sqrt(s[S_VAR])
    if s.shape[0] > N_STATE:
        for j in range(8):
            out[N_FEATURES + j] = s[M_OUT + j]


@njit(cache=True, _nrt=False)
def on_md_batch(md, n, state, alpha_fast, alpha_slow, quotes_only, out_rows, now):
    """The features stage's step: fold ``md[:n]`` and emit feature rows.

    A row is emitted for every accepted quote (and every trade unless
    ``quotes_only``).  Returns the number of rows written to ``out_rows``.
    """
    k = 0
    n_inst = state.shape[0]
    micro = state.shape[1] > N_STATE
    n_out = N_FEATURES + 8 if micro else N_FEATURES
    for j in range(n):
        e = md[j]
        i = e.instrument
        if i < 0 or i >= n_inst:
            continue
        if e.kind == MD_QUOTE:
            used = update_quote(state, i, e.bid_px, e.bid_sz, e.ask_px, e.ask_sz, alpha_fast, alpha_slow)
            if used and micro:
                update_micro_quote(state[i], e.bid_px, e.bid_sz, e.ask_px, e.ask_sz, alpha_fast)
        elif e.kind == MD_TRADE:
            used = update_trade(state, i, e.last_px, e.last_sz, alpha_fast)
            if used and micro:
                update_micro_trade(state[i], e.last_px, e.last_sz)
            if quotes_only:
                used = 0
        else:
            used = 0
        if used == 0 or state[i, S_SEEN] == 0.0 or e.flags & MD_F_WARMUP:  # warm-up: state only
            continue
        r = out_rows[k]
        r.t_origin = e.t_origin
        r.ts = now
        r.seq = e.seq
        r.instrument = i
        r.n = n_out
        r.mid = state[i, S_MID]
        write_features(state, i, r.x)
        k += 1
    return k


def quote_features_batch(md: np.ndarray, n_instruments: int, *, fast: float, slow: float,
                         quotes_only: bool = True, feature_set: str = "quote", **set_params) -> np.ndarray:
    """Batch form over a recorded md array: the rows the live stage would emit.

    ``set_params`` are :func:`new_state`'s keyword arguments (the micro set's windows).
    """
    from alphad.ipc.dtypes import FEATURE_DTYPE

    out = np.zeros(len(md), dtype=FEATURE_DTYPE)
    state = new_state(n_instruments, feature_set, **set_params)
    k = on_md_batch(md, len(md), state, 2.0 / (fast + 1.0), 2.0 / (slow + 1.0), quotes_only, out, 0)
    return out[:k]
