"""Exec reports as a test playing the router reads them (lists of EXEC_DTYPE tuples)."""
from __future__ import annotations

from alphad.ipc.dtypes import EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT


def of(reports, cid):
    return [r for r in reports if r[2] == cid]


def statuses(reports, cid):
    return [r[5] for r in of(reports, cid)]


def filled(reports, cid) -> float:
    return sum(r[7] for r in of(reports, cid) if r[5] in (EXEC_FILL, EXEC_PARTIAL))


def ended(cid):
    """``cond(reports)``: ``cid`` has its end (fill, cancel or reject) among them."""
    return lambda got: any(r[2] == cid and r[5] in (EXEC_FILL, EXEC_CANCELED, EXEC_REJECT) for r in got)
