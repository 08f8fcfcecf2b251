"""The inference stage's step (gather rows -> ONNX Runtime -> size signals), hot and cold.

``python -m alphad.ops.infer_bench [--card PATH] [--n 3000] [--gaps-us 0,300,1000,4000]`` prints
p50/p99 in µs of
``InferCore.on_rows`` for one row and for a batch of 64, called back to back (hot),
after 1 ms of busy-waiting, and after a 1 ms sleep (the process gives up its CPU, as a
``block`` stage does between spaced ticks).  The gap between the three is the cost of
caches and branch predictors gone cold, which dominates spaced-tick latency.
``--gaps-us`` adds one row per busy-wait gap (batch 1), to show how fast the host
cools the model when nothing else of ours runs.  ``--run-paths`` times, interleaved
call by call, the public ``InferenceSession.run_with_iobinding`` against the native
entry point with a preallocated RunOptions that the stage uses (``BoundRunner``).
``--keep-warm-us N`` adds a row for the 1 ms sleep cut into N µs slices with a
keep-warm rehearsal (``InferCore.rehearse``) after each, as ``topology.infer_keep_warm_us``
does in the daemon.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from alphad.daemon.infer.core import InferCore
from alphad.daemon.infer.session import ModelSession
from alphad.ipc.dtypes import FEATURE_DTYPE, SIGNAL_DTYPE
from alphad.kernels.quote_features import FEATURE_NAMES


def measure(f, gap_s: float, spin: bool, n: int, between=None) -> dict[str, float]:
    for _ in range(200):
        f()
    ts = np.empty(n)
    for i in range(n):
        if between is not None:
            between()
        elif gap_s:
            if spin:
                end = time.perf_counter() + gap_s
                while time.perf_counter() < end:
                    pass
            else:
                time.sleep(gap_s)
        t = time.perf_counter_ns()
        f()
        ts[i] = time.perf_counter_ns() - t
    return percentiles_us(ts)


def percentiles_us(ts_ns: np.ndarray) -> dict[str, float]:
    q = np.percentile(ts_ns / 1e3, [50, 99])
    return {"p50": round(float(q[0]), 2), "p99": round(float(q[1]), 2)}


def compare_run_paths(s: ModelSession, n: int) -> dict[str, dict[str, float]]:
    """Batch-1 runs through each path, alternating call by call so drift hits both alike."""
    import onnxruntime as ort

    io = s.session.io_binding()  # the public path, over the very same buffers
    io.bind_ortvalue_input(s.input_name, ort.OrtValue.ortvalue_from_numpy(s.x[:1]))
    io.bind_ortvalue_output(s.output_name, ort.OrtValue.ortvalue_from_numpy(s.y[:1]))
    paths = {"public_run_with_iobinding": lambda: s.session.run_with_iobinding(io),
             "native_preallocated_run_options": lambda: s.run_bound(1)}
    ts = {k: np.empty(n) for k in paths}
    for i in range(n):
        for k, f in paths.items():
            t = time.perf_counter_ns()
            f()
            ts[k][i] = time.perf_counter_ns() - t
    return {k: percentiles_us(v) for k, v in ts.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--card", default="data/demo_model/model_card.json")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--gaps-us", type=lambda t: [int(g) for g in t.split(",")], default=[],
                   help="also time batch 1 after each of these busy-wait gaps, e.g. 0,300,1000,4000")
    p.add_argument("--keep-warm-us", type=int, default=0, metavar="N",
                   help="also time batch 1 after a 1 ms sleep with a rehearsal every N µs")
    p.add_argument("--run-paths", action="store_true",
                   help="also compare the public run_with_iobinding with the stage's native call (batch 1)")
    a = p.parse_args(argv)
    s = ModelSession(a.card, FEATURE_NAMES, provider="cpu", max_batch=64)
    core = InferCore(s, weight_per_unit=0.01, weight_cap=0.02)
    rows = np.zeros(64, FEATURE_DTYPE)
    rows["x"][:, : len(FEATURE_NAMES)] = np.random.default_rng(0).normal(0, 1, (64, len(FEATURE_NAMES)))
    out = np.zeros(64, SIGNAL_DTYPE)
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
    if a.keep_warm_us > 0:
        scratch_out = np.zeros(1, SIGNAL_DTYPE)
        slices = max(1, 1000 // a.keep_warm_us)

        def kept_warm_sleep():
            for _ in range(slices - 1):
                time.sleep(a.keep_warm_us / 1e6)
                core.rehearse(rows, scratch_out)
            time.sleep(a.keep_warm_us / 1e6)

        result[f"batch_1_after_1ms_sleep_kept_warm_every_{a.keep_warm_us}us"] = measure(
            f, 0, False, min(a.n, 1000), between=kept_warm_sleep)
    if a.run_paths:
        result["run_paths_batch_1"] = compare_run_paths(s, a.n * 5)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
