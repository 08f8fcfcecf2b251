"""The inference stage's step (gather rows -> ONNX Runtime -> size signals), hot and cold.

``python -m alphad.ops.infer_bench [--card PATH] [--n 3000] [--gaps-us 0,300,1000,4000]`` prints
p50/p99 in µs of
``InferCore.on_rows`` for one row and for a batch of 64, called back to back (hot),
after 1 ms of busy-waiting, and after a 1 ms sleep (the process gives up its CPU, as a
``block`` stage does between spaced ticks).  The gap between the three is the cost of
caches and branch predictors gone cold, which dominates spaced-tick latency.
``--gaps-us`` adds one row per busy-wait gap (batch 1), to show how fast the host
cools the model when nothing else of ours runs.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from alphad.daemon.infer import InferCore, ModelSession
from alphad.ipc.dtypes import FEATURE_DTYPE, SIGNAL_DTYPE
from alphad.kernels.quote_features import FEATURE_NAMES


def measure(f, gap_s: float, spin: bool, n: int) -> dict[str, float]:
    for _ in range(200):
        f()
    ts = np.empty(n)
    for i in range(n):
        if gap_s:
            if spin:
                end = time.perf_counter() + gap_s
                while time.perf_counter() < end:
                    pass
            else:
                time.sleep(gap_s)
        t = time.perf_counter_ns()
        f()
        ts[i] = time.perf_counter_ns() - t
    q = np.percentile(ts / 1e3, [50, 99])
    return {"p50": round(float(q[0]), 2), "p99": round(float(q[1]), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--card", default="data/demo_model/model_card.json")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--gaps-us", type=lambda t: [int(g) for g in t.split(",")], default=[],
                   help="also time batch 1 after each of these busy-wait gaps, e.g. 0,300,1000,4000")
    a = p.parse_args(argv)
    s = ModelSession(a.card, FEATURE_NAMES, provider="cpu", max_batch=64)
    core = InferCore(s, weight_per_unit=0.01, weight_cap=0.02)
    rows = np.zeros(64, FEATURE_DTYPE)
    rows["x"][:, : len(FEATURE_NAMES)] = np.random.default_rng(0).normal(0, 1, (64, len(FEATURE_NAMES)))
    out = np.zeros(64, SIGNAL_DTYPE)
    core.bind(rows, out)
    result = {"providers": s.providers}
    for batch in (1, 64):
        f = lambda: core.on_rows(rows, batch, out, 0)  # noqa: E731
        result[f"batch_{batch}"] = {
            "hot": measure(f, 0, False, a.n),
            "after_1ms_spin": measure(f, 0.001, True, a.n),
            "after_1ms_sleep": measure(f, 0.001, False, a.n),
        }
    f = lambda: core.on_rows(rows, 1, out, 0)  # noqa: E731
    result["batch_1_after_spin_gap_us"] = {g: measure(f, g / 1e6, True, min(a.n, 1000)) for g in a.gaps_us}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
