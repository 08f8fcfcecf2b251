"""Pre-trade risk gate: pure ``@njit(cache=True)`` checks over the risk arrays.

One call of :func:`check_order` runs the whole gate for one order and returns a reason code
from :mod:`alphad.daemon.risk.codes` (``OK`` = 0).  A denial is a code, never an exception; the
stage journals it and counts it by reason.  :func:`gate_target` first turns a target weight into
the order ``target - position - open orders`` and then runs :func:`check_order`.

Order of the checks (the first failing check decides the code)
--------------------------------------------------------------
1. trading state: HALTED denies everything (``DENY_HALTED``); REDUCING denies any order that is
   not reduce-only, i.e. would not move the worst-case position toward zero without crossing it
   (``DENY_REDUCING``);
2. kill switch: equity not positive (``DENY_LEVERAGE``); loss since the reference equity above
   the daily loss limit latches HALTED in ``control`` (``DENY_DAILY_LOSS``);
3. instrument known (``DENY_UNKNOWN_INSTRUMENT``) and tradable (``DENY_NOT_TRADABLE``);
4. trading hours of the instrument's session (``DENY_TRADING_HOURS``);
5. side +1/-1 and quantity positive (``DENY_BAD_QUANTITY``), on the lot grid
   (``DENY_LOT_SIZE``); limit price positive and on the tick grid (``DENY_TICK_SIZE``); a last
   trade to value and band against (``DENY_NO_REFERENCE_PRICE``);
6. maximum order quantity (``DENY_MAX_ORDER_QTY``) and notional (``DENY_MAX_ORDER_NOTIONAL``);
7. price band of a limit price around the last trade (``DENY_PRICE_BAND``);
8. short-sale permission, account and instrument (``DENY_SHORT_SALE``);
9. position limit in shares (``DENY_POSITION_SHARES``) and weight (``DENY_POSITION_WEIGHT``);
10. sector gross exposure vs its limit (``DENY_SECTOR_EXPOSURE``; above the warning level the
    order passes with ``WARN_SECTOR`` set in ``control[C_WARNINGS]``);
11. gross exposure (``DENY_GROSS_EXPOSURE``), net exposure (``DENY_NET_EXPOSURE``) and leverage
    (``DENY_LEVERAGE``);
12. order-rate throttle, a token bucket on the injected clock (``DENY_THROTTLE``).  Last, so only
    orders that pass everything else spend a token.

Exposure checks 8-11 use the *worst case* position ``pos + open_buy`` for a buy and
``pos - open_sell`` for a sell (every working order on that side fills), and deny only orders
that grow the measure: an order that reduces a position already over its limit (after a price
move) always passes them.

The gate does not register the order as working; the stage calls
:func:`alphad.daemon.risk.portfolio.on_order_sent` after a pass.

HALTED is left only by :func:`resume`.  While ``control[C_FLATTEN]`` is set (the drawdown KILL
step or ``ctl flatten``), the orders from :func:`flatten_orders` go through
:func:`check_flatten_order`, which admits reduce-only orders and nothing else.

All kill/halt state lives in ``control`` (int64, no Python objects), so the stage can place it in
the shared control block and a restarted risk stage inherits it.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.daemon.risk.codes import (
    A_EQUITY,
    A_GROSS,
    A_LOSS_REF,
    A_NET,
    A_TOKENS,
    B_EXPOSURE,
    B_LAST_PX,
    B_NET,
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POSITION,
    DENY_BAD_QUANTITY,
    DENY_DAILY_LOSS,
    DENY_GROSS_EXPOSURE,
    DENY_HALTED,
    DENY_LEVERAGE,
    DENY_LOT_SIZE,
    DENY_MAX_ORDER_NOTIONAL,
    DENY_MAX_ORDER_QTY,
    DENY_NET_EXPOSURE,
    DENY_NO_REFERENCE_PRICE,
    DENY_NOT_TRADABLE,
    DENY_POSITION_SHARES,
    DENY_POSITION_WEIGHT,
    DENY_PRICE_BAND,
    DENY_REDUCING,
    DENY_SECTOR_EXPOSURE,
    DENY_SHORT_SALE,
    DENY_THROTTLE,
    DENY_TICK_SIZE,
    DENY_TRADING_HOURS,
    DENY_UNKNOWN_INSTRUMENT,
    G_ALLOW_SHORT,
    G_DAILY_LOSS,
    G_MAX_GROSS,
    G_MAX_LEVERAGE,
    G_MAX_NET,
    G_THROTTLE_BURST,
    G_THROTTLE_RATE,
    L_KNOWN,
    L_LOT,
    L_MAX_ORDER_NOTIONAL,
    L_MAX_ORDER_QTY,
    L_MAX_POS_SHARES,
    L_MAX_POS_WEIGHT,
    L_PRICE_BAND,
    L_SECTOR,
    L_SESSION_CLOSE_S,
    L_SESSION_OPEN_S,
    L_SHORTABLE,
    L_TICK,
    L_TRADABLE,
    NO_ORDER,
    OK,
    SEC_EXPOSURE,
    SEC_LIMIT,
    SEC_WARN,
    WARN_SECTOR,
)
from alphad.ipc.control import (ACTIVE, C_EPOCH, C_FLATTEN, C_STATE, C_STATE_REASON, C_STATE_TS, C_THROTTLE_NS, C_WARNINGS, HALTED, REDUCING)
from alphad.kernels.grid import on_grid

# Relative slack on limit comparisons so a value computed to sit exactly on a limit passes.
_LIMIT_TOL = 1e-12


@njit(cache=True, _nrt=False)
def _over(value, limit):
    return value > limit * (1.0 + _LIMIT_TOL) + 1e-9


@njit(cache=True, _nrt=False)
def set_state(control, state, reason, now_ns):
    """Raise the trading state to ``state`` (never lowers it; :func:`resume` lowers).

    Returns True when the state changed.  ``reason`` is recorded in ``control[C_STATE_REASON]``.
    """
    if state <= control[C_STATE]:
        return False
    control[C_STATE] = state
    control[C_STATE_REASON] = reason
    control[C_STATE_TS] = now_ns
    control[C_EPOCH] += 1
    return True


@njit(cache=True, _nrt=False)
def resume(control, account, now_ns):
    """Back to ACTIVE: clears the state, the kill-switch latch and any flatten request.

    The daily loss limit is re-armed from the equity now (``A_LOSS_REF``): the operator has
    accepted the loss so far, and a further loss of the full limit trips the switch again.  The
    session roll (:func:`alphad.daemon.risk.portfolio.start_session`) resets the reference to the
    day-start equity.
    """
    control[C_STATE] = ACTIVE
    control[C_STATE_REASON] = 0
    control[C_STATE_TS] = now_ns
    control[C_FLATTEN] = 0
    control[C_EPOCH] += 1
    account[A_LOSS_REF] = account[A_EQUITY]


@njit(cache=True, _nrt=False)
def check_kill_switch(account_limits, account, control, now_ns):
    """Latch HALTED when the loss since ``A_LOSS_REF`` exceeds the daily loss limit.

    Called by :func:`check_order` and, so the switch trips without waiting for an order, by the
    stage after every mark.  Returns True when the limit is breached.
    """
    ref = account[A_LOSS_REF]
    loss = ref - account[A_EQUITY]
    if loss > account_limits[G_DAILY_LOSS] * ref:
        set_state(control, HALTED, DENY_DAILY_LOSS, now_ns)
        return True
    return False


@njit(cache=True, _nrt=False)
def check_order(inst, side, qty, limit_px, now_ns, limits, book, sectors, account_limits,
                account, control):
    """Run the full pre-trade gate for one order.

    Parameters
    ----------
    inst : int
        Instrument id (row of ``limits`` / ``book``).
    side : int
        +1 buy, -1 sell.
    qty : float
        Shares, > 0.
    limit_px : float
        Limit price in quote currency; NaN for a market order (valued at the last trade).
    now_ns : int
        Injected clock, ns since the Unix epoch (realtime, or the replay's simulated time).
    limits, book, sectors, account_limits, account, control : ndarray
        The risk arrays (layouts in :mod:`alphad.daemon.risk.codes`).  ``control`` (kill latch,
        warnings, throttle clock) and ``account[A_TOKENS]`` are written.

    Returns
    -------
    int
        ``OK`` or the ``DENY_*`` code of the first failing check (order in the module docstring).
    """
    control[C_WARNINGS] = 0
    n = limits.shape[0]
    in_range = inst >= 0 and inst < n
    # Worst-case position on the order's side before and after it (every working order fills).
    pre = 0.0
    post = 0.0
    if in_range:
        pos = book[inst, B_POSITION]
        if side > 0:
            pre = pos + book[inst, B_OPEN_BUY]
            post = pre + qty
        else:
            pre = pos - book[inst, B_OPEN_SELL]
            post = pre - qty

    # 1. trading state
    state = control[C_STATE]
    if state == HALTED:
        return DENY_HALTED
    if state == REDUCING and in_range:
        # Reduce-only: must move toward zero and not cross it.
        if (side > 0 and post > 0.0) or (side < 0 and post < 0.0) or not (qty > 0.0):
            return DENY_REDUCING

    # 2. kill switch
    equity = account[A_EQUITY]
    if not (equity > 0.0 and np.isfinite(equity)):
        return DENY_LEVERAGE
    if check_kill_switch(account_limits, account, control, now_ns):
        return DENY_DAILY_LOSS

    # 3. instrument
    if not in_range or limits[inst, L_KNOWN] != 1.0:
        return DENY_UNKNOWN_INSTRUMENT
    if limits[inst, L_TRADABLE] != 1.0:
        return DENY_NOT_TRADABLE

    # 4. trading hours (session bounds in epoch seconds, open inclusive, close exclusive)
    now_s = now_ns * 1e-9
    if not (now_s >= limits[inst, L_SESSION_OPEN_S] and now_s < limits[inst, L_SESSION_CLOSE_S]):
        return DENY_TRADING_HOURS

    # 5. quantity, lot, tick, reference price
    if (side != 1 and side != -1) or not (qty > 0.0 and np.isfinite(qty)):
        return DENY_BAD_QUANTITY
    if not on_grid(qty, limits[inst, L_LOT]):
        return DENY_LOT_SIZE
    is_limit = not np.isnan(limit_px)
    if is_limit and not (limit_px > 0.0 and np.isfinite(limit_px) and on_grid(limit_px, limits[inst, L_TICK])):
        return DENY_TICK_SIZE
    last = book[inst, B_LAST_PX]
    if not (last > 0.0):
        return DENY_NO_REFERENCE_PRICE
    px = limit_px if is_limit else last

    # 6. order size
    if _over(qty, limits[inst, L_MAX_ORDER_QTY]):
        return DENY_MAX_ORDER_QTY
    notional = qty * px
    if _over(notional, limits[inst, L_MAX_ORDER_NOTIONAL]):
        return DENY_MAX_ORDER_NOTIONAL

    # 7. price band
    if is_limit and _over(abs(limit_px / last - 1.0), limits[inst, L_PRICE_BAND]):
        return DENY_PRICE_BAND

    # 8. short sale: a sell that leaves the worst-case position short and more short than before
    if side < 0 and post < 0.0 and post < pre:
        if account_limits[G_ALLOW_SHORT] != 1.0 or limits[inst, L_SHORTABLE] != 1.0:
            return DENY_SHORT_SALE

    # 9. position limit (only orders that grow |worst-case position|)
    grows = abs(post) > abs(pre)
    if grows:
        if _over(abs(post), limits[inst, L_MAX_POS_SHARES]):
            return DENY_POSITION_SHARES
        if _over(abs(post) * px, limits[inst, L_MAX_POS_WEIGHT] * equity):
            return DENY_POSITION_WEIGHT

    # Committed exposure of this instrument after the order, at the order's price.
    pos = book[inst, B_POSITION]
    ob = book[inst, B_OPEN_BUY]
    os_ = book[inst, B_OPEN_SELL]
    if side > 0:
        ob += qty
    else:
        os_ += qty
    old_exp = book[inst, B_EXPOSURE]
    new_exp = max(abs(pos + ob), abs(pos - os_)) * px
    exp_grows = max(abs(pos + ob), abs(pos - os_)) > max(
        abs(pos + book[inst, B_OPEN_BUY]), abs(pos - book[inst, B_OPEN_SELL]))
    new_net_inst = (pos + ob - os_) * px

    # 10. sector exposure
    s = int(limits[inst, L_SECTOR])
    if s >= 0 and exp_grows:
        sec_post = sectors[s, SEC_EXPOSURE] - old_exp + new_exp
        if _over(sec_post, sectors[s, SEC_LIMIT] * equity):
            return DENY_SECTOR_EXPOSURE
        if sec_post > sectors[s, SEC_WARN] * equity:
            control[C_WARNINGS] |= WARN_SECTOR

    # 11. gross, net, leverage
    gross_post = account[A_GROSS] - old_exp + new_exp
    if exp_grows:
        if _over(gross_post, account_limits[G_MAX_GROSS]):
            return DENY_GROSS_EXPOSURE
    net_pre = account[A_NET]
    net_post = net_pre - book[inst, B_NET] + new_net_inst
    if abs(pos + ob - os_) > abs(pos + book[inst, B_OPEN_BUY] - book[inst, B_OPEN_SELL]):
        if _over(abs(net_post), account_limits[G_MAX_NET]):
            return DENY_NET_EXPOSURE
    if exp_grows and _over(gross_post, account_limits[G_MAX_LEVERAGE] * equity):
        return DENY_LEVERAGE

    # 12. throttle: token bucket refilled at G_THROTTLE_RATE per second up to G_THROTTLE_BURST
    burst = account_limits[G_THROTTLE_BURST]
    last_ns = control[C_THROTTLE_NS]
    if last_ns < 0:
        tokens = burst
    else:
        dt = now_ns - last_ns
        if dt < 0:
            dt = 0  # a clock stepped back refills nothing
        tokens = min(burst, account[A_TOKENS] + dt * 1e-9 * account_limits[G_THROTTLE_RATE])
    control[C_THROTTLE_NS] = now_ns
    if tokens < 1.0:
        account[A_TOKENS] = tokens
        return DENY_THROTTLE
    account[A_TOKENS] = tokens - 1.0
    return OK


@njit(cache=True, _nrt=False)
def order_from_target(inst, target_weight, ref_px, limits, book, account, out):
    """Order that takes the worst-case position to a target weight.

    ``target_shares = trunc(target_weight x equity / ref_px / lot) x lot`` (toward zero, so the
    target is never overshot), then ``order = target_shares - position - (open_buy - open_sell)``.

    Parameters
    ----------
    target_weight : float
        Signed fraction of equity.
    ref_px : float
        Price the weight is converted at, quote currency (the signal's ``ref_px``).
    out : float64 array, length >= 2
        Receives ``out[0]`` = side (+1/-1, 0 when nothing to do) and ``out[1]`` = shares (>= 0).

    Returns
    -------
    int
        ``OK``, ``NO_ORDER`` when the order rounds to zero lots, ``DENY_UNKNOWN_INSTRUMENT`` or
        ``DENY_NO_REFERENCE_PRICE`` (bad ``ref_px``/equity/weight).
    """
    out[0] = 0.0
    out[1] = 0.0
    if inst < 0 or inst >= limits.shape[0] or limits[inst, L_KNOWN] != 1.0:
        return DENY_UNKNOWN_INSTRUMENT
    equity = account[A_EQUITY]
    if not (ref_px > 0.0 and np.isfinite(ref_px) and np.isfinite(target_weight) and np.isfinite(equity)):
        return DENY_NO_REFERENCE_PRICE
    lot = limits[inst, L_LOT]
    target = np.trunc(target_weight * equity / ref_px / lot) * lot
    working = book[inst, B_POSITION] + book[inst, B_OPEN_BUY] - book[inst, B_OPEN_SELL]
    d = target - working
    q = np.round(abs(d) / lot) * lot
    if q <= 0.0:
        return NO_ORDER
    out[0] = 1.0 if d > 0.0 else -1.0
    out[1] = q
    return OK


@njit(cache=True, _nrt=False)
def gate_target(inst, target_weight, ref_px, limit_px, now_ns, limits, book, sectors,
                account_limits, account, control, out):
    """Target weight to order, then the full gate: :func:`order_from_target` + :func:`check_order`.

    ``out[0]``/``out[1]`` receive the order's side and shares (also on a denial, for the journal).

    Returns
    -------
    int
        ``OK``, ``NO_ORDER`` or a ``DENY_*`` code.
    """
    code = order_from_target(inst, target_weight, ref_px, limits, book, account, out)
    if code != OK:
        return code
    return check_order(inst, int(out[0]), out[1], limit_px, now_ns, limits, book, sectors,
                       account_limits, account, control)


@njit(cache=True)
def check_batch(insts, sides, qtys, limit_pxs, now_ns, limits, book, sectors, account_limits,
                account, control, codes):
    """Gate a batch of orders in one call (``codes[i]`` receives order i's code).

    Orders are checked in sequence against the same state, as separate calls would be (the
    throttle spends a token per pass).  Returns the number of passes.
    """
    passed = 0
    for i in range(insts.shape[0]):
        c = check_order(insts[i], sides[i], qtys[i], limit_pxs[i], now_ns[i], limits, book,
                        sectors, account_limits, account, control)
        codes[i] = c
        if c == OK:
            passed += 1
    return passed


@njit(cache=True, _nrt=False)
def check_flatten_order(inst, side, qty, limits, book, control):
    """Gate for the orders of a flatten (KILL step, ``ctl flatten``): the one path past HALTED.

    Passes only while ``control[C_FLATTEN]`` is set, for a known instrument and an order that
    moves the worst-case position toward zero without crossing it.  No lot, limit, band, hours or
    throttle check applies: getting flat must not be blocked by them (an odd lot left by a
    partial fill must still close).

    Returns
    -------
    int
        ``OK``, ``DENY_HALTED`` (no flatten requested), ``DENY_UNKNOWN_INSTRUMENT``,
        ``DENY_BAD_QUANTITY`` or ``DENY_REDUCING`` (not reduce-only).
    """
    if control[C_FLATTEN] != 1:
        return DENY_HALTED
    if inst < 0 or inst >= limits.shape[0] or limits[inst, L_KNOWN] != 1.0:
        return DENY_UNKNOWN_INSTRUMENT
    if (side != 1 and side != -1) or not (qty > 0.0 and np.isfinite(qty)):
        return DENY_BAD_QUANTITY
    pos = book[inst, B_POSITION]
    if side > 0:
        post = pos + book[inst, B_OPEN_BUY] + qty
        if pos >= 0.0 or post > 0.0:
            return DENY_REDUCING
    else:
        post = pos - book[inst, B_OPEN_SELL] - qty
        if pos <= 0.0 or post < 0.0:
            return DENY_REDUCING
    return OK


@njit(cache=True, _nrt=False)
def flatten_orders(limits, book, out_inst, out_side, out_qty):
    """Orders that take every position to zero, net of working orders already closing it.

    Writes ``out_inst[k]``, ``out_side[k]`` (+1/-1), ``out_qty[k]`` (shares) and returns the
    count.  The stage sends them through :func:`check_flatten_order`; it should cancel working
    orders that add to positions first (they are not counted as closing).
    """
    k = 0
    for i in range(limits.shape[0]):
        pos = book[i, B_POSITION]
        if pos > 0.0:
            q = pos - book[i, B_OPEN_SELL]
            side = -1
        elif pos < 0.0:
            q = -pos - book[i, B_OPEN_BUY]
            side = 1
        else:
            continue
        if q > 0.0:
            out_inst[k] = i
            out_side[k] = side
            out_qty[k] = q
            k += 1
    return k
