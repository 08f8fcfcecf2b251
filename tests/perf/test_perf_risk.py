"""Benchmarks of the pre-trade gate (not timed tests: nothing here asserts on time).

Under pytest they run once each with the default ``--benchmark-disable``; for figures run
``pytest tests/perf/test_perf_risk.py --benchmark-enable``, or for the p50/p99 table asked for by
issue 5::

    .venv/bin/python tests/perf/test_perf_risk.py

Every order takes the full path (it passes all twelve checks), on a 500-instrument, 11-sector
book with open positions, so the figures are the gate's worst case.
"""
from __future__ import annotations

import time

import msgspec
import numpy as np

from alphad.daemon.risk import codes as rc
from alphad.daemon.risk.portfolio import apply_fill, on_mark
from alphad.daemon.risk.checks import check_batch, check_order, gate_target
from alphad.daemon.risk.config import RiskConfig, build_risk_arrays

N_INST = 500
SECTORS = ["Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy",
           "Financials", "Health Care", "Industrials", "Information Technology", "Materials",
           "Real Estate", "Utilities"]
T0 = 1_700_000_000_000_000_000


def make_book(seed: int = 5):
    cfg = msgspec.convert({"account": {"throttle_rate": 1e12, "throttle_burst": 1e12,
                                       "max_gross_notional": 1e9, "max_net_notional": 1e9}},
                          type=RiskConfig)
    universe = [(f"S{i:03d}", SECTORS[i % len(SECTORS)], 0.01, 1.0) for i in range(N_INST)]
    a = build_risk_arrays(cfg, universe, equity=10_000_000.0)
    rng = np.random.default_rng(seed)
    px = np.round(rng.uniform(20, 400, N_INST), 2)
    for i in range(N_INST):
        on_mark(i, float(px[i]), a.limits, a.book, a.sectors, a.account)
        q = float(int(5_000 // px[i]))
        apply_fill(i, 1 if i % 4 else -1, q, float(px[i]), 0.0, a.limits, a.book, a.sectors, a.account)
    return a, px, rng


def _orders(px, rng, n):
    insts = rng.integers(0, N_INST, n).astype(np.int64)
    sides = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int64)
    qtys = np.maximum(1.0, np.floor(2_000.0 / px[insts]))
    limit = np.round(px[insts] * (1 + sides * 0.001), 2)
    return insts, sides, qtys, limit


def test_perf_check_order_single_call(benchmark):
    a, px, rng = make_book()
    args = a.gate_args()
    i, s, q, lp = _orders(px, rng, 1)
    i, s, q, lp = int(i[0]), int(s[0]), float(q[0]), float(lp[0])
    assert check_order(i, s, q, lp, T0, *args) == rc.OK
    code = benchmark(check_order, i, s, q, lp, T0, *args)
    assert code == rc.OK


def test_perf_gate_target_single_call(benchmark):
    a, px, _ = make_book()
    args = a.gate_args()
    out = np.zeros(2)
    w = 0.0007  # a small move toward the target: an order that passes
    assert gate_target(7, w, float(px[7]), float("nan"), T0, *args, out) == rc.OK
    assert benchmark(gate_target, 7, w, float(px[7]), float("nan"), T0, *args, out) == rc.OK


def test_perf_check_batch_100k(benchmark):
    a, px, rng = make_book()
    n = 100_000
    insts, sides, qtys, limit = _orders(px, rng, n)
    now = T0 + np.arange(n, dtype=np.int64) * 1000
    codes = np.zeros(n, np.int64)
    passed = benchmark(check_batch, insts, sides, qtys, limit, now, *a.gate_args(), codes)
    assert passed == n


def _percentiles(fn, n=200_000):
    t = np.empty(n, np.int64)
    pc = time.perf_counter_ns
    for k in range(n):
        t0 = pc()
        fn()
        t[k] = pc() - t0
    return np.percentile(t, [50, 99, 99.9]) / 1000.0


def main() -> None:
    a, px, rng = make_book()
    args = a.gate_args()
    i, s, q, lp = _orders(px, rng, 1)
    i, s, q, lp = int(i[0]), int(s[0]), float(q[0]), float(lp[0])
    assert check_order(i, s, q, lp, T0, *args) == rc.OK
    out = np.zeros(2)
    w = 0.0007
    assert gate_target(7, w, float(px[7]), float("nan"), T0, *args, out) == rc.OK
    # Timer overhead, to read the figures against.
    empty = _percentiles(lambda: None)
    one = _percentiles(lambda: check_order(i, s, q, lp, T0, *args))
    tgt = _percentiles(lambda: gate_target(7, w, float(px[7]), float("nan"), T0, *args, out))
    n = 1_000_000
    insts, sides, qtys, limit = _orders(px, rng, n)
    now = T0 + np.arange(n, dtype=np.int64) * 1000
    codes = np.zeros(n, np.int64)
    check_batch(insts[:10], sides[:10], qtys[:10], limit[:10], now[:10], *args, codes)
    rates = []
    for _ in range(5):
        t0 = time.perf_counter()
        passed = check_batch(insts, sides, qtys, limit, now, *args, codes)
        rates.append(n / (time.perf_counter() - t0))
    assert passed == n
    print(f"{'what':44s} {'p50 us':>8s} {'p99 us':>8s} {'p99.9 us':>9s}")
    print(f"{'empty Python call (timer floor)':44s} {empty[0]:8.2f} {empty[1]:8.2f} {empty[2]:9.2f}")
    print(f"{'check_order, one order, from Python':44s} {one[0]:8.2f} {one[1]:8.2f} {one[2]:9.2f}")
    print(f"{'gate_target (target->order + gate)':44s} {tgt[0]:8.2f} {tgt[1]:8.2f} {tgt[2]:9.2f}")
    print(f"check_batch (njit loop), 1M orders: median {np.median(rates) / 1e6:.2f} M checks/s "
          f"(min {min(rates) / 1e6:.2f}, max {max(rates) / 1e6:.2f}) over 5 runs")


if __name__ == "__main__":
    main()
