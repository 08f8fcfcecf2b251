"""ONNX inference benchmarks (pytest-benchmark; timing only with --benchmark-enable).

The model has the shape ``configs/train_daily.yaml`` ships: 3 LightGBM members
x 35 trees (num_leaves 15 / 7 / 15, one on a feature subset), merged into one
TreeEnsembleRegressor, trained on real daily rows.  The session uses pools of
one thread, sequential execution and IOBinding over preallocated buffers.

Print p50/p99 directly (no pytest)::

    .venv/bin/python tests/perf/test_perf_onnx.py

which also times the DESIGN.md reference shape (200 trees x 30 features).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from alphad.ops import dataset as dsm
from alphad.ops.ensemble import Ensemble, MemberSpec, fit_ensemble
from alphad.ops.export_onnx import BoundRunner, ensemble_to_onnx, make_session

MAX_BATCH = 64
_P = {"verbose": -1, "num_threads": 1, "deterministic": True, "objective": "regression", "learning_rate": 0.08,
      "min_data_in_leaf": 500, "feature_fraction": 0.8, "bagging_fraction": 0.7, "bagging_freq": 1, "lambda_l2": 10.0}
TREND = ("logret_5", "logret_20", "logret_63", "vol_5", "vol_20", "vol_63", "nma_20", "nma_50", "bbwidth_20_2")


def shipped_shape_model(data_dir: Path):
    """(runner, rows): the train_daily.yaml ensemble shape on real rows."""
    bars = dsm.load_daily(data_dir / "daily/us_equities_daily_1999-2021.csv.gz",
                          symbols=["AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "GE", "WMT", "INTC", "HD"],
                          start="2004-01-01", end="2016-12-31")
    ds = dsm.build_dataset(bars, horizon=5, demean=True)
    names = ds.feature_names
    members = [
        MemberSpec("all_features", {**_P, "num_leaves": 15, "seed": 1}, 35),
        MemberSpec("all_features_seed2", {**_P, "num_leaves": 7, "learning_rate": 0.12, "seed": 2}, 35),
        MemberSpec("trend_vol", {**_P, "num_leaves": 15, "seed": 3}, 35, tuple(names.index(f) for f in TREND)),
    ]
    ens = fit_ensemble(members, names, ds.X, ds.y, np.array([0.37, 0.36, 0.27]))
    sess = make_session(ensemble_to_onnx(ens))
    return BoundRunner(sess, len(names), MAX_BATCH), ds.X


def reference_shape_model():
    """DESIGN.md's reference: 200 trees x 30 features (synthetic rows)."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 30)).astype(np.float32)
    y = X[:, :5].sum(axis=1) * 0.1 + rng.normal(size=20000)
    b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "seed": 1}, lgb.Dataset(X, y), 200)
    ens = Ensemble(["f%d" % i for i in range(30)], [MemberSpec("m", {}, 200)], [b],
                   np.array([1.0]))
    return BoundRunner(make_session(ensemble_to_onnx(ens)), 30, MAX_BATCH), X


def micro_batch_stream(runner: BoundRunner, pending: np.ndarray, out: np.ndarray, max_batch: int) -> None:
    """Drain ``pending`` rows in batches of whatever is waiting, up to max_batch."""
    i, n = 0, len(pending)
    while i < n:
        b = min(max_batch, n - i)
        runner.x[:b] = pending[i : i + b]
        out[i : i + b] = runner.run_bound(b)
        i += b


@pytest.fixture(scope="module")
def model(shared_data):
    return shipped_shape_model(shared_data)


@pytest.mark.data
def test_bench_onnx_one_row(benchmark, model):
    runner, X = model
    runner.x[:1] = X[:1]
    y = benchmark(runner.run_bound, 1)
    assert np.isfinite(y).all() and y.shape == (1,)


@pytest.mark.data
def test_bench_onnx_batch_64(benchmark, model):
    runner, X = model
    runner.x[:64] = X[:64]
    y = benchmark(runner.run_bound, 64)
    assert np.isfinite(y).all() and y.shape == (64,)


@pytest.mark.data
def test_bench_onnx_micro_batching_20000_rows(benchmark, model):
    runner, X = model
    pending = np.ascontiguousarray(X[:20000])
    out = np.empty(len(pending), np.float32)
    benchmark(micro_batch_stream, runner, pending, out, MAX_BATCH)
    # Same answers as one big session.run.
    ref = runner.session.run(None, {"input": pending})[0][:, 0]
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-7)


def _pcts(fn, n: int, warm: int = 500) -> tuple[float, float]:
    for _ in range(warm):
        fn()
    ts = np.empty(n)
    for k in range(n):
        t0 = time.perf_counter_ns()
        fn()
        ts[k] = time.perf_counter_ns() - t0
    return float(np.percentile(ts, 50)) / 1e3, float(np.percentile(ts, 99)) / 1e3


def _report(label: str, runner: BoundRunner, X: np.ndarray, n: int = 20000) -> None:
    runner.x[:64] = X[:64]
    p1 = _pcts(lambda: runner.run_bound(1), n)
    p64 = _pcts(lambda: runner.run_bound(64), n // 4)
    pending = np.ascontiguousarray(X[: min(len(X), 100_000)])
    out = np.empty(len(pending), np.float32)
    rates = []
    for _ in range(5):
        t0 = time.perf_counter()
        micro_batch_stream(runner, pending, out, MAX_BATCH)
        rates.append(len(pending) / (time.perf_counter() - t0))
    print(f"{label}")
    print(f"  one row          p50 {p1[0]:7.1f} us   p99 {p1[1]:7.1f} us")
    print(f"  batch of 64      p50 {p64[0]:7.1f} us   p99 {p64[1]:7.1f} us")
    print(f"  micro-batching (B={MAX_BATCH}) over {len(pending):,} rows: median {np.median(rates):,.0f} rows/s")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = Path(os.environ.get("ALPHAD_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    if not (data / "README.md").exists():
        sys.exit(f"real market data expected at {data} was not found (set ALPHAD_SHARED_DATA)")
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, providers in use: CPUExecutionProvider, intra/inter op threads 1")
    r, X = shipped_shape_model(data)
    _report(f"shipped shape: 3 members x 35 trees, {X.shape[1]} features, one merged TreeEnsembleRegressor", r, X)
    r, X = reference_shape_model()
    _report("DESIGN reference shape: 200 trees x 30 features", r, X)
