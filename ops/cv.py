"""Cross-validation splitters that cannot leak through overlapping labels.

(Plus :class:`ContiguousKFold`, the textbook K-fold that does leak, kept as the
baseline a study compares the purged splitters against.)

All splitters follow scikit-learn's protocol (``split(X, y=None, groups=None)``
yielding ``(train_idx, test_idx)`` and ``get_n_splits``) and take each
sample's label window ``[t_start, t_end]`` at construction.  Purging compares
those windows, never row numbers, so a panel (several rows per date) purges
correctly.

Rows must be sorted by ``t_start`` (ties allowed).  Test blocks are formed
from contiguous runs of *unique* ``t_start`` values, so all rows of one date
fall into the same block.

Times may be datetime64 (any unit) or integers; the embargo is a duration in
the same units (``np.timedelta64`` or an int).

Purge rule, for a contiguous test block with window ``[T0, T1]``
(``T0`` = earliest test ``t_start``, ``T1`` = latest test ``t_end``): a
training sample ``i`` is dropped when ``t_start[i] <= T1 + embargo`` and
``t_end[i] >= T0``, that is when its label window touches the test window or
the embargo after it.
"""
from __future__ import annotations

import itertools
from math import comb

import numpy as np

__all__ = ["PurgedKFold", "ContiguousKFold", "CombinatorialPurgedKFold", "WalkForward", "purge_mask"]


def _as_int_times(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.datetime64):
        return a.astype("datetime64[ns]").view(np.int64)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    raise ValueError(f"{name}: expected datetime64 or integer times; dtype was {a.dtype}")


def _as_int_duration(d, times_dtype: np.dtype) -> int:
    if isinstance(d, np.timedelta64):
        if not np.issubdtype(times_dtype, np.datetime64):
            raise ValueError("embargo: a timedelta64 embargo needs datetime64 times; times were integers")
        return int(d.astype("timedelta64[ns]").view(np.int64))
    if isinstance(d, (int, np.integer)):
        if np.issubdtype(times_dtype, np.datetime64) and d != 0:
            raise ValueError(f"embargo: with datetime64 times pass np.timedelta64; was the int {d}")
        return int(d)
    raise ValueError(f"embargo: expected np.timedelta64 or int; was {type(d).__name__}")


class _WindowedSplitter:
    """Shared validation of the label windows."""

    def __init__(self, t_start, t_end, embargo) -> None:
        ts_raw = np.asarray(t_start)
        self._t0 = _as_int_times(ts_raw, "t_start")
        self._t1 = _as_int_times(t_end, "t_end")
        if self._t0.ndim != 1 or self._t0.shape != self._t1.shape:
            raise ValueError(
                f"t_start and t_end: expected 1-D arrays of equal length; shapes were {self._t0.shape} and {self._t1.shape}"
            )
        if np.any(self._t1 < self._t0):
            bad = int(np.flatnonzero(self._t1 < self._t0)[0])
            raise ValueError(f"t_end: expected t_end >= t_start for every sample; row {bad} was earlier")
        if np.any(np.diff(self._t0) < 0):
            bad = int(np.flatnonzero(np.diff(self._t0) < 0)[0]) + 1
            raise ValueError(f"t_start: expected rows sorted by t_start; row {bad} goes back in time")
        self._embargo = _as_int_duration(embargo, ts_raw.dtype)
        if self._embargo < 0:
            raise ValueError(f"embargo: expected >= 0; was {embargo}")
        # Unique start times and, for each, the first row that has it.
        self._utimes, self._ufirst = np.unique(self._t0, return_index=True)

    @property
    def n_samples(self) -> int:
        return len(self._t0)

    def _check_X(self, X) -> None:
        if X is not None and len(X) != len(self._t0):
            raise ValueError(f"X: expected {len(self._t0)} rows (one per label window); was {len(X)}")

    def _rows_of_unique_range(self, u0: int, u1: int) -> np.ndarray:
        """Rows whose t_start is one of unique times u0..u1-1."""
        a = self._ufirst[u0]
        b = self._ufirst[u1] if u1 < len(self._ufirst) else len(self._t0)
        return np.arange(a, b)

    def _purge(self, train_mask: np.ndarray, test_rows: np.ndarray) -> None:
        """Clear train_mask where a window overlaps this contiguous test block (+embargo)."""
        if test_rows.size == 0:
            return
        T0 = self._t0[test_rows].min()
        T1 = self._t1[test_rows].max()
        train_mask &= ~purge_mask(self._t0, self._t1, T0, T1 + self._embargo)


def purge_mask(t_start: np.ndarray, t_end: np.ndarray, T0, T1) -> np.ndarray:
    """True where ``[t_start, t_end]`` intersects ``[T0, T1]`` (all inclusive)."""
    return (t_start <= T1) & (t_end >= T0)


class PurgedKFold(_WindowedSplitter):
    """K contiguous time folds; training drops overlapping labels and an embargo.

    Parameters
    ----------
    n_splits : int
        Number of folds (>= 2).
    t_start, t_end : array-like
        Label window of each row, rows sorted by ``t_start``.
    embargo : np.timedelta64 or int
        Extra time after each test fold's last label end during which training
        samples may not start (serial correlation of features beyond the label).
    """

    def __init__(self, n_splits: int = 5, *, t_start, t_end, embargo=0) -> None:
        if n_splits < 2:
            raise ValueError(f"n_splits: expected >= 2; was {n_splits}")
        super().__init__(t_start, t_end, embargo)
        if len(self._utimes) < n_splits:
            raise ValueError(f"n_splits={n_splits} needs at least as many distinct t_start values; there were {len(self._utimes)}")
        self.n_splits = n_splits

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X=None, y=None, groups=None):
        self._check_X(X)
        n = self.n_samples
        for part in np.array_split(np.arange(len(self._utimes)), self.n_splits):
            test = self._rows_of_unique_range(int(part[0]), int(part[-1]) + 1)
            train_mask = np.ones(n, bool)
            train_mask[test] = False
            self._purge(train_mask, test)
            yield np.flatnonzero(train_mask), test


class ContiguousKFold(PurgedKFold):
    """The naive K-fold: K contiguous time folds, NO purge and NO embargo.

    Training keeps every row outside the test block, including those whose
    label window overlaps it, so with overlapping labels its scores leak
    (``PurgedKFold`` with ``embargo=0`` still purges).  It exists to measure
    that leak (e.g. model selection by naive vs purged K-fold), not to
    validate a model.  Test blocks are the same as :class:`PurgedKFold`'s.
    """

    def __init__(self, n_splits: int = 5, *, t_start, t_end) -> None:
        super().__init__(n_splits, t_start=t_start, t_end=t_end, embargo=0)

    def _purge(self, train_mask: np.ndarray, test_rows: np.ndarray) -> None:
        """Keep every training row: this splitter deliberately does not purge."""


class CombinatorialPurgedKFold(_WindowedSplitter):
    """All C(N, k) choices of k test groups out of N contiguous time groups.

    Each split's test set is the union of its k groups; training is purged
    (and embargoed) against every contiguous run of test groups.  Every group
    is tested in C(N-1, k-1) splits, which assemble into
    ``k * C(N, k) / N`` backtest paths, each covering every sample once
    (:meth:`paths`).

    Parameters
    ----------
    n_groups : int
        N >= 2.
    n_test_groups : int
        k, 1 <= k < N.
    t_start, t_end, embargo
        As for :class:`PurgedKFold`.
    """

    def __init__(self, n_groups: int = 6, n_test_groups: int = 2, *, t_start, t_end, embargo=0) -> None:
        if n_groups < 2 or not (1 <= n_test_groups < n_groups):
            raise ValueError(
                f"expected n_groups >= 2 and 1 <= n_test_groups < n_groups; were {n_groups} and {n_test_groups}"
            )
        super().__init__(t_start, t_end, embargo)
        if len(self._utimes) < n_groups:
            raise ValueError(f"n_groups={n_groups} needs at least as many distinct t_start values; there were {len(self._utimes)}")
        self.n_groups = n_groups
        self.n_test_groups = n_test_groups
        self._combos = list(itertools.combinations(range(n_groups), n_test_groups))
        parts = np.array_split(np.arange(len(self._utimes)), n_groups)
        self._group_rows = [self._rows_of_unique_range(int(p[0]), int(p[-1]) + 1) for p in parts]

    @property
    def n_paths(self) -> int:
        """k * C(N, k) / N."""
        return self.n_test_groups * comb(self.n_groups, self.n_test_groups) // self.n_groups

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return comb(self.n_groups, self.n_test_groups)

    def test_groups(self, split: int) -> tuple[int, ...]:
        """Group indices tested in split number ``split``."""
        return self._combos[split]

    def group_rows(self, group: int) -> np.ndarray:
        """Row indices of time group ``group``."""
        return self._group_rows[group]

    def split(self, X=None, y=None, groups=None):
        self._check_X(X)
        n = self.n_samples
        for combo in self._combos:
            train_mask = np.ones(n, bool)
            test = np.concatenate([self._group_rows[g] for g in combo])
            train_mask[test] = False
            # Purge against each contiguous run of test groups separately: a
            # gap between two runs is legitimate training data.
            for _, run in itertools.groupby(enumerate(combo), key=lambda t: t[1] - t[0]):
                gs = [g for _, g in run]
                rows = np.concatenate([self._group_rows[g] for g in gs])
                self._purge(train_mask, rows)
            yield np.flatnonzero(train_mask), test

    def paths(self) -> np.ndarray:
        """Backtest paths as split numbers.

        Returns
        -------
        ndarray, int64, shape (n_paths, n_groups)
            ``paths[p, g]`` is the split whose test predictions fill group ``g``
            on path ``p``.  For each group, the splits testing it are assigned
            to paths in split order, so each (split, group) pair is used once.
        """
        out = np.empty((self.n_paths, self.n_groups), np.int64)
        for g in range(self.n_groups):
            splits = [s for s, c in enumerate(self._combos) if g in c]
            out[:, g] = splits
        return out

    def path_predictions(self, split_predictions: list[np.ndarray]) -> np.ndarray:
        """Assemble per-split test predictions into full-length paths.

        Parameters
        ----------
        split_predictions : list of ndarray
            ``split_predictions[s]`` holds predictions for split ``s``'s test
            rows, in the order :meth:`split` yielded them.

        Returns
        -------
        ndarray, shape (n_paths, n_samples)
        """
        if len(split_predictions) != self.get_n_splits():
            raise ValueError(f"expected {self.get_n_splits()} prediction arrays (one per split); was {len(split_predictions)}")
        out = np.full((self.n_paths, self.n_samples), np.nan)
        offsets = []
        for combo in self._combos:
            sizes = [len(self._group_rows[g]) for g in combo]
            offsets.append(dict(zip(combo, np.r_[0, np.cumsum(sizes)[:-1]])))
        for p, row in enumerate(self.paths()):
            for g, s in enumerate(row):
                o = offsets[s][g]
                rows = self._group_rows[g]
                out[p, rows] = split_predictions[s][o : o + len(rows)]
        return out


class WalkForward(_WindowedSplitter):
    """Forward-only splits: train on the past, test on the next block.

    Parameters
    ----------
    n_splits : int
        Number of test blocks; they tile the distinct times after the first
        ``min_train_size`` ones.
    t_start, t_end : array-like
        Label windows, rows sorted by ``t_start``.
    min_train_size : int
        Distinct ``t_start`` values (e.g. trading days) before the first test block.
    mode : {"expanding", "sliding"}
        Expanding keeps all the past; sliding keeps the last ``max_train_size``
        distinct times.
    max_train_size : int, optional
        Window length for ``mode="sliding"`` (defaults to ``min_train_size``).
    embargo
        Also drop training samples whose label ends within ``embargo`` before
        the test block starts (kept for symmetry with the K-fold splitters; the
        overlap purge alone already removes every label that reaches the test
        block).
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        t_start,
        t_end,
        min_train_size: int,
        mode: str = "expanding",
        max_train_size: int | None = None,
        embargo=0,
    ) -> None:
        super().__init__(t_start, t_end, embargo)
        if mode not in ("expanding", "sliding"):
            raise ValueError(f"mode: expected 'expanding' or 'sliding'; was {mode!r}")
        if n_splits < 1:
            raise ValueError(f"n_splits: expected >= 1; was {n_splits}")
        U = len(self._utimes)
        if min_train_size < 1 or U - min_train_size < n_splits:
            raise ValueError(
                f"min_train_size={min_train_size} and n_splits={n_splits} need more distinct times than the {U} there were"
            )
        self.n_splits = n_splits
        self.min_train_size = min_train_size
        self.mode = mode
        self.max_train_size = max_train_size or min_train_size

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X=None, y=None, groups=None):
        self._check_X(X)
        U = len(self._utimes)
        for part in np.array_split(np.arange(self.min_train_size, U), self.n_splits):
            u0, u1 = int(part[0]), int(part[-1]) + 1
            test = self._rows_of_unique_range(u0, u1)
            lo = 0 if self.mode == "expanding" else max(0, u0 - self.max_train_size)
            cand = self._rows_of_unique_range(lo, u0)
            T0 = self._t0[test[0]]
            # Forward only: drop training labels whose window reaches the test
            # block (minus the embargo margin).
            keep = self._t1[cand] < T0 - self._embargo
            yield cand[keep], test
