"""``alphad ctl status|positions|orders|halt|resume|reduce|flatten|cancel-all|reload|set|shutdown``: talk to a
running daemon.

Sends one msgpack frame over a ZMQ DEALER to the control port and prints the
reply as JSON.  Exit codes: 0 ok, 1 the daemon answered with an error, 3 no
answer within ``--timeout``.

A control port beyond loopback is locked with CurveZMQ: ``alphad ctl keygen --out DIR --name
NAME`` makes a key pair; the daemon holds its own secret key and the clients' public keys,
a client passes its secret key and the daemon's public key (``--curve-key``,
``--server-key``).  A client the daemon does not know gets no answer (exit 3).
"""
from __future__ import annotations

import argparse
import os
import sys

import msgspec
import zmq

from alphad.ipc import frames

COMMANDS = {"status": frames.Status, "halt": frames.Halt, "resume": frames.Resume, "reduce": frames.Reduce,
            "flatten": frames.Flatten, "cancel-all": frames.CancelAll, "reload": frames.Reload, "set": frames.Set,
            "positions": frames.Positions, "orders": frames.Orders, "shutdown": frames.Shutdown}


def add_arguments(p: argparse.ArgumentParser) -> None:
    # dest "action": "command" is the sub-command's name (alphad ctl), which errors are named by
    p.add_argument("action", choices=sorted([*COMMANDS, "keygen"]), metavar="command",
                   help="what to ask the daemon; reload: re-read the config and apply the risk limits and "
                        "model.card; set KEY VALUE: one of those changed live; keygen: make a CurveZMQ key pair")
    p.add_argument("operands", nargs="*", help="set: KEY VALUE (e.g. risk.account.daily_loss_limit 0.03)")
    p.add_argument("--config", default=None, help="read control.endpoint from this config")
    p.add_argument("--endpoint", default=None, help="control endpoint (default: from --config, else tcp://127.0.0.1:7701)")
    p.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for the reply (default: %(default)s)")
    p.add_argument("--reason", default="", help="reason recorded with halt")
    p.add_argument("--symbol", default="", help="halt / resume: that instrument alone (no new order on it)")
    add_curve_arguments(p)
    p.add_argument("--out", default=".", help="keygen: directory for the key files (default: %(default)s)")
    p.add_argument("--name", default="client", help="keygen: NAME of NAME.key / NAME.key_secret (default: %(default)s)")


def add_curve_arguments(p: argparse.ArgumentParser) -> None:
    """The client's CurveZMQ key files (ctl, top): a control port beyond loopback is locked."""
    p.add_argument("--curve-key", default=os.environ.get("ALPHAD_CTL_KEY"),
                   help="this client's secret key file (NAME.key_secret from keygen; env ALPHAD_CTL_KEY), "
                        "for a control port locked with CurveZMQ")
    p.add_argument("--server-key", default=os.environ.get("ALPHAD_CTL_SERVER_KEY"),
                   help="the daemon's public key file (server.key; env ALPHAD_CTL_SERVER_KEY)")


def seconds(low: float = 0.0, high: float = 1e6):
    """An argparse type: a finite number of seconds in (``low``, ``high``) (a negative timeout
    would wait forever)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = -1.0
        if not (low < v < high):
            raise argparse.ArgumentTypeError(f"expected a number of seconds above {_short(low)} (under "
                                             f"{_short(high)}), was {text!r}")
        return v
    return parse


def _short(x: float) -> str:
    """0, 0.049, 1e6: how a person writes the bound."""
    return f"{x:.0e}".replace("e+0", "e").replace("e+", "e") if x >= 1e4 else f"{x:g}"


_seconds = seconds()


def check_endpoint(endpoint: str) -> str:
    """A control endpoint a client can connect to: ``tcp://HOST:PORT`` (a port 1..65535) or
    ``ipc://PATH``; anything else is a ValueError naming what was expected and what was found."""
    from alphad.daemon.supervisor.control_socket import endpoint_host

    host = endpoint_host(endpoint)  # the transport and the shape: tcp://HOST:PORT or ipc://PATH
    scheme, _, rest = endpoint.partition("://")
    if scheme == "inproc":
        raise ValueError(f"control endpoint {endpoint!r}: inproc:// reaches only its own process; expected "
                         f"tcp://HOST:PORT or ipc://PATH")
    if scheme == "tcp":
        hostpart, _, port = rest.rpartition(":")
        if (port == "*" or not port.isascii() or not 0 < int(port) < 65536 or not host or hostpart.startswith("[") != hostpart.endswith("]")
                or any(c.isspace() or c in "/[]" for c in host)):
            raise ValueError(f"control endpoint {endpoint!r}: expected tcp://HOST:PORT with a host name or address "
                             f"and a port 1..65535")
    return endpoint


def request(endpoint: str, req: frames._Frame | bytes, timeout_s: float = 5.0,
            curve: tuple[bytes, bytes, bytes] | None = None) -> frames._Frame | None:
    """Send one request; returns the decoded reply, or None on timeout.  ``curve``: this
    client's (public, secret) key and the server's public key, for a CurveZMQ control port."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if curve is not None:
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = curve
    try:
        try:
            s.connect(endpoint)
        except zmq.ZMQError as e:  # what check_endpoint let through and ZMQ refuses
            raise ValueError(f"control endpoint {endpoint!r}: {e}") from None
        s.send(req if isinstance(req, bytes) else frames.encoder.encode(req))
        if not s.poll(int(timeout_s * 1000)):
            return None
        return frames.reply_decoder.decode(s.recv())
    finally:
        s.close(0)


def curve_keys(client_secret: str | None, server_public: str | None) -> tuple[bytes, bytes, bytes] | None:
    """The Curve keys from the key files (both or neither)."""
    from pathlib import Path

    from alphad.daemon.supervisor.control_socket import read_keys

    if not client_secret and not server_public:
        return None
    if not (client_secret and server_public):
        raise ValueError("--curve-key and --server-key go together: the client's secret key and the daemon's public key")
    public, secret = read_keys(Path(client_secret), secret=True)
    server, _ = read_keys(Path(server_public), secret=False)
    return public, secret, server


def run(args) -> int:
    from pathlib import Path

    from alphad.daemon.supervisor.control_socket import keygen

    if args.action == "keygen":
        public, secret = keygen(Path(args.out), args.name)
        print(f"public key {public} (give it to the other side), secret key {secret} (keep it: mode 0600)")
        return 0
    endpoint = args.endpoint
    if endpoint is None:
        if args.config:
            from alphad.daemon.config import load_config

            endpoint = load_config(args.config)[0].control.endpoint
        else:
            endpoint = "tcp://127.0.0.1:7701"
    check_endpoint(endpoint)  # a malformed endpoint is a clear error, not a ZMQ traceback
    cls = COMMANDS[args.action]
    if cls is frames.Set:
        if len(args.operands) != 2:
            raise ValueError(f"set expects KEY VALUE (e.g. risk.account.daily_loss_limit 0.03), found {args.operands}")
        req = frames.Set(key=args.operands[0], value=args.operands[1])
    elif args.operands:
        raise ValueError(f"{args.action} takes no operands, found {args.operands}")
    else:
        if args.symbol and cls not in (frames.Halt, frames.Resume):
            raise ValueError(f"--symbol goes with halt or resume, not {args.action}")
        req = (cls(reason=args.reason, symbol=args.symbol) if cls is frames.Halt
               else cls(symbol=args.symbol) if cls is frames.Resume else cls())
    reply = request(endpoint, req, args.timeout, curve_keys(args.curve_key, args.server_key))
    if reply is None:
        print(f"alphad ctl: no reply from {endpoint} within {args.timeout} s (is the daemon running?)", file=sys.stderr)
        return 3
    print(msgspec.json.format(msgspec.json.encode(reply), indent=2).decode())
    return 1 if isinstance(reply, frames.Error) else 0
