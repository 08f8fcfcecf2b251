"""The one test of "is this price or quantity on its grid" (tick size, lot size).

The risk gate (:func:`alphad.daemon.risk.checks.check_order`), the paper venues
(:mod:`alphad.daemon.router.venues.paper`) and the router's parents
(:class:`alphad.daemon.router.parents.ParentBook`) all judge the grid with :func:`on_grid`,
so an order the gate passes as on the grid is never refused as off it further down.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GRID_TOL", "on_grid"]

#: Relative tolerance of :func:`on_grid`, in grid steps per step counted.  Prices and sizes
#: arrive as float64 decimals, which never sit exactly on ``k * step`` in binary floating
#: point (0.1 + 0.2 style error, about ``2.2e-16 * k`` steps at ``k`` steps); ``1e-9 * max(1, k)``
#: is far above that error and far below any real off-grid value: a value a fraction ``f`` of a
#: step off the grid is caught while ``k < f * 1e9`` (one percent of a step up to ``k`` = 1e7).
GRID_TOL = 1e-9


@njit(cache=True)
def on_grid(x, step):
    """True when ``x`` is an integer multiple of ``step`` within :data:`GRID_TOL`.

    That is ``|x/step - round(x/step)| <= GRID_TOL * max(1, |x/step|)``.  ``step`` must be
    positive; a NaN ``x`` is never on the grid.
    """
    r = x / step
    return abs(r - np.round(r)) <= GRID_TOL * max(1.0, abs(r))
