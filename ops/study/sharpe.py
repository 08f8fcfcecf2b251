"""The Probabilistic and the Deflated Sharpe Ratio.

* Bailey, D. H. & López de Prado, M. (2012), "The Sharpe Ratio Efficient Frontier", Journal of
  Risk 15(2): the Probabilistic Sharpe Ratio, the probability that the true Sharpe ratio
  exceeds a benchmark ``SR*`` given the estimate ``SR`` from ``n`` returns of skewness ``g3``
  and kurtosis ``g4``::

      PSR(SR*) = Phi( (SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) )

* Bailey, D. H. & López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
  40(5), 94-107: eq. (1), the expected maximum of ``N`` independent trials' Sharpe ratios of
  mean 0 and variance ``V``::

      E[max SR] = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))

  (``gamma`` the Euler-Mascheroni constant), and eq. (2), ``DSR = PSR(E[max SR])``.

Units: every Sharpe ratio here is PER PERIOD (mean over standard deviation of the period
returns, not annualised; annualised ``S`` over ``A`` periods a year is ``S / sqrt(A)``), and
``V`` is the variance of the trials' per-period Sharpe ratios.  ``kurtosis`` is the raw
(non-excess) kurtosis of the paper, 3 for normal returns.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

EULER_GAMMA = float(np.euler_gamma)


def return_moments(r: np.ndarray) -> tuple[float, int, float, float]:
    """``(sr, n, skew, kurtosis)`` of a series of period returns, the inputs of
    ``probabilistic_sharpe_ratio``: the per-period Sharpe ratio ``mean / std`` (``ddof=1``),
    the count, and the sample skewness and raw kurtosis (moment estimators, divisor ``n``)."""
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2 or not np.all(np.isfinite(r)):
        raise ValueError(f"r: expected a 1-D series of at least 2 finite returns, found shape "
                         f"{r.shape}")
    if r.max() == r.min():
        raise ValueError("r: expected returns that vary, found a constant series")
    d = r - r.mean()
    m2 = float(np.mean(d ** 2))
    sr = float(r.mean() / np.std(r, ddof=1))
    return sr, len(r), float(np.mean(d ** 3) / m2 ** 1.5), float(np.mean(d ** 4) / m2 ** 2)


def _check_n(n: object) -> None:
    if np.any(np.asarray(n) < 2):
        raise ValueError(f"n: expected at least 2 returns, found {n!r}")


def probabilistic_sharpe_ratio(sr: float | np.ndarray, sr_benchmark: float | np.ndarray,
                               n: int | np.ndarray, skew: float | np.ndarray,
                               kurtosis: float | np.ndarray) -> float | np.ndarray:
    """``PSR(SR*)`` of Bailey & López de Prado (2012): the probability that the true per-period
    Sharpe ratio exceeds ``sr_benchmark``, given the per-period estimate ``sr`` from ``n``
    returns of sample ``skew`` and RAW ``kurtosis`` (3 for normal returns).  Broadcasts over
    arrays."""
    _check_n(n)
    skew_a = np.asarray(skew, dtype=np.float64)
    kurt_a = np.asarray(kurtosis, dtype=np.float64)
    # Pearson's inequality: any distribution has kurtosis >= 1 + skew^2; it also keeps the
    # variance term below positive.  Excess kurtosis passed by mistake usually breaks it.
    if np.any(kurt_a < 1.0 + skew_a ** 2):
        raise ValueError(f"kurtosis: expected the raw (non-excess) kurtosis, normal = 3, which is "
                         f">= 1 + skew^2; found kurtosis {kurtosis!r} with skew {skew!r}")
    sr_a = np.asarray(sr, dtype=np.float64)
    var_term = 1.0 - skew_a * sr_a + (kurt_a - 1.0) / 4.0 * sr_a ** 2
    if np.any(var_term <= 0.0):
        raise ValueError(f"skew, kurtosis: expected a non-degenerate distribution, found "
                         f"1 - skew SR + (kurtosis - 1)/4 SR^2 = {var_term!r}")
    z = (sr_a - np.asarray(sr_benchmark, dtype=np.float64)) \
        * np.sqrt(np.asarray(n, dtype=np.float64) - 1.0) / np.sqrt(var_term)
    out = norm.cdf(z)
    return float(out) if np.ndim(out) == 0 else out


def expected_max_sharpe(n_trials: int, var_sr: float, mean_sr: float = 0.0) -> float:
    """``E[max SR]`` over ``n_trials`` independent trials whose Sharpe ratios have mean
    ``mean_sr`` and variance ``var_sr`` (Bailey & López de Prado 2014, eq. 1; an approximation
    from extreme-value theory, for ``N >> 1``).  One trial is no selection: its expected
    maximum is its mean, ``mean_sr``."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"n_trials: expected an integer number of independent trials >= 1, "
                         f"found {n_trials!r}")
    if not (math.isfinite(var_sr) and var_sr >= 0.0):
        raise ValueError(f"var_sr: expected a finite variance >= 0 of the trials' Sharpe ratios, "
                         f"found {var_sr!r}")
    if n_trials == 1:
        return float(mean_sr)
    n = float(n_trials)
    z = ((1.0 - EULER_GAMMA) * norm.ppf(1.0 - 1.0 / n)
         + EULER_GAMMA * norm.ppf(1.0 - 1.0 / (n * math.e)))
    return float(mean_sr + math.sqrt(var_sr) * z)


def deflated_sharpe_ratio(sr: float, n: int, skew: float, kurtosis: float, n_trials: int,
                          var_sr: float) -> float:
    """``DSR`` of Bailey & López de Prado (2014), eq. 2: the PSR of the selected strategy's
    per-period ``sr`` (from ``n`` returns of sample ``skew`` and RAW ``kurtosis``) against the
    expected maximum Sharpe ratio of ``n_trials`` independent trials of zero mean whose
    per-period Sharpe ratios vary with variance ``var_sr``.  With one trial it is
    ``PSR(0)``."""
    return float(probabilistic_sharpe_ratio(sr, expected_max_sharpe(n_trials, var_sr), n, skew,
                                            kurtosis))
