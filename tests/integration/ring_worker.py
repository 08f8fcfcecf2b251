"""A producer or consumer process for the cross-process ring tests.

producer: writes records ``seq = ring position`` starting at the ring's current
head (so a restarted producer continues where the killed one stopped), each
record's payload words all derived from ``seq`` so a torn copy is detectable.
consumer: reads until it has seen ``seq == last`` or times out, checking every
record, and saves what it saw to ``--out`` (.npy) plus its overrun count.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from alphad.ipc.doorbell import Doorbells, Sleeper, arm, disarm, sleep
from alphad.ipc.ring import Ring, ring_pending, ring_pop, ring_push

#: 8 payload words: a torn read mixes words of two different records.
REC = np.dtype([("t_origin", "i8"), ("seq", "u8"), ("w", "u8", (8,))], align=True)
MULT = np.uint64(0x9E3779B97F4A7C15)


def fill(recs: np.ndarray, start: int) -> None:
    recs["seq"] = np.arange(start, start + len(recs), dtype=np.uint64)
    for j in range(8):
        recs["w"][:, j] = recs["seq"] * MULT + np.uint64(j)


def intact(recs: np.ndarray) -> np.ndarray:
    ok = np.ones(len(recs), bool)
    for j in range(8):
        ok &= recs["w"][:, j] == recs["seq"] * MULT + np.uint64(j)
    return ok


def producer(a) -> int:
    bells = Doorbells.attach(a.bells)
    ring = Ring.attach(a.ring, REC, bells)
    ring.claim_producer()
    rng = np.random.default_rng(a.seed)
    buf = np.zeros(a.max_batch, REC)
    pos = ring.head
    end = pos + a.count if a.count > 0 else 2**62
    print("ready", flush=True)
    while pos < end:
        n = int(min(rng.integers(1, a.max_batch + 1), end - pos))
        fill(buf[:n], pos)
        done = 0
        while done < n:
            done += ring_push(ring.h64, ring.b8, bells.words, bells.addr, buf[done:n].view(np.uint8), n - done)
            if done < n:
                os.sched_yield()
        pos += n
        if a.pace_us:
            time.sleep(a.pace_us * 1e-6 * rng.random())
    return 0


def consumer(a) -> int:
    bells = Doorbells.attach(a.bells)
    ring = Ring.attach(a.ring, REC, bells)
    ci = ring.consumer_index(a.name)
    ring.claim(ci)
    sleeper = Sleeper(bells, a.doorbell, timeout_ns=20_000_000) if a.wait == "block" else None
    buf = np.zeros(a.max_batch, REC)
    seen = []
    torn = 0
    deadline = time.monotonic() + a.timeout
    print("ready", flush=True)
    while time.monotonic() < deadline:
        n = ring_pop(ring.h64, ring.b8, ci, buf.view(np.uint8), a.max_batch)
        if n:
            got = buf[:n]
            torn += int((~intact(got)).sum())
            seen.append(got["seq"].copy())
            if int(got["seq"][-1]) >= a.last:
                break
            continue
        if a.wait == "yield":
            os.sched_yield()
        elif a.wait == "block":
            seq = arm(bells.words, a.doorbell)
            if ring_pending(ring.h64, ci) > 0:
                disarm(bells.words, a.doorbell)
                continue
            sleep(bells.words, bells.addr, a.doorbell, seq, sleeper.timespec_addr)
    seqs = np.concatenate(seen) if seen else np.zeros(0, np.uint64)
    np.save(a.out, seqs)
    with open(a.out + ".meta", "w") as f:
        f.write(f"{torn} {ring.overruns(ci)}\n")
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["producer", "consumer"])
    p.add_argument("--ring", required=True)
    p.add_argument("--bells", required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--pace-us", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="c0")
    p.add_argument("--wait", choices=["spin", "yield", "block"], default="block")
    p.add_argument("--doorbell", type=int, default=0)
    p.add_argument("--last", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--out", default="")
    a = p.parse_args()
    return producer(a) if a.role == "producer" else consumer(a)


if __name__ == "__main__":
    sys.exit(main())
