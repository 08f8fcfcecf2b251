"""Run an ONNX Runtime session over preallocated, bound input and output buffers.

The inference stage's model call and the offline tools' batch runs share this one
class.  It imports nothing heavy (onnxruntime is imported by whoever builds the
session), so every stage process can import the daemon's modules cheaply.
"""
from __future__ import annotations

import numpy as np


class BoundRunner:
    """Preallocated IOBinding over a session: run up to ``max_batch`` rows.

    Input and output buffers are allocated once; :meth:`run` copies nothing
    but the caller's rows into the input buffer and returns a view of the
    output buffer (valid until the next call).

    Each run calls the session's native ``run_with_iobinding`` with one
    preallocated ``RunOptions``.  The public ``InferenceSession.run_with_iobinding``
    (ONNX Runtime 1.32) adds Python-level checks for WebGPU graph capture, and with
    ``run_options=None`` the C++ side builds a default RunOptions on every call:
    4.0 µs against 3.0 µs for a batch-1 run of the demo model on the CI host
    (BENCHMARKS.md, "The model call itself").  A RunOptions passed through the public method costs
    far more: its ``gpu_graph_id`` lookup raises and catches a C++ exception per
    call (~44 µs).  ``_sess`` and ``_iobinding`` are private attributes of the
    Python wrapper; where they are missing the public method is used and
    :attr:`fast` is False.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    n_features : int
    max_batch : int
        Largest batch; a binding per batch size 1..max_batch is prepared so a
        call allocates nothing.
    output_name : str, optional
        The output to bind (default: the graph's first).
    """

    def __init__(self, session, n_features: int, max_batch: int = 64, output_name: str | None = None) -> None:
        import onnxruntime as ort

        if max_batch < 1:
            raise ValueError(f"max_batch: expected >= 1; was {max_batch}")
        self.session = session
        self.n_features = n_features
        self.max_batch = max_batch
        self.x = np.zeros((max_batch, n_features), np.float32)
        self.y = np.zeros((max_batch, 1), np.float32)
        in_name = session.get_inputs()[0].name
        out_name = output_name or session.get_outputs()[0].name
        # OrtValues created from numpy share its memory (CPU): the bindings see every
        # write into x and every prediction lands in y.
        self._keep = []
        bindings = [None]
        for b in range(1, max_batch + 1):
            xo = ort.OrtValue.ortvalue_from_numpy(self.x[:b])
            yo = ort.OrtValue.ortvalue_from_numpy(self.y[:b])
            io = session.io_binding()
            io.bind_ortvalue_input(in_name, xo)
            io.bind_ortvalue_output(out_name, yo)
            self._keep.append((xo, yo))
            bindings.append(io)
        native = getattr(getattr(session, "_sess", None), "run_with_iobinding", None)
        raw = [getattr(io, "_iobinding", None) for io in bindings[1:]]
        self.fast = native is not None and all(r is not None for r in raw)
        if self.fast:
            run_options = ort.RunOptions()
            self._run = native
            self._args = [None] + [(r, run_options) for r in raw]
        else:
            self._run = session.run_with_iobinding
            self._args = [None] + [(io,) for io in bindings[1:]]

    def run(self, rows: np.ndarray) -> np.ndarray:
        """Predictions for ``rows`` (float32, shape (b, n_features), b <= max_batch)."""
        b = rows.shape[0]
        if not (1 <= b <= self.max_batch) or rows.shape[1] != self.n_features:
            raise ValueError(
                f"rows: expected shape (1..{self.max_batch}, {self.n_features}); was {rows.shape}"
            )
        self.x[:b] = rows
        self._run(*self._args[b])
        return self.y[:b, 0]

    def run_bound(self, b: int) -> np.ndarray:
        """Run on the first ``b`` rows already written into :attr:`x`."""
        self._run(*self._args[b])
        return self.y[:b, 0]
