"""Execution algorithms on a live venue (daemon/router/live_algos.py) over in-memory rings: the
children and their re-pricing go to the gateway as requests, risk hears of the parent only, and a
restarted router drains its predecessor's children before its parents resume."""
from __future__ import annotations

import numpy as np

from alphad.daemon.config import decode_config
from alphad.daemon.router.ledger import L_CID, ledger_open, new_ledger
from alphad.daemon.router.live import LiveRouterCore
from alphad.daemon.router.order_fsm import REASON_CXL_REPLACED, REJ_NOT_AT_VENUE, child_order_id
from alphad.daemon.router.parents import ALGO_STRATEGY, PG_CHILDREN, PG_CID, PG_FILLED, N_PG
from alphad.ipc.dtypes import (EXEC_ACK, EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT, EXEC_STATUS, MD_DTYPE,
                               MD_QUOTE, REQ_CANCEL, REQ_NEW, REQ_QUERY, REQ_REPLACE)
from test_live_router import Pipe, orders

CFG = decode_config("universe: [{id: 0, symbol: BTC/USD, tick_size: 0.01, lot_size: 0.001}]\n"
                    "router: {venue: ib, execution: twap, ib: {time_in_force: gtc},\n"
                    "         algo: {horizon_s: 10, slices: 1, step_ms: 100, replace_after_s: 1, urgency: 0,\n"
                    "                catch_up: 1, finish_fraction: 0}}\n")
S = 1_000_000_000


def core(pipe, ledger=None, progress=None):
    return LiveRouterCore(CFG.universe, CFG.router, np.zeros(1, np.uint64), ledger=ledger, push=pipe.push,
                          pop=pipe.pop, progress=progress)


def restarted(row):
    """A restarted router whose segment holds parent 9 (a progress ``row``) and its ledger entry."""
    pipe, ledger = Pipe(), new_ledger()
    progress = np.zeros((CFG.router.algo.max_parents, N_PG), np.int64)
    ledger_open(ledger, 9, 0, 1)
    progress[0] = row
    return pipe, ledger, progress, core(pipe, ledger, progress)


def quote(c, bid, ask, now):
    md = np.zeros(1, MD_DTYPE)
    md[0]["kind"], md[0]["bid_px"], md[0]["ask_px"], md[0]["t_origin"] = MD_QUOTE, bid, ask, now
    c.on_md(md, 1, now)


def sent(pipe, action):
    return pipe.sent[pipe.sent["action"] == action]


def report(cid, status, ts, *, reason=0, qty=0.0, px=np.nan, leaves=0.0):
    return (0, ts, cid, 0, 1, status, reason, qty, px, 0.0, leaves)


def test_children_and_their_replace_go_to_the_gateway_and_risk_hears_of_the_parent_only():
    pipe = Pipe()
    c = core(pipe)
    quote(c, 100.0, 100.1, 1 * S)
    o = orders(1, 1 * S)
    o["qty"] = 0.01
    assert c.on_orders(o, 1, 1 * S) == (1, 0)
    new = sent(pipe, REQ_NEW)
    child = child_order_id(ALGO_STRATEGY, 0, 1, 0)
    assert list(new["client_order_id"]) == [child] and new["qty"][0] == 0.01 and new["limit_px"][0] == 100.0
    assert new["tif"][0] == 1  # gtc: a child rests at its limit
    pipe.answer(report(child, EXEC_ACK, 2 * S, leaves=0.01), report(child, EXEC_PARTIAL, 2 * S, qty=0.004, px=100.0))
    k = c.poll(2 * S)
    assert k == 1 and c.reports[0]["client_order_id"] == 1 and c.reports[0]["status"] == EXEC_PARTIAL
    assert abs(c.reports[0]["leaves_qty"] - 0.006) < 1e-12
    quote(c, 100.5, 100.6, 4 * S)  # the market left the child behind: re-priced by a replace
    c.poll(4 * S)
    rep = sent(pipe, REQ_REPLACE)
    assert len(rep) == 1 and rep["orig_cid"][0] == child and abs(rep["qty"][0] - 0.006) < 1e-12
    assert rep["limit_px"][0] == 100.5
    new_child = int(rep["client_order_id"][0])
    pipe.answer(report(child, EXEC_CANCELED, 5 * S, reason=REASON_CXL_REPLACED),
                report(new_child, EXEC_ACK, 5 * S, leaves=0.006),
                report(new_child, EXEC_FILL, 5 * S, qty=0.006, px=100.5))
    k = c.poll(5 * S)
    assert k == 1 and c.reports[0]["status"] == EXEC_FILL and c.reports[0]["client_order_id"] == 1
    assert (c.ledger[:, L_CID] != 0).sum() == 0 and not c.parents.working


def test_a_restarted_router_drains_its_predecessors_children_then_resumes_the_rest():
    # parent 9: 10 lots, 2 filled, children 0 and 1 numbered; ends at 15 s (one slice left: all due)
    pipe, ledger, progress, c = restarted((9, 0, 1, 10, 2, 15 * S, 1 * S, 0, 2))
    quote(c, 100.0, 100.1, 10 * S)
    summary = c.reconcile(10 * S)
    kids = [child_order_id(ALGO_STRATEGY, 0, 9, k) for k in (0, 1)]
    assert summary["asked"] == 2 and list(sent(pipe, REQ_QUERY)["client_order_id"]) == kids  # never the parent
    pipe.answer(report(kids[0], EXEC_STATUS, 11 * S, reason=0),               # ended long ago
                report(kids[1], EXEC_STATUS, 11 * S, reason=1, qty=0.008))     # still resting at IB
    assert c.poll(11 * S) == 0 and c.pending_queries == 0
    assert list(sent(pipe, REQ_CANCEL)["client_order_id"]) == [kids[1]] and not len(sent(pipe, REQ_NEW))
    pipe.answer(report(kids[1], EXEC_PARTIAL, 12 * S, qty=0.003, px=100.0),    # fills before the cancel lands
                report(kids[1], EXEC_CANCELED, 12 * S))
    k = c.poll(12 * S)
    assert k == 1 and c.reports[0]["client_order_id"] == 9 and c.reports[0]["status"] == EXEC_PARTIAL
    assert abs(c.reports[0]["leaves_qty"] - 0.005) < 1e-12 and progress[0, PG_FILLED] == 5
    new = sent(pipe, REQ_NEW)  # resumed: what is left, numbered on from the predecessor's
    assert list(new["client_order_id"]) == [child_order_id(ALGO_STRATEGY, 0, 9, 2)]
    assert abs(new["qty"][0] - 0.005) < 1e-12 and progress[0, PG_CID] == 9 and progress[0, PG_CHILDREN] == 3


def test_a_predecessors_child_never_sent_is_rejected_by_the_gateway_and_a_parent_it_completes_ends_filled():
    pipe, ledger, progress, c = restarted((9, 0, 1, 10, 6, 100 * S, 1 * S, 0, 2))
    c.reconcile(10 * S)
    kids = [child_order_id(ALGO_STRATEGY, 0, 9, k) for k in (0, 1)]
    pipe.answer(report(kids[0], EXEC_FILL, 11 * S, qty=0.004, px=100.0),
                report(kids[1], EXEC_REJECT, 11 * S, reason=REJ_NOT_AT_VENUE))
    k = c.poll(11 * S)
    assert k == 1 and c.reports[0]["status"] == EXEC_FILL and c.reports[0]["leaves_qty"] == 0.0
    assert (ledger[:, L_CID] != 0).sum() == 0 and (progress[:, PG_CID] == 0).all()
    assert not len(sent(pipe, REQ_NEW)) and not c.parents.working


def test_a_ledger_order_that_is_no_parent_is_asked_about_as_a_venue_order_and_its_end_passed_on():
    pipe, ledger = Pipe(), new_ledger()
    ledger_open(ledger, 5, 0, 1)  # an immediate predecessor's order (the config changed since)
    c = core(pipe, ledger)
    assert c.reconcile(10 * S)["asked"] == 1 and list(sent(pipe, REQ_QUERY)["client_order_id"]) == [5]
    pipe.answer(report(5, EXEC_REJECT, 11 * S, reason=REJ_NOT_AT_VENUE))
    k = c.poll(11 * S)
    assert c.pending_queries == 0 and k == 1 and c.reports[0]["client_order_id"] == 5
    assert (ledger[:, L_CID] != 0).sum() == 0


def test_a_working_child_no_parent_owns_is_cancelled_not_adopted_and_its_fill_still_reaches_risk():
    # a restarted gateway reports every open row (EXEC_STATUS) for a router that may not know it
    pipe = Pipe()
    c = core(pipe)
    stray = child_order_id(ALGO_STRATEGY, 0, 77, 3)  # > 2**63: no ledger row could hold it
    assert stray >= 1 << 63
    pipe.answer(report(stray, EXEC_STATUS, 1 * S, reason=1, qty=0.004, leaves=0.004))
    assert c.poll(1 * S) == 0 and c.store.find(stray) < 0 and (c.ledger[:, L_CID] != 0).sum() == 0
    assert list(sent(pipe, REQ_CANCEL)["client_order_id"]) == [stray]
    pipe.answer(report(stray, EXEC_PARTIAL, 2 * S, qty=0.001, px=100.0), report(stray, EXEC_CANCELED, 2 * S))
    k = c.poll(2 * S)
    assert k == 2 and list(c.reports["status"][:2]) == [EXEC_PARTIAL, EXEC_CANCELED]  # risk books the fill


def test_a_cancel_all_while_the_predecessors_children_drain_cancels_the_parents_as_they_resume():
    pipe, ledger, progress, c = restarted((9, 0, 1, 10, 2, 15 * S, 1 * S, 0, 1))
    quote(c, 100.0, 100.1, 10 * S)
    c.reconcile(10 * S)
    kid = child_order_id(ALGO_STRATEGY, 0, 9, 0)
    c.cancel_all(10 * S)  # a halt: parent 9 is not working yet, its child still drains
    pipe.answer(report(kid, EXEC_CANCELED, 11 * S))
    c.poll(11 * S)
    new = sent(pipe, REQ_NEW)["client_order_id"]
    assert list(sent(pipe, REQ_CANCEL)["client_order_id"]) == list(new)  # its resumed child cancelled at once
    pipe.answer(report(int(new[0]), EXEC_CANCELED, 12 * S))
    k = c.poll(12 * S)
    assert k == 1 and c.reports[0]["client_order_id"] == 9 and c.reports[0]["status"] == EXEC_CANCELED
    assert abs(c.reports[0]["leaves_qty"] - 0.008) < 1e-12 and not c.parents.working
