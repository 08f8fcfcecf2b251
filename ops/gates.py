"""Validation gates: a model that fails one is not exported.

Three gates, each a :class:`alphad.daemon.infer.model_card.GateResult`:

``min_mean_ic``
    mean out-of-sample IC over folds >= threshold.
``min_ic_tstat``
    t-statistic of the fold ICs, ``mean / (std / sqrt(n_folds))`` >= threshold.
``max_is_oos_ratio``
    mean in-sample IC / mean out-of-sample IC <= threshold (an overfit model
    looks far better on its training rows than on unseen ones).  With a mean
    OOS IC <= 0 the ratio is +inf and the gate fails.
"""
from __future__ import annotations

import math

import msgspec
import numpy as np

from alphad.daemon.infer.model_card import GateResult

__all__ = ["GateConfig", "GateFailed", "ic_tstat", "evaluate_gates", "check_gates"]


class GateConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Gate thresholds (from the training config's ``gates`` section)."""

    min_mean_ic: float = 0.01
    min_ic_tstat: float = 2.0
    max_is_oos_ratio: float = 10.0


class GateFailed(RuntimeError):
    """Raised by :func:`check_gates`; ``results`` holds every gate's outcome."""

    def __init__(self, results: list[GateResult]) -> None:
        self.results = results
        failed = [r for r in results if not r.passed]
        parts = [f"{r.name}: was {r.value:.4g}, threshold {r.threshold:.4g}" for r in failed]
        super().__init__("model refused, gate(s) failed: " + "; ".join(parts))


def ic_tstat(fold_ic) -> float:
    """t-statistic of the mean fold IC: ``mean / (std(ddof=1) / sqrt(n))``.

    Returns 0.0 with fewer than 2 folds, +/-inf when every fold has the same
    non-zero IC.
    """
    a = np.asarray(fold_ic, np.float64)
    if a.size < 2:
        return 0.0
    m = float(a.mean())
    s = float(a.std(ddof=1))
    if s == 0.0:
        return 0.0 if m == 0.0 else math.copysign(math.inf, m)
    return m / (s / math.sqrt(a.size))


def evaluate_gates(oos_fold_ic, is_fold_ic, cfg: GateConfig) -> list[GateResult]:
    """Evaluate every gate.

    Parameters
    ----------
    oos_fold_ic : array-like, shape (n_folds,)
        Out-of-sample IC of each fold.
    is_fold_ic : array-like, shape (n_folds,)
        In-sample IC of each fold's model on its own training rows.
    cfg : GateConfig

    Returns
    -------
    list of GateResult
        In the order min_mean_ic, min_ic_tstat, max_is_oos_ratio.
    """
    oos = np.asarray(oos_fold_ic, np.float64)
    ins = np.asarray(is_fold_ic, np.float64)
    if oos.size == 0:
        raise ValueError("evaluate_gates: expected at least one fold IC; was none")
    if not np.all(np.isfinite(oos)):
        raise ValueError(f"evaluate_gates: expected finite fold ICs; were {oos.tolist()}")
    mean_oos = float(oos.mean())
    t = ic_tstat(oos)
    ratio = float(ins.mean()) / mean_oos if mean_oos > 0 else math.inf
    return [
        GateResult(name="min_mean_ic", value=mean_oos, threshold=cfg.min_mean_ic, passed=mean_oos >= cfg.min_mean_ic),
        GateResult(name="min_ic_tstat", value=t, threshold=cfg.min_ic_tstat, passed=t >= cfg.min_ic_tstat),
        GateResult(
            name="max_is_oos_ratio", value=ratio, threshold=cfg.max_is_oos_ratio, passed=ratio <= cfg.max_is_oos_ratio
        ),
    ]


def check_gates(results: list[GateResult]) -> None:
    """Raise :class:`GateFailed` naming each failed gate; return when all pass."""
    if not all(r.passed for r in results):
        raise GateFailed(results)
