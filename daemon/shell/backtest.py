"""``alphad backtest``: the ``single`` topology on a simulated clock.

Every stage core runs in this one process, exactly the code the daemon runs,
handing records from core to core by direct call; the clock is the feed's own
event time, so a run is deterministic: same file, same model, same orders.  Events
go one at a time: a decision made on event ``i`` reaches the venue at ``t_i`` plus
its entry latency and meets the book as it stands then (never a later event's).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import msgspec
import numpy as np

from alphad.ipc import metrics as mx
from alphad.ipc.control import S_EVENTS_OUT, STAGE_INDEX, ControlBlock
from alphad.ipc.doorbell import Doorbells
from alphad.ipc.metrics import MetricsBlock
from alphad.ipc import feature_list
from alphad.ipc.shm import Segment, list_segments

from alphad.daemon.config import Config, load_config
from alphad.daemon.shell.runner import ProcessRunner
from alphad.daemon.shell.topology import plan as make_plan, segment_names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--orders", default=None, help="write every order as JSON lines here")


def backtest(cfg: Config, base: Path, *, reports: list | None = None) -> tuple[np.ndarray, dict]:
    """Run the recording once through every core, one event at a time on its own clock;
    returns (orders, summary).  ``reports``: a list that receives every batch of exec
    reports the venues sent back (copies)."""
    cfg = msgspec.structs.replace(cfg, topology=msgspec.structs.replace(cfg.topology, name="single"),
                                  shm=msgspec.structs.replace(cfg.shm, prefix=f"alphad-backtest-{os.getpid()}"))
    t0 = time.perf_counter()
    names = segment_names(cfg.shm.prefix)
    Doorbells.create(names["doorbells"])
    control = ControlBlock.create(names["control"])
    metrics = MetricsBlock.create(names["metrics"])
    Segment.create(names["feature_list"], feature_list.SIZE).close()
    try:
        plan = make_plan("single", cfg.rings)
        runner = ProcessRunner(cfg, base, plan, 0, simulated=True)
        orders = []
        runner.add_sink("orders", lambda recs, n, now: orders.append(recs[:n].copy()))
        if reports is not None:
            runner.add_sink("exec", lambda recs, n, now: reports.append(recs[:n].copy()))
        runner.warm()
        runner.mark_ready(True)
        setup_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        runner.run()
        replay_s = time.perf_counter() - t1
        from alphad.daemon.risk.codes import B_POSITION, REASON_NAMES

        events = int(control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT))
        summary = {
            "events": events,
            # the replay alone (loading the feed and model, compiling or loading kernels: setup_s)
            "replay_s": round(replay_s, 3),
            "events_per_s": round(events / replay_s) if replay_s > 0 else None,
            "setup_s": round(setup_s, 3),
            "orders": int(sum(len(o) for o in orders)),
            "fills": metrics.counter(STAGE_INDEX["risk"], mx.C_FILLS),
            "denials": metrics.counter(STAGE_INDEX["risk"], mx.C_DENIALS),
            "denials_by_reason": {REASON_NAMES[c]: int(v) for c, v in enumerate(metrics.denials_by_reason()) if v},
            "positions": runner.adapters["risk"].core.book[:, B_POSITION].tolist(),
        }
        from alphad.daemon.risk.core import publish_gauges

        g = np.zeros(mx.N_GAUGES)
        publish_gauges(runner.adapters["risk"].core.account, g)
        summary["realized_pnl"] = float(g[mx.G_REALIZED_PNL])
        summary["unrealized_pnl"] = float(g[mx.G_UNREALIZED_PNL])
        all_orders = np.concatenate(orders) if orders else np.zeros(0, dtype=runner.bufs_dtype("orders"))
        return all_orders, summary
    finally:
        for p in list_segments(cfg.shm.prefix):
            p.unlink()


def run(args) -> int:
    cfg, base = load_config(args.config)
    orders, summary = backtest(cfg, base)
    if args.orders:
        with open(args.orders, "w") as f:
            for o in orders:
                f.write(json.dumps({k: (o[k].item() if o[k] == o[k] else None) for k in orders.dtype.names if k != "pad"}) + "\n")
    print(json.dumps(summary, indent=2))
    return 0
