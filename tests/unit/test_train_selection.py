"""Training-side pieces of the ablation study: ``ensemble.method: best``, ``cv.scheme: kfold``
(the naive K-fold), LightGBM determinism defaults, and model selection by cross-validation
(``ops/study/selection.py``), on a synthetic panel built so that overlapping labels leak."""
from __future__ import annotations

import json

import lightgbm as lgb
import msgspec
import numpy as np
import pandas as pd
import pytest

from alphad.daemon.infer.model_card import read_card
from alphad.ops import cv
from alphad.ops.export_onnx import INPUT_NAME, make_session
from alphad.ops.study.selection import select_params, train_config_for
from alphad.ops.train_cli import TrainConfig, load_dataset, make_splitter, member_specs, train

SIMPLE = {"num_leaves": 3, "min_data_in_leaf": 400}
MEMORISER = {"num_leaves": 127, "min_data_in_leaf": 3}


@pytest.fixture(scope="module")
def leaky_csv(tmp_path_factory):
    """8 random walks, 600 days: returns are i.i.d., so the true IC of any model is 0.

    Each symbol's volatility has its own level and rises through time, so the slow features
    (vol_63, nma_50, logret_63) tell (symbol, date) apart and a flexible model can memorise the
    labels of neighbouring days, which share most of a 20-day forward return with a test row.
    """
    rng = np.random.default_rng(0)
    n, k = 600, 8
    dates = pd.bdate_range("2010-01-01", periods=n).strftime("%Y-%m-%d")
    t = np.arange(n) / n
    frames = []
    for s in range(k):
        c = 100 * np.exp(np.cumsum(rng.normal(size=n) * 0.01 * (1 + s / k) * (1 + 2 * t)))
        o = c * np.exp(rng.normal(0, 0.003, n))
        frames.append(pd.DataFrame({
            "symbol": f"S{s:02d}", "date": dates, "open": o, "high": np.maximum(o, c) * 1.002,
            "low": np.minimum(o, c) * 0.998, "close": c, "adjusted_close": c, "volume": rng.integers(100_000, 1_000_000, n),
        }))
    path = tmp_path_factory.mktemp("leaky") / "bars.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


def _cfg(path, **over) -> TrainConfig:
    doc = {
        "data": {"path": str(path)},
        "label": {"kind": "forward_return", "horizon": 20, "demean": True},
        "cv": {"scheme": "walk_forward", "n_splits": 3, "min_train_days": 300, "embargo_days": 30},
        "model": {"num_threads": 1, "params": {"learning_rate": 0.1},
                  "members": [{"name": "a", "seed": 1, "num_boost_round": 30},
                              {"name": "b", "seed": 2, "num_boost_round": 30, "params": {"num_leaves": 5}}]},
        "gates": {"min_mean_ic": -1.0, "min_ic_tstat": -100.0, "max_is_oos_ratio": 1e9},
        "verify_rows": 2000,
    }
    for key, value in over.items():
        doc[key] = {**doc.get(key, {}), **value}
    return msgspec.convert(doc, TrainConfig)


# --------------------------------------------------------------------------- determinism defaults

def test_member_specs_when_defaults_then_deterministic_row_wise_and_config_can_override():
    cfg = _cfg("x.csv")
    # Without both, LightGBM picks row- or column-wise histograms by timing each run, so two
    # runs (or processes) may sum in another order and give other trees.
    for spec in member_specs(cfg.model, ["f0", "f1"]):
        assert spec.params["deterministic"] is True and spec.params["force_row_wise"] is True
    off = _cfg("x.csv", model={"params": {"deterministic": False}})
    assert member_specs(off.model, ["f0"])[0].params["deterministic"] is False


# --------------------------------------------------------------------------- kfold + best in alphad train

def test_train_when_kfold_and_best_then_card_weights_one_hot_and_onnx_is_the_best_booster(leaky_csv, tmp_path):
    cfg = _cfg(leaky_csv, cv={"scheme": "kfold", "n_splits": 4}, ensemble={"method": "best"})
    ds = load_dataset(cfg, leaky_csv)
    assert isinstance(make_splitter(cfg.cv, ds.t_start, ds.t_end), cv.ContiguousKFold)
    out = tmp_path / "run"
    assert train(cfg, tmp_path, out) == 0
    card = read_card(out / "model_card.json")  # the daemon's decoder accepts it
    extra = json.loads((out / "model_card.json").read_text())
    best = int(np.argmax(np.mean(extra["member_fold_ic"], axis=0)))
    assert card.ensemble_weights == [1.0 if i == best else 0.0 for i in range(2)]
    assert extra["ensemble_method"] == "best" and card.cv_scheme.startswith("kfold n_splits=4 (naive")
    assert len(card.folds) == 4 and all(f.test_rows > 0 for f in card.folds)
    # The graph is the best member's booster alone, as its model file says.
    booster = lgb.Booster(model_file=str(out / f"model_{best}.txt"))
    cols = [ds.feature_names.index(f) for f in extra["members"][best]["features"]]
    got = make_session(out / "model.onnx").run(None, {INPUT_NAME: ds.X})[0][:, 0]
    assert np.abs(got - booster.predict(ds.X[:, cols])).max() <= 1e-5
    assert np.std(got) > 1e-4  # not a constant: the tolerance means something
    assert extra["onnx_max_abs_diff"] <= 1e-5


# --------------------------------------------------------------------------- selection

def test_select_params_when_labels_leak_then_naive_kfold_inflates_the_memoriser_and_purged_does_not(leaky_csv):
    cfg = _cfg(leaky_csv)
    cands = [SIMPLE, MEMORISER]
    # 24 folds of 25 days with 20-day labels: nearly every test row has training neighbours
    # sharing most of its label unless they are purged.
    naive = select_params(cfg, cands, "kfold", n_splits=24)
    purged = select_params(cfg, cands, "purged_kfold", n_splits=24, embargo_days=30)
    assert (naive.scheme, purged.scheme, naive.embargo_days, purged.embargo_days) == ("kfold", "purged_kfold", 0, 30)
    assert len(naive.train_rows) == len(purged.train_rows) == 24
    assert all(n > p for n, p in zip(naive.train_rows, purged.train_rows))  # the purge drops rows
    # The true IC is 0: purged scores stay near it, the naive K-fold's leak lifts the memoriser.
    assert max(abs(s) for s in purged.scores) < 0.05, purged.scores
    assert naive.scores[1] - purged.scores[1] > 0.08, (naive.scores, purged.scores)
    assert naive.scores[1] - purged.scores[1] > naive.scores[0] - purged.scores[0]
    assert naive.chosen == MEMORISER and naive.chosen_index == 1
    for sel in (naive, purged):
        assert sel.chosen == cands[sel.chosen_index] and sel.scores[sel.chosen_index] == max(sel.scores)
        np.testing.assert_allclose(sel.scores, np.mean(sel.fold_ic, axis=1))
    # What the study stores: plain JSON-able builtins.
    assert json.loads(msgspec.json.encode(naive))["scores"] == naive.scores


def test_train_config_for_when_chosen_then_every_member_trains_with_it_and_member_0_is_the_scored_model():
    cfg = _cfg("x.csv")
    out = train_config_for(cfg, {"num_leaves": 63, "min_data_in_leaf": 100, "num_boost_round": 12})
    specs = member_specs(out.model, ["f0", "f1"])
    # Member b's own num_leaves would win over the shared params: it is dropped.
    assert [(s.params["num_leaves"], s.params["min_data_in_leaf"], s.num_boost_round) for s in specs] == [(63, 100, 12)] * 2
    assert specs[0].params["seed"] == 1 and specs[0].params["learning_rate"] == 0.1
    assert (out.cv, out.gates, out.ensemble) == (cfg.cv, cfg.gates, cfg.ensemble)  # walk-forward and gates kept
    assert train_config_for(cfg, {}) == cfg


def test_selection_when_bad_input_then_errors_name_what_was_expected():
    cfg = _cfg("x.csv")
    with pytest.raises(ValueError, match=r"scheme: expected one of \('purged_kfold', 'kfold'\); found 'walk_forward'"):
        select_params(cfg, [SIMPLE], "walk_forward")
    with pytest.raises(ValueError, match="candidates: expected a non-empty list"):
        select_params(cfg, [], "kfold")
    with pytest.raises(ValueError, match=r"candidates\[1\]: \['seed'\] are set by the trainer"):
        select_params(cfg, [SIMPLE, {"seed": 3}], "kfold")
    with pytest.raises(ValueError, match=r"candidates\[0\]: expected str keys and int/float/str/bool values"):
        select_params(cfg, [{"num_leaves": [7]}], "kfold")
    with pytest.raises(ValueError, match=r"invalid training config: Expected `int` >= 1 - at "
                                         r"`\$.model.members\[0\].num_boost_round`"):
        train_config_for(cfg, {"num_boost_round": 0})
