"""Router stage core with the paper venue (the embedded default's venue adapter).

Tick-to-trade ends here: the router stamps ``now - t_origin`` into the
``ROW_T2T`` latency row at the instant it hands an order to the venue adapter.

Paper venue: an order fills in full at the latest quote's touch (buy at the
ask, sell at the bid) plus ``slippage_bps``, after ``latency_ns`` on the
injected clock (0 fills within the same call), paying ``fee_bps`` of notional.
It rejects orders for unknown instruments or with no quote yet.

Idempotency: client order ids are derived from the decision that caused them
and increase per instrument; the router drops an id it has already seen
(``last_cid``; counted as an error, no exec report), so a replayed ring record
or a restarted risk stage can never send the same order twice.  ``state`` lives in shared memory, so that memory
survives a restart of this stage.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.ipc import metrics as mx
from alphad.ipc.control import STAGE_INDEX
from alphad.ipc.dtypes import EXEC_FILL, EXEC_REJECT, MD_QUOTE, ORDER_DTYPE

ROUTER = STAGE_INDEX["router"]

# per-instrument state columns
Q_BID, Q_BID_SZ, Q_ASK, Q_ASK_SZ, Q_LAST_CID = range(5)
N_Q = 5

# reject reasons in exec.reason
REJECT_UNKNOWN_INSTRUMENT = 1
REJECT_NO_QUOTE = 2
REJECT_QUEUE_FULL = 4

PENDING_CAP = 1024


@njit(cache=True)
def on_quotes(md, n, q):
    for j in range(n):
        e = md[j]
        i = e.instrument
        if e.kind == MD_QUOTE and 0 <= i < q.shape[0] and e.bid_px > 0.0 and e.ask_px > e.bid_px:
            q[i, Q_BID] = e.bid_px
            q[i, Q_BID_SZ] = e.bid_sz
            q[i, Q_ASK] = e.ask_px
            q[i, Q_ASK_SZ] = e.ask_sz


@njit(cache=True)
def _reject(o, out, reason, now):
    """Write a reject of order ``o`` with ``reason`` into ``out``; returns 1."""
    out.t_origin = o.t_origin
    out.ts = now
    out.client_order_id = o.client_order_id
    out.instrument = o.instrument
    out.side = o.side
    out.status = EXEC_REJECT
    out.reason = reason
    out.fee = 0.0
    out.fill_qty = 0.0
    out.fill_px = 0.0
    out.leaves_qty = 0.0
    return 1


@njit(cache=True)
def _fill(o, q, fee_bps, slippage_bps, out, now):
    """Write the venue's answer to order ``o`` into ``out``; returns 1."""
    i = o.instrument
    if i < 0 or i >= q.shape[0]:
        return _reject(o, out, REJECT_UNKNOWN_INSTRUMENT, now)
    px = q[i, Q_ASK] if o.side > 0 else q[i, Q_BID]
    if not px > 0.0:
        return _reject(o, out, REJECT_NO_QUOTE, now)
    if o.limit_px == o.limit_px:  # a limit order must be marketable
        if (o.side > 0 and o.limit_px < px) or (o.side < 0 and o.limit_px > px):
            return _reject(o, out, REJECT_NO_QUOTE, now)
    out.t_origin = o.t_origin
    out.ts = now
    out.client_order_id = o.client_order_id
    out.instrument = i
    out.side = o.side
    out.reason = 0
    out.leaves_qty = 0.0
    px = px * (1.0 + o.side * slippage_bps * 1e-4)
    out.status = EXEC_FILL
    out.fill_qty = o.qty
    out.fill_px = px
    out.fee = o.qty * px * fee_bps * 1e-4
    return 1


@njit(cache=True)
def on_orders(orders, n, q, pending, pend_due, pend_count, latency_ns, fee_bps, slippage_bps, m, out, now):
    """Hand orders to the paper venue; returns the number of exec reports in ``out``.

    With ``latency_ns > 0`` accepted orders wait in ``pending`` (a bounded queue) and
    :func:`poll_pending` fills them when due.
    """
    k = 0
    sent = 0
    for j in range(n):
        o = orders[j]
        mx.observe(m, mx.ROW_T2T, now - o.t_origin)  # tick-to-trade: handed to the venue adapter
        i = o.instrument
        if 0 <= i < q.shape[0]:
            if o.client_order_id <= q[i, Q_LAST_CID]:
                # Seen before (a replayed ring record): drop it.  No exec report: a reject
                # under the same id would end the original order's book entry at risk.
                mx.count(m, ROUTER, mx.C_ERRORS, 1)
                continue
            q[i, Q_LAST_CID] = o.client_order_id
        sent += 1
        if latency_ns <= 0:
            k += _fill(o, q, fee_bps, slippage_bps, out[k], now)
        elif pend_count[0] < pending.shape[0]:
            pending[pend_count[0]] = o
            pend_due[pend_count[0]] = now + latency_ns
            pend_count[0] += 1
        else:
            k += _reject(o, out[k], REJECT_QUEUE_FULL, now)
    if sent:
        mx.count(m, ROUTER, mx.C_ORDERS, sent)
    return k


@njit(cache=True)
def poll_pending(q, pending, pend_due, pend_count, fee_bps, slippage_bps, out, now):
    """Fill the pending orders that are due; returns the number of exec reports."""
    k = 0
    j = 0
    while j < pend_count[0] and k < out.shape[0]:
        if pend_due[j] <= now:
            k += _fill(pending[j], q, fee_bps, slippage_bps, out[k], now)
            last = pend_count[0] - 1
            pending[j] = pending[last]
            pend_due[j] = pend_due[last]
            pend_count[0] = last
        else:
            j += 1
    return k


class RouterCore:
    def __init__(self, n_instruments: int, router_cfg, state: np.ndarray | None = None):
        self.q = state if state is not None else np.zeros((n_instruments, N_Q), dtype=np.float64)
        self.pending = np.zeros(PENDING_CAP, dtype=ORDER_DTYPE)
        self.pend_due = np.zeros(PENDING_CAP, dtype=np.int64)
        self.pend_count = np.zeros(1, dtype=np.int64)
        self.latency_ns = int(router_cfg.latency_us * 1000)
        self.fee_bps = float(router_cfg.fee_bps)
        self.slippage_bps = float(router_cfg.slippage_bps)

    def next_due(self, now: int) -> int:
        """ns until the earliest pending fill (-1 when none)."""
        if self.pend_count[0] == 0:
            return -1
        return max(0, int(self.pend_due[: self.pend_count[0]].min()) - now)
