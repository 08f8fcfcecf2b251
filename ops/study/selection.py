"""Model selection by cross-validation for the ablation study: which LightGBM parameters?

:func:`select_params` scores each candidate (LightGBM parameter overrides such as
``{num_leaves: 7, min_data_in_leaf: 100}``) by its mean out-of-fold IC over a K-fold of the
training data, with ``alphad train``'s own pieces: its dataset (:func:`~alphad.ops.train_cli.
load_dataset`), splitter (:func:`~alphad.ops.train_cli.make_splitter`), member parameters
(:func:`~alphad.ops.train_cli.member_specs`) and IC (:func:`~alphad.ops.ensemble.cross_validate`,
cross-sectional per date when the config says ``ic: cross_sectional``).  ``scheme`` is
``purged_kfold`` (purge + embargo) or ``kfold`` (the naive K-fold: no purge, no embargo), so
the study can show what the leak does to the choice.

The model scored for a candidate is member 0 of :func:`train_config_for`'s config (the first
member with the candidate applied): one LightGBM model, its seed and rounds.

:func:`train_config_for` returns the config the study then trains and trades: the candidate's
parameters become the shared ``model.params`` of EVERY member and are removed from the
members' own overrides (which would otherwise win over them), so all members train with the
chosen complexity; seeds, feature subsets, the ensemble weighting, the walk-forward CV and the
gates stay those of the config.  A single-member model is not possible: ``model.members``
needs two or more.
"""
from __future__ import annotations

import time
from pathlib import Path

import msgspec
import numpy as np

from alphad.ops.train_cli import TrainConfig

__all__ = ["SCHEMES", "Selection", "select_params", "train_config_for"]

#: Cross-validation schemes a selection may use (``CVConfig.scheme`` values).
SCHEMES = ("purged_kfold", "kfold")
#: Parameters the trainer sets itself (per member, or ``model.objective``): not candidates.
_RESERVED = ("seed", "objective")


class Selection(msgspec.Struct, kw_only=True, frozen=True):
    """Outcome of :func:`select_params`; lists are in candidate order."""

    scheme: str
    #: The winning candidate (highest mean CV IC; ties: the first).
    chosen: dict[str, int | float | str | bool]
    chosen_index: int
    #: Mean out-of-fold IC per candidate.
    scores: list[float]
    #: Out-of-fold IC per candidate and fold.
    fold_ic: list[list[float]]
    #: Training rows per fold (the same for every candidate): purged_kfold has fewer than kfold.
    train_rows: list[int]
    n_splits: int
    #: Calendar days of embargo applied (0 for kfold, which neither purges nor embargoes).
    embargo_days: int
    seconds: float


def _check_candidates(candidates) -> list[dict]:
    if not isinstance(candidates, (list, tuple)) or not candidates:
        raise ValueError(f"candidates: expected a non-empty list of LightGBM parameter dicts; found {candidates!r}")
    out = []
    for i, c in enumerate(candidates):
        if not isinstance(c, dict):
            raise ValueError(f"candidates[{i}]: expected a dict of LightGBM parameters; found {type(c).__name__}")
        bad = [k for k in c if k in _RESERVED]
        if bad:
            raise ValueError(f"candidates[{i}]: {bad} are set by the trainer (member seed, model.objective); "
                             f"expected other LightGBM parameters")
        try:
            out.append(msgspec.convert(c, dict[str, int | float | str | bool]))
        except msgspec.ValidationError as e:
            raise ValueError(f"candidates[{i}]: expected str keys and int/float/str/bool values: {e}") from None
    return out


def train_config_for(train_cfg: TrainConfig, chosen: dict) -> TrainConfig:
    """``train_cfg`` with ``chosen`` as every member's parameters (see the module docstring).

    ``num_boost_round`` in ``chosen`` sets every member's rounds; the other keys go to
    ``model.params`` and are dropped from each member's ``params``.
    """
    (chosen,) = _check_candidates([chosen])
    params = dict(chosen)
    rounds = params.pop("num_boost_round", None)
    members = []
    for m in train_cfg.model.members:
        own = {k: v for k, v in m.params.items() if k not in params}
        members.append(msgspec.structs.replace(m, params=own, **({} if rounds is None else {"num_boost_round": rounds})))
    model = msgspec.structs.replace(train_cfg.model, params={**train_cfg.model.params, **params}, members=members)
    # Round trip through the decoder: the constraints (e.g. num_boost_round >= 1) are checked.
    try:
        return msgspec.convert(msgspec.to_builtins(msgspec.structs.replace(train_cfg, model=model)), TrainConfig)
    except msgspec.ValidationError as e:
        raise ValueError(f"chosen parameters {chosen} make an invalid training config: {e}") from None


def select_params(
    train_cfg: TrainConfig,
    candidates: list[dict],
    scheme: str,
    *,
    n_splits: int = 5,
    embargo_days: int | None = None,
    base: str | Path = ".",
    progress=None,
) -> Selection:
    """Score every candidate by its mean K-fold out-of-fold IC on ``train_cfg``'s data.

    Parameters
    ----------
    train_cfg : TrainConfig
        As :func:`alphad.ops.train_cli.load_config` decodes it; its data window (``data.start``
        .. ``data.end``, ``data.symbols``), label, features and ``ic`` define the problem.
    candidates : list of dict
        LightGBM parameter overrides (``num_boost_round`` sets the rounds).
    scheme : {"purged_kfold", "kfold"}
    n_splits : int
        K contiguous folds.
    embargo_days : int, optional
        purged_kfold's embargo; None takes the config's ``cv.embargo_days``.  kfold has none.
    base : path
        Folder a relative ``data.path`` is taken from (the config file's folder).
    progress : callable, optional
        Receives one line per candidate.
    """
    from alphad.ops.ensemble import cross_validate
    from alphad.ops.train_cli import load_dataset, make_splitter, member_specs, resolve_data_path

    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {SCHEMES}; found {scheme!r}")
    cands = _check_candidates(candidates)
    emb = train_cfg.cv.embargo_days if embargo_days is None else embargo_days
    if scheme == "kfold":
        emb = 0
    if isinstance(emb, bool) or not isinstance(emb, int) or emb < 0:
        raise ValueError(f"embargo_days: expected an int >= 0; found {emb!r}")
    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    ds = load_dataset(train_cfg, resolve_data_path(train_cfg, Path(base)))
    cv_cfg = msgspec.structs.replace(train_cfg.cv, scheme=scheme, n_splits=n_splits, embargo_days=emb)
    splitter = make_splitter(cv_cfg, ds.t_start, ds.t_end)
    dates = ds.t_start if train_cfg.ic == "cross_sectional" else None
    weight = ds.weight if train_cfg.label.uniqueness_weights else None
    fold_ic, train_rows = [], []
    for i, c in enumerate(cands):
        spec = member_specs(train_config_for(train_cfg, c).model, ds.feature_names)[0]
        res = cross_validate([spec], ds.X, ds.y, splitter, dates=dates, weight=weight)
        fold_ic.append(res.member_fold_ic[:, 0].tolist())
        train_rows = [tr for tr, _ in res.fold_rows]
        say(f"selection {scheme}: candidate {i} {c}: mean CV IC {np.mean(fold_ic[-1]):+.4f}")
    scores = [float(np.mean(f)) for f in fold_ic]
    best = int(np.argmax(scores))  # first maximum: ties go to the earlier candidate
    return Selection(scheme=scheme, chosen=cands[best], chosen_index=best, scores=scores, fold_ic=fold_ic,
                     train_rows=train_rows, n_splits=n_splits, embargo_days=emb,
                     seconds=round(time.perf_counter() - t0, 3))
