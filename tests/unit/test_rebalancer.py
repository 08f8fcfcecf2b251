"""Sector rebalancer: trims bring a breached sector back under its limit, by method, with the
minimum trim value, the daily turnover cap and the cooldown; the trims pass the real gate."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from alphad.daemon.risk import codes as rc
from alphad.daemon.risk.portfolio import apply_fill, on_mark
from alphad.daemon.risk.rebalancer import (
    REB_COOLDOWN,
    REB_PARTIAL,
    REB_TRIMMED,
    REB_TURNOVER_CAP,
    REB_WITHIN_LIMIT,
    rebalancer_params,
    trim_sector,
)
from alphad.daemon.risk.checks import check_order
from alphad.daemon.risk.config import RebalancerConfig, RiskConfig, build_risk_arrays

EQUITY = 1_000_000.0
MIN = 60 * 10**9
UNIVERSE = [("A", "Information Technology", 0.01, 1.0), ("B", "Information Technology", 0.01, 1.0),
            ("C", "Information Technology", 0.01, 100.0), ("X", "Energy", 0.01, 1.0)]


class Book:
    """IT holds A 150k, B 100k, C 50k = 30% of equity against a 25% limit."""

    def __init__(self, **reb):
        self.cfg = msgspec.convert({"rebalancer": {"cooldown_s": 900.0, **reb}}, type=RiskConfig)
        self.a = build_risk_arrays(self.cfg, UNIVERSE, equity=EQUITY)
        self.params = rebalancer_params(self.cfg.rebalancer)
        self.last = np.full(len(self.a.sector_names), -(2**62), np.int64)
        self.turnover = np.zeros(1)
        a = self.a
        for i, q in enumerate([1500, 1000, 500, 100]):
            on_mark(i, 100.0, a.limits, a.book, a.sectors, a.account)
            apply_fill(i, 1, float(q), 100.0, 0.0, a.limits, a.book, a.sectors, a.account)
        self.it = a.sector_names.index("Information Technology")

    def trim(self, now=0):
        a = self.a
        n = a.limits.shape[0]
        inst, qty = np.zeros(n, np.int64), np.zeros(n)
        code, k = trim_sector(self.it, now, a.account[rc.A_EQUITY], a.limits, a.book, a.sectors,
                              self.last, self.turnover, self.params, inst, qty)
        return code, [(int(i), float(q)) for i, q in zip(inst[:k], qty[:k])]

    def execute(self, orders):
        a = self.a
        for i, q in orders:
            side = 1 if q > 0 else -1
            assert check_order(i, side, abs(q), float("nan"), 0, *a.gate_args()) == rc.OK
            apply_fill(i, side, abs(q), 100.0, 0.0, a.limits, a.book, a.sectors, a.account)

    @property
    def sector_weight(self):
        return self.a.sectors[self.it, rc.SEC_EXPOSURE] / self.a.account[rc.A_EQUITY]


def test_trim_when_largest_first_then_only_largest_trimmed_to_limit_minus_buffer():
    b = Book()
    code, orders = b.trim()
    assert code == REB_TRIMMED
    assert orders == [(0, -600.0)]            # 300k - 240k = 60k, all from A
    b.execute(orders)
    assert b.sector_weight == pytest.approx(0.24)


def test_trim_when_pro_rata_then_each_gives_same_fraction_rounded_up_to_lot():
    b = Book(method="pro_rata")
    code, orders = b.trim()
    # 60k split 150:100:50 -> 30k, 20k, 10k; C trades in lots of 100 shares (10k at 100).
    assert code == REB_TRIMMED
    assert orders == [(0, -300.0), (1, -200.0), (2, -100.0)]
    b.execute(orders)
    assert b.sector_weight <= 0.24 + 1e-12


def test_trim_when_excess_needs_more_than_largest_position_then_moves_to_next():
    b = Book(target_buffer=0.15, daily_turnover_cap=0.5)   # target 10%: 200k to trim
    code, orders = b.trim()
    assert code == REB_TRIMMED and orders == [(0, -1500.0), (1, -500.0)]


def test_trim_when_below_min_trim_value_then_skipped_and_partial():
    b = Book(method="pro_rata", min_trim_value=15_000.0)
    code, orders = b.trim()
    assert code == REB_PARTIAL
    assert orders == [(0, -300.0), (1, -200.0)]   # C's 10k trim is below the minimum


def test_trim_when_turnover_cap_binds_then_partial_then_refused_for_the_day():
    b = Book(daily_turnover_cap=0.05, cooldown_s=0.0)   # 50k per day
    code, orders = b.trim()
    assert code == REB_PARTIAL and orders == [(0, -500.0)]
    b.execute(orders)
    assert b.sector_weight == pytest.approx(0.25)   # on the limit, not above: nothing to do
    a = b.a
    on_mark(0, 100.01, a.limits, a.book, a.sectors, a.account)   # a tick up: just over again
    assert b.trim(now=MIN)[0] == REB_TURNOVER_CAP
    b.turnover[0] = 0.0                             # the session roll resets the day
    code, orders = b.trim(now=2 * MIN)
    assert code == REB_TRIMMED and orders == [(0, -101.0)]


def test_trim_when_within_cooldown_then_nothing_until_it_expires():
    b = Book(daily_turnover_cap=0.05)
    assert b.trim(now=0)[0] == REB_PARTIAL
    assert b.a.sectors[b.it, rc.SEC_EXPOSURE] > 0.25 * EQUITY   # orders not executed yet
    assert b.trim(now=15 * MIN - 1)[0] == REB_COOLDOWN
    b.turnover[0] = 0.0
    assert b.trim(now=15 * MIN)[0] == REB_PARTIAL


def test_trim_when_sector_within_limit_then_nothing():
    b = Book()
    b.execute(b.trim()[1])
    assert b.trim(now=10**15) == (REB_WITHIN_LIMIT, [])


def test_rebalancer_config_when_unknown_method_then_rejected():
    with pytest.raises(msgspec.ValidationError, match="method"):
        msgspec.convert({"method": "random"}, type=RebalancerConfig)
