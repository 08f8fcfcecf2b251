"""L2 order book from a depth snapshot plus depth diffs, with Binance's sequencing rules.

The book lives in three preallocated arrays so every operation runs in ``@njit``:

* ``keys``: int64 ``(2, cap)``; side 0 = bids, side 1 = asks.  A level's key is its
  price in integer ticks for bids and minus that for asks, so both sides are sorted
  ascending by key with the **best level last**.  Updates cluster near the touch, so
  inserts and deletes shift only the few levels above them.
* ``qty``: float64 ``(2, cap)``, base units (BTC, ETH, shares).
* ``meta``: int64 ``(META_LEN,)``: level counts, last applied update id, sync state and
  counters (``M_*`` below).

Sequencing (Binance "how to manage a local order book correctly"):

1. Load a REST snapshot (``lastUpdateId``): state becomes ``SYNCING``.
2. Drop any diff with ``u <= lastUpdateId`` (``STALE``).
3. The first diff applied must satisfy ``U <= lastUpdateId + 1 <= u``; each later one
   ``U == previous u + 1``.  Anything else is a ``GAP``: the book is invalid
   (``NEED_SNAPSHOT``) until a new snapshot is loaded; diffs meanwhile return
   ``NEED_SNAPSHOT`` so the caller can buffer them and re-sync.
4. ``qty == 0`` removes a level; removing an absent level is normal and ignored.

A crossed (best bid > best ask) or locked (equal) book is *reported*, never emitted:
:func:`apply_diff` returns ``CROSSED``/``LOCKED`` and :func:`top_levels` refuses to write
levels until the book is sane again.  Capacity overflow drops the *worst* level on that
side and counts it in ``meta[M_DROPPED]`` (the touch is never lost).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "Book", "new_book", "load_snapshot", "apply_diff", "top_levels", "best", "replay",
    "to_ticks", "APPLIED", "STALE", "GAP", "NEED_SNAPSHOT", "CROSSED", "LOCKED",
    "TOP_OK", "TOP_NO_BOOK", "TOP_EMPTY_SIDE", "TOP_CROSSED", "TOP_LOCKED",
]

# -- apply_diff outcomes ---------------------------------------------------------------------
#: The diff was applied and the book is sane.
APPLIED = 0
#: ``u <= last applied id``: already contained in the snapshot/book; skipped.
STALE = 1
#: Sequence broken (``U`` not contiguous); the book is now invalid and needs a snapshot.
GAP = 2
#: No valid book (never synced, or after a gap); the diff was not applied.
NEED_SNAPSHOT = 3
#: Applied, but best bid > best ask: the book is flagged and not emitted.
CROSSED = 4
#: Applied, but best bid == best ask: flagged and not emitted.
LOCKED = 5

# -- top_levels outcomes ---------------------------------------------------------------------
TOP_OK = 0
#: No valid book (needs snapshot): nothing written.
TOP_NO_BOOK = 1
#: One side is empty: levels written, missing ones are NaN price / 0 qty.
TOP_EMPTY_SIDE = 2
TOP_CROSSED = 3
TOP_LOCKED = 4

# -- meta slots ------------------------------------------------------------------------------
M_NBID = 0
M_NASK = 1
#: Last applied final update id (``u``), or the snapshot's ``lastUpdateId``.
M_LAST_ID = 2
#: One of ``S_*``.
M_STATE = 3
#: Levels dropped for capacity (worst levels; see module doc).
M_DROPPED = 4
#: Gaps detected since creation.
M_GAPS = 5
#: Messages that left the book crossed or locked.
M_CROSSINGS = 6
META_LEN = 8

S_NEED_SNAPSHOT = 0
S_SYNCING = 1
S_LIVE = 2
S_CROSSED = 3
S_LOCKED = 4

SIDE_BID = 0
SIDE_ASK = 1


def new_book(capacity: int = 8192):
    """Empty book arrays ``(keys, qty, meta)`` with ``capacity`` levels per side."""
    if capacity < 1:
        raise ValueError(f"book capacity: expected >= 1 level per side, was {capacity}")
    keys = np.zeros((2, capacity), dtype=np.int64)
    qty = np.zeros((2, capacity), dtype=np.float64)
    meta = np.zeros(META_LEN, dtype=np.int64)
    return keys, qty, meta


def to_ticks(price, tick_size: float) -> np.ndarray:
    """Prices to int64 ticks (round to nearest); raises if a price is off the tick grid."""
    p = np.asarray(price, dtype=np.float64)
    t = np.rint(p / tick_size)
    off = np.abs(t * tick_size - p) > tick_size * 1e-6
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"price {p.flat[i]!r}: expected a multiple of the tick size {tick_size}, was off-grid")
    return t.astype(np.int64)


# -- one side --------------------------------------------------------------------------------


@njit(cache=True)
def _lower_bound(keys, side, n, key):
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[side, mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _set_level(keys, qty, meta, side, key, q):
    """Set/insert/remove one level; ``meta[side]`` is the side's level count."""
    n = meta[side]
    cap = keys.shape[1]
    i = _lower_bound(keys, side, n, key)
    if i < n and keys[side, i] == key:
        if q == 0.0:
            for j in range(i, n - 1):
                keys[side, j] = keys[side, j + 1]
                qty[side, j] = qty[side, j + 1]
            meta[side] = n - 1
        else:
            qty[side, i] = q
        return
    if q == 0.0:
        return
    if n == cap:
        # full: drop the worst level (index 0) to make room, unless the new one is worse
        meta[M_DROPPED] += 1
        if i == 0:
            return
        for j in range(0, i - 1):
            keys[side, j] = keys[side, j + 1]
            qty[side, j] = qty[side, j + 1]
        keys[side, i - 1] = key
        qty[side, i - 1] = q
        return
    for j in range(n, i, -1):
        keys[side, j] = keys[side, j - 1]
        qty[side, j] = qty[side, j - 1]
    keys[side, i] = key
    qty[side, i] = q
    meta[side] = n + 1


@njit(cache=True)
def _cross_state(keys, meta):
    nb = meta[M_NBID]
    na = meta[M_NASK]
    if nb == 0 or na == 0:
        return S_LIVE
    bid = keys[SIDE_BID, nb - 1]
    ask = -keys[SIDE_ASK, na - 1]
    if bid > ask:
        return S_CROSSED
    if bid == ask:
        return S_LOCKED
    return S_LIVE


# -- snapshot and diffs ----------------------------------------------------------------------


@njit(cache=True)
def load_snapshot(keys, qty, meta, side, px_ticks, q, last_update_id):
    """Replace the book with a REST snapshot; state becomes SYNCING at ``last_update_id``.

    ``side`` int8 (0 bid, 1 ask), ``px_ticks`` int64, ``q`` float64, one row per level.
    Returns the sync state after loading (``S_SYNCING``, or ``S_CROSSED``/``S_LOCKED``
    if the snapshot itself is not sane).
    """
    meta[M_NBID] = 0
    meta[M_NASK] = 0
    for r in range(px_ticks.shape[0]):
        sd = side[r]
        key = px_ticks[r] if sd == SIDE_BID else -px_ticks[r]
        _set_level(keys, qty, meta, sd, key, q[r])
    meta[M_LAST_ID] = last_update_id
    cs = _cross_state(keys, meta)
    meta[M_STATE] = S_SYNCING if cs == S_LIVE else cs
    return meta[M_STATE]


@njit(cache=True)
def apply_diff(keys, qty, meta, first_id, final_id, side, px_ticks, q, start, end):
    """Apply one depth-diff message (rows ``start:end``); returns an outcome code.

    Parameters
    ----------
    first_id, final_id : int
        Binance ``U`` and ``u`` of the message.
    side, px_ticks, q : arrays
        Row arrays (int8 side, int64 ticks, float64 qty); ``qty == 0`` removes a level.
    start, end : int
        The message's rows.

    Returns
    -------
    int
        ``APPLIED``, ``STALE``, ``GAP``, ``NEED_SNAPSHOT``, ``CROSSED`` or ``LOCKED``.
    """
    st = meta[M_STATE]
    if st == S_NEED_SNAPSHOT:
        return NEED_SNAPSHOT
    last = meta[M_LAST_ID]
    if final_id <= last:
        return STALE
    if st == S_SYNCING:
        ok = first_id <= last + 1 and last + 1 <= final_id
    else:
        ok = first_id == last + 1
    if not ok:
        meta[M_STATE] = S_NEED_SNAPSHOT
        meta[M_GAPS] += 1
        return GAP
    for r in range(start, end):
        sd = side[r]
        key = px_ticks[r] if sd == SIDE_BID else -px_ticks[r]
        _set_level(keys, qty, meta, sd, key, q[r])
    meta[M_LAST_ID] = final_id
    cs = _cross_state(keys, meta)
    meta[M_STATE] = cs
    if cs == S_CROSSED:
        meta[M_CROSSINGS] += 1
        return CROSSED
    if cs == S_LOCKED:
        meta[M_CROSSINGS] += 1
        return LOCKED
    return APPLIED


# -- reading the book ------------------------------------------------------------------------


@njit(cache=True)
def best(keys, qty, meta):
    """``(bid_ticks, bid_qty, ask_ticks, ask_qty)``; an empty side gives ticks -1, qty 0."""
    nb = meta[M_NBID]
    na = meta[M_NASK]
    bt = keys[SIDE_BID, nb - 1] if nb > 0 else -1
    bq = qty[SIDE_BID, nb - 1] if nb > 0 else 0.0
    at = -keys[SIDE_ASK, na - 1] if na > 0 else -1
    aq = qty[SIDE_ASK, na - 1] if na > 0 else 0.0
    return bt, bq, at, aq


@njit(cache=True)
def top_levels(keys, qty, meta, tick_size, out):
    """Write the top ``N = out.shape[1]`` levels into ``out`` (float64 ``(4, N)``).

    Rows: bid price, bid qty, ask price, ask qty; level 0 is the touch.  Prices are
    ``ticks * tick_size``.  Missing levels are NaN price and 0 qty.  Returns ``TOP_*``;
    with ``TOP_NO_BOOK``, ``TOP_CROSSED`` or ``TOP_LOCKED`` nothing is written, so a
    consumer keeps its last sane book instead of trading on a broken one.
    """
    st = meta[M_STATE]
    if st == S_NEED_SNAPSHOT:
        return TOP_NO_BOOK
    if st == S_CROSSED:
        return TOP_CROSSED
    if st == S_LOCKED:
        return TOP_LOCKED
    nb = meta[M_NBID]
    na = meta[M_NASK]
    for j in range(out.shape[1]):
        if j < nb:
            out[0, j] = keys[SIDE_BID, nb - 1 - j] * tick_size
            out[1, j] = qty[SIDE_BID, nb - 1 - j]
        else:
            out[0, j] = np.nan
            out[1, j] = 0.0
        if j < na:
            out[2, j] = -keys[SIDE_ASK, na - 1 - j] * tick_size
            out[3, j] = qty[SIDE_ASK, na - 1 - j]
        else:
            out[2, j] = np.nan
            out[3, j] = 0.0
    return TOP_OK if (nb > 0 and na > 0) else TOP_EMPTY_SIDE


@njit(cache=True)
def replay(keys, qty, meta, first_id, final_id, msg_start, side, px_ticks, q, codes, best_out):
    """Apply every message in order; per message record its code and the touch after it.

    ``msg_start`` int64 ``(n_msgs + 1,)`` gives each message's rows.  ``best_out`` float64
    ``(n_msgs, 4)`` receives ``best(...)`` (ticks as float).  Returns the number of
    messages that were not ``APPLIED`` or ``STALE``.
    """
    bad = 0
    for m in range(first_id.shape[0]):
        c = apply_diff(keys, qty, meta, first_id[m], final_id[m], side, px_ticks, q,
                       msg_start[m], msg_start[m + 1])
        codes[m] = c
        if c != APPLIED and c != STALE:
            bad += 1
        bt, bq, at, aq = best(keys, qty, meta)
        best_out[m, 0] = bt
        best_out[m, 1] = bq
        best_out[m, 2] = at
        best_out[m, 3] = aq
    return bad


class Book:
    """Python handle over the book arrays (control path: construction, snapshot, inspection).

    The features stage calls the ``@njit`` functions on ``book.keys, book.qty,
    book.meta`` directly; this class only bundles them with the tick size.
    """

    def __init__(self, tick_size: float, capacity: int = 8192) -> None:
        if not tick_size > 0:
            raise ValueError(f"tick_size: expected a positive price increment, was {tick_size}")
        self.tick_size = float(tick_size)
        self.keys, self.qty, self.meta = new_book(capacity)

    def load_snapshot(self, side, price, qty, last_update_id: int) -> int:
        """Load a snapshot given float prices; returns the sync state."""
        return int(load_snapshot(self.keys, self.qty, self.meta, np.asarray(side, np.int8),
                                 to_ticks(price, self.tick_size), np.asarray(qty, np.float64),
                                 int(last_update_id)))

    @property
    def state(self) -> int:
        """Sync state, one of ``S_*``."""
        return int(self.meta[M_STATE])

    @property
    def last_update_id(self) -> int:
        return int(self.meta[M_LAST_ID])

    def levels(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """All levels of a side, best first: ``(prices, qty)`` (copies)."""
        n = int(self.meta[side])
        k = self.keys[side, :n][::-1]
        px = (k if side == SIDE_BID else -k) * self.tick_size
        return px, self.qty[side, :n][::-1].copy()
