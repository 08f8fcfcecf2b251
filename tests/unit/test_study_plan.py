"""The study's file, plan and claim statistics (issue 22), without running a backtest."""
from __future__ import annotations

import numpy as np
import pytest

from alphad.ops.study import stats
from alphad.ops.study.spec import Claim, StudyError, load


def test_an_effect_known_by_construction_is_confirmed_and_its_reverse_contradicted():
    rng = np.random.default_rng(1)
    b = rng.normal(0.0, 0.01, 2000)
    a = b + 0.001  # 10 bps a day better on every day: 2520 bps a year
    eff = stats.effect(a, b, n_boot=300, alpha=0.05, seed=3)
    est, lo, hi = eff["return_bps"]
    assert est == pytest.approx(0.001 * 252 * 1e4)
    assert lo <= est <= hi
    up = Claim(name="x", claim="x", source="s", claimed="+", with_="a", without="b")
    down = Claim(name="x", claim="x", source="s", claimed="-", claimed_sign=-1, with_="a", without="b")
    assert stats.verdict(up, eff["return_bps"]) == stats.CONFIRMED
    assert stats.verdict(down, eff["return_bps"]) == stats.CONTRADICTED
    noise = stats.effect(b + rng.normal(0, 0.01, 2000), b, n_boot=300, alpha=0.05, seed=3)
    assert stats.verdict(up, noise["return_bps"]) == stats.NOT_DISTINGUISHABLE


def test_drawdown_reduction_is_one_minus_the_ratio_of_the_drawdowns():
    b = np.array([0.0, -0.1, 0.0, 0.05] * 5)
    a = b / 2  # every loss halved
    eff = stats.effect(a, b, n_boot=200, alpha=0.05, seed=1)
    mdd_a, mdd_b = stats._mdd(a[None])[0], stats._mdd(b[None])[0]
    assert eff["max_drawdown_reduction"][0] == pytest.approx(1 - mdd_a / mdd_b)
    assert 0.4 < eff["max_drawdown_reduction"][0] < 0.7


def test_cvar_is_the_mean_of_the_worst_tail():
    r = np.arange(-50, 50) / 1000.0
    assert stats.cvar(r, 0.95) == pytest.approx(-0.048)  # the five worst days, -5% .. -4.6%


def test_the_shipped_study_names_every_variant_of_the_issue(repo_root):
    study, _ = load(repo_root / "studies/seed_claims.yaml")
    names = {v.name for v in study.variants}
    assert {"no_vix_multipliers", "no_vix_kill", "no_regime", "no_vol_target", "fixed_fraction", "no_cost_filter",
            "no_sector_limit", "no_drawdown_ladder", "equal_weight", "best_member", "select_purged", "select_naive",
            "drop_nma", "drop_bollinger_pctb", "drop_volume_z"} <= names
    used = {c.with_ for c in study.claims} | {c.without for c in study.claims}
    assert names <= used  # every variant is in a claim row
    assert {c.measure for c in study.intraday} == {"micro_vs_quote_ic", "micro_vs_quote_pnl", "ofi_r2",
                                                   "twap_vs_immediate"}


@pytest.mark.parametrize("text, expected", [
    ("windows: []", "windows"),
    ("claims: [{name: c, claim: c, source: s, claimed: x, with: baseline, without: nobody}]", "nobody"),
    ("variants: [{name: baseline}]", "baseline"),
])
def test_a_bad_study_names_what_is_wrong(tmp_path, repo_root, text, expected):
    body = {"windows": "windows: [{name: w, trade_from: 2017-01-01, train_end: 2016-12-31}]",
            "claims": "claims: []", "variants": "variants: []"}
    key = text.split(":")[0]
    body[key] = text
    p = tmp_path / "s.yaml"
    p.write_text(f"name: s\nbacktest: {repo_root}/configs/daily.yaml\ntrain: {repo_root}/configs/train_daily.yaml\n"
                 f"primary_window: w\n" + "\n".join(body.values()) + "\n")
    with pytest.raises(StudyError, match=expected):
        load(p)


def test_a_window_whose_model_would_see_its_days_is_refused(tmp_path, repo_root):
    p = tmp_path / "s.yaml"
    p.write_text(f"name: s\nbacktest: {repo_root}/configs/daily.yaml\ntrain: {repo_root}/configs/train_daily.yaml\n"
                 "primary_window: w\nvariants: []\nwindows: [{name: w, trade_from: 2017-01-01, train_end: 2017-06-30}]\n")
    with pytest.raises(StudyError, match="train_end 2017-06-30 expected before trade_from"):
        load(p)
