"""``alphad train --config PATH --out DIR``: validated LightGBM ensemble to ONNX.

Steps: decode the YAML config (typed, unknown keys rejected, errors name the
path) -> load bars -> features and labels with event windows -> purged
walk-forward (or purged / combinatorial K-fold, or the leaky naive K-fold for
comparison) cross-validation of every member -> out-of-fold IC weights ->
gates -> refit on all rows -> one ONNX graph of the members with a non-zero
weight, checked against the Python ensemble -> ``model_card.json`` and a
report (``report.md`` + PNG plots).

Outputs in DIR when every gate passes (exit 0)::

    model.onnx  model_0.txt ... model_<m-1>.txt  model_card.json
    regimes.json (when the config has a ``regimes:`` section)
    report.md  ic_per_fold.png  feature_importance.png  cumulative_oos_return.png

When a gate fails (exit 3) the report is written with the gate table and
``gates_failed.json``, but no model files: a refused model is never exported.
"""
from __future__ import annotations

import argparse
import datetime
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np
import yaml

from alphad.daemon.config_base import load_yaml
from alphad.ops.gates import GateConfig
from alphad.daemon.infer.model_card import ModelCard

__all__ = ["TrainConfig", "load_config", "add_arguments", "run", "train", "resolve_data_path", "load_dataset",
           "make_splitter", "member_specs"]

#: Exit code when a validation gate refuses the model.
EXIT_GATE_FAILED = 3

#: Regime parameters (GARCH per symbol, HMM on the index) beside the card, fitted up to its train_end.
REGIMES_FILE = "regimes.json"
_MODEL_FILES = ("model.onnx", "model_card.json", REGIMES_FILE)


class _Base(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Frozen, and unknown keys are errors: a typo fails at load, not silently."""


class DataConfig(_Base, kw_only=True):
    #: Long-format daily bar file; a relative path is taken from the config file's folder.
    path: str
    #: Symbols to use; empty means all in the file.
    symbols: list[str] = []
    #: Inclusive dates (YAML's 2016-12-31 or "2016-12-31").
    start: datetime.date | None = None
    end: datetime.date | None = None


class LabelConfig(_Base, kw_only=True):
    kind: Literal["forward_return", "triple_barrier"] = "forward_return"
    #: Bars ahead (time limit of the triple barrier).
    horizon: Annotated[int, msgspec.Meta(ge=1)] = 5
    pt: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    sl: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    vol_window: Annotated[int, msgspec.Meta(ge=2)] = 20
    #: Subtract each date's cross-sectional mean (forward returns only).
    demean: bool = True
    #: Train with average-uniqueness sample weights.
    uniqueness_weights: bool = False


class CVConfig(_Base, kw_only=True):
    #: ``kfold`` is the naive K-fold (contiguous folds, no purge, no embargo: embargo_days is
    #: ignored); its scores leak through overlapping labels, it is there to measure that.
    scheme: Literal["walk_forward", "purged_kfold", "combinatorial", "kfold"] = "walk_forward"
    n_splits: Annotated[int, msgspec.Meta(ge=2)] = 8
    #: Walk-forward: trading days before the first test block.
    min_train_days: Annotated[int, msgspec.Meta(ge=1)] = 756
    mode: Literal["expanding", "sliding"] = "expanding"
    max_train_days: int | None = None
    #: Calendar days after each test block (K-fold) or before it (walk-forward).
    embargo_days: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: Combinatorial: test groups per split (n_splits is N).
    n_test_groups: Annotated[int, msgspec.Meta(ge=1)] = 2


class MemberConfig(_Base, kw_only=True):
    name: str
    seed: int = 0
    num_boost_round: Annotated[int, msgspec.Meta(ge=1)] = 100
    #: Feature names this member sees; empty means all.
    features: list[str] = []
    #: LightGBM parameters over the shared ``model.params``.
    params: dict[str, int | float | str | bool] = {}


class ModelConfig(_Base, kw_only=True):
    objective: Literal["regression", "binary"] = "regression"
    num_threads: Annotated[int, msgspec.Meta(ge=1)] = 1
    params: dict[str, int | float | str | bool] = {}
    members: Annotated[list[MemberConfig], msgspec.Meta(min_length=2)]


class EnsembleConfig(_Base, kw_only=True):
    #: ``best``: weight 1 on the member with the highest mean OOS IC, 0 on the others (floor
    #: not applied); only that member's trees go into model.onnx.
    method: Literal["ic_weighted", "ir_weighted", "equal", "best"] = "ic_weighted"
    floor: Annotated[float, msgspec.Meta(ge=0, le=0.5)] = 0.05


class DriftConfig(_Base, kw_only=True):
    n_bins: Annotated[int, msgspec.Meta(ge=2)] = 10


class RegimesConfig(_Base, kw_only=True):
    """Fit the regime models (:func:`alphad.ops.fit_regimes.fit_daily_regimes`) up to the
    card's ``train_end``: GARCH(1,1) per training symbol (``data.path``) and for the index,
    the HMM on the index."""

    #: Long-format ETF file with ``adj_close``; a relative path is taken from the config file's folder.
    index_path: str
    index_symbol: str = "SPY"


class TrainConfig(_Base, kw_only=True):
    data: DataConfig
    #: The kernels' feature set (kernels/feature_sets.py, docs/features.md) the dataset is
    #: computed with: the same ``update_row`` a features stage runs per bar.
    feature_set: str = "daily"
    label: LabelConfig = LabelConfig()
    cv: CVConfig = CVConfig()
    model: ModelConfig
    ensemble: EnsembleConfig = EnsembleConfig()
    gates: GateConfig = GateConfig()
    drift: DriftConfig = DriftConfig()
    #: IC across symbols per date (panel) or pooled over all rows.
    ic: Literal["cross_sectional", "pooled"] = "cross_sectional"
    #: Rows used to compare ONNX with LightGBM after export.
    verify_rows: Annotated[int, msgspec.Meta(ge=1)] = 10000
    #: Regime parameters written to ``regimes.json``; None: none.
    regimes: RegimesConfig | None = None


def load_config(path: str | Path) -> TrainConfig:
    """Decode a training YAML file; errors name the file and the field path."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"training config expected at {path} was not found") from None
    try:
        obj = load_yaml(raw)
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    data = obj.get("data") if isinstance(obj, dict) else None
    for key in ("start", "end"):  # dates arrive as their text (load_yaml), quoted or not
        if isinstance(data, dict) and isinstance(data.get(key), str):
            try:
                data[key] = datetime.date.fromisoformat(data[key])
            except ValueError:
                raise ValueError(f"{path}: invalid training config: data.{key} expected a date such as 2016-12-31, "
                                 f"found {data[key]!r} - at `$.data.{key}`") from None
    try:
        cfg = msgspec.convert(obj, TrainConfig)
    except msgspec.ValidationError as e:
        raise ValueError(f"{path}: invalid training config: {e}") from None
    from alphad.kernels.feature_sets import FEATURE_SETS

    if cfg.feature_set not in FEATURE_SETS:
        raise ValueError(f"{path}: invalid training config: feature_set expected one of {sorted(FEATURE_SETS)}, "
                         f"found {cfg.feature_set!r} - at `$.feature_set`")
    return cfg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="training YAML (e.g. configs/train_daily.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the model and report")
    parser.add_argument("--overwrite", action="store_true", help="replace model files already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    progress = None if args.quiet else _progress
    cfg = load_config(args.config)
    created_by = "alphad train " + " ".join(
        shlex.quote(a) for a in ["--config", str(args.config), "--out", str(args.out)]
    )
    return train(cfg, Path(args.config).resolve().parent, Path(args.out), overwrite=args.overwrite,
                 progress=progress, created_by=created_by)


def _progress(msg: str) -> None:
    print(f"[train {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def resolve_data_path(cfg: TrainConfig, base_dir: Path) -> Path:
    """``data.path``, a relative one taken from ``base_dir`` (the config file's folder)."""
    p = Path(cfg.data.path)
    return p if p.is_absolute() else (Path(base_dir) / p).resolve()


def load_dataset(cfg: TrainConfig, data_path: Path):
    """The bars of ``cfg.data`` turned into the training dataset (features, labels, windows)."""
    from alphad.ops import dataset as dsm

    bars = dsm.load_daily(data_path, symbols=cfg.data.symbols or None, start=cfg.data.start, end=cfg.data.end)
    lab = cfg.label
    return dsm.build_dataset(
        bars, label=lab.kind, horizon=lab.horizon, pt=lab.pt, sl=lab.sl, vol_window=lab.vol_window,
        demean=lab.demean and lab.kind == "forward_return", weights=lab.uniqueness_weights,
        feature_set=cfg.feature_set,
    )


def make_splitter(cfg: CVConfig, t_start: np.ndarray, t_end: np.ndarray):
    from alphad.ops import cv

    emb = np.timedelta64(cfg.embargo_days, "D")
    if cfg.scheme == "walk_forward":
        return cv.WalkForward(
            cfg.n_splits, t_start=t_start, t_end=t_end, min_train_size=cfg.min_train_days, mode=cfg.mode,
            max_train_size=cfg.max_train_days, embargo=emb,
        )
    if cfg.scheme == "purged_kfold":
        return cv.PurgedKFold(cfg.n_splits, t_start=t_start, t_end=t_end, embargo=emb)
    if cfg.scheme == "kfold":
        return cv.ContiguousKFold(cfg.n_splits, t_start=t_start, t_end=t_end)
    return cv.CombinatorialPurgedKFold(cfg.n_splits, cfg.n_test_groups, t_start=t_start, t_end=t_end, embargo=emb)


def member_specs(cfg: ModelConfig, names: list[str]):
    from alphad.ops.ensemble import MemberSpec

    out = []
    for m in cfg.members:
        unknown = [f for f in m.features if f not in names]
        if unknown:
            raise ValueError(f"model.members[{m.name}].features: {unknown} are not features; expected some of {names}")
        params = {
            "objective": cfg.objective,
            "num_threads": cfg.num_threads,
            # Same trees in every run and process (the study compares runs): deterministic,
            # and one histogram layout, not LightGBM's per-run timing of row- vs column-wise.
            "deterministic": True,
            "force_row_wise": True,
            **cfg.params,
            **m.params,
            "seed": m.seed,
        }
        feats = tuple(names.index(f) for f in m.features) if m.features else None
        out.append(MemberSpec(m.name, params, m.num_boost_round, feats))
    return out


def train(
    cfg: TrainConfig,
    base_dir: Path,
    out: Path,
    *,
    overwrite: bool = False,
    progress=None,
    created_by: str = "",
) -> int:
    """Run the pipeline; return 0 (exported) or :data:`EXIT_GATE_FAILED`."""
    from alphad.daemon.infer.drift import reference_histograms
    from alphad.ops.ensemble import cross_validate, ensemble_weights, fit_ensemble
    from alphad.ops.export_onnx import INPUT_NAME, OUTPUT_NAME, ensemble_to_onnx, make_session, save_onnx
    from alphad.ops.gates import evaluate_gates, ic_tstat
    from alphad.daemon.infer.model_card import FoldResult, sha256_file, write_card

    say = progress or (lambda _m: None)
    out.mkdir(parents=True, exist_ok=True)
    stale = [p for p in out.iterdir() if p.name in _MODEL_FILES or (p.name.startswith("model_") and p.suffix == ".txt")]
    if stale and not overwrite:
        raise ValueError(f"{out} already holds model files ({', '.join(sorted(p.name for p in stale))}); "
                         "choose a new --out or pass --overwrite")
    for p in stale:
        p.unlink()
    (out / "gates_failed.json").unlink(missing_ok=True)

    t_all = time.perf_counter()
    data_path = resolve_data_path(cfg, base_dir)
    index_path = None
    if cfg.regimes is not None:  # checked now, not after the cross-validation
        index_path = Path(cfg.regimes.index_path)
        if not index_path.is_absolute():
            index_path = (base_dir / index_path).resolve()
        if not index_path.exists():
            raise FileNotFoundError(f"regimes.index_path: index file expected at {index_path} was not found")
    say(f"loading {data_path}")
    ds = load_dataset(cfg, data_path)
    lab = cfg.label
    n_sym = len(np.unique(ds.symbol))
    say(f"dataset: {len(ds):,} rows, {n_sym} symbols, {len(ds.feature_names)} features, label {ds.label_name}, "
        f"{str(ds.t_start[0])[:10]} .. {str(ds.t_start[-1])[:10]}")
    dates = ds.t_start if cfg.ic == "cross_sectional" else None
    splitter = make_splitter(cfg.cv, ds.t_start, ds.t_end)
    members = member_specs(cfg.model, ds.feature_names)
    say(f"cross-validation: {cfg.cv.scheme}, {splitter.get_n_splits()} folds x {len(members)} members")
    res = cross_validate(
        members, ds.X, ds.y, splitter, dates=dates, weight=ds.weight if lab.uniqueness_weights else None,
        method=cfg.ensemble.method, floor=cfg.ensemble.floor, progress=say,
    )
    weights = ensemble_weights(res.member_fold_ic, cfg.ensemble.method, cfg.ensemble.floor)
    t_stat = ic_tstat(res.ensemble_fold_ic)
    gates = evaluate_gates(res.ensemble_fold_ic, res.ensemble_is_ic, cfg.gates)
    passed = all(g.passed for g in gates)
    say(f"OOS IC mean {res.ensemble_fold_ic.mean():+.4f}, t-stat {t_stat:.2f}, IS IC mean {res.ensemble_is_ic.mean():+.4f}; "
        f"weights {np.round(weights, 3).tolist()}; gates {'PASSED' if passed else 'FAILED'}")
    for g in gates:
        say(f"  gate {g.name}: value {g.value:.4g} threshold {g.threshold:.4g} -> {'pass' if g.passed else 'FAIL'}")

    folds = [
        FoldResult(fold=j, train_rows=tr, test_rows=te, ic=float(res.ensemble_fold_ic[j]))
        for j, (tr, te) in enumerate(res.fold_rows)
    ]
    periods = [[str(ds.t_start[te[0]])[:10], str(ds.t_start[te[-1]])[:10]] for te in res.fold_test_index]
    oos_rows = np.isfinite(res.oof_pred)
    pnl_dates, pnl = _oos_signal_returns(res.oof_pred[oos_rows], ds.fwd_ret_1[oos_rows], ds.t_start[oos_rows])
    data_sha = sha256_file(data_path)

    ens = None
    importance = None
    onnx_diff = math.nan
    card = None
    if passed:
        say(f"refitting {len(members)} members on all {len(ds):,} rows")
        ens = fit_ensemble(members, ds.feature_names, ds.X, ds.y, weights,
                           sample_weight=ds.weight if lab.uniqueness_weights else None)
        for i, b in enumerate(ens.boosters):
            b.save_model(str(out / f"model_{i}.txt"))
        model = ensemble_to_onnx(_weighted_members(ens))
        onnx_sha = save_onnx(model, out / "model.onnx")
        rows = np.linspace(0, len(ds) - 1, min(cfg.verify_rows, len(ds))).astype(np.int64)
        sess = make_session(out / "model.onnx")
        got = sess.run(None, {INPUT_NAME: ds.X[rows]})[0][:, 0].astype(np.float64)
        onnx_diff = float(np.abs(got - ens.predict(ds.X[rows])).max())
        say(f"model.onnx sha256 {onnx_sha[:16]}..., max |ONNX - LightGBM| on {rows.size:,} rows {onnx_diff:.2e}")
        if not onnx_diff <= 1e-5:
            raise RuntimeError(f"ONNX export check failed: max abs difference was {onnx_diff:.3g}, expected <= 1e-5")
        importance = _importance(ens)
        oos_p, oos_y = res.oof_pred[oos_rows], ds.y[oos_rows]
        right = np.sign(oos_p) == np.sign(oos_y)
        win = float(right.mean())
        payoff = float(np.abs(oos_y[right]).mean() / max(np.abs(oos_y[~right]).mean(), 1e-12))
        regimes_file = None
        if cfg.regimes is not None:
            regimes_file = _fit_regimes(cfg.regimes, index_path, data_path, ds, out, say)
        card = TrainedModelCard(
            feature_names=list(ds.feature_names),
            label=ds.label_name,
            onnx_file="model.onnx",
            onnx_sha256=onnx_sha,
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
            data_sha256=data_sha,
            cv_scheme=_cv_text(cfg.cv),
            folds=folds,
            gates=gates,
            ensemble_weights=[float(w) for w in weights],
            oos_win_rate=win,
            oos_payoff_ratio=payoff,
            prediction_scale=float(np.std(oos_p)),
            created_by=created_by,
            label_definition=msgspec.to_builtins(cfg.label),
            dataset_sha256=ds.sha256(),
            n_rows=len(ds),
            symbols=sorted(np.unique(ds.symbol).tolist()),
            ic_kind=cfg.ic,
            oos_ic_mean=float(res.ensemble_fold_ic.mean()),
            oos_ic_tstat=float(t_stat),
            is_ic_mean=float(res.ensemble_is_ic.mean()),
            fold_periods=periods,
            member_fold_ic=res.member_fold_ic.tolist(),
            members=[{"name": m.name, "num_boost_round": m.num_boost_round,
                      "features": [ds.feature_names[i] for i in m.columns(len(ds.feature_names))],
                      "params": m.params, "file": f"model_{i}.txt"} for i, m in enumerate(members)],
            ensemble_method=cfg.ensemble.method,
            onnx_max_abs_diff=onnx_diff,
            feature_importance=importance,
            drift_reference=reference_histograms(ds.X, ds.feature_names, cfg.drift.n_bins),
            feature_set=cfg.feature_set,
            regimes_file=regimes_file,
            **training_window(ds),
        )
        write_card(out / "model_card.json", card)
    else:
        (out / "gates_failed.json").write_bytes(msgspec.json.format(msgspec.json.encode(gates), indent=2) + b"\n")

    _write_report(out, cfg, ds, res, weights, gates, t_stat, periods, pnl_dates, pnl, importance, onnx_diff,
                  passed, created_by, time.perf_counter() - t_all)
    say(f"report: {out / 'report.md'} ({time.perf_counter() - t_all:.1f} s total)")
    if not passed:
        failed = [g.name for g in gates if not g.passed]
        print(f"alphad train: model refused, gate(s) failed: {', '.join(failed)}; nothing exported "
              f"(see {out / 'report.md'})", file=sys.stderr)
        return EXIT_GATE_FAILED
    return 0


def _weighted_members(ens):
    """The ensemble without its zero-weight members: they add nothing to the prediction, only
    trees (latency) to the graph (``best`` gives all but one member weight 0)."""
    from alphad.ops.ensemble import Ensemble

    keep = [i for i, w in enumerate(ens.weights) if w != 0.0]
    if len(keep) == len(ens.members):
        return ens
    return Ensemble(ens.feature_names, [ens.members[i] for i in keep], [ens.boosters[i] for i in keep],
                    np.asarray(ens.weights, np.float64)[keep])


def _fit_regimes(rc: RegimesConfig, index_path: Path, data_path: Path, ds, out: Path, say) -> str:
    """Write ``regimes.json``: fitted on rows dated up to the card's ``train_end`` only."""
    from alphad.ops.fit_regimes import fit_daily_regimes, write_params

    end = training_window(ds)["train_end"]
    symbols = sorted(np.unique(ds.symbol).tolist())
    say(f"fitting GARCH on {len(symbols)} symbols and the HMM on {rc.index_symbol} up to {end}")
    params = fit_daily_regimes(data_path, index_path, index_symbol=rc.index_symbol, end=end, symbols=symbols)
    for sk in params["skipped"]:
        say(f"  regimes: no GARCH for {sk['symbol']}: {sk['reason']}")
    write_params(out / REGIMES_FILE, params)
    return REGIMES_FILE


def training_window(ds) -> dict[str, str]:
    """The card's ``train_start`` (first training row's date) and ``train_end``: the last
    bar any label read (the latest ``t_end``, the end of a horizon), not the last feature
    date: a backtest must start after every bar the model was fitted to."""
    return {"train_start": str(ds.t_start.min())[:10], "train_end": str(ds.t_end.max())[:10]}


class TrainedModelCard(ModelCard, kw_only=True, frozen=True):
    """The daemon's :class:`~alphad.daemon.infer.model_card.ModelCard` plus training evidence.

    ``read_card`` decodes the base fields and ignores these.
    """

    label_definition: dict = {}
    dataset_sha256: str = ""
    n_rows: int = 0
    symbols: list[str] = []
    ic_kind: str = ""
    oos_ic_mean: float = 0.0
    oos_ic_tstat: float = 0.0
    is_ic_mean: float = 0.0
    fold_periods: list[list[str]] = []
    member_fold_ic: list[list[float]] = []
    members: list[dict] = []
    ensemble_method: str = ""
    onnx_max_abs_diff: float = 0.0
    feature_importance: dict[str, float] = {}
    #: ``regimes.json`` beside the card (fitted up to ``train_end``); None: not fitted.
    regimes_file: str | None = None


def _cv_text(c: CVConfig) -> str:
    if c.scheme == "walk_forward":
        return (f"walk_forward {c.mode} n_splits={c.n_splits} min_train_days={c.min_train_days}"
                f"{f' max_train_days={c.max_train_days}' if c.max_train_days else ''} purged embargo_days={c.embargo_days}")
    if c.scheme == "purged_kfold":
        return f"purged_kfold n_splits={c.n_splits} embargo_days={c.embargo_days}"
    if c.scheme == "kfold":
        return f"kfold n_splits={c.n_splits} (naive: no purge, no embargo)"
    return f"combinatorial_purged_kfold N={c.n_splits} k={c.n_test_groups} embargo_days={c.embargo_days}"


def _importance(ens) -> dict[str, float]:
    """Gain importance per feature, each member's share weighted by its ensemble weight."""
    tot = np.zeros(len(ens.feature_names))
    for spec, b, w in zip(ens.members, ens.boosters, ens.weights):
        g = b.feature_importance(importance_type="gain").astype(np.float64)
        if g.sum() > 0:
            tot[spec.columns(len(ens.feature_names))] += w * g / g.sum()
    return {n: float(v) for n, v in zip(ens.feature_names, tot)}


def _oos_signal_returns(pred: np.ndarray, ret1: np.ndarray, dates: np.ndarray):
    """Daily return of the OOS signal held for one bar.

    With several symbols per date: a dollar-neutral book with weights
    proportional to the demeaned cross-sectional rank of the prediction, gross
    1.  With one symbol: ``sign(pred)`` times the next bar's return.
    """
    import pandas as pd

    df = pd.DataFrame({"d": dates, "p": pred, "r": ret1})
    g = df.groupby("d", sort=True)
    r = g["p"].rank()
    w = r - g["p"].transform("size").add(1).div(2)
    gross = w.abs().groupby(df["d"]).transform("sum")
    single = g["p"].transform("size") == 1
    df["w"] = np.where(single, np.sign(df["p"]), w / gross.where(gross > 0, 1.0))
    daily = (df["w"] * df["r"]).groupby(df["d"], sort=True).sum()
    return daily.index.to_numpy(), daily.to_numpy()


def _write_report(out, cfg, ds, res, weights, gates, t_stat, periods, pnl_dates, pnl, importance, onnx_diff,
                  passed, created_by, seconds) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    F = len(res.ensemble_fold_ic)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(np.arange(F), res.ensemble_fold_ic, color=["tab:green" if v > 0 else "tab:red" for v in res.ensemble_fold_ic])
    ax.axhline(res.ensemble_fold_ic.mean(), color="k", lw=1, ls="--", label=f"mean {res.ensemble_fold_ic.mean():+.4f}")
    ax.set_xlabel("fold")
    ax.set_ylabel("OOS rank IC")
    ax.set_title(f"OOS IC per fold (t-stat {t_stat:.2f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ic_per_fold.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    if importance is not None:
        names = sorted(importance, key=importance.get)
        ax.barh(names, [importance[n] for n in names])
        ax.set_xlabel("share of gain (ensemble-weighted)")
    else:
        ax.text(0.5, 0.5, "model refused by gates: no final fit", ha="center", va="center")
    ax.set_title("feature importance")
    fig.tight_layout()
    fig.savefig(out / "feature_importance.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(pnl_dates, np.cumsum(pnl))
    ax.set_ylabel("cumulative log return")
    ax.set_title("cumulative OOS signal return (1-bar hold, gross of costs)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "cumulative_oos_return.png", dpi=100)
    plt.close(fig)

    ann = float(np.mean(pnl) / np.std(pnl) * np.sqrt(252)) if np.std(pnl) > 0 else 0.0
    L = [
        "# Training report",
        "",
        f"- command: `{created_by}`",
        f"- verdict: **{'EXPORTED' if passed else 'REFUSED (gate failed, nothing exported)'}**",
        f"- data: `{cfg.data.path}`, {len(np.unique(ds.symbol))} symbols, {len(ds):,} rows, "
        f"{str(ds.t_start[0])[:10]} .. {str(ds.t_start[-1])[:10]}",
        "- training window (model card): {train_start} .. {train_end} (train_end: the last label's horizon end; "
        "a backtest must start after it)".format(**training_window(ds)),
        f"- label: `{ds.label_name}`; features ({len(ds.feature_names)}): {', '.join(ds.feature_names)}",
        f"- CV: {_cv_text(cfg.cv)}; IC: {cfg.ic} Spearman",
        f"- ensemble: {cfg.ensemble.method}, floor {cfg.ensemble.floor}, weights "
        + ", ".join(f"{m.name}={w:.3f}" for m, w in zip(cfg.model.members, weights)),
        f"- wall time: {seconds:.1f} s",
        "",
        "## Out-of-sample IC per fold",
        "",
        "Fold j's ensemble weights come from folds < j only (equal in fold 0).",
        "",
        "| fold | test period | train rows | test rows | ensemble IC | member ICs | IS IC |",
        "|---|---|---|---|---|---|---|",
    ]
    for j in range(F):
        tr, te = res.fold_rows[j]
        L.append(f"| {j} | {periods[j][0]} .. {periods[j][1]} | {tr:,} | {te:,} | {res.ensemble_fold_ic[j]:+.4f} | "
                 + " ".join(f"{v:+.4f}" for v in res.member_fold_ic[j]) + f" | {res.ensemble_is_ic[j]:+.4f} |")
    L += [
        "",
        f"Mean OOS IC **{res.ensemble_fold_ic.mean():+.4f}**, t-statistic **{t_stat:.2f}** over {F} folds; "
        f"mean IS IC {res.ensemble_is_ic.mean():+.4f}.",
        f"OOS signal (1-bar hold, gross): annualised Sharpe {ann:.2f} over {len(pnl):,} days.",
        "",
        "## Gates",
        "",
        "| gate | value | threshold | result |",
        "|---|---|---|---|",
    ]
    L += [f"| {g.name} | {g.value:.4g} | {g.threshold:.4g} | {'pass' if g.passed else '**FAIL**'} |" for g in gates]
    if passed:
        L += ["", f"ONNX check: max |ONNX - LightGBM ensemble| = {onnx_diff:.2e} on up to {cfg.verify_rows:,} rows."]
    L += [
        "",
        "![IC per fold](ic_per_fold.png)",
        "![feature importance](feature_importance.png)",
        "![cumulative OOS return](cumulative_oos_return.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(L))
