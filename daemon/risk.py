"""Risk stage core: positions from exec reports, the pre-trade gate, orders out.

All state is in two float64 arrays so the gate is one ``@njit`` call:

``inst[i, :]``  per instrument: position, average price, open (unfilled) signed
                quantity, mark, lot size, tick size, tradable flag.
``acct[:]``     account and limits: cash, realised PnL, fees, initial equity,
                max order notional, max order quantity, max position notional,
                minimum order notional.

The trading state is read from the shared control block on every signal, so
``alphad ctl halt`` stops new orders at once and stays in force across a
restart of this stage.  A denial is an event: it is counted per reason code in
the metrics block (and journaled by the supervisor); it never raises.

Gate order (first failing check wins; codes below):
1. trading state HALTED → ``DENY_HALTED``
2. instrument unknown or not tradable → ``DENY_INSTRUMENT``
2b. trading state REDUCING and the order grows |position| → ``DENY_REDUCING``
3. no mark to price the order → ``DENY_NO_PRICE``
4. quantity not positive after rounding to the lot grid → ``DENY_QUANTITY``
5. quantity above ``max_order_qty`` → ``DENY_MAX_QTY``
6. notional above ``max_order_notional`` → ``DENY_MAX_NOTIONAL``
7. resulting |position| notional above ``max_position_notional`` → ``DENY_POSITION_LIMIT``
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.ipc import metrics as mx
from alphad.ipc.control import HALTED, REDUCING, W_STATE, STAGE_INDEX
from alphad.ipc.dtypes import (EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, MD_QUOTE, MD_TRADE,
                               ORDER_MARKET)

# -- reason codes (0 = passed) ------------------------------------------------------
OK = 0
DENY_HALTED = 1
DENY_REDUCING = 2
DENY_INSTRUMENT = 3
DENY_NO_PRICE = 4
DENY_QUANTITY = 5
DENY_MAX_QTY = 6
DENY_MAX_NOTIONAL = 7
DENY_POSITION_LIMIT = 8
REASON_NAMES = {
    DENY_HALTED: "halted", DENY_REDUCING: "reducing", DENY_INSTRUMENT: "instrument",
    DENY_NO_PRICE: "no_price", DENY_QUANTITY: "quantity", DENY_MAX_QTY: "max_order_qty",
    DENY_MAX_NOTIONAL: "max_order_notional", DENY_POSITION_LIMIT: "position_limit",
}

# inst columns
I_POS, I_AVG_PX, I_OPEN, I_MARK, I_LOT, I_TICK, I_TRADABLE = range(7)
N_INST_COLS = 7
# acct entries
A_CASH, A_REALIZED, A_FEES, A_EQUITY0, A_MAX_ORDER_NOTIONAL, A_MAX_ORDER_QTY, A_MAX_POS_NOTIONAL, A_MIN_NOTIONAL = range(8)
N_ACCT = 8

RISK = STAGE_INDEX["risk"]


@njit(cache=True)
def check_order(inst, acct, state, i, qty_signed):
    """Run the gate for one order of ``qty_signed`` (already on the lot grid). Returns a code."""
    if state == HALTED:
        return DENY_HALTED
    if i < 0 or i >= inst.shape[0] or inst[i, I_TRADABLE] == 0.0:
        return DENY_INSTRUMENT
    pos = inst[i, I_POS] + inst[i, I_OPEN]
    if state == REDUCING and abs(pos + qty_signed) > abs(pos):
        return DENY_REDUCING
    px = inst[i, I_MARK]
    if not px > 0.0:
        return DENY_NO_PRICE
    q = abs(qty_signed)
    if not q > 0.0:
        return DENY_QUANTITY
    if q > acct[A_MAX_ORDER_QTY]:
        return DENY_MAX_QTY
    if q * px > acct[A_MAX_ORDER_NOTIONAL]:
        return DENY_MAX_NOTIONAL
    if abs(pos + qty_signed) * px > acct[A_MAX_POS_NOTIONAL]:
        return DENY_POSITION_LIMIT
    return OK


@njit(cache=True)
def on_signals(sigs, n, inst, acct, ctl, m, out, now):
    """Turn target weights into orders; returns the number of orders written to ``out``."""
    state = ctl[W_STATE]
    k = 0
    equity0 = acct[A_EQUITY0]
    for j in range(n):
        s = sigs[j]
        i = s.instrument
        if i < 0 or i >= inst.shape[0]:
            mx.count_denial(m, RISK, DENY_INSTRUMENT)
            continue
        if s.ref_px > 0.0:
            inst[i, I_MARK] = s.ref_px
        px = inst[i, I_MARK]
        if not px > 0.0:
            mx.count_denial(m, RISK, DENY_NO_PRICE)
            continue
        target_qty = s.target_weight * equity0 / px
        lot = inst[i, I_LOT]
        delta = np.round((target_qty - inst[i, I_POS] - inst[i, I_OPEN]) / lot) * lot
        if abs(delta) * px < acct[A_MIN_NOTIONAL]:
            continue  # already at target: nothing worth sending, not a denial
        if inst[i, I_OPEN] != 0.0:
            continue  # one working order per instrument; the next signal re-targets
        code = check_order(inst, acct, state, i, delta)
        if code != OK:
            mx.count_denial(m, RISK, code)
            continue
        o = out[k]
        o.t_origin = s.t_origin
        o.ts = now
        # Deterministic id from the decision (md seq of the triggering event and the
        # instrument): a replay or a restart re-derives the same id, never a new order.
        o.client_order_id = (s.seq << 8) | i
        o.instrument = i
        o.side = 1 if delta > 0.0 else -1
        o.kind = ORDER_MARKET
        o.qty = abs(delta)
        o.limit_px = np.nan
        inst[i, I_OPEN] += delta
        k += 1
    if k:
        mx.count(m, RISK, mx.C_ORDERS, k)
    return k


@njit(cache=True)
def on_exec(reports, n, inst, acct, m):
    """Apply exec reports: positions, average price, cash, realised PnL, fees."""
    fills = 0
    for j in range(n):
        r = reports[j]
        i = r.instrument
        if i < 0 or i >= inst.shape[0]:
            continue
        side = float(r.side)
        if r.status == EXEC_FILL or r.status == EXEC_PARTIAL:
            q = r.fill_qty * side
            pos = inst[i, I_POS]
            px = r.fill_px
            if pos == 0.0 or (pos > 0.0) == (q > 0.0):  # opening or adding
                inst[i, I_AVG_PX] = (inst[i, I_AVG_PX] * abs(pos) + px * abs(q)) / (abs(pos) + abs(q))
            else:  # reducing, maybe flipping
                closed = min(abs(q), abs(pos))
                acct[A_REALIZED] += closed * (px - inst[i, I_AVG_PX]) * (1.0 if pos > 0.0 else -1.0)
                if abs(q) > abs(pos):
                    inst[i, I_AVG_PX] = px
                elif abs(q) == abs(pos):
                    inst[i, I_AVG_PX] = 0.0
            inst[i, I_POS] = pos + q
            inst[i, I_OPEN] -= q
            acct[A_CASH] -= q * px + r.fee
            acct[A_FEES] += r.fee
            fills += 1
            if r.status == EXEC_FILL:
                inst[i, I_OPEN] = 0.0
        elif r.status == EXEC_REJECT or r.status == EXEC_CANCELED:
            inst[i, I_OPEN] = 0.0
    if fills:
        mx.count(m, RISK, mx.C_FILLS, fills)
    return fills


@njit(cache=True)
def on_marks(md, n, inst):
    for j in range(n):
        e = md[j]
        i = e.instrument
        if i < 0 or i >= inst.shape[0]:
            continue
        if e.kind == MD_QUOTE and e.bid_px > 0.0 and e.ask_px > e.bid_px:
            inst[i, I_MARK] = 0.5 * (e.bid_px + e.ask_px)
        elif e.kind == MD_TRADE and e.last_px > 0.0:
            inst[i, I_MARK] = e.last_px


@njit(cache=True)
def publish_gauges(inst, acct, gauges):
    unreal = 0.0
    gross = 0.0
    value = 0.0
    for i in range(inst.shape[0]):
        pos = inst[i, I_POS]
        if pos != 0.0 and inst[i, I_MARK] > 0.0:
            unreal += pos * (inst[i, I_MARK] - inst[i, I_AVG_PX])
            gross += abs(pos) * inst[i, I_MARK]
            value += pos * inst[i, I_MARK]
    gauges[mx.G_REALIZED_PNL] = acct[A_REALIZED]
    gauges[mx.G_UNREALIZED_PNL] = unreal
    gauges[mx.G_EQUITY] = acct[A_CASH] + value
    gauges[mx.G_GROSS_EXPOSURE] = gross


class RiskCore:
    """Owns the risk state arrays; the shell calls the njit steps with them."""

    def __init__(self, universe, risk_cfg, *, inst=None, acct=None, fresh=True):
        n = len(universe)
        self.inst = inst if inst is not None else np.zeros((n, N_INST_COLS), dtype=np.float64)
        self.acct = acct if acct is not None else np.zeros(N_ACCT, dtype=np.float64)
        if not fresh:
            return  # adopted from a previous incarnation: positions and cash are the truth
        for ins in universe:
            self.inst[ins.id, I_LOT] = ins.lot_size
            self.inst[ins.id, I_TICK] = ins.tick_size
            self.inst[ins.id, I_TRADABLE] = 1.0
        self.acct[A_CASH] = risk_cfg.initial_equity
        self.acct[A_EQUITY0] = risk_cfg.initial_equity
        self.acct[A_MAX_ORDER_NOTIONAL] = risk_cfg.max_order_notional
        self.acct[A_MAX_ORDER_QTY] = risk_cfg.max_order_qty
        self.acct[A_MAX_POS_NOTIONAL] = risk_cfg.max_position_weight * risk_cfg.initial_equity
        self.acct[A_MIN_NOTIONAL] = risk_cfg.min_order_notional
