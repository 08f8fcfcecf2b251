"""``alphad soak``: the daemon's real processes for a long while at a steady feed rate.

Starts the processes exactly as ``alphad run`` does (same supervisor, rings, journal and
config), with the feed emitting ``--rate`` events a second from the looping recording for
``--duration`` seconds, and watches what a long run wears out:

* the resident memory (RSS) of every process, the supervisor's included: its growth from
  the end of the warm-up (``--warmup`` seconds, caches and JIT settled) to the end;
* the journal's size on disk, against its cap (``journal.max_total_mb`` when set);
* the ring overruns: a lossless ring must never lose a record (an overwrite ring may, and
  its losses are reported).

It prints one progress line as it goes and a summary at the end (``--json`` writes it), and
exits 1 when a check fails: RSS growth of any process at or above ``--max-rss-growth``
percent (default 1), the journal above its cap, a lossless ring overrun, a process dead.

    alphad soak --config config.yaml --duration 3600 --rate 10000   # the full soak (BENCHMARKS.md)
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of feed after the warm-up (default: %(default)s)")
    p.add_argument("--rate", type=float, default=10_000.0, help="feed events per second (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=60.0,
                   help="seconds before the RSS baseline is taken (default: %(default)s)")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples (default: %(default)s)")
    p.add_argument("--max-rss-growth", type=float, default=1.0,
                   help="percent of RSS growth after the warm-up that fails the soak (default: %(default)s)")
    p.add_argument("--journal-dir", default=None,
                   help="where the soak's journal goes (default: a temporary directory, removed at the end)")
    p.add_argument("--journal-cap-mb", type=float, default=None,
                   help="journal.max_total_mb for the soak (default: the config's; 0: no cap)")
    p.add_argument("--json", default=None, help="write the summary here as JSON")


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (a file replaced meanwhile, such as the journal's
    anchor, is skipped)."""
    total = 0
    for f in path.rglob("*") if path.exists() else ():
        try:
            total += f.stat().st_size if f.is_file() else 0
        except FileNotFoundError:
            continue
    return total


def soak_config(cfg, journal_dir: Path, cap_mb: float | None):
    """``cfg`` for a soak: its own shm prefix and journal, no metrics port, a quiet status line."""
    journal = {"enabled": True, "dir": str(journal_dir)}
    if cap_mb is not None:
        journal["max_total_mb"] = cap_mb
    return msgspec.structs.replace(
        cfg, shm=msgspec.structs.replace(cfg.shm, prefix=f"alphad-soak-{os.getpid()}"),
        metrics=msgspec.structs.replace(cfg.metrics, enabled=False),
        journal=msgspec.convert({**msgspec.to_builtins(cfg.journal), **journal}, type(cfg.journal)),
        supervisor=msgspec.structs.replace(cfg.supervisor, status_interval_s=3600.0))


def run(args) -> int:
    """The soak; SIGTERM or SIGINT stop it early with every process and segment cleaned up
    (exit status 128 + the signal)."""
    from alphad.daemon.shell.backtest_shm import stop_on_signals

    with stop_on_signals():
        return _run(args)


def _run(args) -> int:
    from alphad.daemon.config import load_config
    from alphad.daemon.supervisor.supervisor import Supervisor, write_effective
    from alphad.daemon.shell.affinity import resolve_placement
    from alphad.ipc.control import S_EVENTS_OUT, STAGE_INDEX

    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        raise ValueError(f"--rate and --duration expected > 0 and --warmup >= 0, found {args.rate}, "
                         f"{args.duration}, {args.warmup}")
    cfg, base = load_config(args.config)
    tmp = None
    if args.journal_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="alphad-soak-")
    # the journal's key goes beside its folder (journal.key_file): inside the temporary one too
    journal_dir = Path(args.journal_dir or Path(tmp.name) / "journal").resolve()
    topo, placement = resolve_placement(cfg.topology)
    cfg = soak_config(msgspec.structs.replace(cfg, topology=topo), journal_dir, args.journal_cap_mb)
    config_path = write_effective(cfg, Path(args.config).resolve(), base)
    sup = Supervisor(cfg, config_path, base, placement=placement)
    total = int((args.duration + args.warmup) * args.rate)
    samples: dict[str, list[int]] = {}
    result: dict = {}
    try:
        sup.start("tcp://127.0.0.1:*", stage_args=["--bench-rate", str(args.rate), "--bench-ticks", str(total)])
        pids = {"supervisor": os.getpid(), **{c.name: c.proc.pid for c in sup.children}}
        t0 = time.monotonic()
        end = t0 + args.warmup + args.duration
        baseline: dict[str, int] = {}
        next_sample = next_progress = t0
        tty = sys.stderr.isatty()
        while time.monotonic() < end:
            time.sleep(0.25)
            sup.reap_and_restart()
            now = time.monotonic()
            if now >= next_sample:
                next_sample = now + args.sample_every
                for name, pid in pids.items():
                    r = rss_bytes(pid)
                    if r is not None:
                        samples.setdefault(name, []).append(r)
                        if now - t0 >= args.warmup and name not in baseline:
                            baseline[name] = r
            if now >= next_progress:  # a line a second on a terminal, every minute into a log
                next_progress = now + (1.0 if tty else 60.0)
                fed = sup.control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT)
                print(f"{chr(13) if tty else ''}soak: {now - t0:6.0f}/{args.warmup + args.duration:.0f} s, "
                      f"{fed} events, journal {dir_bytes(journal_dir) / 1e6:.1f} MB", end="" if tty else "\n",
                      file=sys.stderr, flush=True)
        if tty:
            print(file=sys.stderr)
        result = summary(sup, args, pids, samples, baseline, journal_dir, time.monotonic() - t0)
    finally:
        sup.shutdown()
        config_path.unlink(missing_ok=True)
        if tmp is not None:
            tmp.cleanup()
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    failed = result["failures"]
    print(f"soak {'FAILED: ' + '; '.join(failed) if failed else 'passed'}", file=sys.stderr)
    return 1 if failed else 0


def summary(sup, args, pids, samples, baseline, journal_dir: Path, elapsed_s: float) -> dict:
    """The figures and the checks that failed."""
    from alphad.ipc.control import S_EVENTS_OUT, S_RESTARTS, STAGE_INDEX, STAGES

    failures = []
    rss = {}
    for name in pids:
        s = samples.get(name, [])
        if name not in baseline or not s:
            failures.append(f"{name}: no RSS after the warm-up (died?)")
            continue
        growth = 100.0 * (s[-1] - baseline[name]) / baseline[name]
        step = max(1, len(s) // 60)  # the curve, at most ~60 points: a table filling up levels off, a leak does not
        rss[name] = {"baseline_mb": round(baseline[name] / 1e6, 2), "final_mb": round(s[-1] / 1e6, 2),
                     "peak_mb": round(max(s) / 1e6, 2), "growth_pct": round(growth, 3),
                     "curve_mb": [round(v / 1e6, 2) for v in s[::step]]}
        if growth >= args.max_rss_growth:
            failures.append(f"{name}: RSS grew {growth:.2f}% (limit {args.max_rss_growth}%)")
    overruns = {}
    for kind, ring in sup.rings.items():
        lost = sum(ring.overruns(i) for i in range(len(ring.consumer_names())))
        overruns[kind] = int(lost)
        if lost and ring.policy == "lossless":  # the journal's side channels overwrite by design
            failures.append(f"ring {kind} (lossless) overran {lost} records")
    journal = dir_bytes(journal_dir)
    cap_mb = getattr(sup.cfg.journal, "max_total_mb", None) or None  # 0: no cap
    if cap_mb and journal > cap_mb * 1e6:
        failures.append(f"journal {journal / 1e6:.1f} MB above its cap {cap_mb} MB")
    restarts = {s: sup.control.stage(STAGE_INDEX[s], S_RESTARTS) for s in STAGES}
    if any(restarts.values()):
        failures.append(f"stage restarts {restarts}")
    from alphad.ops.bench import host_description

    return {"command": "alphad soak " + " ".join(sys.argv[2:]), "host": host_description(), "config": str(args.config),
            "rate_hz": args.rate, "duration_s": args.duration, "warmup_s": args.warmup,
            "elapsed_s": round(elapsed_s, 1), "events": int(sup.control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT)),
            "rss": rss, "journal_mb": round(journal / 1e6, 2), "journal_cap_mb": cap_mb, "ring_overruns": overruns,
            "restarts": restarts, "failures": failures}
