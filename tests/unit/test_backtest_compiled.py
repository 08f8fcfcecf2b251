"""The backtest's compiled loop (``tick.backtest_events``) against the process loop: the same
steps in the same order, so the same orders, exec reports, book and counters, event by event."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from alphad.daemon.config import load_config
from alphad.daemon.shell.backtest import backtest

TIMING = ("replay_s", "events_per_s", "setup_s", "load_s", "loop")


@pytest.mark.parametrize("latency_us", [0, 2_000])
def test_compiled_loop_when_demo_replay_then_same_orders_reports_and_summary_as_the_process_loop(
        tmp_path, repo_root, latency_us):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"]["path"] = str(repo_root / raw["feed"]["path"])
    raw["model"].update(card=str(repo_root / raw["model"]["card"]), runtime="compiled")
    ns = latency_us * 1000
    raw["router"]["venues"] = [{**v, "entry": {"median_ns": ns}, "response": {"median_ns": ns}}
                               for v in raw["router"]["venues"]]
    path = tmp_path / "config.yaml"
    path.write_bytes(msgspec.yaml.encode(raw))
    cfg, base = load_config(path)
    runs = {}
    for loop in ("python", "auto"):
        reports: list[np.ndarray] = []
        orders, summary = backtest(cfg, base, reports=reports, loop=loop)
        runs[loop] = orders, np.concatenate(reports), summary
    (po, pr, ps), (co, cr, cs) = runs["python"], runs["auto"]
    assert cs["loop"] == "compiled" and ps["loop"] == "python"
    assert len(po) > 1000 and cs["events"] == ps["events"] > 40_000
    assert co.tobytes() == po.tobytes()  # ids, sides, quantities, prices, times
    assert cr.tobytes() == pr.tobytes()  # every fill, cancel and reject, at the same time and price
    assert {k: v for k, v in cs.items() if k not in TIMING} == {k: v for k, v in ps.items() if k not in TIMING}
