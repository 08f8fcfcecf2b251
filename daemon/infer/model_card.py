"""The model card: what a trained model promises the inference stage.

``model_card.json`` sits beside ``model.onnx``.  The inference stage refuses to
start when the card's ordered feature list differs from the list the features
stage publishes, or when the ONNX file's sha256 differs from the card's.

A card from ``alphad train`` also records its training window, ``train_start`` and
``train_end``, as ISO dates (``YYYY-MM-DD``, UTC calendar days): ``train_start`` is
the first training row's date, ``train_end`` the last bar date any training label
read (the end of the last label's horizon, not the last feature date).  ``alphad
backtest`` and ``alphad replay`` refuse a feed that starts on or before
``train_end`` (:mod:`alphad.daemon.shell.sample_window`).  A day is the unit: daily
bars carry no finer time, and a feed starting later on ``train_end``'s own day
still replays the bar a label saw.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import msgspec

from .drift import DriftReference


class FoldResult(msgspec.Struct, kw_only=True, frozen=True):
    fold: int
    train_rows: int
    test_rows: int
    ic: float                      # Spearman rank IC of prediction vs label on the test fold


class GateResult(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    value: float
    threshold: float
    passed: bool


class ModelCard(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=False):
    """Fields every card has; training may add more (they are kept, not rejected)."""

    feature_names: list[str]       # ordered: column i of the model input is feature_names[i]
    label: str                     # e.g. "fwd_mid_return_h20"
    onnx_file: str = "model.onnx"
    onnx_sha256: str
    input_name: str = "input"
    output_name: str = ""          # empty: the first output of the graph
    data_sha256: str = ""
    cv_scheme: str = ""
    folds: list[FoldResult] = []
    gates: list[GateResult] = []
    ensemble_weights: list[float] = []
    oos_win_rate: float = 0.5      # used by fractional Kelly sizing
    oos_payoff_ratio: float = 1.0
    prediction_scale: float = 1.0  # typical |prediction| (std on OOS rows); sizing divides by it
    created_by: str = ""           # command that produced the model
    #: Training histograms per feature; with them the inference stage exports live PSI drift.
    drift_reference: DriftReference | None = None
    #: The kernels' feature set the model was trained on (kernels/feature_sets.py); empty: not recorded.
    feature_set: str = ""
    #: Training window, inclusive ISO dates (see the module docstring); None: not recorded
    #: (older cards, the demo model): no in-sample check is possible.
    train_start: str | None = None
    train_end: str | None = None

    def __post_init__(self) -> None:
        start, end = (_iso_date(name, v) for name, v in (("train_start", self.train_start),
                                                         ("train_end", self.train_end)))
        if start is not None and end is not None and start > end:
            raise ValueError(f"train_start {self.train_start} expected on or before train_end {self.train_end}")

    @property
    def train_end_date(self) -> dt.date | None:
        """The last day a training label read; None when the card does not say."""
        return _iso_date("train_end", self.train_end)


def _iso_date(field: str, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} expected an ISO date YYYY-MM-DD, found {value!r}") from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(path: str | Path) -> ModelCard:
    """Decode ``model_card.json``; errors name the file and the offending field."""
    path = Path(path)
    try:
        return msgspec.json.decode(path.read_bytes(), type=ModelCard)
    except FileNotFoundError:
        raise FileNotFoundError(f"model card expected at {path} was not found") from None
    except msgspec.ValidationError as e:
        raise ValueError(f"{path}: invalid model card: {e}") from None


def write_card(path: str | Path, card: ModelCard) -> None:
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(card), indent=2) + b"\n")
