"""``alphad ctl status|halt|resume|reduce|flatten|cancel-all|shutdown``: talk to a running daemon.

Sends one msgpack frame over a ZMQ DEALER to the control port and prints the
reply as JSON.  Exit codes: 0 ok, 1 the daemon answered with an error, 3 no
answer within ``--timeout``.
"""
from __future__ import annotations

import argparse
import sys

import msgspec
import zmq

from alphad.ipc import frames

COMMANDS = {"status": frames.Status, "halt": frames.Halt, "resume": frames.Resume, "reduce": frames.Reduce,
            "flatten": frames.Flatten, "cancel-all": frames.CancelAll, "shutdown": frames.Shutdown}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("command", choices=sorted(COMMANDS), help="what to ask the daemon")
    p.add_argument("--config", default=None, help="read control.endpoint from this config")
    p.add_argument("--endpoint", default=None, help="control endpoint (default: from --config, else tcp://127.0.0.1:7701)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the reply (default: %(default)s)")
    p.add_argument("--reason", default="", help="reason recorded with halt")


def request(endpoint: str, req: frames._Frame | bytes, timeout_s: float = 5.0) -> frames._Frame | None:
    """Send one request; returns the decoded reply, or None on timeout."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    try:
        s.connect(endpoint)
        s.send(req if isinstance(req, bytes) else frames.encoder.encode(req))
        if not s.poll(int(timeout_s * 1000)):
            return None
        return frames.reply_decoder.decode(s.recv())
    finally:
        s.close(0)


def run(args) -> int:
    endpoint = args.endpoint
    if endpoint is None:
        if args.config:
            from alphad.daemon.config import load_config

            endpoint = load_config(args.config)[0].control.endpoint
        else:
            endpoint = "tcp://127.0.0.1:7701"
    cls = COMMANDS[args.command]
    req = cls(reason=args.reason) if cls is frames.Halt else cls()
    reply = request(endpoint, req, args.timeout)
    if reply is None:
        print(f"alphad ctl: no reply from {endpoint} within {args.timeout} s (is the daemon running?)", file=sys.stderr)
        return 3
    print(msgspec.json.format(msgspec.json.encode(reply), indent=2).decode())
    return 1 if isinstance(reply, frames.Error) else 0
