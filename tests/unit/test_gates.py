"""Validation gates: each one fails alone, names itself, and agrees with scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ttest_1samp

from alphad.ops.gates import GateConfig, GateFailed, check_gates, evaluate_gates, ic_tstat

CFG = GateConfig(min_mean_ic=0.01, min_ic_tstat=2.0, max_is_oos_ratio=5.0)
GOOD_OOS = [0.03, 0.02, 0.025, 0.035, 0.015]
GOOD_IS = [0.06] * 5


def _by_name(results):
    return {r.name: r for r in results}


def test_ic_tstat_when_folds_then_equals_one_sample_t_test():
    a = np.array([0.02, -0.01, 0.03, 0.015, 0.0, 0.04])
    assert ic_tstat(a) == pytest.approx(ttest_1samp(a, 0.0).statistic, rel=1e-12)
    assert ic_tstat([0.1]) == 0.0
    assert ic_tstat([0.02, 0.02]) == math.inf


def test_gates_when_strong_model_then_all_pass_and_check_returns():
    res = evaluate_gates(GOOD_OOS, GOOD_IS, CFG)
    assert [r.name for r in res] == ["min_mean_ic", "min_ic_tstat", "max_is_oos_ratio"]
    assert all(r.passed for r in res)
    assert _by_name(res)["max_is_oos_ratio"].value == pytest.approx(0.06 / 0.025)
    check_gates(res)


def test_gates_when_mean_ic_low_then_only_that_gate_fails_and_is_named():
    oos = [0.008, 0.0085, 0.009, 0.0082, 0.0088]  # steady (high t) but small
    res = evaluate_gates(oos, [0.01] * 5, CFG)
    assert [r.name for r in res if not r.passed] == ["min_mean_ic"]
    with pytest.raises(GateFailed, match=r"min_mean_ic: was 0.0085, threshold 0.01") as ei:
        check_gates(res)
    assert "min_ic_tstat" not in str(ei.value)


def test_gates_when_ic_noisy_then_tstat_gate_fails():
    oos = [0.10, -0.06, 0.08, -0.05, 0.03]  # mean 0.02, t ~ 0.6
    res = evaluate_gates(oos, [0.05] * 5, CFG)
    assert [r.name for r in res if not r.passed] == ["min_ic_tstat"]


def test_gates_when_overfit_then_ratio_gate_fails():
    res = evaluate_gates(GOOD_OOS, [0.4] * 5, CFG)
    assert [r.name for r in res if not r.passed] == ["max_is_oos_ratio"]
    assert _by_name(res)["max_is_oos_ratio"].value == pytest.approx(16.0)


def test_gates_when_oos_ic_negative_then_ratio_is_inf_and_all_fail():
    res = evaluate_gates([-0.01, -0.02, -0.015], [0.1] * 3, CFG)
    assert _by_name(res)["max_is_oos_ratio"].value == math.inf
    assert not any(r.passed for r in res)
    with pytest.raises(GateFailed) as ei:
        check_gates(res)
    assert {"min_mean_ic", "min_ic_tstat", "max_is_oos_ratio"} <= {r.name for r in ei.value.results}


def test_gates_when_no_folds_or_nan_then_error():
    with pytest.raises(ValueError, match="at least one fold"):
        evaluate_gates([], [], CFG)
    with pytest.raises(ValueError, match="finite"):
        evaluate_gates([0.1, float("nan")], [0.1, 0.1], CFG)
