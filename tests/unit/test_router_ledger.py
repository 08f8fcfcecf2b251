"""The router's ledger (daemon/router/ledger.py): orders in, their ends out, and what a
crashed router left reported CANCELED exactly once."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from alphad.daemon.router.ledger import NOTHING_KEPT, L_CID, ledger_close, ledger_open, ledger_orphans, new_ledger
from alphad.daemon.router.order_fsm import REASON_CXL_VENUE_LOST
from alphad.ipc.dtypes import EXEC_ACK, EXEC_CANCELED, EXEC_DTYPE, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT


def report(cid, status):
    r = np.zeros(1, EXEC_DTYPE)
    r["client_order_id"], r["status"] = cid, status
    return r


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(1, 40), st.sampled_from([None, EXEC_ACK, EXEC_PARTIAL, EXEC_FILL,
                                                                    EXEC_CANCELED, EXEC_REJECT])), max_size=200))
def test_ledger_when_orders_and_reports_interleave_then_orphans_are_exactly_the_unended(ops):
    ledger, held = new_ledger(16), {}  # a small table: long probe chains and many deletions
    for cid, status in ops:
        if status is None:
            if cid not in held and len(held) < 16:
                assert ledger_open(ledger, cid, cid % 7, 1 if cid % 2 else -1)
                held[cid] = cid % 7
        else:
            ledger_close(ledger, report(cid, status), 1)
            if status in (EXEC_FILL, EXEC_CANCELED, EXEC_REJECT):
                held.pop(cid, None)
    assert sorted(ledger[ledger[:, L_CID] != 0, L_CID]) == sorted(held)
    out = np.zeros(32, EXEC_DTYPE)
    k = ledger_orphans(ledger, out, 5, NOTHING_KEPT)
    assert sorted(out["client_order_id"][:k]) == sorted(held)
    assert (out["status"][:k] == EXEC_CANCELED).all() and (out["reason"][:k] == REASON_CXL_VENUE_LOST).all()
    assert all(out["instrument"][j] == held[int(out["client_order_id"][j])] for j in range(k))
    assert ledger_orphans(ledger, out, 6, NOTHING_KEPT) == 0  # each reported once


def test_ledger_when_full_then_open_refuses_and_orphans_come_out_in_batches():
    ledger = new_ledger(4)
    assert all(ledger_open(ledger, c, 0, 1) for c in (1, 2, 3, 4)) and not ledger_open(ledger, 5, 0, 1)
    out = np.zeros(3, EXEC_DTYPE)
    assert ledger_orphans(ledger, out, 0, NOTHING_KEPT) == 3 and ledger_orphans(ledger, out, 0, NOTHING_KEPT) == 1
