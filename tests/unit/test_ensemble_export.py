"""IC weighting, ensembles and ONNX export checked against LightGBM on real rows."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from alphad.ops import dataset as dsm
from alphad.ops.ensemble import Ensemble, MemberSpec, ensemble_weights, fit_ensemble, rank_ic
from alphad.ops.export_onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    BoundRunner,
    booster_to_onnx,
    ensemble_to_onnx,
    make_session,
    save_onnx,
)

DAILY = "daily/us_equities_daily_1999-2021.csv.gz"
_P = {"verbose": -1, "num_threads": 1, "deterministic": True, "learning_rate": 0.05, "min_data_in_leaf": 200}


@pytest.fixture(scope="module")
def real(shared_data):
    """>= 10,000 real rows (6 symbols, 2005-2014) of the daily panel."""
    bars = dsm.load_daily(
        shared_data / DAILY, symbols=["AAPL", "JPM", "XOM", "KO", "GE", "NEE"], start="2005-01-01", end="2014-12-31"
    )
    ds = dsm.build_dataset(bars, horizon=5, demean=True)
    assert len(ds) >= 10_000
    return ds


@pytest.fixture(scope="module")
def ens(real):
    members = [
        MemberSpec("all_s1", {**_P, "objective": "regression", "num_leaves": 31, "seed": 1,
                              "bagging_fraction": 0.7, "bagging_freq": 1}, 80),
        MemberSpec("subset_s2", {**_P, "objective": "regression", "num_leaves": 15, "seed": 2}, 60, (0, 2, 4, 6, 8, 11)),
        MemberSpec("all_s3", {**_P, "objective": "regression", "num_leaves": 7, "seed": 3}, 60),
    ]
    return fit_ensemble(members, real.feature_names, real.X, real.y, np.array([0.5, 0.3, 0.2]))


def _onnx_pred(model, X):
    return make_session(model).run(None, {INPUT_NAME: X})[0][:, 0].astype(np.float64)


@pytest.mark.data
def test_booster_onnx_when_10000_real_rows_then_matches_lightgbm_within_1e5(real, ens):
    X = real.X[:10_000]
    for spec, b in zip(ens.members, ens.boosters):
        cols = spec.columns(X.shape[1])
        got = make_session(booster_to_onnx(b, len(cols))).run(None, {INPUT_NAME: X[:, cols]})[0][:, 0]
        assert np.abs(got - b.predict(X[:, cols])).max() <= 1e-5


@pytest.mark.data
def test_ensemble_onnx_when_merged_then_one_node_and_matches_weighted_sum_within_1e6(real, ens, tmp_path):
    X = real.X[:10_000]
    model = ensemble_to_onnx(ens)
    assert [n.op_type for n in model.graph.node] == ["TreeEnsembleRegressor"]
    assert {(o.domain, o.version) for o in model.opset_import} >= {("", 15)}
    sha = save_onnx(model, tmp_path / "m.onnx")
    import hashlib

    assert sha == hashlib.sha256((tmp_path / "m.onnx").read_bytes()).hexdigest()
    python_sum = sum(w * b.predict(X[:, s.columns(X.shape[1])]) for s, b, w in zip(ens.members, ens.boosters, ens.weights))
    got = _onnx_pred(tmp_path / "m.onnx", X)
    assert np.abs(got - python_sum).max() <= 1e-6
    # Predictions are not trivially tiny: the tolerance is meaningful.
    assert np.std(python_sum) > 1e-4


@pytest.mark.data
def test_ensemble_onnx_when_combined_with_binary_member_then_matches_weighted_sum_within_1e6(real, ens):
    X = real.X[:10_000]
    members = ens.members[:2] + [MemberSpec("up_prob", {**_P, "objective": "binary", "num_leaves": 15, "seed": 4}, 40, (1, 3, 5))]
    mixed = fit_ensemble(members, real.feature_names, real.X, real.y, np.array([0.4, 0.35, 0.25]))
    model = ensemble_to_onnx(mixed)
    ops = [n.op_type for n in model.graph.node]
    assert "TreeEnsembleClassifier" in ops and ops[-1] == "Sum"
    assert model.graph.output[0].name == OUTPUT_NAME
    got = _onnx_pred(model, X)
    assert np.abs(got - mixed.predict(X)).max() <= 1e-6
    # Both builds agree for regression members too.
    np.testing.assert_allclose(_onnx_pred(ensemble_to_onnx(ens, merge=False), X), ens.predict(X), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="binary members"):
        ensemble_to_onnx(mixed, merge=True)


@pytest.mark.data
def test_ensemble_onnx_when_best_weights_then_graph_holds_only_the_best_members_trees(real, ens):
    from alphad.ops.train_cli import _weighted_members

    X = real.X[:10_000]
    best = Ensemble(ens.feature_names, ens.members, ens.boosters, ensemble_weights(
        np.array([[0.01, 0.03, 0.02], [0.02, 0.02, 0.01]]), "best"))  # member 1 has the highest mean
    shipped = _weighted_members(best)
    assert [m.name for m in shipped.members] == ["subset_s2"]
    model = ensemble_to_onnx(shipped)
    node = model.graph.node[0]
    tree_ids = next(a for a in node.attribute if a.name == "nodes_treeids").ints
    assert len(set(tree_ids)) == ens.boosters[1].num_trees()  # no zero-weighted trees in the graph
    # The graph is what alphad train checks it against: the full ensemble, zero weights included.
    assert np.abs(_onnx_pred(model, X) - best.predict(X)).max() <= 1e-6
    assert np.abs(_onnx_pred(model, X) - ens.boosters[1].predict(X[:, list(ens.members[1].features)])).max() <= 1e-6


@pytest.mark.data
def test_bound_runner_when_batches_then_equals_session_run(real, ens):
    model = ensemble_to_onnx(ens)
    sess = make_session(model)
    nf = real.X.shape[1]
    runner = BoundRunner(sess, nf, max_batch=64)
    for b in (1, 7, 64):
        rows = real.X[100 : 100 + b]
        expect = sess.run(None, {INPUT_NAME: rows})[0][:, 0]
        np.testing.assert_array_equal(runner.run(rows), expect)
    with pytest.raises(ValueError, match=rf"expected shape \(1..64, {nf}\); was \(65, {nf}\)"):
        runner.run(real.X[:65])
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_ensemble_weights_when_ic_weighted_then_proportional_to_mean_ic():
    ic = np.array([[0.02, 0.01, 0.01], [0.04, 0.01, 0.03]])  # means 0.03, 0.01, 0.02
    np.testing.assert_allclose(ensemble_weights(ic, "ic_weighted", floor=0.0), [0.5, 1 / 6, 1 / 3])


def test_ensemble_weights_when_member_negative_then_floor_applies():
    ic = np.array([[0.03, -0.02, 0.01], [0.05, -0.01, 0.03]])
    w = ensemble_weights(ic, "ic_weighted", floor=0.05)
    assert w[1] == pytest.approx(0.05)
    assert w.sum() == pytest.approx(1.0)
    assert w[0] / w[2] == pytest.approx(0.04 / 0.02)  # the rest keep their proportions


def test_ensemble_weights_when_ir_weighted_then_stable_member_wins():
    ic = np.array([[0.02, 0.06], [0.02, -0.02], [0.021, 0.05]])  # same mean-ish, member 0 steady
    w = ensemble_weights(ic, "ir_weighted")
    assert w[0] > 0.8


def test_ensemble_weights_when_best_then_all_weight_on_highest_mean_ic_first_on_ties():
    ic = np.array([[0.02, 0.01, 0.05], [0.04, 0.01, 0.00]])  # means 0.03, 0.01, 0.025
    np.testing.assert_array_equal(ensemble_weights(ic, "best", floor=0.05), [1.0, 0.0, 0.0])  # no floor
    tie = np.array([[0.01, 0.03, 0.03], [0.01, 0.01, 0.01]])  # members 1 and 2 tie
    np.testing.assert_array_equal(ensemble_weights(tie, "best"), [0.0, 1.0, 0.0])
    # Even when no member is positive, the least bad one takes it all (the gates then judge).
    np.testing.assert_array_equal(ensemble_weights(-np.abs(ic) - [0.0, 0.0, 0.1], "best"), [0.0, 1.0, 0.0])


@settings(max_examples=150, deadline=None)
@given(
    ic=st.lists(st.lists(st.floats(-0.2, 0.2), min_size=4, max_size=4), min_size=1, max_size=6),
    method=st.sampled_from(["ic_weighted", "ir_weighted", "equal"]),
    floor=st.sampled_from([0.0, 0.05, 0.1, 0.25]),
)
def test_ensemble_weights_when_any_ics_then_sum_one_and_floor_holds(ic, method, floor):
    w = ensemble_weights(np.array(ic), method, floor)
    assert w.sum() == pytest.approx(1.0)
    assert np.all(w >= floor - 1e-12)


def test_ensemble_weights_when_bad_floor_or_method_then_error():
    with pytest.raises(ValueError, match=r"floor expected in \[0, 1/4\]; was 0.3"):
        ensemble_weights(np.ones((2, 4)), floor=0.3)
    with pytest.raises(ValueError, match="was 'mean'"):
        ensemble_weights(np.ones((2, 4)), "mean")


def test_rank_ic_when_pooled_or_cross_sectional_then_matches_scipy():
    rng = np.random.default_rng(3)
    dates = np.repeat(np.arange(50), 8)
    y = rng.normal(size=400)
    p = 0.3 * y + rng.normal(size=400)
    assert rank_ic(p, y) == pytest.approx(spearmanr(p, y).statistic, abs=1e-12)
    per_date = [spearmanr(p[dates == d], y[dates == d]).statistic for d in range(50)]
    assert rank_ic(p, y, dates) == pytest.approx(np.mean(per_date), abs=1e-12)
