"""Paper venue: book walk and queue position on the real Binance L2 slice, rejects,
latency, fees, cancel/replace, the smart router, and the L2 loader."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphad.daemon.router.order_fsm import (
    ERR_DUPLICATE_CID,
    LIQ_MAKER,
    LIQ_TAKER,
    REASON_CXL_NO_LIQUIDITY,
    REASON_CXL_REPLACED,
    REJ_BAD_PRICE,
    REJ_BAD_QTY,
    REJ_CANCEL_UNKNOWN,
    REJ_PRICE_BAND,
    REJ_UNKNOWN_INSTRUMENT,
    OrderStore,
    State,
    child_order_id,
)
from alphad.daemon.router.venues.paper import (
    LatencyModel,
    PaperVenue,
    SmartRouter,
    VenueSpec,
    load_binance_book,
    load_binance_trades,
)
from alphad.daemon.router.venues.base import VenueAdapter
from alphad.ipc.dtypes import (
    EXEC_ACK,
    EXEC_CANCELED,
    EXEC_DTYPE,
    EXEC_FILL,
    EXEC_PARTIAL,
    EXEC_REJECT,
    MD_DTYPE,
    MD_QUOTE,
    MD_TRADE,
    ORDER_DTYPE,
    ORDER_LIMIT,
    ORDER_MARKET,
)

SYMBOL = "BTCUSDT"
TICK, LOT, DEPTH = 0.01, 1e-5, 20


@pytest.fixture(scope="module")
def l2(shared_data):
    d = shared_data / "l2"
    trades = load_binance_trades(d, SYMBOL)
    # Candidate instants every 20 s across the capture (deterministic).
    at = [int(trades["ts"][0] + k * 20_000_000_000) for k in range(1, 30)]
    return d, trades, load_binance_book(d, SYMBOL, at, depth=DEPTH)


def _venue(**kw):
    spec = VenueSpec(kw.pop("name", "paper"), taker_bps=kw.pop("taker_bps", 2.0),
                     maker_bps=kw.pop("maker_bps", -0.5), **kw)
    return PaperVenue(spec, 1, tick=TICK, lot=LOT, depth=DEPTH)


def _load(v, books, k, ts=None):
    v.on_book(0, books.bid_px[k], books.bid_sz[k], books.ask_px[k], books.ask_sz[k],
              int(books.ts[k]) if ts is None else ts)


def _poll(v, now):
    out = np.zeros(256, dtype=EXEC_DTYPE)
    n = v.poll(now, out)
    return out[:n].copy()


def test_paper_venue_when_checked_then_implements_the_venue_adapter_protocol():
    assert isinstance(_venue(), VenueAdapter)


@pytest.mark.data
@pytest.mark.parametrize("side", [1, -1])
def test_market_order_when_walking_three_levels_then_fills_equal_hand_computed_levels(l2, side):
    _, _, books = l2
    k = 3
    px = books.ask_px[k] if side > 0 else books.bid_px[k]
    sz = books.ask_sz[k] if side > 0 else books.bid_sz[k]
    # Three displayed levels, read explicitly: all of level 1 and 2, half of level 3.
    p1, p2, p3 = float(px[0]), float(px[1]), float(px[2])
    s1, s2, s3 = float(sz[0]), float(sz[1]), float(sz[2])
    qty = round(s1 + s2 + round(s3 / 2, 5), 5)
    assert s1 + s2 < qty < s1 + s2 + s3
    expected = [(p1, s1), (p2, s2), (p3, qty - s1 - s2)]
    v = _venue()
    t = int(books.ts[k])
    _load(v, books, k)
    v.submit_fields(7, 0, side, ORDER_MARKET, qty, np.nan, t)
    rep = _poll(v, t)
    assert rep["status"].tolist() == [EXEC_ACK, EXEC_PARTIAL, EXEC_PARTIAL, EXEC_FILL]
    fills = [(float(r["fill_px"]), float(r["fill_qty"])) for r in rep[1:]]
    assert fills == expected  # exact: prices and sizes straight from the displayed book
    assert rep["reason"][1:].tolist() == [LIQ_TAKER] * 3
    assert rep["fee"][1:] == pytest.approx([p * q * 2.0e-4 for p, q in expected], rel=1e-12)
    assert rep["leaves_qty"].tolist() == [qty, qty - s1, qty - s1 - s2, 0.0]
    # Liquidity taken is gone until the next book update: the next order starts in level 3.
    v.submit_fields(8, 0, side, ORDER_MARKET, 0.0001, np.nan, t)
    assert _poll(v, t)[1]["fill_px"] == p3


@pytest.mark.data
def test_market_order_when_larger_than_displayed_depth_then_remainder_cancelled_no_liquidity(l2):
    _, _, books = l2
    k = 3
    v = _venue()
    _load(v, books, k)
    shown = float(books.ask_sz[k].sum())
    qty = round(shown + 1.0, 5)
    t = int(books.ts[k])
    v.submit_fields(9, 0, 1, ORDER_MARKET, qty, np.nan, t)
    rep = _poll(v, t)
    fills = rep[np.isin(rep["status"], [EXEC_PARTIAL, EXEC_FILL])]
    assert len(fills) == DEPTH and fills["fill_qty"].sum() == pytest.approx(shown, rel=1e-12)
    assert rep[-1]["status"] == EXEC_CANCELED and rep[-1]["reason"] == REASON_CXL_NO_LIQUIDITY


def _resting_case(trades, books, order_qty):
    """A (book instant, bid level) whose price later trades (sell aggressor) more than the
    quantity ahead plus our order before anything trades below it."""
    for k in range(len(books.ts)):
        for lvl in range(3):
            P, S = float(books.bid_px[k, lvl]), float(books.bid_sz[k, lvl])
            after = np.flatnonzero(trades["ts"] > books.ts[k])
            px = trades["price"][after]
            below = np.flatnonzero(px < P)
            stop = below[0] if len(below) else len(px)
            idx = after[:stop]
            at_p = idx[(trades["price"][idx] == P) & (trades["aggressor"][idx] < 0)]
            if trades["qty"][at_p].sum() > S + order_qty:
                return k, P, S, idx
    raise AssertionError("no resting-order case found in the capture")


@pytest.mark.data
def test_resting_limit_when_real_trades_hit_its_price_then_fills_only_after_queue_ahead_traded(l2):
    _, trades, books = l2
    order_qty = 0.05
    k, P, S, idx = _resting_case(trades, books, order_qty)
    v = _venue()
    t0 = int(books.ts[k])
    _load(v, books, k)
    v.submit_fields(21, 0, 1, ORDER_LIMIT, order_qty, P, t0)
    rep = _poll(v, t0)
    assert rep["status"].tolist() == [EXEC_ACK]
    assert v.resting(21)["ahead"] == S  # queue ahead = displayed size at our price
    # Oracle: cumulative sell-aggressor volume at P, trade by trade.
    cum = 0.0
    fills = []
    first_fill_cum = None
    for j in idx:
        p, q, a = float(trades["price"][j]), float(trades["qty"][j]), int(trades["aggressor"][j])
        if p == P and a < 0:
            cum += q
        v.on_trade(0, p, q, a, int(trades["ts"][j]))
        got = _poll(v, int(trades["ts"][j]))
        if len(got):
            assert cum > S + 1e-9, "filled before the quantity ahead had traded"
            if first_fill_cum is None:
                first_fill_cum, first_fill_trade_qty = cum, q
                # The first fill is exactly what traded beyond the queue ahead.
                assert got[0]["fill_qty"] == pytest.approx(min(order_qty, cum - S), abs=1e-12)
            fills.extend(got.tolist())
        else:
            # No fill yet is only right while the queue ahead has not fully traded.
            assert first_fill_cum is not None or cum <= S + 1e-9
        if v.resting(21) is None:
            break
    # The first fill came on the very trade that took cumulative volume past S.
    assert first_fill_cum is not None and first_fill_cum - first_fill_trade_qty <= S < first_fill_cum
    fills = np.array(fills, dtype=EXEC_DTYPE)
    assert fills["fill_qty"].sum() == pytest.approx(order_qty, abs=1e-12)
    assert set(fills["fill_px"].tolist()) == {P}
    assert fills[-1]["status"] == EXEC_FILL and set(fills["reason"].tolist()) == {LIQ_MAKER}
    assert np.all(fills["fee"] < 0)  # maker rebate
    assert cum >= S + order_qty - 1e-12  # completed only once ahead + our size had traded


@pytest.mark.data
def test_resting_limit_when_book_shows_less_ahead_then_queue_shrinks_to_displayed(l2):
    _, _, books = l2
    k = 3
    v = _venue()
    _load(v, books, k)
    t = int(books.ts[k])
    P = float(books.bid_px[k, 1])
    v.submit_fields(31, 0, 1, ORDER_LIMIT, 0.01, P, t)
    _poll(v, t)
    before = v.resting(31)["ahead"]
    bsz = books.bid_sz[k].copy()
    bsz[1] = before / 4  # cancels ahead of us at our level
    v.on_book(0, books.bid_px[k], bsz, books.ask_px[k], books.ask_sz[k], t + 1)
    assert v.resting(31)["ahead"] == pytest.approx(before / 4)
    bsz[1] = before * 10  # size added behind us does not push us back
    v.on_book(0, books.bid_px[k], bsz, books.ask_px[k], books.ask_sz[k], t + 2)
    assert v.resting(31)["ahead"] == pytest.approx(before / 4)


@pytest.mark.data
@pytest.mark.parametrize("instrument,kind,qty,px,reason", [
    (3, ORDER_LIMIT, 0.01, 61800.0, REJ_UNKNOWN_INSTRUMENT),
    (-1, ORDER_MARKET, 0.01, np.nan, REJ_UNKNOWN_INSTRUMENT),
    (0, ORDER_LIMIT, 0.01, 61800.005, REJ_BAD_PRICE),
    (0, ORDER_LIMIT, 0.01, np.nan, REJ_BAD_PRICE),
    (0, ORDER_LIMIT, 0.01, -1.0, REJ_BAD_PRICE),
    (0, ORDER_LIMIT, 0.01, 30000.0, REJ_PRICE_BAND),
    (0, ORDER_MARKET, 0.000005, np.nan, REJ_BAD_QTY),
    (0, ORDER_MARKET, 0.0, np.nan, REJ_BAD_QTY),
])
def test_bad_order_when_submitted_then_rejected_with_reason(l2, instrument, kind, qty, px, reason):
    _, _, books = l2
    v = _venue()
    _load(v, books, 3)
    t = int(books.ts[3])
    v.submit_fields(41, instrument, 1, kind, qty, px, t)
    rep = _poll(v, t)
    assert rep["status"].tolist() == [EXEC_REJECT] and rep[0]["reason"] == reason


def test_order_when_instrument_has_no_book_yet_then_rejected_unknown_instrument():
    v = PaperVenue(VenueSpec("p"), 2, tick=TICK, lot=LOT, depth=4)
    v.on_book(0, [100.0], [1.0], [100.01], [1.0], 0)
    v.submit_fields(1, 1, 1, ORDER_MARKET, 0.001, np.nan, 0)
    rep = _poll(v, 0)
    assert rep[0]["status"] == EXEC_REJECT and rep[0]["reason"] == REJ_UNKNOWN_INSTRUMENT


def _tiny_book(v, t=0):
    v.on_book(0, [100.00, 99.99], [1.0, 2.0], [100.01, 100.02], [1.0, 2.0], t)


def test_latency_when_constant_then_order_arrives_and_reports_return_after_each_leg():
    v = PaperVenue(VenueSpec("p", entry=LatencyModel(1_000_000), response=LatencyModel(2_000_000)),
                   1, tick=TICK, lot=LOT, depth=4)
    _tiny_book(v)
    v.submit_fields(1, 0, 1, ORDER_MARKET, 0.5, np.nan, 10)
    assert len(_poll(v, 10 + 2_999_999)) == 0  # nothing before entry + response
    rep = _poll(v, 10 + 3_000_000)
    assert rep["status"].tolist() == [EXEC_ACK, EXEC_FILL]
    assert rep["ts"].tolist() == [10 + 1_000_000] * 2  # venue time = arrival


def test_latency_when_sampled_then_seeded_reproducible_and_reports_never_overtake():
    spec = VenueSpec("p", entry=LatencyModel(500_000, 0.5, seed=3), response=LatencyModel(800_000, 0.8, seed=4))
    runs = []
    for _ in range(2):
        v = PaperVenue(spec, 1, tick=TICK, lot=LOT, depth=4)
        _tiny_book(v)
        got = []
        for i in range(50):
            v.submit_fields(100 + i, 0, 1 if i % 2 else -1, ORDER_MARKET, 0.001, np.nan, i * 100_000)
            _tiny_book(v, i * 100_000 + 1)
            got.append(_poll(v, i * 100_000 + 50_000))
        got.append(_poll(v, 10**12))
        runs.append(np.concatenate(got))
    a, b = runs
    assert len(a) == 100 and np.array_equal(a, b)
    # Reports come back in the order the venue produced them (one ordered session).
    assert np.all(np.diff(a["ts"]) >= 0)
    assert len(set(np.diff(a["ts"][::2]).tolist())) > 1  # latency really varies


def test_cancel_and_replace_when_resting_then_reports_follow_venue_adapter_contract():
    v = _venue()
    _tiny_book(v)
    v.submit_fields(1, 0, 1, ORDER_LIMIT, 0.5, 99.99, 0)
    v.cancel(999, 1)
    rep = _poll(v, 1)
    assert rep["status"].tolist() == [EXEC_ACK, EXEC_REJECT] and rep[1]["reason"] == REJ_CANCEL_UNKNOWN
    assert v.resting(1)["ahead"] == 2.0
    # Replace to the best bid: old id gets CANCELED(replaced), new id ACK with a fresh queue.
    v.replace(1, 2, 0.8, 100.00, 2)
    rep = _poll(v, 2)
    assert [(r["client_order_id"], r["status"], r["reason"]) for r in rep] == [
        (1, EXEC_CANCELED, REASON_CXL_REPLACED), (2, EXEC_ACK, 0)]
    assert rep[1]["leaves_qty"] == 0.5  # clamped to the old order's open quantity
    assert v.resting(1) is None and v.resting(2)["ahead"] == 1.0
    v.cancel(2, 3)
    rep = _poll(v, 3)
    assert rep["status"].tolist() == [EXEC_CANCELED] and v.resting(2) is None


def test_md_trades_when_fed_as_records_then_fill_resting_order_through_on_md():
    v = _venue()
    _tiny_book(v)
    v.submit_fields(1, 0, -1, ORDER_LIMIT, 0.5, 100.01, 0)
    _poll(v, 0)
    md = np.zeros(2, dtype=MD_DTYPE)
    md["kind"] = MD_TRADE
    md["instrument"] = 0
    md["last_px"] = 100.01
    md["last_sz"] = [0.8, 0.4]   # 1.0 ahead: the first trade leaves 0.2 ahead, the second fills 0.2
    md["aggressor"] = 1
    md["ts_exch"] = [5, 6]
    v.on_md(md, 6)
    rep = _poll(v, 6)
    assert [(r["status"], r["fill_qty"]) for r in rep] == [(EXEC_PARTIAL, pytest.approx(0.2))]


def _router_order(cid, side, kind, qty, px, instrument=0):
    o = np.zeros(1, dtype=ORDER_DTYPE)
    o["client_order_id"] = cid
    o["instrument"] = instrument
    o["side"] = side
    o["kind"] = kind
    o["qty"] = qty
    o["limit_px"] = px
    return o


def test_smart_router_when_fees_differ_then_routes_to_cheapest_and_fsm_follows_reports():
    r = SmartRouter([VenueSpec("a", taker_bps=3.0, maker_bps=0.0),
                     VenueSpec("b", taker_bps=1.0, maker_bps=1.0)], 1, depth=4, tick=TICK, lot=LOT,
                    store=OrderStore(64))
    r.on_book(0, [100.00], [1.0], [100.01], [1.0], 0)
    cid = child_order_id(0, 0, 1)
    assert r.send(_router_order(cid, 1, ORDER_MARKET, 0.5, np.nan), 0, 0) == 1  # taker: b
    r.poll(0)
    assert r.store.state(cid) == State.FILLED and r.failed_reports == 0
    # A passive order pays the maker fee instead: a (0 bps) beats b (1 bps).
    cid2 = child_order_id(0, 0, 2)
    assert r.send(_router_order(cid2, 1, ORDER_LIMIT, 0.5, 99.99), 0, 1) == 0
    r.poll(1)
    assert r.store.state(cid2) == State.ACCEPTED
    r.cancel(cid2, 2)
    r.poll(2)
    assert r.store.state(cid2) == State.CANCELED
    # Cancel/replace through the router: old REPLACED, new live on the same venue.
    cid3, cid4 = child_order_id(0, 0, 3), child_order_id(0, 0, 3, 1)
    assert r.send(_router_order(cid3, 1, ORDER_LIMIT, 0.5, 99.99), 0, 2) == 0
    r.poll(2)
    assert r.replace(cid3, cid4, 0.5, 100.00, 3) == 0
    r.poll(3)
    assert r.store.state(cid3) == State.REPLACED and r.store.state(cid4) == State.ACCEPTED
    assert r.venues[0].resting(cid4)["px"] == 100.00 and r.failed_reports == 0
    # The same decision again: known id, nothing sent twice.
    assert r.send(_router_order(cid, 1, ORDER_MARKET, 0.5, np.nan), 0, 3) == ERR_DUPLICATE_CID
    # Inbound messages: 3 orders, 1 cancel, 1 replace.
    assert sum(int(v.ctr[1]) for v in r.venues) == 5


def test_smart_router_when_spread_or_depth_or_latency_differ_then_all_in_cost_decides():
    r = SmartRouter([VenueSpec("wide", taker_bps=0.5), VenueSpec("tight", taker_bps=1.0,
                     entry=LatencyModel(5_000_000))], 1, depth=4, tick=TICK, lot=LOT)
    r.venues[0].on_book(0, [99.98, 99.97], [5.0, 5.0], [100.02, 100.03], [5.0, 5.0], 0)
    r.venues[1].on_book(0, [100.00, 99.99], [1.0, 1.0], [100.01, 100.02, 100.03, 100.04],
                        [0.2, 0.2, 0.2, 0.2], 0)
    c = r.costs(0, 1, 0.1)
    assert c[0, 1] == pytest.approx(2.0, rel=1e-3) and c[1, 1] == pytest.approx(0.5, rel=1e-2)
    assert c[0, 0] == 0.5 and c[1, 0] == 1.0 and c[0, 2] == 0.0 and c[1, 2] == 0.0
    assert r.send(_router_order(1, 1, ORDER_MARKET, 0.1, np.nan), 0, 0) == 1  # tight wins
    # A large order walks the thin book: its impact now outweighs the spread.
    c = r.costs(0, 1, 4.0)
    assert c[1, 2] > c[0, 2]
    assert r.send(_router_order(2, 1, ORDER_MARKET, 4.0, np.nan), 0, 0) == 0
    # Charging latency makes the slow venue lose even a small order.
    r.lat_bps_per_ms = 2.0
    assert r.send(_router_order(3, 1, ORDER_MARKET, 0.1, np.nan), 0, 0) == 0


@pytest.mark.data
def test_binance_loader_when_rebuilt_then_best_levels_match_book_ticker_at_same_update_id(l2):
    d, _, _ = l2
    upd = pd.read_csv(d / "binance_spot_depth_updates.csv.gz",
                      usecols=["symbol", "local_ts_ns", "final_update_id"])
    upd = upd[upd["symbol"] == SYMBOL].drop_duplicates("final_update_id")
    bt = pd.read_csv(d / "binance_spot_book_ticker.csv.gz")
    bt = bt[bt["symbol"] == SYMBOL].drop_duplicates("update_id").set_index("update_id")
    common = upd[upd["final_update_id"].isin(bt.index)]
    assert len(common) > 100
    pick = common.iloc[np.linspace(0, len(common) - 1, 25).astype(int)]
    books = load_binance_book(d, SYMBOL, pick["local_ts_ns"].to_numpy(), depth=5)
    assert np.array_equal(books.update_id, pick["final_update_id"].to_numpy())
    ref = bt.loc[pick["final_update_id"].to_numpy()]
    assert np.array_equal(books.bid_px[:, 0], ref["bid_price"].to_numpy())
    assert np.array_equal(books.ask_px[:, 0], ref["ask_price"].to_numpy())
    assert np.array_equal(books.bid_sz[:, 0], ref["bid_qty"].to_numpy())
    assert np.all(books.bid_px[:, 0] < books.ask_px[:, 0])
    assert np.all(np.diff(books.bid_px, axis=1) < 0) and np.all(np.diff(books.ask_px, axis=1) > 0)


def test_binance_loader_when_symbol_unknown_then_error_names_it(shared_data):
    with pytest.raises(ValueError, match="symbol expected .* was 'XRPUSDT'"):
        load_binance_trades(shared_data / "l2", "XRPUSDT")


def test_md_quote_when_fed_then_top_level_replaced_deeper_levels_kept():
    v = _venue()
    v.on_book(0, [100.00, 99.99, 99.98], [1.0, 2.0, 3.0], [100.01, 100.02, 100.03], [1.0, 2.0, 3.0], 0)
    md = np.zeros(2, dtype=MD_DTYPE)
    md["kind"] = MD_QUOTE
    # A worse best bid removes the 100.00 level; a better best ask is put on top.
    md[0]["bid_px"], md[0]["bid_sz"], md[0]["ask_px"], md[0]["ask_sz"] = 99.99, 5.0, 100.005, 0.5
    md[1]["bid_px"], md[1]["bid_sz"], md[1]["ask_px"], md[1]["ask_sz"] = 99.99, 4.0, 100.005, 0.7
    v.on_md(md, 1)
    assert v.book[0, 0, :2].tolist() == [99.99, 99.98] and np.isnan(v.book[0, 0, 2])
    assert v.book[0, 1, :2].tolist() == [4.0, 3.0]
    assert v.book[0, 2, :4].tolist() == [100.005, 100.01, 100.02, 100.03]
    assert v.book[0, 3, :4].tolist() == [0.7, 1.0, 2.0, 3.0]
