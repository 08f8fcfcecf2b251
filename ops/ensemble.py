"""LightGBM ensembles weighted by out-of-fold information coefficient.

An ensemble is >= 2 members (different seeds, parameters or feature subsets).
Cross-validation (:func:`cross_validate`) gives each member's out-of-fold IC
per fold; :func:`ensemble_weights` turns those into weights:

``ic_weighted``
    ``w_i`` proportional to ``max(mean IC_i, 0)``.
``ir_weighted``
    ``w_i`` proportional to ``max(mean IC_i / std IC_i, 0)`` (information ratio).

then every weight is raised to at least ``floor`` (5% by default) and the
rest rescaled so the weights sum to 1.

``best``
    all weight (1.0) on the member with the highest mean IC (ties: the first
    such member), 0 on the others; the floor does not apply.

The ensemble prediction is
``sum_i w_i * member_i(X[:, features_i])``.

IC here is Spearman rank correlation.  For panel data pass ``dates``: the IC is
then the mean over dates of the cross-sectional rank IC (dates with fewer than
3 rows are skipped), which is what a long-short book ranks on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd

__all__ = [
    "MemberSpec",
    "Ensemble",
    "CVResult",
    "rank_ic",
    "ensemble_weights",
    "fit_member",
    "predict_member",
    "cross_validate",
    "fit_ensemble",
]

_WEIGHT_METHODS = ("ic_weighted", "ir_weighted", "equal", "best")


@dataclass(frozen=True)
class MemberSpec:
    """One LightGBM model of the ensemble.

    Attributes
    ----------
    name : str
    params : dict
        LightGBM parameters; ``objective`` is ``regression`` (or another
        regression loss) or ``binary`` (fit on ``y > 0``, predicts P(y > 0)).
    num_boost_round : int
    features : tuple of int, optional
        Column indices into the full feature matrix; None means all columns.
    """

    name: str
    params: dict
    num_boost_round: int = 100
    features: tuple[int, ...] | None = None

    @property
    def is_binary(self) -> bool:
        return self.params.get("objective", "regression") == "binary"

    def columns(self, n_features: int) -> np.ndarray:
        if self.features is None:
            return np.arange(n_features)
        idx = np.asarray(self.features, np.int64)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n_features or len(set(idx.tolist())) != idx.size:
            raise ValueError(
                f"member {self.name!r}: features expected distinct indices in [0, {n_features}); were {list(self.features)}"
            )
        return idx


def rank_ic(pred: np.ndarray, y: np.ndarray, dates: np.ndarray | None = None) -> float:
    """Spearman rank IC of ``pred`` against ``y``.

    Parameters
    ----------
    pred, y : ndarray, shape (n,)
    dates : ndarray, optional
        Row dates for panel data: returns the mean cross-sectional IC over
        dates with >= 3 rows and non-constant ranks.

    Returns
    -------
    float
        In [-1, 1]; 0.0 when undefined (constant input).
    """
    pred = np.asarray(pred, np.float64)
    y = np.asarray(y, np.float64)
    if pred.shape != y.shape:
        raise ValueError(f"rank_ic: expected pred and y of equal shape; were {pred.shape} and {y.shape}")
    if dates is None:
        rp = pd.Series(pred).rank().to_numpy()
        ry = pd.Series(y).rank().to_numpy()
        return _pearson(rp, ry)
    df = pd.DataFrame({"d": np.asarray(dates), "p": pred, "y": y})
    g = df.groupby("d", sort=False)
    df["rp"] = g["p"].rank()
    df["ry"] = g["y"].rank()
    # Per-date Pearson of ranks from grouped moments (one pass, no Python loop).
    df["rp2"] = df["rp"] ** 2
    df["ry2"] = df["ry"] ** 2
    df["rpy"] = df["rp"] * df["ry"]
    s = df.groupby("d", sort=False)[["rp", "ry", "rp2", "ry2", "rpy"]].sum()
    n = df.groupby("d", sort=False).size().astype(np.float64)
    cov = s["rpy"] - s["rp"] * s["ry"] / n
    vp = s["rp2"] - s["rp"] ** 2 / n
    vy = s["ry2"] - s["ry"] ** 2 / n
    ok = (n >= 3) & (vp > 1e-12) & (vy > 1e-12)
    if not ok.any():
        return 0.0
    return float((cov[ok] / np.sqrt(vp[ok] * vy[ok])).mean())


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def ensemble_weights(fold_ic: np.ndarray, method: str = "ic_weighted", floor: float = 0.05) -> np.ndarray:
    """Member weights from out-of-fold ICs.

    Parameters
    ----------
    fold_ic : ndarray, shape (n_folds, n_members)
    method : {"ic_weighted", "ir_weighted", "equal", "best"}
    floor : float
        Minimum weight of any member, in [0, 1/n_members] (not applied by ``best``).

    Returns
    -------
    ndarray, float64, shape (n_members,)
        Non-negative, sums to 1, each >= floor.  When no member has a positive
        score the weights are equal (the gates then judge the model).  ``best``:
        1.0 on the highest mean IC (first on ties), even when it is not positive.
    """
    ic = np.atleast_2d(np.asarray(fold_ic, np.float64))
    m = ic.shape[1]
    if method not in _WEIGHT_METHODS:
        raise ValueError(f"weighting method expected one of {_WEIGHT_METHODS}; was {method!r}")
    if not (0.0 <= floor <= 1.0 / m):
        raise ValueError(f"weight floor expected in [0, 1/{m}]; was {floor}")
    if method == "equal":
        return np.full(m, 1.0 / m)
    mean = ic.mean(axis=0)
    if method == "best":
        # np.argmax returns the first maximum: ties go to the earlier member.
        w = np.zeros(m)
        w[int(np.argmax(mean))] = 1.0
        return w
    if method == "ic_weighted":
        score = mean
    else:
        sd = ic.std(axis=0, ddof=1) if ic.shape[0] > 1 else np.zeros(m)
        score = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.where(mean > 0, 1e6, 0.0))
    score = np.maximum(score, 0.0)
    if score.sum() <= 0:
        return np.full(m, 1.0 / m)
    w = score / score.sum()
    # Raise members under the floor to it; rescale the others over what is left.
    fixed = np.zeros(m, bool)
    for _ in range(m):
        low = (w < floor) & ~fixed
        if not low.any():
            break
        fixed |= low
        free = ~fixed
        rest = 1.0 - floor * fixed.sum()
        w = np.where(fixed, floor, w)
        if free.any():
            w[free] = w[free] / w[free].sum() * rest
    return w


def fit_member(spec: MemberSpec, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> lgb.Booster:
    """Train one member on ``X[:, spec.features]``."""
    cols = spec.columns(X.shape[1])
    target = (y > 0).astype(np.float64) if spec.is_binary else y
    params = {"verbose": -1, **spec.params}
    ds = lgb.Dataset(X[:, cols], target, weight=weight, free_raw_data=True)
    return lgb.train(params, ds, num_boost_round=spec.num_boost_round)


def predict_member(spec: MemberSpec, booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """Member prediction (P(y > 0) for binary members)."""
    return booster.predict(X[:, spec.columns(X.shape[1])])


@dataclass
class Ensemble:
    """Fitted members and their weights."""

    feature_names: list[str]
    members: list[MemberSpec]
    boosters: list[lgb.Booster]
    weights: np.ndarray

    def __post_init__(self) -> None:
        if len(self.members) != len(self.boosters) or len(self.members) != len(self.weights):
            raise ValueError(
                f"ensemble: expected as many boosters and weights as members ({len(self.members)}); "
                f"were {len(self.boosters)} and {len(self.weights)}"
            )

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        """shape (n_members, n_rows)."""
        return np.stack([predict_member(s, b, X) for s, b in zip(self.members, self.boosters)])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Weighted sum of member predictions, float64."""
        return np.asarray(self.weights, np.float64) @ self.member_predictions(X)


@dataclass
class CVResult:
    """Out-of-fold evidence for each member and for the ensemble.

    Attributes
    ----------
    member_fold_ic : ndarray (n_folds, n_members)
        Out-of-sample IC.
    member_is_ic : ndarray (n_folds, n_members)
        In-sample IC of each fold model on its own training rows.
    ensemble_fold_ic, ensemble_is_ic : ndarray (n_folds,)
        The ensemble's, with fold j's weights taken from folds < j only
        (equal weights in fold 0), so no fold's weights saw its own outcome.
    oof_pred : ndarray (n_rows,)
        Ensemble prediction for rows in some test fold; NaN elsewhere.
    fold_rows : list of (int, int)
        (train rows, test rows) per fold.
    fold_weights : ndarray (n_folds, n_members)
    """

    member_fold_ic: np.ndarray
    member_is_ic: np.ndarray
    ensemble_fold_ic: np.ndarray
    ensemble_is_ic: np.ndarray
    oof_pred: np.ndarray
    fold_rows: list[tuple[int, int]] = field(default_factory=list)
    fold_weights: np.ndarray | None = None
    fold_test_index: list[np.ndarray] = field(default_factory=list)


def cross_validate(
    members: list[MemberSpec],
    X: np.ndarray,
    y: np.ndarray,
    splitter,
    *,
    dates: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    method: str = "ic_weighted",
    floor: float = 0.05,
    is_sample: int = 20000,
    progress: Callable[[str], None] | None = None,
) -> CVResult:
    """Fit every member on every training fold and score it out of fold.

    Parameters
    ----------
    members : list of MemberSpec
    X, y : ndarray
        Full dataset (rows in ``splitter`` order).
    splitter
        Any splitter of :mod:`alphad.ops.cv` (or scikit-learn's).
    dates : ndarray, optional
        For cross-sectional IC on panel data.
    weight : ndarray, optional
        Sample weights for training.
    method, floor
        Weighting (see :func:`ensemble_weights`).
    is_sample : int
        In-sample IC is measured on at most this many training rows (the
        most recent ones), which is enough for a ratio and keeps it cheap.
    progress : callable, optional
        Receives one line per fold.
    """
    if len(members) < 1:
        raise ValueError("cross_validate: expected at least one member; was none")
    n = len(y)
    folds = list(splitter.split(X))
    F, M = len(folds), len(members)
    oos = np.zeros((F, M))
    ins = np.zeros((F, M))
    ens_oos = np.zeros(F)
    ens_is = np.zeros(F)
    fw = np.zeros((F, M))
    oof = np.full(n, np.nan)
    rows = []
    tests = []
    for j, (tr, te) in enumerate(folds):
        t0 = time.perf_counter()
        if tr.size == 0 or te.size == 0:
            raise ValueError(f"fold {j}: expected non-empty train and test sets; sizes were {tr.size} and {te.size}")
        is_rows = tr[-is_sample:]
        pte = np.empty((M, te.size))
        pis = np.empty((M, is_rows.size))
        for i, spec in enumerate(members):
            b = fit_member(spec, X[tr], y[tr], None if weight is None else weight[tr])
            pte[i] = predict_member(spec, b, X[te])
            pis[i] = predict_member(spec, b, X[is_rows])
            d_te = None if dates is None else dates[te]
            d_is = None if dates is None else dates[is_rows]
            oos[j, i] = rank_ic(pte[i], y[te], d_te)
            ins[j, i] = rank_ic(pis[i], y[is_rows], d_is)
        w = ensemble_weights(oos[:j], method, floor) if j > 0 else np.full(M, 1.0 / M)
        fw[j] = w
        pe = w @ pte
        oof[te] = pe
        ens_oos[j] = rank_ic(pe, y[te], None if dates is None else dates[te])
        ens_is[j] = rank_ic(w @ pis, y[is_rows], None if dates is None else dates[is_rows])
        rows.append((int(tr.size), int(te.size)))
        tests.append(te)
        if progress is not None:
            progress(
                f"fold {j + 1}/{F}: train {tr.size:,} rows, test {te.size:,} rows, "
                f"OOS IC {ens_oos[j]:+.4f} (members {', '.join(f'{v:+.4f}' for v in oos[j])}), "
                f"IS IC {ens_is[j]:+.4f}, {time.perf_counter() - t0:.1f} s"
            )
    return CVResult(oos, ins, ens_oos, ens_is, oof, rows, fw, tests)


def fit_ensemble(
    members: list[MemberSpec],
    feature_names: list[str],
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
) -> Ensemble:
    """Refit every member on all rows and attach the given weights."""
    boosters = [fit_member(s, X, y, sample_weight) for s in members]
    return Ensemble(list(feature_names), list(members), boosters, np.asarray(weights, np.float64))
