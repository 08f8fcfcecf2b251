"""The compiled tree evaluator (``model.runtime: compiled``) against ONNX Runtime.

Equality is checked as max |compiled - ONNX Runtime| <= 1e-6, absolute (predictions are bps for
the demo model, daily log returns for the ensemble: all well below 1e3, so 1e-6 absolute is
tighter than float32 rounding would allow a different summation order on large values).
Both sum float32 leaf weights in the same order, so the difference found is 0.
"""
from __future__ import annotations

import shutil

import msgspec
import numpy as np
import onnx
import pytest
from onnx import helper

from alphad.daemon.infer.config import Model
from alphad.daemon.infer.model_card import read_card, sha256_file, write_card
from alphad.daemon.infer.session import ModelSession
from alphad.daemon.infer.trees import UnsupportedModel, load_trees
from alphad.ops.export_onnx import make_session

TOL = 1e-6
N_ROWS = 10_000


def ort_predict(onnx_path, x: np.ndarray) -> np.ndarray:
    return make_session(onnx_path).run(None, {"input": x})[0][:, 0]


def with_missing(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of the real rows, each with one or more features replaced by NaN."""
    rng = np.random.default_rng(seed)
    rows = x[rng.choice(len(x), n, replace=False)].copy()
    rows[rng.random(rows.shape) < 0.3] = np.nan
    rows[0] = np.nan  # every feature missing
    return rows


@pytest.fixture(scope="module")
def demo_card(repo_root):
    return repo_root / "data/demo_model/model_card.json"


@pytest.fixture(scope="module")
def demo_rows(repo_root):
    """10,000 feature rows of the demo replay, computed as ``alphad train-demo`` computes them."""
    from alphad.daemon.config import load_config
    from alphad.daemon.feed.sources import load_events
    from alphad.kernels.quote_features import FEATURE_SETS, quote_features_batch

    cfg, base = load_config(repo_root / "config.yaml")
    events = load_events(cfg.feed, base, cfg.universe)
    f = cfg.features
    rows = quote_features_batch(events, len(cfg.universe), fast=f.ema_fast_events, slow=f.ema_slow_events,
                                quotes_only=f.trigger == "quote", feature_set=f.set, **f.state_params())
    x = rows["x"][:, :len(FEATURE_SETS[f.set])].astype(np.float32)
    assert len(x) >= N_ROWS, f"the demo replay gave {len(x)} feature rows, expected at least {N_ROWS}"
    return x[np.linspace(0, len(x) - 1, N_ROWS).astype(np.int64)]


@pytest.fixture(scope="module")
def daily_rows(shared_data):
    """10,000 rows of the training panel's features, and its warm-up rows (real NaN features)."""
    from alphad.ops import dataset as dsm

    bars = dsm.load_daily(shared_data / "daily/us_equities_daily_1999-2021.csv.gz")
    _, x = dsm.feature_matrix(bars, "daily")
    x = x.astype(np.float32)
    full = np.all(np.isfinite(x), axis=1)
    rows = x[full][np.linspace(0, full.sum() - 1, N_ROWS).astype(np.int64)]
    return rows, x[~full]


def test_compiled_when_demo_model_on_replay_rows_then_equals_onnxruntime(demo_card, demo_rows):
    path = demo_card.parent / "model.onnx"
    trees = load_trees(path, n_features=demo_rows.shape[1])
    for x in (demo_rows, with_missing(demo_rows, 1000, seed=1)):
        diff = np.abs(trees.predict(x) - ort_predict(path, x)).max()
        assert diff <= TOL, f"max |compiled - ONNX Runtime| = {diff:.3g}"


@pytest.mark.data
def test_compiled_when_daily_ensemble_on_training_rows_then_equals_onnxruntime(daily_run, daily_rows):
    rows, warmup = daily_rows
    card = read_card(daily_run / "model_card.json")
    path = daily_run / card.onnx_file
    trees = load_trees(path, input_name=card.input_name, output_name=card.output_name,
                       n_features=len(card.feature_names))
    assert len(warmup) > 1000 and np.isnan(warmup).any()
    for x in (rows, warmup):
        diff = np.abs(trees.predict(x) - ort_predict(path, x)).max()
        assert diff <= TOL, f"max |compiled - ONNX Runtime| = {diff:.3g}"


def test_session_when_runtime_compiled_then_run_bound_equals_onnxruntime(demo_card, demo_rows):
    from alphad.kernels.quote_features import FEATURE_NAMES

    ort = ModelSession(demo_card, FEATURE_NAMES, provider="cpu", max_batch=64)
    comp = ModelSession(demo_card, FEATURE_NAMES, max_batch=64, runtime="compiled")
    assert comp.providers == ["compiled"] and comp.fast_path
    for a, b in ((comp.x, ort.x), (comp.y, ort.y)):  # the buffers InferCore's compiled steps are typed on
        assert (a.dtype, a.shape, a.flags.c_contiguous) == (b.dtype, b.shape, b.flags.c_contiguous)
    comp.warm(rounds=2)
    sizes = np.random.default_rng(5).integers(1, 65, 400)
    done = 0
    for n in sizes:  # batches of every size, rows written into x as InferCore gathers them
        chunk = demo_rows[done % (N_ROWS - 64):][:n]
        ort.x[:n] = chunk
        comp.x[:n] = chunk
        got, want = comp.run_bound(n), ort.run_bound(n)
        assert got.shape == want.shape == (n,) and got.dtype == want.dtype
        assert np.abs(got - want).max() <= TOL
        done += n
    np.testing.assert_allclose(comp.predict(demo_rows[:3]), ort.predict(demo_rows[:3]), rtol=0, atol=TOL)
    with pytest.raises(ValueError, match="batch of 1..64 rows expected, was 65"):
        comp.run_bound(65)


def test_infer_core_when_runtime_compiled_then_same_signals_as_onnxruntime(demo_card, demo_rows):
    from alphad.daemon.infer.core import InferCore
    from alphad.ipc.dtypes import FEATURE_DTYPE, SIGNAL_DTYPE
    from alphad.kernels.quote_features import FEATURE_NAMES

    rows = np.zeros(150, FEATURE_DTYPE)  # more rows than max_batch: run in model batches
    rows["x"][:, :len(FEATURE_NAMES)] = demo_rows[:150]
    rows["t_origin"], rows["instrument"], rows["mid"] = np.arange(150), 1, 100.0
    signals = {}
    for runtime in ("onnxruntime", "compiled"):
        s = ModelSession(demo_card, FEATURE_NAMES, provider="cpu", max_batch=64, runtime=runtime)
        core = InferCore(s, weight_per_unit=0.01, weight_cap=0.02)
        out = np.zeros(150, SIGNAL_DTYPE)
        assert core.on_rows(rows, 150, out, now=9) == 150
        core.rehearse(rows, np.zeros(2, SIGNAL_DTYPE))
        signals[runtime] = out
    assert np.abs(signals["compiled"]["prediction"] - signals["onnxruntime"]["prediction"]).max() <= TOL
    assert np.abs(signals["compiled"]["target_weight"] - signals["onnxruntime"]["target_weight"]).max() <= TOL


def test_config_when_compiled_with_cuda_then_refused():
    assert Model().runtime == "onnxruntime"
    with pytest.raises(ValueError, match="runtime 'compiled' runs on the CPU"):
        Model(runtime="compiled", provider="cuda")


def _tree_attr(model, name, value):
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor")
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def _leq_to_lt(model):
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor")
    modes = next(a for a in node.attribute if a.name == "nodes_modes")
    modes.strings[0] = b"BRANCH_LT"


def _scaled(model):  # the "combined" build's shape: member output * weight
    g = model.graph
    g.initializer.append(onnx.numpy_helper.from_array(np.array([0.5], np.float32), "w"))
    g.node[-1].output[0] = "unscaled"
    g.node.append(helper.make_node("Mul", ["unscaled", "w"], [g.output[0].name], name="scale"))


@pytest.mark.parametrize("edit, expected", [
    (_leq_to_lt, r"nodes_modes \['BRANCH_LT'\]"),
    (lambda m: _tree_attr(m, "post_transform", "LOGISTIC"), "post_transform expected NONE, found LOGISTIC"),
    (lambda m: _tree_attr(m, "aggregate_function", "AVERAGE"), "aggregate_function expected SUM, found AVERAGE"),
    (lambda m: _tree_attr(m, "base_values_as_tensor", onnx.numpy_helper.from_array(np.zeros(1))),
     r"attribute\(s\) \['base_values_as_tensor'\]"),
    (_scaled, "op Mul .*not supported by model.runtime 'compiled'"),
])
def test_load_when_graph_holds_what_compiled_cannot_evaluate_then_error_names_it_and_the_file(
        demo_card, tmp_path, edit, expected):
    model = onnx.load(str(demo_card.parent / "model.onnx"))
    edit(model)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UnsupportedModel, match=expected) as e:
        load_trees(path)
    assert str(path) in str(e.value)


def test_session_when_runtime_compiled_and_graph_unsupported_then_refuses_to_start(demo_card, tmp_path):
    from alphad.kernels.quote_features import FEATURE_NAMES

    for f in demo_card.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    model = onnx.load(str(tmp_path / "model.onnx"))
    _leq_to_lt(model)
    (tmp_path / "model.onnx").write_bytes(model.SerializeToString())
    card = read_card(tmp_path / "model_card.json")
    card = msgspec.structs.replace(card, onnx_sha256=sha256_file(tmp_path / "model.onnx"))
    write_card(tmp_path / "model_card.json", card)
    ModelSession(tmp_path / "model_card.json", FEATURE_NAMES)  # ONNX Runtime evaluates BRANCH_LT
    with pytest.raises(UnsupportedModel, match="BRANCH_LT"):
        ModelSession(tmp_path / "model_card.json", FEATURE_NAMES, runtime="compiled")
