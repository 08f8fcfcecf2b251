"""Execution algorithms: exact schedules, and full runs against the paper venue on the
real Binance BTCUSDT slice (children sum exactly to the parent, or stop at expiry
with the remainder reported)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.daemon.router.algos import (
    POV,
    TWAP,
    VWAP,
    Immediate,
    ParentSpec,
    ParentState,
    intraday_volume_profile,
)
from alphad.daemon.router.order_fsm import TERMINAL, OrderStore, State
from alphad.daemon.router.venues.paper import (
    LatencyModel,
    PaperVenue,
    VenueSpec,
    load_binance_book,
    load_binance_trades,
)

from algo_driver import AlgoDriver  # the tests' driver (tests/unit/algo_driver.py)

SYMBOL = "BTCUSDT"
LOT, TICK = 1e-5, 0.01
SEC = 1_000_000_000


def _spec(**kw):
    base = dict(parent_id=1, instrument=0, side=1, qty_lots=100_000, lot=LOT, tick=TICK,
                start_ns=0, end_ns=60 * SEC)
    base.update(kw)
    return ParentSpec(**base)


# -- schedules ----------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(qty=st.integers(1, 10**7), n=st.integers(1, 50), slice_s=st.integers(1, 30))
def test_twap_schedule_when_sampled_then_monotone_and_ends_exactly_at_parent(qty, n, slice_s):
    spec = _spec(qty_lots=qty, end_ns=n * slice_s * SEC)
    algo = TWAP(spec, slice_ns=slice_s * SEC)
    ts = np.linspace(-SEC, spec.end_ns + SEC, 97).astype(np.int64)
    tgt = [algo.target_lots(int(t)) for t in ts]
    assert tgt[0] == 0 and all(b >= a for a, b in zip(tgt, tgt[1:]))
    assert max(tgt) == qty and algo.target_lots(spec.end_ns - 1) == qty
    # Slice sizes differ by at most one lot: an even split of an integer quantity.
    sizes = np.diff([0] + [algo.target_lots(k * slice_s * SEC) for k in range(n)])
    assert sizes.sum() == qty and sizes.max() - sizes.min() <= 1


@settings(max_examples=150, deadline=None)
@given(qty=st.integers(1, 10**7),
       w=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=40).filter(lambda v: sum(v) > 1e-3))
def test_vwap_schedule_when_sampled_then_follows_profile_and_ends_exactly_at_parent(qty, w):
    spec = _spec(qty_lots=qty, end_ns=len(w) * 10 * SEC)
    algo = VWAP(spec, profile=w)
    due = [algo.target_lots(k * 10 * SEC) for k in range(len(w))]
    assert due[-1] == qty and all(b >= a for a, b in zip(due, due[1:]))
    cum = np.cumsum(w) / sum(w)
    assert np.all(np.abs(np.array(due) - qty * cum) <= 1 + qty * 1e-8)


@settings(max_examples=100, deadline=None)
@given(qty=st.integers(1, 10**6), rate=st.floats(0.01, 0.5),
       vols=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=30))
def test_pov_target_when_volume_grows_then_share_of_others_and_capped_at_parent(qty, rate, vols):
    algo = POV(_spec(qty_lots=qty), rate=rate)
    seen = 0.0
    last = 0
    for v in vols:
        seen += v
        algo.market_volume = seen
        t = algo.target_lots(SEC)
        assert last <= t <= qty
        assert t <= rate / (1 - rate) * seen / LOT + 1e-6
        last = t


def test_vwap_profile_when_built_from_spy_minutes_then_u_shaped_and_sums_to_one(shared_data):
    df = pd.read_csv(shared_data / "intraday" / "lean_equity_minute_trades.csv.gz")
    spy = df[df["symbol"] == "SPY"]
    dt = pd.to_datetime(spy["datetime"])
    prof = intraday_volume_profile((dt.dt.hour * 60 + dt.dt.minute).to_numpy(),
                                   spy["volume"].to_numpy(), start_minute=570, end_minute=960,
                                   bucket_minutes=30)
    assert len(prof) == 13 and prof.sum() == pytest.approx(1.0)
    # Heavier at the open and the close than over lunch: the shape VWAP exists for.
    assert prof[0] > prof[5] and prof[-1] > prof[5]


def test_parent_spec_when_invalid_then_error_says_expected_and_was():
    with pytest.raises(ValueError, match="urgency expected in \\[0, 1\\], was 1.5"):
        _spec(urgency=1.5)
    with pytest.raises(ValueError, match="qty_lots expected an int > 0, was 0"):
        _spec(qty_lots=0)


# -- full runs on the real slice -------------------------------------------------------

T0_OFFSET, WINDOW = 180 * SEC, 70 * SEC


@pytest.fixture(scope="module")
def market(shared_data):
    d = shared_data / "l2"
    trades = load_binance_trades(d, SYMBOL)
    t0 = int(trades["ts"][0]) + T0_OFFSET
    grid = np.arange(t0, t0 + WINDOW, SEC)
    books = load_binance_book(d, SYMBOL, grid, depth=20)
    sel = (trades["ts"] >= t0) & (trades["ts"] < t0 + WINDOW)
    tr = {k: v[sel] for k, v in trades.items()}
    return t0, books, tr


def _run(algo, market, *, cancel_at=None, journal=None, latency_ns=0):
    """Replay book states (1 s), trades and algorithm steps (250 ms) in time order."""
    t0, books, tr = market
    lat = LatencyModel(latency_ns, 0.3 if latency_ns else 0.0, seed=1)
    venue = PaperVenue(VenueSpec("paper", taker_bps=1.0, maker_bps=-0.2, entry=lat, response=lat),
                       1, tick=TICK, lot=LOT, depth=20)
    store = OrderStore(4096)
    drv = AlgoDriver(venue, store, journal=journal)
    ev = [(int(t), 0, k) for k, t in enumerate(books.ts)]
    ev += [(int(t), 1, k) for k, t in enumerate(tr["ts"])]
    ev += [(int(t), 2, 0) for t in range(t0, t0 + WINDOW, SEC // 4)]
    ev.sort()
    bid = ask = math.nan
    added = False
    for t, kind, k in ev:
        if kind == 0:
            venue.on_book(0, books.bid_px[k], books.bid_sz[k], books.ask_px[k], books.ask_sz[k], t)
            bid, ask = float(books.bid_px[k, 0]), float(books.ask_px[k, 0])
        elif kind == 1:
            venue.on_trade(0, tr["price"][k], tr["qty"][k], int(tr["aggressor"][k]), t)
            drv.on_market_trade(0, float(tr["price"][k]), float(tr["qty"][k]), t)
        else:
            if not added:
                drv.add(algo, t, arrival_bid=bid, arrival_ask=ask)
                added = True
            if cancel_at is not None and t >= cancel_at and not algo._stopping:
                drv.cancel(algo.spec.parent_id, t)
            drv.step(t, bid, ask)
        drv.poll(t)
        # Never more working + filled than the parent, at any instant.
        assert algo.filled + algo.open_lots <= algo.spec.qty_lots
    drv.poll(t0 + WINDOW + 10 * SEC)
    assert drv.failed_reports == 0  # every venue report was a transition the table allows
    return drv, venue, store


def _child_fills_in_lots(algo, store):
    total = 0
    for cid in algo.children:
        slot = store.find(cid)
        if slot >= 0:
            assert store.orders[slot]["state"] in {int(s) for s in TERMINAL}, \
                f"child {cid} left in {State(int(store.orders[slot]['state'])).name}"
            total += round(store.orders[slot]["filled"] / LOT)
    return total


@pytest.mark.data
@pytest.mark.parametrize("make", [
    lambda t0: TWAP(_spec(qty_lots=100_000, start_ns=t0, end_ns=t0 + 60 * SEC, urgency=0.2),
                    slice_ns=5 * SEC, replace_after_ns=2 * SEC),
    lambda t0: VWAP(_spec(qty_lots=100_000, start_ns=t0, end_ns=t0 + 65 * SEC, urgency=0.2),
                    profile=[3, 2, 1.5, 1.2, 1, 1, 1, 1, 1.1, 1.2, 1.5, 2, 3],
                    replace_after_ns=2 * SEC),
    lambda t0: POV(_spec(qty_lots=50_000, side=-1, start_ns=t0, end_ns=t0 + 60 * SEC, urgency=0.5),
                   rate=0.05, replace_after_ns=2 * SEC),
    lambda t0: Immediate(_spec(qty_lots=30_000, start_ns=t0, end_ns=t0 + 60 * SEC)),
], ids=["twap", "vwap", "pov", "immediate"])
def test_algo_when_run_on_real_slice_then_children_sum_exactly_to_parent(market, make):
    algo = make(market[0])
    _, venue, store = _run(algo, market)
    assert algo.state == ParentState.COMPLETED
    assert algo.filled == algo.spec.qty_lots and algo.remainder_lots == 0
    assert _child_fills_in_lots(algo, store) == algo.spec.qty_lots
    assert venue.dropped_reports == 0


@pytest.mark.data
def test_twap_when_market_moves_away_then_children_are_replaced_and_still_sum_exactly(market):
    t0 = market[0]
    # A passive seller while the price falls (61.74k -> 61.65k in this window):
    # its resting asks are left behind and must follow the market down.
    algo = TWAP(_spec(qty_lots=100_000, side=-1, start_ns=t0, end_ns=t0 + 60 * SEC, urgency=0.0),
                slice_ns=5 * SEC, replace_after_ns=1 * SEC, catch_up=0.05)
    _, _, store = _run(algo, market)
    assert algo.n_replaced > 0  # the cancel/replace loop ran
    replaced = [c for c in algo.children if store.find(c) >= 0
                and store.orders[store.find(c)]["state"] == State.REPLACED]
    assert replaced
    assert algo.state == ParentState.COMPLETED
    assert _child_fills_in_lots(algo, store) == algo.spec.qty_lots


@pytest.mark.data
def test_twap_when_venue_slow_and_replacing_fast_then_races_handled_and_sum_exact(market):
    # 150 ms each way (sampled) against 250 ms steps and 300 ms repricing: fills
    # cross replaces and cancels in flight; the FSM edges for those races must hold.
    t0 = market[0]
    algo = TWAP(_spec(qty_lots=100_000, side=-1, start_ns=t0, end_ns=t0 + 60 * SEC, urgency=0.3),
                slice_ns=5 * SEC, replace_after_ns=300_000_000)
    _, _, store = _run(algo, market, latency_ns=150_000_000)
    assert algo.n_replaced > 0
    assert algo.state == ParentState.COMPLETED
    assert _child_fills_in_lots(algo, store) == algo.spec.qty_lots


@pytest.mark.data
def test_pov_when_volume_short_then_stops_at_expiry_with_remainder_reported(market):
    t0 = market[0]
    events = []
    algo = POV(_spec(qty_lots=2_000_000, start_ns=t0, end_ns=t0 + 30 * SEC, urgency=0.5,
                     min_child_lots=1000), rate=0.02, replace_after_ns=2 * SEC, finish_ns=0)
    _, venue, store = _run(algo, market, journal=events.append)
    assert algo.state == ParentState.EXPIRED
    assert 0 < algo.filled < algo.spec.qty_lots
    assert algo.filled + algo.remainder_lots == algo.spec.qty_lots
    assert _child_fills_in_lots(algo, store) == algo.filled
    # Participation stayed near the rate (one child's rounding and latency aside).
    others = algo.market_volume - algo.filled * LOT
    assert algo.filled * LOT <= 0.02 / 0.98 * others * 1.05
    done = [e for e in events if e["type"] == "parent_done"]
    assert len(done) == 1 and done[0]["state"] == "expired"
    assert done[0]["remainder"] == pytest.approx(algo.remainder_lots * LOT)
    assert all(venue.resting(c) is None for c in algo.children)


@pytest.mark.data
def test_parent_when_cancelled_midway_then_children_cancelled_and_remainder_reported(market):
    t0 = market[0]
    algo = TWAP(_spec(qty_lots=100_000, start_ns=t0, end_ns=t0 + 60 * SEC, urgency=0.0),
                slice_ns=5 * SEC, catch_up=1.0, finish_ns=0)
    _, venue, store = _run(algo, market, cancel_at=t0 + 20 * SEC)
    assert algo.state == ParentState.CANCELED
    assert algo.filled < algo.spec.qty_lots
    assert algo.filled + algo.remainder_lots == algo.spec.qty_lots
    assert _child_fills_in_lots(algo, store) == algo.filled
    assert all(venue.resting(c) is None for c in algo.children)
    assert all(c.status == 3 for c in algo.children.values())


def test_child_ids_when_parent_rebuilt_then_same_ids_so_replay_never_resends():
    spec = _spec(qty_lots=1000, end_ns=10 * SEC)
    a, b = TWAP(spec, slice_ns=SEC), TWAP(spec, slice_ns=SEC)
    acts_a = a.step(0, 100.0, 100.01)
    acts_b = b.step(0, 100.0, 100.01)
    assert [x.cid for x in acts_a] == [x.cid for x in acts_b] and acts_a
    store = OrderStore(16)
    venue = PaperVenue(VenueSpec("p"), 1, tick=TICK, lot=LOT, depth=4)
    venue.on_book(0, [100.0], [5.0], [100.01], [5.0], 0)
    drv = AlgoDriver(venue, store)
    drv.add(a, 0, arrival_bid=100.0, arrival_ask=100.01)
    for x in acts_a:
        drv._send(a, x, 0)
    for x in acts_b:  # the restarted process re-derives the same decision
        drv._send(a, x, 0)
    assert len(store) == len(acts_a) and int(venue.ctr[1]) == len(acts_a)


@pytest.mark.parametrize("fill_frac", [1.0, 0.5], ids=["filled_before_replace", "partial_before_replace"])
def test_replace_when_fill_crosses_it_in_flight_then_fsm_edges_hold_and_sum_exact(fill_frac):
    ms = 1_000_000
    lat = LatencyModel(10 * ms)
    venue = PaperVenue(VenueSpec("p", entry=lat, response=lat), 1, tick=TICK, lot=LOT, depth=4)
    store = OrderStore(64)
    drv = AlgoDriver(venue, store)
    algo = Immediate(_spec(qty_lots=50_000, side=-1, end_ns=60 * SEC, urgency=0.0),
                     replace_after_ns=SEC)
    venue.on_book(0, [100.00], [1.0], [100.01], [0.5], 0)
    drv.add(algo, 0, arrival_bid=100.00, arrival_ask=100.01)
    # Immediate sells at the far touch (the bid) + offset; offset -1 tick puts the
    # sell at 100.01, where it joins the ask queue behind 0.5.
    algo.offset_ticks = -1
    drv.step(0, 100.00, 100.01)
    drv.poll(20 * ms)
    (old,) = list(algo.children)
    assert venue.resting(old)["ahead"] == 0.5
    # The market drops; the child is left behind and is replaced at t = 3 s ...
    venue.on_book(0, [99.98], [1.0], [99.99, 100.00, 100.01], [0.3, 0.3, 0.5], 3 * SEC)
    acts = algo.step(3 * SEC, 99.98, 99.99)
    assert [a.action for a in acts] == [3]  # REPLACE
    for a in acts:
        drv._send(algo, a, 3 * SEC)
    # ... but a buyer lifts 100.01 at 3.005 s, before the replace reaches the venue (3.010 s).
    venue.on_trade(0, 100.01, 0.5 + fill_frac * 0.5, 1, 3 * SEC + 5 * ms)
    drv.poll(3 * SEC + 30 * ms)
    new = algo.children[old].replaced_by or [c for c in algo.children if c != old][0]
    if fill_frac == 1.0:
        # Old: FILLED, then the replace reject is absorbed; the replacement is rejected.
        assert store.state(old) == State.FILLED and store.state(new) == State.REJECTED
        assert algo.state == ParentState.COMPLETED
    else:
        # Old: partially filled, then REPLACED; the replacement holds only what was left
        # (the venue clamps it to the old leaves) and, Immediate being behind, crosses.
        assert store.state(old) == State.REPLACED and store.state(new) == State.FILLED
        assert store.orders[store.find(new)]["filled"] == pytest.approx(0.25)
        assert store.orders[store.find(old)]["filled"] == pytest.approx(0.25)
        assert algo.state == ParentState.COMPLETED
    assert drv.failed_reports == 0
    assert _child_fills_in_lots(algo, store) == algo.spec.qty_lots == algo.filled



def test_driver_when_parent_id_is_large_then_children_carry_no_parent_slot_and_compaction_keeps_them():
    """The store's ``parent`` is a slot index that compaction remaps; parents are not in the
    store, so a child must not carry its parent's *id* there (it would be remapped as a slot)."""
    spec = _spec(parent_id=2**40 + 7, qty_lots=1000, end_ns=10 * SEC)
    algo = TWAP(spec, slice_ns=SEC)
    store = OrderStore(16)
    venue = PaperVenue(VenueSpec("p"), 1, tick=TICK, lot=LOT, depth=4)
    venue.on_book(0, [100.0], [5.0], [100.01], [5.0], 0)
    drv = AlgoDriver(venue, store)
    drv.add(algo, 0, arrival_bid=100.0, arrival_ask=100.01)
    drv.step(0, 100.0, 100.01)
    n = len(store)
    assert n >= 1 and (store.orders[:n]["parent"] == -1).all()
    cids = set(store.orders[:n]["cid"].tolist())
    assert all(drv.owner[c] == spec.parent_id for c in cids)
    store.compact(now=10**18, keep_terminal_ns=0)  # nothing out of range after a remap
    m = len(store)
    assert (store.orders[:m]["parent"] == -1).all()
