"""Per-call and per-row cost of the model's ``run_bound(b)``: ONNX Runtime against the
compiled tree evaluator (``model.runtime: compiled``, :mod:`alphad.daemon.infer.trees`).

    .venv/bin/python -m alphad.ops.tree_bench [CARD] [--rows ROWS.npy] [--calls N]

Rows: the demo replay's real feature rows (config.yaml's feed and feature set), or for another
model card float32 rows from ``--rows``.  The rows are copied into the model input untimed, as
the infer stage gathers them; only the model call is timed.
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np


def demo_rows() -> np.ndarray:
    from alphad.daemon.config import load_config
    from alphad.daemon.feed.sources import load_events
    from alphad.kernels.quote_features import FEATURE_SETS, quote_features_batch

    cfg, base = load_config("config.yaml")
    f = cfg.features
    r = quote_features_batch(load_events(cfg.feed, base, cfg.universe), len(cfg.universe), fast=f.ema_fast_events,
                             slow=f.ema_slow_events, quotes_only=f.trigger == "quote", feature_set=f.set,
                             **f.state_params())
    return r["x"][:, :len(FEATURE_SETS[f.set])].astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    from alphad.daemon.infer.model_card import read_card
    from alphad.daemon.infer.session import ModelSession

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("card", nargs="?", default="data/demo_model/model_card.json", help="model card (default: %(default)s)")
    p.add_argument("--rows", default=None, help=".npy of float32 rows (default: the demo replay's features)")
    p.add_argument("--calls", type=int, default=20000, help="timed calls per case (default: %(default)s)")
    a = p.parse_args(argv)
    rows = np.load(a.rows) if a.rows else demo_rows()
    names = read_card(a.card).feature_names
    sessions = {rt: ModelSession(a.card, names, provider="cpu", max_batch=64, runtime=rt)
                for rt in ("onnxruntime", "compiled")}
    for s in sessions.values():
        s.warm()
    print(f"card {a.card}, {len(rows)} rows, {a.calls} calls per case; µs per call and per row")
    gc.disable()
    try:
        for b in (1, 64):
            for rt, s in sessions.items():
                t = np.empty(a.calls, np.int64)
                run, x = s.run_bound, s.x
                for i in range(a.calls):
                    j = (i * b) % (len(rows) - b)
                    x[:b] = rows[j:j + b]
                    t0 = time.perf_counter_ns()
                    run(b)
                    t[i] = time.perf_counter_ns() - t0
                p50, p99 = np.percentile(t, [50, 99])
                print(f"batch {b:2d}  {rt:12s} per call p50 {p50 / 1e3:7.2f} p99 {p99 / 1e3:7.2f} | "
                      f"per row p50 {p50 / b / 1e3:7.3f}")
    finally:
        gc.enable()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
