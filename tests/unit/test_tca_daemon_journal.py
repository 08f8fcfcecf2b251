"""The daemon's journal read as TCA events: one parent per order, priced at its arrival quote."""
from __future__ import annotations

import pytest

from alphad.daemon.supervisor.journal import JournalWriter
from alphad.ops.tca import analyze, from_daemon_journal, read_journal


def test_daemon_journal_when_read_then_parents_from_arrivals_and_cost_against_arrival_mid(tmp_path):
    w = JournalWriter(tmp_path)
    w.append("order", {"client_order_id": 7, "instrument": 0, "side": 1, "qty": 2.0})
    w.append("exec", {"client_order_id": 7, "status": 1, "reason": 0, "fill_qty": 0.0, "fill_px": None,
                      "fee": 0.0, "leaves_qty": 2.0, "ts": 10})
    w.append("arrival", {"client_order_id": 7, "instrument": 0, "side": 1, "qty": 2.0, "bid": 99.0,
                         "ask": 101.0, "ts": 5})  # journal order across rings is not time order
    w.append("exec", {"client_order_id": 7, "status": 3, "reason": 1, "fill_qty": 2.0, "fill_px": 101.0,
                      "fee": 0.02, "leaves_qty": 0.0, "ts": 11})
    w.append("exec", {"client_order_id": 8, "status": 3, "reason": 1, "fill_qty": 1.0, "fill_px": 50.0,
                      "fee": 0.0, "leaves_qty": 0.0, "ts": 12})  # its arrival was lost
    w.close()
    rows = analyze(read_journal(tmp_path / "journal.jsonl"))
    assert len(rows) == 1
    r = rows[0]
    assert r.parent_id == 7 and r.arrival_mid == 100.0 and r.filled == 2.0 and r.state == "completed"
    assert r.exec_bps == pytest.approx(100.0)  # bought at 101 against a mid of 100
    assert r.spread_bps == pytest.approx(100.0)  # all of it the half spread (taker)
    entries = [l for l in (tmp_path / "journal.jsonl").read_text().splitlines()]
    import json

    _, dropped = from_daemon_journal([json.loads(l) for l in entries])
    assert dropped == 1


def test_tca_cli_when_the_daemon_journal_rotated_then_every_file_is_read(tmp_path):
    from alphad.daemon.cli import main
    from alphad.daemon.supervisor.journal_files import rotated_files

    w = JournalWriter(tmp_path / "journal", rotate_mb=0.001)  # a file every few entries
    for cid in range(1, 13):
        w.append("order", {"client_order_id": cid, "instrument": 0, "side": 1, "qty": 1.0})
        w.append("arrival", {"client_order_id": cid, "instrument": 0, "side": 1, "qty": 1.0, "bid": 99.0,
                             "ask": 101.0, "ts": cid})
        w.append("exec", {"client_order_id": cid, "status": 3, "reason": 1, "fill_qty": 1.0, "fill_px": 101.0,
                          "fee": 0.0, "leaves_qty": 0.0, "ts": cid + 1})
    w.close()
    active = tmp_path / "journal" / "journal.jsonl"
    assert len(rotated_files(active)) >= 5
    for target in (active, tmp_path / "journal"):  # the active file (maybe empty after a rotation) or the folder
        assert main(["tca", str(target), "-o", str(tmp_path / "out")]) == 0
        rows = (tmp_path / "out" / "tca.csv").read_text().splitlines()
        assert len(rows) == 1 + 12  # a header and every parent, from every file
