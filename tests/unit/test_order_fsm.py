"""Order state machine: table, property test, real-world edges, ids, store."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.daemon.router.order_fsm import (
    ERR_DUPLICATE_CID,
    ERR_INVALID_TRANSITION,
    ERR_OVERFILL,
    REASON_CXL_EXPIRED,
    REASON_CXL_REPLACED,
    REASON_CXL_USER,
    REJ_BAD_PRICE,
    REJ_CANCEL_UNKNOWN,
    REJ_REPLACE_UNKNOWN,
    TABLE,
    TERMINAL,
    TERMINAL_EDGES,
    TRANSITIONS,
    WORKING,
    InvalidStateTrigger,
    OrderFSM,
    OrderStore,
    State,
    Trigger,
    child_order_id,
    exec_trigger,
    fsm_step,
)
from alphad.ipc.dtypes import (
    EXEC_ACK,
    EXEC_CANCELED,
    EXEC_DTYPE,
    EXEC_FILL,
    EXEC_PARTIAL,
    EXEC_REJECT,
    ORDER_LIMIT,
)


def test_int_table_when_built_then_equals_python_table_for_every_pair():
    for s, t in itertools.product(State, Trigger):
        want = TRANSITIONS.get((s, t), -1)
        assert TABLE[s, t] == want, f"{s.name} -> {t.name}"
    assert not TABLE.flags.writeable


def test_terminal_edges_when_listed_then_all_are_self_loops_on_late_rejects():
    assert TERMINAL_EDGES, "the documented edges out of terminal states must exist"
    for (s, t) in TERMINAL_EDGES:
        assert TRANSITIONS[(s, t)] == s
        assert t in (Trigger.CANCEL_REJECT, Trigger.REPLACE_REJECT)


def test_invalid_trigger_when_applied_then_raises_state_arrow_trigger_and_keeps_state():
    fsm = OrderFSM(1.0)
    for t in (Trigger.SUBMIT, Trigger.ACK, Trigger.FILL):
        fsm.apply(t, 1.0 if t == Trigger.FILL else 0.0)
    with pytest.raises(InvalidStateTrigger, match=r"^FILLED -> ACK$"):
        fsm.apply(Trigger.ACK)
    assert fsm.state == State.FILLED


def _draw_events(data, fsm_state_of, n):
    """Events biased toward ones the current state accepts (so deep paths and
    terminal states are reached), mixed with arbitrary ones (which must raise)."""
    for _ in range(n):
        state = fsm_state_of()
        allowed = [t for (s, t) in TRANSITIONS if s == state]
        if allowed and data.draw(st.integers(0, 4), label="bias") > 0:
            trig = data.draw(st.sampled_from(allowed), label="trigger")
        else:
            trig = data.draw(st.sampled_from(list(Trigger)), label="trigger")
        yield trig, data.draw(st.floats(0.05, 0.8), label="fill fraction")


@settings(max_examples=200, deadline=None)
@given(data=st.data(), qty=st.sampled_from([1.0, 0.37, 250.0]), n=st.integers(1, 40))
def test_random_event_sequences_when_applied_then_state_defined_terminal_sticky_never_overfilled(
        data, qty, n):
    # The Python FSM (dict table) and the njit kernel (int table) run side by side.
    fsm = OrderFSM(qty)
    state, filled = int(State.NEW), 0.0
    terminal_at = None
    for trig, frac in _draw_events(data, lambda: fsm.state, n):
        fill = frac * qty if trig in (Trigger.PARTIAL_FILL, Trigger.FILL) else 0.0
        before = fsm.state
        try:
            fsm.apply(trig, fill)
            py_ok = True
        except InvalidStateTrigger as e:
            # Fill triggers are normalised (PARTIAL_FILL vs FILL from quantities).
            assert str(e).startswith(f"{before.name} -> ")
            py_ok = False
        except ValueError:  # overfill refused
            py_ok = False
        r = fsm_step(TABLE, state, int(trig), qty, filled, fill)
        assert (r >= 0) == py_ok
        if r >= 0:
            state = r
            if trig in (Trigger.PARTIAL_FILL, Trigger.FILL):
                filled += fill
        else:
            assert r in (ERR_INVALID_TRANSITION, ERR_OVERFILL)
            assert fsm.state == before  # a refused event changes nothing
        assert state == int(fsm.state) and filled == pytest.approx(fsm.filled)
        assert fsm.state in set(State)  # never an undefined state
        assert fsm.filled <= qty * (1 + 1e-9)
        if terminal_at is not None:
            assert fsm.state == terminal_at, "a terminal state was left"
            if py_ok:
                assert (terminal_at, Trigger(trig)) in TERMINAL_EDGES
        elif fsm.state in TERMINAL:
            terminal_at = fsm.state
        if fsm.state == State.FILLED:
            assert fsm.filled == pytest.approx(qty)


def _exec(cid, status, reason=0, fill_qty=0.0, fill_px=0.0, leaves=0.0, ts=1):
    e = np.zeros(1, dtype=EXEC_DTYPE)
    e["client_order_id"] = cid
    e["status"] = status
    e["reason"] = reason
    e["fill_qty"] = fill_qty
    e["fill_px"] = fill_px
    e["leaves_qty"] = leaves
    e["ts"] = ts
    return e


@settings(max_examples=100, deadline=None)
@given(reports=st.lists(st.tuples(
    st.sampled_from([EXEC_ACK, EXEC_PARTIAL, EXEC_FILL, EXEC_REJECT, EXEC_CANCELED]),
    st.sampled_from([0, REASON_CXL_EXPIRED, REASON_CXL_REPLACED, REJ_BAD_PRICE, REJ_CANCEL_UNKNOWN,
                     REJ_REPLACE_UNKNOWN]),
    st.floats(0.05, 0.9), st.booleans()), min_size=1, max_size=30))
def test_random_venue_reports_when_applied_to_store_then_filled_never_exceeds_qty(reports):
    store = OrderStore(8)
    cid = child_order_id(1, 0, 7)
    store.add(cid, 0, 1, ORDER_LIMIT, 2.0, 100.0, 0)
    store.trigger(cid, Trigger.SUBMIT, 0)
    for status, reason, frac, request in reports:
        if request:  # our own requests interleave with the venue's reports
            try:
                store.trigger(cid, Trigger.CANCEL_REQUEST, 1)
            except InvalidStateTrigger:
                pass
        before = store.orders[0].copy()
        bad = store.apply(_exec(cid, status, reason, frac * 2.0, 100.0, leaves=2.0))
        o = store.orders[0]
        assert 0 <= o["state"] < len(State)
        assert o["filled"] <= o["qty"] * (1 + 1e-9)
        if bad:
            assert o["state"] == before["state"] and o["filled"] == before["filled"]
        if before["state"] in {int(s) for s in TERMINAL}:
            assert o["state"] == before["state"]


@pytest.mark.parametrize("status,reason,trigger", [
    (EXEC_ACK, 0, Trigger.ACK),
    (EXEC_PARTIAL, 0, Trigger.PARTIAL_FILL),
    (EXEC_FILL, 0, Trigger.PARTIAL_FILL),  # completion is decided from quantities
    (EXEC_REJECT, REJ_BAD_PRICE, Trigger.REJECT),
    (EXEC_REJECT, REJ_CANCEL_UNKNOWN, Trigger.CANCEL_REJECT),
    (EXEC_REJECT, REJ_REPLACE_UNKNOWN, Trigger.REPLACE_REJECT),
    (EXEC_CANCELED, REASON_CXL_USER, Trigger.CANCEL_ACK),
    (EXEC_CANCELED, REASON_CXL_EXPIRED, Trigger.EXPIRE),
    (EXEC_CANCELED, REASON_CXL_REPLACED, Trigger.REPLACE_ACK),
])
def test_exec_report_when_mapped_then_gives_the_documented_trigger(status, reason, trigger):
    assert exec_trigger(status, reason) == trigger


def _walk(*steps, qty=1.0):
    fsm = OrderFSM(qty)
    for s in steps:
        trig, fill = (s, 0.0) if not isinstance(s, tuple) else s
        fsm.apply(trig, fill)
    return fsm


def test_fill_after_cancel_sent_when_partial_then_cancel_stays_pending_and_qty_counts():
    fsm = _walk(Trigger.SUBMIT, Trigger.ACK, Trigger.CANCEL_REQUEST, (Trigger.PARTIAL_FILL, 0.4))
    assert fsm.state == State.PENDING_CANCEL and fsm.filled == pytest.approx(0.4)
    fsm.apply(Trigger.CANCEL_ACK)
    assert fsm.state == State.CANCELED


def test_fill_after_cancel_sent_when_completing_then_filled_and_late_cancel_reject_absorbed():
    fsm = _walk(Trigger.SUBMIT, Trigger.ACK, Trigger.CANCEL_REQUEST, (Trigger.FILL, 1.0))
    assert fsm.state == State.FILLED
    fsm.apply(Trigger.CANCEL_REJECT)
    assert fsm.state == State.FILLED


def test_cancel_reject_when_partially_filled_then_back_to_partially_filled():
    fsm = _walk(Trigger.SUBMIT, Trigger.ACK, (Trigger.PARTIAL_FILL, 0.3), Trigger.CANCEL_REQUEST,
                Trigger.CANCEL_REJECT)
    assert fsm.state == State.PARTIALLY_FILLED
    fsm = _walk(Trigger.SUBMIT, Trigger.ACK, Trigger.CANCEL_REQUEST, Trigger.CANCEL_REJECT)
    assert fsm.state == State.ACCEPTED
    assert TABLE[State.PENDING_CANCEL, Trigger.CANCEL_REJECT] == WORKING


def test_replace_reject_when_received_then_order_keeps_working():
    fsm = _walk(Trigger.SUBMIT, Trigger.ACK, Trigger.REPLACE_REQUEST, (Trigger.PARTIAL_FILL, 0.5),
                Trigger.REPLACE_REJECT)
    assert fsm.state == State.PARTIALLY_FILLED and fsm.filled == pytest.approx(0.5)
    fsm.apply(Trigger.REPLACE_REQUEST)
    fsm.apply(Trigger.REPLACE_ACK)
    assert fsm.state == State.REPLACED
    with pytest.raises(InvalidStateTrigger, match="REPLACED -> PARTIAL_FILL"):
        fsm.apply(Trigger.PARTIAL_FILL, 0.1)


def test_child_order_id_when_same_decision_then_same_id_and_distinct_otherwise():
    a = child_order_id(3, 17, 123456, 2)
    assert a == child_order_id(3, 17, 123456, 2)
    ids = {child_order_id(s, i, d, c) for s in range(3) for i in range(5) for d in range(200)
           for c in range(4)}
    assert len(ids) == 3 * 5 * 200 * 4 and 0 not in ids


def test_child_order_id_when_out_of_range_then_error_names_expected_and_was():
    with pytest.raises(ValueError, match=r"child expected in \[0, 16777216\), was -1"):
        child_order_id(0, 0, 0, -1)


def test_store_add_when_client_id_replayed_then_duplicate_and_nothing_changes():
    store = OrderStore(4)
    cid = child_order_id(0, 1, 99)
    assert store.add(cid, 1, 1, ORDER_LIMIT, 1.0, 10.0, 5) == 0
    store.trigger(cid, Trigger.SUBMIT, 6)
    assert store.add(cid, 1, 1, ORDER_LIMIT, 1.0, 10.0, 7) == ERR_DUPLICATE_CID
    assert len(store) == 1 and store.state(cid) == State.PENDING_NEW


def test_store_fill_when_above_qty_then_refused_with_clear_error():
    store = OrderStore(4)
    store.add(11, 0, 1, ORDER_LIMIT, 1.0, 10.0, 0)
    store.trigger(11, Trigger.SUBMIT, 0)
    store.trigger(11, Trigger.ACK, 0)
    store.trigger(11, Trigger.PARTIAL_FILL, 1, fill_qty=0.6, fill_px=10.0)
    with pytest.raises(ValueError, match="above|refused"):
        store.trigger(11, Trigger.PARTIAL_FILL, 2, fill_qty=0.6, fill_px=10.0)
    assert store.orders[0]["filled"] == pytest.approx(0.6)
    assert store.apply(_exec(11, EXEC_FILL, 0, 0.6, 10.0)) == 1  # counted as failed
    store.trigger(11, Trigger.FILL, 3, fill_qty=0.4, fill_px=10.0)
    assert store.state(11) == State.FILLED
    assert store.orders[0]["notional"] == pytest.approx(10.0)


def test_timeouts_when_expired_or_unanswered_then_cancel_requested_or_reported_stale():
    store = OrderStore(8)
    for cid in (1, 2, 3):
        store.add(cid, 0, 1, ORDER_LIMIT, 1.0, 10.0, 0, expire_at=1_000 if cid == 1 else 0)
        store.trigger(cid, Trigger.SUBMIT, 0)
    store.trigger(1, Trigger.ACK, 10)
    store.trigger(2, Trigger.ACK, 10)
    expired, stale = store.timeouts(2_000, response_timeout_ns=1_500)
    assert expired == [1] and store.state(1) == State.PENDING_CANCEL
    assert stale == [3]  # submitted at 0, unanswered at 2000 >= 1500
    assert store.state(2) == State.ACCEPTED


def test_cancel_all_when_called_then_every_working_order_pending_cancel_once():
    store = OrderStore(8)
    for cid, inst in ((1, 0), (2, 0), (3, 1), (4, 0)):
        store.add(cid, inst, 1, ORDER_LIMIT, 1.0, 10.0, 0)
        store.trigger(cid, Trigger.SUBMIT, 0)
    store.trigger(1, Trigger.ACK, 1)
    store.trigger(4, Trigger.ACK, 1)
    store.trigger(4, Trigger.FILL, 2, fill_qty=1.0, fill_px=10.0)
    assert sorted(store.cancel_all(3, instrument=0)) == [1, 2]
    assert store.state(3) == State.PENDING_NEW and store.state(4) == State.FILLED
    assert store.cancel_all(4, instrument=0) == []  # already pending: not sent twice


def test_compact_compiles_nothing_the_store_did_not_compile_when_made(capsys):
    """The soak's router RSS step: the first compaction, minutes into a run, compiled the
    index rebuild (a stall on the hot path, and LLVM's memory kept).  The store compiles it
    when made, with the types compaction passes, and the stage names any later compile."""
    from numba.core import event

    from alphad.daemon.router.order_fsm import OrderStore, Trigger, _reindex
    from alphad.daemon.shell import late_jit

    def ended_orders(store):
        for cid in range(1, 4):
            store.add(cid, 0, 1, 1, 10.0, float("nan"), now=cid)
            store.trigger(cid, Trigger.SUBMIT, cid)
            store.trigger(cid, Trigger.REJECT, cid)

    ended_orders(OrderStore(capacity=8))  # add and trigger compiled (a stage's warm-up does this)
    store = OrderStore(capacity=8)
    known = set(_reindex.signatures)
    ended_orders(store)
    listener = late_jit.watch("test")
    try:
        assert store.compact(now=1000, keep_terminal_ns=0) == 3
    finally:
        event.unregister("numba:compile", listener)
    assert set(_reindex.signatures) == known
    assert "Numba compiled" not in capsys.readouterr().err


def test_compact_when_orders_ended_long_ago_then_forgotten_and_the_rest_still_found():
    from alphad.daemon.router.order_fsm import OrderStore, State, Trigger

    store = OrderStore(capacity=8)
    for cid in range(1, 6):
        store.add(cid, 0, 1, 1, 10.0, float("nan"), now=cid)
        store.trigger(cid, Trigger.SUBMIT, cid)
    for cid in (1, 2, 4):  # end three of them, two long ago and one just now
        store.trigger(cid, Trigger.REJECT, {1: 10, 2: 20, 4: 995}[cid])
    assert store.compact(now=1000, keep_terminal_ns=100) == 2
    assert len(store) == 3
    assert store.find(1) == store.find(2) == -1
    for cid in (3, 4, 5):
        assert store.orders[store.find(cid)]["cid"] == cid
    assert store.state(3) == State.PENDING_NEW and store.state(4) == State.REJECTED
    for cid in (6, 7, 8, 9, 10):  # the freed slots are used again
        store.add(cid, 0, 1, 1, 1.0, float("nan"), now=1001)
    assert len(store) == 8 and store.find(10) >= 0


def test_compact_when_slots_move_then_parent_and_link_follow_their_orders():
    from alphad.daemon.router.order_fsm import OrderStore, Trigger

    store = OrderStore(capacity=8)
    for cid in (1, 2):  # two orders that end long ago, before the rest
        store.add(cid, 0, 1, 1, 10.0, float("nan"), now=cid)
        store.trigger(cid, Trigger.SUBMIT, cid)
        store.trigger(cid, Trigger.REJECT, cid)
    parent = store.add(3, 0, 1, 1, 10.0, float("nan"), now=3)
    child = store.add(4, 0, 1, 1, 5.0, float("nan"), now=4, parent=parent)
    store.add(5, 0, 1, 1, 5.0, float("nan"), now=5, parent=parent)
    store.orders[child]["link"] = store.find(5)  # as a replacement links old to new
    assert store.compact(now=1000, keep_terminal_ns=100) == 2
    moved = {cid: store.find(cid) for cid in (3, 4, 5)}
    assert moved == {3: 0, 4: 1, 5: 2}
    assert store.orders[moved[4]]["parent"] == moved[3] and store.orders[moved[5]]["parent"] == moved[3]
    assert store.orders[moved[4]]["link"] == moved[5] and store.orders[moved[3]]["parent"] == -1


def test_a_compile_after_the_warm_up_is_named_on_stderr(capsys):
    from numba import njit
    from numba.core import event

    from alphad.daemon.shell import late_jit

    @njit
    def late(x):
        return x + 1

    listener = late_jit.watch("router")
    try:
        assert late(1) == 2
    finally:
        event.unregister("numba:compile", listener)
    err = capsys.readouterr().err
    assert "alphad stage router: Numba compiled" in err and ".late(" in err
