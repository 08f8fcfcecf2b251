"""Intraday measurements of the ablation study (issue 22), on the Binance BTCUSDT capture in
``shared/data/l2`` (2024-08-08 23:54:13 .. 2024-08-09 00:05:04 UTC, about 650 s): claims of the
systems alphad descends from, measured with the daemon's own code.

* :func:`feature_set_ic`: does the ``micro`` feature set predict the mid better than ``quote``,
  out of sample, and does a simple strategy on either survive fees?
* :func:`ofi_r2`: Cont, Kukanov & Stoikov (2014), "The Price Impact of Order Book Events"
  (J. Financial Econometrics 12(1)): the mid-price change over an interval is linear in the
  best-level order-flow imbalance of that interval, "R² ≈ 70%".
* :func:`twap_vs_immediate`: does working an order as a TWAP parent cost less than sending it
  as a market order, through the paper venue's book?

Every function returns plain dicts and lists of floats (JSON-serialisable; NaN where a value is
undefined) with its per-sample series under ``"series"``, for the caller's own stationary
bootstrap (:mod:`alphad.ops.study.bootstrap`).  The intervals given here are 95% percentile
intervals of ``N_BOOT`` stationary-bootstrap resamples seeded with ``SEED``: the same data give
the same numbers.  ``wall_s`` is each call's wall time.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np
from scipy.stats import rankdata

from alphad.ops.study.bootstrap import bootstrap_ci, bootstrap_diff_ci, optimal_block_length

__all__ = ["feature_set_ic", "ofi_r2", "twap_vs_immediate", "binance_events", "quotes_of", "ofi_e",
           "interval_ofi", "oos_ic", "parent_costs"]

BOOK_TICKER = "l2/binance_spot_book_ticker.csv.gz"
TRADES = "l2/binance_spot_trades.csv.gz"
SEED = 22
N_BOOT = 2000
ALPHA = 0.05
#: The paper venue's taker fee in config.yaml (``router.venues``: paper, ``taker_bps: 1.0``).
TAKER_BPS = 1.0
#: Feature/label sampling grid.  A fixed 100 ms grid rather than every quote: BTCUSDT quotes
#: come in bursts (73k in 650 s, many within a millisecond), and sampling per quote would
#: weight those bursts and multiply near-identical samples.
GRID_MS = 100
#: Grid samples start this long after the first quote, so the EMAs (slow = 100 quotes) and the
#: 50-quote imbalance window are warm.
WARMUP_S = 30.0


# -- data -----------------------------------------------------------------------------------

def binance_events(shared_data: Path, symbol: str = "BTCUSDT") -> np.ndarray:
    """The capture's quotes and trades of ``symbol`` as the feed reads them (``feed.format:
    binance``; md records, instrument 0, in receive-time order); ``t_origin`` set to the
    receive time, as the feed stage stamps a record it publishes."""
    from alphad.daemon.feed.readers import load_binance

    quotes, trades = Path(shared_data) / BOOK_TICKER, Path(shared_data) / TRADES
    for p in (quotes, trades):
        if not p.exists():
            raise FileNotFoundError(f"the Binance capture was expected at {p} (shared/data/README.md), was missing")
    events = load_binance(quotes, trades, {symbol: 0}, on_bad="skip").events  # other symbols: skipped
    if len(events) == 0:
        raise ValueError(f"{quotes}: no events of {symbol!r}")
    events["t_origin"] = events["ts_exch"]
    return events


def quotes_of(events: np.ndarray) -> dict[str, np.ndarray]:
    """The quotes the features stage accepts (``update_quote``: 0 < bid < ask, sizes >= 0):
    ``t`` (ns), ``bid``, ``bid_sz``, ``ask``, ``ask_sz``, ``mid``."""
    from alphad.ipc.dtypes import MD_QUOTE

    q = events[(events["kind"] == MD_QUOTE) & (events["bid_px"] > 0) & (events["ask_px"] > events["bid_px"])
               & (events["bid_sz"] >= 0) & (events["ask_sz"] >= 0)]
    return {"t": q["ts_exch"].copy(), "bid": q["bid_px"].copy(), "bid_sz": q["bid_sz"].copy(),
            "ask": q["ask_px"].copy(), "ask_sz": q["ask_sz"].copy(), "mid": 0.5 * (q["bid_px"] + q["ask_px"])}


def _asof(t: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the last ``t`` at or before each ``at`` (-1 before the first)."""
    return np.searchsorted(t, at, side="right") - 1


# -- bootstrap helpers ----------------------------------------------------------------------

def _block(x: np.ndarray, at_least: float = 1.0) -> float:
    """Mean block length: Politis & White's automatic choice for ``x``, but at least
    ``at_least`` (overlapping labels are dependent over their whole window, which the
    automatic rule, capped at 3 sqrt(n), can miss), and at most n / 3."""
    try:
        b = optimal_block_length(x)
    except ValueError:  # too short or constant: no dependence estimate, the iid bootstrap
        b = 1.0
    return float(min(max(1.0, b, at_least), max(1.0, len(x) / 3.0)))


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of ``(k, n)`` arrays; 0 for a row without variation
    (a resample that repeats one value carries no evidence of a relation)."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), 0.0)


def _ci(n: int, stat, block: float, seed: int = SEED) -> list[float]:
    """``[estimate, lo, hi]`` of a statistic of paired series, bootstrapped by resampling the
    sample index ``0 .. n-1`` (``stat`` maps index rows ``(k, n)`` to k values): every series
    of a sample moves with it, so pairs (prediction, label) stay pairs."""
    idx = np.arange(n, dtype=np.float64)
    return list(bootstrap_ci(idx, lambda r: stat(r.astype(np.int64)), block, N_BOOT, ALPHA, seed))


# -- 1. feature sets: out-of-sample IC and net PnL ------------------------------------------

def oos_ic(t_ns: np.ndarray, mid: np.ndarray, features: dict[str, np.ndarray], horizons_s=(1, 5, 30, 60), *,
           train_fraction: float = 0.5, half_spread_bps: np.ndarray | None = None,
           taker_bps: float = TAKER_BPS, grid_ms: float = GRID_MS) -> dict:
    """Out-of-sample IC of a linear model per feature set per horizon, on samples already on a
    regular grid (``t_ns`` rising by ``grid_ms``; ``mid`` and each set's ``(n, k)`` features
    at those times, as known then).  See :func:`feature_set_ic` for the method; the first two
    sets of ``features`` are compared (second minus first)."""
    t_ns, mid = np.asarray(t_ns, np.int64), np.asarray(mid, np.float64)
    half = np.zeros(len(mid)) if half_spread_bps is None else np.asarray(half_spread_bps, np.float64)
    names = list(features)
    t_split = t_ns[0] + train_fraction * (t_ns[-1] - t_ns[0])
    out: dict = {"sets": names, "horizons": {}, "series": {}}
    for h in horizons_s:
        hns = int(round(h * 1e9))
        j = _asof(t_ns, t_ns + hns)  # the sample h later (exactly: the grid is regular)
        ok = t_ns + hns <= t_ns[-1]
        y = np.full(len(mid), np.nan)
        y[ok] = np.log(mid[j[ok]] / mid[ok]) * 1e4
        # purged split: a training label must end before the test part begins
        train = ok & (t_ns + hns < t_split)
        test = ok & (t_ns >= t_split)
        step = max(1, int(round(h * 1000 / grid_ms)))  # grid samples per horizon
        preds = {}
        for name in names:
            x = np.asarray(features[name], np.float64)
            mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
            sd = np.where(sd > 0, sd, 1.0)  # a constant training column: left unscaled (its beta is 0)
            z = np.column_stack([np.ones(len(x)), (x - mu) / sd])
            # minimum-norm least squares: micro's imb_momentum = imbalance_l1 - imb_mean exactly
            beta = np.linalg.lstsq(z[train], y[train], rcond=None)[0]
            preds[name] = z[test] @ beta
        yt, tt, ht = y[test], t_ns[test], half[test]
        # Spearman = Pearson of ranks; the intervals resample the (prediction rank, label rank)
        # pairs of the whole test part (not re-ranked per resample, which costs a sort per
        # resample; the estimate is the exact Spearman IC)
        ry = rankdata(yt)
        ranks = {name: rankdata(preds[name]) for name in names}
        res = {"n_train": int(train.sum()), "n_test": int(test.sum()), "block": {}, "ic": {}, "pnl": {}}
        for name in names:
            rp = ranks[name]
            res["block"][name] = b = _block((rp - rp.mean()) * (ry - ry.mean()), step)
            res["ic"][name] = _ci(len(yt), lambda r, rp=rp: _row_corr(rp[r], ry[r]), b)
            res["pnl"][name], net = _sign_pnl(preds[name][::step], yt[::step], ht[::step], taker_bps)
            out["series"].setdefault(name, {})[str(h)] = {"pred": preds[name].tolist(), "net_bps": net.tolist()}
        if len(names) >= 2:
            ra, rb = ranks[names[1]], ranks[names[0]]
            res["block"]["diff"] = bd = _block((ra - rb) * (ry - ry.mean()), step)
            res["ic_diff"] = _ci(len(yt), lambda r: _row_corr(ra[r], ry[r]) - _row_corr(rb[r], ry[r]), bd)
        out["horizons"][str(h)] = res
        out["series"].setdefault("label", {})[str(h)] = yt.tolist()
        out["series"].setdefault("t_ns", {})[str(h)] = tt.tolist()
    return out


def _sign_pnl(pred: np.ndarray, label: np.ndarray, half_bps: np.ndarray, taker_bps: float):
    """Position ``sign(pred)`` held one horizon, one decision per horizon (non-overlapping),
    from flat and back to flat at the end; each unit of position changed pays the taker fee
    plus the half spread then.  Returns the summary and the per-period net bps."""
    pos = np.sign(pred)
    change = np.abs(np.diff(np.concatenate([[0.0], pos])))
    cost = change * (taker_bps + half_bps)
    if len(pos):  # the last period also pays for closing its position
        cost[-1] += abs(pos[-1]) * (taker_bps + half_bps[-1])
    gross = pos * label
    net = gross - cost
    net_total = float(net.sum())
    trades = int(np.count_nonzero(change) + (1 if len(pos) and pos[-1] != 0 else 0))
    return {"periods": int(len(pos)), "trades": trades, "gross_bps": float(gross.sum()),
            "cost_bps": float(cost.sum()), "net_bps": net_total,
            "net_bps_per_trade": net_total / trades if trades else math.nan,
            "hit_rate": float(np.mean(gross > 0)) if len(gross) else math.nan}, net


def _set_rows(events: np.ndarray, feature_set: str) -> tuple[np.ndarray, np.ndarray]:
    """``(t_ns, X)``: the rows the features stage emits for ``feature_set`` on these events
    (``trigger: quote``; the defaults of ``daemon/features/config.py``, which config.yaml
    keeps: EMAs over 10 and 100 quotes, 50-quote imbalance window, VPIN 20 x 50k USDT)."""
    from alphad.daemon.features.config import Features
    from alphad.kernels.quote_features import FEATURE_SETS, quote_features_batch

    f = Features(set=feature_set)
    rows = quote_features_batch(events, 1, fast=f.ema_fast_events, slow=f.ema_slow_events, quotes_only=True,
                                feature_set=feature_set, **f.state_params())
    return rows["t_origin"].copy(), rows["x"][:, :len(FEATURE_SETS[feature_set])].astype(np.float64)


def feature_set_ic(shared_data: Path, horizons_s=(1, 5, 30, 60), *, train_fraction: float = 0.5,
                   symbol: str = "BTCUSDT", taker_bps: float = TAKER_BPS) -> dict:
    """Out-of-sample IC and net PnL of the ``quote`` and ``micro`` feature sets on the capture.

    Choices:

    * Features: the daemon's own kernels, :func:`alphad.kernels.quote_features.quote_features_batch`
      (the features stage's ``on_md_batch``) over the capture's quotes and trades as the
      ``binance`` feed reads them, ``symbol`` only, a row per quote.
    * Samples: a 100 ms grid (``GRID_MS``) from ``WARMUP_S`` after the first quote; each
      sample takes the last feature row and quote at or before its time.
    * Label: forward mid log return over ``h`` seconds, bps (mid as of ``t + h``); samples
      whose ``t + h`` runs past the last grid point are dropped.
    * Model: per set and horizon, OLS with an intercept on features standardised with the
      training part's mean and std (minimum-norm least squares, since ``imb_momentum`` is
      ``imbalance_l1 - imb_mean``).  Training: samples in the first ``train_fraction`` of the
      grid's time span whose label ends before the test part begins (purged); test: the rest.
    * IC: Spearman rank correlation of prediction and label on the test part, with a
      stationary-bootstrap interval (resampling the test part's (prediction rank, label
      rank) pairs); ``ic_diff`` = IC(micro) - IC(quote) on the same resamples.  Mean block
      length: the automatic choice (Politis & White) for the IC's per-sample terms, at least
      one horizon of samples (labels overlap), at most n / 3.
    * PnL (test part only): position ``sign(prediction)`` (one unit, long or short), decided
      once per horizon (non-overlapping holding periods), earning the mid-to-mid label; every
      unit of position changed (a flip is two) pays ``taker_bps`` (1 bps, the paper venue's
      in config.yaml; Binance's own spot taker fee is 10 bps) plus the half spread at that
      time, and the position is closed at the end.  ``net_bps_per_trade`` = net total /
      position changes.  No sizing, no latency.

    Returns ``{"sets", "horizons": {h: {"n_train", "n_test", "ic": {set: [est, lo, hi]},
    "ic_diff": [est, lo, hi], "block": {...}, "pnl": {set: {...}}}}, "series", "grid_ms",
    "taker_bps", "symbol", "wall_s"}``; ``series`` holds, per horizon, the test samples' times,
    labels, each set's predictions and its per-period net bps.
    """
    t0 = time.perf_counter()
    events = binance_events(shared_data, symbol)
    q = quotes_of(events)
    step = int(GRID_MS * 1e6)
    grid = np.arange(q["t"][0] + int(WARMUP_S * 1e9), q["t"][-1] + 1, step, dtype=np.int64)
    k = _asof(q["t"], grid)
    mid = q["mid"][k]
    half = 0.5 * (q["ask"][k] - q["bid"][k]) / mid * 1e4
    feats = {}
    for name in ("quote", "micro"):
        t_rows, x = _set_rows(events, name)
        feats[name] = x[_asof(t_rows, grid)]  # the grid starts after the first row
    out = oos_ic(grid, mid, feats, horizons_s, train_fraction=train_fraction, half_spread_bps=half,
                 taker_bps=taker_bps)
    out.update(grid_ms=GRID_MS, taker_bps=taker_bps, symbol=symbol, median_half_spread_bps=float(np.median(half)),
               wall_s=round(time.perf_counter() - t0, 2))
    return out


# -- 2. order-flow imbalance ----------------------------------------------------------------

def ofi_e(bid: np.ndarray, bid_sz: np.ndarray, ask: np.ndarray, ask_sz: np.ndarray) -> np.ndarray:
    """Each quote's best-level OFI contribution e_n (Cont, Kukanov & Stoikov 2014, eq. 2) from
    the daemon's kernel :func:`alphad.kernels.microstructure.ofi_update` (the one behind
    ``ofi_flow``); base units, NaN for the first quote."""
    from alphad.kernels import microstructure as ms

    s = ms.ofi_new()
    return np.array([ms.ofi_update(s, b, bs, a, az) for b, bs, a, az in
                     zip(bid.tolist(), bid_sz.tolist(), ask.tolist(), ask_sz.tolist())])


def interval_ofi(t: np.ndarray, e: np.ndarray, mid: np.ndarray, interval_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """``(OFI_k, dP_k)`` over consecutive intervals ``(b_k, b_k + interval]`` from the first
    quote's time, the last interval ending at or before the last quote: OFI_k = the sum of
    e_n of the quotes in the interval, dP_k = the mid as of its end minus the mid as of its
    start."""
    bounds = np.arange(t[0], t[-1] + 1, interval_ns, dtype=np.int64)
    k = _asof(t, bounds)
    cum = np.cumsum(np.nan_to_num(e, nan=0.0))
    return np.diff(cum[k]), np.diff(mid[k])


def ofi_r2(shared_data: Path, intervals_s=(1, 10, 60), *, symbol: str = "BTCUSDT") -> dict:
    """Contemporaneous R² of the mid-price change on best-level order-flow imbalance.

    Choices: e_n from successive book-ticker quotes of ``symbol`` (every best-level change
    Binance sent) with the daemon's own kernel (:func:`ofi_e`); OFI summed over each interval,
    NOT normalised by depth (CKS's regression is on the raw OFI, with a depth-dependent
    slope; over 11 minutes the depth is one regime); dP the change of the mid in USDT (R² is
    the same in ticks).  OLS ``dP = a + b OFI`` with an intercept per interval length, over
    the whole capture (CKS fit half-hour windows).  R² = squared Pearson correlation; its
    interval: stationary bootstrap of the intervals, block length by Politis & White on
    the products of the centred series (a resample without variation counts as R² 0).

    Returns ``{"intervals": {s: {"n", "r2": [est, lo, hi], "beta", "alpha", "block"}},
    "series": {s: {"ofi", "dmid"}}, "symbol", "quotes", "wall_s"}``.
    """
    t0 = time.perf_counter()
    q = quotes_of(binance_events(shared_data, symbol))
    e = ofi_e(q["bid"], q["bid_sz"], q["ask"], q["ask_sz"])
    out: dict = {"symbol": symbol, "quotes": int(len(e)), "intervals": {}, "series": {}}
    for s in intervals_s:
        x, y = interval_ofi(q["t"], e, q["mid"], int(round(s * 1e9)))
        b = _block((x - x.mean()) * (y - y.mean()))
        r2 = _ci(len(x), lambda r: _row_corr(x[r], y[r]) ** 2, b)
        beta, alpha = np.polyfit(x, y, 1)
        out["intervals"][str(s)] = {"n": int(len(x)), "r2": r2, "beta": float(beta), "alpha": float(alpha),
                                    "block": b}
        out["series"][str(s)] = {"ofi": x.tolist(), "dmid": y.tolist()}
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


# -- 3. TWAP against immediate ----------------------------------------------------------------

def parent_costs(orders: np.ndarray, reports: np.ndarray, arrivals: np.ndarray,
                 quotes: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Per order the risk stage approved (a parent, under an algorithm): ``ops/tca.py``'s
    :class:`~alphad.ops.tca.ParentTCA` as a dict plus ``ts`` (decision time), ``instrument``
    and ``side``.  Arrival: the quote the router met (``arrivals``); the unfilled remainder
    is valued at the mid as of the parent's end (its last report), from ``quotes``
    (:func:`quotes_of` per instrument).  Orders without an arrival quote, without a final
    report (still working when the recording ended) or rejected whole are left out, and
    counted by reason (the second value)."""
    from alphad.ipc.dtypes import EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT
    from alphad.ops.tca import analyze_parent

    arr = {a["client_order_id"]: a for a in _records(arrivals)}
    by_cid: dict[int, list] = {}
    for r in _records(reports):
        by_cid.setdefault(r["client_order_id"], []).append(r)
    out, skipped = [], {"no_arrival_quote": 0, "still_working": 0, "rejected": 0}
    for o in _records(orders):
        cid = o["client_order_id"]
        a, reps = arr.get(cid), by_cid.get(cid, [])
        ends = [r for r in reps if r["status"] in (EXEC_FILL, EXEC_CANCELED, EXEC_REJECT)]
        if a is None or not (a["bid"] > 0 and a["ask"] >= a["bid"]):
            skipped["no_arrival_quote"] += 1
            continue
        if not ends:
            skipped["still_working"] += 1
            continue
        fills = [r for r in reps if r["status"] in (EXEC_FILL, EXEC_PARTIAL) and r["fill_qty"] > 0]
        if ends[-1]["status"] == EXEC_REJECT and not fills:
            skipped["rejected"] += 1
            continue
        q, end_ts = quotes[o["instrument"]], ends[-1]["ts"]
        close = float(q["mid"][max(0, int(np.searchsorted(q["t"], end_ts, side="right")) - 1)])
        parent = {"parent_id": cid, "instrument": o["instrument"], "side": o["side"], "qty": o["qty"],
                  "arrival_bid": a["bid"], "arrival_ask": a["ask"]}
        execs = [{"status": "fill" if r["status"] == EXEC_FILL else "partial", "fill_qty": r["fill_qty"],
                  "fill_px": r["fill_px"], "fee": r["fee"], "reason": r["reason"]} for r in fills]
        state = {EXEC_FILL: "completed", EXEC_CANCELED: "canceled", EXEC_REJECT: "rejected"}[ends[-1]["status"]]
        tca = dict(vars(analyze_parent(parent, execs, {"state": state, "close_px": close})))  # flat: no asdict
        tca.update(ts=o["ts"], instrument=o["instrument"], side=o["side"], end_ts=end_ts)
        out.append(tca)
    return out, skipped


def _records(a) -> list[dict]:
    """A record array as dicts of Python numbers (field access on numpy records is ~20x slower)."""
    return [dict(zip(a.dtype.names, t)) for t in a.tolist()] if len(a) else []


def _summary(rows: list[dict]) -> dict:
    if not rows:
        return {"parents": 0}
    g = {k: np.array([r[k] for r in rows], np.float64) for k in ("is_bps", "exec_bps", "spread_bps", "impact_bps",
                                                                  "fees_bps", "fill_rate", "qty", "arrival_mid")}
    w = g["qty"] * g["arrival_mid"]
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    return {"parents": len(rows), "states": states,
            "mean_is_bps": float(g["is_bps"].mean()),
            "notional_weighted_is_bps": float((w * g["is_bps"]).sum() / w.sum()),
            **{f"mean_{k}": float(np.nanmean(g[k])) for k in ("exec_bps", "spread_bps", "impact_bps", "fees_bps")},
            "mean_fill_rate": float(g["fill_rate"].mean()),
            "median_notional": float(np.median(w)),
            "mean_duration_s": float(np.mean([(r["end_ts"] - r["ts"]) / 1e9 for r in rows]))}


def _binance_config(base_config: Path, shared_data: Path, execution: str, algo: dict, trade_until: str) -> dict:
    """config.yaml on the capture as tests/unit/test_backtest_report.py builds it: compiled
    model, no live impact calibration, 2 ms entry and response latency at every venue."""
    base_config = Path(base_config)
    raw = msgspec.yaml.decode(base_config.read_bytes())
    card = Path(raw["model"]["card"])
    raw["model"].update(card=str(card if card.is_absolute() else base_config.parent / card), runtime="compiled")
    raw["feed"] = {**raw["feed"], "format": "binance", "loop": False, "path": str(Path(shared_data) / BOOK_TICKER),
                   "trades_path": str(Path(shared_data) / TRADES), "trade_until": trade_until}
    raw["router"] = {**raw["router"], "impact": {"enabled": False}, "execution": execution,
                     "algo": {**raw["router"].get("algo", {}), **algo},
                     "venues": [{**v, "entry": {"median_ns": 2_000_000}, "response": {"median_ns": 2_000_000}}
                                for v in raw["router"]["venues"]]}
    return raw


def twap_vs_immediate(shared_data: Path, base_config: Path, *, horizon_s: float = 30.0, slices: int = 6,
                      trade_until: str = "") -> dict:
    """Implementation shortfall of TWAP parents against immediate market orders on the capture.

    The backtest (``daemon/shell/backtest.py``, the daemon's own cores on event time) runs
    twice on ``base_config`` (the demo model, config.yaml) moved onto the Binance capture as
    tests/unit/test_backtest_report.py does: once with ``router.execution: immediate``, once
    with ``twap`` (``router.algo`` of the config with ``horizon_s`` and ``slices`` set; the
    config's urgency 0.3 and 100 ms steps).  ``trade_until``: end the recording early (ISO
    time, ``feed.trade_until``), for a short run.

    The two runs do not make the same orders: risk sizes each order as target - position -
    working quantity, and a TWAP parent's quantity stays working for up to ``horizon_s``, so
    positions and then decisions diverge (client order ids are a counter, not comparable
    either).  The comparison is therefore on the DECISIONS both runs share: orders made on the
    same md event (decision time ``ts``), instrument and side; their quantities may differ,
    costs are in bps of each order's own notional.  Per order, ``ops/tca.py``'s implementation
    shortfall ``is_bps`` against the arrival mid (the quote the router met; fills, fees, and
    the unfilled remainder valued at the mid as of the order's end; see
    :func:`parent_costs`).  ``diff_is_bps``: mean(TWAP) - mean(immediate) over the matched
    decisions in time order, with a stationary-bootstrap interval (:func:`bootstrap_diff_ci`,
    the same indices for both; block length by Politis & White on the differences).

    Returns ``{"matched", "diff_is_bps": [est, lo, hi], "block", "matched_summary":
    {"immediate", "twap"}, "all_summary": {"immediate", "twap"}, "runs": {execution:
    {"orders", "fills", "denials", "replay_s", "left_out"}}, "series": {"ts", "immediate_is_bps",
    "twap_is_bps"}, "wall_s"}`` (positive bps = cost)."""
    from alphad.daemon.config import load_config
    from alphad.daemon.feed.sources import read_events
    from alphad.daemon.shell.backtest import backtest

    t0 = time.perf_counter()
    rows, runs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for execution in ("immediate", "twap"):
            path = Path(tmp) / f"{execution}.yaml"
            path.write_bytes(msgspec.yaml.encode(_binance_config(
                base_config, shared_data, execution, {"horizon_s": horizon_s, "slices": slices}, trade_until)))
            cfg, base = load_config(path)
            if execution == "immediate":  # the quotes that value the unfilled remainders
                ev = read_events(cfg.feed, base, cfg.universe).events
                quotes = [quotes_of(ev[ev["instrument"] == i]) for i in range(len(cfg.universe))]
            reports, arrivals = [], []
            orders, summary = backtest(cfg, base, reports=reports, arrivals=arrivals)
            cat = (lambda xs: np.concatenate(xs) if xs else [])
            rows[execution], skipped = parent_costs(orders, cat(reports), cat(arrivals), quotes)
            runs[execution] = {**{k: summary[k] for k in ("orders", "fills", "denials", "replay_s")},
                               "left_out": skipped}
    imm = {(r["ts"], r["instrument"], r["side"]): r for r in rows["immediate"]}
    pairs = [(imm[k], r) for r in rows["twap"] if (k := (r["ts"], r["instrument"], r["side"])) in imm]
    pairs.sort(key=lambda p: p[0]["ts"])
    a = np.array([p[1]["is_bps"] for p in pairs])
    b = np.array([p[0]["is_bps"] for p in pairs])
    out = {"matched": len(pairs), "horizon_s": horizon_s, "slices": slices, "runs": runs,
           "matched_summary": {"immediate": _summary([p[0] for p in pairs]), "twap": _summary([p[1] for p in pairs])},
           "all_summary": {k: _summary(v) for k, v in rows.items()},
           "series": {"ts": [p[0]["ts"] for p in pairs], "immediate_is_bps": b.tolist(), "twap_is_bps": a.tolist()}}
    if len(pairs) >= 2:
        out["block"] = blk = _block(a - b)
        out["diff_is_bps"] = list(bootstrap_diff_ci(a, b, lambda x: x.mean(axis=-1), blk, N_BOOT, ALPHA, SEED))
    else:
        out["block"], out["diff_is_bps"] = math.nan, [math.nan] * 3
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out
