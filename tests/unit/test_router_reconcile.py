"""A restarted router against venues that outlived its predecessor (mass status,
daemon/router/core.py ``reconcile``): an order still open there is adopted and its later
fill reaches risk; one entered in the ledger but never sent (a crash between the
write-ahead entry and the send) is reported CANCELED, never resent; an order open at the
venue that no ledger holds is cancelled there; the venue's positions are its fills."""
from __future__ import annotations

import numpy as np

from alphad.daemon.router import core as rt
from alphad.daemon.router.ledger import L_CID, ledger_open, new_ledger
from alphad.daemon.router.order_fsm import REASON_CXL_USER, REASON_CXL_VENUE_LOST, State
from alphad.daemon.router.venues.paper import PaperVenue, VenueSpec
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_FILL, MD_DTYPE, MD_QUOTE, MD_TRADE, ORDER_LIMIT,
                               ORDER_MARKET)
from test_cancel_all import limit_order
from test_router_algos import config


def md(kind, bid=99.0, ask=101.0, px=0.0, qty=0.0, aggressor=0):
    m = np.zeros(1, MD_DTYPE)
    m[0]["kind"], m[0]["bid_px"], m[0]["ask_px"], m[0]["bid_sz"], m[0]["ask_sz"] = kind, bid, ask, 50.0, 50.0
    m[0]["last_px"], m[0]["last_sz"], m[0]["aggressor"] = px, qty, aggressor
    return m


def router(cfg, ledger, last_cid):
    return rt.RouterCore(cfg.universe, cfg.router, last_cid, ledger=ledger)


def test_paper_venue_mass_status_when_orders_rest_fill_and_travel_then_open_orders_and_positions():
    v = PaperVenue(VenueSpec(name="a", taker_bps=1.0, maker_bps=0.0), 1, tick=0.01, lot=1.0)
    v.on_md(md(MD_QUOTE), 0)
    v.submit(limit_order(1, 1, 10, 99.0), 0, 0)  # rests at the bid
    market = limit_order(2, 1, 20, np.nan)
    market[0]["kind"] = ORDER_MARKET
    v.submit(market, 0, 0)  # takes 20 at 101
    status = v.mass_status(0)
    assert list(status.open_orders["client_order_id"]) == [1]
    assert status.open_orders[0]["leaves"] == 10 and status.open_orders[0]["kind"] == ORDER_LIMIT
    assert status.positions.tolist() == [20.0]
    v.on_md(md(MD_TRADE, px=98.0, qty=4.0, aggressor=-1), 1)  # a seller through our bid: 4 of 10
    status = v.mass_status(1)
    assert status.open_orders[0]["leaves"] == 6 and status.positions.tolist() == [24.0]


def test_reconcile_when_venue_outlived_the_router_then_adopted_lost_and_stray_each_handled_once():
    cfg = config("immediate")
    ledger, last_cid = new_ledger(), np.zeros(1, np.uint64)  # both live in the router_state segment
    first = router(cfg, ledger, last_cid)
    first.on_md(md(MD_QUOTE), 1, 0)
    first.on_orders(limit_order(1, 1, 10, 99.0), 1, 0)  # rests at the venue, at the bid
    first.on_orders(limit_order(2, -1, 5, 99.0), 1, 0)  # sells into the bid: filled, ended
    ledger_open(ledger, 3, 0, 1)  # entered before its send, then the router died: never sent
    first.venues[0].submit(limit_order(77, 1, 1, 98.5), 0, 0)  # a child no ledger holds
    first.poll(0)
    assert sorted(ledger[ledger[:, L_CID] != 0, L_CID]) == [1, 3]

    second = router(cfg, ledger, last_cid)  # the restarted router, the same venues
    for mine, theirs in zip(second.smart.storage, first.smart.storage):
        np.copyto(mine, theirs)
    for v in second.venues:
        v.survives_restart = True
    summary = second.reconcile(10)
    assert (summary["adopted"], summary["stray_cancels"]) == (1, 1)
    assert summary["positions"].tolist() == [-5.0]  # what the venue filled
    k = second.report_lost(10)
    lost = second.reports[:k]
    assert list(lost["client_order_id"]) == [3]  # asked about, never resent
    assert lost[0]["status"] == EXEC_CANCELED and lost[0]["reason"] == REASON_CXL_VENUE_LOST
    assert second.report_lost(10) == 0
    assert second.store.orders[second.store.find(1)]["state"] == State.ACCEPTED
    assert sorted(ledger[ledger[:, L_CID] != 0, L_CID]) == [1]  # still held for risk

    # the adopted order's fill reaches risk through the new router; the stray is cancelled
    second.on_md(md(MD_TRADE, px=98.8, qty=50.0, aggressor=-1), 1, 20)  # through our bid, not the stray's
    k = second.poll(20)
    got = {(int(r["client_order_id"]), int(r["status"])) for r in second.reports[:k]}
    assert (1, EXEC_FILL) in got and (77, EXEC_CANCELED) in got
    assert not ledger[:, L_CID].any()  # the fill ended it
    assert second.venues[0].mass_status(20).open_orders.size == 0


def test_reconcile_when_simulated_venues_ended_with_the_router_then_every_held_order_is_lost():
    cfg = config("immediate")
    ledger, last_cid = new_ledger(), np.zeros(1, np.uint64)
    first = router(cfg, ledger, last_cid)
    first.on_md(md(MD_QUOTE), 1, 0)
    _, k = first.on_orders(limit_order(1, 1, 10, 99.0), 1, 0)
    assert [r["status"] for r in first.reports[:k]] == [EXEC_ACK]
    second = router(cfg, ledger, last_cid)  # fresh in-process venues
    assert second.reconcile(5)["adopted"] == 0
    k = second.report_lost(5)
    assert list(second.reports[:k]["client_order_id"]) == [1]
    assert second.reports[0]["reason"] == REASON_CXL_VENUE_LOST != REASON_CXL_USER


def test_reconcile_when_router_restarts_mid_twap_then_the_parent_resumes_from_its_progress_to_exactly_its_qty():
    from alphad.daemon.router.parents import new_progress
    from alphad.daemon.risk.codes import B_OPEN_BUY, B_POSITION
    from test_router_algos import Rig, S, sell_prints

    cfg = config("twap", urgency=0.3, slices=10)
    rig = Rig(cfg)
    ledger, last_cid, progress = new_ledger(), np.zeros(1, np.uint64), new_progress(cfg.router.algo.max_parents)

    def start_router():  # the router_state segment's arrays outlive the process
        rig.router = rt.RouterCore(cfg.universe, cfg.router, last_cid, ledger=ledger, progress=progress, metrics=rig.m)
        rig.md(MD_QUOTE)

    start_router()
    order, _ = rig.signal(0.1, seq=5)  # 100 shares over 10 s
    cid = int(order["client_order_id"])
    rig.run_until(4 * S, trade=sell_prints)
    before = rig.risk.book[0, B_POSITION]
    first_children = set(rig.children()["cid"].tolist())
    assert 0 < before < 100 and progress[:, 0].tolist().count(cid) == 1

    start_router()  # killed and restarted: fresh in-process venues, the same segment
    summary = rig.router.reconcile(rig.now)
    assert (summary["resumed"], summary["adopted"]) == (1, 0)
    rig.to_risk(summary["reports"])
    assert rig.router.report_lost(rig.now) == 0  # the parent is not lost: it works on
    rig.run_until(12 * S, trade=sell_prints)
    mine = rig.of(cid)
    assert [int(r["status"]) for r in mine].count(EXEC_FILL) == 1 and mine[-1]["status"] == EXEC_FILL
    assert sum(r["fill_qty"] for r in mine) == 100  # what the first router filled, then the rest
    assert rig.risk.book[0, B_POSITION] == 100 and rig.risk.book[0, B_OPEN_BUY] == 0
    assert not first_children & set(rig.children()["cid"].tolist())  # no child id used twice
    assert not progress[:, 0].any() and not ledger[:, L_CID].any()  # ended: nothing held


def test_reconcile_when_a_parent_expired_while_the_router_was_down_then_it_ends_expired_with_its_remainder():
    from alphad.daemon.router.order_fsm import REASON_CXL_EXPIRED
    from alphad.daemon.router.parents import new_progress
    from test_router_algos import Rig, S

    cfg = config("twap", urgency=0.0, finish_fraction=0.0, slices=10)
    rig = Rig(cfg)
    ledger, last_cid, progress = new_ledger(), np.zeros(1, np.uint64), new_progress(cfg.router.algo.max_parents)
    rig.router = rt.RouterCore(cfg.universe, cfg.router, last_cid, ledger=ledger, progress=progress, metrics=rig.m)
    rig.md(MD_QUOTE)
    order, _ = rig.signal(0.1, seq=5)
    rig.now = 30 * S  # the router was down past the parent's 10 s end
    rig.router = rt.RouterCore(cfg.universe, cfg.router, last_cid, ledger=ledger, progress=progress, metrics=rig.m)
    summary = rig.router.reconcile(rig.now)
    assert summary["resumed"] == 0 and summary["reports"] == 1
    end = rig.router.reports[0]
    assert end["client_order_id"] == order["client_order_id"] and end["status"] == EXEC_CANCELED
    assert end["reason"] == REASON_CXL_EXPIRED and end["leaves_qty"] == 100
    assert rig.router.report_lost(rig.now) == 0 and not ledger[:, L_CID].any() and not progress[:, 0].any()
