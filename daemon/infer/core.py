"""Inference stage core: an ONNX Runtime session over preallocated buffers.

* The model card's ordered feature list must equal the list the features stage
  publishes, and the ONNX file's sha256 must equal the card's; otherwise the
  stage refuses to start.
* Providers: CUDA where onnxruntime-gpu sees a GPU (``provider: auto``), else
  CPU; ORT silently falls back to CPU, so the providers *in use* are read back
  from the session and asserted against what was asked.
* Thread pools of one (intra/inter op), sequential execution: library pools
  turn p99 into milliseconds on a loaded host (DESIGN.md).
* IOBinding over preallocated numpy input/output buffers, one binding per
  batch size 1..B built at start, so a batch run allocates nothing
  (:class:`alphad.daemon.infer.bound_runner.BoundRunner`, shared with the offline tools).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from alphad.daemon.infer.drift import histogram_update
from alphad.daemon.infer.model_card import ModelCard, read_card, sha256_file

from alphad.daemon.infer.bound_runner import BoundRunner


class ModelMismatch(RuntimeError):
    """The model card does not fit the running features stage or its ONNX file."""


def choose_providers(provider: str) -> list[str]:
    # onnxruntime is imported where it is used: every stage process imports this module
    # (through the pipeline), and only the infer stage needs the ~30 ms library.
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(f"model.provider is 'cuda' but this onnxruntime offers only {available} "
                               "(install the gpu extra: onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class ModelSession:
    """Load ``model_card.json`` + its ONNX graph and predict batches of rows.

    Parameters
    ----------
    card_path : path of model_card.json; the ONNX file is beside it.
    feature_names : the features stage's ordered list; must equal the card's.
    provider : ``auto``, ``cpu`` or ``cuda``.
    max_batch : largest batch :meth:`predict` accepts.
    """

    def __init__(self, card_path: str | Path, feature_names: list[str] | tuple[str, ...], *,
                 provider: str = "auto", max_batch: int = 64):
        card_path = Path(card_path)
        self.card: ModelCard = read_card(card_path)
        if list(self.card.feature_names) != list(feature_names):
            raise ModelMismatch(
                f"{card_path}: the model expects features {self.card.feature_names} but the features stage "
                f"publishes {list(feature_names)}; retrain the model on this feature set"
            )
        onnx_path = card_path.parent / self.card.onnx_file
        digest = sha256_file(onnx_path)
        if digest != self.card.onnx_sha256:
            raise ModelMismatch(f"{onnx_path}: sha256 {digest} differs from the card's {self.card.onnx_sha256}")
        import onnxruntime as ort  # lazily: see choose_providers

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        wanted = choose_providers(provider)
        self.session = ort.InferenceSession(str(onnx_path), sess_options=so, providers=wanted)
        self.providers = self.session.get_providers()
        if self.providers[0] != wanted[0]:
            raise RuntimeError(f"asked ONNX Runtime for {wanted[0]} but the session runs on {self.providers}")
        self.n_features = len(feature_names)
        inp = self.session.get_inputs()[0]
        if inp.name != self.card.input_name:
            raise ModelMismatch(f"{onnx_path}: input is named {inp.name!r}, the card says {self.card.input_name!r}")
        self.input_name = inp.name
        self.output_name = self.card.output_name or self.session.get_outputs()[0].name
        self.max_batch = max_batch
        # One binding per batch size: shapes are part of a binding, and building them
        # here keeps the per-batch path free of allocation.
        self.runner = BoundRunner(self.session, self.n_features, max_batch, self.output_name)
        self.x, self.y = self.runner.x, self.runner.y
        self.fast_path = self.runner.fast
        self.run_bound = self.runner.run_bound  # predict the first n rows already in x; a view of y

    def predict(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if not 0 < n <= self.max_batch:
            raise ValueError(f"batch of 1..{self.max_batch} rows expected, was {n}")
        self.x[:n] = x
        return self.run_bound(n).copy()

    def warm(self, rounds: int = 20) -> None:
        for n in (1, self.max_batch):
            for _ in range(rounds):
                self.run_bound(n)


@njit(cache=True)
def gather_rows(rows, n, n_features, x):
    """Copy the feature vectors of ``rows[:n]`` into the model input ``x``."""
    for k in range(n):
        for j in range(n_features):
            x[k, j] = rows[k].x[j]


@njit(cache=True)
def count_drift(counts, edges, x, n):
    """Count the first ``n`` model input rows into the live drift histograms."""
    for k in range(n):
        histogram_update(counts, edges, x[k])


@njit(cache=True)
def size_signals(rows, n, y, scale, weight_per_unit, weight_cap, min_abs_pred, out, now):
    """Prediction -> target weight: ``y/scale * weight_per_unit`` capped at ±``weight_cap``.

    Returns the number of signals written (rows whose |prediction| is below
    ``min_abs_pred`` still emit a signal with weight 0: flat is a target too).
    """
    for k in range(n):
        p = y[k]
        w = 0.0
        if abs(p) >= min_abs_pred:
            w = p / scale * weight_per_unit
            if w > weight_cap:
                w = weight_cap
            elif w < -weight_cap:
                w = -weight_cap
        s = out[k]
        s.t_origin = rows[k].t_origin
        s.ts = now
        s.seq = rows[k].seq
        s.instrument = rows[k].instrument
        s.prediction = p
        s.target_weight = w
        s.ref_px = rows[k].mid
    return n


class InferCore:
    """Rows in, sized signals out.

    With ``drift_counts`` (int64, features x bins) and a card that carries a drift
    reference, every model input row is also counted into the live histograms the
    exporter turns into PSI (``alphad_feature_psi``).
    """

    def __init__(self, session: ModelSession, *, weight_per_unit: float, weight_cap: float,
                 min_abs_prediction: float = 0.0, drift_counts: np.ndarray | None = None):
        self.session = session
        ref = session.card.drift_reference
        self.drift_counts = drift_counts if ref is not None else None
        self.drift_edges = np.asarray(ref.edges, np.float64) if ref is not None else None
        self._count = count_drift
        self.scale = float(session.card.prediction_scale) or 1.0
        self.weight_per_unit = weight_per_unit
        self.weight_cap = weight_cap
        self.min_abs_prediction = min_abs_prediction
        self._gather, self._size = gather_rows, size_signals

    def drift_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)`` for the compiled steps: empty 2-D arrays when no drift is
        counted (``counts.shape[0] == 0`` tells a step to skip it)."""
        if self.drift_counts is None:
            return np.zeros((0, 0), np.int64), np.zeros((0, 0))
        return self.drift_counts, self.drift_edges

    def bind(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Bind the njit helpers to their compiled entry points for these buffers' types
        (see :func:`alphad.daemon.shell.compiled.bind`); call once while warming."""
        from alphad.daemon.shell.compiled import bind

        s = self.session
        self._gather = bind(gather_rows, rows, 1, s.n_features, s.x)
        self._size = bind(size_signals, rows, 1, s.y[:1, 0], self.scale, self.weight_per_unit, self.weight_cap,
                          self.min_abs_prediction, out, 0)
        if self.drift_counts is not None:
            self._count = bind(count_drift, self.drift_counts, self.drift_edges, s.x, 0)

    def rehearse(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Run the step on ``rows[:1]`` into the scratch ``out``, counting no drift.

        Between spaced ticks a sleeping process finds the model's code and data evicted
        (``python -m alphad.ops.infer_bench`` shows ~4 µs hot against 20–45 µs after a
        1 ms sleep); running the very same calls now and then keeps them in cache.  The
        session's input and output buffers are reused: they hold nothing between steps.
        """
        s = self.session
        self._gather(rows, 1, s.n_features, s.x)
        self._size(rows, 1, s.run_bound(1), self.scale, self.weight_per_unit, self.weight_cap,
                   self.min_abs_prediction, out, 0)

    def on_rows(self, rows: np.ndarray, n: int, out: np.ndarray, now: int) -> int:
        s = self.session
        if n <= s.max_batch:  # the usual case: one model run, no slicing
            self._gather(rows, n, s.n_features, s.x)
            if self.drift_counts is not None:
                self._count(self.drift_counts, self.drift_edges, s.x, n)
            self._size(rows, n, s.run_bound(n), self.scale, self.weight_per_unit, self.weight_cap,
                       self.min_abs_prediction, out, now)
            return n
        done = 0
        while done < n:  # a ring batch larger than the model's max batch
            m = min(n - done, s.max_batch)
            chunk = rows[done : done + m]
            gather_rows(chunk, m, s.n_features, s.x)
            if self.drift_counts is not None:
                count_drift(self.drift_counts, self.drift_edges, s.x, m)
            size_signals(chunk, m, s.run_bound(m), self.scale, self.weight_per_unit, self.weight_cap,
                         self.min_abs_prediction, out[done : done + m], now)
            done += m
        return n
