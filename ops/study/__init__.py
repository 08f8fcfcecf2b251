"""Statistics of the ablation study (issue 22): the stationary bootstrap and its automatic block
length (``bootstrap``), the probabilistic and deflated Sharpe ratios (``sharpe``) and the
probability of backtest overfitting by combinatorially symmetric cross-validation (``cscv``).

Pure numpy/scipy; every random draw comes from a numpy ``Generator`` the caller passes (or an
int seed), so the same inputs and seed give the same numbers.
"""
from alphad.ops.study.bootstrap import (bootstrap_ci, bootstrap_diff_ci, optimal_block_length,
                                        stationary_bootstrap_indices)
from alphad.ops.study.cscv import PBOResult, column_sharpe, pbo
from alphad.ops.study.sharpe import (deflated_sharpe_ratio, expected_max_sharpe,
                                     probabilistic_sharpe_ratio, return_moments)

__all__ = [
    "PBOResult", "bootstrap_ci", "bootstrap_diff_ci", "column_sharpe", "deflated_sharpe_ratio",
    "expected_max_sharpe", "optimal_block_length", "pbo", "probabilistic_sharpe_ratio",
    "return_moments", "stationary_bootstrap_indices",
]
