"""Transaction-cost analysis per parent order, and the execution journal format.

Journal format (JSON lines, one event per line, UTF-8)
------------------------------------------------------
Every line is an object with ``"type"`` and ``"ts"`` (ns, router clock).
Types and their fields:

``parent``
    ``parent_id`` (int), ``instrument`` (int or str), ``side`` (+1 buy / -1 sell),
    ``qty`` (base units), ``algo`` (str), ``start_ns``, ``end_ns``,
    ``arrival_bid``, ``arrival_ask`` (the quote when the parent arrived);
    optional ``urgency``, ``expected_cost_bps`` (pre-trade estimate).
``order``
    ``parent_id``, ``cid``, ``action`` (``new`` / ``replace`` / ``cancel``); for
    new/replace also ``qty``, ``limit_px`` (NaN = market), ``venue``, and for a
    replace ``orig_cid``.
``exec``
    ``parent_id``, ``cid``, ``status`` (``ack`` / ``partial`` / ``fill`` /
    ``reject`` / ``canceled``), ``reason`` (int; on fills the liquidity flag:
    1 taker, 2 maker, 0 unknown), ``fill_qty``, ``fill_px``, ``fee`` (quote
    currency, positive = paid), ``leaves_qty``.
``parent_done``
    ``parent_id``, ``state`` (``completed`` / ``expired`` / ``canceled``),
    ``filled``, ``remainder``, ``interval_vwap`` (market VWAP over the parent's
    life), ``close_px`` (last market price at the end), ``market_volume``.

Unknown types are ignored (the daemon's journal also holds risk denials and
control commands); a line that is not JSON, or an event missing a field its
type needs, is an error naming the line number.  :class:`TcaJournalWriter`
writes this format (the tests' algorithm driver uses it); the daemon's hash-chained
journal (:class:`alphad.daemon.supervisor.journal.JournalWriter`) is read through
:func:`from_daemon_journal`.

Metrics (per parent; ``s`` = side, ``P0`` = arrival mid, ``h0`` = arrival half spread)
----------------------------------------------------------------------------------
* ``is_bps`` (implementation shortfall, Perold): ``(s * sum q_i (p_i - P0) +
  s * (Q - F) * (close - P0) + fees) / (Q * P0) * 1e4``: execution cost,
  opportunity cost of the unfilled part, fees; positive = cost.
* ``exec_bps``: ``s * (avg_px - P0) / P0 * 1e4`` on the filled part.
* ``spread_bps``: ``h0 / P0 * 1e4`` times (taker fills - maker fills) / filled:
  half the spread paid when taking, earned when making.
* ``impact_bps``: ``exec_bps - spread_bps``: what the price moved against us
  while we traded (impact plus drift; TCA cannot tell them apart per order).
* ``fees_bps``: fees / (F * P0) * 1e4.
* ``vs_vwap_bps``: ``s * (avg_px - interval_vwap) / interval_vwap * 1e4``.
* ``vs_close_bps``: ``s * (avg_px - close) / close * 1e4``.
* ``rating``: all-in cost of the filled part ``c = exec_bps + fees_bps``
  against the arrival half spread ``h`` (bps): ``A`` c <= 0 (beat the
  arrival mid), ``B`` c <= h + 1, ``C`` c <= 2h + 5, ``D`` otherwise; a
  parent that filled under 100 % drops one letter (down to ``D`` at worst).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

__all__ = ["TcaJournalWriter", "read_journal", "ParentTCA", "analyze", "analyze_parent", "rating",
           "write_report"]

_REQUIRED = {
    "parent": ("parent_id", "side", "qty", "arrival_bid", "arrival_ask"),
    "exec": ("parent_id", "cid", "status", "fill_qty", "fill_px", "fee"),
    "parent_done": ("parent_id", "state"),
    "order": ("parent_id", "cid", "action"),
}


class TcaJournalWriter:
    """Append TCA events (the format above) to a JSON-lines file: call it with an event dict.

    Not the daemon's journal (:class:`alphad.daemon.supervisor.journal.JournalWriter`, hash-chained).

    NaN is written as ``NaN`` (Python's json extension), which :func:`read_journal` reads back.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = self.path.open("a", encoding="utf-8")

    def __call__(self, event: dict) -> None:
        if "type" not in event or "ts" not in event:
            raise ValueError(f"journal event expected 'type' and 'ts', was {sorted(event)}")
        self._f.write(json.dumps(event, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "TcaJournalWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: Exec status codes of the daemon's records (alphad.ipc.dtypes EXEC_*) by TCA name.
_DAEMON_STATUS = {1: "ack", 2: "partial", 3: "fill", 4: "reject", 5: "canceled"}
_DONE = {"fill": "completed", "reject": "canceled", "canceled": "canceled"}


def from_daemon_journal(entries: list[dict]) -> tuple[list[dict], int]:
    """TCA events from the daemon's hash-chained journal (``alphad run``).

    Every daemon order is its own parent (the router sends immediate orders): its
    ``arrival`` entry (the quote at hand-over) becomes the ``parent`` event, its
    ``exec`` entries become ``exec`` events, and a terminal one also ``parent_done``.
    Returns the events and how many exec entries were dropped for want of an
    arrival (the arrivals side ring overwrites rather than block the router).
    """
    events: list[dict] = []
    arrived = {int(e["client_order_id"]) for e in entries if e.get("type") == "arrival"}
    dropped = 0
    for e in entries:
        t = e.get("type")
        if t == "arrival":
            bid, ask = e.get("bid"), e.get("ask")
            if bid is None or ask is None:  # the venue had no quote: nothing to measure against
                arrived.discard(int(e["client_order_id"]))
                continue
            events.append({"type": "parent", "ts": e["ts"], "parent_id": int(e["client_order_id"]),
                           "instrument": e["instrument"], "side": e["side"], "qty": e["qty"],
                           "algo": "immediate", "start_ns": e["ts"], "end_ns": e["ts"],
                           "arrival_bid": bid, "arrival_ask": ask})
        elif t == "exec":
            cid = int(e["client_order_id"])
            if cid not in arrived:
                dropped += 1
                continue
            status = _DAEMON_STATUS.get(int(e["status"]), "unknown")
            events.append({"type": "exec", "ts": e["ts"], "parent_id": cid, "cid": cid, "status": status,
                           "reason": e["reason"], "fill_qty": e["fill_qty"], "fill_px": e["fill_px"] or 0.0,
                           "fee": e["fee"], "leaves_qty": e["leaves_qty"]})
            if status in _DONE:
                events.append({"type": "parent_done", "ts": e["ts"], "parent_id": cid, "state": _DONE[status]})
    return events, dropped


def read_journal(path: str | Path) -> list[dict]:
    """Events of a journal, in file order; errors name the line.

    The daemon's hash-chained journal (lines carry ``hash``) is converted with
    :func:`from_daemon_journal`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"journal expected at {path}, was missing")
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    if first.strip() and '"hash":' in first:
        entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return from_daemon_journal(entries)[0]
    events = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: a JSON object expected, was not ({e.msg})") from None
            if not isinstance(ev, dict) or "type" not in ev:
                raise ValueError(f"{path}:{i}: an object with 'type' expected, was {line[:60]!r}")
            need = _REQUIRED.get(ev["type"], ())
            missing = [k for k in need if k not in ev]
            if missing:
                raise ValueError(f"{path}:{i}: {ev['type']} event expected fields {missing}, was missing")
            events.append(ev)
    return events


@dataclass(frozen=True)
class ParentTCA:
    parent_id: int
    instrument: str
    algo: str
    side: int
    qty: float
    filled: float
    fill_rate: float
    state: str
    arrival_mid: float
    avg_px: float
    interval_vwap: float
    close_px: float
    is_bps: float
    exec_bps: float
    spread_bps: float
    impact_bps: float
    fees_bps: float
    vs_vwap_bps: float
    vs_close_bps: float
    fees: float
    n_children: int
    n_fills: int
    rating: str


def rating(exec_bps: float, fees_bps: float, half_spread_bps: float, fill_rate: float) -> str:
    """Letter grade A..D (see the module docstring)."""
    c = exec_bps + fees_bps
    if math.isnan(c):
        return "-"
    h = half_spread_bps
    grade = 0 if c <= 0 else 1 if c <= h + 1 else 2 if c <= 2 * h + 5 else 3
    if fill_rate < 1.0 - 1e-9:
        grade = min(3, grade + 1)
    return "ABCD"[grade]


def analyze_parent(parent: dict, execs: Iterable[dict], done: dict | None = None,
                   n_children: int = 0) -> ParentTCA:
    """TCA of one parent from its ``parent`` event, its ``exec`` events and ``parent_done``."""
    s = int(parent["side"])
    Q = float(parent["qty"])
    bid, ask = float(parent["arrival_bid"]), float(parent["arrival_ask"])
    if not (Q > 0 and bid > 0 and ask >= bid):
        raise ValueError(f"parent {parent['parent_id']}: qty > 0 and 0 < arrival_bid <= arrival_ask "
                         f"expected, was qty={Q}, bid={bid}, ask={ask}")
    p0 = 0.5 * (bid + ask)
    h_bps = 0.5 * (ask - bid) / p0 * 1e4
    F = notional = fees = 0.0
    taker = maker = 0.0
    n_fills = 0
    for e in execs:
        if e["status"] not in ("partial", "fill"):
            continue
        q, p = float(e["fill_qty"]), float(e["fill_px"])
        F += q
        notional += q * p
        fees += float(e["fee"])
        n_fills += 1
        liq = int(e.get("reason", 0))
        if liq == 1:
            taker += q
        elif liq == 2:
            maker += q
    done = done or {}
    vwap = float(done.get("interval_vwap", math.nan))
    close = float(done.get("close_px", math.nan))
    avg = notional / F if F > 0 else math.nan
    exec_cost = s * (notional - F * p0)
    opp = s * (Q - F) * (close - p0) if Q - F > 1e-12 else 0.0
    if math.isnan(opp):  # no close price known: leave the unfilled part out
        opp = 0.0
    is_bps = (exec_cost + opp + fees) / (Q * p0) * 1e4
    exec_bps = s * (avg - p0) / p0 * 1e4 if F > 0 else math.nan
    spread_bps = h_bps * (taker - maker) / F if F > 0 else math.nan
    fees_bps = fees / (F * p0) * 1e4 if F > 0 else math.nan
    return ParentTCA(
        parent_id=int(parent["parent_id"]), instrument=str(parent.get("instrument", "")),
        algo=str(parent.get("algo", "")), side=s, qty=Q, filled=F, fill_rate=F / Q,
        state=str(done.get("state", "open")), arrival_mid=p0, avg_px=avg, interval_vwap=vwap,
        close_px=close, is_bps=is_bps, exec_bps=exec_bps, spread_bps=spread_bps,
        impact_bps=exec_bps - spread_bps, fees_bps=fees_bps,
        vs_vwap_bps=s * (avg - vwap) / vwap * 1e4 if F > 0 else math.nan,
        vs_close_bps=s * (avg - close) / close * 1e4 if F > 0 else math.nan,
        fees=fees, n_children=n_children, n_fills=n_fills,
        rating=rating(exec_bps, fees_bps, h_bps, F / Q),
    )


def analyze(events: list[dict]) -> list[ParentTCA]:
    """TCA of every parent in a journal's events, in the order the parents arrived."""
    parents: dict[int, dict] = {}
    execs: dict[int, list[dict]] = {}
    done: dict[int, dict] = {}
    children: dict[int, set] = {}
    for ev in events:
        t = ev["type"]
        if t == "parent":
            pid = int(ev["parent_id"])
            if pid in parents:
                raise ValueError(f"parent_id expected unique in the journal, was {pid} twice")
            parents[pid] = ev
        elif t == "exec":
            execs.setdefault(int(ev["parent_id"]), []).append(ev)
        elif t == "parent_done":
            done[int(ev["parent_id"])] = ev
        elif t == "order" and ev["action"] in ("new", "replace"):
            children.setdefault(int(ev["parent_id"]), set()).add(int(ev["cid"]))
    unknown = sorted(set(execs) - set(parents))
    if unknown:
        raise ValueError(f"exec events for parents without a 'parent' event: {unknown[:5]}")
    return [analyze_parent(p, execs.get(pid, []), done.get(pid), len(children.get(pid, ())))
            for pid, p in parents.items()]


def _fmt(v) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.2f}"
    return str(v)


def write_report(rows: list[ParentTCA], out_dir: str | Path, *, title: str = "TCA report") -> dict:
    """Write ``tca_report.md``, ``tca.png`` and ``tca.csv`` into ``out_dir``.

    Returns the paths written and the quantity-weighted summary.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display in the daemon's environment
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not rows:
        raise ValueError("journal expected at least one parent order, was none")
    wq = [r.qty * r.arrival_mid for r in rows]
    tot = sum(wq)
    summary = {
        "parents": len(rows),
        "notional": tot,
        "is_bps": sum(w * r.is_bps for w, r in zip(wq, rows)) / tot,
        "fill_rate": sum(r.filled * r.arrival_mid for r in rows) / tot,
        "fees": sum(r.fees for r in rows),
    }
    cols = ["parent_id", "instrument", "algo", "side", "qty", "filled", "state", "avg_px",
            "is_bps", "spread_bps", "impact_bps", "fees_bps", "vs_vwap_bps", "vs_close_bps", "rating"]
    lines = [f"# {title}", "",
             f"Parents: {summary['parents']}; notional at arrival: {summary['notional']:.2f}; "
             f"notional-weighted implementation shortfall: {summary['is_bps']:.2f} bps; "
             f"fill rate: {100 * summary['fill_rate']:.1f} %; fees: {summary['fees']:.4f}.", "",
             "Costs in bps of the arrival mid, positive = cost. Rating A..D: all-in cost of the "
             "filled part against the arrival half spread (see `alphad.ops.tca`).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        d = asdict(r)
        lines.append("| " + " | ".join(_fmt(d[c]) for c in cols) + " |")
    lines += ["", "![implementation shortfall per parent](tca.png)", ""]
    md = out / "tca_report.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    csv = out / "tca.csv"
    allc = list(asdict(rows[0]))
    csv.write_text("\n".join([",".join(allc)] + [",".join(_fmt(asdict(r)[c]) for c in allc)
                                                 for r in rows]) + "\n", encoding="utf-8")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    ids = [str(r.parent_id) for r in rows]
    comp = [("spread", [r.spread_bps for r in rows]), ("impact", [r.impact_bps for r in rows]),
            ("fees", [r.fees_bps for r in rows])]
    bottom_pos = [0.0] * len(rows)
    bottom_neg = [0.0] * len(rows)
    for name, vals in comp:
        vals = [0.0 if math.isnan(v) else v for v in vals]
        base = [bp if v >= 0 else bn for v, bp, bn in zip(vals, bottom_pos, bottom_neg)]
        a1.bar(ids, vals, bottom=base, label=name)
        bottom_pos = [bp + max(v, 0) for v, bp in zip(vals, bottom_pos)]
        bottom_neg = [bn + min(v, 0) for v, bn in zip(vals, bottom_neg)]
    a1.scatter(ids, [r.is_bps for r in rows], color="k", zorder=3, label="IS (incl. opportunity)")
    a1.axhline(0, color="grey", lw=0.8)
    a1.set_xlabel("parent")
    a1.set_ylabel("bps of arrival mid")
    a1.set_title("cost breakdown")
    a1.legend(fontsize=8)
    a2.scatter([r.fill_rate * 100 for r in rows], [r.vs_vwap_bps for r in rows])
    for r in rows:
        a2.annotate(r.algo, (r.fill_rate * 100, r.vs_vwap_bps), fontsize=7)
    a2.axhline(0, color="grey", lw=0.8)
    a2.set_xlabel("fill rate (%)")
    a2.set_ylabel("vs interval VWAP (bps)")
    a2.set_title("performance vs VWAP")
    fig.tight_layout()
    png = out / "tca.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return {"markdown": md, "png": png, "csv": csv, "summary": summary}
