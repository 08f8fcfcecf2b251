"""The single topology on a simulated clock: same cores, deterministic orders."""
from __future__ import annotations

import numpy as np

from alphad.daemon.shell.backtest import backtest
from alphad.daemon.config import load_config


def test_backtest_when_run_twice_then_identical_orders_and_every_order_filled(repo_root):
    cfg, base = load_config(repo_root / "config.yaml")
    a, sa = backtest(cfg, base)
    b, sb = backtest(cfg, base)
    assert len(a) > 100
    timing = ("replay_s", "events_per_s", "setup_s", "load_s")
    assert a.tobytes() == b.tobytes() and {k: v for k, v in sa.items() if k not in timing} == \
        {k: v for k, v in sb.items() if k not in timing}
    assert sa["orders"] == len(a) and 0 < sa["fills"] <= sa["orders"]  # market orders take displayed size
    assert sum(sa["denials_by_reason"].values()) == sa["denials"]
    assert len(np.unique(a["client_order_id"])) == len(a)  # ids never repeat
    # the summary's numbers are net of fees, its equity and final trading state said
    assert sa["fees"] > 0 and sa["net_pnl"] == round(sa["gross_pnl"] - sa["fees"], 2)
    assert abs(sa["gross_pnl"] - (sa["realized_pnl"] + sa["unrealized_pnl"])) < 0.01
    assert sa["equity"]["end"] == round(cfg.risk.initial_equity + sa["net_pnl"], 2)
    assert sa["trading_state"] == "ACTIVE" and sa["state_reason"] == ""
    # t_origin and ts are on the simulated (event) clock: ordered like the recording
    assert np.all(np.diff(a["t_origin"]) >= 0)


def test_backtest_when_the_drawdown_kill_flattens_then_the_flatten_orders_are_on_the_event_clock(repo_root, tmp_path):
    import msgspec

    from alphad.ipc.dtypes import ORDER_F_FLATTEN

    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"]["path"] = str(repo_root / raw["feed"]["path"])
    raw["model"].update(card=str(repo_root / raw["model"]["card"]), runtime="compiled")
    raw["risk"]["drawdown"] = {"warning": 0.00001, "critical": 0.0000199, "emergency": 0.00001995, "kill": 0.00002}
    (tmp_path / "c.yaml").write_bytes(msgspec.yaml.encode(raw))
    cfg, base = load_config(tmp_path / "c.yaml")
    for loop in ("auto", "python"):
        orders, summary = backtest(cfg, base, loop=loop)
        assert summary["trading_state"] == "HALTED" and summary["state_reason"] == "drawdown_escalate:kill", summary
        flat = orders[(orders["flags"] & ORDER_F_FLATTEN) != 0]
        assert len(flat) > 0, loop  # the ladder's KILL step flattened
        first, last = orders["t_origin"].min(), orders["t_origin"].max()
        assert np.all((flat["ts"] >= first) & (flat["ts"] <= last)), (loop, flat["ts"])  # event time, not wall time
        assert np.all(np.diff(orders["ts"]) >= 0), loop  # in time order with the rest
