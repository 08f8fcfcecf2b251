"""Live market-impact calibration from the router's own fills.

The router stage calls :meth:`LiveImpact.housekeeping` from its housekeeping (never per
order).  Every ``horizon / 60`` it

1. samples each instrument's mid (the smart router's book) and cumulative traded volume
   (its trade tape), which give the market volume ``V`` and the volatility ``sigma`` over
   the last horizon;
2. reads the orders of the order store that ended since the last look (:func:`harvest`)
   and turns each one that took liquidity on arrival into an observation
   ``(x = filled / V, sigma, slippage)``;
3. refits at most one instrument with :func:`alphad.daemon.router.impact.calibrate` once it has
   ``min_observations`` and ``refit_interval_s`` has passed since its last fit, and
   publishes ``gamma, alpha, eta, observations, rmse`` in :attr:`params` (and in the
   metrics block, exported as ``alphad_impact_coefficient``).

Slippage is measured as in Almgren-Chriss, beyond the fixed cost of crossing: ``side *
(avg_px - mid0) / mid0 - half_spread0 / mid0`` with ``mid0`` and the half spread taken from
the quote the order met on arrival (stamped in the store by the smart router).  Only orders
that took liquidity on arrival (market orders, limits at or through the far touch) are
observed; a resting order's cost is a queueing question, not impact.  Each observation uses
``V`` and ``sigma`` as sampled when it is read (at most one sample period after the order
ended), a simplification that costs little at horizons of a minute or more.

A fit takes ~15 ms (scipy least squares), which is why it is rate-limited and spread one
instrument per housekeeping call; scipy is imported at construction, before READY.
"""
from __future__ import annotations


import numpy as np
from numba import njit

from alphad.ipc.dtypes import ORDER_MARKET

from alphad.daemon.router.impact import calibrate
from alphad.daemon.router.order_fsm import FLAG_HARVESTED, State
from alphad.daemon.router.venues.paper import ASK_PX, BID_PX, TAPE_VOLUME

__all__ = ["LiveImpact", "harvest", "N_SAMPLES", "P_GAMMA", "P_ALPHA", "P_ETA", "P_OBS", "P_RMSE"]

#: Samples of mid and volume per horizon.
N_SAMPLES = 60
#: Columns of :attr:`LiveImpact.params` (the order of ``alphad.ipc.metrics.IMPACT_FIELDS``).
P_GAMMA, P_ALPHA, P_ETA, P_OBS, P_RMSE = 0, 1, 2, 3, 4

_FILLED, _CANCELED, _REPLACED, _REJECTED, _EXPIRED = (int(State.FILLED), int(State.CANCELED),
                                                     int(State.REPLACED), int(State.REJECTED),
                                                     int(State.EXPIRED))
#: Observations :func:`harvest` returns per call at most (the rest wait for the next call).
HARVEST_MAX = 4096


@njit(cache=True, _nrt=False)
def harvest(orders, count, lwm, out):
    """Read the store's orders that ended since the last call; returns the rows written.

    Each ended order is flagged ``FLAG_HARVESTED`` (read once).  One row of ``out``
    (``float64[:, 3]``: instrument, filled quantity, slippage as a fraction) per order that
    filled and took liquidity on arrival.  ``lwm[0]``: every slot below it is read, so a
    call scans only from there (the caller resets it to 0 after a store compaction).
    """
    k = 0
    n = count[0]
    below = True  # every slot so far was read: lwm may advance
    for s in range(lwm[0], n):
        o = orders[s]
        if o.flags & FLAG_HARVESTED:
            if below:
                lwm[0] = s + 1
            continue
        st = o.state
        if not (st == _FILLED or st == _CANCELED or st == _REPLACED or st == _REJECTED or st == _EXPIRED):
            below = False  # still working: read it once it ends
            continue
        if k >= out.shape[0]:
            break
        o.flags = np.uint8(o.flags | FLAG_HARVESTED)
        if below:
            lwm[0] = s + 1
        b = o.arrival_bid
        a = o.arrival_ask
        if not (o.filled > 0.0 and b > 0.0 and a > b):
            continue
        took = o.kind == ORDER_MARKET or (o.side > 0 and o.limit_px >= a) or (o.side < 0 and o.limit_px <= b)
        if not took:
            continue
        mid = 0.5 * (a + b)
        out[k, 0] = o.instrument
        out[k, 1] = o.filled
        out[k, 2] = o.side * (o.notional / o.filled - mid) / mid - 0.5 * (a - b) / mid
        k += 1
    return k


def warm_calibrate(window: int) -> None:
    """One fit of a synthetic window, so that the first live refit, minutes into a run,
    loads no scipy module and takes no first-call LAPACK/OpenBLAS buffers: that first fit
    was a ~4 MB step in the router's RSS in the soak, and a stall on its thread."""
    rng = np.random.default_rng(0)
    x = rng.uniform(1e-4, 1e-2, window)
    sigma = rng.uniform(0.01, 0.03, window)
    calibrate(x, sigma, 0.5 * sigma * np.sqrt(x) * (1.0 + rng.normal(0.0, 0.2, window)))


class LiveImpact:
    """Per-instrument impact calibration fed by the router's fills.

    Parameters
    ----------
    n_instruments : int
    cfg : the config's ``router.impact`` section (:class:`alphad.daemon.router.config.ImpactLive`).
    out : float64 ``[rows, 5]`` view, optional
        Where fitted parameters are also written (the metrics block's impact table);
        instruments beyond its rows are kept in :attr:`params` only.
    """

    def __init__(self, n_instruments: int, cfg, out: np.ndarray | None = None) -> None:
        warm_calibrate(cfg.window)  # ~0.3 s: at construction, before READY, not in a live fit

        self.cfg = cfg
        self.horizon_ns = int(round(cfg.horizon_s * 1e9))
        self.sample_ns = max(1, self.horizon_ns // N_SAMPLES)
        self.refit_ns = int(round(cfg.refit_interval_s * 1e9))
        n = n_instruments
        self.mids = np.full((n, N_SAMPLES + 1), np.nan)  # ring of samples, oldest at n_samples % L
        self.volume = np.zeros((n, N_SAMPLES + 1))
        self.n_samples = 0
        self._next_sample = 0
        self.obs = np.full((n, cfg.window, 3), np.nan)   # ring per instrument: x, sigma, slippage
        self.n_obs = np.zeros(n, np.int64)                # observations ever appended
        self.fit_n = np.zeros(n, np.int64)                # n_obs at the last fit
        self.fit_at = np.full(n, np.iinfo(np.int64).min // 2, np.int64)
        self.params = np.full((n, 5), np.nan)
        self.params[:, P_OBS] = 0.0
        self.out = out
        self.fit_errors = 0
        self.lwm = np.zeros(1, np.int64)
        self._rows = np.zeros((HARVEST_MAX, 3))
        self._next_fit = 0  # round robin over instruments

    # -- market state over the horizon -------------------------------------------------
    def horizon_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(V, sigma)`` per instrument over the last horizon (NaN until a horizon is sampled)."""
        n = self.mids.shape[0]
        L = N_SAMPLES + 1
        if self.n_samples < L:
            return np.full(n, np.nan), np.full(n, np.nan)
        order = (np.arange(L) + self.n_samples) % L  # oldest first
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.diff(np.log(self.mids[:, order]), axis=1)
            sigma = np.std(r, axis=1, ddof=1) * np.sqrt(N_SAMPLES)
        v = self.volume[:, order[-1]] - self.volume[:, order[0]]
        return v, sigma

    def sample(self, books: np.ndarray, tape: np.ndarray) -> None:
        """One sample: ``books`` is one venue's ``[instrument, 4, depth]`` book, ``tape`` the trade tape."""
        j = self.n_samples % (N_SAMPLES + 1)
        self.mids[:, j] = 0.5 * (books[:, BID_PX, 0] + books[:, ASK_PX, 0])
        self.volume[:, j] = tape[:, TAPE_VOLUME]
        self.n_samples += 1

    # -- observations and fits -----------------------------------------------------------
    def observe(self, instrument: int, x: float, sigma: float, slippage: float) -> None:
        """Append one observation (``x`` and ``sigma`` > 0, finite slippage)."""
        k = self.n_obs[instrument] % self.cfg.window
        self.obs[instrument, k] = (x, sigma, slippage)
        self.n_obs[instrument] += 1

    def housekeeping(self, now: int, store, books: np.ndarray, tape: np.ndarray) -> None:
        """Sample, read ended orders and maybe refit one instrument (once per sample period)."""
        if now < self._next_sample:
            return
        self._next_sample = now + self.sample_ns
        self.sample(books, tape)
        k = harvest(store.orders, store.count, self.lwm, self._rows)
        if k:
            v, sigma = self.horizon_state()
            for inst, q, slip in self._rows[:k]:
                i = int(inst)
                if v[i] > 0 and sigma[i] > 0 and np.isfinite(slip):
                    self.observe(i, q / v[i], sigma[i], slip)
        self.refit_due(now)

    def refit_due(self, now: int) -> int:
        """Refit the next instrument that is due; returns its id, or -1 when none was."""
        n = len(self.n_obs)
        for step in range(n):
            i = (self._next_fit + step) % n
            if self.n_obs[i] >= self.cfg.min_observations and self.n_obs[i] > self.fit_n[i] \
                    and now - self.fit_at[i] >= self.refit_ns:
                self._next_fit = (i + 1) % n
                self.refit(i, now)
                return i
        return -1

    def refit(self, i: int, now: int) -> None:
        m = int(min(self.n_obs[i], self.cfg.window))
        x, sigma, y = self.obs[i, :m].T
        self.fit_at[i] = now
        self.fit_n[i] = self.n_obs[i]
        try:
            c = calibrate(x, sigma, y)
        except (ValueError, np.linalg.LinAlgError):
            self.fit_errors += 1  # kept the previous fit; counted, and retried after the interval
            return
        self.params[i] = (c.params.gamma, c.params.alpha, c.params.eta, c.n, c.rmse)
        if self.out is not None and i < self.out.shape[0]:
            self.out[i] = self.params[i]

    def warm(self, store) -> None:
        """Load (or compile) :func:`harvest` for the store's arrays, reading nothing."""
        harvest(store.orders, np.zeros_like(store.count), self.lwm.copy(), self._rows)

    def compacted(self) -> None:
        """The order store was compacted (slots moved): scan it from the start next time."""
        self.lwm[0] = 0
