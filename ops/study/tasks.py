"""The study's two kinds of task, each a pure function of its description, cached by a hash.

* **model**: ``alphad train``'s pipeline (:func:`alphad.ops.train_cli.train`) on a research
  config whose ``data.end`` is the window's ``train_end``, after the variant's overrides; with
  ``select``, the members' LightGBM parameters are chosen by cross-validation first.
* **backtest**: ``alphad backtest``'s loop (:func:`alphad.daemon.shell.backtest.backtest`) on the
  daemon config with the variant's overrides, the window's ``feed.trade_from``/``trade_until``
  and the model's card and regimes; the in-sample guard applies as in ``alphad backtest``.

A task's key hashes everything that determines its result: the resolved config (as JSON), the
contents of every file the config names, and the source of the packages that compute it
(:func:`code_digest`).  A task whose result file exists under the cache is not run again.
Results are written to a temporary name and renamed, so a killed study leaves no half result.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from alphad.ops.backtest_report import finite
from alphad.ops.study.spec import Variant, Window, set_dotted

#: The packages whose source decides a run's numbers; the study's report and statistics do not.
CODE_DIRS = ("daemon", "kernels", "ipc", "ops")
CODE_EXCLUDED = {"ops/study/report.py", "ops/study/stats.py", "ops/study/runner.py", "ops/study_cli.py"}
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def code_digest(root: Path | None = None) -> str:
    """sha256 over the package's ``.py`` files that compute results (path and content)."""
    root = root or Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for d in CODE_DIRS:
        for p in sorted((root / d).rglob("*.py")):
            rel = p.relative_to(root).as_posix()
            if rel in CODE_EXCLUDED or "/tests/" in rel:
                continue
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


def _files_named(doc: Any, base: Path, outputs: Path | None) -> dict[str, str]:
    """The digest of every existing file a string in ``doc`` names (relative to ``base``), but
    the study's own outputs (under ``outputs``: a model's files are keyed by the model's key)."""
    out: dict[str, str] = {}
    if isinstance(doc, dict):
        for v in doc.values():
            out.update(_files_named(v, base, outputs))
    elif isinstance(doc, list):
        for v in doc:
            out.update(_files_named(v, base, outputs))
    elif isinstance(doc, str) and ("/" in doc or "." in doc) and len(doc) < 4096:
        p = Path(doc) if Path(doc).is_absolute() else base / doc
        with contextlib.suppress(OSError):
            if p.is_file() and not (outputs is not None and p.resolve().is_relative_to(outputs)):
                out[str(p.resolve())] = file_digest(p)
    return out


def task_key(kind: str, doc: dict, base: Path, code: str, extra: Any = None, *, outputs: Path | None = None) -> str:
    files = _files_named(doc, base, outputs.resolve() if outputs is not None else None)
    blob = json.dumps({"kind": kind, "doc": doc, "files": files, "code": code, "extra": extra},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def read_yaml(path: Path) -> dict:
    from alphad.daemon.config_base import load_yaml

    return load_yaml(path.read_bytes())


# -- the configs of one variant x window ------------------------------------------------------------


def train_doc(train: dict, variant: Variant, window: Window) -> dict:
    """The research config of ``variant``'s model for ``window``."""
    from alphad.kernels.feature_sets import FEATURE_SETS, column_names

    doc = copy.deepcopy(train)
    set_dotted(doc, "data.end", window.train_end)
    for key, value in variant.train.items():
        set_dotted(doc, key, value)
    if variant.drop_features:
        every = list(column_names(FEATURE_SETS[doc.get("feature_set", "daily")]))
        unknown = [f for f in variant.drop_features if f not in every]
        if unknown:
            raise ValueError(f"variants[{variant.name}].drop_features: {unknown} are not features of the set; "
                             f"expected some of {every}")
        for m in doc["model"]["members"]:
            m["features"] = [f for f in (m.get("features") or every) if f not in variant.drop_features]
    return doc


def backtest_doc(daemon: dict, variant: Variant, window: Window, model_dir: str) -> dict:
    """The daemon config of ``variant`` in ``window`` trading the model in ``model_dir``."""
    doc = copy.deepcopy(daemon)
    for key, value in variant.backtest.items():
        set_dotted(doc, key, value)
    set_dotted(doc, "feed.trade_from", window.trade_from)
    if window.trade_until:
        set_dotted(doc, "feed.trade_until", window.trade_until)
    set_dotted(doc, "model.card", str(Path(model_dir) / "model_card.json"))
    if isinstance(doc.get("features"), dict) and isinstance(doc["features"].get("regime"), dict):
        set_dotted(doc, "features.regime.params", str(Path(model_dir) / "regimes.json"))
    # the backtest runs no supervisor: nothing to journal, serve or scrape
    doc.pop("journal", None)
    doc.pop("metrics", None)
    return doc


# -- running them ------------------------------------------------------------------------------------


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True, default=_plain))
    os.replace(tmp, path)


def _plain(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON: {type(x).__name__}")


@contextlib.contextmanager
def _output_to(log: Path):
    """The task's prints (training's progress, the feed's counts) into ``log``, not the terminal."""
    import sys

    with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            yield
        finally:
            sys.stdout.flush()


def run_model(task: dict) -> dict:
    """Train one model (``task``: ``key``, ``dir``, ``doc``, ``base``, ``select``); returns the
    card's figures, or ``{"refused": ...}`` when a training gate refused it."""
    out = Path(task["dir"])
    done = out / "done.json"
    if done.is_file():
        return json.loads(done.read_text()) | {"cached": True}
    import msgspec

    from alphad.ops import train_cli

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = Path(task["base"])
    doc = task["doc"]
    chosen = None
    with _output_to(out / "train.log"):
        cfg = _train_config(doc, out)
        if task.get("select"):
            from alphad.ops.study import selection

            sel = task["select"]
            result = selection.select_params(cfg, [dict(c) for c in sel["candidates"]], sel["scheme"],
                                             n_splits=sel["n_splits"], base=base)
            chosen = {"params": result.chosen, "scores": result.scores, "scheme": sel["scheme"]}
            cfg = selection.train_config_for(cfg, result.chosen)
        code = train_cli.train(cfg, base, out, overwrite=True, progress=lambda m: print(m, flush=True),
                               created_by=f"alphad study (task {task['key']})")
    result: dict = {"key": task["key"], "dir": str(out), "train_s": round(time.perf_counter() - t0, 2)}
    if chosen is not None:
        result["selection"] = finite(msgspec.to_builtins(chosen))
    if code != 0:
        failed = out / "gates_failed.json"
        result["refused"] = json.loads(failed.read_text()) if failed.is_file() else f"exit {code}"
    else:
        card = json.loads((out / "model_card.json").read_text())
        result.update({k: card.get(k) for k in ("oos_ic_mean", "oos_ic_tstat", "is_ic_mean", "ensemble_weights",
                                                "train_start", "train_end", "n_rows", "feature_names")})
    _write_json(done, result)
    return result


def _train_config(doc: dict, out: Path):
    """The research config ``doc`` decoded as ``alphad train`` decodes its file (kept beside the model)."""
    from alphad.ops import train_cli

    path = out / "train.yaml"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))  # JSON is YAML
    return train_cli.load_config(path)


def run_backtest(task: dict, model: dict) -> dict:
    """Backtest one variant x window (``task``: ``key``, ``path``, ``doc``, ``base``,
    ``periods_per_year``) on ``model`` (:func:`run_model`'s result); returns the metrics and
    the day-end dates and returns, or ``{"refused": ...}`` when the model was refused."""
    path = Path(task["path"])
    if path.is_file():
        return json.loads(path.read_text()) | {"cached": True}
    if "refused" in model:
        return {"key": task["key"], "refused": f"no model: the training gates refused it ({model['dir']})"}
    from alphad.daemon.config import decode_config
    from alphad.daemon.shell import sample_window
    from alphad.daemon.shell.backtest import backtest
    from alphad.daemon.shell.day_samples import DaySamples
    from alphad.ops import backtest_report, perf_metrics

    t0 = time.perf_counter()
    base = Path(task["base"])
    cfg = decode_config(json.dumps(task["doc"]), source=f"study task {task['key']}")
    sample_window.check_training_window(cfg, base, allow_in_sample=False)
    record = {"reports": [], "arrivals": [], "samples": DaySamples(from_ns=cfg.feed.trade_from_ns())}
    path.parent.mkdir(parents=True, exist_ok=True)
    with _output_to(path.with_suffix(".log")):
        orders, summary = backtest(cfg, base, **record)
        metrics, s = backtest_report.compute(cfg, orders, summary, base=base,
                                             periods_per_year=task["periods_per_year"], **record)
    r = perf_metrics.period_returns(s["equity"], record["samples"].start_equity)
    result = {"key": task["key"], "metrics": finite(metrics), "ts": s["ts"].tolist(), "returns": r.tolist(),
              "final_state": summary.get("trading_state"), "state_reason": summary.get("state_reason"),
              "denials_by_reason": summary.get("denials_by_reason"), "backtest_s": round(time.perf_counter() - t0, 2)}
    _write_json(path, result)
    return result
