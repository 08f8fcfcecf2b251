"""Router -> paper venue, per order, simulated latency excluded (zero latency).

One measured order = venue choice by all-in cost over 3 venues, order store add +
SUBMIT, enqueue at the venue, then the venue matches against a real Binance BTCUSDT
book, fills, and the reports are applied to the order store through the int-coded FSM
table.  Two ways in, both printed:

* ``router stage``: ``RouterCore.on_orders`` with one order, the router stage's call per
  batch of orders from risk (also the idempotency guard, the arrival quote for TCA and the
  tick-to-trade stamp), one compiled call (the headline figure);
* ``send + poll``: the library calls ``SmartRouter.send`` then ``SmartRouter.poll``.

pytest-benchmark (only timed with ``--benchmark-enable``)::

    .venv/bin/python -m pytest tests/perf/test_perf_router.py --benchmark-enable -p no:cacheprovider

p50/p99 over 20,000 orders (prints the figures)::

    .venv/bin/python tests/perf/test_perf_router.py [--orders 20000] [--data ../shared/data]

With ``--algo``, also the cost of the TWAP path of the router stage (Python, paced by the
algorithm): registering a parent, stepping working parents, sending children, mapping child
fills to parent reports.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alphad.daemon.config import decode_config
from alphad.daemon.router.order_fsm import OrderStore, State, child_order_id
from alphad.daemon.router.venues.paper import LatencyModel, SmartRouter, VenueSpec, load_binance_book
from alphad.daemon.router.core import RouterCore
from alphad.ipc.dtypes import ORDER_DTYPE, ORDER_LIMIT, ORDER_MARKET

REPO = Path(__file__).resolve().parents[2]


class Harness:
    """A router over three venues on one real book instant; orders alternate buy/sell."""

    def __init__(self, data: Path, n_orders: int) -> None:
        l2 = data / "l2"
        books = load_binance_book(l2, "BTCUSDT", [1723161334087896576], depth=20)
        self.book = [a[0] for a in (books.bid_px, books.bid_sz, books.ask_px, books.ask_sz)]
        self.router = SmartRouter(
            [VenueSpec("a", taker_bps=2.0, maker_bps=-0.2),
             VenueSpec("b", taker_bps=1.0, maker_bps=0.2, entry=LatencyModel(0)),
             VenueSpec("c", taker_bps=1.5, maker_bps=0.0)],
            1, depth=20, tick=0.01, lot=1e-5, store=OrderStore(n_orders + 16))
        self.refresh(0)
        self.orders = np.zeros(n_orders, dtype=ORDER_DTYPE)
        self.orders["client_order_id"] = [child_order_id(1, 0, i) for i in range(n_orders)]
        self.orders["side"] = np.where(np.arange(n_orders) % 2 == 0, 1, -1)
        # Mostly market orders, every fourth a marketable limit at the far touch + 1 tick.
        self.orders["kind"] = np.where(np.arange(n_orders) % 4 == 3, ORDER_LIMIT, ORDER_MARKET)
        best_ask, best_bid = float(self.book[2][0]), float(self.book[0][0])
        self.orders["limit_px"] = np.where(self.orders["kind"] == ORDER_LIMIT,
                                           np.where(self.orders["side"] > 0, round(best_ask + 0.01, 2),
                                                    round(best_bid - 0.01, 2)), np.nan)
        self.orders["qty"] = 0.001
        self.i = 0

    def refresh(self, ts: int) -> None:
        self.router.on_book(0, *self.book, ts)

    def one(self) -> None:
        i = self.i
        self.router.send(self.orders, i, i)
        self.router.poll(i)
        self.i = i + 1


class CoreHarness(Harness):
    """The same venues, book and orders through the router stage's core (immediate execution)."""

    def __init__(self, data: Path, n_orders: int) -> None:
        super().__init__(data, n_orders)
        cfg = decode_config("""
universe: [{id: 0, symbol: BTCUSDT, tick_size: 0.01, lot_size: 0.00001}]
router:
  book_depth: 20
  venues:
    - {name: a, taker_bps: 2.0, maker_bps: -0.2}
    - {name: b, taker_bps: 1.0, maker_bps: 0.2}
    - {name: c, taker_bps: 1.5, maker_bps: 0.0}
""")
        self.core = RouterCore(cfg.universe, cfg.router, np.zeros(1, np.uint64))
        self.router = self.core.smart
        self.refresh(0)
        self.orders["client_order_id"] = np.arange(1, n_orders + 1)  # risk's ids increase per instrument
        self.buf = np.zeros(1, dtype=ORDER_DTYPE)
        self.stage()

    def stage(self) -> None:
        """Put the next order where risk's ring would have left it (not timed)."""
        if self.i < len(self.orders):
            self.buf[0] = self.orders[self.i]
            self.buf["t_origin"] = self.i

    def one(self) -> None:
        i = self.i
        self.core.on_orders(self.buf, 1, i)
        self.i = i + 1

    def untimed(self) -> None:
        self.stage()


def measure(data: Path, n: int, warmup: int = 2000, harness=Harness) -> np.ndarray:
    h = harness(data, n + warmup)
    untimed = getattr(h, "untimed", lambda: None)
    for _ in range(warmup):
        h.one()
        untimed()
    lat = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(n):
        if k % 200 == 0:
            h.refresh(h.i)  # restore the liquidity taken (not timed)
        t0 = clock()
        h.one()
        lat[k] = clock() - t0
        untimed()
    st = h.router.store
    assert h.router.failed_reports == 0
    assert np.all(st.orders["state"][: len(st)] == State.FILLED)
    return lat


@pytest.mark.data
def test_perf_router_to_paper_venue_per_order(benchmark, shared_data):
    h = Harness(shared_data, 3000)
    for _ in range(200):
        h.one()
    h.refresh(h.i)

    def run():
        if h.i % 200 == 0:
            h.refresh(h.i)
        h.one()

    benchmark.pedantic(run, rounds=2000, iterations=1, warmup_rounds=100)
    st = h.router.store
    assert h.router.failed_reports == 0
    assert np.all(st.orders["state"][: len(st)] == State.FILLED)


def measure_algo(n_parents: int = 200) -> dict[str, float]:
    """µs: parent registration (p50), step per working parent (p50), per child sent, per report."""
    from alphad.ipc.dtypes import MD_DTYPE, MD_QUOTE, MD_TRADE

    cfg = decode_config("""
universe: [{id: 0, symbol: A, lot_size: 1}]
router: {execution: twap, impact: {enabled: false},
         algo: {horizon_s: 1000, slices: 10, step_ms: 1, urgency: 0.0, catch_up: 1.0}}
""")
    s = 1_000_000_000
    core = RouterCore(cfg.universe, cfg.router, np.zeros(1, np.uint64))
    md = np.zeros(1, MD_DTYPE)
    md["kind"], md["bid_px"], md["ask_px"], md["bid_sz"], md["ask_sz"] = MD_QUOTE, 99.0, 101.0, 1e9, 1e9
    core.warm(md)
    core.on_md(md, 1, 0)
    o = np.zeros(1, ORDER_DTYPE)
    o["side"], o["qty"], o["kind"] = 1, 100, ORDER_MARKET
    clock = time.perf_counter_ns
    reg = []
    for j in range(n_parents):  # each sends its first slice (10 lots, joining the bid)
        o["client_order_id"] = j + 1
        t0 = clock()
        core.on_orders(o, 1, 1000 + j)
        reg.append(clock() - t0)
    steps = []
    for k in range(200):  # nothing due until the second slice at 100 s
        t0 = clock()
        core.poll(2 * s + k * 2_000_000)
        steps.append(clock() - t0)
    t0 = clock()
    core.poll(101 * s)  # the second slice of every parent: one child each, acked at once
    t_send = clock() - t0
    trade = np.zeros(1, MD_DTYPE)
    trade["kind"], trade["last_px"], trade["last_sz"], trade["aggressor"] = MD_TRADE, 98.0, 1e9, -1
    core.on_md(trade, 1, 101 * s + 1)  # sells through every resting bid: every child fills
    t0 = clock()
    k = core.poll(101 * s + 2)
    t_fill = clock() - t0
    assert k == 2 * n_parents and core.smart.failed_reports == 0
    return {"register": np.median(reg) / 1e3, "step_per_parent": np.median(steps) / n_parents / 1e3,
            "per_child_sent": t_send / n_parents / 1e3, "per_report": t_fill / k / 1e3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--algo", action="store_true", help="also the TWAP path's costs")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ALPHAD_SHARED_DATA",
                                                                      REPO.parent / "shared" / "data")))
    a = ap.parse_args(argv)
    for name, harness in (("router stage", CoreHarness), ("send + poll", Harness)):
        lat = measure(a.data, a.orders, harness=harness) / 1000.0
        p50, p90, p99, p999 = np.percentile(lat, [50, 90, 99, 99.9])
        print(f"router -> paper venue per order (3 venues, zero simulated latency), {name}, n={a.orders}: "
              f"p50 {p50:.2f} us  p90 {p90:.2f} us  p99 {p99:.2f} us  p99.9 {p999:.2f} us  max {lat.max():.1f} us")
    if a.algo:
        c = measure_algo()
        print(f"twap path, 200 parents: register a parent (first child sent) p50 {c['register']:.1f} us; "
              f"step {c['step_per_parent']:.2f} us per working parent; {c['per_child_sent']:.1f} us per child "
              f"sent (ack collected); {c['per_report']:.2f} us per child report mapped to the parent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
