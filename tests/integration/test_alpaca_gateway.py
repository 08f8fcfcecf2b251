"""The Alpaca gateway process against a wire-level fake Alpaca (ops/fake_alpaca.py), with this
test as its router: real process, real rings, alpaca-py talking HTTP and websockets over
loopback.  Scripted failures: every order ends in a definite state or is known working,
none is sent twice, every fill is reported exactly once, positions come back as the venue
holds them."""
from __future__ import annotations

import time

import numpy as np
import pytest

from alphad.daemon.router.order_fsm import REJ_NOT_AT_VENUE, REJ_VENUE
from alphad.ipc import gateway_block as gb
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, EXEC_STATUS, REQ_CANCEL,
                               REQ_QUERY)
from alphad.ops.fake_alpaca import FakeAlpaca
from venue_reports import ended, filled, of, statuses
from alphad.ops.gateway_bench import KEY, SECRET, GatewayRig

pytestmark = pytest.mark.slow

BTC = 0
PREFIX = "alphad-"


@pytest.fixture
def fake():
    f = FakeAlpaca(key=KEY, secret=SECRET, cash=10_000_000.0).start()
    f.set_quote("BTC/USD", 60000.0, 60010.0, 100.0, 100.0)
    f.set_quote("ETH/USD", 3000.0, 3001.0, 1000.0, 1000.0)
    yield f
    f.stop()


@pytest.fixture
def rig(fake, tmp_path, request):
    kw = getattr(request, "param", {})
    r = GatewayRig(fake, tmp_path / "gw", prefix=f"alphad-gwt-{tmp_path.name[-20:]}", reconcile_interval_s=0.5,
                   backoff_s=0.05, **kw)
    try:
        yield r.start()
    finally:
        r.close()










def test_market_orders_fill_and_partial_fills_are_reported_once_each(fake, rig):
    rig.send(11, BTC, 1, 0.01)
    got = rig.wait_reports(ended(11))
    assert statuses(got, 11) == [EXEC_ACK, EXEC_FILL]
    fill = of(got, 11)[-1]
    assert fill[7] == pytest.approx(0.01) and fill[8] == pytest.approx(60010.0) and fill[10] == 0.0
    fake.partial_fills(3)
    rig.send(12, BTC, -1, 0.006)
    got = rig.wait_reports(ended(12))
    assert statuses(got, 12) == [EXEC_ACK, EXEC_PARTIAL, EXEC_PARTIAL, EXEC_FILL]
    assert filled(got, 12) == pytest.approx(0.006)
    assert fake.post_counts == {f"{PREFIX}11": 1, f"{PREFIX}12": 1}
    # positions as the venue holds them, read back into the gateway block
    w = rig.block.words
    t = int(w[gb.G_POSITIONS_TS])
    deadline = time.monotonic() + 10
    while int(w[gb.G_POSITIONS_TS]) == t and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.block.positions[BTC] == pytest.approx(0.004)
    assert fake.positions()["BTC/USD"] == pytest.approx(0.004) or fake.positions().get("BTCUSD") == pytest.approx(0.004)


def test_a_500_after_the_venue_took_the_order_leaves_it_in_flight_until_a_query_finds_its_fill(fake, rig):
    fake.fail_next("POST", "/v2/orders", 500, after_processing=True)
    rig.send(21, BTC, 1, 0.02)
    got = rig.wait_reports(ended(21))
    assert statuses(got, 21) == [EXEC_ACK, EXEC_FILL] and filled(got, 21) == pytest.approx(0.02)
    assert fake.post_counts[f"{PREFIX}21"] == 1  # never sent again
    assert rig.block.words[gb.G_HTTP_ERRORS] >= 1 and rig.block.words[gb.G_UNKNOWN] == 0


def test_a_500_before_the_venue_took_it_is_settled_as_never_arrived_and_not_resent(fake, rig):
    fake.fail_next("POST", "/v2/orders", 500)
    rig.send(31, BTC, 1, 0.02)
    got = rig.wait_reports(ended(31))
    assert statuses(got, 31) == [EXEC_REJECT] and of(got, 31)[0][6] == REJ_NOT_AT_VENUE
    assert fake.post_counts[f"{PREFIX}31"] == 1 and fake.order(f"{PREFIX}31") is None


def test_a_429_is_retried_with_backoff_and_a_definite_reject_rejects(fake, rig):
    fake.fail_next("POST", "/v2/orders", 429, count=2)
    rig.send(41, BTC, 1, 0.01)
    got = rig.wait_reports(ended(41))
    assert statuses(got, 41) == [EXEC_ACK, EXEC_FILL]
    assert fake.post_counts[f"{PREFIX}41"] == 3 and rig.block.words[gb.G_RATE_LIMITED] == 2
    fake.reject_next_order("insufficient buying power")
    rig.send(42, BTC, 1, 0.01)
    got = rig.wait_reports(ended(42))
    assert statuses(got, 42) == [EXEC_REJECT] and of(got, 42)[0][6] == REJ_VENUE


@pytest.mark.parametrize("rig", [{"http_timeout_s": 0.5}], indirect=True)
def test_a_reply_slower_than_the_timeout_is_settled_by_a_query_not_a_resend(fake, rig):
    fake.delay_next("POST", "/v2/orders", 2.0)
    rig.send(51, BTC, 1, 0.01)
    got = rig.wait_reports(ended(51))
    assert statuses(got, 51) == [EXEC_ACK, EXEC_FILL]
    assert fake.post_counts[f"{PREFIX}51"] == 1


def test_a_fill_while_the_stream_is_down_is_recovered_by_reconciliation(fake, rig):
    fake.fill_delay_s = 0.3
    rig.send(61, BTC, 1, 0.01)
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 61))
    fake.drop_streams()  # the fill happens while alpaca-py backs off (>= 1 s) and is never replayed
    got = rig.wait_reports(ended(61))
    assert statuses(got, 61) == [EXEC_FILL] and filled(got, 61) == pytest.approx(0.01)
    deadline = time.monotonic() + 15
    while not (rig.block.words[gb.G_RECONNECTS] and rig.block.words[gb.G_STREAM_UP]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.block.words[gb.G_RECONNECTS] >= 1 and rig.block.words[gb.G_STREAM_UP] == 1
    fake.fill_delay_s = 0.0
    rig.send(62, BTC, -1, 0.01)  # and trading goes on over the new stream
    got = rig.wait_reports(ended(62))
    assert statuses(got, 62) == [EXEC_ACK, EXEC_FILL]


def test_a_killed_gateway_comes_back_reports_the_fill_of_the_outage_once_and_sends_nothing_twice(fake, rig):
    fake.fill_delay_s = 3600  # the orders rest at the venue
    rig.send(71, BTC, 1, 0.01)
    rig.send(72, BTC, 1, 0.02)
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 71) and EXEC_ACK in statuses(got, 72))
    rig.kill()
    fake.fill_order(f"{PREFIX}71")  # filled while no gateway listens
    rig.start()
    got = rig.wait_reports(lambda got: ended(71)(got) and any(r[2] == 72 and r[5] == EXEC_STATUS for r in got))
    assert statuses(got, 71) == [EXEC_FILL] and filled(got, 71) == pytest.approx(0.01)
    assert [r for r in of(got, 72) if r[5] == EXEC_STATUS][0][10] == pytest.approx(0.02)  # still working, unfilled
    assert rig.block.words[gb.G_RECOVERED_FILLS] >= 1 and rig.block.words[gb.G_STARTS] == 2
    rig.send(72, BTC, 0, 0.0, action=REQ_CANCEL)  # the restarted gateway still knows how to reach it
    got = rig.wait_reports(ended(72))
    assert statuses(got, 72) == [EXEC_CANCELED]
    assert fake.post_counts == {f"{PREFIX}71": 1, f"{PREFIX}72": 1}


def test_a_query_about_an_order_the_gateway_never_took_settles_it_as_never_arrived(fake, rig):
    rig.send(81, BTC, 1, 0.01, action=REQ_QUERY, known_filled=-1.0)
    got = rig.wait_reports(lambda got: EXEC_STATUS in statuses(got, 81))
    assert statuses(got, 81) == [EXEC_REJECT, EXEC_STATUS] and of(got, 81)[0][6] == REJ_NOT_AT_VENUE
    assert of(got, 81)[1][6] == 0  # the query's answer: ended, its end reported (nothing more to come)
    assert f"{PREFIX}81" not in fake.post_counts


def test_keys_are_never_written_to_the_log(fake, rig):
    rig.send(91, BTC, 1, 0.01)
    rig.wait_reports(ended(91))
    fake.drop_streams()
    time.sleep(1.5)
    assert SECRET not in rig.output() and KEY not in rig.output()
    assert np.isfinite(rig.block.account[gb.A_EQUITY])


def test_limit_orders_rest_gtc_and_ioc_takes_what_is_there(fake, rig):
    from alphad.ipc.dtypes import TIF_GTC, TIF_IOC

    rig.send(101, BTC, 1, 0.01, kind=1, limit_px=59000.0, tif=TIF_GTC)  # below the ask: rests
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 101))
    assert fake.order(f"{PREFIX}101")["time_in_force"] == "gtc" and fake.order(f"{PREFIX}101")["status"] == "new"
    fake.set_quote("BTC/USD", 58990.0, 58995.0, 100.0, 100.0)  # the market comes to it
    got = rig.wait_reports(ended(101))
    assert statuses(got, 101) == [EXEC_FILL] and of(got, 101)[0][8] == pytest.approx(59000.0)
    fake.set_quote("BTC/USD", 60000.0, 60010.0, 0.004, 0.004)
    rig.send(102, BTC, 1, 0.01, kind=1, limit_px=60020.0, tif=TIF_IOC)  # 0.004 shown: the rest is cancelled
    got = rig.wait_reports(ended(102))
    assert statuses(got, 102) == [EXEC_ACK, EXEC_PARTIAL, EXEC_CANCELED] and filled(got, 102) == pytest.approx(0.004)


def test_a_broker_restart_mid_session_leaves_orders_in_flight_until_it_answers_again(fake, rig):
    fake.fill_delay_s = 3600
    rig.send(111, BTC, 1, 0.01)
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 111))
    fake.stop()  # the venue goes away (connections refused), forgetting nothing
    rig.send(112, BTC, 1, 0.01)  # its fate is unknown: the POST never got through
    deadline = time.monotonic() + 10
    while rig.block.words[gb.G_UNKNOWN] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.block.words[gb.G_UNKNOWN] >= 1 and not rig.reports().size  # nothing settled while it is away
    fake.start()
    fake.fill_order(f"{PREFIX}111")
    got = rig.wait_reports(lambda got: ended(111)(got) and ended(112)(got), timeout_s=30)
    assert statuses(got, 111) == [EXEC_FILL]  # through the reconnected stream or a read-back: once
    assert statuses(got, 112) == [EXEC_REJECT] and of(got, 112)[0][6] == REJ_NOT_AT_VENUE
    assert f"{PREFIX}112" not in fake.post_counts and fake.post_counts[f"{PREFIX}111"] == 1
