"""Order book builder: Binance replay against the book-ticker stream, gaps, crossings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedDict

from alphad.kernels import book as bk

TICK = 0.01  # BTCUSDT and ETHUSDT spot tick size (USDT)


class Capture:
    """One symbol's snapshot, diff messages and book-ticker rows as numpy arrays."""

    def __init__(self, snap: pd.DataFrame, upd: pd.DataFrame, ticker: pd.DataFrame) -> None:
        self.snap_side = (snap["side"] == "ask").to_numpy(np.int8)
        self.snap_px = bk.to_ticks(snap["price"].to_numpy(), TICK)
        self.snap_qty = snap["qty"].to_numpy(np.float64)
        self.snap_id = int(snap["last_update_id"].iloc[0])
        fid = upd["final_update_id"].to_numpy(np.int64)
        first_row = np.flatnonzero(np.r_[True, fid[1:] != fid[:-1]])
        self.msg_start = np.r_[first_row, fid.shape[0]].astype(np.int64)
        self.U = upd["first_update_id"].to_numpy(np.int64)[first_row]
        self.u = fid[first_row]
        self.side = (upd["side"] == "ask").to_numpy(np.int8)
        self.px = bk.to_ticks(upd["price"].to_numpy(), TICK)
        self.qty = upd["qty"].to_numpy(np.float64)
        self.tk_id = ticker["update_id"].to_numpy(np.int64)
        self.tk = np.column_stack([
            bk.to_ticks(ticker["bid_price"].to_numpy(), TICK), ticker["bid_qty"].to_numpy(),
            bk.to_ticks(ticker["ask_price"].to_numpy(), TICK), ticker["ask_qty"].to_numpy(),
        ]).astype(np.float64)

    def fresh_book(self):
        keys, qty, meta = bk.new_book(8192)
        bk.load_snapshot(keys, qty, meta, self.snap_side, self.snap_px, self.snap_qty, self.snap_id)
        return keys, qty, meta

    def apply(self, book, m):
        keys, qty, meta = book
        return bk.apply_diff(keys, qty, meta, self.U[m], self.u[m], self.side, self.px, self.qty,
                             self.msg_start[m], self.msg_start[m + 1])


@pytest.fixture(scope="module")
def captures(shared_data):
    d = shared_data / "l2"
    snap = pd.read_csv(d / "binance_spot_depth_snapshot.csv.gz")
    upd = pd.read_csv(d / "binance_spot_depth_updates.csv.gz")
    tick = pd.read_csv(d / "binance_spot_book_ticker.csv.gz")
    return {
        sym: Capture(snap[snap["symbol"] == sym], upd[upd["symbol"] == sym], tick[tick["symbol"] == sym])
        for sym in ("BTCUSDT", "ETHUSDT")
    }


def _matches(cap: Capture, codes, best_after):
    """Indices (message, ticker row) where a book ticker carries a message's final id."""
    msg = {int(u): m for m, u in enumerate(cap.u) if codes[m] == bk.APPLIED}
    pairs = [(msg[int(t)], r) for r, t in enumerate(cap.tk_id) if int(t) in msg]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


@pytest.mark.data
def test_replay_when_full_capture_then_touch_equals_book_ticker_and_never_crossed(captures):
    total = 0
    for sym, cap in captures.items():
        # Arrange
        keys, qty, meta = cap.fresh_book()
        codes = np.empty(cap.u.shape[0], np.int64)
        best_after = np.empty((cap.u.shape[0], 4))
        # Act
        bad = bk.replay(keys, qty, meta, cap.U, cap.u, cap.msg_start, cap.side, cap.px, cap.qty,
                        codes, best_after)
        # Assert: only stale-then-applied, contiguous from the snapshot, never crossed
        assert bad == 0, f"{sym}: {bad} messages were gaps/crossed"
        applied = np.flatnonzero(codes == bk.APPLIED)
        assert (codes[: applied[0]] == bk.STALE).all()
        first = applied[0]
        assert cap.U[first] <= cap.snap_id + 1 <= cap.u[first]
        assert (best_after[applied, 0] < best_after[applied, 2]).all()
        assert meta[bk.M_GAPS] == 0 and meta[bk.M_CROSSINGS] == 0 and meta[bk.M_DROPPED] == 0
        pairs = _matches(cap, codes, best_after)
        np.testing.assert_array_equal(best_after[pairs[:, 0]], cap.tk[pairs[:, 1]],
                                      err_msg=f"{sym}: rebuilt touch != bookTicker")
        total += pairs.shape[0]
    assert total == 2128  # the data README's count of matching update ids


@pytest.mark.data
def test_replay_when_a_diff_is_dropped_then_gap_detected_and_resync_restores_book(captures):
    # Arrange: a reference book replayed cleanly; a "REST snapshot" of it taken later
    cap = captures["BTCUSDT"]
    dropped, snap_at = 3000, 3040
    ref = cap.fresh_book()
    for m in range(snap_at + 1):
        cap.apply(ref, m)
    rk, rq, rm = ref
    snap_side = np.r_[np.zeros(rm[0], np.int8), np.ones(rm[1], np.int8)]
    snap_px = np.r_[rk[0, : rm[0]], -rk[1, : rm[1]]]
    snap_qty = np.r_[rq[0, : rm[0]], rq[1, : rm[1]]]
    snap_id = int(cap.u[snap_at])
    book = cap.fresh_book()
    for m in range(dropped):
        cap.apply(book, m)
    # Act 1: skip one message
    code_after_drop = cap.apply(book, dropped + 1)
    code_next = cap.apply(book, dropped + 2)
    top = np.empty((4, 5))
    top_code = bk.top_levels(*book, TICK, top)
    # Assert 1: detected, book withheld
    assert code_after_drop == bk.GAP
    assert code_next == bk.NEED_SNAPSHOT
    assert top_code == bk.TOP_NO_BOOK
    assert book[2][bk.M_GAPS] == 1
    # Act 2: resync from the later snapshot, replay the buffered diffs and the rest
    bk.load_snapshot(*book, snap_side, snap_px, snap_qty, snap_id)
    codes = np.full(cap.u.shape[0], -1, np.int64)
    best_after = np.full((cap.u.shape[0], 4), np.nan)
    for m in range(dropped + 3, cap.u.shape[0]):
        codes[m] = cap.apply(book, m)
        best_after[m] = bk.best(*book)
    # Assert 2: buffered diffs up to the snapshot are stale, then contiguous again
    assert (codes[dropped + 3: snap_at + 1] == bk.STALE).all()
    assert (codes[snap_at + 1:] == bk.APPLIED).all()
    pairs = _matches(cap, codes, best_after)
    assert pairs.shape[0] > 300
    np.testing.assert_array_equal(best_after[pairs[:, 0]], cap.tk[pairs[:, 1]])
    clean = cap.fresh_book()
    bk.replay(*clean, cap.U, cap.u, cap.msg_start, cap.side, cap.px, cap.qty,
              np.empty(cap.u.shape[0], np.int64), np.empty((cap.u.shape[0], 4)))
    for side in (0, 1):
        n = clean[2][side]
        assert book[2][side] == n
        np.testing.assert_array_equal(book[0][side, :n], clean[0][side, :n])
        np.testing.assert_array_equal(book[1][side, :n], clean[1][side, :n])


# -- synthetic scenarios ---------------------------------------------------------------------


def _book_with(bids, asks, last_id=100):
    b = bk.Book(TICK, capacity=16)
    side = [0] * len(bids) + [1] * len(asks)
    px = [p for p, _ in bids] + [p for p, _ in asks]
    q = [x for _, x in bids] + [x for _, x in asks]
    b.load_snapshot(side, px, q, last_id)
    return b


def _diff(b, U, u, rows):
    side = np.array([r[0] for r in rows], np.int8)
    px = bk.to_ticks([r[1] for r in rows], TICK)
    q = np.array([r[2] for r in rows], np.float64)
    return bk.apply_diff(b.keys, b.qty, b.meta, U, u, side, px, q, 0, len(rows))


def test_apply_when_diff_crosses_then_reported_and_not_emitted_until_uncrossed():
    # Arrange
    b = _book_with([(100.00, 1.0), (99.99, 2.0)], [(100.01, 1.5), (100.02, 3.0)])
    top = np.zeros((4, 2))
    # Act / Assert: bid above the ask crosses
    assert _diff(b, 95, 101, [(0, 100.02, 0.5)]) == bk.CROSSED
    assert bk.top_levels(b.keys, b.qty, b.meta, TICK, top) == bk.TOP_CROSSED
    assert (top == 0).all()  # nothing written
    # removing the crossing bid uncrosses; equal prices lock
    assert _diff(b, 102, 102, [(0, 100.02, 0.0)]) == bk.APPLIED
    assert _diff(b, 103, 103, [(0, 100.01, 0.2)]) == bk.LOCKED
    assert bk.top_levels(b.keys, b.qty, b.meta, TICK, top) == bk.TOP_LOCKED
    assert _diff(b, 104, 104, [(0, 100.01, 0.0)]) == bk.APPLIED
    assert bk.top_levels(b.keys, b.qty, b.meta, TICK, top) == bk.TOP_OK
    np.testing.assert_allclose(top, [[100.00, 99.99], [1.0, 2.0], [100.01, 100.02], [1.5, 3.0]])
    assert b.meta[bk.M_CROSSINGS] == 2


def test_apply_when_sequence_rules_then_stale_gap_and_need_snapshot():
    b = _book_with([(10.00, 1.0)], [(10.01, 1.0)], last_id=100)
    assert _diff(b, 90, 100, [(0, 9.99, 1.0)]) == bk.STALE          # u <= lastUpdateId
    assert _diff(b, 102, 110, [(0, 9.99, 1.0)]) == bk.GAP          # first must cover 101
    assert _diff(b, 101, 110, [(0, 9.99, 1.0)]) == bk.NEED_SNAPSHOT
    b2 = _book_with([(10.00, 1.0)], [(10.01, 1.0)], last_id=100)
    assert _diff(b2, 95, 105, [(0, 9.99, 1.0)]) == bk.APPLIED      # U <= 101 <= u
    assert _diff(b2, 107, 108, [(0, 9.98, 1.0)]) == bk.GAP         # later: U must be 106
    assert b2.state == bk.S_NEED_SNAPSHOT


def test_set_level_when_capacity_full_then_worst_dropped_and_touch_kept():
    b = bk.Book(TICK, capacity=3)
    b.load_snapshot([0, 0, 0, 1], [10.00, 9.99, 9.98, 10.01], [1, 1, 1, 1], 1)
    assert _diff(b, 2, 2, [(0, 10.00, 0.0), (0, 9.97, 5.0)]) == bk.APPLIED
    px, _ = b.levels(0)
    np.testing.assert_allclose(px, [9.99, 9.98, 9.97])  # 10.00 removed, 9.97 fitted in
    assert _diff(b, 3, 3, [(0, 10.00, 2.0)]) == bk.APPLIED  # full: the worst (9.97) goes
    px, q = b.levels(0)
    np.testing.assert_allclose(px, [10.00, 9.99, 9.98])
    assert b.meta[bk.M_DROPPED] == 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-40, 40), st.sampled_from([0.0, 0.5, 1.0, 2.5])),
                min_size=1, max_size=120))
def test_levels_when_random_updates_then_equal_sorted_dict_oracle(ops):
    # Arrange: bids below 1000 ticks, asks above, so the book never crosses
    b = bk.Book(1.0, capacity=256)
    b.load_snapshot([0, 1], [900.0, 1100.0], [1.0, 1.0], 0)
    oracle = [SortedDict({900: 1.0}), SortedDict({1100: 1.0})]
    # Act
    for i, (sd, off, q) in enumerate(ops, start=1):
        px = (950 if sd == 0 else 1050) + off
        assert _diff_ticks(b, i, sd, px, q) == bk.APPLIED
        if q == 0.0:
            oracle[sd].pop(px, None)
        else:
            oracle[sd][px] = q
    # Assert
    for sd in (0, 1):
        px, qty = b.levels(sd)
        exp = list(oracle[sd].items())
        exp = exp[::-1] if sd == 0 else exp
        np.testing.assert_array_equal(px, [p for p, _ in exp])
        np.testing.assert_array_equal(qty, [x for _, x in exp])


def _diff_ticks(b, uid, sd, px, q):
    return bk.apply_diff(b.keys, b.qty, b.meta, uid, uid, np.array([sd], np.int8),
                         np.array([px], np.int64), np.array([q]), 0, 1)


def test_to_ticks_when_off_grid_then_clear_error():
    with pytest.raises(ValueError, match="expected a multiple of the tick size 0.01, was off-grid"):
        bk.to_ticks([1.005], 0.01)
