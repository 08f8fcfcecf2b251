"""``alphad tca JOURNAL -o DIR``: transaction-cost analysis report from a journal.

Reads a JSON-lines execution journal (format: :mod:`alphad.ops.tca`), or the
daemon's own hash-chained journal (``var/journal/journal.jsonl`` with its rotated files,
or the folder ``var/journal``), and
writes ``DIR/tca_report.md`` (per-parent table and summary), ``DIR/tca.png``
(cost breakdown and performance vs VWAP) and ``DIR/tca.csv``.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("journal", type=Path, help="JSON-lines journal of parent/order/exec events, or the "
                        "daemon's journal (journal.jsonl, read with its rotated files, or its folder)")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="DIR",
                        help="folder for tca_report.md, tca.png and tca.csv (created if missing)")
    parser.add_argument("--title", default="TCA report", help="report title")


def run(args: argparse.Namespace) -> int:
    from alphad.ops.tca import analyze, write_report

    rows = analyze(_events(args.journal))
    res = write_report(rows, args.out, title=args.title)
    s = res["summary"]
    print(f"{s['parents']} parents, IS {s['is_bps']:.2f} bps (notional-weighted), "
          f"fill rate {100 * s['fill_rate']:.1f} %: {res['markdown']}, {res['png']}")
    return 0


def _events(path: Path) -> list[dict]:
    """TCA events of ``path``: the daemon's journal is read across its rotated files (a
    rotation may leave ``journal.jsonl`` empty); any other file as it is."""
    from alphad.daemon.supervisor.journal import entries
    from alphad.daemon.supervisor.journal_files import journal_set
    from alphad.ops.tca import from_daemon_journal, read_journal

    if path.is_dir() or len(journal_set(path)) > 1:
        return from_daemon_journal(list(entries(path)))[0]
    return read_journal(path)
