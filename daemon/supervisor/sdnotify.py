"""sd_notify: systemd-python when installed (the ``systemd`` extra), else a tiny built-in.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.
"""
from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``, ``"WATCHDOG=1"``, ``"STATUS=..."``); True if sent."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    try:
        from systemd import daemon  # type: ignore[import-not-found]

        return bool(daemon.notify(state))
    except ImportError:
        pass
    if addr[0] == "@":  # abstract namespace
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(addr)
        s.sendall(state.encode())
    return True


def watchdog_period_s() -> float | None:
    """Half the watchdog interval systemd asked for (ping at least this often), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
