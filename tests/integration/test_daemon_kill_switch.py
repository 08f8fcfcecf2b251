"""The daily loss limit latches HALTED in the real daemon, across a restart of the risk stage."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from alphad.ipc import frames

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import Daemon, Hook, eventually  # noqa: E402

pytestmark = pytest.mark.slow


def test_daily_loss_when_breached_then_halted_until_resume_also_across_risk_restart(tmp_path):
    # A loss limit of 0.001% of equity: the fees of the first fills breach it.
    hook = Hook()
    d = Daemon(tmp_path, risk={"account": {"daily_loss_limit": 0.00001}}, tag="-kill",
               sections={"supervisor": {"webhook_url": hook.url}})
    try:
        d.wait_ready()
        st = eventually(lambda: (s := d.status()).trading_state == "HALTED" and s, timeout=30, what="kill switch")
        assert st.state_reason == "daily_loss"
        post = eventually(lambda: hook.of_kind("kill_switch"), timeout=30, what="a kill_switch webhook post")[0]
        assert post["trading_state"] == "HALTED" and post["reason"] == "daily_loss", post
        assert "kill switch tripped" in post["summary"] and not hook.of_kind("halt")  # not taken for an operator's
        orders = st.orders
        d.kill_stage("risk")
        denials = d.status().denials
        eventually(lambda: d.status().denials > denials, timeout=15, what="denials after the restart")
        st = d.status()
        assert st.trading_state == "HALTED" and st.state_reason == "daily_loss"
        assert st.orders == orders  # nothing passed while latched, before or after the restart
        reply = d.ctl(frames.Resume())
        assert isinstance(reply, frames.Ok), reply
        # re-armed from the equity now: orders flow again (until fees breach the tiny limit again)
        eventually(lambda: d.status().orders > orders, timeout=15, what="orders after resume")
    finally:
        d.stop()
        hook.close()
