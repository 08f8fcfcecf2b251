"""ops/fake_tws.py against the real ib_async client, on loopback only.

Every client here is an unmodified ``ib_async.IB`` driven through its own asyncio API inside
``asyncio.run``, so these tests pin the wire format as ib_async's decoder reads it: a field
out of place shows up as a decoder error in the log, which the autouse fixture turns into a
failure.  Each test bounds itself with a timeout and disconnects what it connected.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time

import pytest

from alphad.ops.fake_tws import SERVER_VERSION, FakeTWS
from ib_async import IB, Crypto, ExecutionFilter, LimitOrder, MarketOrder, Stock

HOST = "127.0.0.1"
ACCOUNT = "DU1234567"


@pytest.fixture
def fake():
    f = FakeTWS().start()
    f.set_quote("AAPL", 189.90, 190.10)
    f.set_quote("BTC", 60000.0, 60010.0, 1.5, 2.0)
    yield f
    f.stop()


@pytest.fixture(autouse=True)
def no_decode_errors(caplog):
    """A message ib_async cannot unpack is only logged by its decoder: make it fail the test."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [r.getMessage() for r in caplog.records
           if r.levelno >= logging.ERROR and (r.name == "ib_async.Decoder" or r.name.startswith("alphad"))
           or "No order found" in r.getMessage() or "Unknown reqId" in r.getMessage()]
    assert not bad, bad


def run(coro, timeout: float = 15.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout: float = 3.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def error_log(ib: IB) -> list[tuple[int, int, str]]:
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: seen.append((req_id, code, msg))
    return seen


@contextlib.asynccontextmanager
async def connected(fake: FakeTWS, client_id: int = 1, ib: IB | None = None):
    ib = ib or IB()
    await ib.connectAsync(HOST, fake.port, clientId=client_id, timeout=3)
    try:
        yield ib
    finally:
        ib.disconnect()


async def qualify(ib: IB, symbol: str = "AAPL"):
    contract = Crypto(symbol, "PAXOS", "USD") if symbol == "BTC" else Stock(symbol, "SMART", "USD")
    [c] = await ib.qualifyContractsAsync(contract)
    return c


async def filled_with_commission(ib: IB, trade, n_fills: int = 1):
    await until(lambda: trade.orderStatus.status == "Filled" and len(trade.fills) == n_fills
                and all(f.commissionReport.execId for f in trade.fills), what="fill + commission")


# ------------------------------------------------------------------ connect and contracts

def test_connect_announces_ids_accounts_and_farms(fake):
    async def go():
        ib = IB()
        errors = error_log(ib)
        t0 = time.monotonic()
        async with connected(fake, 3, ib):
            assert time.monotonic() - t0 < 1.0          # the whole startup sync is answered
            assert ib.client.serverVersion() == SERVER_VERSION
            assert ib.managedAccounts() == [ACCOUNT]
            assert ib.client.getReqId() >= 1             # nextValidId arrived
            values = {v.tag: v for v in ib.accountValues()}
            assert values["NetLiquidation"].currency == "USD"
            assert float(values["TotalCashValue"].value) == pytest.approx(1_000_000.0)
            assert {(r, c) for r, c, _ in errors} >= {(-1, 2104), (-1, 2106), (-1, 2158)}
            assert await ib.reqCurrentTimeAsync()
        assert fake.connects == [(3, "ok")]
    run(go())


def test_qualify_stock_and_crypto(fake):
    async def go():
        async with connected(fake) as ib:
            aapl, btc = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"),
                                                       Crypto("BTC", "PAXOS", "USD"))
            assert (aapl.conId, aapl.primaryExchange, aapl.exchange) == (265598, "NASDAQ", "SMART")
            assert (btc.conId, btc.secType, btc.localSymbol) == (479624278, "CRYPTO", "BTC.USD")
            [details] = await ib.reqContractDetailsAsync(btc)
            assert details.minTick == 0.25 and details.longName == "Bitcoin"
            assert await ib.qualifyContractsAsync(Crypto("NOPE", "PAXOS", "USD")) == [None]
    run(go())


# ------------------------------------------------------------------ orders

def test_market_order_fills_with_commission_and_realized_pnl(fake):
    async def go():
        async with connected(fake) as ib:
            aapl = await qualify(ib)
            buy = ib.placeOrder(aapl, MarketOrder("BUY", 100, orderRef="mkt-1"))
            await filled_with_commission(ib, buy)
            [fill] = buy.fills
            assert fill.execution.orderRef == "mkt-1" and fill.execution.side == "BOT"
            assert fill.execution.price == 190.10 and fill.execution.cumQty == 100
            assert fill.commissionReport.commission == 1.0      # 100 * 0.005 < the 1.0 minimum
            assert buy.order.permId > 0 and buy.order.permId == fill.execution.permId
            assert buy.orderStatus.avgFillPrice == 190.10 and buy.orderStatus.remaining == 0
            assert [f.commissionReport.commission for f in ib.fills()] == [1.0]

            sell = ib.placeOrder(aapl, MarketOrder("SELL", 100, orderRef="mkt-2"))
            await filled_with_commission(ib, sell)
            report = sell.fills[0].commissionReport
            assert report.realizedPNL == pytest.approx((189.90 - 190.10) * 100 - 1.0)
        assert fake.order("mkt-1")["status"] == "Filled" and fake.order("mkt-1")["avg_price"] == 190.10
        assert fake.place_counts == {"mkt-1": 1, "mkt-2": 1}
        assert fake.positions() == {}
        assert fake.order("mkt-2")["perm_id"] > fake.order("mkt-1")["perm_id"]
    run(go())


def test_partial_fills_after_the_fill_delay():
    fake = FakeTWS(fill_delay_s=0.05).start()
    try:
        fake.set_quote("AAPL", 189.90, 190.10)
        fake.partial_fills(3)

        async def go():
            async with connected(fake) as ib:
                aapl = await qualify(ib)
                trade = ib.placeOrder(aapl, MarketOrder("BUY", 100, orderRef="parts"))
                seen: list[tuple[str, float]] = []
                trade.statusEvent += lambda t: seen.append((t.orderStatus.status, t.orderStatus.filled))
                await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
                assert trade.fills == []                         # nothing before fill_delay_s
                await filled_with_commission(ib, trade, n_fills=3)
                assert [f.execution.shares for f in trade.fills] == [33, 33, 34]
                assert [f.execution.cumQty for f in trade.fills] == [33, 66, 100]
                assert len({f.execution.execId for f in trade.fills}) == 3
                assert sum(f.commissionReport.commission for f in trade.fills) == pytest.approx(1.0)
                assert ("Submitted", 33) in seen and ("Submitted", 66) in seen
                assert seen[-1] == ("Filled", 100)
        run(go())
    finally:
        fake.stop()


def test_rejected_order(fake):
    async def go():
        ib = IB()
        errors = error_log(ib)
        async with connected(fake, ib=ib):
            aapl = await qualify(ib)
            fake.reject_next_order()
            trade = ib.placeOrder(aapl, MarketOrder("BUY", 1_000_000, orderRef="too-big"))
            await until(trade.isDone, what="reject")
            assert trade.orderStatus.status == "Cancelled" and not trade.fills
            assert (trade.order.orderId, 201) in {(r, c) for r, c, _ in errors}
            ok = ib.placeOrder(aapl, MarketOrder("BUY", 1, orderRef="after"))
            await filled_with_commission(ib, ok)                # only the next order is rejected
        assert fake.order("too-big")["status"] == "Cancelled"
        assert fake.order("too-big")["filled"] == 0
    run(go())


def test_cancel_and_global_cancel(fake):
    async def go():
        ib = IB()
        errors = error_log(ib)
        async with connected(fake, ib=ib):
            aapl = await qualify(ib)
            one = ib.placeOrder(aapl, LimitOrder("BUY", 10, 180.0, orderRef="c-1"))
            await until(lambda: one.orderStatus.status == "Submitted", what="ack")
            ib.cancelOrder(one.order)
            await until(lambda: one.orderStatus.status == "Cancelled", what="cancel")
            assert (one.order.orderId, 202) in {(r, c) for r, c, _ in errors}

            rest = [ib.placeOrder(aapl, LimitOrder("SELL", 5, 200.0 + i, orderRef=f"g-{i}"))
                    for i in range(2)]
            await until(lambda: all(t.orderStatus.status == "Submitted" for t in rest), what="acks")
            ib.reqGlobalCancel()
            await until(lambda: all(t.orderStatus.status == "Cancelled" for t in rest), what="global")
            assert ib.openTrades() == []

            venue = ib.placeOrder(aapl, LimitOrder("BUY", 10, 170.0, orderRef="v-1"))
            await until(lambda: venue.orderStatus.status == "Submitted", what="ack")
            fake.cancel_order_at_venue("v-1")
            await until(lambda: venue.orderStatus.status == "Cancelled", what="venue cancel")
            assert (venue.order.orderId, 202) in {(r, c) for r, c, _ in errors}
        assert {o["order_ref"]: o["status"] for o in fake.orders()} == {
            "c-1": "Cancelled", "g-0": "Cancelled", "g-1": "Cancelled", "v-1": "Cancelled"}
    run(go())


def test_resting_limit_modified_then_filled_by_a_quote(fake):
    async def go():
        async with connected(fake) as ib:
            aapl = await qualify(ib)
            order = LimitOrder("BUY", 10, 189.0, orderRef="lmt")
            trade = ib.placeOrder(aapl, order)
            await until(lambda: trade.orderStatus.status == "Submitted", what="ack")
            order.lmtPrice = 189.5
            ib.placeOrder(aapl, order)                            # same orderId: a modify
            await until(lambda: fake.order("lmt")["lmt_price"] == 189.5, what="modify")
            assert trade.fills == [] and fake.place_counts["lmt"] == 1 and fake.modify_counts["lmt"] == 1
            fake.set_quote("AAPL", 189.00, 189.40)
            await filled_with_commission(ib, trade)
            assert trade.fills[0].execution.price == 189.40       # the touch, inside the limit
        assert len(fake.orders()) == 1 and fake.positions() == {"AAPL": 10}
    run(go())


def test_positions_and_account_values(fake):
    async def go():
        async with connected(fake) as ib:
            aapl, btc = await qualify(ib), await qualify(ib, "BTC")
            for contract, qty in ((aapl, 100), (btc, 0.5)):
                await filled_with_commission(ib, ib.placeOrder(contract, MarketOrder("BUY", qty)))
            positions = {p.contract.symbol: (p.position, p.avgCost) for p in await ib.reqPositionsAsync()}
            assert positions == {"AAPL": (100, 190.10), "BTC": (0.5, 60010.0)}
            await until(lambda: len(ib.portfolio()) == 2, what="portfolio updates")
            cash = 1_000_000 - 100 * 190.10 - 0.5 * 60010.0 - 2.0
            values = {v.tag: v for v in ib.accountValues() if v.currency == "USD"}
            assert float(values["TotalCashValue"].value) == pytest.approx(cash, abs=0.01)
            net = cash + 100 * 190.0 + 0.5 * 60005.0
            assert float(values["NetLiquidation"].value) == pytest.approx(net, abs=0.01)
            assert float(values["BuyingPower"].value) > 0
            summary = {v.tag for v in await ib.accountSummaryAsync()}
            assert {"NetLiquidation", "BuyingPower"} <= summary
            # not faked: answered with error 322, which ends the request at once
            assert len(await ib.reqHistoricalDataAsync(aapl, "", "1 D", "1 min", "TRADES", True)) == 0
        assert fake.positions() == {"AAPL": 100, "BTC": 0.5}
    run(go())


# ------------------------------------------------------------------ market data

def test_market_data_ticks(fake):
    async def go():
        async with connected(fake) as ib:
            aapl, btc = await qualify(ib), await qualify(ib, "BTC")
            ticker = ib.reqMktData(aapl)
            await until(lambda: ticker.bid == 189.90 and ticker.ask == 190.10, what="first quote")
            fake.set_quote("AAPL", 190.00, 190.20, 300, 400)
            await until(lambda: (ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize)
                        == (190.00, 300, 190.20, 400), what="quote update")
            fake.set_quote("AAPL", 190.00, 190.20, 300, 700)      # size only: a tickSize
            await until(lambda: ticker.askSize == 700, what="size update")
            fake.publish_trade("AAPL", 190.10, 50)
            await until(lambda: (ticker.last, ticker.lastSize, ticker.volume) == (190.10, 50, 50),
                        what="trade")
            crypto = ib.reqMktData(btc)
            await until(lambda: (crypto.bid, crypto.bidSize) == (60000.0, 1.5), what="crypto quote")
            bid_ask = ib.reqTickByTickData(aapl, "BidAsk")
            by_tick: list = []   # tickByTicks is emptied on every packet: collect per update
            bid_ask.updateEvent += lambda t: by_tick.extend(t.tickByTicks)
            fake.set_quote("AAPL", 190.05, 190.15)
            await until(lambda: any(t.bidPrice == 190.05 and t.askPrice == 190.15 for t in by_tick),
                        what="tick-by-tick bid/ask")
            [snap] = await ib.reqTickersAsync(Stock("AAPL", "SMART", "USD", conId=265598))
            assert (snap.bid, snap.ask) == (190.05, 190.15)
            ib.cancelMktData(aapl)
    run(go())


def test_real_time_bars_every_five_seconds(fake):
    async def go():
        async with connected(fake) as ib:
            aapl = await qualify(ib)
            bars = ib.reqRealTimeBars(aapl, 5, "MIDPOINT", False)
            await until(lambda: len(bars) >= 1, timeout=6.5, what="a 5 s bar")
            assert bars[-1].close == pytest.approx(190.0) and bars[-1].time.second % 5 == 0
            ib.cancelRealTimeBars(bars)
    run(go())


# ------------------------------------------------------------------ outages

def test_drop_then_reconnect_sees_what_happened_meanwhile(fake):
    async def go():
        ib = IB()
        async with connected(fake, 5, ib):
            aapl = await qualify(ib)
            await filled_with_commission(ib, ib.placeOrder(aapl, MarketOrder("BUY", 10, orderRef="m")))
            for ref, px in (("rest-fill", 185.0), ("rest-open", 184.0)):
                ib.placeOrder(aapl, LimitOrder("BUY", 50, px, orderRef=ref))
            await until(lambda: [t.orderStatus.status for t in ib.openTrades()] == ["Submitted"] * 2,
                        what="acks")
            perm_open = fake.order("rest-open")["perm_id"]

            fake.drop_connections()
            await until(lambda: not ib.isConnected(), what="disconnect seen")
            fake.fill_order("rest-fill")                          # while nobody is connected

            await ib.connectAsync(HOST, fake.port, clientId=5, timeout=3)
            fills = {f.execution.orderRef: f for f in ib.fills()}   # the startup reqExecutions
            assert set(fills) == {"m", "rest-fill"}
            assert fills["rest-fill"].execution.price == 185.0
            [still_open] = ib.openTrades()
            assert (still_open.order.orderRef, still_open.order.permId) == ("rest-open", perm_open)
            done = {t.order.orderRef: t.orderStatus.status
                    for t in await ib.reqCompletedOrdersAsync(False)}
            assert done == {"m": "Filled", "rest-fill": "Filled"}
            assert {f.execution.orderRef for f in await ib.reqExecutionsAsync()} == {"m", "rest-fill"}
            assert await ib.reqExecutionsAsync(ExecutionFilter(clientId=99)) == []
            assert await ib.reqExecutionsAsync(ExecutionFilter(time="20990101 00:00:00 UTC")) == []
            sells = await ib.reqExecutionsAsync(ExecutionFilter(clientId=5, side="SELL"))
            assert sells == []
            assert {p.contract.symbol: p.position for p in ib.positions()} == {"AAPL": 60}
            ib.cancelOrder(still_open.order)                     # the ids still line up
            await until(lambda: fake.order("rest-open")["status"] == "Cancelled", what="cancel")
        assert fake.connects == [(5, "ok"), (5, "ok")]
    run(go())


def test_stop_and_start_keep_state_and_port(fake):
    async def go():
        async with connected(fake) as ib:
            aapl = await qualify(ib)
            await filled_with_commission(ib, ib.placeOrder(aapl, MarketOrder("BUY", 1, orderRef="a")))
            rest = ib.placeOrder(aapl, LimitOrder("BUY", 5, 150.0, orderRef="r"))
            await until(lambda: rest.orderStatus.status == "Submitted", what="ack")
    run(go())
    port = fake.port
    fake.stop()
    fake.fill_order("r")                                          # the API works while stopped
    assert fake.positions() == {"AAPL": 6}
    fake.start()
    assert fake.port == port

    async def again():
        async with connected(fake) as ib:
            assert sorted(f.execution.orderRef for f in ib.fills()) == ["a", "r"]
            trade = ib.placeOrder(await qualify(ib), MarketOrder("BUY", 1, orderRef="b"))
            await filled_with_commission(ib, trade)
    run(again())
    assert fake.order("b")["perm_id"] > fake.order("r")["perm_id"] > fake.order("a")["perm_id"]
    assert fake.order("b")["order_id"] > fake.order("r")["order_id"]


def test_nightly_reset_sends_1100_then_1101_or_1102(fake):
    async def reconnect(ib: IB) -> None:
        end = time.monotonic() + 3
        while True:
            try:
                await ib.connectAsync(HOST, fake.port, clientId=2, timeout=1)
                return
            except OSError:          # refused while the fake is down
                assert time.monotonic() < end
                await asyncio.sleep(0.05)

    async def go():
        ib = IB()
        errors = error_log(ib)
        async with connected(fake, 2, ib):
            rest = ib.placeOrder(await qualify(ib), LimitOrder("BUY", 5, 150.0, orderRef="overnight"))
            await until(lambda: rest.orderStatus.status == "Submitted", what="ack")
            for data_lost, code in ((True, 1101), (False, 1102)):
                fake.nightly_reset(down_s=0.5, data_lost=data_lost)
                await until(lambda: not ib.isConnected(), what="disconnect")
                assert (-1, 1100) in {(r, c) for r, c, _ in errors}
                with pytest.raises(OSError):
                    await ib.connectAsync(HOST, fake.port, clientId=2, timeout=1)
                errors.clear()
                await reconnect(ib)
                assert (-1, code) in {(r, c) for r, c, _ in errors}
                assert [t.order.orderRef for t in ib.openTrades()] == ["overnight"]
    run(go())


def test_send_error_reaches_error_event(fake):
    async def go():
        ib = IB()
        errors = error_log(ib)
        async with connected(fake, ib=ib):
            errors.clear()
            fake.send_error(2103, "Market data farm connection is broken:usfarm")
            fake.send_error(2104, "Market data farm connection is OK:usfarm")
            await until(lambda: len(errors) == 2, what="errors")
            assert [(r, c) for r, c, _ in errors] == [(-1, 2103), (-1, 2104)]
            assert errors[0][2] == "Market data farm connection is broken:usfarm"
    run(go())


def test_client_id_in_use(fake):
    async def go():
        ib = IB()
        errors = error_log(ib)
        fake.client_id_in_use(7)
        with pytest.raises((TimeoutError, ConnectionError)):
            await ib.connectAsync(HOST, fake.port, clientId=7, timeout=0.5)
        assert (-1, 326) in {(r, c) for r, c, _ in errors}
        async with connected(fake, 7, ib):                      # only the scripted once
            other = IB()
            other_errors = error_log(other)
            with pytest.raises((TimeoutError, ConnectionError)):  # a live clash, as on TWS
                await other.connectAsync(HOST, fake.port, clientId=7, timeout=0.5)
            assert (-1, 326) in {(r, c) for r, c, _ in other_errors}
            assert ib.isConnected()
        assert fake.connects == [(7, "in_use"), (7, "ok"), (7, "in_use")]
    run(go())


# ------------------------------------------------------------------ command line

def test_module_serves_until_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "alphad.ops.fake_tws", "--quote", "AAPL=189.9,190.1"],
                            stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["server_version"] == SERVER_VERSION

        async def go():
            ib = IB()
            await ib.connectAsync(HOST, info["port"], clientId=9, timeout=3)
            try:
                [snap] = await ib.reqTickersAsync(Stock("AAPL", "SMART", "USD", conId=265598))
                assert (snap.bid, snap.ask) == (189.9, 190.1)
            finally:
                ib.disconnect()
        run(go())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
