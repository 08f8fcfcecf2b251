"""Live feature drift: population stability index against the training data.

Offline (:func:`reference_histograms`), each feature's training values are cut
into ``n_bins`` quantile bins; the interior edges and the training fraction
per bin form the reference, stored in the model card (``drift_reference``).
Live, every feature row is counted into the same bins by the ``@njit``
:func:`histogram_update` (no allocation, int return code), and :func:`psi`
compares the live fractions to the reference::

    PSI_f = sum_b (live_b - ref_b) * ln(live_b / ref_b)

with both fractions floored at :data:`PSI_EPS` so an empty bin is finite.
Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 (:data:`PSI_WARN`)
a shift worth a warning.
"""
from __future__ import annotations

import logging

import msgspec
import numpy as np
from numba import njit

__all__ = [
    "PSI_WARN",
    "PSI_EPS",
    "DriftReference",
    "reference_histograms",
    "histogram_update",
    "psi",
    "DriftMonitor",
]

#: PSI above which a feature is reported as drifted.
PSI_WARN = 0.25
#: Floor on bin fractions inside the PSI log.
PSI_EPS = 1e-4

log = logging.getLogger("alphad.drift")


class DriftReference(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Per-feature reference histograms (stored in the model card).

    ``edges[f]`` holds the ``n_bins - 1`` interior cut points of feature f (the
    outer bins are open); ``fractions[f]`` the training share of each of the
    ``n_bins`` bins.
    """

    feature_names: list[str]
    edges: list[list[float]]
    fractions: list[list[float]]


def reference_histograms(X: np.ndarray, feature_names: list[str], n_bins: int = 10) -> DriftReference:
    """Quantile bins and training fractions per feature.

    Parameters
    ----------
    X : ndarray, shape (n, f)
        Training features (NaN ignored).
    feature_names : list of str
    n_bins : int
        Bins per feature, >= 2.  Ties can merge quantiles; duplicate edges are
        dropped, so a feature may end up with fewer bins (its rows padded with
        empty bins that the reference marks 0).
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X: expected shape (n, {len(feature_names)}); was {X.shape}")
    if n_bins < 2:
        raise ValueError(f"n_bins: expected >= 2; was {n_bins}")
    edges_out, fr_out = [], []
    q = np.linspace(0, 1, n_bins + 1)[1:-1]
    for f in range(X.shape[1]):
        col = X[:, f].astype(np.float64)
        col = col[np.isfinite(col)]
        if col.size == 0:
            raise ValueError(f"feature {feature_names[f]!r}: no finite training values")
        e = _robust_edges(col, q)
        # Pad with the largest float32 so every feature has n_bins-1 edges (fixed-width
        # arrays for the kernel); padded bins stay empty on both sides.  Not +inf:
        # the reference lives in model_card.json, and JSON has no infinity.
        e_full = np.r_[e, np.full(n_bins - 1 - e.size, float(np.finfo(np.float32).max))]
        counts = np.zeros(n_bins)
        idx = np.searchsorted(e_full, col, side="right")
        np.add.at(counts, idx, 1.0)
        edges_out.append(e_full.tolist())
        fr_out.append((counts / counts.sum()).tolist())
    return DriftReference(feature_names=list(feature_names), edges=edges_out, fractions=fr_out)


#: Interior edges closer than this fraction of a feature's central range (1st to 99th
#: percentile) are merged: a quantile edge inside a cluster of nearly equal values (a spread of
#: one tick, in bps, moves only with the price level) splits it by noise, and a live day at
#: another price level then reads as drift (the demo's spread_bps: PSI 0.2 on its own data).
MIN_BIN_FRACTION = 0.01


def _robust_edges(col: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantile edges that cannot degenerate: unique (in float32, as the live rows are), no
    two closer than :data:`MIN_BIN_FRACTION` of the central range, and a value that holds a
    bin's share of the rows or more (an atom: ``ret_1`` is 0 on most events) alone in a bin
    of its own, with the values below and above it in others."""
    e = np.unique(np.quantile(col, q).astype(np.float32)).astype(np.float64)
    lo, hi = np.quantile(col, [0.01, 0.99])
    merged = []
    for x in e:
        if not merged or x - merged[-1] >= MIN_BIN_FRACTION * (hi - lo):
            merged.append(x)
    values, counts = np.unique(col.astype(np.float32), return_counts=True)
    atoms = values[counts >= col.size / (len(q) + 1)].astype(np.float64)
    for a in atoms:  # [a, next float32 above a): the atom's own bin
        merged += [a, float(np.nextafter(np.float32(a), np.float32(np.inf)))]
    out = np.unique(np.asarray(merged, np.float64))
    return out[: len(q)]  # at most n_bins - 1 interior edges (the kernel's fixed width)


@njit(cache=True, _nrt=False)
def histogram_update(counts: np.ndarray, edges: np.ndarray, row: np.ndarray) -> int:
    """Count one feature row into the live histograms.

    Parameters
    ----------
    counts : ndarray, int64, shape (f, n_bins)
        Live counts, incremented in place.
    edges : ndarray, float64, shape (f, n_bins - 1)
        Interior edges, ascending; a value ``v`` goes to the first bin ``b``
        with ``v < edges[f, b]`` (the last bin when none).
    row : ndarray, float32 or float64, shape (f,)

    Returns
    -------
    int
        Number of non-finite features skipped (0 on a clean row).
    """
    n_edges = edges.shape[1]
    skipped = 0
    for f in range(row.shape[0]):
        v = row[f]
        if not np.isfinite(v):
            skipped += 1
            continue
        lo = 0
        hi = n_edges
        while lo < hi:  # first edge > v (searchsorted side="right")
            mid = (lo + hi) >> 1
            if v < edges[f, mid]:
                hi = mid
            else:
                lo = mid + 1
        counts[f, lo] += 1
    return skipped


def psi(reference: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Population stability index per feature.

    Parameters
    ----------
    reference : ndarray, shape (f, n_bins)
        Training fractions (rows sum to 1).
    counts : ndarray, shape (f, n_bins)
        Live counts.

    Returns
    -------
    ndarray, float64, shape (f,)
        NaN for a feature with no live count yet.
    """
    ref = np.asarray(reference, np.float64)
    c = np.asarray(counts, np.float64)
    if ref.shape != c.shape:
        raise ValueError(f"psi: expected reference and counts of equal shape; were {ref.shape} and {c.shape}")
    tot = c.sum(axis=1, keepdims=True)
    live = np.divide(c, tot, out=np.full_like(c, np.nan), where=tot > 0)
    a = np.maximum(live, PSI_EPS)
    b = np.maximum(ref, PSI_EPS)
    return np.sum((a - b) * np.log(a / b), axis=1)


class DriftMonitor:
    """Live drift state for one model's feature list.

    The features stage (or infer) calls :meth:`update` per row (one njit call)
    and an exporter thread calls :meth:`psi` / :meth:`check` on a timer.
    """

    def __init__(self, ref: DriftReference) -> None:
        self.feature_names = list(ref.feature_names)
        self.edges = np.asarray(ref.edges, np.float64)
        self.reference = np.asarray(ref.fractions, np.float64)
        if self.edges.shape[0] != len(self.feature_names) or self.reference.shape[1] != self.edges.shape[1] + 1:
            raise ValueError(
                f"drift reference: expected edges (f, b-1) and fractions (f, b) for f={len(self.feature_names)}; "
                f"shapes were {self.edges.shape} and {self.reference.shape}"
            )
        self.counts = np.zeros(self.reference.shape, np.int64)

    def update(self, row: np.ndarray) -> int:
        """Count one row; returns the number of non-finite features skipped."""
        return histogram_update(self.counts, self.edges, row)

    def psi(self) -> np.ndarray:
        return psi(self.reference, self.counts)

    def check(self, threshold: float = PSI_WARN) -> list[tuple[str, float]]:
        """Features whose PSI exceeds ``threshold``, each logged as a warning."""
        values = self.psi()
        out = [(n, float(v)) for n, v in zip(self.feature_names, values) if v > threshold]
        for n, v in out:
            log.warning("feature drift: %s PSI %.3f above %.2f", n, v, threshold)
        return out

    def reset(self) -> None:
        self.counts[:] = 0
