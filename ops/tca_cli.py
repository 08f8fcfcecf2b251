"""``alphad tca JOURNAL -o DIR``: transaction-cost analysis report from a journal.

Reads a JSON-lines execution journal (format: :mod:`alphad.ops.tca`), or the
daemon's own hash-chained journal (``var/journal/journal.jsonl``), and
writes ``DIR/tca_report.md`` (per-parent table and summary), ``DIR/tca.png``
(cost breakdown and performance vs VWAP) and ``DIR/tca.csv``.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("journal", type=Path, help="JSON-lines journal of parent/order/exec events")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="DIR",
                        help="folder for tca_report.md, tca.png and tca.csv (created if missing)")
    parser.add_argument("--title", default="TCA report", help="report title")


def run(args: argparse.Namespace) -> int:
    from alphad.ops.tca import analyze, read_journal, write_report

    rows = analyze(read_journal(args.journal))
    res = write_report(rows, args.out, title=args.title)
    s = res["summary"]
    print(f"{s['parents']} parents, IS {s['is_bps']:.2f} bps (notional-weighted), "
          f"fill rate {100 * s['fill_rate']:.1f} %: {res['markdown']}, {res['png']}")
    return 0
