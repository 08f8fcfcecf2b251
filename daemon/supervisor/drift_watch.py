"""Live drift of the model's inputs: the PSI view the exporter serves, and the supervisor's
warning lines."""
from __future__ import annotations

import sys
from pathlib import Path

from alphad.daemon.config import resolve

#: Live rows before a drift warning: with fewer, PSI on 10 bins is mostly sampling noise.
MIN_DRIFT_ROWS = 2000


class DriftWatch:
    """PSI from the inference stage's live histograms (segment ``segment``), when the model
    card at ``card`` has a drift reference; ``view`` is None otherwise."""

    def __init__(self, base: Path, card: str, segment: str):
        from alphad.daemon.infer.model_card import read_card
        from alphad.ops.exporter import DriftView

        self.view = None
        self._warned: dict[str, float] = {}
        #: The running model's graph (``ctl reload`` swaps when a card in place was retrained).
        self.card_sha256 = ""
        try:
            card = read_card(resolve(base, card))
        except (FileNotFoundError, ValueError):
            return  # the infer stage reports the problem itself, by name
        self.card_sha256 = card.onnx_sha256
        if card.drift_reference is not None:
            self.view = DriftView(card.drift_reference, segment)

    def retarget(self, base: Path, card: str) -> None:
        """The model swapped (``ctl reload``): PSI against the new card's training histograms,
        when they have the running ones' shape (the infer stage keeps counting then); NaN
        until a restart otherwise."""
        import numpy as np

        from alphad.daemon.infer.model_card import read_card

        new = read_card(resolve(base, card))
        self.card_sha256, self._warned = new.onnx_sha256, {}
        if self.view is None:
            return
        ref = new.drift_reference
        fractions = np.asarray(ref.fractions, np.float64) if ref is not None else None
        if fractions is not None and fractions.shape == self.view.reference.shape:
            self.view.names, self.view.reference = list(ref.feature_names), fractions
        else:
            self.view.reference = np.full(self.view.reference.shape, np.nan)

    def warn(self, now: float) -> None:
        """One line per drifted feature (PSI > 0.25), at most every five minutes per feature,
        once enough rows are in for the estimate to mean something."""
        from alphad.daemon.infer.drift import PSI_WARN

        if self.view is None:
            return
        values = self.view.psi()
        if values is None or self.view.rows() < MIN_DRIFT_ROWS:
            return
        for name, v in zip(self.view.names, values):
            if v > PSI_WARN and now - self._warned.get(name, -1e9) > 300:
                self._warned[name] = now
                print(f"alphad: warning: feature {name} drifted from the training data (PSI {v:.3f} > {PSI_WARN})",
                      file=sys.stderr, flush=True)
