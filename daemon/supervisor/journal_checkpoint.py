"""Journal checkpoints: what a full restart rebuilds, kept so that pruning loses none of it.

A full restart reads its state back from the journal: risk's book, cash, PnL and fees
(:meth:`alphad.daemon.shell.stages.RiskStage.rebuild`), the operator's per-symbol halts, the
trading state, the day references and the orders left open
(:func:`alphad.daemon.supervisor.recovery.restore_from_journal`).  ``journal.max_total_mb``
removes the oldest files, so before it does the writer appends a ``checkpoint`` entry holding
all of that as of the entries before it (:class:`StartState`, brought up to date at every
append), and each of those readers starts from the journal's last checkpoint and reads only
the entries after it.  Without a checkpoint they read the whole journal, as before.

Risk's part holds the arrays ``risk_rebuild`` changes, worked out by the same kernels
(``on_order_sent``, ``on_exec``) one entry at a time in journal order: the book, the sectors'
exposure, the account words fills and orders move, and the open orders.  Limits and every
other word come from the config of the start that loads it.  The book is indexed by the
universe, so a checkpoint names it, and a start whose universe differs fails (a rebuild from
the records left would silently miss what was pruned).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alphad.daemon.risk.codes import (A_CASH, A_EQUITY, A_FEES, A_GROSS, A_NET, A_PEAK_EQUITY, A_REALISED,
                                      A_UNREALISED, SEC_EXPOSURE)
from alphad.daemon.risk.portfolio import OO_EMPTY, OO_FREED, on_exec, on_order_sent, purge_tombstones
from alphad.daemon.supervisor.journal_files import entries, journal_set
from alphad.ipc import dtypes

#: The account words orders and fills move (the rest is config, or start_session's at the end).
ACCOUNT_WORDS = {"cash": A_CASH, "equity": A_EQUITY, "peak_equity": A_PEAK_EQUITY, "gross": A_GROSS, "net": A_NET,
                 "realised": A_REALISED, "unrealised": A_UNREALISED, "fees": A_FEES}
#: The account words that start at ``risk.initial_equity`` (moved when it changed since).
EQUITY_WORDS = (A_CASH, A_EQUITY, A_PEAK_EQUITY)
ENDS = (dtypes.EXEC_FILL, dtypes.EXEC_CANCELED, dtypes.EXEC_REJECT)


def as_records(rows: list[dict], kind: str) -> np.ndarray:
    """Journal entries (``order``, ``exec``) as ``kind`` records (None: NaN)."""
    dtype = dtypes.RECORDS[kind]
    out = np.zeros(len(rows), dtype)
    for name in dtype.names:
        if name != "pad":
            out[name] = [np.nan if r.get(name) is None else r[name] for r in rows]
    return out


def rebuild_records(entries: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(orders, reports, due)`` for ``risk_rebuild`` from journal ``entries`` in journal
    order: report ``j`` is due once ``orders[:due[j]]`` are registered, that is after every
    order journaled before it and after its own order (an older journal may hold a report
    before its order); reports keep their journal order otherwise."""
    orders = [e for e in entries if e["type"] == "order"]
    index = {e["client_order_id"]: k for k, e in enumerate(orders)}
    reports, due, seen = [], [], 0
    for e in entries:
        if e["type"] == "order":
            seen += 1
        elif e["type"] == "exec":
            reports.append(e)
            due.append(max(seen, index.get(e["client_order_id"], -1) + 1))
    by_due = sorted(range(len(reports)), key=due.__getitem__)  # stable: journal order among equals
    return (as_records(orders, "orders"), as_records([reports[j] for j in by_due], "exec"),
            np.array([due[j] for j in by_due], np.int64))


def universe_of(cfg) -> list[list[str]]:
    return [[ins.symbol, ins.sector] for ins in cfg.universe]


def check_universe(cp: dict | None, cfg) -> None:
    """Refuse (one line) a checkpoint whose book is not of ``cfg``'s universe."""
    if cp is None:
        return
    risk = cp.get("risk")
    if risk is None or risk["universe"] != universe_of(cfg):
        was = "no risk book" if risk is None else f"the universe {[s for s, _ in risk['universe']]} (with sectors)"
        raise RuntimeError(f"journal checkpoint n={cp['n']} holds {was}, not the config's universe "
                           f"{[ins.symbol for ins in cfg.universe]}: the files before it were pruned, so the book "
                           "cannot be rebuilt; restore that universe, or move the journal away to start flat")


def since_checkpoint(path: str | Path, types: tuple[str, ...]) -> tuple[dict | None, list[dict]]:
    """The journal's last ``checkpoint`` entry (None without one) and its entries of
    ``types`` after it, in order."""
    cp, after = None, []
    for e in entries(path) if journal_set(path) else ():  # a new journal: nothing yet
        kind = e.get("type")
        if kind == "checkpoint":
            cp, after = e, []
        elif kind in types:
            after.append(e)
    return cp, after


def last_checkpoint(path: str | Path) -> dict | None:
    """The journal's last ``checkpoint`` entry, found from the newest file back without
    parsing the others (canonical JSON: the bytes below appear in no other entry)."""
    for p in reversed(journal_set(path)):
        data, end = p.read_bytes(), None
        while (at := data.rfind(b'"type":"checkpoint"', 0, end)) >= 0:
            start, stop = data.rfind(b"\n", 0, at) + 1, data.find(b"\n", at)
            if stop >= 0:
                return json.loads(data[start:stop])
            end = start  # torn by a crash: never written
    return None


def load_risk(a, cp: dict, cfg) -> None:
    """Risk's part of checkpoint ``cp`` into the arrays of ``a`` (a :class:`RiskCore` or a
    :class:`RiskScratch`, as a fresh start built them from ``cfg``)."""
    check_universe(cp, cfg)
    r = cp["risk"]
    a.book[:] = np.array(r["book"], np.float64)  # null (a price never seen): NaN
    a.sectors[:, SEC_EXPOSURE] = r["sector_exposure"]
    for name, col in ACCOUNT_WORDS.items():
        a.account[col] = r["account"][name]
    a.account[list(EQUITY_WORDS)] += cfg.risk.initial_equity - r["initial_equity"]  # as its records would
    for j, (cid, inst, side, leaves) in enumerate(r["open_orders"]):
        a.oo_ids[j] = cid
        a.oo_vals[j] = inst, side, leaves
    purge_tombstones(a.oo_ids, a.oo_vals)  # each entry to its hash slot


def risk_part(a, cfg) -> dict:
    """The checkpoint's risk part of arrays ``a`` (inverse of :func:`load_risk`)."""
    live = (a.oo_ids != OO_EMPTY) & (a.oo_ids != OO_FREED)
    return {"universe": universe_of(cfg), "initial_equity": cfg.risk.initial_equity,
            "book": [[None if v != v else v for v in row] for row in a.book.tolist()],
            "sector_exposure": a.sectors[:, SEC_EXPOSURE].tolist(),
            "account": {name: float(a.account[col]) for name, col in ACCOUNT_WORDS.items()},
            "open_orders": [[int(c), int(v[0]), int(v[1]), float(v[2])]
                            for c, v in zip(a.oo_ids[live], a.oo_vals[live])]}


class RiskScratch:
    """The arrays ``risk_rebuild`` changes, built from the config as the risk stage builds
    them, moved one journal entry at a time by the same kernels."""

    def __init__(self, cfg):
        from alphad.daemon.risk.config import build_risk_arrays
        from alphad.daemon.risk.core import RiskCore

        self.cfg = cfg
        rows = [(ins.symbol, ins.sector, ins.tick_size, ins.lot_size) for ins in cfg.universe]
        a = build_risk_arrays(cfg.risk, rows, equity=cfg.risk.initial_equity, open_order_capacity=RiskCore.OO_CAPACITY)
        self.limits, self.book, self.sectors, self.account, self.oo_ids, self.oo_vals = (
            a.limits, a.book, a.sectors, a.account, a.oo_ids, a.oo_vals)
        self.rec = {"order": np.zeros(1, dtypes.ORDER_DTYPE), "exec": np.zeros(1, dtypes.EXEC_DTYPE)}
        if len(cfg.universe):  # compiled (or loaded from Numba's cache) at start, not at the first order
            arrays = [np.copy(x) for x in (self.oo_ids, self.oo_vals, self.limits, self.book, self.sectors,
                                           self.account)]
            o = self.rec["order"][0]
            on_order_sent(o["client_order_id"], o["instrument"], o["side"], o["qty"], *arrays)
            on_exec(self.rec["exec"], 0, *arrays)

    def apply(self, kind: str, fields: dict) -> None:
        rec = self.rec[kind]  # the record types risk_rebuild passes
        rec[0] = tuple(np.nan if fields.get(name) is None else fields[name] for name in rec.dtype.names)
        if kind == "order":
            o = rec[0]
            on_order_sent(o["client_order_id"], o["instrument"], o["side"], o["qty"], self.oo_ids, self.oo_vals,
                          self.limits, self.book, self.sectors, self.account)
        else:
            on_exec(rec, 0, self.oo_ids, self.oo_vals, self.limits, self.book, self.sectors, self.account)


class StartState:
    """What a full restart reads back, as of the last entry appended (see above): the
    writer applies each entry (:meth:`apply`) and journals :meth:`snapshot` as a checkpoint.
    ``cfg``: the daemon's config (its universe and ``risk`` section)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.state = None     # [state, reason] of the last ``state`` entry
        self.day = None       # the last ``day`` entry's fields
        self.halted = set()   # symbols an operator halted and did not resume
        self.open = {}        # client order id: its order's fields, "filled" [qty, value] (last_run's orphans)
        self.risk = RiskScratch(cfg)

    def load(self, path: str | Path) -> "StartState":
        """Brought up to the end of the journal at ``path``: its last checkpoint, then the entries after it."""
        cp, after = since_checkpoint(path, ("order", "exec", "state", "day", "control"))
        if cp is not None:
            load_risk(self.risk, cp, self.cfg)
            self.state, self.day, self.halted = cp["state"], cp["day"], set(cp["halted"])
            self.open = {o["client_order_id"]: o for o in cp["open_orders"]}
        for e in after:
            self.apply(e["type"], e)
        return self

    def apply(self, kind: str, fields: dict) -> None:
        if kind == "order":
            self.open[fields["client_order_id"]] = {**fields, "filled": [0.0, 0.0]}
            self.risk.apply(kind, fields)
        elif kind == "exec":
            o = self.open.get(fields["client_order_id"])
            if o is not None and (fields.get("fill_qty") or 0) > 0:  # what orphan_fills sums
                o["filled"] = [o["filled"][0] + float(fields["fill_qty"]),
                               o["filled"][1] + float(fields["fill_qty"]) * float(fields["fill_px"])]
            if fields["status"] in ENDS:
                self.open.pop(fields["client_order_id"], None)
            self.risk.apply(kind, fields)
        elif kind == "state":
            self.state = [int(fields["state"]), int(fields["reason"])]
        elif kind == "day":
            self.day = {k: fields[k] for k in ("date", "day_start_equity", "loss_ref")}
        elif kind == "control" and fields.get("symbol") and fields.get("command") in ("halt", "resume"):
            (self.halted.add if fields["command"] == "halt" else self.halted.discard)(fields["symbol"])

    def snapshot(self) -> dict:
        """The ``checkpoint`` entry's fields."""
        chain = ("n", "ts_ns", "type", "chain", "prev", "hash")  # an order loaded from the journal has them
        return {"state": self.state, "day": self.day, "halted": sorted(self.halted),
                "open_orders": [{k: v for k, v in o.items() if k not in chain} for o in self.open.values()],
                "risk": risk_part(self.risk, self.cfg)}
