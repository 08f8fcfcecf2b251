"""The router's ledger of the orders it holds for risk: what survives a router crash.

Every order the router accepts from risk (sent to a venue, or registered as a parent) is
entered by client order id, instrument and side, and leaves the ledger when risk is told
its end (fill, cancel, reject).  The ledger lives in the ``router_state`` segment, so a
restarted router finds the orders its predecessor held and asks each venue that outlives
a router (a broker; :meth:`RouterCore.reconcile`, mass status) which of them are still
open there: those it adopts, and every other one is over (the simulated venues live in
the router process and die with it): the new router reports it CANCELED (reason
:data:`REASON_CXL_VENUE_LOST`) before it is ready, and risk and the journal see every
order end.

Rows: ``[client_order_id, instrument, side]``, ``client_order_id == 0`` for a free row;
open addressing by id, the capacity a power of two.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.daemon.router.order_fsm import REASON_CXL_VENUE_LOST

NOTHING_KEPT = np.zeros(0, np.int64)
from alphad.ipc.dtypes import EXEC_CANCELED, EXEC_FILL, EXEC_REJECT

L_CID, L_INSTRUMENT, L_SIDE = 0, 1, 2
#: Rows of a ledger: orders a router can hold for risk at once.
CAPACITY = 8192


def new_ledger(capacity: int = CAPACITY) -> np.ndarray:
    if capacity & (capacity - 1):
        raise ValueError(f"ledger capacity expected a power of two, was {capacity}")
    return np.zeros((capacity, 3), np.int64)


@njit(cache=True, inline="always")
def _slot(ledger, cid):
    mask = ledger.shape[0] - 1
    j = (cid ^ (cid >> 40)) & mask  # ids count up in their low bits: spread already
    for _ in range(ledger.shape[0]):
        if ledger[j, L_CID] == cid or ledger[j, L_CID] == 0:
            return j
        j = (j + 1) & mask
    return -1


@njit(cache=True, _nrt=False)
def ledger_open(ledger, cid, instrument, side):
    """Enter an order; False when the ledger is full (it is then not covered on a crash)."""
    j = _slot(ledger, np.int64(cid))
    if j < 0:
        return False
    ledger[j, L_CID] = np.int64(cid)
    ledger[j, L_INSTRUMENT] = instrument
    ledger[j, L_SIDE] = side
    return True


@njit(cache=True, _nrt=False)
def ledger_close(ledger, reports, k):
    """Remove the orders whose end ``reports[:k]`` tells risk (backward-shift deletion)."""
    mask = ledger.shape[0] - 1
    for r in range(k):
        s = reports[r].status
        if s != EXEC_FILL and s != EXEC_CANCELED and s != EXEC_REJECT:
            continue
        j = _slot(ledger, np.int64(reports[r].client_order_id))
        if j < 0 or ledger[j, L_CID] == 0:
            continue
        ledger[j, L_CID] = 0
        nxt = (j + 1) & mask
        while ledger[nxt, L_CID] != 0:  # re-seat the rows of the probe chain behind the hole
            cid, inst, side = ledger[nxt, L_CID], ledger[nxt, L_INSTRUMENT], ledger[nxt, L_SIDE]
            ledger[nxt, L_CID] = 0
            h = _slot(ledger, cid)
            ledger[h, L_CID], ledger[h, L_INSTRUMENT], ledger[h, L_SIDE] = cid, inst, side
            nxt = (nxt + 1) & mask


@njit(cache=True)
def ledger_orphans(ledger, out, now, keep):
    """CANCELED reports (``REASON_CXL_VENUE_LOST``) in ``out`` for every order the ledger
    holds but those in ``keep`` (sorted ids: adopted from a venue), as many as fit; returns
    how many.  Reported orders leave the ledger."""
    k = 0
    for j in range(ledger.shape[0]):
        if ledger[j, L_CID] == 0 or k == out.shape[0]:
            continue
        at = np.searchsorted(keep, ledger[j, L_CID])
        if at < keep.shape[0] and keep[at] == ledger[j, L_CID]:
            continue
        x = out[k]
        x.t_origin = now
        x.ts = now
        x.client_order_id = ledger[j, L_CID]
        x.instrument = ledger[j, L_INSTRUMENT]
        x.side = ledger[j, L_SIDE]
        x.status = EXEC_CANCELED
        x.reason = REASON_CXL_VENUE_LOST
        x.fill_qty = 0.0
        x.fill_px = np.nan
        x.fee = 0.0
        x.leaves_qty = 0.0
        k += 1
    ledger_close(ledger, out, k)
    return k
