"""The gateway block: a live venue's gateway process state that outlives the process.

One segment per instance with a live venue (``<prefix>.gateway``), created by the
supervisor.  It holds

* ``words`` (int64): the gateway's pid, READY flag, heartbeat and counters, read by the
  supervisor (supervision, ``ctl status``) and the metrics exporter;
* ``account`` (float64): cash, equity, buying power and when they were read;
* ``positions`` (float64 per instrument): the venue's net position, as last read;
* ``orders`` (:data:`GW_ORDER_DTYPE`): every order the gateway has taken from the router
  and not yet forgotten, with the filled quantity it has *reported* to the router.

The order table is what makes the gateway crash-only: a restarted gateway finds every
order its predecessor sent (or was sending) and asks the venue for each by client order
id, reporting only what was not reported yet, so no fill is lost or counted twice and no
order is sent again.  A restarted router reads the same table to adopt the orders still
working (:meth:`alphad.daemon.router.live.LiveRouterCore.reconcile`).
"""
from __future__ import annotations

import numpy as np

from .shm import Segment

MAGIC = int.from_bytes(b"ALPHDGW1", "little")

# -- words ---------------------------------------------------------------------------
G_MAGIC, G_PID, G_READY, G_HEARTBEAT = 0, 1, 2, 3
#: Starts of the gateway process in this instance (1 = the first).
G_STARTS = 4
#: 1 while the venue's order-event stream is connected and authorised.
G_STREAM_UP = 5
#: Stream (re)connections after the first, HTTP errors (5xx, timeouts, refused
#: connections), HTTP 429 answers, requests retried after a 429.
G_RECONNECTS, G_HTTP_ERRORS, G_RATE_LIMITED = 6, 7, 8
#: Orders sent, definite rejects from the venue, queries by client order id answered.
G_SENT, G_REJECTS, G_QUERIES = 9, 10, 11
#: Orders whose fate is unknown now (a 5xx, timeout or disconnect; settled by a query).
G_UNKNOWN = 12
#: Fills the gateway learnt from a query rather than the stream (missed events made good).
G_RECOVERED_FILLS = 13
#: monotonic ns of the last positions/account read; its duration in µs.
G_POSITIONS_TS, G_POSITIONS_US = 14, 15
#: Orders, cancels and queries taken from the router (requests popped).
G_REQUESTS = 16
#: Last start-up reconciliation: orders asked about, of which were still open.
G_RECON_ASKED, G_RECON_OPEN = 17, 18
#: Position differences with the broker booked its way (the venue wins; an alert each).
G_ADJUSTMENTS = 19
#: Connections lost (the venue's link, not the process), and data farms reported broken now.
G_DISCONNECTS, G_FARMS_DOWN = 20, 21
N_WORDS = 32

# -- account -------------------------------------------------------------------------
A_CASH, A_EQUITY, A_BUYING_POWER = 0, 1, 2
N_ACCOUNT = 4

# -- order table -----------------------------------------------------------------------
#: gw_order.state
GS_FREE = 0
#: Taken from the router; the request is on its way (or its answer never came).
GS_SENDING = 1
#: Accepted by the venue, working.
GS_OPEN = 2
#: Fate unknown (a 5xx, timeout or disconnect, or found so at start): ask the venue.
GS_UNKNOWN = 3
#: Ended; its end reported to the router.
GS_DONE = 4

GW_ORDER_DTYPE = np.dtype(
    [
        ("client_order_id", "u8"),
        ("t_origin", "i8"),
        ("updated", "i8"),      # monotonic ns of the last change
        ("instrument", "i4"),
        ("side", "i1"),
        ("state", "u1"),
        ("kind", "u1"),
        ("tif", "u1"),
        ("qty", "f8"),
        ("limit_px", "f8"),
        ("reported", "f8"),     # filled qty reported to the router (exec reports pushed)
        ("reported_value", "f8"),  # sum of fill_qty * fill_px reported
        ("acked", "u1"),
        ("pad", "u1", (7,)),
        ("replaces", "u8"),     # a replacement: the order it replaces (0: none)
    ],
    align=True,
)

#: Orders the table holds at once (ended ones are reused first).
CAPACITY = 4096


def _layout(n_instruments: int, capacity: int) -> tuple[int, int, int, int]:
    words = N_WORDS * 8
    account = words + N_ACCOUNT * 8
    positions = account + n_instruments * 8
    size = positions + capacity * GW_ORDER_DTYPE.itemsize
    return words, account, positions, size


class GatewayBlock:
    """The mapped segment; ``words``, ``account``, ``positions`` and ``orders`` are views."""

    def __init__(self, segment: Segment, n_instruments: int, capacity: int):
        self.segment = segment
        w, a, p, size = _layout(n_instruments, capacity)
        if segment.size != size:
            raise RuntimeError(f"gateway segment {segment.path}: expected {size} bytes for {n_instruments} "
                               f"instruments and {capacity} orders, found {segment.size}")
        buf = segment.buf
        self.words = buf[:w].view(np.int64)
        self.account = buf[w:a].view(np.float64)
        self.positions = buf[a:p].view(np.float64)
        self.orders = buf[p:size].view(GW_ORDER_DTYPE)

    @classmethod
    def create(cls, name: str, n_instruments: int, capacity: int = CAPACITY) -> "GatewayBlock":
        seg = Segment.create(name, _layout(n_instruments, capacity)[3])
        block = cls(seg, n_instruments, capacity)
        block.positions[:] = np.nan  # never read yet: unknown, never flat
        block.words[G_MAGIC] = MAGIC
        return block

    @classmethod
    def attach(cls, name: str, n_instruments: int, capacity: int = CAPACITY) -> "GatewayBlock":
        block = cls(Segment.attach(name), n_instruments, capacity)
        if block.words[G_MAGIC] != MAGIC:
            raise RuntimeError(f"{block.segment.path} is not an alphad gateway segment (bad magic)")
        return block

    # -- the order table (Python: the gateway is an I/O process) -------------------------
    def find(self, cid: int) -> int:
        """Row of ``cid`` or -1."""
        rows = np.flatnonzero(self.orders["client_order_id"] == np.uint64(cid))
        return int(rows[0]) if len(rows) else -1

    def enter(self, cid: int, instrument: int, side: int, kind: int, tif: int, qty: float, limit_px: float,
              t_origin: int, now: int, *, state: int = GS_SENDING, reported: float = 0.0,
              reported_value: float = 0.0, replaces: int = 0) -> int:
        """A new row for ``cid`` (a free one, else the longest-ended); -1 when every row is
        working (the order must then be refused, never sent untracked)."""
        o = self.orders
        free = np.flatnonzero(o["state"] == GS_FREE)
        if len(free):
            j = int(free[0])
        else:
            done = np.flatnonzero(o["state"] == GS_DONE)
            if not len(done):
                return -1
            j = int(done[np.argmin(o["updated"][done])])
        o[j] = (cid, t_origin, now, instrument, side, state, kind, tif, qty, limit_px, reported, reported_value,
                0, np.zeros(7, np.uint8), replaces)
        return j

    def replacement_of(self, cid: int) -> int:
        """Row of the newest order that replaces ``cid`` or -1."""
        rows = np.flatnonzero(self.orders["replaces"] == np.uint64(cid))
        return int(rows[np.argmax(self.orders["updated"][rows])]) if len(rows) else -1

    def open_rows(self) -> np.ndarray:
        """Rows of orders not ended (sending, open or unknown)."""
        st = self.orders["state"]
        return np.flatnonzero((st == GS_SENDING) | (st == GS_OPEN) | (st == GS_UNKNOWN))

    def close(self) -> None:
        self.words = self.account = self.positions = self.orders = None
        self.segment.close()
