"""Microstructure features over quotes, depth and trades, with OHLCV fallbacks.

Stateless formulas are plain ``@njit`` functions; rolling ones keep a float64 state array
(``s[0]`` = updates so far) built by ``*_new``, like :mod:`alphad.kernels.indicators`.
Sizes are base units, prices quote currency.  NaN marks "not defined yet".

OHLCV fallbacks (when only bars exist):

* imbalance -> :func:`bar_imbalance` ``(c - o) / (h - l)``: where the bar closed within its
  range, the usual bar proxy for buy/sell pressure (0 for a zero-range bar);
* trade sign -> :func:`tick_rule_update` on closes;
* VPIN -> bulk volume classification: :func:`bvc_buy_volume` splits a bar's volume by
  ``Phi(dp / sigma)`` (Easley, Lopez de Prado, O'Hara 2012) and feeds :func:`vpin_update`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "l1_imbalance", "depth_imbalance", "microprice", "spread_bps", "ofi_new", "ofi_update",
    "imbalance_stats_new", "imbalance_stats_update", "tick_rule_new", "tick_rule_update",
    "vpin_new", "vpin_update", "bar_imbalance", "bvc_buy_volume",
]


@njit(cache=True)
def l1_imbalance(bid_sz, ask_sz):
    """``(bid - ask) / (bid + ask)`` in [-1, 1]; 0 when both sizes are 0."""
    t = bid_sz + ask_sz
    return (bid_sz - ask_sz) / t if t > 0.0 else 0.0


@njit(cache=True)
def depth_imbalance(bid_sz, ask_sz, decay):
    """Multi-level imbalance with weights ``exp(-decay * level)`` (level 0 = touch).

    ``bid_sz``/``ask_sz``: sizes by level (missing levels 0).  ``decay = 0`` weights all
    levels equally; large ``decay`` tends to :func:`l1_imbalance`.
    """
    b = 0.0
    a = 0.0
    for i in range(min(bid_sz.shape[0], ask_sz.shape[0])):
        w = math.exp(-decay * i)
        b += w * bid_sz[i]
        a += w * ask_sz[i]
    return l1_imbalance(b, a)


@njit(cache=True, _nrt=False)
def microprice(bid_px, bid_sz, ask_px, ask_sz):
    """Size-weighted mid ``(bid_px * ask_sz + ask_px * bid_sz) / (bid_sz + ask_sz)``."""
    t = bid_sz + ask_sz
    if t <= 0.0:
        return 0.5 * (bid_px + ask_px)
    return (bid_px * ask_sz + ask_px * bid_sz) / t


@njit(cache=True)
def spread_bps(bid_px, ask_px):
    """Quoted spread in basis points of the mid."""
    return 1e4 * (ask_px - bid_px) / (0.5 * (ask_px + bid_px))


# -- order-flow imbalance (Cont, Kukanov, Stoikov 2014) --------------------------------------
# state: [count, bid_px, bid_sz, ask_px, ask_sz]


def ofi_new() -> np.ndarray:
    """State for best-level order-flow imbalance."""
    return np.zeros(5)


@njit(cache=True, _nrt=False)
def ofi_update(s, bid_px, bid_sz, ask_px, ask_sz):
    """Add one top-of-book update; return its OFI contribution ``e_n`` (NaN for the first).

    ``e_n = 1[Pb >= Pb'] qb - 1[Pb <= Pb'] qb' - 1[Pa <= Pa'] qa + 1[Pa >= Pa'] qa'``
    (primes = previous update).  Positive = net buying pressure, base units.
    """
    first = s[0] == 0.0
    s[0] += 1.0
    pb, qb, pa, qa = s[1], s[2], s[3], s[4]
    s[1], s[2], s[3], s[4] = bid_px, bid_sz, ask_px, ask_sz
    if first:
        return np.nan
    e = 0.0
    if bid_px >= pb:
        e += bid_sz
    if bid_px <= pb:
        e -= qb
    if ask_px <= pa:
        e -= ask_sz
    if ask_px >= pa:
        e += qa
    return e


# -- rolling imbalance mean / momentum / persistence, velocity / acceleration ----------------
# state: [count, n, prev, prev_vel, buf(n)]


def imbalance_stats_new(n: int = 50) -> np.ndarray:
    """State for rolling statistics of an imbalance series over ``n`` updates (n >= 3)."""
    if n < 3:
        raise ValueError(f"imbalance_stats n: expected >= 3, was {n}")
    s = np.zeros(4 + n)
    s[1] = n
    return s


@njit(cache=True, _nrt=False)
def imbalance_stats_update(s, x):
    """Add one imbalance value; return ``(mean, momentum, persistence, velocity, acceleration)``.

    * mean: window mean (NaN until ``n`` values);
    * momentum: ``x - mean``;
    * persistence: lag-1 autocorrelation in the window (0 for a flat window);
    * velocity: ``x_t - x_{t-1}``; acceleration: ``v_t - v_{t-1}`` (NaN until defined).
    """
    c = int(s[0])
    n = int(s[1])
    s[0] = c + 1
    vel = x - s[2] if c >= 1 else np.nan
    acc = vel - s[3] if c >= 2 else np.nan
    s[2] = x
    s[3] = vel
    s[4 + c % n] = x
    if c < n - 1:
        return np.nan, np.nan, np.nan, vel, acc
    m = 0.0
    for j in range(n):
        m += s[4 + j]
    m /= n
    den = 0.0
    num = 0.0
    start = (c + 1) % n  # oldest
    prev = s[4 + start] - m
    den += prev * prev
    for j in range(1, n):
        cur = s[4 + (start + j) % n] - m
        num += cur * prev
        den += cur * cur
        prev = cur
    rho = num / den if den > 0.0 else 0.0
    return m, x - m, rho, vel, acc


# -- trade sign (tick rule) ------------------------------------------------------------------
# state: [count, prev_px, prev_sign]


def tick_rule_new() -> np.ndarray:
    return np.zeros(3)


@njit(cache=True)
def tick_rule_update(s, px):
    """Trade sign by the tick rule: +1 uptick, -1 downtick, zero tick repeats the last sign.

    0 until the first non-zero tick.
    """
    first = s[0] == 0.0
    s[0] += 1.0
    if not first:
        if px > s[1]:
            s[2] = 1.0
        elif px < s[1]:
            s[2] = -1.0
    s[1] = px
    return int(s[2])


# -- VPIN over volume buckets ----------------------------------------------------------------
# state: [buckets_done, bucket_volume, n, cur_buy, cur_sell, buf(n)]


def vpin_new(bucket_volume: float, n_buckets: int = 50) -> np.ndarray:
    """State for VPIN: mean ``|buy - sell| / V`` over the last ``n_buckets`` full buckets of volume V."""
    if not bucket_volume > 0:
        raise ValueError(f"vpin bucket_volume: expected > 0, was {bucket_volume}")
    if n_buckets < 1:
        raise ValueError(f"vpin n_buckets: expected >= 1, was {n_buckets}")
    s = np.zeros(5 + n_buckets)
    s[1] = bucket_volume
    s[2] = n_buckets
    return s


@njit(cache=True, _nrt=False)
def vpin_update(s, buy_vol, sell_vol):
    """Add classified volume (a trade, or a bar split by BVC); return the current VPIN.

    Volume that overflows a bucket is split pro rata into the next ones, so a large trade
    can close several buckets.  NaN until ``n_buckets`` buckets are complete.
    """
    V = s[1]
    n = int(s[2])
    total = buy_vol + sell_vol
    if total > 0.0:
        fb = buy_vol / total
        rem = total
        while rem > 0.0:
            room = V - (s[3] + s[4])
            take = rem if rem < room else room
            s[3] += take * fb
            s[4] += take * (1.0 - fb)
            rem -= take
            if take >= room:
                k = int(s[0])
                s[5 + k % n] = abs(s[3] - s[4]) / V
                s[0] = k + 1
                s[3] = 0.0
                s[4] = 0.0
    if s[0] < n:
        return np.nan
    acc = 0.0
    for j in range(n):
        acc += s[5 + j]
    return acc / n


# -- OHLCV fallbacks -------------------------------------------------------------------------


@njit(cache=True)
def bar_imbalance(o, h, l, c):
    """Bar proxy for imbalance: ``(c - o) / (h - l)`` in [-1, 1]; 0 for a zero-range bar."""
    r = h - l
    return (c - o) / r if r > 0.0 else 0.0


@njit(cache=True)
def bvc_buy_volume(volume, dp, sigma):
    """Bulk volume classification: buy volume ``volume * Phi(dp / sigma)``.

    ``dp`` the bar's price change, ``sigma`` the std of bar price changes (same units).
    """
    if sigma <= 0.0:
        return 0.5 * volume
    return volume * 0.5 * (1.0 + math.erf(dp / (sigma * math.sqrt(2.0))))
