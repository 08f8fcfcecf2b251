"""The infer stage's model session over preallocated buffers: ONNX Runtime or compiled trees.

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
* ``runtime="compiled"`` (``model.runtime``) evaluates the same ONNX file's trees with a
  Numba kernel instead (:mod:`alphad.daemon.infer.trees`), behind the same interface
  (``x``, ``y``, ``run_bound``, ``predict``, ``warm``); ``providers`` is then ``["compiled"]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from alphad.daemon.infer.bound_runner import BoundRunner
from alphad.daemon.infer.model_card import ModelCard, read_card, sha256_file


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
    provider : ``auto``, ``cpu`` or ``cuda`` (ONNX Runtime's; ``compiled`` runs on the CPU).
    max_batch : largest batch :meth:`predict` accepts.
    runtime : ``onnxruntime`` or ``compiled``.
    """

    def __init__(self, card_path: str | Path, feature_names: list[str] | tuple[str, ...], *,
                 provider: str = "auto", max_batch: int = 64, runtime: str = "onnxruntime"):
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
        self.n_features = len(feature_names)
        self.max_batch = max_batch
        if runtime == "compiled":
            self._init_compiled(onnx_path, provider)
        elif runtime == "onnxruntime":
            self._init_onnxruntime(onnx_path, provider)
        else:
            raise ValueError(f"runtime expected 'onnxruntime' or 'compiled'; was {runtime!r}")
        self.x, self.y = self.runner.x, self.runner.y
        self.fast_path = self.runner.fast
        self.run_bound = self.runner.run_bound  # predict the first n rows already in x; a view of y

    def _init_onnxruntime(self, onnx_path: Path, provider: str) -> None:
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
        inp = self.session.get_inputs()[0]
        if inp.name != self.card.input_name:
            raise ModelMismatch(f"{onnx_path}: input is named {inp.name!r}, the card says {self.card.input_name!r}")
        self.input_name = inp.name
        self.output_name = self.card.output_name or self.session.get_outputs()[0].name
        # One binding per batch size: shapes are part of a binding, and building them
        # here keeps the per-batch path free of allocation.
        self.runner = BoundRunner(self.session, self.n_features, self.max_batch, self.output_name)

    def _init_compiled(self, onnx_path: Path, provider: str) -> None:
        from alphad.daemon.infer.trees import CompiledRunner, load_trees

        if provider == "cuda":
            raise RuntimeError("model.provider 'cuda' needs model.runtime 'onnxruntime'; 'compiled' runs on the CPU")
        # The file whose sha256 was just checked; a graph it cannot evaluate exactly is refused.
        trees = load_trees(onnx_path, input_name=self.card.input_name, output_name=self.card.output_name,
                           n_features=self.n_features)
        self.session = None
        self.providers = ["compiled"]
        self.input_name = self.card.input_name
        self.output_name = trees.output_name
        self.runner = CompiledRunner(trees, self.max_batch)

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
