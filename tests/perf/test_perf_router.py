"""Router -> paper venue, per order, simulated latency excluded (zero latency).

One measured order = ``SmartRouter.send`` (venue choice by all-in cost over 3
venues, order store add + SUBMIT, enqueue at the venue) + ``SmartRouter.poll``
(venue matches against a real Binance BTCUSDT book, fills, reports applied to
the order store through the int-coded FSM table).

pytest-benchmark (only timed with ``--benchmark-enable``)::

    .venv/bin/python -m pytest tests/perf/test_perf_router.py --benchmark-enable -p no:cacheprovider

p50/p99 over 20,000 orders (prints the figures)::

    .venv/bin/python tests/perf/test_perf_router.py [--orders 20000] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alphad.daemon.order_fsm import OrderStore, State, client_order_id
from alphad.daemon.paper_venue import LatencyModel, SmartRouter, VenueSpec, load_binance_book
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
        self.orders["client_order_id"] = [client_order_id(1, 0, i) for i in range(n_orders)]
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


def measure(data: Path, n: int, warmup: int = 2000) -> np.ndarray:
    h = Harness(data, n + warmup)
    for _ in range(warmup):
        h.one()
    lat = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(n):
        if k % 200 == 0:
            h.refresh(h.i)  # restore the liquidity taken (not timed)
        t0 = clock()
        h.one()
        lat[k] = clock() - t0
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("ALPHAD_SHARED_DATA",
                                                                      REPO.parent / "shared" / "data")))
    a = ap.parse_args(argv)
    lat = measure(a.data, a.orders) / 1000.0
    p50, p90, p99, p999 = np.percentile(lat, [50, 90, 99, 99.9])
    print(f"router -> paper venue per order (3 venues, zero simulated latency), n={a.orders}: "
          f"p50 {p50:.2f} us  p90 {p90:.2f} us  p99 {p99:.2f} us  p99.9 {p999:.2f} us  max {lat.max():.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
