"""ops/fake_alpaca.py against the real alpaca-py clients, on loopback only.

Every client is alpaca-py's own (TradingClient, TradingStream, StockDataStream,
CryptoDataStream) pointed at the fake through its url_override, so these tests pin the wire
format as alpaca-py reads it.  Streams run in daemon threads that each fixture stops.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests

from alpaca.common.exceptions import APIError
from alpaca.data.live import CryptoDataStream, StockDataStream
from alpaca.data.models import Bar, Quote, Trade
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeUpdate
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from alphad.ops.fake_alpaca import FakeAlpaca

KEY, SECRET = "fake-key", "fake-secret"


def wait_until(pred, timeout: float = 5.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def market(coid: str, qty: float = 10, side: str = "buy", symbol: str = "AAPL", tif=TimeInForce.DAY):
    return MarketOrderRequest(symbol=symbol, qty=qty, side=OrderSide(side), time_in_force=tif,
                              client_order_id=coid)


def limit(coid: str, price: float, qty: float = 5, side: str = "buy", tif=TimeInForce.GTC):
    return LimitOrderRequest(symbol="AAPL", qty=qty, side=OrderSide(side), time_in_force=tif,
                             limit_price=price, client_order_id=coid)


class Events:
    """TradeUpdates a TradingStream handed its handler, in arrival order."""

    def __init__(self):
        self.items: list[TradeUpdate] = []

    async def handler(self, update: TradeUpdate) -> None:
        self.items.append(update)

    def of(self, coid: str) -> list[TradeUpdate]:
        return [u for u in list(self.items) if u.order.client_order_id == coid]

    def wait(self, coid: str, event: str, timeout: float = 5.0) -> TradeUpdate:
        return wait_until(lambda: next((u for u in self.of(coid) if u.event == event), None),
                          timeout, f"{event} of {coid}")


def run_stream(stream) -> threading.Thread:
    t = threading.Thread(target=stream.run, daemon=True)
    t.start()
    return t


def end_stream(fake: FakeAlpaca, stream, thread: threading.Thread) -> None:
    """stop() only flags the stream (it polls every 5 s); dropping the socket ends it now."""
    wait_until(lambda: stream._loop is not None, what="stream loop")
    stream.stop()
    fake.drop_streams()
    thread.join(10)
    assert not thread.is_alive()


@pytest.fixture
def fake():
    f = FakeAlpaca(port=0, key=KEY, secret=SECRET).start()
    f.set_quote("AAPL", 189.9, 190.1)
    yield f
    f.stop()


@pytest.fixture
def client(fake):
    c = TradingClient(KEY, SECRET, paper=True, url_override=fake.trading_url)
    # TradingClient does not forward RESTClient's retry_wait_seconds (default 3 s between
    # 429/504 retries); the attribute it reads is the only knob.
    c._retry_wait = 0.05
    yield c
    c._session.close()


@pytest.fixture
def events(fake):
    ev = Events()
    stream = TradingStream(KEY, SECRET, paper=True, url_override=fake.trading_stream_url)
    stream.subscribe_trade_updates(ev.handler)
    thread = run_stream(stream)
    wait_until(lambda: fake.trade_listeners() == 1, what="trading stream listening")
    yield ev
    end_stream(fake, stream, thread)


# ------------------------------------------------------------------ orders and fills

def test_market_order_fills_at_the_ask_and_the_stream_sees_new_then_fill(fake, client, events):
    o = client.submit_order(market("m1", 10))
    assert isinstance(o, Order) and o.status == OrderStatus.ACCEPTED and o.client_order_id == "m1"
    fill = events.wait("m1", "fill")
    assert [u.event for u in events.of("m1")] == ["new", "fill"]
    assert (fill.price, fill.qty, fill.position_qty) == (190.1, 10.0, 10.0)
    assert fill.execution_id is not None and fill.order.status == OrderStatus.FILLED
    got = client.get_order_by_client_id("m1")
    assert got.status == OrderStatus.FILLED and got.filled_qty == "10" and got.filled_avg_price == "190.1"
    assert client.get_order_by_id(o.id).id == o.id
    assert fake.positions() == {"AAPL": 10.0}
    assert fake.cash() == pytest.approx(100_000 - 1901.0)


def test_market_order_without_a_quote_waits_accepted_until_one_arrives(fake, client, events):
    client.submit_order(market("m2", 1, symbol="MSFT"))
    time.sleep(0.1)
    assert fake.order("m2")["status"] == "accepted" and events.of("m2") == []
    fake.set_quote("MSFT", 400.0, 400.5)
    assert events.wait("m2", "fill").price == 400.5
    assert [u.event for u in events.of("m2")] == ["new", "fill"]


def test_limit_order_rests_then_fills_at_its_limit_when_a_quote_crosses(fake, client, events):
    client.submit_order(limit("l1", 189.0))
    events.wait("l1", "new")
    time.sleep(0.05)
    open_ids = [o.client_order_id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))]
    assert open_ids == ["l1"] and fake.order("l1")["status"] == "new"
    fake.set_quote("AAPL", 188.5, 188.9)
    fill = events.wait("l1", "fill")
    assert (fill.price, fill.qty) == (189.0, 5.0)  # passive: its limit, not the better ask
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.client_order_id for o in closed] == ["l1"]
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []


def test_ioc_limit_takes_what_the_touch_shows_and_cancels_the_rest(fake, client, events):
    fake.set_quote("AAPL", 189.9, 190.1, ask_size=3)
    client.submit_order(limit("i1", 190.2, qty=5, tif=TimeInForce.IOC))
    events.wait("i1", "canceled")
    assert [(u.event, u.qty) for u in events.of("i1")] == [("new", None), ("partial_fill", 3.0), ("canceled", None)]
    assert fake.order("i1")["filled_qty"] == "3" and fake.positions() == {"AAPL": 3.0}


def test_partial_fills_split_market_orders_into_n_events(fake, client, events):
    fake.partial_fills(4)
    client.submit_order(market("p1", 8))
    events.wait("p1", "fill")
    fills = [u for u in events.of("p1") if u.event != "new"]
    assert [u.event for u in fills] == ["partial_fill"] * 3 + ["fill"]
    assert [u.qty for u in fills] == [2.0] * 4 and [u.position_qty for u in fills] == [2.0, 4.0, 6.0, 8.0]
    assert [u.order.filled_qty for u in fills] == ["2", "4", "6", "8"]


# ------------------------------------------------------------------ errors, retries, rejects

def test_duplicate_client_order_id_is_a_422_and_is_counted(fake, client):
    client.submit_order(market("dup", 1))
    with pytest.raises(APIError) as e:
        client.submit_order(market("dup", 1))
    assert e.value.status_code == 422 and e.value.code == 40010001
    assert fake.post_counts["dup"] == 2
    assert [o["client_order_id"] for o in fake.orders()] == ["dup"]


def test_429_is_retried_by_alpaca_py_and_the_order_goes_once(fake, client):
    fake.fail_next("POST", "/v2/orders", 429)
    o = client.submit_order(market("r1", 1))
    assert o.client_order_id == "r1"
    assert fake.post_counts["r1"] == 2 and len(fake.orders()) == 1
    assert [s for m, p, s in fake.request_log if (m, p) == ("POST", "/v2/orders")] == [429, 200]


def test_500_after_processing_fails_the_client_but_the_order_exists_and_fills(fake, client, events):
    fake.fail_next("POST", "/v2/orders", 500, after_processing=True)
    with pytest.raises(APIError) as e:
        client.submit_order(market("x1", 2))
    assert e.value.status_code == 500
    events.wait("x1", "fill")
    assert client.get_order_by_client_id("x1").status == OrderStatus.FILLED
    assert fake.post_counts["x1"] == 1


def test_504_after_processing_then_alpaca_py_retry_meets_the_duplicate_check(fake, client):
    fake.fail_next("POST", "/v2/orders", 504, after_processing=True)
    with pytest.raises(APIError) as e:  # alpaca-py retries 504 with the same client_order_id
        client.submit_order(market("x2", 2))
    assert e.value.status_code == 422
    assert fake.post_counts["x2"] == 2 and len(fake.orders()) == 1
    wait_until(lambda: fake.order("x2")["status"] == "filled", what="x2 filled")


def test_reject_next_order_is_alpacas_403_and_creates_nothing(fake, client):
    fake.reject_next_order()
    with pytest.raises(APIError) as e:
        client.submit_order(market("rj", 1))
    assert (e.value.status_code, e.value.code, e.value.message) == (403, 40310000, "insufficient buying power")
    assert fake.order("rj") is None and fake.post_counts["rj"] == 1
    with pytest.raises(APIError) as e:
        client.get_order_by_client_id("rj")
    assert (e.value.status_code, e.value.code) == (404, 40410000)


def test_bad_keys_are_401_and_delay_next_holds_the_reply(fake, client):
    bad = TradingClient(KEY, "wrong", paper=True, url_override=fake.trading_url)
    with pytest.raises(APIError) as e:
        bad.get_account()
    bad._session.close()
    assert (e.value.status_code, e.value.code) == (401, 40110000)
    fake.delay_next("GET", "/v2/clock", 0.3)
    t0 = time.monotonic()
    assert client.get_clock().is_open
    assert time.monotonic() - t0 >= 0.3


# ------------------------------------------------------------------ cancels

def test_cancel_one_then_cancel_all(fake, client, events):
    a = client.submit_order(limit("c1", 180.0))
    client.submit_order(limit("c2", 181.0))
    client.submit_order(limit("c3", 200.0, side="sell"))
    events.wait("c3", "new")
    client.cancel_order_by_id(a.id)
    assert events.wait("c1", "canceled").order.status == OrderStatus.CANCELED
    with pytest.raises(APIError) as e:
        client.cancel_order_by_id(a.id)
    assert e.value.status_code == 422
    out = client.cancel_orders()
    assert sorted(r.status for r in out) == [200, 200]
    events.wait("c2", "canceled")
    events.wait("c3", "canceled")
    client.submit_order(limit("c4", 170.0))
    events.wait("c4", "new")
    fake.cancel_order_at_venue("c4")
    assert events.wait("c4", "canceled").order.canceled_at is not None


def test_fill_order_and_expire_day_orders_at_the_venue(fake, client, events):
    client.submit_order(limit("v1", 185.0, qty=6))
    client.submit_order(limit("v2", 185.0, qty=1, tif=TimeInForce.DAY))
    events.wait("v2", "new")
    fake.fill_order("v1", qty=2)
    assert events.wait("v1", "partial_fill").price == 185.0
    fake.fill_order("v1", price=184.0)
    assert events.wait("v1", "fill").order.filled_avg_price == "184.333333333"
    fake.expire_day_orders()
    assert events.wait("v2", "expired").order.status == OrderStatus.EXPIRED


# ------------------------------------------------------------------ positions and account

def test_positions_and_account_follow_the_fills(fake, client, events):
    client.submit_order(market("b1", 10))
    events.wait("b1", "fill")
    fake.set_quote("AAPL", 195.0, 195.2)
    client.submit_order(market("s1", 4, side="sell"))
    events.wait("s1", "fill")
    fake.set_quote("TSLA", 250.0, 250.5)
    client.submit_order(market("s2", 2, side="sell", symbol="TSLA"))
    fake.set_quote("BTC/USD", 60_000.0, 60_010.0)
    client.submit_order(market("k1", 0.5, symbol="BTC/USD", tif=TimeInForce.GTC))
    events.wait("k1", "fill")
    events.wait("s2", "fill")
    # Fills mark to their price; quotes then mark to the mid.
    fake.set_quote("AAPL", 195.0, 195.2)
    fake.set_quote("TSLA", 250.0, 250.5)
    fake.set_quote("BTC/USD", 60_000.0, 60_010.0)

    pos = {p.symbol: p for p in client.get_all_positions()}
    assert set(pos) == {"AAPL", "TSLA", "BTCUSD"}  # Alpaca drops the slash in crypto positions
    assert (pos["AAPL"].qty, pos["AAPL"].side, pos["AAPL"].avg_entry_price) == ("6", "long", "190.1")
    assert (pos["TSLA"].qty, pos["TSLA"].side, pos["TSLA"].avg_entry_price) == ("-2", "short", "250")
    assert pos["BTCUSD"].asset_class == "crypto" and pos["BTCUSD"].qty == "0.5"
    assert client.get_open_position("AAPL").market_value == "1170.6"  # 6 x mid 195.1
    with pytest.raises(APIError) as e:
        client.get_open_position("NVDA")
    assert e.value.status_code == 404
    assert fake.positions() == {"AAPL": 6.0, "TSLA": -2.0, "BTC/USD": 0.5}

    cash = 100_000 - 1901.0 + 4 * 195.0 + 2 * 250.0 - 0.5 * 60_010.0
    acct = client.get_account()
    assert acct.status == "ACTIVE" and float(acct.cash) == pytest.approx(cash)
    assert float(acct.equity) == pytest.approx(cash + 6 * 195.1 - 2 * 250.25 + 0.5 * 60_005.0, abs=0.01)


# ------------------------------------------------------------------ outages

def test_drop_streams_loses_events_while_down_and_the_stream_reconnects(fake, client, events):
    fake.drop_streams()
    wait_until(lambda: fake.trade_listeners() == 0, what="listeners gone")
    client.submit_order(market("gone", 1))  # fills while nobody listens: never replayed
    wait_until(lambda: fake.order("gone")["status"] == "filled", what="gone filled")
    assert fake.trade_listeners() == 0, "reconnected too early for this test to mean anything"
    wait_until(lambda: fake.trade_listeners() == 1, timeout=10, what="TradingStream reconnect")
    client.submit_order(market("back", 1))
    events.wait("back", "fill")
    assert events.of("gone") == []
    assert client.get_order_by_client_id("gone").status == OrderStatus.FILLED  # reconcile by REST


def test_stop_start_on_the_same_port_keeps_orders_positions_and_cash(fake, client):
    client.submit_order(market("keep", 3))
    wait_until(lambda: fake.order("keep")["status"] == "filled", what="keep filled")
    client.submit_order(limit("rest", 180.0))
    port, cash = fake.port, fake.cash()
    fake.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get_account()
    fake.set_quote("AAPL", 179.0, 179.5)  # crosses while down: fills, nobody is told
    assert fake.order("rest")["status"] == "filled"
    assert fake.start() is fake and fake.port == port
    assert client.get_order_by_client_id("keep").filled_qty == "3"
    rest = client.get_order_by_client_id("rest")
    assert rest.status == OrderStatus.FILLED and rest.filled_qty == "5"
    assert fake.positions() == {"AAPL": 8.0}
    assert float(client.get_account().cash) == pytest.approx(cash - 5 * float(rest.filled_avg_price))


# ------------------------------------------------------------------ market data

def _data_stream(fake, cls, url, symbol):
    got: list = []

    async def on(x):
        got.append(x)

    stream = cls(KEY, SECRET, url_override=url)
    stream.subscribe_quotes(on, symbol)
    stream.subscribe_trades(on, symbol)
    stream.subscribe_bars(on, symbol)
    thread = run_stream(stream)
    wait_until(lambda: fake.data_subscribers(symbol, "bars") == 1, what=f"{cls.__name__} subscribed")
    return stream, thread, got


@pytest.mark.parametrize("cls,symbol,other", [(StockDataStream, "AAPL", "BTC/USD"),
                                              (CryptoDataStream, "BTC/USD", "AAPL")])
def test_data_streams_receive_quotes_trades_and_bars(fake, cls, symbol, other):
    url = fake.stock_data_url if cls is StockDataStream else fake.crypto_data_url
    stream, thread, got = _data_stream(fake, cls, url, symbol)
    try:
        fake.set_quote(other, 1.0, 2.0)  # the other asset class's stream carries it, not this one
        fake.set_quote(symbol, 100.0, 100.5, bid_size=3, ask_size=4)
        fake.publish_trade(symbol, 100.25, 7)
        fake.publish_bar(symbol, 100.0, 101.0, 99.5, 100.5, 1234, ts=1_700_000_040.0)
        wait_until(lambda: len(got) >= 3, what="three data messages")
        time.sleep(0.05)
        q, t, b = got
        assert isinstance(q, Quote) and (q.symbol, q.bid_price, q.ask_price, q.bid_size, q.ask_size) == \
            (symbol, 100.0, 100.5, 3.0, 4.0)
        assert isinstance(t, Trade) and (t.price, t.size) == (100.25, 7.0)
        assert isinstance(b, Bar) and (b.open, b.high, b.low, b.close, b.volume) == (100.0, 101.0, 99.5, 100.5, 1234)
        assert b.timestamp.timestamp() == 1_700_000_040.0 and q.timestamp.tzinfo is not None
        assert len(got) == 3
    finally:
        end_stream(fake, stream, thread)


def test_data_stream_reconnects_and_resubscribes_after_a_drop(fake):
    stream, thread, got = _data_stream(fake, StockDataStream, fake.stock_data_url, "AAPL")
    try:
        fake.drop_streams()
        wait_until(lambda: fake.data_subscribers("AAPL", "bars") == 0, what="data stream gone")
        wait_until(lambda: fake.data_subscribers("AAPL", "bars") == 1, timeout=10, what="resubscribed")
        fake.publish_trade("AAPL", 191.0, 1)
        assert wait_until(lambda: got, what="trade after reconnect")[0].price == 191.0
    finally:
        end_stream(fake, stream, thread)


def test_unsubscribe_stops_the_flow(fake):
    stream, thread, got = _data_stream(fake, StockDataStream, fake.stock_data_url, "AAPL")
    try:
        stream.unsubscribe_quotes("AAPL")
        wait_until(lambda: fake.data_subscribers("AAPL", "quotes") == 0, what="unsubscribed")
        fake.set_quote("AAPL", 190.0, 190.2)
        fake.publish_trade("AAPL", 190.1, 1)
        wait_until(lambda: got, what="trade")
        time.sleep(0.05)
        assert [type(x) for x in got] == [Trade]
    finally:
        end_stream(fake, stream, thread)
