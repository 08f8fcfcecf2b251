"""The inference stage's ONNX session: refuses mismatched models, matches LightGBM."""
from __future__ import annotations

import shutil

import lightgbm as lgb
import numpy as np
import pytest

from alphad.daemon.infer.core import InferCore
from alphad.daemon.infer.session import ModelMismatch, ModelSession
from alphad.ipc.dtypes import FEATURE_DTYPE, SIGNAL_DTYPE
from alphad.kernels.quote_features import FEATURE_NAMES


@pytest.fixture
def card(repo_root):
    return repo_root / "data/demo_model/model_card.json"


def test_session_when_demo_model_then_cpu_provider_and_matches_lightgbm(card, repo_root):
    s = ModelSession(card, FEATURE_NAMES, provider="cpu", max_batch=64)
    assert s.providers == ["CPUExecutionProvider"]
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (64, len(FEATURE_NAMES))).astype(np.float32)
    booster = lgb.Booster(model_file=str(repo_root / "data/demo_model/model.txt"))
    np.testing.assert_allclose(s.predict(x), booster.predict(x), atol=1e-5)
    np.testing.assert_allclose(s.predict(x[:1]), booster.predict(x[:1]), atol=1e-5)


def test_session_when_feature_list_differs_then_refuses_naming_both(card):
    names = list(FEATURE_NAMES[::-1])
    with pytest.raises(ModelMismatch, match="the model expects features .* but the features stage publishes"):
        ModelSession(card, names)


@pytest.mark.parametrize("runtime", ["onnxruntime", "compiled"])
def test_session_when_onnx_file_changed_then_refuses(card, tmp_path, runtime):
    for f in card.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelMismatch, match="sha256"):
        ModelSession(tmp_path / "model_card.json", FEATURE_NAMES, runtime=runtime)


def test_session_when_cuda_asked_without_gpu_build_then_clear_error(card):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        s = ModelSession(card, FEATURE_NAMES, provider="cuda")
        assert s.providers[0] == "CUDAExecutionProvider"
    else:
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            ModelSession(card, FEATURE_NAMES, provider="cuda")


def test_infer_core_when_rows_then_signals_capped_and_carry_origin(card):
    s = ModelSession(card, FEATURE_NAMES, provider="cpu", max_batch=4)
    core = InferCore(s, weight_per_unit=10.0, weight_cap=0.02)
    rows = np.zeros(6, FEATURE_DTYPE)  # more rows than max_batch: processed in chunks
    rng = np.random.default_rng(2)
    rows["x"][:, :8] = rng.normal(0, 3, (6, 8))
    rows["t_origin"] = np.arange(6) + 100
    rows["instrument"] = 1
    rows["mid"] = 50.0
    out = np.zeros(6, SIGNAL_DTYPE)
    assert core.on_rows(rows, 6, out, now=7) == 6
    assert np.all(np.abs(out["target_weight"]) <= 0.02)
    assert list(out["t_origin"]) == list(range(100, 106)) and np.all(out["ts"] == 7)
    np.testing.assert_allclose(out["prediction"], s.predict(rows["x"][:4, :8]).tolist() + s.predict(rows["x"][4:, :8]).tolist(), atol=1e-6)
    assert np.all(out["ref_px"] == 50.0)


def test_bound_runner_when_session_lacks_private_entry_then_public_method_with_same_predictions(card):
    from alphad.daemon.infer.bound_runner import BoundRunner

    s = ModelSession(card, FEATURE_NAMES, provider="cpu", max_batch=4)
    assert s.fast_path is s.runner.fast
    x = np.random.default_rng(3).normal(0, 1, (3, len(FEATURE_NAMES))).astype(np.float32)
    expected = s.session.run(None, {s.input_name: x})[0][:, 0]
    np.testing.assert_allclose(s.predict(x), expected, atol=1e-6)  # the path this ONNX Runtime offers

    class PublicOnly:  # a wrapper as another ONNX Runtime might have it: no `_sess`
        calls = 0

        def __getattr__(self, name):
            if name == "_sess":
                raise AttributeError(name)
            return getattr(s.session, name)

        def run_with_iobinding(self, io, run_options=None):
            PublicOnly.calls += 1
            s.session.run_with_iobinding(io, run_options)

    runner = BoundRunner(PublicOnly(), len(FEATURE_NAMES), max_batch=4)
    assert runner.fast is False
    np.testing.assert_allclose(runner.run(x), expected, atol=1e-6)
    assert PublicOnly.calls == 1


def test_rehearse_when_run_then_only_the_scratch_output_changes_and_no_drift_is_counted(card):
    s = ModelSession(card, FEATURE_NAMES, provider="cpu", max_batch=4)
    ref = s.card.drift_reference
    assert ref is not None, "the demo card carries a drift reference"
    counts = np.zeros((len(ref.feature_names), len(ref.fractions[0])), np.int64)
    core = InferCore(s, weight_per_unit=0.01, weight_cap=0.02, drift_counts=counts)
    rows = np.zeros(2, FEATURE_DTYPE)
    rows["x"][:, :8] = np.random.default_rng(4).normal(0, 1, (2, 8))
    rows["t_origin"], rows["instrument"], rows["mid"] = 11, 1, 100.0
    live = np.zeros(2, SIGNAL_DTYPE)
    core.on_rows(rows, 1, live, now=5)
    counted = counts.copy()
    assert counted.sum() == len(FEATURE_NAMES)  # one live row, one count per feature
    before = live.copy()
    scratch = np.zeros(2, SIGNAL_DTYPE)
    core.rehearse(rows, scratch)
    assert live.tobytes() == before.tobytes()  # every field, the NaN of linear sizing's multipliers included
    assert np.array_equal(counts, counted)
    assert scratch[0]["prediction"] == live[0]["prediction"] and scratch[0]["t_origin"] == 11
