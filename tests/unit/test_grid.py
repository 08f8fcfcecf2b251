"""One grid test for everyone: the risk gate and the paper venue agree on the lot and tick grid,
right at the edge of :data:`alphad.kernels.grid.GRID_TOL`."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from alphad.daemon.risk import codes as rc
from alphad.daemon.risk.checks import check_order
from alphad.daemon.risk.config import RiskConfig, build_risk_arrays
from alphad.daemon.risk.portfolio import on_mark
from alphad.daemon.router.order_fsm import REJ_BAD_PRICE, REJ_BAD_QTY
from alphad.daemon.router.venues.paper import PaperVenue, VenueSpec
from alphad.ipc.dtypes import EXEC_DTYPE, EXEC_REJECT, ORDER_LIMIT, ORDER_MARKET
from alphad.kernels.grid import GRID_TOL, on_grid

TICK, LOT, PX = 0.01, 1e-5, 100.0
T0 = 1_700_000_000_000_000_000


def _off(k: int, steps_off: float, step: float) -> float:
    """``k`` steps plus ``steps_off`` of a step."""
    return (k + steps_off) * step


# (k, deviation in units of the tolerance at k): inside (0.9), outside (1.1), far outside.
EDGE = [(k, f) for k in (1, 100, 12_345, 10**7) for f in (0.0, 0.5, 0.9, 1.1, 2.0, -0.9, -1.1)]
QTYS = [_off(k, f * GRID_TOL * max(1, k), LOT) for k, f in EDGE] + [
    0.1 + 0.2,            # decimal error: on the grid
    float("0.00123"),      # a parsed decimal: on the grid
    _off(100, 5e-7, LOT),  # off: the venue's old absolute 1e-6 of a step let it through, the gate did not
    _off(10**10, 2e-6, LOT),  # on: the gate's relative tolerance passes it, the old venue refused it
    1.5 * LOT,             # half a lot: off
]
PXS = [_off(10_000, f * GRID_TOL * 10_000, TICK) for f in (0.0, 0.9, 1.1, -0.9, -1.1, 3.0)] + [
    100.07, 99.99, 100.005, 100.0 + 1e-8]


@pytest.fixture(scope="module")
def gate():
    cfg = msgspec.convert({"instrument_defaults": {"max_order_qty": 1e12, "max_order_notional": 1e18,
                                                   "max_position_shares": 1e12, "max_position_weight": 1.0},
                           "account": {"max_gross_notional": 1e18, "max_net_notional": 1e18,
                                       "max_leverage": 1e9, "throttle_rate": 1e9, "throttle_burst": 1e9}},
                          type=RiskConfig)
    a = build_risk_arrays(cfg, [("BTCUSDT", "", TICK, LOT)], equity=1e12)
    assert on_mark(0, PX, a.limits, a.book, a.sectors, a.account)
    return a


def _venue_reason(qty: float, kind: int, px: float) -> int:
    v = PaperVenue(VenueSpec("p"), 1, tick=TICK, lot=LOT, depth=4)
    v.on_book(0, [PX - TICK], [1e12], [PX], [1e12], T0)
    v.submit_fields(7, 0, 1, kind, qty, px, T0)
    out = np.zeros(8, EXEC_DTYPE)
    n = v.poll(T0, out)
    rej = out[:n][out[:n]["status"] == EXEC_REJECT]
    return int(rej[0]["reason"]) if len(rej) else 0


@pytest.mark.parametrize("qty", QTYS)
def test_lot_grid_when_quantity_at_the_tolerance_edge_then_gate_and_venue_agree(gate, qty):
    on = bool(on_grid(qty, LOT))
    gate_code = check_order(0, 1, qty, np.nan, T0, *gate.gate_args())
    assert (gate_code != rc.DENY_LOT_SIZE) == on
    assert (_venue_reason(qty, ORDER_MARKET, np.nan) != REJ_BAD_QTY) == on


@pytest.mark.parametrize("px", PXS)
def test_tick_grid_when_price_at_the_tolerance_edge_then_gate_and_venue_agree(gate, px):
    on = bool(on_grid(px, TICK))
    gate_code = check_order(0, 1, 1.0, px, T0, *gate.gate_args())
    assert (gate_code != rc.DENY_TICK_SIZE) == on
    assert (_venue_reason(1.0, ORDER_LIMIT, px) != REJ_BAD_PRICE) == on


def test_on_grid_when_crossing_the_tolerance_then_flips_exactly_there():
    for k in (1, 100, 12_345, 10**7):
        tol = GRID_TOL * max(1, k)
        for step in (LOT, TICK, 0.05, 100.0):
            assert on_grid(_off(k, 0.0, step), step)
            assert on_grid(_off(k, 0.9 * tol, step), step) and on_grid(_off(k, -0.9 * tol, step), step)
            assert not on_grid(_off(k, 1.1 * tol, step), step) and not on_grid(_off(k, -1.1 * tol, step), step)
    assert not on_grid(np.nan, LOT) and not on_grid(1.5 * LOT, LOT)
