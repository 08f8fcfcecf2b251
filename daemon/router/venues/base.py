"""The venue-adapter interface: what the router stage calls on every venue.

The paper venue (:mod:`alphad.daemon.router.venues.paper`) implements it first; broker
adapters (Alpaca, IB) implement it later.  The router never knows which one it
talks to.

Contract
--------
* Time is injected: every call takes ``now`` (ns, the router's clock); an
  adapter never reads a clock inside its logic.
* Requests (``submit``, ``cancel``, ``replace``) return an int code at once:
  :data:`SENT` (0) when the request left for the venue, or a negative
  ``ERR_*`` code when the adapter could not send it (its queue is full).  The
  venue's answer always arrives later as exec reports from :meth:`poll`.
* Exec reports are ``EXEC_DTYPE`` records (:mod:`alphad.ipc.dtypes`).  Their
  ``reason`` field uses the codes in :mod:`alphad.daemon.router.order_fsm`
  (``REASON_CXL_*`` on ``EXEC_CANCELED``, ``REJ_*`` on ``EXEC_REJECT``, where
  100..199 is a refused cancel and 200..299 a refused replace), so
  :func:`alphad.daemon.router.order_fsm.exec_trigger` maps every report to one FSM
  trigger whatever the venue.
* A replace answers on both ids: the old order gets ``EXEC_CANCELED`` with
  ``REASON_CXL_REPLACED`` (or ``EXEC_REJECT`` with a 2xx reason) and the new one
  ``EXEC_ACK`` (or ``EXEC_REJECT``).  The new order's quantity never exceeds the
  old order's open quantity at the venue; the ACK's ``leaves_qty`` says what it is.
* ``fee`` on a fill is in quote currency, positive = paid, negative = rebate.
* :meth:`mass_status` answers what a restarted router must know (open orders, then the
  positions the venue holds); the fills of orders that ended meanwhile come as ordinary
  reports from :meth:`poll`.  ``survives_restart`` says whether the venue outlives the
  router process: the simulated venues live in it and end with it, a broker does not.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

__all__ = ["VenueAdapter", "VenueStatus", "OPEN_ORDER_DTYPE", "SENT", "ERR_QUEUE_FULL"]

#: The request left for the venue; its answer comes from :meth:`VenueAdapter.poll`.
SENT = 0
#: The adapter's outbound queue is full; nothing was sent (back-pressure, retry later).
ERR_QUEUE_FULL = -10


#: One order a venue holds open: requested ``qty``, ``leaves`` still working.
OPEN_ORDER_DTYPE = np.dtype([("client_order_id", "u8"), ("qty", "f8"), ("leaves", "f8"), ("limit_px", "f8"),
                             ("instrument", "i4"), ("side", "i1"), ("kind", "u1"), ("pad", "u2")], align=True)


class VenueStatus(NamedTuple):
    """A venue's answer to a mass-status request."""
    #: ``OPEN_ORDER_DTYPE``: every order working at the venue or on its way there.
    open_orders: np.ndarray
    #: float64 per instrument: the venue's net position (its fills, signed).
    positions: np.ndarray


@runtime_checkable
class VenueAdapter(Protocol):
    """A venue as the router sees it."""

    #: Short name, used in journals and TCA ("paper-a", "alpaca", ...).
    name: str
    #: Taker and maker fees in basis points of notional (negative maker = rebate).
    taker_bps: float
    maker_bps: float
    #: Expected one-way order-entry latency (ns), used by the smart router's cost.
    expected_latency_ns: int
    #: False when the venue lives and ends with the router process (simulated venues).
    survives_restart: bool

    def submit(self, orders: np.ndarray, index: int, now: int) -> int:
        """Send the new order ``orders[index]`` (an ``ORDER_DTYPE`` array, as rings hand
        them out: passing array and index keeps the record unboxed).  Returns SENT or
        an ERR code."""
        ...

    def cancel(self, client_order_id: int, now: int) -> int:
        """Send a cancel for ``client_order_id``.  Returns SENT or an ERR code."""
        ...

    def replace(self, client_order_id: int, new_client_order_id: int, qty: float,
                limit_px: float, now: int) -> int:
        """Send a cancel/replace: ``new_client_order_id`` with ``qty`` at ``limit_px``."""
        ...

    def on_md(self, md: np.ndarray, now: int) -> None:
        """Feed market data (``MD_DTYPE`` records); paper venues match against it."""
        ...

    def poll(self, now: int, out: np.ndarray) -> int:
        """Write the exec reports due by ``now`` into ``out`` (``EXEC_DTYPE``); return how many."""
        ...

    def mass_status(self, now: int) -> VenueStatus:
        """The orders open at the venue and its positions, as of ``now``."""
        ...
