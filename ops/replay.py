"""``alphad replay``: the configured topology's real processes over the whole feed, in
lockstep, on event time; then exit.

Every stage runs in its own process as under ``alphad run`` (shared-memory rings, doorbells,
the supervisor and its journal), but the feed emits the next event only when every stage has
finished with the last one (each ring drained, no process mid-step), and every stage takes
the time from the records (the event's own), as ``alphad backtest`` does in one process.  So
the two must emit the same orders: ``--orders`` writes them in the backtest's format.

Between two events the router polls its venues at the first one's time, as the backtest's
loop does, so venue latency and the execution algorithms replay the same way too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from alphad.daemon.shell import sample_window


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--orders", default=None, help="write every order as JSON lines here (alphad backtest's format)")
    p.add_argument("--topology", choices=("five", "fused"), default=None,
                   help="override topology.name (default: the config's)")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds (default: %(default)s)")
    sample_window.add_argument(p)


def replay_config(cfg, work: Path, topology: str | None):
    """The config of a lockstep replay: its own shm prefix and journal, the feed once at max
    speed, no placement tuning (the feed waits on the stages: nothing may spin at SCHED_FIFO)."""
    s = msgspec.structs.replace
    topo = s(cfg.topology, name=topology or cfg.topology.name, wait="block", placement="manual", sched="other",
             idle_poll=False, cpus={}, infer_keep_warm_us=0, wait_overrides={})
    if topo.name == "single":
        raise ValueError("alphad replay runs the process topologies (five, fused); `single` is alphad backtest")
    return s(cfg, topology=topo, feed=s(cfg.feed, loop=False, speed="max"),
             shm=s(cfg.shm, prefix=f"alphad-replay-{os.getpid()}"),
             metrics=s(cfg.metrics, enabled=False), journal=s(cfg.journal, enabled=True, dir=str(work / "journal")),
             supervisor=s(cfg.supervisor, status_interval_s=3600.0))


def run(args) -> int:
    from alphad.daemon.config import load_config
    from alphad.daemon.shell.affinity import resolve_placement
    from alphad.daemon.shell.backtest import write_orders
    from alphad.daemon.supervisor.journal import records
    from alphad.daemon.supervisor.supervisor import Supervisor, write_effective
    from alphad.ipc.control import S_EVENTS_OUT, STAGE_INDEX, W_REPLAY_DONE

    cfg, base = load_config(args.config)
    in_sample = sample_window.check_training_window(cfg, base, allow_in_sample=args.allow_in_sample)
    with tempfile.TemporaryDirectory(prefix="alphad-replay-") as tmp:
        work = Path(tmp)
        cfg = replay_config(cfg, work, args.topology)
        topology, placement = resolve_placement(cfg.topology)
        cfg = msgspec.structs.replace(cfg, topology=topology)
        config_path = write_effective(cfg, Path(args.config).resolve(), base)
        sup = Supervisor(cfg, config_path, base, placement=placement, replay=True)
        try:
            sup.start("tcp://127.0.0.1:*", stage_args=["--replay"])
            t0 = time.perf_counter()
            deadline = time.monotonic() + args.timeout
            while not sup.control.words[W_REPLAY_DONE]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the replay did not end within {args.timeout} s")
                if not all(c.alive for c in sup.children if c.name != "feed"):
                    raise RuntimeError("a stage process died during the replay (see its output above)")
                time.sleep(0.2)
                done = sup.control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT)
                print(f"\rreplay: {done} events", end="", file=sys.stderr, flush=True)
            replay_s = time.perf_counter() - t0
            print(file=sys.stderr)
            events = sup.control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT)
        finally:
            sup.shutdown()  # the journal drains every ring first
            config_path.unlink(missing_ok=True)
        orders = records(work / "journal" / "journal.jsonl", "order", "orders")
    if args.orders:
        write_orders(args.orders, orders)
    print(json.dumps({"events": int(events), "orders": int(len(orders)), "replay_s": round(replay_s, 3),
                      "events_per_s": round(events / replay_s) if replay_s > 0 else None,
                      "topology": topology.name, "in_sample": in_sample}, indent=2))
    return 0
