"""``alphad stage``: run the stages of one process of the topology.

Started by ``alphad run`` (or by a systemd unit); attaches the segments the
supervisor created, warms every kernel, reports READY in the control block,
then runs the loop until SIGTERM/SIGINT or a shutdown request.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

import msgspec

from alphad.daemon.shell import late_jit
from alphad.daemon.shell.affinity import apply_placement, resolve_placement
from alphad.daemon.config import load_config
from alphad.daemon.shell.reload import effective
from alphad.daemon.shell.runner import ProcessRunner
from alphad.daemon.shell.topology import plan as make_plan


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--process", required=True,
                   help="which process of the topology to run, named by its first stage (feed, features, ...)")
    p.add_argument("--bench-rate", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--bench-ticks", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--replay", action="store_true", help=argparse.SUPPRESS)  # alphad replay's processes


#: The environment variable that hands a stage process its supervisor's pid.
SUPERVISOR_PID_ENV = "ALPHAD_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1


def die_with_supervisor() -> None:
    """Ask the kernel to SIGKILL this process when its parent (the supervisor) dies, however
    it dies: a stage never outlives its supervisor, and a new supervisor finds no process
    attached to a dead instance's segments.  Crash-only: nothing is lost by being killed."""
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected:
        return  # started by hand or by a systemd unit of its own
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(expected):  # the supervisor died before the prctl took effect
        os._exit(1)


def run(args) -> int:
    die_with_supervisor()
    cfg, base = load_config(args.config)
    cfg = effective(cfg)  # a restart after `ctl reload` runs on the reloaded settings
    # Started by the supervisor, the config holds its resolved placement and this changes
    # nothing; started alone from config.yaml, the stage makes the supervisor's choice itself.
    cfg = msgspec.structs.replace(cfg, topology=resolve_placement(cfg.topology)[0])
    plan = make_plan(cfg.topology.name, cfg.rings, journal=cfg.journal.enabled)
    index = plan.find_process(args.process)
    runner = ProcessRunner(cfg, base, plan, index, replay=args.replay, bench_rate_hz=args.bench_rate,
                           bench_ticks=args.bench_ticks)
    runner.install_signal_handlers()
    runner.warm()
    late_jit.watch(args.process)
    # Placed after the warm-up: five stages compiling their kernels at SCHED_FIFO would
    # starve everything else on the host (the supervisor included) for seconds.
    warning = apply_placement(cfg.topology, plan.process_name(index), position=index)
    if warning:
        print(f"alphad stage {args.process}: {warning}", file=sys.stderr)
    runner.mark_ready(True)
    try:
        code = runner.run()
    finally:
        runner.close()
    # Crash-only: nothing is left to clean up once the stage is marked not-ready, and
    # interpreter teardown (LLVM, ONNX Runtime) takes a second we would rather not wait.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
