"""The control port's socket: loopback unless locked with CurveZMQ, bounded frames, and who sent
each request.

Anyone who reaches the control port can halt, flatten or shut the daemon down, so:

* a ``tcp://`` endpoint on a loopback address (127.0.0.0/8, ::1, localhost) or an ``ipc://``
  path (the file's permissions guard it) needs nothing more;
* any other endpoint needs CurveZMQ: the server's secret key (``control.curve_secret_key``)
  and a directory of authorised clients' public keys (``control.curve_authorized_dir``), both
  made by ``alphad ctl keygen``.  The daemon refuses to start without them.  A client whose
  key is not authorised fails the handshake (ZAP) and never gets an answer;
* a request larger than ``control.max_frame_bytes`` makes ZMQ drop that peer's connection
  before the frame is buffered (``ZMQ_MAXMSGSIZE``): a 200 MB frame costs no memory.

Every request is handed on with who sent it (:func:`sender`): the client's public key (Curve)
and its address, which the journal records with each command.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import zmq

#: What ``alphad ctl keygen`` writes: ``NAME.key`` (public) and ``NAME.key_secret`` (both).
PUBLIC_SUFFIX, SECRET_SUFFIX = ".key", ".key_secret"


def endpoint_host(endpoint: str) -> str | None:
    """The host of a ``tcp://HOST:PORT`` endpoint; None for ``ipc://`` and ``inproc://``.
    Anything else is a ValueError naming what was expected."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or not rest:
        raise ValueError(f"control endpoint {endpoint!r}: expected tcp://HOST:PORT or ipc://PATH")
    if scheme in ("ipc", "inproc"):
        return None
    if scheme != "tcp":
        raise ValueError(f"control endpoint {endpoint!r}: expected the tcp:// or ipc:// transport, found {scheme}://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not (port.isdigit() or port == "*"):
        raise ValueError(f"control endpoint {endpoint!r}: expected tcp://HOST:PORT (a port number or *)")
    return host.strip("[]")


def is_loopback(endpoint: str) -> bool:
    """True for an ``ipc://`` path and a ``tcp://`` endpoint on a loopback address."""
    host = endpoint_host(endpoint)
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or a host name: not provably local


def read_keys(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) from a key file ``alphad ctl keygen`` wrote; clear errors."""
    import zmq.auth

    if not path.is_file():
        raise FileNotFoundError(f"CurveZMQ key file {path} not found (make one with `alphad ctl keygen`)")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a CurveZMQ key file ({e})") from None
    if secret and secret_key is None:
        raise ValueError(f"{path}: holds no secret key (expected the {SECRET_SUFFIX} file `alphad ctl keygen` wrote)")
    return public, secret_key


class ControlSocket:
    """The supervisor's ROUTER socket on ``endpoint`` under ``cfg`` (the ``control:``
    section), paths relative to ``base``."""

    def __init__(self, ctx: zmq.Context, endpoint: str, cfg, base: Path):
        self.auth = None
        secret_path = cfg.curve_secret_key
        if not is_loopback(endpoint) and not secret_path:
            raise ValueError(f"control endpoint {endpoint} is beyond loopback: anyone who reaches it could halt, "
                             "flatten or stop the daemon. Set control.curve_secret_key and "
                             "control.curve_authorized_dir (make keys with `alphad ctl keygen`), or bind 127.0.0.1")
        sock = ctx.socket(zmq.ROUTER)
        sock.linger = 0
        sock.setsockopt(zmq.MAXMSGSIZE, cfg.max_frame_bytes)
        if secret_path:
            self._curve(ctx, sock, base / secret_path, base / (cfg.curve_authorized_dir or "."), cfg)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            self.close()
            raise RuntimeError(f"control endpoint {endpoint}: cannot bind ({e})") from None
        self.sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def _curve(self, ctx, sock, secret_path: Path, authorized: Path, cfg) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        if not cfg.curve_authorized_dir:
            raise ValueError("control.curve_secret_key is set but control.curve_authorized_dir is not: "
                             "name the directory of the clients' public keys")
        if not authorized.is_dir() or not any(authorized.glob(f"*{PUBLIC_SUFFIX}")):
            raise FileNotFoundError(f"control.curve_authorized_dir {authorized}: expected a directory of "
                                    f"authorised clients' {PUBLIC_SUFFIX} files (from `alphad ctl keygen`)")
        public, secret = read_keys(secret_path, secret=True)
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(authorized))
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = public, secret

    def receive(self) -> tuple[list, bytes, dict]:
        """One request: (routing envelope, its last frame's bytes, who sent it)."""
        parts = self.sock.recv_multipart(copy=False)
        return [p.bytes for p in parts[:-1]], parts[-1].bytes, sender(parts[-1])

    def close(self) -> None:
        if getattr(self, "sock", None) is not None:
            self.sock.close(0)
        if self.auth is not None:
            self.auth.stop()
            self.auth = None


def sender(frame: zmq.Frame) -> dict:
    """Who sent ``frame``: its peer address and, on a Curve socket, the client's public key."""
    who = {}
    for prop, key in (("Peer-Address", "peer"), ("User-Id", "key")):
        try:
            value = frame.get(prop)
        except (zmq.ZMQError, KeyError):
            continue
        if value:
            who[key] = value
    return who or {"peer": "local"}


def keygen(directory: Path, name: str) -> tuple[Path, Path]:
    """A Curve key pair ``NAME.key`` / ``NAME.key_secret`` in ``directory`` (the secret 0600)."""
    import zmq.auth

    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    if public.exists() or secret.exists():
        raise ValueError(f"{public} or {secret} exists: choose another --name or directory")
    old = os.umask(0o077)
    try:
        made_public, made_secret = zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old)
    os.chmod(made_secret, 0o600)
    return Path(made_public), Path(made_secret)
