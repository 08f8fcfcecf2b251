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
        try:
            ref = read_card(resolve(base, card)).drift_reference
        except (FileNotFoundError, ValueError):
            return  # the infer stage reports the problem itself, by name
        if ref is not None:
            self.view = DriftView(ref, segment)

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
