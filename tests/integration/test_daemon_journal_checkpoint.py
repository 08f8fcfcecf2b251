"""A real daemon under a tiny ``journal.max_total_mb``: the files holding its first fills, the
operator's per-symbol halt and its HALT are pruned, yet a full restart on the same journal
rebuilds the same positions, PnL, halts and trading state from the last checkpoint."""
from __future__ import annotations

import time

import pytest

from alphad.daemon.supervisor.journal import entries
from alphad.ipc import frames

from daemon_rig import Daemon, eventually

pytestmark = pytest.mark.slow

CAPPED = {"journal": {"rotate_mb": 0.02, "max_total_mb": 0.06}}  # a file every ~20 KB, three kept


def kept(journal, kind: str, **match) -> list[dict]:
    return [e for e in entries(journal) if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]


def test_capped_journal_when_restarted_after_pruning_then_the_same_book_halts_and_state(tmp_path):
    journal = tmp_path / "journal" / "journal.jsonl"
    first = Daemon(tmp_path, tag="ckpt", sections=CAPPED)
    try:
        first.wait_ready()
        assert isinstance(first.ctl(frames.Halt(symbol="ETHUSDT", reason="checkpoint test")), frames.Ok)
        eventually(lambda: first.status().fills > 5 and not kept(journal, "control", symbol="ETHUSDT"),
                   timeout=90, what="fills, and the symbol's halt pruned")
        assert isinstance(first.ctl(frames.Halt(reason="checkpoint test")), frames.Ok)
        time.sleep(1.0)  # orders already past risk fill or end
        before = first.status()
        # the halted daemon's denials go on filling files: its HALT is pruned too
        eventually(lambda: not kept(journal, "state"), timeout=90, what="the halt pruned")
        assert isinstance(first.ctl(frames.Shutdown()), frames.Ok)
        first.proc.wait(timeout=60)
    finally:
        first.stop()
    assert kept(journal, "pruned") and kept(journal, "checkpoint")
    assert len([e for e in kept(journal, "exec") if (e["fill_qty"] or 0) > 0]) < before.fills  # fills were pruned
    assert before.positions and before.halted_instruments == ["ETHUSDT"]
    second = Daemon(tmp_path, tag="ckpt", sections=CAPPED)
    try:
        second.wait_ready()
        after = second.status()
        assert (after.trading_state, after.state_reason) == ("HALTED", "operator")
        assert after.halted_instruments == ["ETHUSDT"]
        assert after.positions == pytest.approx(before.positions)
        assert after.realized_pnl == pytest.approx(before.realized_pnl) and after.fees == pytest.approx(before.fees)
        assert "rebuilt from" in second.output() and "the checkpoint at entry" in second.output()
    finally:
        second.stop()
