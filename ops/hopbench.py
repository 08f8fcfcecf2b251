"""One ring hop between two processes, spaced ticks: the floor under tick-to-trade.

``python -m alphad.ops.hopbench [--wait block|spin|yield] [--ticks N] [--rate HZ]``
prints p50/p90/p99/p99.9 of ``consumer's now - producer's t_origin`` in µs.  The
producer stamps CLOCK_MONOTONIC into the record and pushes; the consumer pops
(sleeping on its doorbell under ``block``) and records the difference.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from alphad.ipc.doorbell import Doorbells, Sleeper, arm, disarm, sleep
from alphad.ipc.dtypes import MD_DTYPE
from alphad.ipc.ring import Ring, ring_pending, ring_pop, ring_push
from alphad.ipc.shm import list_segments


def consumer(prefix: str, wait: str, ticks: int, out: str) -> None:
    bells = Doorbells.attach(f"{prefix}.bells")
    ring = Ring.attach(f"{prefix}.ring", MD_DTYPE, bells)
    buf = np.zeros(64, MD_DTYPE)
    u8 = buf.view(np.uint8)
    lat = np.zeros(ticks, np.int64)
    sl = Sleeper(bells, 1)
    got = 0
    print("ready", flush=True)
    h64, b8, words, addr = ring.h64, ring.b8, bells.words, bells.addr
    while got < ticks:
        n = ring_pop(h64, b8, 0, u8, 64)
        if n:
            now = time.monotonic_ns()
            for k in range(n):
                if got < ticks:
                    lat[got] = now - buf[k]["t_origin"]
                    got += 1
            continue
        if wait == "yield":
            os.sched_yield()
        elif wait == "block":
            seq = arm(words, 1)
            if ring_pending(h64, 0) > 0:
                disarm(words, 1)
                continue
            sleep(words, addr, 1, seq, sl.timespec_addr)
    np.save(out, lat)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wait", choices=["spin", "yield", "block"], default="block")
    p.add_argument("--ticks", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--spin-us", type=float, default=200.0, help="producer busy-waits the last SPIN_US before each tick")
    p.add_argument("--idle-poll", action="store_true", help="SCHED_IDLE pollers keep the vCPUs out of HLT")
    p.add_argument("--role", default="producer", help=argparse.SUPPRESS)
    p.add_argument("--prefix", default=f"alphad-hop-{os.getpid()}", help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.role == "consumer":
        consumer(a.prefix, a.wait, a.ticks, a.out)
        return 0
    bells = Doorbells.create(f"{a.prefix}.bells")
    ring = Ring.create(f"{a.prefix}.ring", MD_DTYPE, 1024, ["c"], policy="lossless", bells=bells,
                       doorbell_of={"c": 1} if a.wait == "block" else {})
    out = f"/tmp/{a.prefix}.npy"
    pollers = []
    if a.idle_poll:
        from alphad.daemon.shell import idle_poll

        pollers = idle_poll.start()
    child = subprocess.Popen([sys.executable, "-m", "alphad.ops.hopbench", "--role", "consumer", "--wait", a.wait,
                              "--ticks", str(a.ticks), "--prefix", a.prefix, "--out", out], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        rec = np.zeros(1, MD_DTYPE)
        u8 = rec.view(np.uint8)
        period = 1e9 / a.rate
        t0 = time.monotonic_ns()
        for k in range(a.ticks):
            due = t0 + int(k * period)
            while (d := due - time.monotonic_ns()) > 0:
                time.sleep(d / 1e9) if d > a.spin_us * 1000 else None
            rec[0]["t_origin"] = time.monotonic_ns()
            ring_push(ring.h64, ring.b8, bells.words, bells.addr, u8, 1)
        child.wait(timeout=60)
        lat = np.load(out)[a.ticks // 10:] / 1e3
        q = np.percentile(lat, [50, 90, 99, 99.9])
        print(json.dumps({"wait": a.wait, "idle_poll": a.idle_poll, "rate_hz": a.rate, "ticks": a.ticks,
                          "hop_us": {"p50": round(q[0], 2), "p90": round(q[1], 2), "p99": round(q[2], 2),
                                     "p999": round(q[3], 2), "max": round(float(lat.max()), 2)}}))
    finally:
        if pollers:
            idle_poll.stop(pollers)
        if child.poll() is None:
            child.kill()
        for path in list_segments(a.prefix):
            path.unlink()
        if os.path.exists(out):
            os.unlink(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
