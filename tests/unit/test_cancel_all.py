"""``ctl cancel-all`` and a halt, in the router core: every working order or algorithm parent
is cancelled at its venue and risk hears each end; flatten orders keep working."""
from __future__ import annotations

import numpy as np

from alphad.daemon.risk.codes import B_OPEN_BUY, B_OPEN_SELL, B_POSITION
from alphad.ipc.control import C_FLATTEN
from alphad.daemon.risk import core as rk
from alphad.daemon.router.order_fsm import REASON_CXL_USER, State
from alphad.ipc.dtypes import EXEC_ACK, EXEC_CANCELED, MD_QUOTE, ORDER_DTYPE, ORDER_F_FLATTEN, ORDER_LIMIT
from test_router_algos import Rig, S, config, sell_prints


def limit_order(cid, side, qty, px, flags=0, t=0):
    o = np.zeros(1, ORDER_DTYPE)
    o[0]["client_order_id"], o[0]["side"], o[0]["qty"], o[0]["limit_px"] = cid, side, qty, px
    o[0]["kind"], o[0]["flags"], o[0]["t_origin"] = ORDER_LIMIT, flags, t
    return o


def test_cancel_all_when_limit_orders_rest_then_each_cancelled_at_the_venue_but_the_flatten_order():
    rig = Rig(config("immediate"))
    rig.md(MD_QUOTE)  # 99 / 101
    router = rig.router
    for cid, flags in ((1, 0), (2, 0), (3, ORDER_F_FLATTEN)):
        sent, k = router.on_orders(limit_order(cid, 1, 10, 99.0, flags), 1, rig.now)  # at the bid: rests
        assert sent == 1
        assert [r["status"] for r in router.reports[:k]] == [EXEC_ACK]
    cancelled, k = router.cancel_all(rig.now)
    assert cancelled == 2
    ended = {int(r["client_order_id"]): (int(r["status"]), int(r["reason"]), float(r["leaves_qty"]))
             for r in router.reports[:k]}
    assert ended == {1: (EXEC_CANCELED, REASON_CXL_USER, 0.0), 2: (EXEC_CANCELED, REASON_CXL_USER, 0.0)}
    store = router.store
    assert store.orders[store.find(3)]["state"] == State.ACCEPTED  # the flatten order still works
    assert router.cancel_all(rig.now) == (0, 0)  # nothing left to cancel


def test_cancel_all_when_twap_parent_works_then_its_children_cancelled_and_risk_gets_the_remainder():
    rig = Rig(config("twap", urgency=0.0, finish_fraction=0.0, catch_up=1.0, slices=5))
    rig.md(MD_QUOTE)
    order, sent = rig.signal(0.1, seq=5)  # 100 shares, worked passively over 10 s
    cid = int(order["client_order_id"])
    rig.run_until(3 * S, trade=sell_prints)  # two slices sent, resting behind the bid's queue
    filled = rig.risk.book[0, B_POSITION]
    assert filled < 100 and rig.risk.book[0, B_OPEN_BUY] == 100 - filled
    assert np.isin(rig.children()["state"], [State.ACCEPTED, State.PARTIALLY_FILLED]).any()
    cancelled, k = rig.router.cancel_all(rig.now)
    rig.to_risk(k)
    rig.to_risk(rig.router.poll(rig.now))  # the venue's answers to the child cancels
    assert cancelled == 1
    last = rig.of(cid)[-1]
    assert last["status"] == EXEC_CANCELED and last["reason"] == REASON_CXL_USER
    assert last["leaves_qty"] == 100 - filled  # what it did not fill goes back to risk
    assert rig.risk.book[0, B_OPEN_BUY] == 0 and rig.risk.book[0, B_POSITION] == filled
    kids = rig.children()
    assert not np.isin(kids["state"], [State.PENDING_NEW, State.ACCEPTED, State.PARTIALLY_FILLED]).any()
    rig.run_until(12 * S, trade=sell_prints)  # the schedule never resumes
    assert rig.risk.book[0, B_POSITION] == filled and len(rig.children()) == len(kids)


def test_cancel_all_when_a_flatten_parent_works_then_it_keeps_working_to_flat():
    rig = Rig(config("twap", urgency=0.3, slices=10))
    rig.md(MD_QUOTE)
    rig.signal(0.1, seq=5)
    rig.run_until(12 * S, trade=sell_prints)
    assert rig.risk.book[0, B_POSITION] == 100
    r = rig.risk
    out = np.zeros(4, ORDER_DTYPE)
    r.control[C_FLATTEN] = 1
    k = rk.risk_flatten(r.state, out, rig.now)
    _, rep = rig.router.on_orders(out, k, rig.now)  # the market child takes the 50 shown at 99
    rig.to_risk(rep)
    assert r.book[0, B_POSITION] == 50 and r.book[0, B_OPEN_SELL] == 50
    assert rig.router.cancel_all(rig.now)[0] == 0  # a flatten parent is never cancelled
    rig.run_until(rig.now + S, dt=S // 10)
    assert r.book[0, B_POSITION] == 0 and r.book[0, B_OPEN_SELL] == 0
