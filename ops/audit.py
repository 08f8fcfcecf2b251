"""``alphad audit verify|orders|fills|positions [DIR]``: the daemon's journal, checked and read.

* ``verify``: the whole chain, across the rotated files, with the key (HMAC-SHA256), and the
  anchor (a cut tail).  Names the first bad line as FILE:LINE with the reason.  Exit 0 when
  the journal is intact, 1 when it is not, 2 when the journal or its key is missing.
* ``orders``: every order the journal holds, with how it ended (filled, canceled or rejected
  and why, or still open), its fills' quantity, average price and fees.
* ``fills``: every fill: time, order, instrument, side, quantity, price, fee.
* ``positions``: the net position per instrument from the fills, with what was bought and
  sold, the fees and the cash flow.

DIR (the journal's folder, or its ``journal.jsonl``) defaults to ``journal.dir`` of
``--config``; the key to ``--key-file``, else (DIR not given) the config's
``journal.key_file``, else ``journal.key`` beside DIR.  Instruments are named by the
universe of the config (``--config``, or config.yaml when DIR is not given), else by number.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

EPILOG = """examples:
  alphad audit verify                      # the journal of config.yaml
  alphad audit verify var/journal --key-file /etc/alphad/journal.key
  alphad audit orders var/journal | less
  alphad audit positions --config configs/alpaca_paper.yaml

verify exits 0 when the journal is intact, 1 when it is not (the first bad line
printed as FILE:LINE: reason), 2 when the journal or its key is missing."""


class AuditError(FileNotFoundError):
    """The journal or its key is not there: a usage error, not a damaged journal."""

    exit_code = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("what", choices=["verify", "orders", "fills", "positions"],
                   help="verify: check the chain, the key and the anchor (exit 1 at the first bad line); "
                        "orders / fills / positions: tables read from the journal")
    p.add_argument("dir", nargs="?", type=Path, default=None,
                   help="the journal's folder or its journal.jsonl (default: journal.dir of --config)")
    p.add_argument("--config", default=None, help="config whose journal and key to read when DIR is not given "
                   "(default: config.yaml), and whose universe names the instruments (only when given)")
    p.add_argument("--key-file", type=Path, default=None,
                   help="the journal's HMAC key (default: journal.key_file of --config when DIR is not given, "
                        "else journal.key beside DIR)")


def run(args: argparse.Namespace) -> int:
    directory, key_file, symbols = _where(args)
    if args.what == "verify":
        return _verify(directory, key_file)
    from alphad.daemon.supervisor.journal import entries

    rows = list(entries(directory))
    table = {"orders": orders_table, "fills": fills_table, "positions": positions_table}[args.what]
    headers, body, notes = table(rows, symbols)
    try:
        print("\n".join([format_table(headers, body), *notes]), flush=True)
    except BrokenPipeError:  # `alphad audit orders | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _where(args) -> tuple[Path, Path | None, list[str]]:
    """The journal's folder, its key file (None: the default beside it) and the symbols."""
    from alphad.daemon.config import load_config, resolve

    cfg = base = None
    config = args.config or "config.yaml"
    if (args.dir is None or args.config) and not Path(config).exists():
        raise AuditError(f"config file {config} was not found (give the journal's folder as DIR, or --config)")
    if args.dir is None or args.config:
        cfg, base = load_config(config)
    if args.dir is None:
        directory = resolve(base, cfg.journal.dir)
        key = args.key_file or (resolve(base, cfg.journal.key_file) if cfg.journal.key_file else None)
    else:
        directory, key = (args.dir.parent if args.dir.suffix == ".jsonl" else args.dir), args.key_file
    if not directory.is_dir():
        raise AuditError(f"journal folder expected at {directory}, was missing")
    return directory, key, [i.symbol for i in cfg.universe] if cfg is not None else []


def _verify(directory: Path, key_file: Path | None) -> int:
    from alphad.daemon.supervisor.journal_verify import check

    try:
        r = check(directory, key_file)
    except FileNotFoundError as e:
        raise AuditError(str(e)) from None
    if not r.ok:
        print(f"{r.problem}")
        print(f"journal NOT intact: {r.entries} entries good before that line, in {len(r.files)} files")
        return 1
    span = "no entries" if r.last_n is None else f"entries n={r.first_n}..{r.last_n}"
    print(f"journal intact: {r.entries} entries ({span}) in {len(r.files)} files, "
          f"{r.keyed} keyed (HMAC-SHA256), {r.unkeyed} unkeyed from before the key")
    if r.pruned_start:
        print(f"starts at entry n={r.pruned_start[0]} (prev {r.pruned_start[1][:16]}…): older files were removed "
              f"under journal.max_total_mb, as the pruned entry at {r.pruned_note} records")
    if r.anchor:
        print(f"anchor: entry n={r.anchor['n']} in {r.anchor['file']} (up to byte {r.anchor['end']}): matches")
    for torn in r.torn_recovered:
        print(f"recovered at a start: {torn}")
    return 0


# -- tables ---------------------------------------------------------------------------
def _names():
    """Cancel and reject reason names of the router's codes."""
    from alphad.daemon.router import order_fsm

    cancels = {v: k[len("REASON_CXL_"):].lower() for k, v in vars(order_fsm).items()
               if k.startswith("REASON_CXL_") and isinstance(v, int)}
    rejects = {v: k[len("REJ_"):].lower() for k, v in vars(order_fsm).items()
               if k.startswith("REJ_") and isinstance(v, int)}
    return cancels, rejects


def _utc(ts_ns) -> str:
    t = int(ts_ns or 0)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t / 1e9)) + f".{t // 1_000_000 % 1000:03d}"


def _sym(symbols: list[str], i) -> str:
    return symbols[i] if isinstance(i, int) and 0 <= i < len(symbols) else str(i)


def _side(s) -> str:
    return {1: "buy", -1: "sell"}.get(s, str(s))


def _fills(rows: list[dict]):
    return [e for e in rows if e.get("type") == "exec" and (e.get("fill_qty") or 0) > 0]


def _pruned_note(rows: list[dict]) -> list[str]:
    if rows and rows[0].get("n", 0) != 0:
        return [f"note: the journal starts at entry n={rows[0]['n']} (older files were removed under "
                "journal.max_total_mb): what they held is not counted here"]
    return []


def orders_table(rows: list[dict], symbols: list[str]):
    from alphad.ipc.dtypes import EXEC_CANCELED, EXEC_FILL, EXEC_REJECT

    cancels, rejects = _names()
    orders, fills = {}, defaultdict(lambda: [0.0, 0.0, 0.0])
    ends: dict[int, str] = {}
    for e in rows:
        kind = e.get("type")
        if kind == "order":
            orders[e["client_order_id"]] = e
        elif kind == "exec":
            cid, status = e["client_order_id"], e.get("status")
            q = e.get("fill_qty") or 0.0
            if q > 0:
                f = fills[cid]
                f[0], f[1], f[2] = f[0] + q, f[1] + q * (e.get("fill_px") or 0.0), f[2] + (e.get("fee") or 0.0)
            if status == EXEC_FILL:
                ends[cid] = "filled"
            elif status == EXEC_CANCELED:
                ends[cid] = f"canceled ({cancels.get(e.get('reason'), e.get('reason'))})"
            elif status == EXEC_REJECT:
                ends[cid] = f"rejected ({rejects.get(e.get('reason'), e.get('reason'))})"
    body = []
    for cid, o in orders.items():
        qty, value, fee = fills.get(cid, (0.0, 0.0, 0.0))
        px = o.get("limit_px")
        body.append([_utc(o.get("ts_ns")), str(cid), _sym(symbols, o.get("instrument")), _side(o.get("side")),
                     f"{o.get('qty', 0):g}", "market" if px is None else f"limit {px:g}", f"{qty:g}",
                     f"{value / qty:.6g}" if qty else "-", f"{fee:.6g}",
                     ends.get(cid, "partially filled, open" if qty else "open")])
    notes = _pruned_note(rows) + [f"{len(orders)} orders, {sum(1 for c in orders if c not in ends)} open"]
    return ["time (UTC)", "order", "instrument", "side", "qty", "type", "filled", "avg px", "fees", "end"], body, notes


def fills_table(rows: list[dict], symbols: list[str]):
    body = [[_utc(e.get("ts_ns")), str(e["client_order_id"]) if e["client_order_id"] else "venue adjustment",
             _sym(symbols, e.get("instrument")), _side(e.get("side")), f"{e['fill_qty']:g}",
             f"{e.get('fill_px') or 0:.6g}", f"{e.get('fee') or 0:.6g}"] for e in _fills(rows)]
    return (["time (UTC)", "order", "instrument", "side", "qty", "price", "fee"], body,
            _pruned_note(rows) + [f"{len(body)} fills"])


def positions_table(rows: list[dict], symbols: list[str]):
    book = defaultdict(lambda: {"bought": 0.0, "buy_value": 0.0, "sold": 0.0, "sell_value": 0.0, "fees": 0.0,
                                "fills": 0})
    for e in _fills(rows):
        b = book[e.get("instrument")]
        q, px = float(e["fill_qty"]), float(e.get("fill_px") or 0.0)
        side = "bought" if e.get("side") == 1 else "sold"
        b[side] += q
        b["buy_value" if side == "bought" else "sell_value"] += q * px
        b["fees"] += float(e.get("fee") or 0.0)
        b["fills"] += 1
    body = []
    for ins in sorted(book, key=lambda i: (not isinstance(i, int), i if isinstance(i, int) else 0)):
        b = book[ins]
        cash = b["sell_value"] - b["buy_value"] - b["fees"]
        body.append([_sym(symbols, ins), f"{b['bought'] - b['sold']:g}", f"{b['bought']:g}", f"{b['sold']:g}",
                     f"{b['buy_value'] / b['bought']:.6g}" if b["bought"] else "-",
                     f"{b['sell_value'] / b['sold']:.6g}" if b["sold"] else "-",
                     f"{b['fees']:.6g}", f"{cash:.2f}", str(b["fills"])])
    return (["instrument", "net qty", "bought", "sold", "avg buy px", "avg sell px", "fees", "cash flow", "fills"],
            body, _pruned_note(rows))


def net_positions(rows: list[dict]) -> dict:
    """Net filled quantity per instrument id (what ``positions`` prints as ``net qty``)."""
    out: dict = defaultdict(float)
    for e in _fills(rows):
        out[e.get("instrument")] += float(e["fill_qty"]) * (1 if e.get("side") == 1 else -1)
    return dict(out)


def format_table(headers: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(lines)
