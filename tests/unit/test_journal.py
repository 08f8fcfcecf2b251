"""Hash-chained journal: appends chain, a restart continues the chain, tampering is found;
control entries never wait on journal I/O; rotation, the key, the anchor, a torn tail, the
disk cap, denial summaries and the low-disk halt."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from alphad.daemon.supervisor.disk_watch import DiskWatch
from alphad.daemon.supervisor.journal import JournalThread, JournalWriter, entries, last_run, records, verify
from alphad.daemon.supervisor.journal_denials import DenialGate
from alphad.daemon.supervisor.journal_files import first_line, journal_set, rotated_files
from alphad.daemon.supervisor.journal_verify import check
from alphad.ipc import control as cb
from alphad.ipc import dtypes
from alphad.ipc.ring import Ring


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


# -- the bounded, verifiable journal (issue 21): rotation, key, anchor, torn tail, disk ---------


def test_record_when_the_writer_is_stuck_in_a_drain_then_it_returns_and_stop_writes_it(tmp_path):
    """ctl commands journal through record()/control(): they must never wait behind journal I/O."""
    jt = JournalThread(JournalWriter(tmp_path), {})
    returned = threading.Event()
    with jt.lock:  # what a drain holds while it writes and fsyncs
        t = threading.Thread(target=lambda: (jt.control("halt", {"reason": "test"}), returned.set()))
        t.start()
        t.join(timeout=30)
        assert returned.is_set()  # came back while the writer could not write
        assert not [e for e in entries(tmp_path) if e["type"] == "control"]  # not written yet
    jt.stop()  # nothing lost: the last pass writes what waits
    jt.writer.close()
    assert [e["command"] for e in entries(tmp_path) if e["type"] == "control"] == ["halt"]


def test_rotation_by_size_then_names_sort_in_chain_order_and_every_reader_reads_across_files(tmp_path):
    w = JournalWriter(tmp_path, rotate_mb=0.002)  # ~2 KB files
    for i in range(60):
        w.append("order", {"client_order_id": i, "instrument": 0, "side": 1, "qty": 1.0, "kind": 1})
        w.append("exec", {"t_origin": i, "ts": i, "client_order_id": i, "instrument": 0, "side": 1,
                          "status": dtypes.EXEC_FILL, "reason": 0,
                          "fill_qty": 1.0, "fill_px": 100.0 + i, "fee": 0.01, "leaves_qty": 0.0})
    w.append("order", {"client_order_id": 99, "instrument": 1, "side": -1, "qty": 2.0, "kind": 1})
    w.append("state", {"state": cb.HALTED, "reason": cb.REASON_OPERATOR})
    w.close()
    files = journal_set(tmp_path / "journal.jsonl")
    assert len(rotated_files(tmp_path / "journal.jsonl")) >= 5 and files[-1].name == "journal.jsonl"
    firsts = [json.loads(first_line(p))["n"] for p in files if p.stat().st_size]
    assert firsts == sorted(firsts) and all(int(p.name.split(".")[1]) == n for p, n in zip(files[:-1], firsts))
    assert [e["n"] for e in entries(tmp_path / "journal.jsonl")] == list(range(122))  # the old call, every file
    assert len(records(tmp_path / "journal.jsonl", "exec", "exec")) == 60
    state, open_orders = last_run(tmp_path / "journal.jsonl")
    assert state == (cb.HALTED, cb.REASON_OPERATOR) and [o["client_order_id"] for o in open_orders] == [99]
    assert verify(tmp_path / "journal.jsonl") == (122, None)
    w = JournalWriter(tmp_path, rotate_mb=0.002)  # a restart continues the chain from the last file
    w.append("control", {"command": "resume"})
    w.close()
    assert check(tmp_path).ok and check(tmp_path).last_n == 122


def test_rotation_by_utc_day_then_a_new_file_at_the_first_entry_of_the_day(tmp_path):
    now = [1_767_225_599 * 10**9]  # 2025-12-31 23:59:59 UTC
    w = JournalWriter(tmp_path, clock=lambda: now[0])
    w.append("control", {"command": "a"})
    w.append("control", {"command": "b"})
    now[0] += 2 * 10**9  # past midnight
    w.append("control", {"command": "c"})
    w.close()
    assert [p.name for p in rotated_files(tmp_path / "journal.jsonl")] == ["journal.000000000000.20251231.jsonl"]
    assert [e["command"] for e in entries(tmp_path)] == ["a", "b", "c"] and check(tmp_path).ok


def test_torn_last_line_when_the_writer_starts_then_cut_into_a_sidecar_noted_and_the_chain_goes_on(tmp_path):
    w = JournalWriter(tmp_path)
    for i in range(3):
        w.append("order", {"client_order_id": i})
    w.close()
    torn = b'{"n":3,"ts_ns":17000,"type":"ord'
    with (tmp_path / "journal.jsonl").open("ab") as f:
        f.write(torn)  # a crash mid-write
    assert [e["n"] for e in entries(tmp_path)] == [0, 1, 2]  # readers leave a torn line out
    assert "torn line" in str(check(tmp_path).problem)
    w = JournalWriter(tmp_path)  # start-up is not blocked
    w.append("control", {"command": "resume"})
    w.close()
    note = [e for e in entries(tmp_path) if e["type"] == "recovered"]
    assert len(note) == 1 and note[0]["what"] == "torn_tail" and note[0]["bytes"] == len(torn)
    assert (tmp_path / note[0]["sidecar"]).read_bytes() == torn
    r = check(tmp_path)
    assert r.ok and r.entries == 5 and len(r.torn_recovered) == 1


def test_key_when_first_started_then_made_0600_outside_the_journal_and_a_key_inside_or_another_key_refused(tmp_path):
    jdir = tmp_path / "journal"
    JournalWriter(jdir).close()
    key = tmp_path / "journal.key"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600" and not list(jdir.glob("*.key"))
    with pytest.raises(ValueError, match="outside the journal directory"):
        JournalWriter(jdir, key_file=jdir / "journal.key")
    w = JournalWriter(jdir)
    w.append("control", {"command": "halt"})
    w.close()
    other = tmp_path / "other.key"
    other.write_text("ab" * 32)
    other.chmod(0o600)
    with pytest.raises(RuntimeError, match="not the key this journal was written with"):
        JournalWriter(jdir, key_file=other)
    assert not check(jdir, other).ok  # the wrong key does not verify it
    with pytest.raises(FileNotFoundError, match="journal key expected at"):
        check(jdir, tmp_path / "missing.key")


def _legacy(tmp_path, n):
    """A journal as alphad wrote it before the key: sha256 without a key, no anchor."""
    import hashlib

    prev, lines = "0" * 64, []
    for i in range(n):
        body = {"n": i, "ts_ns": i, "type": "control", "command": f"c{i}", "prev": prev}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        body["hash"] = prev = hashlib.sha256((prev + canonical).encode()).hexdigest()
        lines.append(json.dumps(body, sort_keys=True, separators=(",", ":")))
    (tmp_path / "journal.jsonl").write_text("\n".join(lines) + "\n")


def test_unkeyed_journal_when_continued_then_keyed_from_there_and_a_downgrade_after_is_found(tmp_path):
    _legacy(tmp_path, 3)
    assert check(tmp_path).ok  # as it was: no key needed, no anchor
    w = JournalWriter(tmp_path)
    w.append("control", {"command": "keyed"})
    w.close()
    r = check(tmp_path)
    assert r.ok and (r.unkeyed, r.keyed) == (3, 1) and r.anchor["keyed_from"] == 3
    # an unkeyed entry after the keyed ones: the chain recomputed without the key
    import hashlib

    path = tmp_path / "journal.jsonl"
    last = json.loads(path.read_text().splitlines()[-1])
    body = {"n": 4, "ts_ns": 9, "type": "control", "command": "forged", "prev": last["hash"]}
    body["hash"] = hashlib.sha256((last["hash"] + json.dumps(body, sort_keys=True, separators=(",", ":"))).encode()).hexdigest()
    with path.open("a") as f:
        f.write(json.dumps(body) + "\n")
    assert "unkeyed entry where the chain is keyed" in str(check(tmp_path).problem)


def test_truncated_tail_when_the_daemon_restarts_then_the_loss_is_journaled_and_verify_still_fails(tmp_path):
    w = JournalWriter(tmp_path)
    for i in range(5):
        w.append("order", {"client_order_id": i})
    w.close()
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))  # the last two lines dropped
    r = check(tmp_path)
    assert f"{path}:4: truncated tail" in str(r.problem) and "n=4" in str(r.problem)
    JournalWriter(tmp_path).close()  # crash-only: the start goes on, and says what was lost
    lost = [e for e in entries(tmp_path) if e["type"] == "recovered"]
    assert lost[0]["what"] == "truncated" and lost[0]["lost"] == 2
    assert "entries lost before a restart" in str(check(tmp_path).problem)


def test_disk_cap_when_exceeded_then_oldest_files_removed_noted_and_the_kept_chain_verifies(tmp_path):
    w = JournalWriter(tmp_path, rotate_mb=0.002, max_total_mb=0.006)
    for i in range(200):
        w.append("order", {"client_order_id": i, "qty": 1.0})
    w.close()
    total = sum(p.stat().st_size for p in journal_set(tmp_path / "journal.jsonl"))
    assert total <= 0.006 * 1024 * 1024 + 600  # within the cap (the active file may pass a line over)
    pruned = [e for e in entries(tmp_path) if e["type"] == "pruned"]
    assert pruned and all(e["files"] for e in pruned)
    r = check(tmp_path)
    assert r.ok and r.first_n > 0 and r.pruned_start[0] == r.first_n  # says where it starts
    oldest = rotated_files(tmp_path / "journal.jsonl")[0]
    oldest.unlink()  # a file removed without a note
    assert "no `pruned` entry records that start" in str(check(tmp_path).problem)


def test_denials_when_above_the_rate_then_one_summary_per_instrument_and_reason(tmp_path, prefix, bells):
    ring = Ring.create(f"{prefix}.denials", dtypes.DENIAL_DTYPE, 1024, ["journal"], policy="overwrite", bells=bells)
    try:
        den = np.zeros(500, dtypes.DENIAL_DTYPE)
        den["instrument"] = np.arange(500) % 2
        den["reason"] = 1  # halted
        den["ts"] = np.arange(500)
        ring.push(den)
        jt = JournalThread(JournalWriter(tmp_path), {"denials": ring})
        jt.drain()
        jt.stop()  # the window's summaries at the end
        jt.writer.close()
    finally:
        ring.close()
    es = list(entries(tmp_path))
    assert sum(e["type"] == "denial" for e in es) == 100  # journal.denials_per_s one line each
    summaries = {(e["instrument"], e["reason_name"]): e["count"] for e in es if e["type"] == "denial_summary"}
    assert summaries == {(0, "halted"): 200, (1, "halted"): 200}
    gate = DenialGate(per_s=3)  # below the rate: one line each, as before
    routed = [gate.route({"instrument": 0, "reason": 1, "ts": t}, now=float(t)) for t in range(5)]
    assert all(r == [("denial", {"instrument": 0, "reason": 1, "ts": t})] for t, r in enumerate(routed))


@pytest.fixture
def control(prefix):
    blk = cb.ControlBlock.create(f"{prefix}.control")
    yield blk
    blk.close()


def test_low_disk_when_space_falls_then_halted_low_disk_and_when_it_returns_then_resume_requested(tmp_path, control):
    free = [10 * 2**20]
    jt = JournalThread(JournalWriter(tmp_path), {})
    watch = DiskWatch(tmp_path, min_free_mb=64, free=lambda _: free[0])
    watch.check(control, jt, now=0.0)
    assert control.trading_state == cb.HALTED and int(control.words[cb.W_REASON]) == cb.REASON_LOW_DISK
    from alphad.daemon.supervisor.control_port import ControlPort

    assert ControlPort.reason_name(int(control.words[cb.W_REASON])) == "low_disk"
    free[0] = 100 * 2**20
    watch.check(control, jt, now=0.5)  # at most once a second
    assert control.resume_requests == 0
    watch.check(control, jt, now=1.0)
    assert control.resume_requests == 1  # risk lowers the state, as for `ctl resume`
    jt.stop()
    jt.writer.close()
    disk = [(e["low"], e.get("halted"), e.get("resumed")) for e in entries(tmp_path) if e["type"] == "disk"]
    assert disk == [(True, True, None), (False, None, True)]


def test_low_disk_when_an_operator_halted_meanwhile_then_space_back_does_not_resume(tmp_path, control):
    free = [0]
    jt = JournalThread(JournalWriter(tmp_path), {})
    watch = jt.disk = DiskWatch(tmp_path, min_free_mb=64, free=lambda _: free[0])
    watch.check(control, jt, now=0.0)
    assert int(control.words[cb.W_REASON]) == cb.REASON_LOW_DISK
    assert not control.raise_trading_state(cb.HALTED, 1)  # ctl halt while halted low_disk: now the operator's
    assert int(control.words[cb.W_REASON]) == cb.REASON_OPERATOR
    jt.control("halt", {"reason": "investigating"})
    free[0] = 2**30
    watch.check(control, jt, now=5.0)
    assert control.resume_requests == 0 and control.trading_state == cb.HALTED
    # and an operator's halt before the disk ran low is never lifted by it
    control.words[cb.W_STATE] = cb.ACTIVE
    assert control.raise_trading_state(cb.HALTED, 1)
    watch2 = DiskWatch(tmp_path, min_free_mb=64, free=lambda _: free[0])
    free[0] = 0
    watch2.check(control, jt, now=0.0)
    free[0] = 2**30
    watch2.check(control, jt, now=2.0)
    assert control.resume_requests == 0 and int(control.words[cb.W_REASON]) == cb.REASON_OPERATOR
    jt.stop()
    jt.writer.close()
