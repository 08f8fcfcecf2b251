"""Rings across real processes: every policy and wait strategy, SIGKILL mid-stream.

Producer and consumers are separate Python processes (tests/integration/ring_worker.py)
that share nothing but the /dev/shm segments.  At most one process busy-spins at a
time (the machine has two cores).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from alphad.ipc.doorbell import Doorbells
from alphad.ipc.ring import Ring
from alphad.ipc.shm import list_segments

sys.path.insert(0, str(Path(__file__).parent))
from ring_worker import REC  # noqa: E402

WORKER = str(Path(__file__).parent / "ring_worker.py")


class Rig:
    """Creates a ring + doorbells, starts worker processes, cleans everything up."""

    def __init__(self, tmp_path: Path, tag: str):
        self.prefix = f"alphad-rp-{os.getpid()}-{tag}"
        self.tmp = tmp_path
        self.bells = Doorbells.create(f"{self.prefix}.bells")
        self.procs: list[subprocess.Popen] = []

    def ring(self, capacity, consumers, policy, doorbell_of=None) -> Ring:
        return Ring.create(f"{self.prefix}.ring", REC, capacity, consumers, policy=policy, bells=self.bells,
                           doorbell_of=doorbell_of or {})

    def start(self, *args) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, WORKER, *args, "--ring", f"{self.prefix}.ring",
                              "--bells", f"{self.prefix}.bells"], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"  # attached and about to run
        self.procs.append(p)
        return p

    def consumer(self, name, wait, doorbell, last, max_batch=16) -> str:
        out = str(self.tmp / f"{name}.npy")
        self.start("consumer", "--name", name, "--wait", wait, "--doorbell", str(doorbell), "--last", str(last),
                   "--max-batch", str(max_batch), "--out", out, "--timeout", "60")
        return out

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            p.stdout.close()
        for path in list_segments(self.prefix):
            path.unlink()


@pytest.fixture
def rig(tmp_path, request):
    r = Rig(tmp_path, str(abs(hash(request.node.nodeid)) % 10**6))
    yield r
    r.close()


def result(out: str) -> tuple[np.ndarray, int, int]:
    seqs = np.load(out)
    torn, overruns = map(int, Path(out + ".meta").read_text().split())
    return seqs, torn, overruns


def wait_all(procs, timeout=90):
    for p in procs:
        assert p.wait(timeout=timeout) == 0


CASES = [
    # (seed, capacity, consumers' wait strategies, policy, count, producer max batch, pace µs)
    (1, 8, ["block"], "lossless", 20_000, 5, 0),
    (2, 64, ["block", "block", "yield"], "lossless", 30_000, 32, 0),
    (3, 16, ["spin", "block"], "lossless", 20_000, 7, 0),
    (4, 8, ["block", "yield"], "overwrite", 40_000, 8, 0),
    (5, 32, ["spin", "block", "block"], "overwrite", 40_000, 3, 0),
    (6, 4, ["block"], "overwrite", 10_000, 4, 50),
]


@pytest.mark.parametrize("seed,capacity,waits,policy,count,max_batch,pace", CASES,
                         ids=[f"seed{c[0]}-{c[3]}-cap{c[1]}-{'+'.join(c[2])}" for c in CASES])
def test_records_cross_processes_when_policy_and_wait_vary_then_semantics_hold(
        rig, seed, capacity, waits, policy, count, max_batch, pace):
    names = [f"c{i}" for i in range(len(waits))]
    rig.ring(capacity, names, policy, {n: i + 1 for i, (n, w) in enumerate(zip(names, waits)) if w == "block"})
    outs = [rig.consumer(n, w, i + 1, last=count - 1, max_batch=1 + (seed * (i + 3)) % 16)
            for i, (n, w) in enumerate(zip(names, waits))]
    prod = rig.start("producer", "--count", str(count), "--max-batch", str(max_batch), "--seed", str(seed),
                     "--pace-us", str(pace))
    wait_all([prod, *rig.procs[:-1]])
    for out in outs:
        seqs, torn, overruns = result(out)
        assert torn == 0
        assert np.all(np.diff(seqs.astype(np.int64)) > 0), "records out of order or repeated"
        if policy == "lossless":
            assert seqs.tolist() == list(range(count))
            assert overruns == 0
        else:
            assert seqs[-1] == count - 1
            assert overruns == count - len(seqs)


@settings(max_examples=4, deadline=None)
@given(capacity_log2=st.integers(1, 8), max_batch=st.integers(1, 40), n_consumers=st.integers(1, 3),
       count=st.integers(1, 5_000))
def test_lossless_block_when_sizes_random_then_every_record_arrives_once(tmp_path_factory, capacity_log2,
                                                                           max_batch, n_consumers, count):
    rig = Rig(tmp_path_factory.mktemp("hyp"), f"h{capacity_log2}-{max_batch}-{n_consumers}-{count}")
    try:
        names = [f"c{i}" for i in range(n_consumers)]
        rig.ring(1 << capacity_log2, names, "lossless", {n: i + 1 for i, n in enumerate(names)})
        outs = [rig.consumer(n, "block", i + 1, last=count - 1) for i, n in enumerate(names)]
        prod = rig.start("producer", "--count", str(count), "--max-batch", str(max_batch))
        wait_all([prod, *rig.procs[:-1]])
        for out in outs:
            seqs, torn, overruns = result(out)
            assert torn == 0 and overruns == 0
            assert seqs.tolist() == list(range(count))
    finally:
        rig.close()


@pytest.mark.parametrize("policy", ["lossless", "overwrite"])
def test_producer_sigkilled_mid_stream_when_restarted_then_no_torn_record_and_stream_continues(rig, policy):
    rig.ring(64, ["c0"], policy, {"c0": 1})
    total = 300_000
    out = rig.consumer("c0", "block", 1, last=total - 1, max_batch=32)
    kills = 0
    ring = Ring.attach(f"{rig.prefix}.ring", REC, rig.bells)
    while ring.head < total:
        # unbounded producer, killed with SIGKILL at a random moment while it writes
        prod = rig.start("producer", "--count", str(total - ring.head), "--max-batch", "16")
        time.sleep(0.05 + 0.1 * np.random.default_rng(kills).random())
        if prod.poll() is None and kills < 3:
            os.kill(prod.pid, signal.SIGKILL)
            prod.wait()
            kills += 1
        else:
            assert prod.wait(timeout=60) == 0
    assert kills >= 1, "the producer finished before it could be killed; raise `total`"
    consumer = rig.procs[0]
    assert consumer.wait(timeout=60) == 0
    seqs, torn, overruns = result(out)
    assert torn == 0
    assert np.all(np.diff(seqs.astype(np.int64)) > 0)
    assert seqs[-1] == total - 1
    if policy == "lossless":
        assert seqs.tolist() == list(range(total))  # a killed write is redone by the next producer
    else:
        assert overruns == total - len(seqs)
    ring.close()
