"""``alphad top``: a live terminal view of a running daemon.

Every ``--interval`` seconds it asks the control port for status, positions and working
orders (as ``ctl`` does) and reads risk's state from shared memory (exposure by sector,
account, drawdown ladder: the segment named by the config's ``shm.prefix``, so that part
needs top on the daemon's host).  One renderer (:mod:`alphad.ops.top_render`) makes the
frame as plain lines; ``--once`` prints them, the curses screen paints them.

A daemon that does not answer is no reason to stop: the screen says "no answer from
ENDPOINT", keeps the last figures it had (marked with their time) and keeps asking.
``--once`` instead exits 3 with that message on stderr, like ``ctl``.  Keys: ``q`` (or Ctrl-C) quits,
``r`` refreshes now.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alphad.ops.ctl import add_curve_arguments, check_endpoint, curve_keys, seconds
from alphad.ops.top_source import RiskReader, Source

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7701"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "A live view of a running daemon, refreshed every --interval seconds: trading state and alerts, PnL net of "
        "fees, orders/fills/denials, tick-to-trade latency, stages, positions, exposure by sector and the drawdown "
        "ladder. Keys: q quits, r refreshes now. While the daemon does not answer the screen says so and keeps "
        "asking. --once prints one plain-text frame instead (exit 3 when the daemon does not answer).")
    p.add_argument("--config", default=None,
                   help="the daemon's config: its control.endpoint and shm.prefix (risk's state is read from shared "
                        "memory, so on the daemon's host). Default: config.yaml when there is one, else the control "
                        "port alone")
    p.add_argument("--endpoint", default=None, help=f"control endpoint (default: from --config, else {DEFAULT_ENDPOINT})")
    p.add_argument("--interval", type=_seconds, default=1.0, help="seconds between refreshes (default: %(default)s)")
    p.add_argument("--timeout", type=_seconds, default=1.0,
                   help="seconds to wait for each answer before the daemon counts as not answering (default: %(default)s)")
    p.add_argument("--once", action="store_true", help="print one plain-text frame to stdout and exit (for scripts)")
    add_curve_arguments(p)


_seconds = seconds(0.049, 1e5)  # a refresh faster than 20 a second only loads the daemon


def source_of(args) -> Source:
    """The daemon to watch, from the arguments: its endpoint, Curve keys and risk segment."""
    from alphad.daemon.config import load_config
    from alphad.daemon.shell.topology import segment_names

    path = args.config if args.config is not None else ("config.yaml" if Path("config.yaml").is_file() else None)
    cfg = load_config(path)[0] if path is not None else None  # an explicit --config that fails is an error
    endpoint = args.endpoint or (cfg.control.endpoint if cfg is not None else DEFAULT_ENDPOINT)
    check_endpoint(endpoint)
    curve = curve_keys(args.curve_key, args.server_key)
    if cfg is None:
        return Source(endpoint, args.timeout, curve, risk_note="no config (--config): risk's shared memory not read")
    return Source(endpoint, args.timeout, curve, RiskReader(cfg, segment_names(cfg.shm.prefix)["risk_state"]))


def run(args) -> int:
    from alphad.ops.top_render import render

    source = source_of(args)
    if args.once:
        snap = source.poll()
        if not snap.answered:
            why = f": {snap.error}" if snap.error else " (is the daemon running?)"
            print(f"alphad top: no answer from {source.endpoint} within {args.timeout:g} s{why}", file=sys.stderr)
            return 3
        print("\n".join(line.text for line in render(snap, interval_s=args.interval, timeout_s=args.timeout)))
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise RuntimeError("the live view needs a terminal (stdin and stdout); use --once for one plain-text frame")
    from alphad.ops.top_screen import watch

    def frame():
        last = source.last  # the last answered snapshot, shown while the daemon does not answer
        return render(source.poll(), interval_s=args.interval, timeout_s=args.timeout, last=last, keys=True)

    return watch(frame, args.interval)
