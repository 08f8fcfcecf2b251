"""The inference stage's ONNX session: refuses mismatched models, matches LightGBM."""
from __future__ import annotations

import shutil

import lightgbm as lgb
import numpy as np
import pytest

from alphad.daemon.infer import InferCore, ModelMismatch, ModelSession
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


def test_session_when_onnx_file_changed_then_refuses(card, tmp_path):
    for f in card.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelMismatch, match="sha256"):
        ModelSession(tmp_path / "model_card.json", FEATURE_NAMES)


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
