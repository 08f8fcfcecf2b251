"""Plan a study's tasks and run them, serially or on Ray; results land in the cache.

The plan: one model per distinct research config (a variant that changes nothing of the
training shares the baseline's model for the window), one backtest per variant x window.
Serially, models run first, then backtests, in the plan's order.  On Ray each is a task (a
model takes as many CPUs as its LightGBM threads, a backtest one); a backtest takes its model's
result as an argument, so Ray starts it when that model is done.  Either way a task is a pure function of its description (:mod:`.tasks`), which is
why the two give the same numbers (``tests/integration/test_study.py``).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from alphad.ops.study import tasks
from alphad.ops.study.spec import Study


@dataclass
class Plan:
    models: dict[str, dict] = field(default_factory=dict)      # key -> model task
    backtests: dict[str, dict] = field(default_factory=dict)   # key -> backtest task
    model_of: dict[str, str] = field(default_factory=dict)     # backtest key -> model key
    cells: dict[tuple[str, str], str] = field(default_factory=dict)  # (variant, window) -> backtest key


def plan(study: Study, base: Path, cache: Path, *, code: str | None = None) -> Plan:
    code = code or tasks.code_digest()
    daemon_path, train_path = base / study.backtest, base / study.train
    daemon_doc, train_doc = tasks.read_yaml(daemon_path), tasks.read_yaml(train_path)
    p = Plan()
    for window in study.windows:
        for variant in study.all_variants():
            tdoc = tasks.train_doc(train_doc, variant, window)
            select = None
            if variant.select is not None:
                select = {"scheme": variant.select.scheme, "candidates": [dict(c) for c in variant.select.candidates],
                          "n_splits": variant.select.n_splits}
            mkey = tasks.task_key("model", tdoc, train_path.parent, code, select, outputs=cache)
            p.models.setdefault(mkey, {"key": mkey, "dir": str(cache / "models" / mkey), "doc": tdoc,
                                       "base": str(train_path.parent), "select": select})
            bdoc = tasks.backtest_doc(daemon_doc, variant, window, p.models[mkey]["dir"])
            bkey = tasks.task_key("backtest", bdoc, daemon_path.parent, code, mkey, outputs=cache)
            p.backtests[bkey] = {"key": bkey, "path": str(cache / "runs" / f"{bkey}.json"), "doc": bdoc,
                                 "base": str(daemon_path.parent), "periods_per_year": 252}
            p.model_of[bkey] = mkey
            p.cells[(variant.name, window.name)] = bkey
    return p


class Progress:
    """One line per finished task on stderr: how many, which, cached or how long."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total, self.done, self.quiet, self.t0 = total, 0, quiet, time.perf_counter()

    def __call__(self, what: str, result: dict) -> None:
        self.done += 1
        if self.quiet:
            return
        took = "cached" if result.get("cached") else \
            f"{result.get('train_s', result.get('backtest_s', result.get('wall_s', 0))):.1f} s"
        note = " REFUSED" if "refused" in result else ""
        print(f"[study {time.strftime('%H:%M:%S')}] {self.done}/{self.total} {what}: {took}{note} "
              f"({time.perf_counter() - self.t0:.0f} s elapsed)", file=sys.stderr, flush=True)


def _names(p: Plan) -> dict[str, str]:
    """Each backtest key's ``variant @ window``, for the progress lines."""
    return {key: f"backtest {v} @ {w}" for (v, w), key in p.cells.items()}


def run_serial(p: Plan, progress: Progress) -> tuple[dict, dict]:
    models, runs = {}, {}
    for key, t in p.models.items():
        models[key] = tasks.run_model(t)
        progress(f"model {key[:8]}", models[key])
    names = _names(p)
    for key, t in p.backtests.items():
        runs[key] = tasks.run_backtest(t, models[p.model_of[key]])
        progress(names[key], runs[key])
    return models, runs


def run_ray(p: Plan, progress: Progress, *, address: str | None, workers: int | None) -> tuple[dict, dict]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("Ray is not installed: pip install 'alphad[study]' (or run without --ray)") from None
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        kwargs["address"] = address
    elif workers:
        kwargs["num_cpus"] = workers
    # local workers run this interpreter, which imports alphad; a cluster's nodes need alphad
    # installed and the data and cache folders at the same paths (README: alphad study)
    ray.init(**kwargs)
    try:
        # a model task takes the CPUs its LightGBM threads use (model.num_threads), so two
        # trainings never share one core pair; a backtest is one thread
        cpus = int(ray.cluster_resources().get("CPU", 1))
        model_fn = ray.remote(max_retries=0)(tasks.run_model)
        backtest_fn = ray.remote(num_cpus=1, max_retries=0)(tasks.run_backtest)
        model_refs = {key: model_fn.options(num_cpus=max(1, min(cpus, int(t["doc"]["model"].get("num_threads", 1)))))
                      .remote(t) for key, t in p.models.items()}
        pending = {ref: ("model", key) for key, ref in model_refs.items()}
        for key, t in p.backtests.items():
            pending[backtest_fn.remote(t, model_refs[p.model_of[key]])] = ("backtest", key)
        names = _names(p)
        models, runs = {}, {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            kind, key = pending.pop(ready[0])
            result = ray.get(ready[0])
            if kind == "model":
                models[key] = result
                progress(f"model {key[:8]}", result)
            else:
                runs[key] = result
                progress(names[key], result)
        return models, runs
    finally:
        ray.shutdown()
