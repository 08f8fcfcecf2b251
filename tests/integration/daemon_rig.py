"""A real `alphad run` in a subprocess, for the integration tests."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec

from alphad.ipc import frames
from alphad.ipc.shm import list_segments
from alphad.ops.ctl import request

REPO = Path(__file__).resolve().parents[2]
STAGES = ("feed", "features", "infer", "risk", "router")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(cond, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")


class Daemon:
    def __init__(self, tmp: Path, topology: str = "five", risk: dict | None = None, tag: str = "",
                 sections: dict | None = None):
        """``sections``: config sections to update, e.g. ``{"features": {"set": "micro"}}``."""
        self.prefix = f"alphad-it-{os.getpid()}-{topology}{tag}"
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        text = (REPO / "config.yaml").read_text()
        cfg = msgspec.yaml.decode(text)
        cfg["feed"]["path"] = str(REPO / cfg["feed"]["path"])
        cfg["model"]["card"] = str(REPO / cfg["model"]["card"])
        cfg["topology"]["name"] = topology
        cfg["shm"]["prefix"] = self.prefix
        cfg["control"]["endpoint"] = self.endpoint
        cfg["metrics"]["port"] = self.metrics_port
        cfg["journal"]["dir"] = str(tmp / "journal")
        cfg["supervisor"] = {"status_interval_s": 1.0, "start_timeout_s": 240}
        cfg["feed"]["speed"] = "5"  # five times real time: plenty of orders within seconds
        for section, values in (risk or {}).items():
            cfg["risk"].setdefault(section, {}).update(values) if isinstance(values, dict) else cfg["risk"].update({section: values})
        for section, values in (sections or {}).items():
            cfg.setdefault(section, {}).update(values)
        self.config = tmp / "config.yaml"
        self.config.write_bytes(msgspec.yaml.encode(cfg))
        self.log = (tmp / "daemon.log").open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def status(self) -> frames.StatusReply:
        reply = request(self.endpoint, frames.Status(), timeout_s=5)
        assert isinstance(reply, frames.StatusReply), f"status reply was {reply!r}"
        return reply

    def ctl(self, req) -> frames._Frame:
        return request(self.endpoint, req, timeout_s=5)

    def kill_stage(self, stage: str) -> frames.StatusReply:
        """SIGKILL a stage's process; return the status once its restart is ready."""
        old = self.status().stages[stage].pid
        os.kill(old, signal.SIGKILL)
        return eventually(lambda: (s := self.status()).stages[stage].ready and s.stages[stage].pid != old and s,
                          timeout=60, what=f"{stage} restarted")

    def wait_ready(self) -> None:
        eventually(lambda: "alphad: ready" in self.output() or self.proc.poll() is not None, timeout=240,
                   what="daemon ready")
        assert self.proc.poll() is None, f"daemon exited early:\n{self.output()}"

    def stop(self) -> None:
        stop_daemon(self.proc, self.log, self.prefix)


def stop_daemon(proc: subprocess.Popen, log, prefix: str) -> None:
    """SIGTERM ``alphad run`` (SIGKILL after 30 s), close its log, remove what it left in /dev/shm."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    for p in list_segments(prefix):
        p.unlink()




class LiveDaemon:
    """``alphad run`` on a live-venue config (``config``, already pointed at a fake broker),
    started and restarted by the test; ``env``: what the daemon's environment adds."""

    def __init__(self, tmp: Path, prefix: str, config: Path, env: dict | None = None):
        self.tmp, self.prefix, self.config, self.env = tmp, prefix, config, env or {}
        cfg = msgspec.yaml.decode(config.read_bytes())
        self.endpoint = cfg["control"]["endpoint"] = f"tcp://127.0.0.1:{free_port()}"
        self.metrics_port = cfg["metrics"]["port"] = free_port()
        cfg.setdefault("supervisor", {}).update(status_interval_s=1.0, start_timeout_s=240)
        config.write_bytes(msgspec.yaml.encode(cfg))
        self.journal = Path(cfg["journal"]["dir"]) / "journal.jsonl"
        self.proc = None
        self.runs = 0

    def start(self) -> "LiveDaemon":
        self.runs += 1
        self.log = (self.tmp / f"daemon{self.runs}.log").open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.tmp,
                                     env={**os.environ, **self.env})
        eventually(lambda: "alphad: ready" in self.output() or self.proc.poll() is not None, timeout=240,
                   what="daemon ready")
        assert self.proc.poll() is None, f"daemon exited early:\n{self.output()}"
        return self

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def status(self) -> frames.StatusReply:
        reply = request(self.endpoint, frames.Status(), timeout_s=5)
        assert isinstance(reply, frames.StatusReply), reply
        return reply

    def stop(self) -> None:
        if self.proc is not None:
            stop_daemon(self.proc, self.log, self.prefix)


class Hook:
    """A local HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self):
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alphad"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_kind(self, kind: str) -> list[dict]:
        return [b for b in list(self.bodies) if b.get("kind") == kind]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
