"""The report's cost split and closing-trade results (ops/trade_costs.py) on hand-made fills."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.daemon.router.order_fsm import LIQ_MAKER, LIQ_TAKER
from alphad.ipc.dtypes import ARRIVAL_DTYPE, EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, MD_BAR, MD_DTYPE, ORDER_DTYPE
from alphad.ops import trade_costs as tc


def fills(rows) -> np.ndarray:
    """``(cid, instrument, side, qty, px, fee, liquidity, ts)`` rows as FILL reports."""
    out = np.zeros(len(rows), EXEC_DTYPE)
    for r, (cid, inst, side, qty, px, fee, liq, ts) in zip(out, rows):
        r["client_order_id"], r["instrument"], r["side"], r["fill_qty"], r["fill_px"] = cid, inst, side, qty, px
        r["fee"], r["reason"], r["ts"], r["status"] = fee, liq, ts, EXEC_FILL
    return out


def test_cost_split_when_quotes_at_arrival_then_half_spread_taken_or_earned_and_the_rest_is_impact():
    arrivals = np.zeros(3, ARRIVAL_DTYPE)
    arrivals["client_order_id"] = [1, 2, 3]
    arrivals["bid"], arrivals["ask"] = [99.0, 99.0, np.nan], [101.0, 101.0, np.nan]
    f = fills([(1, 0, +1, 10.0, 101.5, 0.3, LIQ_TAKER, 5),   # took: half spread 1 x 10, 0.5 x 10 beyond it
               (2, 0, -1, 4.0, 101.0, 0.0, LIQ_MAKER, 6),    # made: sold at the ask, earned the half spread
               (3, 0, +1, 1.0, 100.0, 0.1, LIQ_TAKER, 7)])   # no quote at arrival
    c = tc.cost_split(f, arrivals)
    assert c["spread_cost"] == pytest.approx(10.0 - 4.0)
    assert c["impact_cost"] == pytest.approx((10 * 1.5 - 4 * 1.0) - 6.0)  # shortfall vs mid, less the spread
    assert c["fees"] == pytest.approx(0.4) and c["traded_notional"] == pytest.approx(1015 + 404 + 100)
    assert c["fills_without_reference"] == 1


def test_cost_split_when_bars_only_then_priced_from_the_decision_close_and_the_fill_bars_open():
    md = np.zeros(4, MD_DTYPE)
    md["kind"], md["instrument"] = MD_BAR, [0, 1, 0, 1]
    md["ts_exch"] = [100, 100, 200, 200]
    md["open_px"], md["last_px"] = [10.0, 50.0, 12.0, 49.0], [11.0, 51.0, 13.0, 48.0]
    orders = np.zeros(2, ORDER_DTYPE)
    orders["client_order_id"], orders["ts"] = [7, 8], [100, 100]  # both decided on the first bars' close
    f = fills([(7, 0, +1, 100.0, 12.0 * 1.0002, 0.0, LIQ_TAKER, 200),  # next open 12, half spread 2 bps
               (8, 1, -1, 10.0, 49.0 * 0.9998, 0.0, LIQ_TAKER, 200)])  # next open 49
    bars = tc.BarPrices([md[:2], md[2:]], 2)
    c = tc.cost_split(f, np.zeros(0, ARRIVAL_DTYPE), orders, bars)
    assert c["spread_cost"] == pytest.approx(100 * 12 * 0.0002 + 10 * 49 * 0.0002)
    assert c["impact_cost"] == pytest.approx(100 * (12 - 11) + -1 * 10 * (49 - 51))
    assert c["fills_without_reference"] == 0
    assert tc.cost_split(f, np.zeros(0, ARRIVAL_DTYPE))["fills_without_reference"] == 2  # without the bars


def test_closing_results_when_positions_open_add_close_and_flip_then_average_cost_realised():
    f = fills([(1, 0, +1, 10.0, 100.0, 0, 1, 1),    # open long 10 @ 100
               (2, 0, +1, 10.0, 110.0, 0, 1, 2),    # add: average 105
               (3, 0, -1, 5.0, 104.0, 0, 1, 3),     # close 5: -5
               (4, 0, -1, 20.0, 120.0, 0, 1, 4),    # close 15 @ 120: +225, flip short 5 @ 120
               (5, 0, +1, 5.0, 125.0, 0, 1, 5)])    # close the short: -25
    realised = tc.closing_results(f, 1)
    np.testing.assert_allclose(realised, [-5.0, 225.0, -25.0])
    assert tc.hit_rate(realised) == pytest.approx(1 / 3)


def test_fills_of_when_reports_mixed_then_only_those_that_filled_a_quantity():
    r = fills([(1, 0, 1, 1.0, 1.0, 0, 1, 1), (2, 0, 1, 0.0, 1.0, 0, 1, 1), (3, 0, 1, 2.0, 1.0, 0, 1, 1)])
    r["status"] = [EXEC_PARTIAL, EXEC_FILL, EXEC_CANCELED]
    assert tc.fills_of(r)["client_order_id"].tolist() == [1]
