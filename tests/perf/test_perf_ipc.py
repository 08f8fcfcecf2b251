"""pytest-benchmark: the per-record costs of the IPC layer in one process.

Run with ``pytest tests/perf/test_perf_ipc.py --benchmark-enable``; the default
test run executes each once (benchmarks disabled) so they stay correct.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from alphad.ipc.doorbell import Doorbells
from alphad.ipc.dtypes import MD_DTYPE
from alphad.ipc.ring import Ring, ring_pop, ring_push
from alphad.ipc.shm import list_segments


@pytest.fixture
def ring():
    prefix = f"alphad-perf-{os.getpid()}"
    bells = Doorbells.create(f"{prefix}.bells")
    r = Ring.create(f"{prefix}.ring", MD_DTYPE, 1024, ["c"], policy="lossless", bells=bells, doorbell_of={"c": 1})
    yield r, bells
    for p in list_segments(prefix):
        p.unlink()


def test_perf_push_pop_one_record(benchmark, ring):
    r, bells = ring
    rec = np.zeros(1, MD_DTYPE)
    out = np.zeros(1, MD_DTYPE)
    src, dst = rec.view(np.uint8), out.view(np.uint8)

    def hop():
        ring_push(r.h64, r.b8, bells.words, bells.addr, src, 1)
        return ring_pop(r.h64, r.b8, 0, dst, 1)

    assert benchmark(hop) == 1


def test_perf_push_pop_batch_of_64(benchmark, ring):
    r, bells = ring
    rec = np.zeros(64, MD_DTYPE)
    out = np.zeros(64, MD_DTYPE)
    src, dst = rec.view(np.uint8), out.view(np.uint8)

    def hop():
        ring_push(r.h64, r.b8, bells.words, bells.addr, src, 64)
        return ring_pop(r.h64, r.b8, 0, dst, 64)

    assert benchmark(hop) == 64
