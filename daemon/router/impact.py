"""Market impact: Almgren-Chriss impact, time-of-day multipliers, calibration, optimal schedule.

Units
-----
* ``sigma``: volatility of returns over the horizon the volume ``V`` refers to
  (e.g. daily sigma with daily volume), a fraction (0.02 = 2 %).
* ``x = Q / V``: order size over that volume (participation), dimensionless.
* Impacts are fractions of price (multiply by 1e4 for bps).

Model (Almgren, Thum, Hauptmann & Li 2005, "Direct estimation of equity market impact")::

    temporary(x) = m(t) * sigma * gamma * x**alpha      (paid on the order, decays afterwards)
    permanent(x) =        sigma * eta   * x             (moves the price for everyone)
    slippage(x)  = temporary(x) + permanent(x) / 2      (vs the arrival price, on average)

``m(t)`` is the time-of-day multiplier (:class:`TimeOfDay`): liquidity is thin
at the open, before the close and over lunch, so the same order costs more
there.  It applies to the temporary part only: the permanent part is
information, which does not depend on the hour.  The defaults for gamma,
alpha and eta are the paper's estimates for US large caps (its eta and gamma
names are swapped relative to the ones used here).

:func:`calibrate` fits ``gamma, alpha, eta`` per instrument from realised
slippage (nonlinear least squares started from a log-linear fit);
:func:`ac_schedule` is the Almgren-Chriss (2000) closed-form optimal
trajectory for a parent order under risk aversion ``lam``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import msgspec
import numpy as np

__all__ = [
    "ImpactParams", "TimeOfDay", "temporary_impact", "permanent_impact", "expected_slippage",
    "calibrate", "Calibration", "ac_schedule", "ac_kappa", "ac_linear_coefficients",
]


class ImpactParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-instrument impact coefficients (dimensionless).

    Attributes
    ----------
    gamma : float
        Temporary impact scale.
    alpha : float
        Temporary impact exponent (0 < alpha <= 1.5; ~0.6 empirically).
    eta : float
        Permanent impact slope.
    """

    gamma: float = 0.142
    alpha: float = 0.6
    eta: float = 0.314

    def __post_init__(self) -> None:
        if not (self.gamma >= 0 and self.eta >= 0 and 0 < self.alpha <= 1.5):
            raise ValueError(f"impact params expected gamma >= 0, eta >= 0, 0 < alpha <= 1.5, was "
                             f"gamma={self.gamma}, alpha={self.alpha}, eta={self.eta}")


class TimeOfDay(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Time-of-day multiplier on temporary impact.

    Windows are ``[start, end)`` in minutes after midnight, exchange local time
    (US equities defaults: open 09:30-10:00, lunch 12:00-13:30, close 15:30-16:00).
    Outside every window the multiplier is 1.
    """

    open_mult: float = 1.5
    close_mult: float = 1.3
    lunch_mult: float = 1.2
    open_window: tuple[int, int] = (570, 600)
    lunch_window: tuple[int, int] = (720, 810)
    close_window: tuple[int, int] = (930, 960)

    def multiplier(self, minute_of_day):
        """Multiplier for minute(s) of the day (scalar or array)."""
        m = np.asarray(minute_of_day, dtype=np.float64)
        out = np.ones_like(m)
        for (a, b), k in ((self.open_window, self.open_mult), (self.lunch_window, self.lunch_mult),
                          (self.close_window, self.close_mult)):
            out = np.where((m >= a) & (m < b), k, out)
        return float(out) if out.ndim == 0 else out


def _check_x(x):
    x = np.asarray(x, dtype=np.float64)
    if np.any(~np.isfinite(x)) or np.any(x < 0):
        raise ValueError("participation Q/V expected finite and >= 0, was not (check V > 0)")
    return x


def temporary_impact(sigma, x, params: ImpactParams = ImpactParams(), multiplier=1.0):
    """``multiplier * sigma * gamma * x**alpha`` (fraction of price)."""
    x = _check_x(x)
    return np.asarray(multiplier) * np.asarray(sigma) * params.gamma * x ** params.alpha


def permanent_impact(sigma, x, params: ImpactParams = ImpactParams()):
    """``sigma * eta * x`` (fraction of price)."""
    x = _check_x(x)
    return np.asarray(sigma) * params.eta * x


def expected_slippage(sigma, x, params: ImpactParams = ImpactParams(), multiplier=1.0):
    """Expected cost vs arrival: temporary + half the permanent (fraction of price)."""
    return temporary_impact(sigma, x, params, multiplier) + 0.5 * permanent_impact(sigma, x, params)


class Calibration(NamedTuple):
    params: ImpactParams
    n: int                  # observations used
    rmse: float             # residual RMS of slippage / sigma
    method: str             # "nls" or "loglinear"


def calibrate(x, sigma, slippage, *, multiplier=1.0, post_move=None) -> Calibration:
    """Fit ``gamma, alpha, eta`` from realised executions of one instrument.

    Parameters
    ----------
    x : array
        Participation ``Q / V`` of each parent (> 0).
    sigma : array
        Volatility for each parent (same horizon as V).
    slippage : array
        Realised cost vs arrival, signed so that positive is a cost
        (``side * (avg_px - arrival) / arrival``), fraction of price.
    multiplier : array or float
        Time-of-day multiplier at each parent's execution (divides out the hour).
    post_move : array, optional
        Price move after the temporary part decayed (e.g. 30 min after the end,
        same sign convention): the permanent impact.  With it, ``eta`` is fitted
        from it alone (OLS through the origin) and ``gamma, alpha`` from what it
        leaves; without it all three come from the slippage.

    Returns
    -------
    Calibration

    Notes
    -----
    Residuals are scaled by ``sigma`` (costs are in units of volatility), which
    makes instruments and days comparable.  The nonlinear fit starts from a
    log-linear fit ``log(y) = log(gamma) + alpha * log(x)`` on the positive
    observations; ``scipy.optimize.least_squares`` refines it in two steps
    (unweighted, then weighted by the inverse of the first step's expected
    cost, with a soft-L1 loss so a few outliers do not drag the estimate).
    """
    from scipy.optimize import least_squares

    x = _check_x(x).ravel()
    sig = np.asarray(sigma, dtype=np.float64).ravel()
    y = np.asarray(slippage, dtype=np.float64).ravel() / sig
    m = np.broadcast_to(np.asarray(multiplier, dtype=np.float64), x.shape)
    if not (len(x) == len(sig) == len(y)) or len(x) < 10:
        raise ValueError(f"x, sigma, slippage expected equal lengths >= 10, was "
                         f"{len(x)}, {len(sig)}, {len(y)}")
    if np.any(sig <= 0) or np.any(x <= 0):
        raise ValueError("sigma and x expected > 0 for every observation, was not")
    eta0 = None
    if post_move is not None:
        p = np.asarray(post_move, dtype=np.float64).ravel() / sig
        eta0 = float(max(np.dot(x, p) / np.dot(x, x), 0.0))
    # Log-linear start for the temporary part.
    resid_perm = 0.5 * (eta0 if eta0 is not None else 0.0) * x
    yt = (y - resid_perm) / m
    pos = yt > 0
    if pos.sum() >= 5:
        A = np.vstack([np.ones(pos.sum()), np.log(x[pos])]).T
        c, *_ = np.linalg.lstsq(A, np.log(yt[pos]), rcond=None)
        g0, a0 = float(np.exp(c[0])), float(np.clip(c[1], 0.05, 1.5))
    else:
        g0, a0 = 0.1, 0.6
    def model(theta):
        if eta0 is not None:
            g, a = theta
            e = eta0
        else:
            g, a, e = theta
        return m * g * x ** a + 0.5 * e * x

    if eta0 is not None:
        theta0, lo, hi = [g0, a0], [0.0, 0.01], [np.inf, 1.5]
    else:
        theta0, lo, hi = [g0, a0, 0.1], [0.0, 0.01, 0.0], [np.inf, 1.5, np.inf]
    # Two-step feasible GLS: slippage noise grows with the expected cost (big
    # orders take longer and meet more volatility), so the second pass weights
    # each residual by 1 / (first-pass expected cost + a floor).
    r = least_squares(lambda th: model(th) - y, theta0, bounds=(lo, hi))
    fit0 = model(r.x)
    scale = np.abs(fit0) + 0.1 * float(np.median(np.abs(fit0)))
    r = least_squares(lambda th: (model(th) - y) / scale, r.x, bounds=(lo, hi), loss="soft_l1")
    g, a = r.x[0], r.x[1]
    e = eta0 if eta0 is not None else r.x[2]
    rmse = float(np.sqrt(np.mean((model(r.x) - y) ** 2)))
    return Calibration(ImpactParams(gamma=float(g), alpha=float(a), eta=float(e)), len(x), rmse,
                       "nls" if r.success else "loglinear")


# ---------------------------------------------------------------------------------
# Almgren-Chriss optimal execution (Almgren & Chriss 2000, discrete closed form)
# ---------------------------------------------------------------------------------

def ac_kappa(sigma_px: float, eta_lin: float, gamma_px: float, tau: float, lam: float) -> float:
    """Urgency ``kappa`` of the AC trajectory.

    ``cosh(kappa * tau) = 1 + kappa_tilde**2 * tau**2 / 2`` with
    ``kappa_tilde**2 = lam * sigma_px**2 / eta_tilde`` and
    ``eta_tilde = eta_lin - gamma_px * tau / 2``.
    """
    eta_t = eta_lin - 0.5 * gamma_px * tau
    if eta_t <= 0:
        raise ValueError(f"eta_lin - gamma_px*tau/2 expected > 0, was {eta_t} "
                         "(permanent impact too large for this period length)")
    kt2 = lam * sigma_px ** 2 / eta_t
    return math.acosh(1.0 + 0.5 * kt2 * tau * tau) / tau


def ac_schedule(X: float, n_periods: int, tau: float, sigma_px: float, eta_lin: float,
                gamma_px: float, lam: float, *, lot: float | None = None) -> np.ndarray:
    """Optimal trades for liquidating (or buying) ``X`` over ``n_periods`` periods.

    Minimises ``E[cost] + lam * Var[cost]`` with linear temporary impact
    ``eta_lin * n / tau`` (price per share, ``n`` shares per period) and linear
    permanent impact ``gamma_px * n`` (price per share):
    holdings ``x_j = X * sinh(kappa (T - t_j)) / sinh(kappa T)``.

    Parameters
    ----------
    X : float
        Shares to trade (sign is kept: the schedule has the sign of X).
    n_periods : int
        Number of trading periods N; ``T = N * tau``.
    tau : float
        Period length (any time unit, used consistently with sigma_px).
    sigma_px : float
        Price volatility per sqrt(time unit), in price units.
    eta_lin, gamma_px : float
        Linear temporary / permanent coefficients (see :func:`ac_linear_coefficients`).
    lam : float
        Risk aversion (1/price units); 0 gives the straight-line (TWAP) schedule.
    lot : float, optional
        When given, trades are whole lots that sum exactly to ``X`` (rounded
        cumulative holdings, so the rounding error never accumulates).

    Returns
    -------
    ndarray
        ``n_periods`` trade sizes (shares), first period first.
    """
    if n_periods <= 0 or tau <= 0 or lam < 0:
        raise ValueError(f"n_periods > 0, tau > 0, lam >= 0 expected, was {n_periods}, {tau}, {lam}")
    j = np.arange(n_periods + 1)
    T = n_periods * tau
    kappa = ac_kappa(sigma_px, eta_lin, gamma_px, tau, lam) if lam > 0 else 0.0
    if kappa * T < 1e-9:
        hold = X * (1.0 - j / n_periods)
    elif kappa * T > 700:  # sinh overflows; the ratio tends to exp(-kappa t)
        hold = X * np.exp(-kappa * j * tau) * (1 - np.exp(-2 * kappa * (T - j * tau))) / \
            (1 - np.exp(-2 * kappa * T))
    else:
        hold = X * np.sinh(kappa * (T - j * tau)) / np.sinh(kappa * T)
    if lot is not None:
        if lot <= 0:
            raise ValueError(f"lot expected > 0, was {lot}")
        total = int(round(X / lot))
        hold_l = np.round(hold / lot).astype(np.int64)
        hold_l[0], hold_l[-1] = total, 0
        return -np.diff(hold_l) * lot
    return -np.diff(hold)


def ac_linear_coefficients(price: float, sigma: float, volume: float, params: ImpactParams,
                           tau: float) -> tuple[float, float]:
    """Linearise the power-law model for :func:`ac_schedule`.

    ``sigma`` and ``volume`` refer to one unit of time (the unit of ``tau``):
    sigma is the return volatility per sqrt(unit) and ``volume`` the shares
    traded per unit.  Trading at ``v`` shares per unit costs
    ``price*sigma*gamma*(v/V)**alpha`` per share; its linear form (alpha = 1) gives
    ``eta_lin = price*sigma*gamma/V``.  Permanent impact ``sigma*eta*Q/V`` per
    share traded gives ``gamma_px = price*sigma*eta/V``.

    Returns
    -------
    (eta_lin, gamma_px) : tuple of float
        Price units per (share per unit time), and price units per share.
    """
    if volume <= 0 or price <= 0 or sigma <= 0 or tau <= 0:
        raise ValueError(f"price, sigma, volume, tau expected > 0, was {price}, {sigma}, {volume}, {tau}")
    return price * sigma * params.gamma / volume, price * sigma * params.eta / volume
