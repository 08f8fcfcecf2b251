"""The study's statistics: each run's figures, each claim's effect with its interval and
verdict, the Deflated Sharpe Ratio of every variant and the probability of backtest overfitting.

* **Run figures**: the backtest report's (``ops/backtest_report.compute``: CAGR, Sharpe,
  Sortino, max drawdown, Calmar, turnover, fees and the cost split) plus CVaR 95%, the mean of
  the days at or below the 5% quantile of daily returns.
* **A claim's effect** in one window: the variant ``with`` the enhancement minus the variant
  ``without`` it, on the days both traded.  Intervals are 95% percentile intervals over
  stationary-bootstrap resamples (Politis & Romano 1994) of the paired daily returns (the same
  indices for both series), with the mean block length of Politis & White (2004) for the
  difference series (at least 1).  ``return_bps``: the difference of mean daily returns x 252,
  in basis points a year; ``sharpe``: the difference of annualised Sharpe ratios;
  ``max_drawdown_reduction``: ``1 - MDD(with) / MDD(without)`` (0.48 = 48% less drawdown).
* **Verdict** (on the study's primary window): *confirmed* when the interval lies on the side
  of zero the claim predicts, *contradicted* when it lies on the other, else *not
  distinguishable from zero*.
* **Deflated Sharpe Ratio** (Bailey & López de Prado 2014) of each variant in the primary
  window, for as many trials as the study has variants, the variance of their per-day Sharpe
  ratios across the variants.
* **PBO** (Bailey, Borwein, López de Prado & Zhu): CSCV over the variants' daily returns in the
  primary window, ``pbo_splits`` blocks.
"""
from __future__ import annotations

import math

import numpy as np

from alphad.ops.study import bootstrap, cscv, sharpe
from alphad.ops.study.spec import Claim, Study

PERIODS = 252
CONFIRMED, NOT_DISTINGUISHABLE, CONTRADICTED = "confirmed", "not distinguishable from zero", "contradicted"
NEVER_ACTED = "no effect: it never acted (the two runs are identical)"


def cvar(r: np.ndarray, level: float = 0.95) -> float:
    """Mean of the daily returns at or below their ``1 - level`` quantile (a loss is negative)."""
    if len(r) == 0:
        return math.nan
    q = np.quantile(r, 1.0 - level)
    return float(r[r <= q].mean())


def run_figures(run: dict) -> dict:
    """The figures one variant x window is shown by."""
    if "refused" in run:
        return {"refused": run["refused"]}
    m = run["metrics"]
    r = np.asarray(run["returns"], float)
    costs = sum(m.get(k) or 0.0 for k in ("fees", "spread_cost", "impact_cost"))
    return {"cagr": m["cagr"], "volatility": m["volatility"], "sharpe": m["sharpe"], "sortino": m["sortino"], "max_drawdown": m["max_drawdown"],
            "calmar": m["calmar"], "cvar95": cvar(r), "turnover": m["turnover"], "fees": m["fees"], "costs": costs,
            "costs_bps_a_year": costs / m["initial_equity"] * 1e4 * PERIODS / max(m["days"], 1),
            "orders": m["orders"], "days": m["days"], "final_equity": m["final_equity"],
            "final_state": run.get("final_state")}


def _aligned(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
    ta, tb = np.asarray(a["ts"], np.int64), np.asarray(b["ts"], np.int64)
    common, ia, ib = np.intersect1d(ta, tb, return_indices=True)
    return np.asarray(a["returns"], float)[ia], np.asarray(b["returns"], float)[ib]


def _annual_sharpe(x: np.ndarray) -> np.ndarray:
    """Row-wise annualised Sharpe of ``x`` ``(k, n)`` (NaN for a row that never varies)."""
    sd = x.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, x.mean(axis=-1) / sd * math.sqrt(PERIODS), np.nan)


def _mdd(x: np.ndarray) -> np.ndarray:
    """Row-wise maximum drawdown magnitude (0.1 = 10%) of the compounded returns ``x``."""
    wealth = np.cumprod(1.0 + x, axis=-1)
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0), axis=-1)
    return (1.0 - wealth / peak).max(axis=-1)


def _reduction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    da, db = _mdd(a), _mdd(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(db > 0, 1.0 - da / db, np.nan)


MEASURES = {
    "return_bps": lambda a, b: (a.mean(axis=-1) - b.mean(axis=-1)) * PERIODS * 1e4,
    "sharpe": lambda a, b: _annual_sharpe(a) - _annual_sharpe(b),
    "max_drawdown_reduction": _reduction,
}


def effect(a: np.ndarray, b: np.ndarray, *, n_boot: int, alpha: float, seed: int) -> dict:
    """Every measure of ``a`` (with) against ``b`` (without): ``{name: (estimate, lo, hi)}``."""
    n = len(a)
    if n < 10:
        return {"days": n, **{k: (math.nan, math.nan, math.nan) for k in MEASURES}}
    d = a - b
    block = max(1.0, bootstrap.optimal_block_length(d)) if np.ptp(d) > 0 else 1.0
    idx = bootstrap.stationary_bootstrap_indices(n, block, n_boot, seed)
    out: dict = {"days": n, "block": block}
    for name, f in MEASURES.items():
        est = float(f(a[None, :], b[None, :])[0])
        reps = f(a[idx], b[idx])
        reps = reps[np.isfinite(reps)]
        if not np.isfinite(est) or len(reps) < n_boot // 2:
            out[name] = (est, math.nan, math.nan)
            continue
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
        out[name] = (est, float(lo), float(hi))
    return out


def verdict(claim: Claim, interval: tuple[float, float, float], identical: bool = False) -> str:
    if identical:
        return NEVER_ACTED
    _, lo, hi = interval
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return NOT_DISTINGUISHABLE
    lo, hi = (lo, hi) if claim.claimed_sign > 0 else (-hi, -lo)
    if lo > 0:
        return CONFIRMED
    if hi < 0:
        return CONTRADICTED
    return NOT_DISTINGUISHABLE


def claim_rows(study: Study, runs_by_cell: dict[tuple[str, str], dict]) -> list[dict]:
    rows = []
    b = study.bootstrap
    for i, c in enumerate(study.claims):
        per_window = {}
        for w in study.windows:
            ra, rb = runs_by_cell[(c.with_, w.name)], runs_by_cell[(c.without, w.name)]
            refused = [x["refused"] for x in (ra, rb) if "refused" in x]
            if refused:
                per_window[w.name] = {"refused": refused[0]}
                continue
            a, bb = _aligned(ra, rb)
            per_window[w.name] = effect(a, bb, n_boot=b.n_boot, alpha=b.alpha, seed=b.seed + i)
            per_window[w.name]["identical"] = bool(np.array_equal(a, bb))
        primary = per_window[study.primary_window]
        v = f"n/a ({primary['refused']})" if "refused" in primary else \
            verdict(c, primary[c.metric], primary["identical"])
        rows.append({"claim": c, "windows": per_window, "verdict": v})
    return rows


def versus_baseline(study: Study, runs_by_cell: dict[tuple[str, str], dict]) -> dict[str, dict]:
    """Every variant minus the baseline in each window (the same bootstrap as the claims):
    ``{variant: {window: effect or {"refused": ...}}}``."""
    b = study.bootstrap
    out: dict[str, dict] = {}
    for i, v in enumerate(study.variants):
        out[v.name] = {}
        for w in study.windows:
            ra, rb = runs_by_cell[(v.name, w.name)], runs_by_cell[("baseline", w.name)]
            refused = [x["refused"] for x in (ra, rb) if "refused" in x]
            if refused:
                out[v.name][w.name] = {"refused": refused[0]}
                continue
            a, bb = _aligned(ra, rb)
            out[v.name][w.name] = effect(a, bb, n_boot=b.n_boot, alpha=b.alpha, seed=b.seed + 1000 + i)
            out[v.name][w.name]["identical"] = bool(np.array_equal(a, bb))
    return out


def deflated_sharpes(names: list[str], returns: list[np.ndarray]) -> dict[str, dict]:
    """Each variant's per-day Sharpe and its DSR for ``len(names)`` trials."""
    moments = {}
    for name, r in zip(names, returns):
        try:
            moments[name] = sharpe.return_moments(r)
        except ValueError:  # a variant that never traded: no Sharpe ratio to deflate
            continue
    srs = np.array([m[0] for m in moments.values()])
    var_sr = float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0
    out = {}
    for name, (sr, n, skew, kurt) in moments.items():
        dsr = sharpe.deflated_sharpe_ratio(sr, n, skew, kurt, len(names), var_sr) if var_sr > 0 else math.nan
        out[name] = {"sr_daily": sr, "sr_annual": sr * math.sqrt(PERIODS), "dsr": dsr, "n_trials": len(names)}
    return out


def overfitting(names: list[str], runs: list[dict], n_splits: int) -> dict:
    """PBO over the variants' daily returns on the days all of them traded."""
    common = None
    for run in runs:
        t = np.asarray(run["ts"], np.int64)
        common = t if common is None else np.intersect1d(common, t)
    cols = []
    for run in runs:
        t = np.asarray(run["ts"], np.int64)
        cols.append(np.asarray(run["returns"], float)[np.isin(t, common)])
    m = np.column_stack(cols)
    res = cscv.pbo(m, n_splits)
    return {"pbo": res.pbo, "prob_loss": res.prob_loss, "degradation_slope": res.degradation_slope,
            "n_strategies": len(names), "days": int(res.rows_used), "splits": n_splits,
            "combinations": int(len(res.logits)), "logits": res.logits.tolist()}


def refusal(model: dict) -> str:
    """Why the training gates refused a model, in a few words."""
    gates = model.get("refused")
    if not isinstance(gates, list):
        return f"model refused ({gates})"
    failed = [f"{g['name']} {g['value']:.3g}" + (" < " if g["name"].startswith("min") else " > ") + f"{g['threshold']:g}"
              if g.get("value") is not None else f"{g['name']} undefined" for g in gates if not g.get("passed")]
    return "model refused by the training gates: " + ", ".join(failed)


def summarise(study: Study, plan, models: dict, runs: dict) -> dict:
    """Everything the report shows, from the plan's results."""
    by_cell = {}
    for cell, key in plan.cells.items():
        run, model = runs[key], models[plan.model_of[key]]
        by_cell[cell] = {**run, "refused": refusal(model)} if "refused" in model else run
    figures = {cell: run_figures(run) for cell, run in by_cell.items()}
    for cell, key in plan.cells.items():
        model = models[plan.model_of[key]]
        figures[cell]["model_oos_ic"] = model.get("oos_ic_mean")
        if "selection" in model:
            figures[cell]["selection"] = model["selection"]
    names = [v.name for v in study.all_variants()]
    ok = [n for n in names if "refused" not in by_cell[(n, study.primary_window)]]
    primary = [by_cell[(n, study.primary_window)] for n in ok]
    return {
        "figures": figures,
        "vs_baseline": versus_baseline(study, by_cell),
        "claims": claim_rows(study, by_cell),
        "dsr": deflated_sharpes(ok, [np.asarray(r["returns"], float) for r in primary]),
        "pbo": overfitting(ok, primary, study.pbo_splits) if len(ok) >= 2 else None,
        "runs": by_cell,
    }
