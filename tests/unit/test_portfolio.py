"""Portfolio core: accounting identities, exec-report handling, sector exposure on the real
61-stock universe, historical VaR/CVaR and the correlation monitor against numpy/pandas oracles."""
from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.daemon.risk import codes as rc
from alphad.daemon.risk.portfolio import (
    PF_BAD_FILL,
    PF_DUPLICATE_ORDER,
    PF_OK,
    PF_TABLE_FULL,
    PF_UNKNOWN_ORDER,
    CorrelationMonitor,
    apply_fill,
    historical_var_cvar,
    new_open_order_table,
    on_exec,
    on_mark,
    on_order_sent,
    portfolio_var_cvar,
    revalue,
)
from alphad.daemon.risk.config import RiskConfig, build_risk_arrays
from alphad.ipc.dtypes import EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT

CFG = msgspec.convert({}, type=RiskConfig)
START = 100_000.0


def _arrays(universe=(("A", "Energy", 0.01, 1.0), ("B", "Financials", 0.01, 1.0))):
    return build_risk_arrays(CFG, list(universe), equity=START)


def _fill(a, inst, side, qty, px, fee=0.0):
    return apply_fill(inst, side, float(qty), float(px), float(fee), a.limits, a.book, a.sectors,
                      a.account)


def test_apply_fill_when_adding_reducing_and_flipping_then_average_cost_accounting():
    a = _arrays()
    _fill(a, 0, 1, 100, 10.0)
    _fill(a, 0, 1, 100, 12.0)
    assert a.book[0, rc.B_POSITION] == 200 and a.book[0, rc.B_AVG_PX] == pytest.approx(11.0)
    _fill(a, 0, -1, 150, 13.0)                       # realises 150 x 2
    assert a.book[0, rc.B_REALISED] == pytest.approx(300.0)
    assert a.book[0, rc.B_AVG_PX] == pytest.approx(11.0)
    _fill(a, 0, -1, 100, 9.0, fee=1.5)               # closes 50 at -2, opens 50 short at 9
    assert a.book[0, rc.B_POSITION] == -50
    assert a.book[0, rc.B_AVG_PX] == pytest.approx(9.0)
    assert a.book[0, rc.B_REALISED] == pytest.approx(200.0)
    assert a.account[rc.A_FEES] == pytest.approx(1.5)
    _fill(a, 0, 1, 50, 8.0)                          # short covered at a gain of 50
    assert a.book[0, rc.B_POSITION] == 0 and a.book[0, rc.B_AVG_PX] == 0
    assert a.account[rc.A_REALISED] == pytest.approx(250.0)
    assert a.account[rc.A_CASH] == pytest.approx(START + 250.0 - 1.5)
    assert a.account[rc.A_EQUITY] == pytest.approx(START + 250.0 - 1.5)


def test_apply_fill_when_bad_inputs_then_not_booked():
    a = _arrays()
    for args in [(0, 1, 0, 10.0), (0, 1, 10, -1.0), (0, 1, np.nan, 10.0), (0, 2, 10, 10.0)]:
        assert _fill(a, *args) == PF_BAD_FILL
    assert a.book[0, rc.B_POSITION] == 0 and a.account[rc.A_CASH] == START


fills = st.lists(st.tuples(st.integers(0, 1), st.sampled_from([1, -1]), st.integers(1, 500),
                           st.floats(5.0, 50.0), st.floats(0.0, 2.0), st.floats(0.8, 1.25)),
                 min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(fills)
def test_property_equity_identities_hold_for_any_fill_and_mark_sequence(seq):
    a = _arrays()
    for inst, side, qty, px, fee, move in seq:
        px = round(px, 2)
        assert _fill(a, inst, side, qty, px, fee) == PF_OK
        assert on_mark(inst, round(px * move, 2), a.limits, a.book, a.sectors, a.account)
    marks = np.nan_to_num(a.book[:, rc.B_LAST_PX])
    value = (a.book[:, rc.B_POSITION] * marks).sum()
    incremental = a.account.copy()
    # Equity = cash + holdings at the marks = start + realised + unrealised - fees.
    assert incremental[rc.A_EQUITY] == pytest.approx(a.account[rc.A_CASH] + value, rel=1e-12, abs=1e-6)
    unreal = (a.book[:, rc.B_POSITION] * (marks - a.book[:, rc.B_AVG_PX])).sum()
    assert incremental[rc.A_UNREALISED] == pytest.approx(unreal, abs=1e-6)
    assert START + a.account[rc.A_REALISED] + unreal - a.account[rc.A_FEES] == pytest.approx(
        incremental[rc.A_EQUITY], abs=1e-6)
    # The O(1) incremental aggregates agree with the exact recomputation.
    revalue(a.limits, a.book, a.sectors, a.account)
    for col in (rc.A_EQUITY, rc.A_GROSS, rc.A_NET, rc.A_UNREALISED):
        assert incremental[col] == pytest.approx(a.account[col], abs=1e-6)
    assert incremental[rc.A_PEAK_EQUITY] >= incremental[rc.A_EQUITY]


def _exec(oid, inst, side, status, qty=0.0, px=0.0, leaves=0.0):
    r = np.zeros(1, EXEC_DTYPE)
    r[0]["client_order_id"] = oid
    r[0]["instrument"] = inst
    r[0]["side"] = side
    r[0]["status"] = status
    r[0]["fill_qty"] = qty
    r[0]["fill_px"] = px
    r[0]["leaves_qty"] = leaves
    return r


def _on_exec(a, r):
    return on_exec(r, 0, a.oo_ids, a.oo_vals, a.limits, a.book, a.sectors, a.account)


def _send(a, oid, inst, side, qty):
    return on_order_sent(np.uint64(oid), inst, side, float(qty), a.oo_ids, a.oo_vals, a.limits,
                         a.book, a.sectors, a.account)


def test_exec_reports_when_partial_then_cancel_then_open_quantity_released():
    a = _arrays()
    on_mark(0, 20.0, a.limits, a.book, a.sectors, a.account)
    assert _send(a, 11, 0, 1, 300) == PF_OK
    assert a.book[0, rc.B_OPEN_BUY] == 300
    assert a.account[rc.A_GROSS] == pytest.approx(300 * 20.0)   # committed: worst case
    assert _on_exec(a, _exec(11, 0, 1, EXEC_PARTIAL, 100, 20.0, 200)) == PF_OK
    assert a.book[0, rc.B_POSITION] == 100 and a.book[0, rc.B_OPEN_BUY] == 200
    assert _on_exec(a, _exec(11, 0, 1, EXEC_CANCELED)) == PF_OK
    assert a.book[0, rc.B_OPEN_BUY] == 0
    assert a.account[rc.A_GROSS] == pytest.approx(100 * 20.0)
    # The order is gone: a late cancel is unknown.
    assert _on_exec(a, _exec(11, 0, 1, EXEC_CANCELED)) == PF_UNKNOWN_ORDER


def test_exec_reports_when_sell_rejected_or_filled_then_open_sell_cleared():
    a = _arrays()
    on_mark(1, 50.0, a.limits, a.book, a.sectors, a.account)
    assert _send(a, 1, 1, -1, 10) == PF_OK and _send(a, 2, 1, -1, 20) == PF_OK
    assert a.book[1, rc.B_OPEN_SELL] == 30
    assert _on_exec(a, _exec(1, 1, -1, EXEC_REJECT)) == PF_OK
    assert _on_exec(a, _exec(2, 1, -1, EXEC_FILL, 20, 50.0)) == PF_OK
    assert a.book[1, rc.B_OPEN_SELL] == 0 and a.book[1, rc.B_POSITION] == -20
    assert a.sectors[a.sector_names.index("Financials"), rc.SEC_EXPOSURE] == pytest.approx(1000.0)


def test_exec_for_unknown_order_when_filled_then_position_still_booked():
    a = _arrays()
    assert _on_exec(a, _exec(999, 0, 1, EXEC_FILL, 5, 10.0)) == PF_UNKNOWN_ORDER
    assert a.book[0, rc.B_POSITION] == 5


def test_open_order_table_when_full_or_duplicate_then_refused_with_code():
    a = _arrays()
    a.oo_ids, a.oo_vals = new_open_order_table(2)
    assert _send(a, 1, 0, 1, 1) == PF_OK
    assert _send(a, 1, 0, 1, 1) == PF_DUPLICATE_ORDER
    assert _send(a, 2, 0, 1, 1) == PF_OK
    assert _send(a, 3, 0, 1, 1) == PF_TABLE_FULL
    assert a.book[0, rc.B_OPEN_BUY] == 2
    # Freed slots are reused and lookups still find orders past a freed slot.
    assert _on_exec(a, _exec(1, 0, 1, EXEC_CANCELED)) == PF_OK
    assert _send(a, 3, 0, 1, 1) == PF_OK
    assert _on_exec(a, _exec(2, 0, 1, EXEC_CANCELED)) == PF_OK
    assert _on_exec(a, _exec(3, 0, 1, EXEC_CANCELED)) == PF_OK
    assert a.book[0, rc.B_OPEN_BUY] == 0
    with pytest.raises(ValueError, match="power of two >= 2, was 6"):
        new_open_order_table(6)


def test_open_order_table_when_many_ids_then_each_found_once():
    a = _arrays()
    ids = np.random.default_rng(7).choice(2**62, 1500, replace=False)
    for k in ids:
        assert _send(a, int(k), 0, 1, 1) == PF_OK
    for k in ids[::2]:
        assert _on_exec(a, _exec(int(k), 0, 1, EXEC_CANCELED)) == PF_OK
    assert a.book[0, rc.B_OPEN_BUY] == 750
    for k in ids[::2]:
        assert _on_exec(a, _exec(int(k), 0, 1, EXEC_CANCELED)) == PF_UNKNOWN_ORDER
    for k in ids[1::2]:
        assert _on_exec(a, _exec(int(k), 0, 1, EXEC_FILL, 1, 10.0)) == PF_OK
    assert a.book[0, rc.B_OPEN_BUY] == 0 and a.book[0, rc.B_POSITION] == 750


# -- real data -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def equities(request):
    shared = request.getfixturevalue("shared_data")
    eq = pd.read_csv(shared / "daily" / "us_equities_daily_1999-2021.csv.gz",
                     usecols=["symbol", "date", "close", "adjusted_close"])
    sectors = pd.read_csv(shared / "daily" / "symbol_sectors.csv")
    spy = pd.read_csv(shared / "daily" / "spy_daily_1999-2020.csv", index_col="date")["close"]
    return eq, sectors, spy


@pytest.mark.data
def test_sector_exposure_when_equal_weight_61_stocks_then_matches_pandas_groupby(equities):
    eq, sectors, _ = equities
    day = eq[eq.date == "2008-10-10"].set_index("symbol")
    st_ = sectors[sectors.asset_type == "equity"].set_index("symbol")
    universe = [(s, st_.loc[s, "gics_sector"], 0.01, 1.0) for s in day.index]
    a = build_risk_arrays(CFG, universe, equity=10_000_000.0)
    qty = {}
    for i, s in enumerate(day.index):
        px = float(day.loc[s, "close"])
        q = float(int(100_000 // px)) * (1 if i % 3 else -1)   # every third name short
        qty[s] = q
        on_mark(i, px, a.limits, a.book, a.sectors, a.account)
        _fill(a, i, 1 if q > 0 else -1, abs(q), px)
    expo = pd.Series({s: abs(qty[s]) * day.loc[s, "close"] for s in day.index})
    oracle = expo.groupby(st_.loc[day.index, "gics_sector"]).sum()
    got = pd.Series(a.sectors[: len(a.sector_names), rc.SEC_EXPOSURE], index=a.sector_names)
    pd.testing.assert_series_equal(got.sort_index(), oracle.sort_index(), check_names=False,
                                   rtol=1e-12)
    assert len(a.sector_names) == 11
    assert a.account[rc.A_EQUITY] == pytest.approx(10_000_000.0)


@pytest.mark.data
@pytest.mark.parametrize("level", [0.95, 0.99])
def test_var_cvar_when_spy_2008_returns_then_match_numpy_quantile_oracle(equities, level):
    _, _, spy = equities
    r = spy.loc["2008-01-01":"2008-12-31"].pct_change().dropna().to_numpy()
    var, cvar = historical_var_cvar(r, level)
    q = np.quantile(r, 1 - level)
    assert var == pytest.approx(-q, rel=1e-12)
    assert cvar == pytest.approx(-r[r <= q].mean(), rel=1e-12)
    assert cvar >= var > 0
    calm = spy.loc["2006-01-01":"2006-12-31"].pct_change().dropna().to_numpy()
    assert historical_var_cvar(calm, level)[0] < var / 2   # 2008 was far riskier than 2006


@pytest.mark.data
def test_portfolio_var_when_long_short_book_then_equals_scenario_pnl_quantiles(equities):
    eq, _, _ = equities
    w = eq.pivot(index="date", columns="symbol", values="adjusted_close")[["XOM", "JPM", "AAPL"]]
    r = w.loc["2019-01-01":"2020-12-31"].pct_change().dropna().to_numpy()
    values = np.array([50_000.0, -30_000.0, 20_000.0])
    out = portfolio_var_cvar(r, values)
    pnl = r @ values
    for lv in (0.95, 0.99):
        assert out[lv][0] == pytest.approx(-np.quantile(pnl, 1 - lv), rel=1e-12)
    assert out[0.99][0] > out[0.95][0] and out[0.99][1] >= out[0.99][0]
    with pytest.raises(ValueError, match=r"expected shape \(n_days, 2\), was \(504, 3\)"):
        portfolio_var_cvar(r, values[:2])


@pytest.mark.data
def test_correlation_monitor_when_calm_vs_crisis_windows_then_flags_crisis_only(equities):
    eq, _, spy = equities
    w = eq.pivot(index="date", columns="symbol", values="adjusted_close")
    w["SPY"] = spy
    rets = w.pct_change()

    def run(a, b):
        x = rets.loc[a:b].dropna(axis=1)
        mon = CorrelationMonitor(x.shape[1], window=len(x), high_threshold=0.6)
        for row in x.to_numpy():
            mon.push(row)
        hedge = list(x.columns).index("SPY")
        values = np.where(np.arange(x.shape[1]) % 2 == 0, 10_000.0, -5_000.0)
        return x, mon.report(values, hedge_index=hedge), values, hedge

    x, calm, _, _ = run("2017-01-01", "2017-03-31")
    np.testing.assert_allclose(calm["corr"], np.corrcoef(x.to_numpy().T), atol=1e-12)
    assert not calm["high_correlation"] and calm["avg_corr"] < 0.3
    x, crisis, values, hedge = run("2008-09-15", "2008-12-05")
    assert crisis["high_correlation"] and crisis["avg_corr"] > 0.6
    assert crisis["concentration"] > 2 * calm["concentration"]
    # Betas against SPY match an OLS slope oracle; the hedge offsets the beta-weighted book.
    xs = x.to_numpy()
    slopes = np.array([np.polyfit(xs[:, hedge], xs[:, j], 1)[0] for j in range(xs.shape[1])])
    np.testing.assert_allclose(crisis["betas"], slopes, rtol=1e-9)
    v = values.copy()
    v[hedge] = 0.0
    assert crisis["hedge_value"] == pytest.approx(-(slopes * v).sum(), rel=1e-9)


def test_correlation_monitor_when_window_not_full_then_uses_rows_so_far():
    mon = CorrelationMonitor(2, window=10)
    with pytest.raises(ValueError, match="was 0"):
        mon.report()
    rows = np.array([[0.01, 0.02], [-0.01, -0.01], [0.02, 0.05], [0.0, 0.01]])
    for r in rows:
        mon.push(r)
    assert not mon.ready
    assert mon.report()["corr"][0, 1] == pytest.approx(np.corrcoef(rows.T)[0, 1])


def test_purge_tombstones_when_orders_come_and_go_then_live_ones_still_found_and_slots_empty_again():
    from alphad.daemon.risk.portfolio import OO_EMPTY, OO_FREED, _find, _slot_start, new_open_order_table, purge_tombstones

    ids, vals = new_open_order_table(16)

    def insert(cid):  # linear probing, as on_order_sent does
        k = _slot_start(cid, 15)
        while ids[k] != OO_EMPTY:
            k = (k + 1) & 15
        ids[k] = cid
        vals[k] = (0, 1, float(cid))

    for cid in range(100, 112):
        insert(cid)
    for cid in range(100, 109):  # most of them end, as in a long run
        ids[_find(ids, cid)] = OO_FREED
    assert purge_tombstones(ids, vals) == 9
    assert (ids == OO_FREED).sum() == 0 and (ids == OO_EMPTY).sum() == 16 - 3
    for cid in range(109, 112):
        j = _find(ids, cid)
        assert j >= 0 and ids[j] == cid and vals[j, 2] == float(cid)
    assert _find(ids, 100) == -1
