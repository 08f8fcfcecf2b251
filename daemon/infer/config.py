"""The ``model:`` section: the model card, the runtime, the ONNX provider and sizing (:mod:`alphad.daemon.infer`)."""
from __future__ import annotations

from typing import Literal

from alphad.daemon.config_base import Base, Fraction, NonNegFloat, PositiveInt


class Model(Base):
    card: str = "data/demo_model/model_card.json"
    #: What runs the card's ``model.onnx``: ``onnxruntime`` (an ONNX Runtime session), or
    #: ``compiled``, a Numba evaluator of its TreeEnsembleRegressor (``daemon/infer/trees.py``;
    #: same float32 predictions, no session call on the tick's path; CPU only, needs the ``onnx``
    #: package to read the file, and refuses a graph holding anything else).
    runtime: Literal["onnxruntime", "compiled"] = "onnxruntime"
    #: ``auto``: CUDA where onnxruntime-gpu sees a GPU, else CPU; or ``cpu`` / ``cuda``.
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    max_batch: PositiveInt = 64
    #: prediction / prediction_scale * weight_per_unit, capped at +-weight_cap.
    weight_per_unit: NonNegFloat = 0.01
    weight_cap: Fraction = 0.02
    min_abs_prediction: NonNegFloat = 0.0

    def __post_init__(self) -> None:
        if self.runtime == "compiled" and self.provider == "cuda":
            raise ValueError("provider 'cuda' needs runtime 'onnxruntime'; runtime 'compiled' runs on the CPU "
                             "(set provider: auto or cpu)")
