"""Feature-kernel benchmarks (pytest-benchmark; timing only with ``--benchmark-enable``).

Benchmarks, not timed tests: nothing here asserts on time.  The figures issue 3 asks
for, as percentiles, come from running this file as a script::

    .venv/bin/python tests/perf/test_perf_kernels.py [--rounds N]

Streaming update of the ``full`` set (29 columns), two forms:

* **stage loop** (the issue's target): ``update_row`` inside an ``@njit`` loop, as the
  features stage runs its kernels (one compiled call per batch, no Python per event).
  Each event is timed with the in-njit CLOCK_MONOTONIC (``alphad.ipc.sync.monotonic_ns``)
  over the real daily bars of all 61 symbols of ``daily/us_equities_daily_1999-2021``,
  interleaved by date (one state row per instrument, float32 output rows like the
  features ring).  Events inside a symbol's warm-up are left out; the clock's own cost
  (two back-to-back reads) is printed beside it.
* **Python dispatch**: one ``update_row`` call from Python per event, timed with
  ``time.perf_counter_ns`` around the call; the difference is Numba's dispatcher.

Cold start with a warm Numba cache, two definitions:

* **features stage process**: what ``alphad run`` starts: a fresh
  ``python -m alphad.daemon.cli stage --process features`` (five-process topology) on
  segments created by the real supervisor code, from spawn until the stage's READY word
  is set in the control block (imports, config, ring attach, every kernel warmed).
  Measured twice: with the environment as it is (where ``PYTHONDONTWRITEBYTECODE`` is set,
  every alphad module is byte-compiled at each start) and with a bytecode cache, as a
  deployed daemon has.
* **kernels only** (the original figure): a fresh ``python -c`` that imports the kernels
  and calls each once.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from alphad.ipc.sync import monotonic_ns
from alphad.kernels import book as bk
from alphad.kernels import feature_sets as fsets

SEED = 20240809
REPO = Path(__file__).resolve().parents[2]
DAILY = "daily/us_equities_daily_1999-2021.csv.gz"
COLD_START = (
    "import numpy as np\n"
    "from alphad.kernels import feature_sets as f, book as b, regime as r\n"
    "s = f.get_feature_set('full'); st = s.new_state(); out = np.empty(32, np.float32)\n"
    "f.update_row(s.plan, st, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, out)\n"
    "k, q, m = b.new_book(64)\n"
    "b.load_snapshot(k, q, m, np.zeros(1, np.int8), np.ones(1, np.int64), np.ones(1), 1)\n"
    "b.apply_diff(k, q, m, 2, 2, np.zeros(1, np.int8), np.ones(1, np.int64), np.ones(1), 0, 1)\n"
    "b.top_levels(k, q, m, 0.01, np.empty((4, 5)))\n"
    "g = r.garch_new(0.02, 0.1, 0.85); r.garch_update(g, 0.1)\n"
    "h = r.hmm_new(3); p = np.full(3, 1 / 3); A = np.full((3, 3), 1 / 3)\n"
    "r.hmm_update(h, p, A, np.zeros((3, 1)), np.ones((3, 1)), np.zeros(1))\n"
    "r.vix_sizing(20.0, r.VIX_SIZING, 45.0); r.corr_update(r.corr_new(2, 3), np.zeros(2))\n"
)


def _bars(n: int):
    rng = np.random.default_rng(SEED)
    c = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    spread = np.abs(rng.normal(0.0, 0.005, n)) * c
    return c, c + spread, c - spread, c, rng.uniform(1e5, 1e6, n)


def _stream_setup():
    fs = fsets.get_feature_set("full")
    o, h, l, c, v = _bars(5000)
    state = fs.new_state()
    out = np.empty(32, np.float32)  # the features ring row
    for i in range(200):  # past warm-up so every branch is the steady-state one
        fsets.update_row(fs.plan, state, o[i], h[i], l[i], c[i], v[i], 0.0, out)
    return fs, (o, h, l, c, v), state, out


# -- streaming inside an njit loop over real daily bars ------------------------------------------


def daily_events(data_dir: Path):
    """All symbols' adjusted daily bars as one event stream in (date, symbol) order.

    Returns ``(inst, o, h, l, c, v, session, rank, n_symbols)``; ``rank`` is the bar's
    index within its symbol (for leaving out warm-up).
    """
    import pandas as pd  # the benchmark's data loader only

    df = pd.read_csv(data_dir / DAILY).sort_values(["date", "symbol"], kind="stable")
    f = (df["adjusted_close"] / df["close"]).to_numpy()
    o = df["open"].to_numpy() * f
    c = df["adjusted_close"].to_numpy()
    # adjusting can break h >= max(o, c) by an ulp (as in tests/unit/test_kernels_indicators.py)
    h = np.maximum(df["high"].to_numpy() * f, np.maximum(o, c))
    l = np.minimum(df["low"].to_numpy() * f, np.minimum(o, c))
    v = df["volume"].to_numpy(dtype=np.float64)
    session = df["date"].str.replace("-", "").astype(np.float64).to_numpy()
    codes, symbols = pd.factorize(df["symbol"])
    rank = df.groupby("symbol").cumcount().to_numpy()
    return codes.astype(np.int64), o, h, l, c, v, session, rank, len(symbols)


@njit
def _stage_loop_timed(plan, state, inst, o, h, l, c, v, session, out, lat):
    # the features stage's shape: one compiled loop over a batch of events, one state row
    # and one output row per instrument
    for k in range(inst.shape[0]):
        i = inst[k]
        t0 = monotonic_ns()
        fsets.update_row(plan, state[i], o[k], h[k], l[k], c[k], v[k], session[k], out[i])
        lat[k] = monotonic_ns() - t0


@njit
def _clock_floor(lat):
    for k in range(lat.shape[0]):
        t0 = monotonic_ns()
        lat[k] = monotonic_ns() - t0


def stage_loop_latency(events, name: str = "full"):
    """Per-event ns of ``update_row`` in the njit loop, steady state only; and the last rows."""
    inst, o, h, l, c, v, session, rank, n_sym = events
    fs = fsets.get_feature_set(name)
    state = fs.new_state(n_sym)
    out = np.zeros((n_sym, 32), np.float32)
    lat = np.empty(inst.shape[0], np.int64)
    _stage_loop_timed(fs.plan, state, inst, o, h, l, c, v, session, out, lat)
    return lat[rank >= fs.lookback], out[:, : len(fs.names)]


@pytest.mark.data
def test_perf_streaming_full_set_in_njit_stage_loop(benchmark, shared_data):
    events = daily_events(shared_data)
    stage_loop_latency(events)  # compile outside the measurement
    lat, rows = benchmark.pedantic(stage_loop_latency, args=(events,), rounds=1, iterations=1)
    p50, p99, p999 = np.percentile(lat / 1e3, [50, 99, 99.9])
    benchmark.extra_info.update(p50_us=p50, p99_us=p99, p999_us=p999, events=int(lat.shape[0]))
    # every symbol is past the full set's warm-up at the end of the file: all columns are numbers
    assert lat.shape[0] > 300_000 and np.isfinite(rows).all()


def test_perf_streaming_full_set_update(benchmark):
    fs, (o, h, l, c, v), state, out = _stream_setup()
    i = [200]

    def one_event():
        j = i[0] % 5000
        i[0] += 1
        fsets.update_row(fs.plan, state, o[j], h[j], l[j], c[j], v[j], 0.0, out)

    benchmark(one_event)
    assert np.isfinite(out[: len(fs.names)]).all()


def test_perf_batch_full_set(benchmark):
    fs = fsets.get_feature_set("full")
    bars = _bars(50_000)
    x = benchmark(fs.compute, *bars)[1]
    assert x.shape == (50_000, len(fs.names))


# -- cold start ---------------------------------------------------------------------------------


class StageRig:
    """Shared-memory segments of a five-process daemon, for starting single stage processes.

    Uses the repository's config.yaml with its own shm prefix and journal directory, and the
    supervisor's own segment set-up; the caller starts and stops the stage processes.
    """

    def __init__(self, tmp: Path):
        import msgspec

        from alphad.daemon.config import load_config
        from alphad.daemon.supervisor.supervisor import Supervisor

        cfg = msgspec.yaml.decode((REPO / "config.yaml").read_bytes())
        cfg["feed"]["path"] = str(REPO / cfg["feed"]["path"])
        cfg["model"]["card"] = str(REPO / cfg["model"]["card"])
        cfg["topology"]["name"] = "five"
        cfg["shm"]["prefix"] = f"alphad-coldstart-{os.getpid()}"
        cfg["journal"]["dir"] = str(tmp / "journal")
        self.config = tmp / "config.yaml"
        self.config.write_bytes(msgspec.yaml.encode(cfg))
        loaded, base = load_config(self.config)
        self.supervisor = Supervisor(loaded, self.config, base)
        self.supervisor.create_segments()

    def time_to_ready(self, process: str = "features", env: dict | None = None, timeout_s: float = 60.0) -> float:
        """Seconds from spawning ``alphad stage --process <process>`` to its READY word."""
        from alphad.ipc.control import S_READY, STAGE_INDEX

        control, stage = self.supervisor.control, STAGE_INDEX[process]
        control.set_stage(stage, S_READY, 0)
        argv = [sys.executable, "-m", "alphad.daemon.cli", "stage", "--config", str(self.config),
                "--process", process]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        try:
            while not control.stage(stage, S_READY):
                if proc.poll() is not None:
                    raise RuntimeError(f"stage {process} exited with code {proc.returncode} before READY")
                if time.perf_counter() - t0 > timeout_s:
                    raise RuntimeError(f"stage {process} not READY within {timeout_s} s")
                time.sleep(0.001)
            return time.perf_counter() - t0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    def close(self) -> None:
        self.supervisor.remove_segments()


def stage_env(bytecode_cache: Path | None) -> dict:
    """The supervisor's child environment; optionally with a writable bytecode cache."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    if bytecode_cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)  # keeps .pyc files out of the tree
    return env


def test_perf_features_stage_cold_start(benchmark, tmp_path):
    from alphad.ipc import feature_list
    from alphad.ipc.shm import Segment
    from alphad.kernels.quote_features import FEATURE_SETS

    rig = StageRig(tmp_path)
    try:
        rig.time_to_ready("features", stage_env(None))  # make sure the Numba cache is warm
        benchmark.pedantic(rig.time_to_ready, args=("features", stage_env(None)), rounds=1, iterations=1)
        # the process timed was a working features stage: it published its feature list
        seg = Segment.attach(rig.supervisor.names["feature_list"])
        try:
            published = feature_list.read(seg, timeout_s=1.0)
        finally:
            seg.close()
    finally:
        rig.close()
    assert published == (rig.supervisor.cfg.features.set, list(FEATURE_SETS[rig.supervisor.cfg.features.set]))


def test_perf_cold_start_with_warm_cache(benchmark):
    subprocess.run([sys.executable, "-c", COLD_START], check=True)  # make sure the cache is warm
    benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", COLD_START], check=True),
                       rounds=1, iterations=1)


def test_perf_book_diff(benchmark):
    keys, qty, meta = bk.new_book(4096)
    px = np.arange(10_000, 11_000, dtype=np.int64)
    bk.load_snapshot(keys, qty, meta, (px >= 10_500).astype(np.int8), px, np.ones(1000), 1)
    side = np.array([0, 1], np.int8)
    q = np.array([2.0, 3.0])
    uid = [2]

    def one_diff():
        u = uid[0]
        uid[0] += 1
        lv = np.array([10_499 - u % 7, 10_500 + u % 5], np.int64)
        return bk.apply_diff(keys, qty, meta, u, u, side, lv, q, 0, 2)

    assert benchmark(one_diff) == bk.APPLIED


# -- the script ---------------------------------------------------------------------------------


def _pct(a, qs=(50, 99)):
    return tuple(np.percentile(a, q) for q in qs)


def _runs(fn, n: int) -> np.ndarray:
    fn()  # the first start may fill a cache; not counted
    return np.array([fn() for _ in range(n)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=12, help="fresh processes per cold-start figure")
    ap.add_argument("--data", type=Path, help="the shared data folder (default: $ALPHAD_SHARED_DATA or ../shared/data)",
                    default=Path(os.environ.get("ALPHAD_SHARED_DATA", REPO.parent / "shared" / "data")))
    args = ap.parse_args(argv)

    events = daily_events(args.data)
    stage_loop_latency(events)  # compile and warm
    runs = [stage_loop_latency(events)[0] for _ in range(5)]
    per_run = np.array([np.percentile(r / 1e3, [50, 99, 99.9]) for r in runs])
    p50, p99, p999 = np.median(per_run, axis=0)
    floor = np.empty(200_000, np.int64)
    _clock_floor(floor)
    _clock_floor(floor)
    n_sym = events[-1]
    print(f"streaming full set (29 features), update_row in an njit stage loop, {n_sym} real daily series, "
          f"{runs[0].shape[0]} steady-state events (median of 5 passes): "
          f"p50 {p50:.3f} us  p99 {p99:.3f} us  p99.9 {p999:.3f} us  "
          f"(in-njit clock read pair: p50 {np.percentile(floor, 50) / 1e3:.3f} us)")

    fs, (o, h, l, c, v), state, out = _stream_setup()
    upd, plan = fsets.update_row, fs.plan
    lat = np.empty(50_000)
    for k in range(lat.shape[0]):
        j = 200 + k % 4800
        t0 = time.perf_counter_ns()
        upd(plan, state, o[j], h[j], l[j], c[j], v[j], 0.0, out)
        lat[k] = time.perf_counter_ns() - t0
    p50, p99 = _pct(lat / 1e3)
    print(f"streaming full set, one update_row call from Python per event (Python dispatch, synthetic bars): "
          f"p50 {p50:.2f} us  p99 {p99:.2f} us")

    bars = _bars(200_000)
    fs.compute(*bars)
    rates = []
    for _ in range(15):
        t0 = time.perf_counter()
        x = fs.compute(*bars)[1]
        rates.append(x.size / (time.perf_counter() - t0) / 1e6)
    # throughput: "p50/p99" over runs, p99 taken on the slow side
    print(f"batch full set: p50 {np.percentile(rates, 50):.1f} M values/s  "
          f"p99 (slow side) {np.percentile(rates, 1):.1f} M values/s")

    with tempfile.TemporaryDirectory() as tmp:
        rig = StageRig(Path(tmp))
        try:
            for label, cache in (("environment as is", None), ("with a bytecode cache", Path(tmp) / "pyc")):
                env = stage_env(cache)
                t = _runs(lambda: rig.time_to_ready("features", env), args.rounds)
                bytecode = "no .pyc written" if env.get("PYTHONDONTWRITEBYTECODE") else ".pyc cached"
                print(f"cold start, features stage process (spawn -> READY, warm Numba cache, {label}: {bytecode}): "
                      f"median {np.median(t):.3f} s  min {t.min():.3f} s  max {t.max():.3f} s  (n={len(t)})")
        finally:
            rig.close()

    t = _runs(lambda: _timed_run([sys.executable, "-c", COLD_START]), args.rounds)
    print(f"cold start, kernels only (fresh python, import + call every kernel once, warm Numba cache): "
          f"median {np.median(t):.3f} s  min {t.min():.3f} s  max {t.max():.3f} s  (n={len(t)})")
    t = _runs(lambda: _timed_run([sys.executable, "-c", "import numpy, numba"]), args.rounds)
    print(f"  (python + import numpy, numba alone: median {np.median(t):.3f} s)")


def _timed_run(argv) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
