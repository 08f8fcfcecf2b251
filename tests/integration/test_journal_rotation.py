"""A real daemon whose journal rotates every few kilobytes: a full restart reads back across
the rotated files (the trading state, risk's book from the fills), a torn last line left by
a crash is recovered at start instead of blocking it, `alphad audit verify` passes on the
result and `alphad audit positions` agrees with risk's book; and a daemon without room on
the journal's disk halts new orders (`low_disk`)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from alphad.daemon.supervisor.journal import entries
from alphad.daemon.supervisor.journal_files import rotated_files
from alphad.ipc import frames

from daemon_rig import Daemon, eventually

pytestmark = pytest.mark.slow

ROTATE = {"journal": {"rotate_mb": 0.02}}  # a new file every ~20 KB: every second or so here


def halt_and_settle(d: Daemon) -> frames.StatusReply:
    assert isinstance(d.ctl(frames.Halt(reason="rotation test")), frames.Ok)
    time.sleep(1.0)  # orders already past risk fill or end
    return d.status()


def state_entry_rotated(journal) -> bool:
    """The halt's ``state`` entry lies in a rotated file, no longer in the active one."""
    return any(b'"type":"state"' in line for p in rotated_files(journal) for line in p.read_bytes().splitlines())


def audit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "audit", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_rotating_journal_when_restarted_after_a_torn_write_then_read_across_files_and_recovered(tmp_path):
    journal = tmp_path / "journal" / "journal.jsonl"
    first = Daemon(tmp_path, tag="rotate", sections=ROTATE)
    try:
        first.wait_ready()
        eventually(lambda: first.status().fills > 5, timeout=60, what="fills")
        before = halt_and_settle(first)
        # the denials of the halted daemon go on filling files: the halt rotates out of the active file
        eventually(lambda: state_entry_rotated(journal) and len(rotated_files(journal)) >= 3, timeout=60,
                   what="the halt in a rotated file, and three files rotated")
        assert isinstance(first.ctl(frames.Shutdown()), frames.Ok)
        first.proc.wait(timeout=60)
    finally:
        first.stop()
    assert len(rotated_files(journal)) >= 3
    torn = b'{"n":999999,"ts_ns":1,"type":"exec","client_order_'
    with journal.open("ab") as f:
        f.write(torn)  # a crash in the middle of a write
    second = Daemon(tmp_path, tag="rotate", sections=ROTATE)
    try:
        second.wait_ready()  # not blocked by the torn line
        after = second.status()
        assert after.trading_state == "HALTED" and after.state_reason == "operator"  # from a rotated file
        assert after.realized_pnl == before.realized_pnl and after.positions == pytest.approx(before.positions)
        assert "rebuilt from" in second.output()
        recovered = [e for e in entries(journal) if e["type"] == "recovered"]
        assert [(e["what"], e["bytes"]) for e in recovered] == [("torn_tail", len(torn))]
        assert (journal.parent / recovered[0]["sidecar"]).read_bytes() == torn
        assert isinstance(second.ctl(frames.Resume()), frames.Ok)
        orders = after.orders
        eventually(lambda: second.status().orders > orders, timeout=30, what="orders after resume")
        final = halt_and_settle(second)
        assert isinstance(second.ctl(frames.Shutdown()), frames.Ok)
        second.proc.wait(timeout=60)
    finally:
        second.stop()
    r = audit("verify", journal.parent)
    assert r.returncode == 0 and "journal intact" in r.stdout and "recovered at a start" in r.stdout, r.stdout + r.stderr
    r = audit("positions", journal.parent, "--config", second.config)
    assert r.returncode == 0, r.stderr
    net = {row.split()[0]: float(row.split()[1]) for row in r.stdout.splitlines()[2:] if row.strip()}
    assert {s: q for s, q in net.items() if q} == pytest.approx(final.positions)  # every file's fills


def test_low_disk_when_under_min_free_then_halted_with_reason_low_disk_and_journaled(tmp_path):
    d = Daemon(tmp_path, tag="lowdisk", sections={"journal": {"min_free_mb": 10**12}})  # more than any disk
    journal = tmp_path / "journal" / "journal.jsonl"
    try:
        d.wait_ready()
        st = eventually(lambda: (s := d.status()).trading_state == "HALTED" and s, timeout=10, what="low-disk halt")
        assert st.state_reason == "low_disk"
        assert "below journal.min_free_mb" in d.output()
        eventually(lambda: any(e["type"] == "state" and e["reason_name"] == "low_disk" for e in entries(journal)),
                   timeout=10, what="the halt journaled")
        disk = [e for e in entries(journal) if e["type"] == "disk"]
        assert disk[0]["low"] is True and disk[0]["halted"] is True
    finally:
        d.stop()
