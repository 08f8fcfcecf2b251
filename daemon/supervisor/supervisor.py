"""``alphad run``: create the shared segments, start and supervise the stage processes.

* Creates every /dev/shm segment of the instance (rings per the topology plan,
  control block, metrics block, doorbells) and removes them all on exit.
* Starts one ``alphad stage --process NAME`` child per process of the topology,
  pinned and scheduled per config (``topology.placement: auto``: the placement chosen
  for this host at start, written into the effective config the children read); restarts a child that dies (bounded per
  minute); the restarted stage re-attaches its rings and shared state.
* Sends ``READY=1`` to systemd only when every stage reports ready (kernels
  compiled or loaded from the Numba cache, ONNX session warm), then pings the
  watchdog while every stage's heartbeat is fresh.
* Serves the control port (ZMQ ROUTER), the Prometheus endpoint and the journal.
* Prints a status line every ``supervisor.status_interval_s``.
* SIGTERM/SIGINT or ``ctl shutdown``: stop children (SIGTERM, then SIGKILL after
  5 s), remove shared memory, exit 0.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import msgspec
import zmq

from alphad.ipc import dtypes, frames
from alphad.ipc.control import (S_HEARTBEAT, S_PID, S_READY, S_RESTARTS, STAGE_INDEX, STAGES, W_EPOCH, W_ID_SESSION,
                                W_SUPERVISOR_PID, ControlBlock)
from alphad.ipc.doorbell import Doorbells
from alphad.ipc.metrics import MetricsBlock
from alphad.ipc.ring import Ring
from alphad.ipc import feature_list
from alphad.ipc.shm import Segment, list_segments

from alphad.daemon.supervisor import sdnotify
from alphad.daemon.config import Config, load_config, resolve
from alphad.daemon.supervisor.control_port import ControlPort, pid_alive, stale
from alphad.daemon.supervisor.control_socket import ControlSocket
from alphad.daemon.supervisor.drift_watch import DriftWatch
from alphad.daemon.supervisor.gateway_child import GatewaySupervision
from alphad.daemon.supervisor.journal import JournalThread, JournalWriter
from alphad.daemon.supervisor.recovery import journal_changes, restore_from_journal
from alphad.daemon.shell.affinity import replays_at_full_speed, resolve_placement
from alphad.daemon.shell.stage_main import SUPERVISOR_PID_ENV
from alphad.daemon.shell.topology import PASSIVE, Plan, plan as make_plan, segment_names




def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--topology", choices=["five", "fused", "single"], default=None,
                   help="override topology.name from the config")
    p.add_argument("--metrics-port", type=int, default=None, help="override metrics.port (0 = any free port)")
    p.add_argument("--control", default=None, help="override control.endpoint (e.g. tcp://127.0.0.1:7801)")
    p.add_argument("--shm-prefix", default=None, help="override shm.prefix (run two instances side by side)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (tests, demos)")


class Child:
    def __init__(self, name: str, stages: tuple[str, ...], argv: list[str], env: dict):
        self.name = name
        self.stages = stages
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.restarts: deque[float] = deque()
        #: When a dead child is due to start again (exponential backoff); None: not waiting.
        self.restart_at: float | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, cfg: Config, config_path: Path, base: Path, *, metrics_port: int | None = None,
                 placement: frames.Placement | None = None, replay: bool = False):
        """``placement``: what :func:`resolve_placement` made of ``cfg.topology`` (``cfg`` then
        holds the resolved topology, as the stage processes' config file does); without it the
        supervisor resolves ``cfg.topology`` itself, and each stage process resolves the same."""
        if placement is None:
            topology, placement = resolve_placement(cfg.topology, full_speed=replays_at_full_speed(cfg.feed))
            cfg = msgspec.structs.replace(cfg, topology=topology)
        self.cfg = cfg
        self.placement = placement
        self.config_path = config_path
        self.base = base
        self.plan: Plan = make_plan(cfg.topology.name, cfg.rings, journal=cfg.journal.enabled)
        self.names = segment_names(cfg.shm.prefix)
        self.started = time.monotonic()
        self.stopping = False
        self.children: list[Child] = []
        self.rings: dict[str, Ring] = {}
        self.metrics_port = cfg.metrics.port if metrics_port is None else metrics_port
        #: ``alphad replay``: ids of session 0 (as the backtest's), every consumer woken.
        self.replay = replay
        self.port = ControlPort(self)
        self.drift = None
        #: A live venue's gateway process (router.venue a broker), or None.
        self.gw = GatewaySupervision(self) if cfg.router.venue != "paper" else None

    # -- segments -----------------------------------------------------------------
    def create_segments(self) -> None:
        leftovers = list_segments(self.cfg.shm.prefix)
        if leftovers:
            pids = []
            try:
                old = ControlBlock.attach(self.names["control"])
                pids = [old.stage(i, S_PID) for i in range(len(STAGES))] + [int(old.words[W_SUPERVISOR_PID])]
                old.close()
            except (FileNotFoundError, RuntimeError):
                pass
            live = [p for p in pids if p and pid_alive(p)]
            if live:  # refused: this supervisor owns nothing, and shutdown() leaves the live one alone
                raise RuntimeError(f"another alphad instance with shm prefix {self.cfg.shm.prefix!r} is running "
                                   f"(pids {live}); stop it or choose another shm.prefix")
            for p in leftovers:  # a crashed instance's segments: nothing owns them any more
                p.unlink(missing_ok=True)
        self.owns_segments = True
        self.bells = Doorbells.create(self.names["doorbells"])
        self.control = ControlBlock.create(self.names["control"])
        self.control.words[W_SUPERVISOR_PID] = os.getpid()
        self.control.words[W_ID_SESSION] = 0 if self.replay else next_session(resolve(self.base, self.cfg.journal.dir))
        self.metrics = MetricsBlock.create(self.names["metrics"])
        Segment.create(self.names["feature_list"], feature_list.SIZE).close()
        for kind, spec in self.plan.rings.items():
            doorbell_of = {}
            for c in spec.consumers:
                if c in STAGE_INDEX and ((kind, c) not in PASSIVE or self.replay):
                    k = self.plan.process_index(c)
                    if self.cfg.topology.wait_overrides.get(self.plan.process_name(k), self.cfg.topology.wait) == "block":
                        doorbell_of[c] = k
            self.rings[kind] = Ring.create(self.names[f"ring.{kind}"], dtypes.RECORDS[kind], spec.capacity,
                                           list(spec.consumers), policy=spec.policy, bells=self.bells,
                                           doorbell_of=doorbell_of)
        # a live venue's gateway block (its order table, pid, heartbeat)
        self.gateway = self.gw.create_segments() if self.gw is not None else None

    def remove_segments(self) -> None:
        for p in list_segments(self.cfg.shm.prefix):
            p.unlink(missing_ok=True)

    # -- children -----------------------------------------------------------------
    def spawn_all(self, extra_args: list[str] | None = None) -> None:
        env = dict(os.environ)
        # Library thread pools of one: OpenMP/BLAS pools turn p99 into milliseconds under load.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        env.pop("NOTIFY_SOCKET", None)  # only the supervisor talks to systemd
        env[SUPERVISOR_PID_ENV] = str(os.getpid())  # a stage dies with this process (stage_main)
        for k, group in enumerate(self.plan.processes):
            name = self.plan.process_name(k)
            argv = [sys.executable, "-m", "alphad.daemon.cli", "stage", "--config", str(self.config_path),
                    "--process", name, *(extra_args or [])]
            child = Child(name, group, argv, env)
            child.start()
            self.children.append(child)
        if self.gw is not None:  # its own process: network I/O never beside a hot-path stage
            self.children.append(Child(self.gw.name, (), self.gw.argv(), env))
            self.children[-1].start()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.control.stage(STAGE_INDEX[s], S_READY) for s in STAGES) and (self.gw is None or self.gw.ready()):
                return
            for c in self.children:
                if not c.alive:
                    raise RuntimeError(f"stage process {c.name} exited with code {c.proc.returncode} before it was ready")
            if self.stopping:
                raise RuntimeError("stopped before every stage was ready")
            time.sleep(0.05)
        missing = [s for s in STAGES if not self.control.stage(STAGE_INDEX[s], S_READY)]
        missing += [f"{self.gw.name} (reconciliation with the venue unfinished)"] if self.gw and not self.gw.ready() else []
        raise RuntimeError(f"stages {missing} were not ready within {timeout_s} s (supervisor.start_timeout_s)")

    def reap_and_restart(self) -> None:
        """Restart dead children after their backoff; kill the ones whose heartbeat is stale."""
        now = time.monotonic()
        self.kill_stale(time.monotonic_ns())
        for c in self.children:
            if c.alive or self.stopping or self.control.shutdown_requested:
                continue
            if c.restart_at is not None:
                if now >= c.restart_at:
                    c.restart_at = None
                    c.start()
                continue
            code = c.proc.returncode
            if not c.stages and self.gw is not None:
                self.gw.died()
            for s in c.stages:
                self.control.set_stage(STAGE_INDEX[s], S_READY, 0)
                self.control.set_stage(STAGE_INDEX[s], S_PID, 0)
            while c.restarts and now - c.restarts[0] > 60:
                c.restarts.popleft()
            if len(c.restarts) >= self.cfg.supervisor.max_restarts_per_minute:
                print(f"alphad: stage {c.name} died (exit {code}) {len(c.restarts)} times within a minute; "
                      "giving up and shutting down", file=sys.stderr, flush=True)
                self.stopping = True
                return
            sv = self.cfg.supervisor
            delay = min(sv.restart_backoff_s * 2 ** len(c.restarts), sv.restart_backoff_max_s)
            c.restarts.append(now)
            for s in c.stages:
                i = STAGE_INDEX[s]
                self.control.set_stage(i, S_RESTARTS, self.control.stage(i, S_RESTARTS) + 1)
            print(f"alphad: stage {c.name} exited with code {code}; restarting in {delay:.2f} s",
                  file=sys.stderr, flush=True)
            c.restart_at = now + delay

    def kill_stale(self, now_ns: int) -> None:
        """A ready stage whose heartbeat is older than ``supervisor.stale_after_s`` (stopped,
        frozen, stuck) is alerted and SIGKILLed; :meth:`reap_and_restart` restarts it."""
        limit_s = self.cfg.supervisor.stale_after_s
        for c in self.children:
            if not c.alive:
                continue
            if not c.stages and self.gw is not None:  # the gateway: its heartbeat is in its block
                self.gw.kill_if_stale(c, now_ns, limit_s)
                continue
            for s in c.stages:
                i = STAGE_INDEX[s]
                if stale(self.control, i, now_ns, limit_s):
                    age = (now_ns - self.control.stage(i, S_HEARTBEAT)) / 1e9
                    print(f"alphad: alert: stage {s} (pid {c.proc.pid}) heartbeat {age:.1f} s old, "
                          f"over supervisor.stale_after_s {self.cfg.supervisor.stale_after_s:g}: killing it for a "
                          "restart", file=sys.stderr, flush=True)
                    self.control.set_stage(i, S_READY, 0)
                    c.proc.kill()
                    break

    def stop_children(self, grace_s: float = 5.0) -> None:
        self.control.request_shutdown()
        for c in self.children:
            if c.alive:
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for c in self.children:
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()

    # -- status ---------------------------------------------------------------------
    # -- control port (supervisor/control_port.py) -------------------------------------
    def status(self) -> frames.StatusReply:
        return self.port.status()

    def status_line(self) -> str:
        return self.port.status_line()

    # -- main -------------------------------------------------------------------------
    def start(self, control_endpoint: str, stage_args: list[str] | None = None) -> None:
        """Create segments, bind the control port, start exporter, journal and stages; wait READY."""
        self.journal = None
        self.server = None
        if self.gw is not None:  # before anything starts: a gateway without its keys would only die
            self.gw.check_keys()
        self.ctx = zmq.Context()
        self.control_socket = ControlSocket(self.ctx, control_endpoint, self.cfg.control, self.base)
        self.sock, self.control_endpoint = self.control_socket.sock, self.control_socket.endpoint
        self.create_segments()
        self.drift_watch = DriftWatch(self.base, self.cfg.model.card, self.names["drift"])
        self.drift = self.drift_watch.view
        if self.cfg.metrics.enabled:
            from alphad.ops.exporter import AlphadCollector, serve

            self.server = serve(AlphadCollector.for_supervisor(self), self.cfg.metrics.host, self.metrics_port)
            self.metrics_port = self.server.server_port
        self._day_journaled = (0.0, 0.0)  # the day references last journaled
        if self.cfg.journal.enabled:
            writer = JournalWriter.from_config(self.cfg.journal, self.base, self.cfg)  # key, rotation, torn tail
            restore_from_journal(self, writer)
            self.journal = JournalThread(writer, self.rings, self.cfg.journal)
            self.journal.start()
        self._state_epoch = int(self.control.words[W_EPOCH])
        if self.placement.mode == "auto":
            print(f"alphad: placement auto: {self.placement.reason}", file=sys.stderr, flush=True)
        if self.cfg.topology.idle_poll:
            from alphad.daemon.shell import idle_poll

            # auto: poll the CPUs the stages were placed on; manual: every CPU, as always
            placed = set(self.cfg.topology.cpus.values()) if self.placement.mode == "auto" else set()
            self.pollers = idle_poll.start(placed or None)
        self.spawn_all(stage_args)
        print(f"alphad: topology {self.plan.name}: processes "
              f"{[list(g) for g in self.plan.processes]}; control {self.control_endpoint}; "
              + (f"metrics http://{self.cfg.metrics.host}:{self.metrics_port}/metrics" if self.server else "metrics off"),
              file=sys.stderr, flush=True)
        self.wait_ready(self.cfg.supervisor.start_timeout_s)
        sdnotify.notify("READY=1")
        print("alphad: ready (every stage warm)", file=sys.stderr, flush=True)

    def shutdown(self) -> None:
        """Stop children, journal, exporter and control port; remove every segment."""
        sdnotify.notify("STOPPING=1")
        if self.children:
            self.stop_children()
        if getattr(self, "pollers", None):
            from alphad.daemon.shell import idle_poll

            idle_poll.stop(self.pollers)
        if getattr(self, "journal", None) is not None:
            self.journal.stop()
            self.journal.writer.close()
        if getattr(self, "server", None) is not None:
            self.server.shutdown()
        if getattr(self, "control_socket", None) is not None:
            self.control_socket.close()
            self.ctx.term()
        for r in self.rings.values():
            r.close()
        if getattr(self, "gateway", None) is not None:
            self.gateway.close()
        if getattr(self, "owns_segments", False):  # a refused start never touches a live instance's
            self.remove_segments()
            print("alphad: stopped; shared memory removed", file=sys.stderr, flush=True)

    def run(self, *, control_endpoint: str, duration: float | None = None) -> int:
        def on_signal(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, lambda *_: setattr(self.port.reloader, "hup", True))  # = ctl reload
        try:
            self.start(control_endpoint)
            self._loop(self.sock, duration)
            return 0
        finally:
            self.shutdown()

    def _loop(self, sock, duration: float | None) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        interval = self.cfg.supervisor.status_interval_s
        next_status = time.monotonic() + interval
        watchdog = sdnotify.watchdog_period_s() if self.cfg.supervisor.watchdog else None
        next_ping = time.monotonic()
        end = time.monotonic() + duration if duration else None
        while not self.stopping:
            for s, _ in poller.poll(100):
                envelope, raw, who = self.control_socket.receive()
                if envelope:  # a ROUTER frame always has its peer's identity first
                    s.send_multipart([*envelope, frames.encoder.encode(self.port.handle(raw, who))])
            self.reap_and_restart()
            journal_changes(self)
            self.port.poll()
            now = time.monotonic()
            if now >= next_status:
                print(self.status_line(), file=sys.stderr, flush=True)
                self.drift_watch.warn(now)
                next_status = now + interval
            if watchdog and now >= next_ping and self._heartbeats_fresh():
                sdnotify.notify("WATCHDOG=1")
                next_ping = now + watchdog
            if end is not None and now >= end:
                break

    def _heartbeats_fresh(self, max_age_s: float = 2.0) -> bool:
        now = time.monotonic_ns()
        fresh = all(now - self.control.stage(STAGE_INDEX[s], S_HEARTBEAT) < max_age_s * 1e9 for s in STAGES)
        return fresh and (self.gw is None or self.gw.fresh(now, max_age_s))


def run(args) -> int:
    cfg, base = load_config(args.config)

    overrides = {}
    if args.topology:
        overrides["topology"] = msgspec.structs.replace(cfg.topology, name=args.topology)
    if args.shm_prefix:
        overrides["shm"] = msgspec.structs.replace(cfg.shm, prefix=args.shm_prefix)
    # placement: auto measures this host once, here; the stages get its choice in the file
    topology, placement = resolve_placement(overrides.get("topology", cfg.topology),
                                            full_speed=replays_at_full_speed(cfg.feed))
    if topology != cfg.topology:
        overrides["topology"] = topology
    if overrides:
        cfg = msgspec.structs.replace(cfg, **overrides)
    config_path = Path(args.config).resolve()
    if overrides:  # children read the config file: hand them the effective one
        config_path = write_effective(cfg, config_path, base)
    sup = Supervisor(cfg, config_path, base, metrics_port=args.metrics_port, placement=placement)
    sup.port.reloader.source = Path(args.config).resolve()  # reload reads the user's file, not the effective copy
    try:
        return sup.run(control_endpoint=args.control or cfg.control.endpoint, duration=args.duration)
    finally:
        if config_path != Path(args.config).resolve():
            config_path.unlink(missing_ok=True)


#: The last daemon run's number, beside the journal: every start takes the next one.
SESSION_FILE = "session"


def next_session(state_dir: Path) -> int:
    """This run's number (1, 2, ...): one more than the last run's, kept in
    ``state_dir/session`` and written before any order can leave (atomically: a crash leaves
    the old number or the new one), so client order ids never repeat across restarts."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SESSION_FILE
    try:
        last = int(path.read_text().strip() or 0)
    except FileNotFoundError:
        last = 0
    except ValueError:
        raise RuntimeError(f"{path}: expected the last daemon run's number, found {path.read_text()[:40]!r}; "
                           "remove the file only if no order of an earlier run can still be open") from None
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{last + 1}\n")
    os.replace(tmp, path)
    return last + 1


def write_effective(cfg: Config, config_path: Path, base: Path) -> Path:
    """Write the config with command-line overrides and the resolved placement beside the
    original (paths stay relative to it)."""
    out = base / f".{config_path.stem}.effective.{os.getpid()}.yaml"
    out.write_bytes(msgspec.yaml.encode(cfg))
    return out
