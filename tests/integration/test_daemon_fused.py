"""The real daemon in topology ``fused``: feed, features, infer and risk in one process that takes
a tick to its orders in two compiled calls around the model (steps.fused_front / fused_back)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from alphad.daemon.supervisor.journal import verify
from alphad.daemon.shell.topology import segment_names
from alphad.ipc import frames
from alphad.ipc.control import FEED_SEQ, STAGE_INDEX, ControlBlock, stage_word

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import Daemon, eventually  # noqa: E402

pytestmark = pytest.mark.slow


def test_fused_when_its_process_is_sigkilled_then_restarted_resumes_the_feed_and_orders_stay_unique(tmp_path):
    d = Daemon(tmp_path, topology="fused", tag="-kill")
    journal = tmp_path / "journal" / "journal.jsonl"
    try:
        d.wait_ready()
        st = eventually(lambda: (s := d.status()).fills > 0 and s, timeout=20, what="a fill")
        assert set(st.stages) >= {"feed", "features", "infer", "risk", "router"}
        assert st.stages["feed"].pid == st.stages["risk"].pid  # one process for feed through risk
        control = ControlBlock.attach(segment_names(d.prefix)["control"])
        seq_word = stage_word(STAGE_INDEX["feed"], FEED_SEQ)
        next_seq = int(control.words[seq_word])  # the feed's resume word: the next seq it will use
        assert next_seq > 1
        st2 = d.kill_stage("feed")
        assert st2.stages["feed"].restarts >= 1 and st2.stages["risk"].pid == st2.stages["feed"].pid
        fills = st2.fills
        st3 = eventually(lambda: (s := d.status()).fills > fills and s, timeout=20, what="fills after the restart")
        # the restarted feed resumed from the word written before each tick went downstream
        assert control.words[seq_word] > next_seq
        control.close()
        assert isinstance(d.ctl(frames.Shutdown()), frames.Ok)
        assert d.proc.wait(timeout=30) == 0
    finally:
        d.stop()
    assert verify(journal)[1] is None
    orders = [json.loads(line) for line in journal.read_text().splitlines() if '"type":"order"' in line]
    cids = [o["client_order_id"] for o in orders]
    assert len(orders) > 1 and len(cids) == len(set(cids))  # no order id reused across the restart
