"""Sector rebalancer: trim orders when a sector's exposure exceeds its limit.

Prices move positions past limits the gate cannot stop (the gate only denies orders).  When a
sector's committed gross exposure is above its limit, :func:`trim_sector` proposes reduce-only
orders that bring it back to ``limit - target_buffer`` (fractions of equity):

* ``largest_first``: trim the largest position first, then the next, until the excess is gone;
* ``pro_rata``: every position gives up the same fraction of its value.

Trims are rounded *up* to the lot (so the sector really ends below the target) but never past
the position; a trim worth less than ``min_trim_value`` is not sent; the value trimmed per day is
capped at ``daily_turnover_cap x equity`` (the excess is then trimmed only partly); and a sector
is not trimmed again within ``cooldown`` of its last trim.

The proposed orders go through the pre-trade gate like any other order.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.daemon.risk.codes import B_POSITION, L_LOT, L_SECTOR, SEC_EXPOSURE, SEC_LIMIT
from alphad.daemon.risk.portfolio import mark_price

#: Trim orders were written (all of the excess).
REB_TRIMMED = 0
#: Sector within its limit: nothing to do.
REB_WITHIN_LIMIT = 1
#: Sector trimmed within the cooldown: nothing proposed.
REB_COOLDOWN = 2
#: Daily turnover cap already used up: nothing proposed.
REB_TURNOVER_CAP = 3
#: Trim orders were written but cover only part of the excess (turnover cap or min trim value).
REB_PARTIAL = 4
REB_NAMES = ("trimmed", "within_limit", "cooldown", "turnover_cap", "partial")

#: ``params`` columns (float64).
R_METHOD = 0          # 0 largest-first, 1 pro-rata
R_TARGET_BUFFER = 1   # fraction of equity
R_MIN_TRIM_VALUE = 2  # quote currency
R_TURNOVER_CAP = 3    # fraction of equity per day
R_COOLDOWN_NS = 4     # ns
N_REB_PARAMS = 5
METHOD_LARGEST_FIRST = 0
METHOD_PRO_RATA = 1


@njit(cache=True)
def trim_sector(s, now_ns, equity, limits, book, sectors, last_trim_ns, turnover, params,
                out_inst, out_qty):
    """Propose trim orders for sector ``s``.

    Parameters
    ----------
    s : int
        Sector index.
    now_ns : int
        Injected clock, ns.
    equity : float
        Account equity, quote currency.
    limits, book, sectors : ndarray
        Risk arrays (read only).
    last_trim_ns : int64 ``(n_sectors,)``
        Time of each sector's last trim (state; written).  Initialise to a large negative value.
    turnover : float64 ``(1,)``
        Value trimmed today, quote currency (state; written; zero it at the session roll).
    params : float64 ``(N_REB_PARAMS,)``
        From :func:`rebalancer_params`.
    out_inst, out_qty : int64 / float64 arrays of length >= n_instruments
        Receive the instrument and the signed quantity (shares; negative sells a long) of each
        proposed order.

    Returns
    -------
    (code, n) : (int, int)
        ``REB_*`` code and the number of orders written.
    """
    limit = sectors[s, SEC_LIMIT] * equity
    exposure = sectors[s, SEC_EXPOSURE]
    if not (exposure > limit):
        return REB_WITHIN_LIMIT, 0
    if now_ns - last_trim_ns[s] < params[R_COOLDOWN_NS]:
        return REB_COOLDOWN, 0
    allowed = params[R_TURNOVER_CAP] * equity - turnover[0]
    if allowed <= 0.0:
        return REB_TURNOVER_CAP, 0
    excess = exposure - (sectors[s, SEC_LIMIT] - params[R_TARGET_BUFFER]) * equity
    to_trim = min(excess, allowed)
    partial = to_trim < excess

    n_inst = limits.shape[0]
    idx = np.empty(n_inst, np.int64)
    val = np.empty(n_inst)
    m = 0
    total = 0.0
    for i in range(n_inst):
        if int(limits[i, L_SECTOR]) == s and book[i, B_POSITION] != 0.0:
            v = abs(book[i, B_POSITION]) * mark_price(book, i)
            if v > 0.0:
                idx[m] = i
                val[m] = v
                total += v
                m += 1
    if m == 0:
        return REB_WITHIN_LIMIT, 0
    order = np.argsort(-val[:m])
    remaining = to_trim
    k = 0
    for r in range(m):
        j = order[r]
        i = idx[j]
        if params[R_METHOD] == METHOD_PRO_RATA:
            want = to_trim * val[j] / total
        else:
            if remaining <= 0.0:
                break
            want = min(val[j], remaining)
        px = mark_price(book, i)
        lot = limits[i, L_LOT]
        pos = book[i, B_POSITION]
        q = min(abs(pos), np.ceil(want / px / lot - 1e-9) * lot)
        # Rounding up to the lot must not break the turnover cap.
        q = min(q, np.floor((allowed - (to_trim - remaining)) / px / lot + 1e-9) * lot)
        value = q * px
        if q <= 0.0 or value < params[R_MIN_TRIM_VALUE]:
            partial = True
            continue
        out_inst[k] = i
        out_qty[k] = -q if pos > 0.0 else q
        k += 1
        remaining -= value
        turnover[0] += value
    if k > 0:
        last_trim_ns[s] = now_ns
    elif to_trim < excess:
        return REB_TURNOVER_CAP, 0
    if partial or (params[R_METHOD] != METHOD_PRO_RATA and remaining > 1e-6 * max(1.0, to_trim)):
        return REB_PARTIAL, k
    return REB_TRIMMED, k


def rebalancer_params(cfg) -> np.ndarray:
    """Parameter vector for :func:`trim_sector` from a ``RebalancerConfig``."""
    p = np.zeros(N_REB_PARAMS, np.float64)
    p[R_METHOD] = METHOD_PRO_RATA if cfg.method == "pro_rata" else METHOD_LARGEST_FIRST
    p[R_TARGET_BUFFER] = cfg.target_buffer
    p[R_MIN_TRIM_VALUE] = cfg.min_trim_value
    p[R_TURNOVER_CAP] = cfg.daily_turnover_cap
    p[R_COOLDOWN_NS] = cfg.cooldown_s * 1e9
    return p
