"""``alphad bench``: tick-to-trade latency over the real stage processes.

Starts the daemon's processes exactly as ``alphad run`` does (same supervisor,
same rings, same cores, the configured model), but the feed emits evenly
spaced ticks at ``--rate`` Hz (spaced out, not back-to-back: the figure is the
latency of one tick through an idle pipeline, which is what a colocated
strategy sees) and stops after ``--ticks``.  Every order carries its tick's
``t_origin``; the router records ``now - t_origin`` when it hands the order to
the paper venue, and each stage records ``now - t_origin`` when it emits.

So that every tick travels the whole path, the bench runs with
``risk.min_order_notional = 0`` (a tick whose target differs from the position
by any lot produces an order) and no order-rate throttle; ticks that produce no
order add no sample.

Placement is the config's ``topology.placement``: with ``auto`` (the shipped default) the
keys that neither config.yaml nor ``--cpus``/``--sched``/``--idle-poll``/``--infer-keep-warm-us``
set are chosen for this host, as ``alphad run`` chooses them; ``--placement manual`` leaves
them off.

Output: a JSON document (``--json``) and a one-line summary on stdout::

    {"host", "topology", "wait", "idle_poll", "sched", "cpus", "infer_keep_warm_us", "placement",
     "placement_reason", "infer_rehearsals",
     "rate_hz", "ticks", "orders",
     "tick_to_trade_us": {"p50","p90","p99","p999","max"},
     "stages_us": {stage: {"p50","p99"}}, "command", "config"}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

from alphad.ipc import metrics as mx
from alphad.ipc.control import S_EVENTS_OUT, S_INFER_REHEARSALS, STAGE_INDEX, STAGES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--topology", choices=["five", "fused", "single"], default=None, help="override topology.name")
    p.add_argument("--wait", choices=["spin", "yield", "block"], default=None, help="override topology.wait")
    p.add_argument("--placement", choices=["auto", "manual"], default=None,
                   help="override topology.placement (auto: the best measured placement this host allows, for "
                        "every key below not given; manual: keys not given are off)")
    p.add_argument("--idle-poll", action="store_true",
                   help="run with topology.idle_poll (SCHED_IDLE pollers keep vCPUs out of HLT)")
    p.add_argument("--cpus", type=parse_cpus, default=None, metavar="STAGE=CPU,...",
                   help="override topology.cpus, e.g. feed=0,features=0,infer=1,risk=1,router=1")
    p.add_argument("--sched", choices=["other", "fifo"], default=None,
                   help="override topology.sched (fifo: downstream processes rank higher)")
    p.add_argument("--infer-keep-warm-us", type=int, default=None, metavar="US",
                   help="override topology.infer_keep_warm_us (rehearse the idle inference step every US µs)")
    p.add_argument("--rate", type=float, default=1000.0, help="ticks per second, evenly spaced (default: %(default)s)")
    p.add_argument("--ticks", type=int, default=20_000, help="ticks to send (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=500, help="first ticks left out of the figures (default: %(default)s)")
    p.add_argument("--json", default=None, help="write the result here")


def parse_cpus(text: str) -> dict[str, int]:
    """``feed=0,features=1`` -> ``{"feed": 0, "features": 1}``."""
    cpus = {}
    for item in filter(None, text.split(",")):
        stage, sep, cpu = item.partition("=")
        if not sep or not cpu.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected STAGE=CPU such as feed=0, found {item!r}")
        cpus[stage.strip()] = int(cpu)
    return cpus


def host_description() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cpus | Linux {platform.release()} | Python {platform.python_version()}"


def _pct(samples_ns: np.ndarray, qs=(50, 90, 99, 99.9)) -> dict[str, float]:
    if len(samples_ns) == 0:
        return {}
    v = np.percentile(samples_ns, qs) / 1e3
    keys = {50: "p50", 90: "p90", 99: "p99", 99.9: "p999"}
    out = {keys[q]: round(float(x), 2) for q, x in zip(qs, v)}
    out["max"] = round(float(samples_ns.max()) / 1e3, 2)
    return out


def run(args) -> int:
    from alphad.daemon.config import load_config
    from alphad.daemon.shell.affinity import resolve_placement
    from alphad.daemon.supervisor.supervisor import Supervisor, write_effective

    cfg, base = load_config(args.config)
    # one convert, so the overrides are checked as config.yaml's own values are
    overrides = {key: value for key, value in (
        ("name", args.topology), ("wait", args.wait), ("placement", args.placement),
        ("idle_poll", args.idle_poll or None), ("cpus", args.cpus),
        ("sched", args.sched), ("infer_keep_warm_us", args.infer_keep_warm_us)) if value is not None}
    topo = msgspec.convert({**msgspec.to_builtins(cfg.topology), **overrides}, type(cfg.topology))
    if topo.name == "single":
        raise ValueError("bench measures the process topologies (five, fused); `single` is the simulated-clock backtest")
    # the overrides are set keys: placement auto fills in only the ones still unset
    topo, placement = resolve_placement(topo)
    cfg = msgspec.structs.replace(
        cfg, topology=topo,
        risk=msgspec.structs.replace(
            cfg.risk, min_order_notional=0.0,
            # the bench measures latency: the order-rate throttle must not thin the samples
            account=msgspec.structs.replace(cfg.risk.account, throttle_rate=1e6, throttle_burst=1e6)),
        shm=msgspec.structs.replace(cfg.shm, prefix=f"alphad-bench-{os.getpid()}"),
        metrics=msgspec.structs.replace(cfg.metrics, enabled=False),
        journal=msgspec.structs.replace(cfg.journal, enabled=False),
        supervisor=msgspec.structs.replace(cfg.supervisor, status_interval_s=3600.0),
    )
    config_path = write_effective(cfg, Path(args.config).resolve(), base)
    sup = Supervisor(cfg, config_path, base, placement=placement)
    total = args.ticks + args.warmup
    try:
        sup.start("tcp://127.0.0.1:*", stage_args=["--bench-rate", str(args.rate), "--bench-ticks", str(total)])
        expected_s = total / args.rate
        deadline = time.monotonic() + expected_s * 2 + 30
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            feed_out = sup.control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT)
            n = sup.metrics.latency_count(mx.ROW_T2T)
            if feed_out >= total and n == last and time.monotonic() - stable_since > 0.5:
                break
            if n != last:
                last, stable_since = n, time.monotonic()
            if not all(c.alive for c in sup.children):
                raise RuntimeError("a stage process died during the bench")
            print(f"\rbench: {feed_out}/{total} ticks, {n} orders", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        time.sleep(0.05)  # one housekeeping round publishes the last rehearsal count
        rehearsals = sup.control.stage(STAGES.index("infer"), S_INFER_REHEARSALS)
        m = sup.metrics
        # leave the warm-up out: drop samples whose tick came in the first `warmup` ticks
        t2t = m.samples(mx.ROW_T2T)
        frac = args.warmup / total
        t2t = t2t[int(len(t2t) * frac):]
        stages = {}
        for i, s in enumerate(STAGES):
            v = m.samples(i)
            v = v[int(len(v) * frac):]
            if len(v):
                stages[s] = {k: val for k, val in _pct(v).items() if k in ("p50", "p99")}
        result = {
            "host": host_description(),
            "topology": topo.name,
            "wait": topo.wait,
            "idle_poll": topo.idle_poll,
            "sched": topo.sched,
            "cpus": dict(topo.cpus),
            "infer_keep_warm_us": topo.infer_keep_warm_us,
            "placement": placement.mode,
            "placement_reason": placement.reason,
            "infer_rehearsals": int(rehearsals),
            "rate_hz": args.rate,
            "ticks": args.ticks,
            "orders": int(len(t2t)),
            "tick_to_trade_us": _pct(t2t),
            "stages_us": stages,
            "command": "alphad bench " + " ".join(sys.argv[2:]),
            "config": str(Path(args.config)),
        }
    finally:
        try:
            sup.shutdown()
        finally:  # even when shutdown cannot report (a closed stderr pipe)
            config_path.unlink(missing_ok=True)
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    t = result["tick_to_trade_us"]
    print(f"bench {topo.name}/{topo.wait} @ {args.rate:g} Hz, {result['orders']} orders: tick-to-trade "
          f"p50 {t.get('p50')} us, p90 {t.get('p90')} us, p99 {t.get('p99')} us, p99.9 {t.get('p999')} us, max {t.get('max')} us")
    print(text)
    return 0
