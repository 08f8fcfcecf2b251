"""Hash-chained journal: appends chain, a restart continues the chain, tampering is found."""
from __future__ import annotations

import json

from alphad.daemon.supervisor.journal import JournalWriter, verify


def test_journal_when_written_and_reopened_then_chain_verifies(tmp_path):
    w = JournalWriter(tmp_path)
    for i in range(5):
        w.append("order", {"client_order_id": i, "qty": 1.5})
    w.close()
    w = JournalWriter(tmp_path)  # crash-only restart: continues from the last hash
    w.append("control", {"command": "halt"})
    w.close()
    assert verify(tmp_path / "journal.jsonl") == (6, None)


def test_journal_when_line_edited_then_verify_points_at_it(tmp_path):
    w = JournalWriter(tmp_path)
    for i in range(5):
        w.append("exec", {"fill_qty": i})
    w.close()
    path = tmp_path / "journal.jsonl"
    lines = path.read_text().splitlines()
    body = json.loads(lines[2])
    body["fill_qty"] = 99
    lines[2] = json.dumps(body, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    assert verify(path) == (2, 2)


def test_journal_when_line_dropped_then_verify_fails_there(tmp_path):
    w = JournalWriter(tmp_path)
    for i in range(4):
        w.append("exec", {"fill_qty": i})
    w.close()
    path = tmp_path / "journal.jsonl"
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert verify(path)[1] == 1
