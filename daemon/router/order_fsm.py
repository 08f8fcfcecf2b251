"""Order state machine, deterministic client order ids and the order store.

One Python table, :data:`TRANSITIONS`, is the single source of truth for how an
order moves between states.  Two things are built from it:

* :class:`OrderFSM`, a small Python object for tools, tests and reconciliation;
* :data:`TABLE`, a ``(N_STATES, N_TRIGGERS)`` int8 array (``-1`` = invalid) that
  the ``@njit`` kernels (:func:`fsm_step`, :func:`store_apply`) index on the hot
  path, where a dict lookup per event is not allowed.

A test walks every (state, trigger) pair and checks that both agree.

Replace semantics: a cancel/replace creates a *new* order (new client id) that
starts in ``PENDING_NEW``; the old one ends ``REPLACED`` when the venue confirms
(``REPLACE_ACK``) or goes back to working when it refuses (``REPLACE_REJECT``).
The venue reports both sides, so each order id sees an ordinary life cycle.

Hot-path outcomes are int codes (``>= 0`` is the new state, negative is one of
the ``ERR_*`` codes); the Python boundary turns ``ERR_INVALID_TRANSITION`` into
:class:`InvalidStateTrigger`.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np
from numba import njit

from alphad.ipc.dtypes import (
    EXEC_ACK,
    EXEC_CANCELED,
    EXEC_FILL,
    EXEC_PARTIAL,
    EXEC_REJECT,
)

__all__ = [
    "State", "Trigger", "TRANSITIONS", "TERMINAL", "TERMINAL_EDGES", "TABLE", "WORKING",
    "InvalidStateTrigger", "OrderFSM", "OrderStore", "ORDER_STATE_DTYPE", "FLAG_HARVESTED",
    "child_order_id", "fsm_step", "store_add", "store_apply", "store_find",
    "exec_trigger", "ERR_INVALID_TRANSITION", "ERR_OVERFILL", "ERR_UNKNOWN_CID",
    "ERR_DUPLICATE_CID", "ERR_FULL", "ERR_BAD_FILL",
    "REASON_CXL_USER", "REASON_CXL_EXPIRED", "REASON_CXL_REPLACED", "REASON_CXL_NO_LIQUIDITY",
    "REJ_UNKNOWN_INSTRUMENT", "REJ_BAD_QTY", "REJ_BAD_PRICE", "REJ_PRICE_BAND",
    "REJ_DUPLICATE_CID", "REJ_CANCEL_UNKNOWN", "REJ_REPLACE_UNKNOWN", "REJ_QUEUE_FULL",
    "REJ_ORIG_UNKNOWN", "REJ_REPLACE_BAD_PRICE", "LIQ_UNKNOWN", "LIQ_TAKER", "LIQ_MAKER",
]


class State(IntEnum):
    """Order states.  Values index rows of :data:`TABLE`."""

    NEW = 0               # built locally, not yet sent
    PENDING_NEW = 1       # sent, no answer yet
    ACCEPTED = 2          # live at the venue, nothing filled
    PARTIALLY_FILLED = 3  # live, 0 < filled < qty
    FILLED = 4            # terminal: filled == qty
    PENDING_CANCEL = 5    # cancel sent, no answer yet
    CANCELED = 6          # terminal
    PENDING_REPLACE = 7   # replace sent, no answer yet
    REPLACED = 8          # terminal: superseded by the replacement order
    REJECTED = 9          # terminal
    EXPIRED = 10          # terminal: venue/time-in-force ended it (IOC remainder, GTD)


class Trigger(IntEnum):
    """Events that move an order.  Values index columns of :data:`TABLE`."""

    SUBMIT = 0            # we send the new order
    ACK = 1               # venue accepted the new order
    REJECT = 2            # venue (or the adapter) refused the new order
    PARTIAL_FILL = 3      # a fill that leaves quantity open
    FILL = 4              # the fill that completes the order
    CANCEL_REQUEST = 5    # we send a cancel
    CANCEL_ACK = 6        # venue confirms the cancel (or cancels unsolicited)
    CANCEL_REJECT = 7     # venue refuses the cancel (unknown order, too late)
    REPLACE_REQUEST = 8   # we send a cancel/replace
    REPLACE_ACK = 9       # venue confirms the replace: this order is superseded
    REPLACE_REJECT = 10   # venue refuses the replace
    EXPIRE = 11           # venue expired the order (IOC remainder, GTD reached)


#: Virtual target "back to working": ACCEPTED when nothing is filled, else
#: PARTIALLY_FILLED.  Used where a failed request returns the order to whatever
#: working state it was in; it is resolved from the filled quantity, so no
#: hidden "previous state" has to be kept.
WORKING = 11

S, T = State, Trigger

#: The one transition table: ``(state, trigger) -> next state``.  Anything not
#: listed raises :class:`InvalidStateTrigger` ("STATE -> TRIGGER").
TRANSITIONS: dict[tuple[State, Trigger], int] = {
    # -- new order ------------------------------------------------------------
    (S.NEW, T.SUBMIT): S.PENDING_NEW,
    (S.NEW, T.REJECT): S.REJECTED,                  # refused before sending (adapter pre-check)
    (S.PENDING_NEW, T.ACK): S.ACCEPTED,
    (S.PENDING_NEW, T.REJECT): S.REJECTED,
    # Real-world: a marketable order's fill can overtake (or replace) its ack.
    (S.PENDING_NEW, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PENDING_NEW, T.FILL): S.FILLED,
    # Real-world: cancelling an order whose ack is late (order timeout); venues
    # accept a cancel by client order id before they acknowledge the new.
    (S.PENDING_NEW, T.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PENDING_NEW, T.EXPIRE): S.EXPIRED,           # IOC that found nothing to trade
    # -- working --------------------------------------------------------------
    (S.ACCEPTED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, T.FILL): S.FILLED,
    (S.ACCEPTED, T.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.ACCEPTED, T.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.ACCEPTED, T.EXPIRE): S.EXPIRED,
    # Real-world: unsolicited cancel by the venue (self-trade prevention,
    # cancel-on-disconnect, trading halt).
    (S.ACCEPTED, T.CANCEL_ACK): S.CANCELED,
    (S.PARTIALLY_FILLED, T.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, T.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, T.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, T.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, T.CANCEL_ACK): S.CANCELED,  # unsolicited, as above
    # -- cancel in flight -----------------------------------------------------
    (S.PENDING_CANCEL, T.CANCEL_ACK): S.CANCELED,
    # Real-world: the cancel fails (order unknown, already done); the order is
    # still working (or its final fill/expiry report is on the way).
    (S.PENDING_CANCEL, T.CANCEL_REJECT): WORKING,
    # Real-world: fills that crossed our cancel in flight.  A partial keeps the
    # cancel pending; a completing fill wins and the cancel reject follows.
    (S.PENDING_CANCEL, T.PARTIAL_FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, T.FILL): S.FILLED,
    (S.PENDING_CANCEL, T.ACK): S.PENDING_CANCEL,     # the late ack of a new we are cancelling
    (S.PENDING_CANCEL, T.REJECT): S.REJECTED,        # the new we are cancelling was refused
    (S.PENDING_CANCEL, T.EXPIRE): S.EXPIRED,
    # -- replace in flight ----------------------------------------------------
    (S.PENDING_REPLACE, T.REPLACE_ACK): S.REPLACED,
    # Real-world: the replace is refused (too late, bad price); keep working.
    (S.PENDING_REPLACE, T.REPLACE_REJECT): WORKING,
    (S.PENDING_REPLACE, T.PARTIAL_FILL): S.PENDING_REPLACE,  # fill on the old order in flight
    (S.PENDING_REPLACE, T.FILL): S.FILLED,           # filled first; replace reject follows
    (S.PENDING_REPLACE, T.CANCEL_ACK): S.CANCELED,   # unsolicited venue cancel; reject follows
    (S.PENDING_REPLACE, T.EXPIRE): S.EXPIRED,
    # -- documented edges out of terminal states: all self-loops -----------------
    # The reject of a cancel/replace that lost the race arrives after the final
    # report.  It changes nothing; accepting it keeps the book clean of errors.
    (S.FILLED, T.CANCEL_REJECT): S.FILLED,
    (S.FILLED, T.REPLACE_REJECT): S.FILLED,
    (S.CANCELED, T.REPLACE_REJECT): S.CANCELED,
    (S.EXPIRED, T.CANCEL_REJECT): S.EXPIRED,
    (S.EXPIRED, T.REPLACE_REJECT): S.EXPIRED,
    (S.REJECTED, T.CANCEL_REJECT): S.REJECTED,
}
del S, T

#: States an order never leaves (except by the self-loops in :data:`TERMINAL_EDGES`).
TERMINAL = frozenset({State.FILLED, State.CANCELED, State.REPLACED, State.REJECTED, State.EXPIRED})
#: ``TERMINAL_MASK[state]``: whether ``state`` is terminal (compiled code reads it).
TERMINAL_MASK = np.array([State(s) in TERMINAL for s in range(len(State))])
#: The documented (terminal state, trigger) edges; every one is a self-loop.
TERMINAL_EDGES = frozenset(k for k in TRANSITIONS if k[0] in TERMINAL)

N_STATES = len(State)
N_TRIGGERS = len(Trigger)


def _build_table() -> np.ndarray:
    table = np.full((N_STATES, N_TRIGGERS), -1, dtype=np.int8)
    for (state, trig), nxt in TRANSITIONS.items():
        table[int(state), int(trig)] = int(nxt)
    table.setflags(write=False)
    return table


#: Int-coded form of :data:`TRANSITIONS` for ``@njit`` code: ``TABLE[state, trigger]``
#: is the next state, :data:`WORKING` (resolve from filled qty) or -1 (invalid).
TABLE = _build_table()

# -- hot-path result codes (negative; >= 0 is a state) -------------------------
#: The (state, trigger) pair is not in the table; nothing changed.
ERR_INVALID_TRANSITION = -1
#: The fill would take filled quantity above order quantity; nothing changed.
ERR_OVERFILL = -2
#: No order with that client order id.
ERR_UNKNOWN_CID = -3
#: An order with that client order id exists already (replay/restart): not sent twice.
ERR_DUPLICATE_CID = -4
#: The order store is full.
ERR_FULL = -5
#: A fill with quantity <= 0 or a non-finite quantity/price.
ERR_BAD_FILL = -6

# -- exec.reason codes (venue -> router), shared by every venue adapter ----------
#: EXEC_CANCELED reasons.
REASON_CXL_USER = 0          # our cancel request (or unsolicited: venue's choice)
REASON_CXL_EXPIRED = 1       # time in force ended (GTD / order timeout at the venue)
REASON_CXL_REPLACED = 2      # superseded by a cancel/replace
REASON_CXL_NO_LIQUIDITY = 3  # IOC/market remainder with no more displayed liquidity
REASON_CXL_VENUE_LOST = 4    # its simulated venue ended with the router process (router/ledger.py)
#: On EXEC_PARTIAL / EXEC_FILL the reason field carries the liquidity flag.
LIQ_UNKNOWN = 0
LIQ_TAKER = 1                # our order took liquidity (crossed the spread)
LIQ_MAKER = 2                # our resting order was hit
#: EXEC_REJECT reasons.  Below 100: the new order was refused.
REJ_UNKNOWN_INSTRUMENT = 10
REJ_BAD_QTY = 11
REJ_BAD_PRICE = 12           # NaN, <= 0, or off the tick grid
REJ_PRICE_BAND = 13          # further from the mid than the venue's price band
REJ_DUPLICATE_CID = 14
REJ_QUEUE_FULL = 15
REJ_ORIG_UNKNOWN = 16        # the replacement of an order that is gone (its replace was refused)
REJ_STORE_FULL = 17          # the router's order store had no free slot: never sent
REJ_STALE = 18               # older than router.max_order_age_ms when the router saw it: never sent
REJ_VENUE = 19               # a live venue refused it (a definite 4xx answer: buying power, symbol, ...)
REJ_RATE_LIMITED = 20        # a live venue answered 429 to every try (router.alpaca.max_retries)
REJ_NOT_AT_VENUE = 21        # its fate was unknown (5xx, timeout, crash) and the venue has no such order
REJ_VENUE_DOWN = 22          # the live venue was not connected: never sent
#: 100..199: a cancel was refused; 200..299: a replace was refused.
REJ_CANCEL_UNKNOWN = 100     # order unknown or already done ("too late to cancel")
REJ_REPLACE_UNKNOWN = 200    # order unknown or already done ("too late to replace")
REJ_REPLACE_BAD_PRICE = 201


class InvalidStateTrigger(ValueError):
    """A trigger that the transition table does not allow in the order's state.

    The message is ``"STATE -> TRIGGER"``, e.g. ``"FILLED -> PARTIAL_FILL"``.
    """

    def __init__(self, state: int, trigger: int) -> None:
        self.state = State(state)
        self.trigger = Trigger(trigger)
        super().__init__(f"{self.state.name} -> {self.trigger.name}")


@njit(cache=True, _nrt=False)
def exec_trigger(status: int, reason: int) -> int:
    """Map an exec report's ``(status, reason)`` to a :class:`Trigger` value.

    Parameters
    ----------
    status : int
        ``EXEC_*`` status from :mod:`alphad.ipc.dtypes`.
    reason : int
        The report's reason code (``REASON_CXL_*`` or ``REJ_*``).

    Returns
    -------
    int
        The trigger, or -1 for an unknown status.  ``EXEC_PARTIAL`` and
        ``EXEC_FILL`` both map to ``PARTIAL_FILL``: the store decides from the
        quantities whether the fill completes the order.
    """
    if status == EXEC_ACK:
        return 1
    if status == EXEC_PARTIAL or status == EXEC_FILL:
        return 3
    if status == EXEC_REJECT:
        if 100 <= reason < 200:
            return 7
        if 200 <= reason < 300:
            return 10
        return 2
    if status == EXEC_CANCELED:
        if reason == REASON_CXL_REPLACED:
            return 9
        if reason == REASON_CXL_EXPIRED or reason == REASON_CXL_NO_LIQUIDITY:
            return 11
        return 6
    return -1


#: Relative tolerance used to decide that a fill completes an order (float qty).
QTY_EPS = 1e-9


@njit(cache=True, _nrt=False)
def fsm_step(table, state, trigger, qty, filled, fill_qty):
    """One transition on plain values (the kernel every store update uses).

    Parameters
    ----------
    table : int8[:, :]
        :data:`TABLE`.
    state, trigger : int
        Current state and the event.
    qty, filled : float
        Order quantity and quantity filled so far (base units).
    fill_qty : float
        Quantity of this fill; ignored unless ``trigger`` is a fill.

    Returns
    -------
    int
        New state (``>= 0``), or ``ERR_INVALID_TRANSITION`` / ``ERR_OVERFILL`` /
        ``ERR_BAD_FILL``.  Fill triggers are normalised: whether the fill is
        ``FILL`` or ``PARTIAL_FILL`` follows from the quantities, not from the
        venue's label, so a mislabelled report can never leave an order open
        with nothing left or closed with quantity open.
    """
    if trigger == 3 or trigger == 4:
        if not (fill_qty > 0.0) or not np.isfinite(fill_qty):
            return ERR_BAD_FILL
        tol = QTY_EPS * qty
        new_filled = filled + fill_qty
        if new_filled > qty + tol:
            return ERR_OVERFILL
        trigger = 4 if new_filled >= qty - tol else 3
    nxt = table[state, trigger]
    if nxt == WORKING:
        return 3 if filled > 0.0 else 2
    return nxt


def child_order_id(strategy: int, instrument: int, decision_seq: int, child: int = 0) -> int:
    """Deterministic client order id of a child order the router derives from a decision.

    The router's scheme (its algorithms' children; in the daemon ``decision_seq`` is the
    parent's id, the id risk gave the order).  Risk's own ids for the orders it approves
    are numbered per daemon run (:func:`alphad.daemon.risk.core.order_id`), a different scheme.
    The same ``(strategy, instrument, decision_seq, child)`` always gives the
    same id, so a replay or a restart that re-derives its orders produces ids
    the store (and the venue) already know, and nothing is sent twice.

    Parameters
    ----------
    strategy : int
        Strategy id (0 .. 2**16-1).
    instrument : int
        Instrument id (0 .. 2**24-1).
    decision_seq : int
        Sequence number of the decision (the md/signal seq), >= 0.
    child : int
        Index of the child order within that decision (0 for a single order;
        replacements take fresh child indices), 0 .. 2**24-1.

    Returns
    -------
    int
        A non-zero uint64 id.

    Raises
    ------
    ValueError
        When an argument is outside its range.
    """
    for name, v, hi in (("strategy", strategy, 1 << 16), ("instrument", instrument, 1 << 24),
                        ("decision_seq", decision_seq, 1 << 64), ("child", child, 1 << 24)):
        if not (0 <= int(v) < hi):
            raise ValueError(f"{name} expected in [0, {hi}), was {v}")
    # The kernel's arithmetic on Python ints (the router derives child ids in Python: a
    # dispatch with four uint64 boxes cost 4 µs per id); a test checks both agree.
    a = (int(strategy) << 48) | (int(instrument) << 24) | int(child)
    h = _mix64_int(_mix64_int(a) ^ int(decision_seq))
    return h if h else 1


_M64 = (1 << 64) - 1


def _mix64_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


@njit(cache=True, _nrt=False)
def _mix64(z):
    # splitmix64 finaliser: a bijection on uint64 with full avalanche, so ids of
    # neighbouring decisions share no visible structure.
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _child_order_id_kernel(strategy, instrument, decision_seq, child):
    # Two 64-bit words hold the whole tuple without loss; mixing the first and
    # folding in the second keeps the map injective on word B for fixed word A.
    a = (strategy << np.uint64(48)) | (instrument << np.uint64(24)) | child
    h = _mix64(_mix64(a) ^ decision_seq)
    if h == np.uint64(0):  # 0 means "empty slot" in the store's index
        h = np.uint64(1)
    return h


# -- the order store: arrays + an open-addressing cid index ----------------------

#: One row per order known to the router.
ORDER_STATE_DTYPE = np.dtype(
    [
        ("cid", "u8"),
        ("ts_created", "i8"),     # ns, router clock
        ("ts_last", "i8"),        # ns, last transition
        ("ts_sent", "i8"),        # ns, last request sent (submit/cancel/replace): timeout base
        ("expire_at", "i8"),      # ns; 0 = good till cancel
        ("qty", "f8"),
        ("filled", "f8"),
        ("notional", "f8"),       # sum fill_qty * fill_px (quote currency)
        ("fees", "f8"),           # quote currency, positive = paid
        ("limit_px", "f8"),       # NaN for market
        ("arrival_bid", "f8"),    # best bid/ask of the venue when the router sent it (NaN: not
        ("arrival_ask", "f8"),    # an arrival, e.g. a replacement): live impact calibration
        ("instrument", "i4"),
        ("parent", "i4"),         # parent order index, -1 = none
        ("link", "i4"),           # replacement slot (on the old order) / -1
        ("venue", "i2"),
        ("side", "i1"),
        ("kind", "u1"),
        ("state", "i1"),
        ("last_err", "i1"),
        ("flags", "u1"),          # FLAG_* bits
    ],
    align=True,
)


#: ``flags`` bit: the live impact calibration has read this (ended) order.
FLAG_HARVESTED = 1
#: ``flags`` bit: a flatten order (``ORDER_F_FLATTEN``): a cancel-all leaves it working.
FLAG_FLATTEN = 2


@njit(cache=True, _nrt=False)
def store_find(keys, vals, cid):
    """Slot of ``cid`` in the index, or -1.  ``keys`` length is a power of two."""
    mask = keys.shape[0] - 1
    i = np.int64(_mix64(np.uint64(cid)) & np.uint64(mask))
    for _ in range(keys.shape[0]):
        k = keys[i]
        if k == cid:
            return vals[i]
        if k == 0:
            return -1
        i = (i + 1) & mask
    return -1


@njit(cache=True)
def _reindex(keys, vals, cids, n):
    """Rebuild the cid index for slots ``0..n-1`` (after :meth:`OrderStore.compact`)."""
    mask = keys.shape[0] - 1
    for slot in range(n):
        i = np.int64(_mix64(np.uint64(cids[slot])) & np.uint64(mask))
        while keys[i] != 0:
            i = (i + 1) & mask
        keys[i] = cids[slot]
        vals[i] = slot


@njit(cache=True)
def _compact_plan(orders, n, cutoff, terminal, mapping, idx):
    """The slots a compaction keeps (working, or ended at or after ``cutoff``) into
    ``idx[:m]``, each slot's new place into ``mapping`` (-1: forgotten); returns ``m``.
    Compiled and on scratch made with the store: no temporary arrays (they raised the
    heap's high-water mark at the first compaction, minutes into a run)."""
    m = 0
    for s in range(n):
        o = orders[s]
        if not terminal[o.state] or o.ts_last >= cutoff:
            mapping[s] = m
            idx[m] = s
            m += 1
        else:
            mapping[s] = -1
    return m


@njit(cache=True)
def _remap_slots(kept, mapping):
    """Slot references (``parent``, ``link``) move with their orders."""
    for k in range(kept.shape[0]):
        o = kept[k]
        if o.parent >= 0:
            o.parent = mapping[o.parent]
        if o.link >= 0:
            o.link = mapping[o.link]


@njit(cache=True, _nrt=False)
def store_add(orders, count, keys, vals, cid, instrument, side, kind, qty, limit_px,
              now, expire_at, parent, venue):
    """Add an order in state NEW.

    Returns
    -------
    int
        The slot, or ``ERR_DUPLICATE_CID`` (the id is known: a replay; the caller
        must not send) or ``ERR_FULL``.
    """
    n = count[0]
    if n >= orders.shape[0]:
        return ERR_FULL
    mask = keys.shape[0] - 1
    i = np.int64(_mix64(np.uint64(cid)) & np.uint64(mask))
    for _ in range(keys.shape[0]):
        k = keys[i]
        if k == cid:
            return ERR_DUPLICATE_CID
        if k == 0:
            break
        i = (i + 1) & mask
    keys[i] = cid
    vals[i] = n
    count[0] = n + 1
    o = orders[n]
    o.cid = cid
    o.ts_created = now
    o.ts_last = now
    o.ts_sent = 0
    o.expire_at = expire_at
    o.qty = qty
    o.filled = 0.0
    o.notional = 0.0
    o.fees = 0.0
    o.limit_px = limit_px
    o.arrival_bid = np.nan
    o.arrival_ask = np.nan
    o.instrument = instrument
    o.parent = parent
    o.link = -1
    o.venue = venue
    o.side = side
    o.kind = kind
    o.state = 0
    o.last_err = 0
    o.flags = 0
    return n


@njit(cache=True, _nrt=False)
def store_trigger(orders, table, slot, trigger, fill_qty, fill_px, fee, now):
    """Apply ``trigger`` to the order in ``slot``; returns new state or an ERR code."""
    o = orders[slot]
    nxt = fsm_step(table, o.state, trigger, o.qty, o.filled, fill_qty)
    if nxt < 0:
        o.last_err = nxt
        return nxt
    if trigger == 3 or trigger == 4:
        o.filled += fill_qty
        o.notional += fill_qty * fill_px
    if trigger == 0 or trigger == 5 or trigger == 8:
        o.ts_sent = now
    o.fees += fee
    o.state = nxt
    o.ts_last = now
    return nxt


@njit(cache=True, _nrt=False)
def store_apply(orders, keys, vals, table, execs, n):
    """Apply ``n`` exec reports (``EXEC_DTYPE``) to the store, in order.

    Returns
    -------
    int
        Number of reports that failed (unknown cid or invalid transition); the
        failing code is kept in each order's ``last_err``.  An ACK's
        ``leaves_qty`` is authoritative: a venue that clamped a replacement's
        quantity shrinks the order to ``filled + leaves``.
    """
    bad = 0
    for j in range(n):
        e = execs[j]
        slot = store_find(keys, vals, e.client_order_id)
        if slot < 0:
            bad += 1
            continue
        trig = exec_trigger(e.status, e.reason)
        if trig < 0:
            bad += 1
            continue
        r = store_trigger(orders, table, slot, trig, e.fill_qty, e.fill_px, e.fee, e.ts)
        if r < 0:
            bad += 1
        elif trig == 1:
            o = orders[slot]
            q = o.filled + e.leaves_qty
            if q < o.qty:
                o.qty = q
    return bad


@njit(cache=True)
def _timeouts(orders, count, now, response_timeout_ns, out):
    # Expired-by-time working orders (expire_at passed) get -(slot+1); pending
    # requests without an answer for response_timeout_ns get slot; both go to out.
    k = 0
    for i in range(count):
        o = orders[i]
        s = o.state
        if s == 2 or s == 3:
            if o.expire_at > 0 and now >= o.expire_at and k < out.shape[0]:
                out[k] = -(i + 1)
                k += 1
        elif s == 1 or s == 5 or s == 7:
            if now - o.ts_sent >= response_timeout_ns and k < out.shape[0]:
                out[k] = i
                k += 1
    return k


class OrderFSM:
    """One order's state, driven by the Python table (tools, tests, reconciliation).

    Parameters
    ----------
    qty : float
        Order quantity (base units), > 0.
    """

    __slots__ = ("state", "qty", "filled")

    def __init__(self, qty: float) -> None:
        if not (qty > 0 and np.isfinite(qty)):
            raise ValueError(f"qty expected finite and > 0, was {qty}")
        self.state = State.NEW
        self.qty = float(qty)
        self.filled = 0.0

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def apply(self, trigger: Trigger, fill_qty: float = 0.0) -> State:
        """Apply one trigger; returns the new state.

        Raises
        ------
        InvalidStateTrigger
            When ``(state, trigger)`` is not in :data:`TRANSITIONS`; the state is unchanged.
        ValueError
            When a fill is not positive or would overfill the order.
        """
        trigger = Trigger(trigger)
        if trigger in (Trigger.PARTIAL_FILL, Trigger.FILL):
            if not (fill_qty > 0 and np.isfinite(fill_qty)):
                raise ValueError(f"fill_qty expected finite and > 0, was {fill_qty}")
            new_filled = self.filled + fill_qty
            if new_filled > self.qty + QTY_EPS * self.qty:
                raise ValueError(
                    f"fill of {fill_qty} would take filled to {new_filled}, above order qty {self.qty}")
            trigger = Trigger.FILL if new_filled >= self.qty - QTY_EPS * self.qty else Trigger.PARTIAL_FILL
        nxt = TRANSITIONS.get((self.state, trigger))
        if nxt is None:
            raise InvalidStateTrigger(self.state, trigger)
        if nxt == WORKING:
            nxt = State.PARTIALLY_FILLED if self.filled > 0 else State.ACCEPTED
        if trigger in (Trigger.PARTIAL_FILL, Trigger.FILL):
            self.filled += fill_qty
        self.state = State(nxt)
        return self.state


class OrderStore:
    """All orders the router knows: fixed-capacity arrays plus a cid index.

    The arrays (``orders``, ``keys``, ``vals``, ``count``) are what ``@njit`` code
    receives; the methods are the Python boundary (tools, tests, recovery),
    which raises on bad input instead of returning codes.

    Parameters
    ----------
    capacity : int
        Maximum number of orders held at once; :meth:`compact` forgets orders that
        ended a while ago (the journal keeps every one).
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity expected > 0, was {capacity}")
        # np.empty + fill touches every page now (np.zeros maps them lazily and
        # the first order on each page would pay a page fault on the hot path).
        self.orders = np.empty(capacity, dtype=ORDER_STATE_DTYPE)
        self.orders.view(np.uint8).fill(0)
        size = 1 << int(np.ceil(np.log2(capacity * 2)))  # load factor <= 0.5
        self.keys = np.empty(size, dtype=np.uint64)
        self.keys.fill(0)
        self.vals = np.full(size, -1, dtype=np.int32)
        self.count = np.zeros(1, dtype=np.int64)
        self.table = TABLE
        # compact()'s scratch, touched now: made at each compaction, its kept-orders copy
        # (120 B an order) and slot mapping raised the heap's high-water mark minutes into a
        # run by the store's size (+8.5 MB in the soak's router), never given back
        self._kept = np.empty(capacity, dtype=ORDER_STATE_DTYPE)
        self._kept.view(np.uint8).fill(0)
        self._mapping = np.full(capacity, -1, dtype=np.int64)
        self._idx = np.full(capacity, -1, dtype=np.int64)
        self._cids = np.full(capacity, 0, dtype=np.uint64)
        # compiled (or loaded from the cache) now, with the types compact() passes: first
        # compiled at the first compaction, minutes into a run, it stalled the router for
        # the compile and kept LLVM's memory (the soak's router RSS step)
        _reindex(self.keys, self.vals, np.zeros(0, np.uint64), 0)
        _compact_plan(self.orders, 0, 0, TERMINAL_MASK, self._mapping, self._idx)
        _remap_slots(self._kept[:0], self._mapping)

    def __len__(self) -> int:
        return int(self.count[0])

    def add(self, cid: int, instrument: int, side: int, kind: int, qty: float, limit_px: float,
            now: int, *, expire_at: int = 0, parent: int = -1, venue: int = 0) -> int:
        """Add an order in NEW; returns its slot, or ``ERR_DUPLICATE_CID`` for a known id.

        Raises
        ------
        ValueError
            Non-positive quantity or full store.
        """
        if not (qty > 0 and np.isfinite(qty)):
            raise ValueError(f"qty expected finite and > 0, was {qty}")
        slot = store_add(self.orders, self.count, self.keys, self.vals, np.uint64(cid), instrument,
                         side, kind, float(qty), float(limit_px), now, expire_at, parent, venue)
        if slot == ERR_FULL:
            raise ValueError(f"order store full: capacity {self.orders.shape[0]} was reached")
        return int(slot)

    def find(self, cid: int) -> int:
        """Slot of ``cid`` or -1."""
        return int(store_find(self.keys, self.vals, np.uint64(cid)))

    def state(self, cid: int) -> State:
        slot = self._slot(cid)
        return State(int(self.orders[slot]["state"]))

    def _slot(self, cid: int) -> int:
        slot = self.find(cid)
        if slot < 0:
            raise KeyError(f"client order id {cid} is not in the store")
        return slot

    def trigger(self, cid: int, trigger: Trigger, now: int, *, fill_qty: float = 0.0,
                fill_px: float = 0.0, fee: float = 0.0) -> State:
        """Apply one trigger to ``cid``; raises :class:`InvalidStateTrigger` when not allowed."""
        slot = self._slot(cid)
        r = store_trigger(self.orders, self.table, slot, int(trigger), float(fill_qty),
                          float(fill_px), float(fee), now)
        if r == ERR_INVALID_TRANSITION:
            raise InvalidStateTrigger(int(self.orders[slot]["state"]), int(trigger))
        if r < 0:
            raise ValueError(f"fill of {fill_qty} refused for order {cid} "
                             f"(filled {self.orders[slot]['filled']} of {self.orders[slot]['qty']}), code {r}")
        return State(r)

    def apply(self, execs: np.ndarray, n: int | None = None) -> int:
        """Apply exec reports; returns how many failed (see :func:`store_apply`)."""
        n = len(execs) if n is None else n
        return int(store_apply(self.orders, self.keys, self.vals, self.table, execs, n))

    def compact(self, now: int, keep_terminal_ns: int) -> int:
        """Forget orders that ended more than ``keep_terminal_ns`` ago; returns how many.

        A long-running router would otherwise fill the store.  Recently ended orders stay
        so the real-world late edges (a fill after a cancel) still find them.  Works in
        place: compiled callers hold these very arrays.  A forgotten id is no longer a
        duplicate to the store, so the caller must keep its own guard against replays
        (the router stage keeps the last id per instrument in shared memory).
        """
        n = len(self)
        m = _compact_plan(self.orders, n, now - keep_terminal_ns, TERMINAL_MASK, self._mapping, self._idx)
        if m == n:
            return 0
        # mode="clip": the default "raise" copies through a temporary buffer as large as the
        # kept orders (3 MB for 24,576 of them), the heap's high-water mark after the first
        # compaction; the indices are in range by construction
        kept = np.take(self.orders[:n], self._idx[:m], out=self._kept[:m], mode="clip")
        _remap_slots(kept, self._mapping)
        self.orders[:m] = kept
        self.orders[m:n].view(np.uint8).fill(0)
        self.count[0] = m
        self.keys.fill(0)
        self.vals.fill(-1)
        cids = self._cids[:m]
        cids[:] = kept["cid"]
        _reindex(self.keys, self.vals, cids, m)
        return n - m

    def open_slots(self) -> np.ndarray:
        """Slots of orders that are not in a terminal state."""
        return np.flatnonzero(~TERMINAL_MASK[self.orders["state"][: len(self)]])

    def cancel_all(self, now: int, *, instrument: int = -1, top_level: bool = False) -> list[int]:
        """Move every working order (optionally one instrument) to PENDING_CANCEL.

        Returns the client ids to send cancels for.  Orders already pending a
        cancel are not sent again; PENDING_NEW orders are included (cancel by
        client id before the ack); PENDING_REPLACE orders are left to finish.
        Flatten orders (``FLAG_FLATTEN``) are left working: they close risk.
        ``top_level``: only orders without a parent (an algorithm cancels its own).
        """
        out = []
        for slot in self.open_slots():
            o = self.orders[slot]
            if instrument >= 0 and int(o["instrument"]) != instrument:
                continue
            if int(o["flags"]) & FLAG_FLATTEN or (top_level and int(o["parent"]) >= 0):
                continue
            if int(o["state"]) in (State.PENDING_NEW, State.ACCEPTED, State.PARTIALLY_FILLED):
                store_trigger(self.orders, self.table, int(slot), int(Trigger.CANCEL_REQUEST),
                              0.0, 0.0, 0.0, now)
                out.append(int(o["cid"]))
        return out

    def timeouts(self, now: int, response_timeout_ns: int) -> tuple[list[int], list[int]]:
        """Orders needing action at ``now``.

        Returns
        -------
        expired : list of int
            Client ids of working orders whose ``expire_at`` has passed; the
            caller sends cancels (the store moves them to PENDING_CANCEL).
        stale : list of int
            Client ids pending an answer for ``response_timeout_ns`` or longer;
            the caller reconciles them with the venue (order status query).
        """
        out = np.empty(len(self), dtype=np.int64)
        k = _timeouts(self.orders, len(self), now, response_timeout_ns, out)
        expired, stale = [], []
        for v in out[:k]:
            if v < 0:
                slot = int(-v - 1)
                store_trigger(self.orders, self.table, slot, int(Trigger.CANCEL_REQUEST),
                              0.0, 0.0, 0.0, now)
                expired.append(int(self.orders[slot]["cid"]))
            else:
                stale.append(int(self.orders[int(v)]["cid"]))
        return expired, stale
