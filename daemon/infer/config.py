"""The ``model:`` section: the model card, the ONNX provider and sizing (:mod:`alphad.daemon.infer`)."""
from __future__ import annotations

from typing import Literal

from alphad.daemon.config_base import Base, Fraction, NonNegFloat, PositiveInt


class Model(Base):
    card: str = "data/demo_model/model_card.json"
    #: ``auto``: CUDA where onnxruntime-gpu sees a GPU, else CPU; or ``cpu`` / ``cuda``.
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    max_batch: PositiveInt = 64
    #: prediction / prediction_scale * weight_per_unit, capped at +-weight_cap.
    weight_per_unit: NonNegFloat = 0.01
    weight_cap: Fraction = 0.02
    min_abs_prediction: NonNegFloat = 0.0
