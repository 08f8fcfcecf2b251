"""Purged / combinatorial / walk-forward splitters: leakage, purge oracle, paths."""
from __future__ import annotations

import itertools
from math import comb

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import KFold

from alphad.ops.cv import CombinatorialPurgedKFold, ContiguousKFold, PurgedKFold, WalkForward
from alphad.ops.ensemble import rank_ic


# --------------------------------------------------------------------------- leakage

def _leaky_series(seed: int, n: int = 8000, h: int = 20):
    """Persistent features with NO information about the future, overlapping labels.

    Features are AR(1) (phi 0.99) noise; the label is the sum of the next ``h``
    independent shocks, so the true IC is exactly 0.  Neighbouring rows share
    h-1 of h shocks and almost the same features: any split that trains on a
    test row's neighbours leaks.
    """
    rng = np.random.default_rng(seed)
    f = np.zeros((n, 3))
    shocks = rng.normal(size=(n, 3))
    for t in range(1, n):
        f[t] = 0.99 * f[t - 1] + shocks[t]
    e = rng.normal(size=n + h + 1)
    cs = np.r_[0.0, np.cumsum(e)]
    y = cs[np.arange(n) + h + 1] - cs[np.arange(n) + 1]
    t_start = np.arange(n, dtype=np.int64)
    return f.astype(np.float32), y, t_start, t_start + h


def _oof_ic(X, y, splits) -> float:
    oof = np.full(len(y), np.nan)
    for tr, te in splits:
        b = lgb.train(
            {"objective": "regression", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5, "seed": 1},
            lgb.Dataset(X[tr], y[tr]),
            40,
        )
        oof[te] = b.predict(X[te])
    assert np.isfinite(oof).all()
    return rank_ic(oof, y)


def test_purged_kfold_when_labels_overlap_then_naive_kfold_inflates_ic_and_purged_does_not():
    X, y, t0, t1 = _leaky_series(seed=7)
    naive = _oof_ic(X, y, KFold(5, shuffle=True, random_state=0).split(X))
    purged = _oof_ic(X, y, PurgedKFold(5, t_start=t0, t_end=t1, embargo=20).split(X))
    # True IC is 0: the naive estimate is pure leakage.
    assert naive > 0.3, naive
    assert abs(purged) < 0.12, purged
    assert naive - purged > 0.25


# --------------------------------------------------------------------------- purge oracle

@st.composite
def panels(draw):
    """Sorted panel: 1-3 rows per time, random horizons, gaps between times."""
    n_times = draw(st.integers(8, 60))
    gaps = draw(st.lists(st.integers(1, 3), min_size=n_times, max_size=n_times))
    times = np.cumsum(gaps).astype(np.int64)
    per = draw(st.lists(st.integers(1, 3), min_size=n_times, max_size=n_times))
    t0 = np.repeat(times, per)
    hz = np.asarray(draw(st.lists(st.integers(0, 12), min_size=len(t0), max_size=len(t0))), np.int64)
    return t0, t0 + hz


def _blocks(test: np.ndarray, t0: np.ndarray) -> list[np.ndarray]:
    """Split test rows into runs of consecutive rows (contiguous test blocks)."""
    test = np.sort(test)
    cuts = np.flatnonzero(np.diff(test) > 1) + 1
    return np.split(test, cuts)


def _oracle_train(n, test, t0, t1, embargo):
    """Brute force: every non-test row whose window misses every block (+embargo)."""
    keep = np.ones(n, bool)
    keep[test] = False
    for blk in _blocks(test, t0):
        T0, T1 = t0[blk].min(), t1[blk].max() + embargo
        for i in range(n):
            if t0[i] <= T1 and t1[i] >= T0:
                keep[i] = False
    return np.flatnonzero(keep)


@settings(max_examples=120, deadline=None)
@given(panel=panels(), k=st.integers(2, 6), embargo=st.integers(0, 5))
def test_purged_kfold_when_any_panel_then_no_train_window_touches_test_or_embargo(panel, k, embargo):
    t0, t1 = panel
    n = len(t0)
    k = min(k, len(np.unique(t0)))
    cv = PurgedKFold(k, t_start=t0, t_end=t1, embargo=embargo)
    seen = []
    for tr, te in cv.split(np.zeros((n, 1))):
        seen.append(te)
        assert np.intersect1d(tr, te).size == 0
        # One contiguous block per fold; no train window overlaps it or its embargo.
        T0, T1 = t0[te].min(), t1[te].max()
        assert not np.any((t0[tr] <= T1 + embargo) & (t1[tr] >= T0))
        # ...and nothing else was dropped (brute-force oracle).
        np.testing.assert_array_equal(tr, _oracle_train(n, te, t0, t1, embargo))
        # A date is never split between train and test.
        assert np.intersect1d(t0[tr], t0[te]).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(n))


@settings(max_examples=60, deadline=None)
@given(panel=panels(), nk=st.sampled_from([(4, 1), (4, 2), (5, 2), (6, 3)]), embargo=st.integers(0, 4))
def test_combinatorial_when_any_panel_then_train_misses_every_test_block(panel, nk, embargo):
    t0, t1 = panel
    n_groups, k = nk
    if len(np.unique(t0)) < n_groups:
        return
    cv = CombinatorialPurgedKFold(n_groups, k, t_start=t0, t_end=t1, embargo=embargo)
    for tr, te in cv.split():
        assert np.intersect1d(tr, te).size == 0
        np.testing.assert_array_equal(tr, _oracle_train(len(t0), te, t0, t1, embargo))


@settings(max_examples=60, deadline=None)
@given(panel=panels(), n_splits=st.integers(1, 4), mode=st.sampled_from(["expanding", "sliding"]))
def test_walk_forward_when_any_panel_then_train_labels_end_before_test_starts(panel, n_splits, mode):
    t0, t1 = panel
    U = len(np.unique(t0))
    min_train = max(1, U // 3)
    if U - min_train < n_splits:
        return
    cv = WalkForward(n_splits, t_start=t0, t_end=t1, min_train_size=min_train, mode=mode, max_train_size=min_train)
    prev_end = None
    for tr, te in cv.split():
        assert te.size > 0
        if tr.size:
            assert t1[tr].max() < t0[te].min()  # forward only, purged of labels reaching the test block
            if mode == "sliding":
                assert len(np.unique(t0[tr])) <= min_train
        if prev_end is not None:
            assert te[0] == prev_end + 1  # test blocks tile forward without gaps
        prev_end = te[-1]
    assert prev_end == len(t0) - 1


# --------------------------------------------------------------------------- CPCV paths

@pytest.mark.parametrize(("n_groups", "k"), [(6, 2), (5, 3), (8, 1), (10, 4)])
def test_combinatorial_when_n_k_then_splits_and_paths_cover_every_sample_once(n_groups, k):
    # Panel: 3 rows per date, 5-day labels.
    t0 = np.repeat(np.arange(200, dtype=np.int64), 3)
    t1 = t0 + 5
    n = len(t0)
    cv = CombinatorialPurgedKFold(n_groups, k, t_start=t0, t_end=t1, embargo=2)
    splits = list(cv.split())
    assert len(splits) == cv.get_n_splits() == comb(n_groups, k)
    assert cv.n_paths == k * comb(n_groups, k) // n_groups
    assert sorted(tuple(sorted(cv.test_groups(s))) for s in range(len(splits))) == sorted(
        itertools.combinations(range(n_groups), k)
    )
    paths = cv.paths()
    assert paths.shape == (cv.n_paths, n_groups)
    # Each path takes group g from a split that tests g; each (split, group) used once.
    used = set()
    for p in range(cv.n_paths):
        covered = np.concatenate([cv.group_rows(g) for g in range(n_groups)])
        np.testing.assert_array_equal(np.sort(covered), np.arange(n))
        for g in range(n_groups):
            assert g in cv.test_groups(paths[p, g])
            used.add((int(paths[p, g]), g))
    assert len(used) == cv.n_paths * n_groups == k * comb(n_groups, k)
    # Assembling per-split predictions (the row ids themselves) rebuilds each path exactly.
    preds = [te.astype(np.float64) for _, te in splits]
    full = cv.path_predictions(preds)
    for p in range(cv.n_paths):
        np.testing.assert_array_equal(full[p], np.arange(n, dtype=np.float64))


# --------------------------------------------------------------------------- naive K-fold

def test_contiguous_kfold_when_labels_overlap_then_keeps_them_while_purged_kfold_drops_them():
    # 2 rows per day, 5-day labels: rows just before and after each test block overlap it.
    t0 = np.repeat(np.arange(40, dtype=np.int64), 2)
    t1 = t0 + 5
    naive = list(ContiguousKFold(4, t_start=t0, t_end=t1).split())
    purged = list(PurgedKFold(4, t_start=t0, t_end=t1, embargo=0).split())
    for (ntr, nte), (ptr, pte) in zip(naive, purged):
        np.testing.assert_array_equal(nte, pte)  # same contiguous test blocks
        # Naive: every row outside the test block trains, overlap or not.
        np.testing.assert_array_equal(ntr, np.setdiff1d(np.arange(len(t0)), nte))
        T0, T1 = t0[nte].min(), t1[nte].max()
        overlap = ntr[(t0[ntr] <= T1) & (t1[ntr] >= T0)]
        assert overlap.size > 0  # the leak the purge exists for
        assert np.intersect1d(overlap, ptr).size == 0
        np.testing.assert_array_equal(ptr, np.setdiff1d(ntr, overlap))


# --------------------------------------------------------------------------- panel dates and errors

def test_purged_kfold_when_datetime_panel_then_timedelta_embargo_applies():
    dates = np.repeat(np.arange("2020-01-01", "2020-03-01", dtype="datetime64[D]"), 4).astype("datetime64[ns]")
    ends = dates + np.timedelta64(5, "D")
    cv = PurgedKFold(3, t_start=dates, t_end=ends, embargo=np.timedelta64(3, "D"))
    tr, te = next(iter(cv.split()))
    first_after = dates[tr][dates[tr] > dates[te].max()].min()
    # Test ends at last test date + 5 days of label; + 3 days embargo.
    assert first_after > dates[te].max() + np.timedelta64(8, "D")


def test_splitters_when_rows_not_sorted_then_error_names_the_row():
    t0 = np.array([0, 1, 3, 2, 4, 5], np.int64)
    with pytest.raises(ValueError, match="sorted by t_start; row 3"):
        PurgedKFold(2, t_start=t0, t_end=t0 + 1)


def test_splitters_when_x_length_differs_then_error():
    t0 = np.arange(10, dtype=np.int64)
    cv = PurgedKFold(2, t_start=t0, t_end=t0)
    with pytest.raises(ValueError, match="expected 10 rows.*was 9"):
        list(cv.split(np.zeros((9, 2))))


def test_splitters_when_int_embargo_with_datetimes_then_error():
    d = np.arange("2020-01-01", "2020-01-11", dtype="datetime64[D]")
    with pytest.raises(ValueError, match="timedelta64"):
        PurgedKFold(2, t_start=d, t_end=d, embargo=3)
