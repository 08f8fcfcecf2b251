"""A new model loaded beside the running one (``ctl reload`` with another model card).

The session is built and warmed on a thread of the infer process (ONNX Runtime releases
the GIL while it loads and runs), so the stage goes on predicting with the old model; the
stage swaps the two between batches once :attr:`ModelSwap.done` (no tick waits for a load,
none is dropped).  A card that fails a check (features, sha256, input name) or a graph that
does not load is refused: :attr:`error` says why and the old model stays.
"""
from __future__ import annotations

import threading
from pathlib import Path

from alphad.daemon.infer.session import ModelSession


class ModelSwap:
    def __init__(self, card: Path, features, model_cfg, gen: int):
        self.card, self.gen = card, gen
        self.session: ModelSession | None = None
        self.error = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._load, args=(features, model_cfg), name="model-swap", daemon=True)
        self._thread.start()

    def _load(self, features, m) -> None:
        try:
            session = ModelSession(self.card, features, provider=m.provider, max_batch=m.max_batch, runtime=m.runtime)
            session.warm()
            self.session = session
        except Exception as e:  # a bad card or graph: refused, said, the old model runs on
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()
