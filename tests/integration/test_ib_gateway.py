"""The IB gateway process against a wire-level fake TWS (ops/fake_tws.py), with this test as its
router: ib_async talking the TWS socket protocol over loopback, unchanged.  Fills with their
commissions, rejects, connection losses, the nightly reset, 326 and the data farms; no order
sent twice, every fill reported once."""
from __future__ import annotations

import time

import pytest

from alphad.daemon.router.order_fsm import REASON_CXL_REPLACED, REJ_NOT_AT_VENUE, REJ_REPLACE_UNKNOWN, REJ_VENUE
from alphad.ipc import gateway_block as gb
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, EXEC_STATUS, REQ_CANCEL,
                               REQ_REPLACE)
from daemon_rig import eventually
from venue_reports import ended, filled, of, statuses
from alphad.ops.gateway_bench import GatewayRig

pytestmark = pytest.mark.slow

BTC, ETH = 0, 1
REF = "alphad-"


@pytest.fixture
def fake():
    from alphad.ops.fake_tws import FakeTWS

    f = FakeTWS(commission_per_share=0.005, min_commission=1.0).start()
    f.set_quote("BTC", 60000.0, 60010.0, 10.0, 10.0)
    f.set_quote("ETH", 3000.0, 3001.0, 100.0, 100.0)
    yield f
    f.stop()


@pytest.fixture
def rig(fake, tmp_path):
    r = GatewayRig(fake, tmp_path / "gw", prefix=f"alphad-ibt-{tmp_path.name[-20:]}", venue="ib",
                   reconcile_interval_s=0.5, backoff_s=0.2, backoff_max_s=1.0, connect_timeout_s=3.0)
    try:
        yield r.start()
    finally:
        r.close()








def fees(reports, cid) -> float:
    return sum(r[9] for r in of(reports, cid) if r[5] in (EXEC_FILL, EXEC_PARTIAL))




def wait_word(rig, word, value, timeout=20.0):
    deadline = time.monotonic() + timeout
    while rig.block.words[word] < value and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.block.words[word] >= value, (word, int(rig.block.words[word]), rig.output()[-2000:])


def test_a_market_order_fills_with_its_commission_as_the_fee_and_partial_fills_each_once(fake, rig):
    rig.send(11, BTC, 1, 0.01)
    got = rig.wait_reports(ended(11))
    assert statuses(got, 11) == [EXEC_ACK, EXEC_FILL]
    fill = of(got, 11)[-1]
    assert fill[7] == pytest.approx(0.01) and fill[8] == pytest.approx(60010.0) and fill[9] == pytest.approx(1.0)
    assert fake.order(f"{REF}11")["order_ref"] == f"{REF}11"
    fake.partial_fills(2)
    rig.send(12, ETH, 1, 1.0)
    got = rig.wait_reports(ended(12))
    assert statuses(got, 12) == [EXEC_ACK, EXEC_PARTIAL, EXEC_FILL]
    # IB's minimum is per order: the two executions' commissions add up to it
    assert filled(got, 12) == pytest.approx(1.0) and fees(got, 12) == pytest.approx(1.0)
    assert fake.place_counts == {f"{REF}11": 1, f"{REF}12": 1}


def test_a_reject_rejects_and_a_cancel_cancels(fake, rig):
    fake.reject_next_order()
    rig.send(21, BTC, 1, 0.01)
    got = rig.wait_reports(ended(21))
    assert statuses(got, 21)[-1] == EXEC_REJECT and of(got, 21)[-1][6] == REJ_VENUE
    rig.send(22, BTC, 1, 0.01, kind=1, limit_px=50000.0)  # rests
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 22))
    rig.send(22, BTC, 0, 0.0, action=REQ_CANCEL)
    got = rig.wait_reports(ended(22))
    assert statuses(got, 22) == [EXEC_CANCELED]


def test_a_fill_while_the_connection_is_down_is_reported_once_after_the_one_reconnect(fake, rig):
    rig.send(31, BTC, 1, 0.01, kind=1, limit_px=50000.0)  # rests
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 31))
    fake.drop_connections()
    fake.fill_order(f"{REF}31", price=50000.0)  # while no client is connected
    got = rig.wait_reports(ended(31), timeout_s=30)
    assert statuses(got, 31) == [EXEC_FILL] and filled(got, 31) == pytest.approx(0.01)
    # the read-back's fill may be reported before the reconnect is counted: wait for the count
    words = rig.block.words
    eventually(lambda: words[gb.G_RECONNECTS] >= 1, timeout=10, what="the reconnect counted")
    assert words[gb.G_RECONNECTS] == 1 and words[gb.G_DISCONNECTS] == 1
    assert fake.place_counts == {f"{REF}31": 1}


def test_the_nightly_reset_reconnects_once_resubscribes_reconciles_and_trading_resumes(fake, rig):
    rig.send(41, BTC, 1, 0.01, kind=1, limit_px=50000.0)
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 41))
    fake.nightly_reset(down_s=2.0, data_lost=True)
    wait_word(rig, gb.G_RECONNECTS, 1, timeout=30)
    assert "1101" in rig.output() or "reconnected" in rig.output()
    rig.send(42, ETH, 1, 0.5)
    got = rig.wait_reports(ended(42), timeout_s=30)
    assert statuses(got, 42) == [EXEC_ACK, EXEC_FILL]
    assert rig.block.words[gb.G_RECONNECTS] == 1  # one loop, one reconnect
    assert fake.place_counts == {f"{REF}41": 1, f"{REF}42": 1}


def test_a_client_id_in_use_on_reconnect_is_retried_with_backoff_and_logged(fake, rig):
    me = rig.cfg.router.ib.client_id
    fake.client_id_in_use(me, times=2)
    fake.drop_connections()
    wait_word(rig, gb.G_RECONNECTS, 1, timeout=30)
    tries = [c for c in fake.connects if c[0] == me]
    assert len(tries) >= 4  # the first, the two refused (326), the one that worked
    assert "connect to 127.0.0.1" in rig.output() and "failed" in rig.output()


def test_data_farm_codes_are_a_health_state(fake, rig):
    fake.send_error(2103, "Market data farm connection is broken:usfarm")
    wait_word(rig, gb.G_FARMS_DOWN, 1)
    fake.send_error(2104, "Market data farm connection is OK:usfarm")
    deadline = time.monotonic() + 10
    while rig.block.words[gb.G_FARMS_DOWN] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.block.words[gb.G_FARMS_DOWN] == 0


def test_a_killed_gateway_comes_back_and_settles_its_orders_from_the_read_back(fake, rig):
    rig.send(51, BTC, 1, 0.01, kind=1, limit_px=50000.0)
    rig.send(52, ETH, 1, 0.5, kind=1, limit_px=2000.0)
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 51) and EXEC_ACK in statuses(got, 52))
    rig.kill()
    fake.fill_order(f"{REF}51", price=50000.0)
    rig.start()
    got = rig.wait_reports(lambda got: ended(51)(got) and any(r[2] == 52 and r[5] == EXEC_STATUS for r in got))
    assert statuses(got, 51) == [EXEC_FILL] and fees(got, 51) == pytest.approx(1.0)
    rig.send(52, ETH, 0, 0.0, action=REQ_CANCEL)
    got = rig.wait_reports(ended(52))
    assert statuses(got, 52) == [EXEC_CANCELED]
    assert fake.place_counts == {f"{REF}51": 1, f"{REF}52": 1}


def test_a_cancel_asked_while_disconnected_is_sent_after_the_reconnect_and_a_partial_fill_meanwhile_is_kept(fake, rig):
    rig.send(61, ETH, 1, 2.0, kind=1, limit_px=2000.0)  # rests
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 61))
    fake.nightly_reset(down_s=2.0, data_lost=False)
    time.sleep(0.3)
    fake.fill_order(f"{REF}61", qty=0.5, price=2000.0)  # a partial fill while the link is down
    rig.send(61, ETH, 0, 0.0, action=REQ_CANCEL)         # and the router's cancel, now
    got = rig.wait_reports(ended(61), timeout_s=30)
    assert statuses(got, 61) == [EXEC_PARTIAL, EXEC_CANCELED] and filled(got, 61) == pytest.approx(0.5)
    assert fake.order(f"{REF}61")["status"] == "Cancelled" and fake.place_counts == {f"{REF}61": 1}


def test_an_order_lost_with_the_connection_and_cancelled_meanwhile_ends_as_never_arrived_and_is_never_resent(
        fake, rig):
    # must-show 4, submit: the placeOrder left, the link dropped before TWS read it (the
    # daemon's nightly-reset flake: the halt's cancel came while its fate was unknown)
    fake.lose_next_order()
    rig.send(71, BTC, 1, 0.01, kind=1, limit_px=50000.0)
    wait_word(rig, gb.G_DISCONNECTS, 1)
    rig.send(71, BTC, 0, 0.0, action=REQ_CANCEL)
    got = rig.wait_reports(ended(71), timeout_s=30)
    assert statuses(got, 71) == [EXEC_REJECT] and of(got, 71)[0][6] == REJ_NOT_AT_VENUE
    assert "fate unknown" in rig.output() and "never arrived" in rig.output()
    rig.send(72, ETH, 1, 0.5)  # and trading goes on over the new connection
    got = rig.wait_reports(ended(72), timeout_s=30)
    assert statuses(got, 72) == [EXEC_ACK, EXEC_FILL]
    assert fake.lost_orders == [f"{REF}71"] and fake.place_counts == {f"{REF}72": 1}
    assert rig.block.words[gb.G_UNKNOWN] == 0



# -- must-show 4, modify: a replace is IB's in-place modify, never a second order --------------------------

def rest(rig, cid, inst, qty, px):
    rig.send(cid, inst, 1, qty, kind=1, limit_px=px)
    rig.wait_reports(lambda got: EXEC_ACK in statuses(got, cid))


def replace(rig, old, new, inst, qty, px):
    rig.send(new, inst, 1, qty, action=REQ_REPLACE, kind=1, limit_px=px, orig_cid=old)


def test_a_replace_modifies_the_order_in_place_and_each_fill_belongs_to_the_child_it_was_made_for(fake, rig):
    rest(rig, 101, ETH, 3.0, 2000.0)
    fake.fill_order(f"{REF}101", qty=1.0, price=2000.0)
    rig.wait_reports(lambda got: EXEC_PARTIAL in statuses(got, 101))
    replace(rig, 101, 102, ETH, 2.0, 2001.0)
    got = rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 102) and ended(101)(got))
    assert statuses(got, 101) == [EXEC_CANCELED] and of(got, 101)[0][6] == REASON_CXL_REPLACED
    assert of(got, 102)[0][10] == pytest.approx(2.0)  # the replacement's leaves
    at_ib = fake.order(f"{REF}102")
    assert at_ib["order_id"] == fake.orders()[0]["order_id"]  # the same IB order, modified
    assert at_ib["qty"] == pytest.approx(3.0) and at_ib["lmt_price"] == pytest.approx(2001.0)
    fake.fill_order(f"{REF}102", price=2001.0)
    got = rig.wait_reports(ended(102))
    assert statuses(got, 102) == [EXEC_FILL] and filled(got, 102) == pytest.approx(2.0)
    assert of(got, 102)[0][8] == pytest.approx(2001.0)
    assert fake.place_counts == {f"{REF}101": 1} and fake.modify_counts == {f"{REF}102": 1}
    # a restarted gateway's read-back gives each execution to its own child again: nothing new
    rig.kill()
    rig.start()
    time.sleep(1.5)
    assert not [r for r in rig.reports().tolist() if r[2] in (101, 102) and r[5] != EXEC_STATUS]


def test_a_fill_racing_the_modify_stays_the_old_childs_and_the_replacement_gets_what_is_left(fake, rig):
    rest(rig, 111, ETH, 3.0, 2000.0)
    fake.fill_before_next_modify(1.0)  # TWS fills 1 of the old child as the modify crosses it
    replace(rig, 111, 112, ETH, 3.0, 2001.0)
    got = rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 112) and ended(111)(got))
    assert statuses(got, 111) == [EXEC_PARTIAL, EXEC_CANCELED] and filled(got, 111) == pytest.approx(1.0)
    assert of(got, 112)[0][10] == pytest.approx(2.0)  # 3 asked, 1 went to the old child on the way
    fake.fill_order(f"{REF}112", price=2001.0)
    got = rig.wait_reports(ended(112))
    assert statuses(got, 112) == [EXEC_FILL] and filled(got, 112) == pytest.approx(2.0)
    assert fake.order(f"{REF}112")["filled"] == pytest.approx(3.0)


def test_a_replace_asking_more_than_is_open_is_clamped_to_what_is_open(fake, rig):
    rest(rig, 151, ETH, 3.0, 2000.0)
    fake.fill_order(f"{REF}151", qty=1.0, price=2000.0)
    rig.wait_reports(lambda got: EXEC_PARTIAL in statuses(got, 151))
    replace(rig, 151, 152, ETH, 3.0, 2001.0)  # a router that has not heard of the fill yet
    got = rig.wait_reports(lambda got: EXEC_ACK in statuses(got, 152) and ended(151)(got))
    assert of(got, 152)[0][10] == pytest.approx(2.0) and fake.order(f"{REF}152")["qty"] == pytest.approx(3.0)


def test_a_modify_of_an_order_that_filled_meanwhile_is_refused_and_the_fill_kept(fake, rig):
    rest(rig, 121, ETH, 2.0, 2000.0)
    fake.fill_before_next_modify()  # the whole order fills before the modify arrives
    replace(rig, 121, 122, ETH, 2.0, 2001.0)
    got = rig.wait_reports(lambda got: ended(122)(got) and ended(121)(got))
    assert statuses(got, 122) == [EXEC_REJECT] and of(got, 122)[0][6] == REJ_VENUE
    assert statuses(got, 121)[:1] == [EXEC_FILL] and filled(got, 121) == pytest.approx(2.0)
    assert fake.place_counts == {f"{REF}121": 1}


def test_a_modify_lost_with_the_connection_is_settled_by_the_read_back_and_never_placed_again(fake, rig):
    rest(rig, 131, ETH, 2.0, 2000.0)
    fake.lose_next_order()  # the modify leaves, the link drops before TWS reads it
    replace(rig, 131, 132, ETH, 2.0, 2001.0)
    got = rig.wait_reports(lambda got: ended(132)(got) and ended(131)(got), timeout_s=30)
    assert statuses(got, 132) == [EXEC_REJECT] and of(got, 132)[0][6] == REJ_NOT_AT_VENUE
    assert statuses(got, 131) == [EXEC_REJECT] and of(got, 131)[0][6] == REJ_REPLACE_UNKNOWN  # works on
    fake.fill_order(f"{REF}131", price=2000.0)
    got = rig.wait_reports(ended(131))
    assert statuses(got, 131) == [EXEC_FILL] and filled(got, 131) == pytest.approx(2.0)
    assert fake.lost_orders == [f"{REF}132"] and fake.modify_counts == {} and fake.place_counts == {f"{REF}131": 1}


def test_a_modify_applied_while_the_connection_drops_is_found_by_the_read_back(fake, rig):
    rest(rig, 141, ETH, 2.0, 2000.0)
    fake.lose_next_answer()  # TWS applies the modify; the link drops before its echo
    replace(rig, 141, 142, ETH, 2.0, 2001.0)
    eventually(lambda: fake.modify_counts, timeout=10, what="the modify at the fake")
    fake.fill_order(f"{REF}142", qty=0.5, price=2001.0)  # while no client is connected
    got = rig.wait_reports(lambda got: ended(141)(got) and EXEC_PARTIAL in statuses(got, 142), timeout_s=30)
    assert statuses(got, 141) == [EXEC_CANCELED] and of(got, 141)[0][6] == REASON_CXL_REPLACED
    assert statuses(got, 142) == [EXEC_ACK, EXEC_PARTIAL] and filled(got, 142) == pytest.approx(0.5)
    rig.send(142, ETH, 0, 0.0, action=REQ_CANCEL)
    got = rig.wait_reports(ended(142))
    assert statuses(got, 142) == [EXEC_CANCELED]
    assert fake.place_counts == {f"{REF}141": 1} and fake.modify_counts == {f"{REF}142": 1}
