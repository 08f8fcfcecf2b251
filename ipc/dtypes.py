"""The IPC contract: every record that crosses a shared-memory ring.

Each record is an aligned numpy structured dtype, defined here once.  A ring
header stores :data:`LAYOUT_VERSION` and the dtype description of its records;
attaching with a different layout raises :class:`alphad.ipc.ring.LayoutMismatch`.

Conventions
-----------
* ``t_origin``: CLOCK_MONOTONIC ns, stamped once when the feed parsed the event,
  carried unchanged downstream; tick-to-trade is ``now - t_origin`` at the router.
* ``ts_exch``: the venue's event time, ns since the Unix epoch (UTC).
* ``ts_recv``: CLOCK_REALTIME ns when the feed received the event.
* ``ts``: when the stage that wrote the record produced it (stage clock, ns).
* Prices are float64 in quote currency; quantities float64 in shares/base units.
* Instruments are small integer ids (``instrument``), the index into the universe.

Bump :data:`LAYOUT_VERSION` whenever any dtype below changes.
"""
from __future__ import annotations

import numpy as np

#: Written into every ring header; a reader built against another version refuses to attach.
LAYOUT_VERSION = 3

#: Number of float32 slots in a feature row; the active feature list uses the first ``n``.
MAX_FEATURES = 32

# -- md.kind -----------------------------------------------------------------
#: Top-of-book quote: bid/ask price and size are valid.
MD_QUOTE = 1
#: Trade print: ``last_px``/``last_sz`` valid; ``aggressor`` is +1 buy, -1 sell, 0 unknown.
MD_TRADE = 2
#: md.flags bit: an event before ``feed.trade_from``: it warms the stages' state (features,
#: marks, the venue's books) but makes no feature row, so nothing trades on it.
MD_F_WARMUP = 1

#: OHLCV bar, emitted at its close: ``open_px``/``high_px``/``low_px``, ``last_px`` the
#: close, ``last_sz`` the volume, ``bar_ns`` its interval (``ts_exch`` is its end).
MD_BAR = 3

MD_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts_exch", "i8"),
        ("ts_recv", "i8"),
        ("seq", "u8"),          # feed sequence number, strictly increasing per feed
        ("instrument", "i4"),
        ("kind", "u1"),
        ("aggressor", "i1"),
        ("flags", "u2"),
        ("bid_px", "f8"),
        ("bid_sz", "f8"),
        ("ask_px", "f8"),
        ("ask_sz", "f8"),
        ("last_px", "f8"),
        ("last_sz", "f8"),
        ("open_px", "f8"),      # bars only (unset on quotes and trades), as bar_ns
        ("high_px", "f8"),
        ("low_px", "f8"),
        ("bar_ns", "i8"),
    ],
    align=True,
)

FEATURE_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts", "i8"),
        ("seq", "u8"),          # md seq that triggered the row
        ("instrument", "i4"),
        ("n", "i4"),            # number of valid entries in ``x``
        ("mid", "f8"),          # mid price when the row was computed (reference for sizing)
        # sizing's inputs, kept by the features stage (daemon/features/regime.py); NaN: none
        ("vix", "f8"),          # VIX level last seen
        ("p_bull", "f8"),       # HMM filter on the index: P(bull), P(bear), P(sideways)
        ("p_bear", "f8"),
        ("p_sideways", "f8"),
        ("variance", "f8"),     # GARCH one-period-ahead variance of this instrument's returns (decimal)
        ("half_spread", "f8"),  # half the quoted spread, fraction of the mid (quotes only)
        ("adv", "f8"),          # average traded value per bar, quote currency (impact)
        ("x", "f4", (MAX_FEATURES,)),
    ],
    align=True,
)

SIGNAL_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts", "i8"),
        ("seq", "u8"),
        ("instrument", "i4"),
        ("code", "i2"),         # SIZE_* code of the sizing (daemon/risk/codes.py)
        ("flags", "u2"),        # SIG_F_* bits
        ("prediction", "f8"),   # raw model output (forward return forecast)
        ("target_weight", "f8"),  # signed fraction of equity (SIG_F_SIZED: before risk's multiplier and cap)
        ("ref_px", "f8"),       # mid price the decision was made at
        # why the weight (SIG_F_SIZED): the multipliers infer applied, and the cost inputs
        # risk's benefit/cost filter needs (daemon/infer/sizing.py)
        ("m_conviction", "f8"),
        ("m_kelly", "f8"),
        ("m_regime", "f8"),
        ("m_vix", "f8"),
        ("m_vol", "f8"),
        ("half_spread", "f8"),
        ("daily_vol", "f8"),
        ("adv", "f8"),
    ],
    align=True,
)

#: signal.flags: the weight comes from the full sizing (``risk.sizing``): risk still applies
#: the drawdown ladder's multiplier, the per-position cap and the benefit/cost filter.
SIG_F_SIZED = 1

# -- order.side / exec.side ----------------------------------------------------
SIDE_BUY = 1
SIDE_SELL = -1

# -- order.kind ----------------------------------------------------------------
ORDER_MARKET = 1
ORDER_LIMIT = 2

#: order.flags: a flatten order (``ctl flatten`` or the drawdown KILL step).  The router
#: sends it at once, never through the configured execution algorithm: closing out must
#: not wait for a TWAP schedule.
ORDER_F_FLATTEN = 1
#: order.flags: a sector rebalancer's trim (reduce-only, through the gate like any order).
ORDER_F_TRIM = 2

ORDER_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts", "i8"),
        ("client_order_id", "u8"),  # deterministic from (instrument, decision seq): replays never double-send
        ("instrument", "i4"),
        ("side", "i1"),
        ("kind", "u1"),
        ("flags", "u2"),        # ORDER_F_* bits
        ("qty", "f8"),
        ("limit_px", "f8"),     # NaN for market orders
        # why this size (journaled with the order): the prediction, the final target weight
        # and each multiplier of the sizing; NaN where it did not apply (flatten, trims,
        # the linear sizing of a config without risk.sizing)
        ("prediction", "f8"),
        ("target_weight", "f8"),
        ("m_conviction", "f8"),
        ("m_kelly", "f8"),
        ("m_regime", "f8"),
        ("m_vix", "f8"),
        ("m_vol", "f8"),
        ("m_risk", "f8"),
    ],
    align=True,
)

# -- exec.status ---------------------------------------------------------------
EXEC_ACK = 1
EXEC_PARTIAL = 2
EXEC_FILL = 3
EXEC_REJECT = 4
EXEC_CANCELED = 5

EXEC_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts", "i8"),
        ("client_order_id", "u8"),
        ("instrument", "i4"),
        ("side", "i1"),
        ("status", "u1"),
        ("reason", "u2"),       # reject reason code, 0 when none
        ("fill_qty", "f8"),
        ("fill_px", "f8"),
        ("fee", "f8"),          # quote currency, positive = paid
        ("leaves_qty", "f8"),
    ],
    align=True,
)

#: A pre-trade gate denial, journaled by the supervisor (reason codes: daemon/risk_codes.py).
DENIAL_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts", "i8"),
        ("seq", "u8"),          # md seq of the tick that led to the decision
        ("instrument", "i4"),
        ("reason", "i2"),
        ("side", "i1"),         # side of the order that was denied (0 when no order was formed)
        ("pad", "u1"),
        ("qty", "f8"),
        ("target_weight", "f8"),
        ("ref_px", "f8"),
    ],
    align=True,
)

#: The quote an order met when the router handed it to the venue (its arrival price),
#: journaled for transaction-cost analysis.
ARRIVAL_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts", "i8"),
        ("client_order_id", "u8"),
        ("instrument", "i4"),
        ("side", "i1"),
        ("pad", "u1"),
        ("pad2", "u2"),
        ("qty", "f8"),
        ("bid", "f8"),          # best bid / ask at hand-over (NaN when the venue had none)
        ("ask", "f8"),
    ],
    align=True,
)

# -- router <-> gateway (one gateway process per live venue) ---------------------
#: venue_req.action: send a new order / cancel one / ask the venue what became of one /
#: replace one (``orig_cid``) by a new one (``client_order_id``, its quantity and limit).
REQ_NEW = 1
REQ_CANCEL = 2
REQ_QUERY = 3
REQ_REPLACE = 4

#: venue_req.tif (time in force) and venue_req.kind (0 market, 1 limit at limit_px; not ORDER_DTYPE's codes).
TIF_DAY = 0
TIF_GTC = 1
TIF_IOC = 2

#: A request from the router to a venue's gateway process (ring ``venue_orders``).
VENUE_REQ_DTYPE = np.dtype(
    [
        ("t_origin", "i8"),
        ("ts", "i8"),
        ("client_order_id", "u8"),
        ("instrument", "i4"),
        ("side", "i1"),
        ("action", "u1"),
        ("kind", "u1"),
        ("tif", "u1"),
        ("qty", "f8"),
        ("limit_px", "f8"),
        ("known_filled", "f8"),  # REQ_QUERY: filled qty the router has heard of (-1: unknown)
        ("orig_cid", "u8"),      # REQ_REPLACE: the order replaced (0 otherwise)
    ],
    align=True,
)

#: exec.status from a gateway only (never passed on to risk): an order the venue still
#: works, as the gateway has reported it so far: ``fill_qty`` = the order's qty,
#: ``leaves_qty`` = qty less the fills already reported, ``fill_px`` = its limit (NaN:
#: market).  Sent for every open order when a gateway starts and in answer to a
#: ``REQ_QUERY``; a router adopts the orders it does not know (it was restarted).
#: ``reason`` 1: still working; 0 (a query's answer only): ended, its end already reported.
EXEC_STATUS = 6

#: Every ring record type by the name used in config and ring headers.
RECORDS = {
    "md": MD_DTYPE,
    "features": FEATURE_DTYPE,
    "signals": SIGNAL_DTYPE,
    "orders": ORDER_DTYPE,
    "exec": EXEC_DTYPE,
    "denials": DENIAL_DTYPE,
    "arrivals": ARRIVAL_DTYPE,
}


def check_records(arr, dtype: np.dtype, what: str) -> None:
    """Raise ``ValueError`` unless ``arr`` is a writeable, aligned, 1-D C-contiguous array of
    ``dtype``: the only layout the compiled step functions are bound to."""
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1 \
            or not (arr.flags.c_contiguous and arr.flags.writeable and arr.flags.aligned):
        kind = next((k for k, d in RECORDS.items() if d == dtype), str(dtype))
        raise ValueError(f"{what} expected a writeable 1-D C-contiguous array of {kind!r} records "
                         f"(ipc/dtypes.py), was {getattr(arr, 'dtype', type(arr))}")


def describe(dtype: np.dtype) -> str:
    """Canonical text of a dtype's layout, stored in ring headers and compared on attach."""
    fields = []
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        fields.append(f"{name}:{sub.str}{list(sub.shape) if sub.shape else ''}@{offset}")
    return f"v{LAYOUT_VERSION};size={dtype.itemsize};" + ",".join(fields)
