"""Paper venue: order matching against recorded or live market data.

What it models
--------------
* **Market and marketable limit orders walk the book** by displayed size, one
  fill per price level (so a large order gets partial fills at worse prices).
  Liquidity taken is removed from the venue's copy of the book until the next
  book update replaces it, so two orders on one snapshot cannot both take it.
  A market order's remainder beyond the displayed depth is cancelled
  (``REASON_CXL_NO_LIQUIDITY``, the FSM's ``EXPIRE``).
* **Resting limit orders keep a queue position**: on arrival the quantity
  ahead is the displayed size at that price on that side.  A trade at that
  price by an aggressor on the other side first eats the quantity ahead; only
  the rest fills us.  A trade *through* our price (a sell below our bid) fills
  us up to its size.  A book update that shows less size at our price than is
  ahead of us shrinks the quantity ahead to the displayed size (cancels and
  fills ahead of us); a price level that vanished inside the displayed range
  leaves nobody ahead.  A book update whose other side crosses our price fills
  us (at our price) up to the crossing size: those sellers would have hit us.
* **Instruments quoted by bars only** (an ``MD_BAR`` feed, e.g. ``feed.format: daily``):
  every order waits for the first bar that starts (``ts_exch - bar_ns``) after it
  arrived and fills whole on that bar's open plus the venue's ``bar_half_spread_bps``
  (paid on the order's side); a limit fills at that price if it is inside the limit,
  at the limit if the bar's range (with the half spread) reached it, else it waits.
  An order decided on a bar's close therefore trades on the next bar's open, never on
  the close it saw (``_on_bar``).  No volume cap and no impact yet.
* **Latency**: order entry (router -> venue) and response (venue -> router),
  each constant or sampled from a seeded log-normal; each direction is one
  ordered session, so a message never overtakes the one sent before it.
* **Fees and rebates** in bps of notional: taker on aggressive fills, maker on
  resting fills (negative = rebate).
* **Rejects**: unknown instrument or no book yet, quantity off the lot grid or
  <= 0, limit price NaN/<= 0/off the tick grid or outside the price band.

All matching state lives in numpy arrays changed by ``@njit(cache=True)``
kernels; :class:`PaperVenue` is the thin Python adapter (the
:class:`~alphad.daemon.router.venues.base.VenueAdapter` interface).  :class:`SmartRouter`
routes each order to the venue with the lowest expected all-in cost (fees +
half spread + book-walk impact + a latency penalty) and keeps the order store
in step with the venues' exec reports.

Book arrays
-----------
``book[instrument]`` is ``float64[4, depth]``: rows ``BID_PX, BID_SZ, ASK_PX,
ASK_SZ``, best level first; an empty level has price NaN and size 0.

:func:`load_binance_book` / :func:`load_binance_trades` read the Binance L2
files in ``../shared/data/l2`` (snapshot + diffs rebuilt in plain Python, good
for tests; the production book builder is an ``@njit`` kernel elsewhere).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import msgspec
import numpy as np
from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType, bind
from alphad.daemon.router.order_fsm import (
    ERR_FULL,
    FLAG_FLATTEN,
    LIQ_MAKER,
    LIQ_TAKER,
    REASON_CXL_NO_LIQUIDITY,
    REASON_CXL_REPLACED,
    REASON_CXL_USER,
    REJ_BAD_PRICE,
    REJ_BAD_QTY,
    REJ_CANCEL_UNKNOWN,
    REJ_DUPLICATE_CID,
    REJ_ORIG_UNKNOWN,
    REJ_PRICE_BAND,
    REJ_QUEUE_FULL,
    REJ_REPLACE_BAD_PRICE,
    REJ_REPLACE_UNKNOWN,
    REJ_UNKNOWN_INSTRUMENT,
    TABLE,
    OrderStore,
    Trigger,
    store_add,
    store_apply,
    store_trigger,
)
from alphad.daemon.router.venues.base import ERR_QUEUE_FULL, OPEN_ORDER_DTYPE, SENT, VenueStatus
from alphad.ipc.dtypes import (
    EXEC_ACK,
    EXEC_CANCELED,
    EXEC_DTYPE,
    EXEC_FILL,
    EXEC_PARTIAL,
    EXEC_REJECT,
    MD_DTYPE,
    MD_BAR,
    MD_QUOTE,
    MD_TRADE,
    ORDER_DTYPE,
    ORDER_F_FLATTEN,
    ORDER_LIMIT,
    ORDER_MARKET,
    check_records,
)
from alphad.kernels.grid import on_grid

__all__ = [
    "PaperVenue", "VenueSpec", "VenueStorage", "alloc_storage", "LatencyModel", "SmartRouter",
    "BookStates", "venue_cost_bps", "TAPE_VOLUME", "TAPE_NOTIONAL", "TAPE_LAST",
    "load_binance_book", "load_binance_trades", "BID_PX", "BID_SZ", "ASK_PX", "ASK_SZ",
]

BID_PX, BID_SZ, ASK_PX, ASK_SZ = 0, 1, 2, 3

# -- venue order table / queues ---------------------------------------------------
ST_FREE = 0
ST_RESTING = 1

VORDER_DTYPE = np.dtype(
    [("cid", "u8"), ("seq", "i8"), ("px", "f8"), ("qty", "f8"), ("leaves", "f8"), ("ahead", "f8"),
     ("t_arrive", "i8"), ("instrument", "i4"), ("side", "i1"), ("status", "u1"), ("pad", "u2")],
    align=True,
)

ACT_NEW, ACT_CANCEL, ACT_REPLACE = 1, 2, 3
INQ_DTYPE = np.dtype(
    [("t_arrive", "i8"), ("cid", "u8"), ("new_cid", "u8"), ("qty", "f8"), ("px", "f8"),
     ("t_origin", "i8"), ("instrument", "i4"), ("side", "i1"), ("kind", "u1"), ("action", "u1"),
     ("pad", "u1")],
    align=True,
)

# ctr slots (int64 counters and ring cursors)
C_IN_HEAD, C_IN_TAIL, C_OUT_HEAD, C_OUT_TAIL = 0, 1, 2, 3
C_LAT_E, C_LAT_R, C_LAST_ARRIVE, C_LAST_DELIVER = 4, 5, 6, 7
C_SEQ, C_HWM, C_OUT_DROPPED, C_N_FILLS = 8, 9, 10, 11
N_CTR = 12

# inst columns (float64, per instrument): tick, lot, the venue's net position (its fills),
# and the bars seen (an instrument with bars is filled on bars: ``_on_bar``)
I_TICK, I_LOT, I_POSITION, I_BARS = 0, 1, 2, 3
N_INST = 4

# params slots (float64)
P_TAKER_BPS, P_MAKER_BPS, P_BAND, P_LAT_MS, P_BAR_HALF_SPREAD = 0, 1, 2, 3, 4
N_PARAMS = 5

#: Columns of :attr:`SmartRouter.tape`, per instrument: the market's trade prints seen
#: (cumulative volume and notional, last price).  Paper fills never print there.
TAPE_VOLUME, TAPE_NOTIONAL, TAPE_LAST = 0, 1, 2


class LatencyModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One-way latency: constant, or log-normal with a median and a shape.

    Attributes
    ----------
    median_ns : int
        Median latency (ns); the constant value when ``sigma`` is 0.
    sigma : float
        Log-normal shape (std of log latency); 0 = constant.
    seed : int
        Seed of the sample table, so a backtest is reproducible.
    """

    median_ns: int = 0
    sigma: float = 0.0
    seed: int = 0

    def samples(self, n: int = 4096) -> np.ndarray:
        """Sample table (ns, int64) the kernels cycle through."""
        if self.median_ns < 0 or self.sigma < 0:
            raise ValueError(f"latency expected median_ns >= 0 and sigma >= 0, was "
                             f"{self.median_ns} and {self.sigma}")
        if self.sigma == 0:
            return np.full(1, self.median_ns, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        return np.round(self.median_ns * np.exp(self.sigma * rng.standard_normal(n))).astype(np.int64)


class VenueSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Configuration of one simulated venue.

    Attributes
    ----------
    name : str
    taker_bps, maker_bps : float
        Fees in bps of notional; a negative maker fee is a rebate.
    entry, response : LatencyModel
        Router -> venue and venue -> router latency.
    price_band : float
        Largest accepted |limit / mid - 1| (fraction); beyond it the order is rejected.
    bar_half_spread_bps : float
        Instruments quoted by bars only (no book): the half spread an order pays on its bar's
        open, in bps (``_on_bar``).  2 bps is about the quoted half spread of the daily
        file's large caps.
    """

    name: str
    taker_bps: float = 1.0
    maker_bps: float = 0.0
    entry: LatencyModel = LatencyModel()
    response: LatencyModel = LatencyModel()
    price_band: float = 0.05
    bar_half_spread_bps: float = 2.0


# ---------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------

@njit(cache=True, _nrt=False)
def _lat(lat, ctr, which):
    k = lat.shape[1]
    i = ctr[C_LAT_E + which]
    ctr[C_LAT_E + which] = i + 1
    return lat[which, i % k]


@njit(cache=True, _nrt=False)
def _emit(outq, deliver, ctr, lat, t, t_origin, cid, instrument, side, status, reason,
          fill_qty, fill_px, fee, leaves):
    cap = outq.shape[0]
    tail = ctr[C_OUT_TAIL]
    if tail - ctr[C_OUT_HEAD] >= cap:
        ctr[C_OUT_DROPPED] += 1  # never silently: counted, and tests assert it stays 0
        return
    d = t + _lat(lat, ctr, 1)
    if d < ctr[C_LAST_DELIVER]:  # one ordered session: no overtaking
        d = ctr[C_LAST_DELIVER]
    ctr[C_LAST_DELIVER] = d
    j = tail % cap
    e = outq[j]
    e.t_origin = t_origin
    e.ts = t
    e.client_order_id = cid
    e.instrument = instrument
    e.side = side
    e.status = status
    e.reason = reason
    e.fill_qty = fill_qty
    e.fill_px = fill_px
    e.fee = fee
    e.leaves_qty = leaves
    deliver[j] = d
    ctr[C_OUT_TAIL] = tail + 1


@njit(cache=True, _nrt=False)
def _enqueue(inq, ctr, lat, now, action, cid, new_cid, instrument, side, kind, qty, px, t_origin):
    cap = inq.shape[0]
    tail = ctr[C_IN_TAIL]
    if tail - ctr[C_IN_HEAD] >= cap:
        return ERR_QUEUE_FULL
    t = now + _lat(lat, ctr, 0)
    if t < ctr[C_LAST_ARRIVE]:
        t = ctr[C_LAST_ARRIVE]
    ctr[C_LAST_ARRIVE] = t
    q = inq[tail % cap]
    q.t_arrive = t
    q.cid = cid
    q.new_cid = new_cid
    q.instrument = instrument
    q.side = side
    q.kind = kind
    q.qty = qty
    q.px = px
    q.t_origin = t_origin
    q.action = action
    ctr[C_IN_TAIL] = tail + 1
    return SENT


@njit(cache=True)
def _enqueue_rec(inq, ctr, lat, now, orders, index):
    o = orders[index]
    return _enqueue(inq, ctr, lat, now, ACT_NEW, o.client_order_id, np.uint64(0), o.instrument,
                    o.side, o.kind, o.qty, o.limit_px, o.t_origin)


@njit(cache=True, _nrt=False)
def _find_resting(vorders, ctr, cid):
    for k in range(ctr[C_HWM]):
        if vorders[k].status == ST_RESTING and vorders[k].cid == cid:
            return k
    return -1


@njit(cache=True, _nrt=False)
def _free_slot(vorders, ctr):
    for k in range(ctr[C_HWM]):
        if vorders[k].status == ST_FREE:
            return k
    if ctr[C_HWM] < vorders.shape[0]:
        ctr[C_HWM] += 1
        return ctr[C_HWM] - 1
    return -1


@njit(cache=True, _nrt=False)
def _level_size(book, instrument, side, px, tick):
    # Displayed size at exactly ``px`` on our side; -1 when the price is beyond
    # the displayed depth (unknown), 0 when it is inside the range but empty.
    row = BID_PX if side > 0 else ASK_PX
    depth = book.shape[2]
    last = np.nan
    for j in range(depth):
        lp = book[instrument, row, j]
        if not np.isfinite(lp):
            break
        if abs(lp - px) <= 1e-3 * tick:
            return book[instrument, row + 1, j]
        last = lp
    if not np.isfinite(last):
        return 0.0
    if side > 0:
        return 0.0 if px > last else -1.0
    return 0.0 if px < last else -1.0


@njit(cache=True, _nrt=False)
def _validate(book, inst, params, instrument, kind, qty, px):
    n_instr = book.shape[0]
    if instrument < 0 or instrument >= n_instr:
        return REJ_UNKNOWN_INSTRUMENT
    if not np.isfinite(book[instrument, BID_PX, 0]) and not np.isfinite(book[instrument, ASK_PX, 0]) \
            and inst[instrument, I_BARS] == 0:
        return REJ_UNKNOWN_INSTRUMENT  # no book and no bar yet: the venue does not list it
    lot = inst[instrument, 1]
    if not (qty > 0.0) or not np.isfinite(qty) or not on_grid(qty, lot):
        return REJ_BAD_QTY
    if kind == ORDER_LIMIT:
        tick = inst[instrument, 0]
        if not (px > 0.0) or not np.isfinite(px) or not on_grid(px, tick):
            return REJ_BAD_PRICE
        b = book[instrument, BID_PX, 0]
        a = book[instrument, ASK_PX, 0]
        if np.isfinite(b) and np.isfinite(a):
            mid = 0.5 * (a + b)
            if abs(px / mid - 1.0) > params[P_BAND]:
                return REJ_PRICE_BAND
    elif kind != ORDER_MARKET:
        return REJ_BAD_PRICE
    return 0


@njit(cache=True, _nrt=False)
def _new_order(book, inst, params, vorders, outq, deliver, ctr, lat, t, t_origin, cid,
               instrument, side, kind, qty, px):
    """Accept, match and (for limits) rest one validated order arriving at ``t``."""
    lot = inst[instrument, 1]
    eps = 1e-6 * lot
    slot = -1
    if kind == ORDER_LIMIT:
        slot = _free_slot(vorders, ctr)
        if slot < 0:
            _emit(outq, deliver, ctr, lat, t, t_origin, cid, instrument, side, EXEC_REJECT,
                  REJ_QUEUE_FULL, 0.0, 0.0, 0.0, 0.0)
            return
    if inst[instrument, I_BARS] > 0:  # quoted by bars: the order waits for its bar (_on_bar)
        slot = _free_slot(vorders, ctr) if slot < 0 else slot
        if slot < 0:
            _emit(outq, deliver, ctr, lat, t, t_origin, cid, instrument, side, EXEC_REJECT,
                  REJ_QUEUE_FULL, 0.0, 0.0, 0.0, 0.0)
            return
        _emit(outq, deliver, ctr, lat, t, t_origin, cid, instrument, side, EXEC_ACK, 0, 0.0, 0.0,
              0.0, qty)
        _rest(vorders, ctr, slot, cid, instrument, side, px if kind == ORDER_LIMIT else np.nan, qty, qty, 0.0, t)
        return
    _emit(outq, deliver, ctr, lat, t, t_origin, cid, instrument, side, EXEC_ACK, 0, 0.0, 0.0,
          0.0, qty)
    # Walk the opposite side: one fill per level, best first.
    row = ASK_PX if side > 0 else BID_PX
    taker = params[P_TAKER_BPS] * 1e-4
    leaves = qty
    for j in range(book.shape[2]):
        lp = book[instrument, row, j]
        if not np.isfinite(lp):
            break
        if kind == ORDER_LIMIT and ((side > 0 and lp > px) or (side < 0 and lp < px)):
            break
        sz = book[instrument, row + 1, j]
        if sz <= 0.0:
            continue
        f = leaves if leaves < sz else sz
        book[instrument, row + 1, j] = sz - f
        leaves -= f
        done = leaves <= eps
        if done:
            leaves = 0.0
        ctr[C_N_FILLS] += 1
        inst[instrument, I_POSITION] += side * f
        _emit(outq, deliver, ctr, lat, t, t_origin, cid, instrument, side,
              EXEC_FILL if done else EXEC_PARTIAL, LIQ_TAKER, f, lp, f * lp * taker, leaves)
        if done:
            break
    if leaves <= 0.0:
        if slot >= 0 and slot == ctr[C_HWM] - 1:
            ctr[C_HWM] -= 1  # give back an unused tail slot
        return
    if kind == ORDER_MARKET:
        _emit(outq, deliver, ctr, lat, t, t_origin, cid, instrument, side, EXEC_CANCELED,
              REASON_CXL_NO_LIQUIDITY, 0.0, 0.0, 0.0, 0.0)
        return
    ahead = _level_size(book, instrument, side, px, inst[instrument, 0])
    # Beyond the displayed depth the queue cannot be seen: assume it is long
    # (inf); the first book update that shows the level clips it to the size
    # displayed, and a trade through our price still fills us.
    _rest(vorders, ctr, slot, cid, instrument, side, px, qty, leaves, ahead if ahead >= 0.0 else np.inf, t)


@njit(cache=True, _nrt=False)
def _rest(vorders, ctr, slot, cid, instrument, side, px, qty, leaves, ahead, t):
    o = vorders[slot]
    o.cid = cid
    o.seq = ctr[C_SEQ]
    ctr[C_SEQ] += 1
    o.px = px
    o.qty = qty
    o.leaves = leaves
    o.ahead = ahead
    o.t_arrive = t
    o.instrument = instrument
    o.side = side
    o.status = ST_RESTING


@njit(cache=True, _nrt=False)
def _process(book, inst, params, vorders, inq, outq, deliver, ctr, lat, upto):
    """Handle every inbound request that has reached the venue by ``upto`` (ns)."""
    cap = inq.shape[0]
    while ctr[C_IN_HEAD] < ctr[C_IN_TAIL]:
        q = inq[ctr[C_IN_HEAD] % cap]
        t = q.t_arrive
        if t > upto:
            break
        ctr[C_IN_HEAD] += 1
        if q.action == ACT_NEW:
            if _find_resting(vorders, ctr, q.cid) >= 0:
                _emit(outq, deliver, ctr, lat, t, q.t_origin, q.cid, q.instrument, q.side,
                      EXEC_REJECT, REJ_DUPLICATE_CID, 0.0, 0.0, 0.0, 0.0)
                continue
            r = _validate(book, inst, params, q.instrument, q.kind, q.qty, q.px)
            if r != 0:
                _emit(outq, deliver, ctr, lat, t, q.t_origin, q.cid, q.instrument, q.side,
                      EXEC_REJECT, r, 0.0, 0.0, 0.0, 0.0)
                continue
            _new_order(book, inst, params, vorders, outq, deliver, ctr, lat, t, q.t_origin, q.cid,
                       q.instrument, q.side, q.kind, q.qty, q.px)
        elif q.action == ACT_CANCEL:
            k = _find_resting(vorders, ctr, q.cid)
            if k < 0:
                _emit(outq, deliver, ctr, lat, t, q.t_origin, q.cid, q.instrument, q.side,
                      EXEC_REJECT, REJ_CANCEL_UNKNOWN, 0.0, 0.0, 0.0, 0.0)
                continue
            o = vorders[k]
            o.status = ST_FREE
            _emit(outq, deliver, ctr, lat, t, q.t_origin, o.cid, o.instrument, o.side,
                  EXEC_CANCELED, REASON_CXL_USER, 0.0, 0.0, 0.0, 0.0)
        else:  # ACT_REPLACE
            k = _find_resting(vorders, ctr, q.cid)
            if k < 0:
                _emit(outq, deliver, ctr, lat, t, q.t_origin, q.cid, q.instrument, q.side,
                      EXEC_REJECT, REJ_REPLACE_UNKNOWN, 0.0, 0.0, 0.0, 0.0)
                _emit(outq, deliver, ctr, lat, t, q.t_origin, q.new_cid, q.instrument, q.side,
                      EXEC_REJECT, REJ_ORIG_UNKNOWN, 0.0, 0.0, 0.0, 0.0)
                continue
            o = vorders[k]
            instrument = o.instrument
            side = o.side
            # Never more than the old order still has open: a replace that
            # crossed a fill must not add exposure.
            qty = q.qty if q.qty < o.leaves else o.leaves
            r = _validate(book, inst, params, instrument, ORDER_LIMIT, qty, q.px)
            if r != 0:
                _emit(outq, deliver, ctr, lat, t, q.t_origin, q.cid, instrument, side,
                      EXEC_REJECT, REJ_REPLACE_BAD_PRICE, 0.0, 0.0, 0.0, o.leaves)
                _emit(outq, deliver, ctr, lat, t, q.t_origin, q.new_cid, instrument, side,
                      EXEC_REJECT, r, 0.0, 0.0, 0.0, 0.0)
                continue
            o.status = ST_FREE
            _emit(outq, deliver, ctr, lat, t, q.t_origin, q.cid, instrument, side, EXEC_CANCELED,
                  REASON_CXL_REPLACED, 0.0, 0.0, 0.0, 0.0)
            _new_order(book, inst, params, vorders, outq, deliver, ctr, lat, t, q.t_origin,
                       q.new_cid, instrument, side, ORDER_LIMIT, qty, q.px)


@njit(cache=True, _nrt=False)
def _drain(outq, deliver, ctr, now, out):
    cap = outq.shape[0]
    n = 0
    while ctr[C_OUT_HEAD] < ctr[C_OUT_TAIL] and n < out.shape[0]:
        j = ctr[C_OUT_HEAD] % cap
        if deliver[j] > now:
            break
        out[n] = outq[j]
        n += 1
        ctr[C_OUT_HEAD] += 1
    return n


@njit(cache=True)
def _poll(book, inst, params, vorders, inq, outq, deliver, ctr, lat, now, out):
    _process(book, inst, params, vorders, inq, outq, deliver, ctr, lat, now)
    return _drain(outq, deliver, ctr, now, out)


@njit(cache=True, _nrt=False)
def _fill_resting(vorders, outq, deliver, ctr, lat, params, inst, k, f, t, t_origin):
    # t_origin: of the market event that filled the order, so the router's latency
    # stamp on the report measures that tick to the report leaving.
    o = vorders[k]
    eps = 1e-6 * inst[o.instrument, 1]
    o.leaves -= f
    done = o.leaves <= eps
    if done:
        o.leaves = 0.0
        o.status = ST_FREE
    ctr[C_N_FILLS] += 1
    inst[o.instrument, I_POSITION] += o.side * f
    _emit(outq, deliver, ctr, lat, t, t_origin, o.cid, o.instrument, o.side,
          EXEC_FILL if done else EXEC_PARTIAL, LIQ_MAKER, f, o.px,
          f * o.px * params[P_MAKER_BPS] * 1e-4,
          o.leaves)


@njit(cache=True, _nrt=False)
def _on_trade(book, inst, params, vorders, inq, outq, deliver, ctr, lat, instrument, px, qty,
              aggressor, t, t_origin):
    """A market trade: advance queue positions and fill resting orders it reaches."""
    _process(book, inst, params, vorders, inq, outq, deliver, ctr, lat, t)
    tick = inst[instrument, 0]
    left = qty  # trade volume not yet given to our orders
    for k in range(ctr[C_HWM]):
        o = vorders[k]
        if o.status != ST_RESTING or o.instrument != instrument:
            continue
        if o.side > 0:
            if aggressor > 0 or px > o.px + 1e-3 * tick:
                continue  # a buy aggressor, or a sell above our bid, cannot reach us
            through = px < o.px - 1e-3 * tick
        else:
            if aggressor < 0 or px < o.px - 1e-3 * tick:
                continue
            through = px > o.px + 1e-3 * tick
        if through:
            # Traded through our price: everyone at our level was filled first.
            o.ahead = 0.0
            avail = left
        else:
            used = o.ahead if o.ahead < qty else qty
            o.ahead -= used
            avail = qty - used
            if avail > left:
                avail = left
        # Quantities are decimal lots held in binary floats: a difference under
        # a millionth of a lot is rounding, not volume (no dust fills).
        eps = 1e-6 * inst[instrument, 1]
        if o.ahead <= eps:
            o.ahead = 0.0
        f = o.leaves if o.leaves < avail else avail
        if f > eps:
            left -= f
            _fill_resting(vorders, outq, deliver, ctr, lat, params, inst, k, f, t, t_origin)


@njit(cache=True)
def _on_book(book, inst, params, vorders, inq, outq, deliver, ctr, lat, instrument,
             bid_px, bid_sz, ask_px, ask_sz, t, t_origin):
    """Replace one instrument's displayed book and update queue positions."""
    _process(book, inst, params, vorders, inq, outq, deliver, ctr, lat, t)
    depth = book.shape[2]
    n_b = min(depth, bid_px.shape[0])
    n_a = min(depth, ask_px.shape[0])
    for j in range(depth):
        book[instrument, BID_PX, j] = bid_px[j] if j < n_b else np.nan
        book[instrument, BID_SZ, j] = bid_sz[j] if j < n_b else 0.0
        book[instrument, ASK_PX, j] = ask_px[j] if j < n_a else np.nan
        book[instrument, ASK_SZ, j] = ask_sz[j] if j < n_a else 0.0
    _requeue(book, inst, params, vorders, outq, deliver, ctr, lat, instrument, t, t_origin)


@njit(cache=True, _nrt=False)
def _requeue(book, inst, params, vorders, outq, deliver, ctr, lat, instrument, t, t_origin):
    tick = inst[instrument, 0]
    for k in range(ctr[C_HWM]):
        o = vorders[k]
        if o.status != ST_RESTING or o.instrument != instrument:
            continue
        s = _level_size(book, instrument, o.side, o.px, tick)
        if s >= 0.0 and s < o.ahead:
            o.ahead = s
        # The other side crossing our price: those orders would have traded
        # with us (we are at or ahead of the best price they crossed).
        row = ASK_PX if o.side > 0 else BID_PX
        crossing = 0.0
        for j in range(book.shape[2]):
            lp = book[instrument, row, j]
            if not np.isfinite(lp):
                break
            if (o.side > 0 and lp <= o.px + 1e-3 * tick) or (o.side < 0 and lp >= o.px - 1e-3 * tick):
                crossing += book[instrument, row + 1, j]
            else:
                break
        if crossing > o.ahead:
            f = crossing - o.ahead
            o.ahead = 0.0
            if f > o.leaves:
                f = o.leaves
            _fill_resting(vorders, outq, deliver, ctr, lat, params, inst, k, f, t, t_origin)


@njit(cache=True, _nrt=False)
def _put_top(book, instrument, row, px, sz):
    # A top-of-book quote for one side: drop the levels at or better than the
    # new best, put the new best on top, keep the deeper levels it cannot see.
    if not np.isfinite(px):
        return
    depth = book.shape[2]
    sign = 1.0 if row == BID_PX else -1.0
    drop = 0
    while drop < depth and np.isfinite(book[instrument, row, drop]) and \
            sign * (book[instrument, row, drop] - px) >= 0.0:
        drop += 1
    shift = 1 - drop  # move levels so exactly one slot is free at the top
    if shift > 0:
        for j in range(depth - 1, 0, -1):
            book[instrument, row, j] = book[instrument, row, j - 1]
            book[instrument, row + 1, j] = book[instrument, row + 1, j - 1]
    elif shift < 0:
        for j in range(1, depth):
            src = j - shift
            book[instrument, row, j] = book[instrument, row, src] if src < depth else np.nan
            book[instrument, row + 1, j] = book[instrument, row + 1, src] if src < depth else 0.0
    book[instrument, row, 0] = px
    book[instrument, row + 1, 0] = sz


@njit(cache=True, _nrt=False)
def _on_quote(book, inst, params, vorders, inq, outq, deliver, ctr, lat, instrument,
              bid_px, bid_sz, ask_px, ask_sz, t, t_origin):
    _process(book, inst, params, vorders, inq, outq, deliver, ctr, lat, t)
    _put_top(book, instrument, BID_PX, bid_px, bid_sz)
    _put_top(book, instrument, ASK_PX, ask_px, ask_sz)
    _requeue(book, inst, params, vorders, outq, deliver, ctr, lat, instrument, t, t_origin)


@njit(cache=True, _nrt=False)
def _on_bar(inst, params, vorders, outq, deliver, ctr, lat, instrument, open_, high, low, start, t, t_origin):
    """A bar of an instrument quoted by bars: every order on it that arrived by the bar's
    start (``t - bar_ns``) fills, whole, on this bar; a later one waits for the next bar
    (an order decided on a bar's close never trades on that bar).  Market orders fill at the
    open plus the venue's half spread (``bar_half_spread_bps``, paid on the order's side);
    a buy limit at that price if it is at or under the limit, else at the limit if the
    bar's low plus the half spread reached it, else it waits (a sell mirrors it).  Taker
    fees; the report is stamped at the bar's end ``t``, when the bar is known."""
    hs = params[P_BAR_HALF_SPREAD] * 1e-4
    taker = params[P_TAKER_BPS] * 1e-4
    for k in range(ctr[C_HWM]):
        o = vorders[k]
        if o.status != ST_RESTING or o.instrument != instrument or o.t_arrive > start:
            continue
        px = open_ * (1.0 + o.side * hs)
        if not np.isnan(o.px):  # a limit
            if o.side > 0 and px > o.px:
                px = o.px if low * (1.0 + hs) <= o.px else np.nan
            elif o.side < 0 and px < o.px:
                px = o.px if high * (1.0 - hs) >= o.px else np.nan
        if not (px > 0.0):
            continue
        f = o.leaves
        o.leaves = 0.0
        o.status = ST_FREE
        ctr[C_N_FILLS] += 1
        inst[instrument, I_POSITION] += o.side * f
        _emit(outq, deliver, ctr, lat, t, t_origin, o.cid, instrument, o.side, EXEC_FILL, LIQ_TAKER, f, px,
              f * px * taker, 0.0)
    inst[instrument, I_BARS] += 1


@njit(cache=True, _nrt=False)
def _on_md(book, inst, params, vorders, inq, outq, deliver, ctr, lat, md, n, now):
    # Every record is applied at ``now``: one injected clock drives the venue
    # (exchange stamps come from another clock than the router's).
    for i in range(n):
        m = md[i]
        if m.instrument < 0 or m.instrument >= book.shape[0]:
            continue
        if m.kind == MD_TRADE:
            _on_trade(book, inst, params, vorders, inq, outq, deliver, ctr, lat, m.instrument,
                      m.last_px, m.last_sz, m.aggressor, now, m.t_origin)
        elif m.kind == MD_QUOTE:
            _on_quote(book, inst, params, vorders, inq, outq, deliver, ctr, lat, m.instrument,
                      m.bid_px, m.bid_sz, m.ask_px, m.ask_sz, now, m.t_origin)
        elif m.kind == MD_BAR:
            _process(book, inst, params, vorders, inq, outq, deliver, ctr, lat, now)
            _on_bar(inst, params, vorders, outq, deliver, ctr, lat, m.instrument, m.open_px, m.high_px,
                    m.low_px, m.ts_exch - m.bar_ns, now, m.t_origin)


@njit(cache=True, _nrt=False)
def _on_md_all(book, inst, params, vorders, inq, outq, deliver, ctr, lat, md, n, now, tape):
    # Every venue of a stacked storage in one dispatch (one call per venue cost more),
    # then the trade tape.
    for v in range(book.shape[0]):
        _on_md(book[v], inst[v], params[v], vorders[v], inq[v], outq[v], deliver[v], ctr[v], lat[v],
               md, n, now)
    _tape_on_md(md, n, tape)


@njit(cache=True, _nrt=False)
def _tape_on_md(md, n, tape):
    for j in range(n):
        m = md[j]
        if m.kind == MD_TRADE and 0 <= m.instrument < tape.shape[0] and m.last_sz > 0.0:
            tape[m.instrument, TAPE_VOLUME] += m.last_sz
            tape[m.instrument, TAPE_NOTIONAL] += m.last_sz * m.last_px
            tape[m.instrument, TAPE_LAST] = m.last_px


# ---------------------------------------------------------------------------------
# Python adapter
# ---------------------------------------------------------------------------------

class VenueStorage(NamedTuple):
    """Every venue's state arrays, stacked on a leading venue axis.

    One venue's :class:`PaperVenue` works on views ``field[v]``; the smart router
    hands the whole stack to one ``@njit`` call (choose + send, or poll all),
    so routing an order costs one dispatch instead of one per venue.
    """

    book: np.ndarray      # float64[n_venues, n_instruments, 4, depth]
    inst: np.ndarray      # float64[n_venues, n_instruments, 3]: tick, lot, net position (I_*)
    params: np.ndarray    # float64[n_venues, N_PARAMS]
    vorders: np.ndarray   # VORDER_DTYPE[n_venues, capacity]
    inq: np.ndarray       # INQ_DTYPE[n_venues, queue]
    outq: np.ndarray      # EXEC_DTYPE[n_venues, queue]
    deliver: np.ndarray   # int64[n_venues, queue]: when each report reaches the router
    ctr: np.ndarray       # int64[n_venues, N_CTR]
    lat: np.ndarray       # int64[n_venues, 2, k]: entry / response latency samples (ns)


def alloc_storage(specs: Sequence[VenueSpec], n_instruments: int, *, tick=0.01, lot=1e-5,
                  depth: int = 20, capacity: int = 1024, queue: int = 4096) -> VenueStorage:
    """State arrays for ``len(specs)`` venues (see :class:`VenueStorage`)."""
    n = len(specs)
    if n <= 0 or n_instruments <= 0 or depth <= 0 or capacity <= 0 or queue <= 0:
        raise ValueError(f"venues, n_instruments, depth, capacity, queue expected > 0, was "
                         f"{n}, {n_instruments}, {depth}, {capacity}, {queue}")
    book = np.empty((n, n_instruments, 4, depth))
    book[:, :, BID_PX] = np.nan
    book[:, :, ASK_PX] = np.nan
    book[:, :, BID_SZ] = 0.0
    book[:, :, ASK_SZ] = 0.0
    inst = np.zeros((n, n_instruments, N_INST))
    inst[..., I_TICK] = tick
    inst[..., I_LOT] = lot
    if not (np.all(inst[..., :2] > 0) and np.all(np.isfinite(inst[..., :2]))):
        raise ValueError(f"tick and lot expected finite and > 0, was {tick} and {lot}")
    params = np.array([[sp.taker_bps, sp.maker_bps, sp.price_band,
                        (sp.entry.median_ns + sp.response.median_ns) / 1e6, sp.bar_half_spread_bps] for sp in specs])
    samples = [(sp.entry.samples(), sp.response.samples()) for sp in specs]
    k = max(max(len(e), len(r)) for e, r in samples)
    lat = np.array([[np.resize(e, k), np.resize(r, k)] for e, r in samples], dtype=np.int64)
    def touched(shape, dtype):
        # Pages touched now, not on the first order that reaches them.
        a = np.empty(shape, dtype)
        a.view(np.uint8).fill(0)
        return a

    return VenueStorage(book, inst, params, touched((n, capacity), VORDER_DTYPE),
                        touched((n, queue), INQ_DTYPE), touched((n, queue), EXEC_DTYPE),
                        touched((n, queue), np.int64), touched((n, N_CTR), np.int64), lat)


class PaperVenue:
    """A simulated venue implementing :class:`~alphad.daemon.router.venues.base.VenueAdapter`.

    Parameters
    ----------
    spec : VenueSpec
        Name, fees, latencies, price band.
    n_instruments : int
        Instruments are ids ``0 .. n_instruments-1``; anything else is rejected.
    tick, lot : float or array of float
        Price tick and quantity lot (per instrument when arrays).
    depth : int
        Levels kept per side.
    capacity : int
        Resting orders the venue holds at once.
    queue : int
        Capacity of the inbound and outbound message queues.
    storage, index : VenueStorage, int, optional
        Use row ``index`` of a stacked storage (the smart router's) instead of
        allocating; then tick, lot, depth, capacity and queue come from it.
    """

    def __init__(self, spec: VenueSpec, n_instruments: int, *, tick=0.01, lot=1e-5, depth: int = 20,
                 capacity: int = 1024, queue: int = 4096, storage: VenueStorage | None = None,
                 index: int = 0) -> None:
        if storage is None:
            storage = alloc_storage([spec], n_instruments, tick=tick, lot=lot, depth=depth,
                                    capacity=capacity, queue=queue)
            index = 0
        if storage.book.shape[1] != n_instruments:
            raise ValueError(f"storage expected for {n_instruments} instruments, was "
                             f"{storage.book.shape[1]}")
        self.spec = spec
        self.name = spec.name
        self.taker_bps = float(spec.taker_bps)
        self.maker_bps = float(spec.maker_bps)
        self.expected_latency_ns = int(spec.entry.median_ns + spec.response.median_ns)
        self.survives_restart = False  # it lives in the router process
        (self.book, self.inst, self.params, self.vorders, self.inq, self.outq, self.deliver,
         self.ctr, self.lat) = (a[index] for a in storage)

    # -- requests ----------------------------------------------------------------
    def submit(self, orders: np.ndarray, index: int, now: int) -> int:
        return int(_enqueue_rec(self.inq, self.ctr, self.lat, now, orders, index))

    def submit_fields(self, cid: int, instrument: int, side: int, kind: int, qty: float,
                      limit_px: float, now: int, *, t_origin: int = 0) -> int:
        """:meth:`submit` from plain fields (tests, tools)."""
        return int(_enqueue(self.inq, self.ctr, self.lat, now, ACT_NEW, np.uint64(cid), np.uint64(0),
                            instrument, side, kind, qty, limit_px, t_origin))

    def cancel(self, client_order_id: int, now: int) -> int:
        return int(_enqueue(self.inq, self.ctr, self.lat, now, ACT_CANCEL, np.uint64(client_order_id),
                            np.uint64(0), -1, 0, 0, 0.0, 0.0, 0))

    def replace(self, client_order_id: int, new_client_order_id: int, qty: float, limit_px: float,
                now: int) -> int:
        return int(_enqueue(self.inq, self.ctr, self.lat, now, ACT_REPLACE, np.uint64(client_order_id),
                            np.uint64(new_client_order_id), -1, 0, ORDER_LIMIT, float(qty),
                            float(limit_px), 0))

    # -- market data -------------------------------------------------------------
    def on_md(self, md: np.ndarray, now: int) -> None:
        """MD_DTYPE records, applied at ``now``: trades fill resting orders, quotes
        replace the top level (deeper levels are kept)."""
        _on_md(self.book, self.inst, self.params, self.vorders, self.inq, self.outq, self.deliver,
               self.ctr, self.lat, md, len(md), now)

    def on_book(self, instrument: int, bid_px, bid_sz, ask_px, ask_sz, ts: int) -> None:
        """Replace the displayed book of ``instrument`` with top-N arrays (best first) at ``ts``."""
        if not (0 <= instrument < self.book.shape[0]):
            raise ValueError(f"instrument expected in [0, {self.book.shape[0]}), was {instrument}")
        _on_book(self.book, self.inst, self.params, self.vorders, self.inq, self.outq, self.deliver,
                 self.ctr, self.lat, instrument, np.asarray(bid_px, np.float64),
                 np.asarray(bid_sz, np.float64), np.asarray(ask_px, np.float64),
                 np.asarray(ask_sz, np.float64), ts, ts)

    def on_trade(self, instrument: int, px: float, qty: float, aggressor: int, ts: int) -> None:
        """One trade print; ``aggressor`` +1 buyer, -1 seller, 0 unknown."""
        _on_trade(self.book, self.inst, self.params, self.vorders, self.inq, self.outq, self.deliver,
                  self.ctr, self.lat, instrument, float(px), float(qty), aggressor, ts, ts)

    # -- reports -----------------------------------------------------------------
    def poll(self, now: int, out: np.ndarray) -> int:
        return int(_poll(self.book, self.inst, self.params, self.vorders, self.inq, self.outq,
                         self.deliver, self.ctr, self.lat, now, out))

    def mass_status(self, now: int) -> VenueStatus:
        """Requests that have arrived by ``now`` handled first (their reports wait for
        :meth:`poll`), then the resting orders and those still on their way here."""
        _process(self.book, self.inst, self.params, self.vorders, self.inq, self.outq, self.deliver, self.ctr,
                 self.lat, now)
        rows = []
        for o in self.vorders[: self.ctr[C_HWM]]:
            if o["status"] == ST_RESTING:
                rows.append((o["cid"], o["qty"], o["leaves"], o["px"], o["instrument"], o["side"], ORDER_LIMIT, 0))
        cap = self.inq.shape[0]
        for j in range(self.ctr[C_IN_HEAD], self.ctr[C_IN_TAIL]):
            q = self.inq[j % cap]
            if q["action"] == ACT_NEW:
                rows.append((q["cid"], q["qty"], q["qty"], q["px"], q["instrument"], q["side"], q["kind"], 0))
        return VenueStatus(np.array(rows, OPEN_ORDER_DTYPE), self.inst[:, I_POSITION].copy())

    def resting(self, client_order_id: int) -> np.void | None:
        """The venue's view of a resting order (``px``, ``leaves``, ``ahead``), or None."""
        k = _find_resting(self.vorders, self.ctr, np.uint64(client_order_id))
        return None if k < 0 else self.vorders[k].copy()

    @property
    def dropped_reports(self) -> int:
        return int(self.ctr[C_OUT_DROPPED])


# ---------------------------------------------------------------------------------
# Smart router
# ---------------------------------------------------------------------------------

@njit(cache=True, _nrt=False)
def venue_cost_bps(book, instrument, side, qty, taker_bps, maker_bps, passive):
    """Expected all-in cost of an order on one venue, in bps of the mid.

    Returns
    -------
    (fees, spread, impact) : tuple of float
        ``fees``: taker (or, for a passive order, maker) fee.  ``spread``: half
        the quoted spread (negative for a passive order: it is earned).
        ``impact``: for a taker, the book-walk cost beyond the touch over the
        displayed depth (quantity beyond the depth is priced at the last level
        shown); 0 for a passive order.  All three are ``inf`` without a two-sided book.
    """
    b = book[instrument, BID_PX, 0]
    a = book[instrument, ASK_PX, 0]
    if not (np.isfinite(a) and np.isfinite(b)):
        return np.inf, np.inf, np.inf
    mid = 0.5 * (a + b)
    half = 0.5 * (a - b) / mid * 1e4
    if passive:
        return maker_bps, -half, 0.0
    row = ASK_PX if side > 0 else BID_PX
    touch = book[instrument, row, 0]
    left = qty
    cost = 0.0  # sum over levels of f * |lp - touch|
    last = touch
    for j in range(book.shape[2]):
        lp = book[instrument, row, j]
        if not np.isfinite(lp) or left <= 0.0:
            break
        sz = book[instrument, row + 1, j]
        f = left if left < sz else sz
        cost += f * abs(lp - touch)
        left -= f
        last = lp
    if left > 0.0:
        cost += left * abs(last - touch)
    return taker_bps, half, cost / qty / mid * 1e4


@njit(cache=True, _nrt=False)
def _choose_venue(books, params, lat_bps_per_ms, instrument, side, kind, qty, px):
    best = -1
    best_cost = np.inf
    for v in range(books.shape[0]):
        if instrument < 0 or instrument >= books.shape[1]:
            break
        b = books[v, instrument, BID_PX, 0]
        a = books[v, instrument, ASK_PX, 0]
        passive = False
        if kind == ORDER_LIMIT:
            passive = (side > 0 and not (px >= a)) or (side < 0 and not (px <= b))
        f, s, m = venue_cost_bps(books[v], instrument, side, qty, params[v, P_TAKER_BPS],
                                 params[v, P_MAKER_BPS], passive)
        c = f + s + m + params[v, P_LAT_MS] * lat_bps_per_ms
        if c < best_cost:
            best_cost = c
            best = v
    return best


@njit(cache=True, _nrt=False)
def _route_send(books, params, inq, ctr, lat, lat_bps_per_ms, orders, count, keys, vals, table,
                recs, index, now, expire_at, parent):
    # Choose, record (NEW -> SUBMIT) and enqueue at the venue: one dispatch per order.
    r = recs[index]
    v = _choose_venue(books, params, lat_bps_per_ms, r.instrument, r.side, r.kind, r.qty,
                      r.limit_px)
    if v < 0:
        v = 0  # no venue has a book: the chosen venue rejects it and the FSM records why
    slot = store_add(orders, count, keys, vals, r.client_order_id, r.instrument, r.side, r.kind,
                     r.qty, r.limit_px, now, expire_at, parent, v)
    if slot < 0:
        return slot
    if r.flags & ORDER_F_FLATTEN:
        orders[slot].flags = np.uint8(orders[slot].flags | FLAG_FLATTEN)
    if 0 <= r.instrument < books.shape[1]:  # the quote it met, for the live impact calibration
        orders[slot].arrival_bid = books[v, r.instrument, BID_PX, 0]
        orders[slot].arrival_ask = books[v, r.instrument, ASK_PX, 0]
    sent = _enqueue(inq[v], ctr[v], lat[v], now, ACT_NEW, r.client_order_id, np.uint64(0),
                    r.instrument, r.side, r.kind, r.qty, r.limit_px, r.t_origin)
    if sent != SENT:
        store_trigger(orders, table, slot, 2, 0.0, 0.0, 0.0, now)  # NEW -> REJECTED locally
        return sent
    store_trigger(orders, table, slot, 0, 0.0, 0.0, 0.0, now)
    return v


# Inlined (Numba IR) into its callers so that the views it makes of the stacked arrays
# cost no reference counting across a call: measured 0.2 µs per router step.
@njit(cache=True, inline="always")
def _poll_all(books, inst, params, vorders, inq, outq, deliver, ctr, lat, now, buf, orders, keys,
              vals, table, rstat):
    # Every venue: handle arrived requests, drain due reports into buf, apply
    # them to the order store.  rstat[0] += reports that failed to apply.
    n = 0
    for v in range(books.shape[0]):
        c = ctr[v]
        if c[C_IN_HEAD] == c[C_IN_TAIL] and c[C_OUT_HEAD] == c[C_OUT_TAIL]:
            continue  # nothing in flight on this venue
        _process(books[v], inst[v], params[v], vorders[v], inq[v], outq[v], deliver[v], c, lat[v],
                 now)
        k = _drain(outq[v], deliver[v], c, now, buf[n:])
        if k:
            rstat[0] += store_apply(orders, keys, vals, table, buf[n:], k)
            n += k
    return n


@structref.register
class _SmartStateType(StructRefType):
    pass


class SmartState(structref.StructRefProxy):
    """Every array of a :class:`SmartRouter` (venues, order store, reports, tape) as one object.

    A compiled call unboxes each array argument on entry: ~35-60 ns and a small allocation
    (a NRT MemInfo) per array per call, measured.  With 17 arrays that was more than the
    routing itself; passed as one object they are unboxed once, when it is built.
    """


_STATE_FIELDS = ("book", "inst", "params", "vorders", "inq", "outq", "deliver", "ctr", "lat", "lat_bps",
                 "orders", "count", "keys", "vals", "reports", "rstat", "tape")
structref.define_proxy(SmartState, _SmartStateType, list(_STATE_FIELDS))


@njit(cache=True)
def _new_state(book, inst, params, vorders, inq, outq, deliver, ctr, lat, lat_bps, orders, count, keys, vals,
               reports, rstat, tape):
    # Built by a cached kernel: the proxy's own constructor compiles in every process.
    return SmartState(book, inst, params, vorders, inq, outq, deliver, ctr, lat, lat_bps, orders, count, keys,
                      vals, reports, rstat, tape)


@njit(cache=True)
def _state_send(s, recs, index, now, expire_at, parent):
    return _route_send(s.book, s.params, s.inq, s.ctr, s.lat, s.lat_bps[0], s.orders, s.count, s.keys, s.vals,
                       TABLE, recs, index, now, expire_at, parent)


@njit(cache=True)
def _state_poll(s, now):
    return _poll_all(s.book, s.inst, s.params, s.vorders, s.inq, s.outq, s.deliver, s.ctr, s.lat, now, s.reports,
                     s.orders, s.keys, s.vals, TABLE, s.rstat)


@njit(cache=True, _nrt=False)
def _quiet(ctr):
    # No venue has a request on its way in or an order resting: market data then only
    # moves the books (what _on_md_all would do, nothing to requeue or fill).
    for v in range(ctr.shape[0]):
        if ctr[v, C_IN_HEAD] != ctr[v, C_IN_TAIL] or ctr[v, C_HWM] != 0:
            return False
    return True


@njit(cache=True, _nrt=False)
def _books_on_md(book, inst, md, n, tape):
    # _on_md_all on quiet venues: the quotes onto every venue's book, the bars counted,
    # then the tape.
    for v in range(book.shape[0]):
        for j in range(n):
            m = md[j]
            if not 0 <= m.instrument < book.shape[1]:
                continue
            if m.kind == MD_QUOTE:
                _put_top(book[v], m.instrument, BID_PX, m.bid_px, m.bid_sz)
                _put_top(book[v], m.instrument, ASK_PX, m.ask_px, m.ask_sz)
            elif m.kind == MD_BAR:
                inst[v, m.instrument, I_BARS] += 1
    _tape_on_md(md, n, tape)


@njit(cache=True, _nrt=False)
def _waiting(ctr):
    # Exec reports the venues hold for the router (delivered by the next poll).
    k = 0
    for v in range(ctr.shape[0]):
        k += ctr[v, C_OUT_TAIL] - ctr[v, C_OUT_HEAD]
    return k


@njit(cache=True)
def _state_on_md(s, md, n, now):
    # Each array read from the state costs an atomic reference count (~10 ns here): the
    # quiet path, the common one, reads four of the ten.  Returns the reports waiting: market
    # data can fill resting orders (a trade, a crossing quote, a bar), and those fills must
    # reach risk at this event, not with the next order's poll.
    ctr = s.ctr
    if _quiet(ctr):
        _books_on_md(s.book, s.inst, md, n, s.tape)
    else:
        _on_md_all(s.book, s.inst, s.params, s.vorders, s.inq, s.outq, s.deliver, ctr, s.lat, md, n, now, s.tape)
    return _waiting(ctr)


class SmartRouter:
    """Route orders to the paper venue with the lowest expected all-in cost.

    Parameters
    ----------
    specs : sequence of VenueSpec
        One per simulated venue.
    n_instruments, depth, tick, lot, capacity, queue
        As for :class:`PaperVenue`.
    store : OrderStore, optional
        The order store the router keeps in step with exec reports.
    latency_bps_per_ms : float
        Cost charged per ms of expected round-trip latency (adverse move while
        in flight), bps.  0 ignores latency.
    report_buffer : int
        Reports one :meth:`poll` returns at most (the rest wait for the next poll).
    """

    def __init__(self, specs: Sequence[VenueSpec], n_instruments: int, *, depth: int = 20,
                 tick=0.01, lot=1e-5, capacity: int = 1024, queue: int = 4096,
                 store: OrderStore | None = None, latency_bps_per_ms: float = 0.0,
                 report_buffer: int = 1024) -> None:
        if not specs:
            raise ValueError("specs expected at least one VenueSpec, was empty")
        self.storage = alloc_storage(specs, n_instruments, tick=tick, lot=lot, depth=depth,
                                     capacity=capacity, queue=queue)
        self.books = self.storage.book
        self.venues = [PaperVenue(sp, n_instruments, storage=self.storage, index=i)
                       for i, sp in enumerate(specs)]
        self.store = store if store is not None else OrderStore()
        self.reports = np.zeros(report_buffer, dtype=EXEC_DTYPE)
        self._rstat = np.zeros(1, dtype=np.int64)
        #: Trade prints per instrument, columns ``TAPE_*`` (fed by :meth:`on_md`).
        self.tape = np.zeros((n_instruments, 3))
        self.tape[:, TAPE_LAST] = np.nan
        self._lat_bps = np.zeros(1)
        self.lat_bps_per_ms = latency_bps_per_ms
        st, sg = self.store, self.storage
        #: The arrays above as one object, what the compiled entry points take.
        self.state = _new_state(sg.book, sg.inst, sg.params, sg.vorders, sg.inq, sg.outq, sg.deliver, sg.ctr,
                                sg.lat, self._lat_bps, st.orders, st.count, st.keys, st.vals, self.reports,
                                self._rstat, self.tape)
        # Bound once (measured: 4 record arrays, 1.0 us via the dispatcher, 0.3 us via the bound
        # entry point); :meth:`send` and :meth:`on_md` check the arrays that come from outside.
        self._send_ep = bind(_state_send, self.state, np.zeros(1, ORDER_DTYPE), 0, 0, 0, 0)
        self._poll_ep = bind(_state_poll, self.state, 0)
        self._md_ep = bind(_state_on_md, self.state, np.zeros(1, MD_DTYPE), 0, 0)
        self._checked = None  # the last orders / md arrays whose type was checked
        self._md_checked = None

    @property
    def lat_bps_per_ms(self) -> float:
        """Latency cost, bps per ms of expected round trip (settable)."""
        return float(self._lat_bps[0])

    @lat_bps_per_ms.setter
    def lat_bps_per_ms(self, value: float) -> None:
        if not (value >= 0 and np.isfinite(value)):
            raise ValueError(f"latency_bps_per_ms expected finite and >= 0, was {value}")
        self._lat_bps[0] = value  # in place: the compiled state holds this array

    @property
    def failed_reports(self) -> int:
        """Reports the store could not apply (unknown id or invalid transition)."""
        return int(self._rstat[0])

    def costs(self, instrument: int, side: int, qty: float, *, passive: bool = False) -> np.ndarray:
        """``float64[n_venues, 4]``: fees, spread, impact, latency cost (bps) per venue."""
        out = np.empty((len(self.venues), 4))
        p = self.storage.params
        for v in range(len(self.venues)):
            out[v, :3] = venue_cost_bps(self.books[v], instrument, side, float(qty),
                                        p[v, P_TAKER_BPS], p[v, P_MAKER_BPS], passive)
            out[v, 3] = p[v, P_LAT_MS] * self.lat_bps_per_ms
        return out

    def send(self, orders: np.ndarray, index: int, now: int, *, expire_at: int = 0,
             parent: int = -1) -> int:
        """Route ``orders[index]`` (ORDER_DTYPE): record it, pick a venue, send it.

        Returns
        -------
        int
            The venue index, or ``ERR_DUPLICATE_CID`` when the client id is known
            (a replayed decision: nothing is sent), or another negative ERR code
            (``ERR_QUEUE_FULL``: recorded as REJECTED, not sent).
        """
        if orders is not self._checked:
            check_records(orders, ORDER_DTYPE, "orders")
            self._checked = orders
        if not 0 <= index < orders.shape[0]:
            raise IndexError(f"index expected in [0, {orders.shape[0]}), was {index}")
        v = self._send_ep(self.state, orders, index, now, expire_at, parent)
        if v == ERR_FULL:
            raise ValueError(f"order store full: capacity {self.store.orders.shape[0]} was reached")
        return v

    def cancel(self, cid: int, now: int) -> int:
        """Send a cancel for ``cid`` to its venue (FSM: CANCEL_REQUEST first)."""
        slot = self.store.find(cid)
        if slot < 0:
            raise KeyError(f"client order id {cid} is not in the store")
        self.store.trigger(cid, Trigger.CANCEL_REQUEST, now)  # raises when not cancellable
        return self.venues[int(self.store.orders[slot]["venue"])].cancel(cid, now)

    def replace(self, cid: int, new_cid: int, qty: float, limit_px: float, now: int) -> int:
        """Cancel/replace ``cid`` on its venue by ``new_cid`` (same venue: a replace
        cannot move venues).  The store records the new order (NEW -> SUBMIT) and
        the old one's REPLACE_REQUEST; returns SENT, or ``ERR_DUPLICATE_CID`` when
        ``new_cid`` is known (a replay: nothing is sent)."""
        slot = self.store.find(cid)
        if slot < 0:
            raise KeyError(f"client order id {cid} is not in the store")
        old = self.store.orders[slot]
        new_slot = self.store.add(new_cid, int(old["instrument"]), int(old["side"]), ORDER_LIMIT,
                                  qty, limit_px, now, parent=int(old["parent"]), venue=int(old["venue"]))
        if new_slot < 0:
            return new_slot
        self.store.trigger(cid, Trigger.REPLACE_REQUEST, now)  # raises when not replaceable
        self.store.trigger(new_cid, Trigger.SUBMIT, now)
        return self.venues[int(old["venue"])].replace(cid, new_cid, qty, limit_px, now)

    def poll(self, now: int) -> int:
        """Collect every venue's due reports into :attr:`reports` and apply them to the
        store; returns how many (``self.reports[:n]``)."""
        return self._poll_ep(self.state, now)

    def on_md(self, md: np.ndarray, n: int, now: int) -> int:
        """``md[:n]`` (MD_DTYPE) to every venue at ``now`` and onto :attr:`tape`, in one
        compiled call; returns the exec reports waiting for :meth:`poll` (fills the market
        data caused, or reports not yet due)."""
        if md is not self._md_checked:
            check_records(md, MD_DTYPE, "md")
            self._md_checked = md
        if not 0 <= n <= md.shape[0]:
            raise IndexError(f"n expected in [0, {md.shape[0]}], was {n}")
        return self._md_ep(self.state, md, n, now)

    def on_book(self, instrument: int, bid_px, bid_sz, ask_px, ask_sz, ts: int) -> None:
        """Same displayed book to every venue (a backtest with one consolidated feed)."""
        for venue in self.venues:
            venue.on_book(instrument, bid_px, bid_sz, ask_px, ask_sz, ts)


# ---------------------------------------------------------------------------------
# Binance L2 loader (snapshot + diffs -> book states at chosen instants)
# ---------------------------------------------------------------------------------

class BookStates(NamedTuple):
    """Book states at requested instants; arrays are ``[n_instants, depth]``, best first."""

    ts: np.ndarray          # requested instants, ns (local receive clock)
    update_id: np.ndarray   # last applied Binance final_update_id at each instant
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


def _read_csv(path: Path, symbol: str, columns: list[str]):
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"Binance L2 file expected at {path}, was missing")
    df = pd.read_csv(path, usecols=columns, dtype={"symbol": str}, engine="c")
    df = df[df["symbol"] == symbol]
    if df.empty:
        raise ValueError(f"symbol expected in {path.name}, was {symbol!r} (no rows)")
    return df


def load_binance_book(l2_dir: str | Path, symbol: str, at_ns: Sequence[int], depth: int = 20
                      ) -> BookStates:
    """Rebuild the Binance book (snapshot + diffs) and sample it at instants.

    Follows ``l2/README``: start from the REST snapshot, skip diff messages with
    ``final_update_id <= lastUpdateId``, apply the rest in order.  The state at
    an instant ``t`` is the book after every diff row with ``local_ts_ns <= t``.

    Parameters
    ----------
    l2_dir : path
        The ``l2`` folder of the shared data.
    symbol : str
        ``"BTCUSDT"`` or ``"ETHUSDT"``.
    at_ns : sequence of int
        Instants (local receive clock, ns), ascending.
    depth : int
        Levels per side to return.
    """
    l2_dir = Path(l2_dir)
    at = np.asarray(at_ns, dtype=np.int64)
    if at.ndim != 1 or (len(at) > 1 and np.any(np.diff(at) < 0)):
        raise ValueError("at_ns expected a 1-D ascending sequence of ns instants, was not sorted")
    snap = _read_csv(l2_dir / "binance_spot_depth_snapshot.csv.gz", symbol,
                     ["symbol", "local_ts_ns", "last_update_id", "side", "price", "qty"])
    last_id = int(snap["last_update_id"].iloc[0])
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for side, p, q in zip(snap["side"].to_numpy(), snap["price"].to_numpy(), snap["qty"].to_numpy()):
        (bids if side == "bid" else asks)[float(p)] = float(q)
    upd = _read_csv(l2_dir / "binance_spot_depth_updates.csv.gz", symbol,
                    ["symbol", "local_ts_ns", "final_update_id", "side", "price", "qty"])
    ts = upd["local_ts_ns"].to_numpy(np.int64)
    uid = upd["final_update_id"].to_numpy(np.int64)
    is_bid = (upd["side"].to_numpy() == "bid")
    px = upd["price"].to_numpy(np.float64)
    qty = upd["qty"].to_numpy(np.float64)
    n_at = len(at)
    out = BookStates(at.copy(), np.zeros(n_at, np.int64),
                     np.full((n_at, depth), np.nan), np.zeros((n_at, depth)),
                     np.full((n_at, depth), np.nan), np.zeros((n_at, depth)))
    cur_id = last_id
    j = 0
    n = len(ts)

    def sample(k: int) -> None:
        b = sorted(bids.items(), reverse=True)[:depth]
        a = sorted(asks.items())[:depth]
        out.update_id[k] = cur_id
        out.bid_px[k, :len(b)] = [p for p, _ in b]
        out.bid_sz[k, :len(b)] = [q for _, q in b]
        out.ask_px[k, :len(a)] = [p for p, _ in a]
        out.ask_sz[k, :len(a)] = [q for _, q in a]

    for k in range(n_at):
        while j < n and ts[j] <= at[k]:
            if uid[j] > last_id:
                book = bids if is_bid[j] else asks
                if qty[j] == 0.0:
                    book.pop(px[j], None)
                else:
                    book[px[j]] = qty[j]
                cur_id = int(uid[j])
            j += 1
        sample(k)
    return out


def load_binance_trades(l2_dir: str | Path, symbol: str) -> dict[str, np.ndarray]:
    """Trades of ``symbol``: ``ts`` (local ns), ``trade_id``, ``price``, ``qty``,
    ``aggressor`` (+1 buyer aggressor, -1 seller: ``is_buyer_maker`` True)."""
    df = _read_csv(Path(l2_dir) / "binance_spot_trades.csv.gz", symbol,
                   ["symbol", "local_ts_ns", "trade_id", "price", "qty", "is_buyer_maker"])
    maker = df["is_buyer_maker"].astype(str).str.lower().to_numpy() == "true"
    return {
        "ts": df["local_ts_ns"].to_numpy(np.int64),
        "trade_id": df["trade_id"].to_numpy(np.int64),
        "price": df["price"].to_numpy(np.float64),
        "qty": df["qty"].to_numpy(np.float64),
        "aggressor": np.where(maker, -1, 1).astype(np.int8),
    }

