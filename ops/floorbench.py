"""DESIGN.md's latency floor, re-measured on this host: a zero-work process chain.

``python -m alphad.ops.floorbench [--wait eventfd|yield] [--stages 5] [--ticks 3000]
[--cpus 1] [--sched fifo] [--idle-poll]``

The first process stamps CLOCK_MONOTONIC into shared memory every 1 ms (after a
sleep, like spaced ticks) and wakes the second; each process wakes the next; the
last records ``now - stamp``.  No rings, no Numba, no work: only the wake-ups, so
the figure is what the host charges for ``stages - 1`` hops.  It reproduces the
"5-process chain, 4 hops, zero work" row of DESIGN.md's table (measured there as
37 µs p50 with eventfd and 27 µs with yield), so a tick-to-trade figure can be read
against this host's own floor rather than another machine's.

``eventfd``: each hop is an eventfd write and a blocking read (the process sleeps).
``yield``: each process polls a counter and calls sched_yield() between polls
(busy: every stage stays runnable, which is why the daemon does not default to it).
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import struct
import sys
import tempfile
import time

import numpy as np

from alphad.daemon.shell import idle_poll
from alphad.daemon.shell.affinity import fifo_priority
from alphad.daemon.shell.config import Topology

_WORD = 64  # one cache line per counter
_DEFAULT_TOPOLOGY = Topology()  # the daemon's default topology.priority, for the same ladder


def _place(k: int, args) -> None:
    """Pin process ``k`` of the chain and set its policy, as a stage shell would: under
    ``fifo`` each process ranks one above the one before it (daemon/affinity.py)."""
    if args.cpus:
        os.sched_setaffinity(0, {args.cpus[k % len(args.cpus)]})
    if args.sched == "fifo":
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority(_DEFAULT_TOPOLOGY, k)))


def _stage(k: int, last: bool, args, shm, efds, out_path: str) -> None:
    _place(k, args)
    seen = 0
    lat = []
    for _ in range(args.ticks):
        if args.wait == "eventfd":
            os.eventfd_read(efds[k - 1])
        else:
            while struct.unpack_from("q", shm, _WORD * k)[0] == seen:
                os.sched_yield()
            seen += 1
        if last:
            lat.append(time.monotonic_ns() - struct.unpack_from("q", shm, 0)[0])
        elif args.wait == "eventfd":
            os.eventfd_write(efds[k], 1)
        else:
            struct.pack_into("q", shm, _WORD * (k + 1), seen)
    if last:
        np.save(out_path, np.array(lat, dtype=np.int64))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wait", choices=["eventfd", "yield"], default="eventfd")
    p.add_argument("--stages", type=int, default=5, help="processes in the chain (hops = stages - 1)")
    p.add_argument("--ticks", type=int, default=3000)
    p.add_argument("--cpus", type=lambda t: [int(c) for c in t.split(",")], default=None,
                   help="CPU of each process in chain order, e.g. 0,1,1,0,1 or 1 (all on CPU 1); default: unpinned")
    p.add_argument("--sched", choices=["other", "fifo"], default="other",
                   help="scheduling policy (fifo: the daemon's ladder, topology.priority + position in the chain; needs CAP_SYS_NICE)")
    p.add_argument("--idle-poll", action="store_true",
                   help="run a SCHED_IDLE busy loop on every CPU, as topology.idle_poll does")
    p.add_argument("--warmup", type=int, default=300, help="first ticks left out")
    args = p.parse_args(argv)
    if args.stages < 2 or args.ticks <= args.warmup:
        p.error(f"need --stages >= 2 and --ticks > --warmup; got {args.stages} and {args.ticks} <= {args.warmup}")
    if args.sched == "fifo" and args.wait == "yield":
        p.error("--sched fifo needs --wait eventfd: a SCHED_FIFO process that polls never gives its CPU away")
    allowed = os.sched_getaffinity(0)
    if args.cpus and not set(args.cpus) <= allowed:
        p.error(f"--cpus expected CPUs among {sorted(allowed)}, found {args.cpus}")
    if args.sched == "fifo":
        try:  # ask once, here, so a refusal is an error message rather than a dead chain
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except PermissionError:
            p.error("--sched fifo was refused: SCHED_FIFO needs CAP_SYS_NICE")
    placement = os.sched_getaffinity(0), os.sched_getscheduler(0), os.sched_getparam(0)
    pollers = idle_poll.start() if args.idle_poll else []
    shm = mmap.mmap(-1, _WORD * (args.stages + 1))
    efds = [os.eventfd(0, os.EFD_SEMAPHORE) for _ in range(args.stages - 1)]
    out_path = os.path.join(tempfile.mkdtemp(prefix="alphad-floor-"), "lat.npy")
    children = []
    try:
        for k in range(1, args.stages):
            pid = os.fork()
            if pid == 0:  # a child never returns into the caller's code
                code = 0
                try:
                    _stage(k, k == args.stages - 1, args, shm, efds, out_path)
                except BaseException:
                    code = 1
                os._exit(code)
            children.append(pid)
        _place(0, args)
        for i in range(args.ticks):
            time.sleep(0.001)
            struct.pack_into("q", shm, 0, time.monotonic_ns())
            if args.wait == "eventfd":
                os.eventfd_write(efds[0], 1)
            else:
                struct.pack_into("q", shm, _WORD, i + 1)
        failed = [pid for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0]
        children = []
        if failed:
            print(f"floorbench: stage processes {failed} failed", file=sys.stderr)
            return 1
        lat = np.load(out_path)[args.warmup:] / 1e3
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        if os.path.exists(out_path):
            os.unlink(out_path)
        os.rmdir(os.path.dirname(out_path))
        idle_poll.stop(pollers)
        # the first process is the caller's own: give it back its CPUs and policy
        os.sched_setscheduler(0, placement[1], placement[2])
        os.sched_setaffinity(0, placement[0])
    q = np.percentile(lat, [50, 90, 99, 99.9])
    print(json.dumps({"wait": args.wait, "cpus": args.cpus, "sched": args.sched, "idle_poll": args.idle_poll,
                      "stages": args.stages, "hops": args.stages - 1, "ticks": args.ticks,
                      "chain_us": {"p50": round(q[0], 1), "p90": round(q[1], 1), "p99": round(q[2], 1),
                                   "p999": round(q[3], 1)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
