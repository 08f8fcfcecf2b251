"""``alphad train-demo``: the small LightGBM model the embedded default runs.

Reproducible: the rows come from the same streaming kernels the features stage
runs (:func:`alphad.kernels.quote_features.quote_features_batch`) over the
committed replay slice, the label is the forward mid log return over ``h``
quotes of the same instrument (bps), LightGBM runs single-threaded and
deterministic with a fixed seed, and the ONNX graph is exported with
onnxmltools at opset 15.  The first 70% of rows (in time) train, the rest
measure the out-of-sample IC written into the model card.

Needs the ``train`` extra (lightgbm, onnxmltools).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from alphad.kernels.quote_features import FEATURE_SETS, quote_features_batch
from alphad.daemon.infer.drift import reference_histograms
from alphad.daemon.infer.model_card import FoldResult, ModelCard, sha256_file, write_card

DEFAULT_CONFIG = "config.yaml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help="daemon config whose feed and features to use (default: %(default)s)")
    p.add_argument("--out", default=None, help="output folder (default: the folder of the config's model.card)")
    p.add_argument("--horizon", type=int, default=20, help="label horizon in quotes of the same instrument (default: %(default)s)")
    p.add_argument("--trees", type=int, default=60, help="boosting rounds (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7)


def forward_returns(md_instrument: np.ndarray, mid: np.ndarray, horizon: int) -> np.ndarray:
    """log(mid[t+h]/mid[t]) in bps within each instrument; NaN where t+h runs past the end."""
    y = np.full(len(mid), np.nan)
    for inst in np.unique(md_instrument):
        idx = np.flatnonzero(md_instrument == inst)
        m = mid[idx]
        if len(m) > horizon:
            y[idx[:-horizon]] = np.log(m[horizon:] / m[:-horizon]) * 1e4
    return y


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def run(args) -> int:
    try:
        import lightgbm as lgb
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as e:
        raise RuntimeError(f"train-demo needs the train extra ({e.name} is missing): pip install -e '.[train]'") from None

    from alphad.daemon.config import load_config, resolve
    from alphad.daemon.feed.sources import load_events

    cfg, base = load_config(args.config)
    out = Path(args.out) if args.out else resolve(base, cfg.model.card).parent
    out.mkdir(parents=True, exist_ok=True)
    print(f"train-demo: loading {cfg.feed.path} ...", file=sys.stderr)
    events = load_events(cfg.feed, base, cfg.universe)
    f = cfg.features
    names = list(FEATURE_SETS[f.set])
    rows = quote_features_batch(events, len(cfg.universe), fast=f.ema_fast_events, slow=f.ema_slow_events,
                                quotes_only=f.trigger == "quote", feature_set=f.set, **f.state_params())
    X = rows["x"][:, :len(names)].astype(np.float32)
    y = forward_returns(rows["instrument"], rows["mid"], args.horizon)
    ok = np.isfinite(y)
    X, y = X[ok], y[ok]
    split = int(0.7 * len(y))
    print(f"train-demo: {len(y)} rows x {len(names)} features ({f.set}), train {split}, test {len(y) - split}", file=sys.stderr)
    params = dict(objective="regression", learning_rate=0.05, num_leaves=15, min_data_in_leaf=200,
                  feature_fraction=0.9, bagging_fraction=0.8, bagging_freq=1, seed=args.seed,
                  deterministic=True, num_threads=1, verbose=-1)
    booster = lgb.train(params, lgb.Dataset(X[:split], y[:split], feature_name=names),
                        num_boost_round=args.trees)
    pred = booster.predict(X[split:])
    ic = spearman(pred, y[split:])
    hit = float(np.mean(np.sign(pred) == np.sign(y[split:])))
    wins = y[split:][np.sign(pred) == np.sign(y[split:])]
    losses = y[split:][np.sign(pred) != np.sign(y[split:])]
    payoff = float(np.mean(np.abs(wins)) / np.mean(np.abs(losses))) if len(losses) and len(wins) else 1.0
    booster.save_model(str(out / "model.txt"))
    onx = onnxmltools.convert_lightgbm(booster, initial_types=[("input", FloatTensorType([None, len(names)]))],
                                       target_opset=15)
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    card = ModelCard(
        feature_names=names,
        label=f"fwd_mid_logret_bps_h{args.horizon}_quotes",
        onnx_sha256=sha256_file(out / "model.onnx"),
        input_name="input",
        data_sha256=sha256_file(resolve(base, cfg.feed.path)) if cfg.feed.source == "replay" else "",
        cv_scheme="single time split 70/30",
        folds=[FoldResult(fold=0, train_rows=split, test_rows=len(y) - split, ic=ic)],
        oos_win_rate=hit,
        oos_payoff_ratio=payoff,
        prediction_scale=float(np.std(pred)) or 1.0,
        drift_reference=reference_histograms(X[:split].astype(np.float64), names, 10),
        created_by=f"alphad train-demo --config {args.config} --horizon {args.horizon} --trees {args.trees} --seed {args.seed}",
    )
    write_card(out / "model_card.json", card)
    print(f"train-demo: OOS IC {ic:.4f}, hit rate {hit:.3f}, payoff {payoff:.3f}; wrote {out}/model.onnx, "
          f"model.txt, model_card.json", file=sys.stderr)
    return 0
