"""Offline fitting of the regime models (``arch`` GARCH(1,1), ``hmmlearn`` GaussianHMM) to JSON.

The daemon never imports ``arch`` or ``hmmlearn``: it reads the JSON these helpers write
and runs :mod:`alphad.kernels.regime`.

Every fit can be cut at a date (``--end``, ``end=``): only rows dated on or before it are
read, so parameters for a model trained to that date carry no look-ahead.

Usage::

    python -m alphad.ops.fit_regimes garch daily.csv --symbol SPY [--end 2016-12-31] -o garch.json
    python -m alphad.ops.fit_regimes hmm daily.csv --symbol SPY [--end 2016-12-31] -o hmm.json
    python -m alphad.ops.fit_regimes daily EQUITIES INDEX --end 2016-12-31 [--index-symbol SPY] -o regimes.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

#: Returns are multiplied by this before fitting (percent): arch's optimiser is tuned for
#: returns of order 1, and its DataScaleWarning fires for raw fractional returns.
RETURN_SCALE = 100.0
STATE_NAMES = ("bull", "bear", "sideways")
#: Fewest returns up to the fit end for a GARCH fit in :func:`fit_daily_regimes` (about a
#: trading year); a symbol with fewer is listed under ``skipped``.
MIN_RETURNS = 250


def fit_garch(returns, *, scale: float = RETURN_SCALE) -> dict:
    """Fit a constant-mean GARCH(1,1) with normal errors to fractional ``returns``.

    Returns a JSON-ready dict: ``mu, omega, alpha, beta`` (in scaled units), ``scale``,
    ``backcast`` (arch's start-up variance, so the daemon's recursion starts identically),
    ``loglik`` and ``nobs``.
    """
    from arch import arch_model  # offline only

    y = np.asarray(returns, dtype=np.float64) * scale
    if y.ndim != 1 or y.shape[0] < 100 or not np.isfinite(y).all():
        raise ValueError(f"fit_garch: expected >= 100 finite returns, was shape {y.shape}")
    model = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    res = model.fit(disp="off")
    p = res.params
    from alphad.kernels.regime import garch_backcast
    return {
        "model": "garch11",
        "mu": float(p["mu"]), "omega": float(p["omega"]),
        "alpha": float(p["alpha[1]"]), "beta": float(p["beta[1]"]),
        # arch seeds from the residuals of its *starting* mean (the sample mean), not the fit
        "scale": scale, "backcast": garch_backcast(y - y.mean()),
        "loglik": float(res.loglikelihood), "nobs": int(y.shape[0]),
    }


def fit_hmm(X, *, n_states: int = 3, seed: int = 0, n_iter: int = 200) -> dict:
    """Fit a diagonal-covariance GaussianHMM; states ordered bull, bear, sideways.

    ``X`` is ``(T, D)`` with the (scaled) return in column 0.  States are relabelled by
    their mean return: highest = bull, lowest = bear, the rest sideways.
    """
    from hmmlearn.hmm import GaussianHMM  # offline only

    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if n_states != 3:
        raise ValueError(f"fit_hmm: expected 3 states (bull/bear/sideways), was {n_states}")
    model = GaussianHMM(n_components=n_states, covariance_type="diag", n_iter=n_iter,
                        random_state=seed, tol=1e-6)
    model.fit(X)
    mean_ret = model.means_[:, 0]
    order = [int(np.argmax(mean_ret)), int(np.argmin(mean_ret))]
    order.append(next(i for i in range(n_states) if i not in order))
    var = np.asarray(model._covars_)[order]  # diag: (K, D)
    return {
        "model": "gaussian_hmm_diag",
        "states": list(STATE_NAMES),
        "startprob": model.startprob_[order].tolist(),
        "transmat": model.transmat_[np.ix_(order, order)].tolist(),
        "means": model.means_[order].tolist(),
        "variances": var.tolist(),
        "loglik": float(model.score(X)),
        "nobs": int(X.shape[0]),
    }


def write_params(path, params: dict) -> None:
    """Write parameters as JSON (sorted keys, so diffs between refits are readable)."""
    Path(path).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def read_params(path) -> dict:
    """Read a parameter JSON written by :func:`write_params`."""
    return json.loads(Path(path).read_text())


def parse_end(value) -> datetime.date:
    """``end`` as a date: a ``datetime.date`` or ISO text ``YYYY-MM-DD``; ValueError names it."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"end expected a date such as 2016-12-31, found {value!r}") from None


def _read_csv(path, **kw):
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"price file expected at {path} was not found")
    return pd.read_csv(path, **kw)


def _need(path, df, cols) -> None:
    missing = sorted(set(cols) - set(df.columns))
    if missing:
        raise ValueError(f"{path}: expected columns {sorted(cols)}; missing {missing}")


def _dates(path, s):
    """Column ``s`` as timezone-naive day timestamps; ValueError names the file."""
    import pandas as pd

    try:
        d = pd.to_datetime(s)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: dates could not be read: {e}") from None
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_localize(None)
    return d.dt.normalize()


def daily_returns(equities_path, end, symbols=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Close-to-close returns per symbol of the long-format equities file, rows dated <= ``end``.

    The close is the daemon feed's bar close (:func:`alphad.daemon.feed.sources.load_daily`):
    :func:`alphad.kernels.bars.adjust` of the raw OHLC, i.e. ``adjusted_close``.  Returns
    ``{symbol: (dates of the returns (datetime64[D]), close_t / close_{t-1} - 1)}`` for every
    symbol asked for (all in the file when ``symbols`` is None), empty arrays where no row
    falls on or before ``end``.
    """
    from alphad.kernels import bars as daily_bars

    end_ts = np.datetime64(parse_end(end), "D")
    cols = ["symbol", "date", "open", "high", "low", "close", "adjusted_close"]
    df = _read_csv(equities_path, usecols=lambda c: c in cols, dtype={"symbol": str})
    _need(equities_path, df, cols)
    names = sorted(df["symbol"].unique()) if symbols is None else list(dict.fromkeys(symbols))
    if symbols is not None:
        unknown = sorted(set(names) - set(df["symbol"].unique()))
        if unknown:
            raise ValueError(f"{equities_path}: symbols {unknown} were requested but are not in the file")
        df = df[df["symbol"].isin(names)]
    day = _dates(equities_path, df["date"]).to_numpy().astype("datetime64[D]")
    keep = day <= end_ts
    df, day = df[keep], day[keep]
    _, _, _, close = daily_bars.adjust(*(df[k].to_numpy(np.float64) for k in cols[2:]))
    sym = df["symbol"].to_numpy()
    order = np.lexsort((day, sym))
    sym, day, close = sym[order], day[order], close[order]
    out = {}
    for s in names:
        lo, hi = np.searchsorted(sym, s, "left"), np.searchsorted(sym, s, "right")
        d, c = day[lo:hi], close[lo:hi]
        if d.size > 1 and not (d[1:] > d[:-1]).all():
            raise ValueError(f"{equities_path}: {s} has more than one row for a date")
        r = c[1:] / c[:-1] - 1.0
        if not np.isfinite(r).all():
            bad = d[1:][~np.isfinite(r)][0]
            raise ValueError(f"{equities_path}: {s} has a non-finite return on {bad} (close <= 0 or missing)")
        out[s] = (d[1:], r)
    return out


def index_returns(index_path, end, symbol: str = "SPY") -> tuple[np.ndarray, np.ndarray]:
    """``(dates, returns)`` of ``adj_close`` of ``symbol`` in a long-format ETF file
    (columns ``symbol, date, ..., adj_close``), rows dated <= ``end``."""
    end_ts = np.datetime64(parse_end(end), "D")
    df = _read_csv(index_path, usecols=lambda c: c in ("symbol", "date", "adj_close"), dtype={"symbol": str})
    _need(index_path, df, ("symbol", "date", "adj_close"))
    have = sorted(df["symbol"].unique())
    df = df[df["symbol"] == symbol]
    if df.empty:
        raise ValueError(f"{index_path}: no rows for index symbol {symbol!r}; the file has {have}")
    day = _dates(index_path, df["date"]).to_numpy().astype("datetime64[D]")
    c = df["adj_close"].to_numpy(np.float64)
    order = np.argsort(day, kind="stable")
    day, c = day[order], c[order]
    keep = day <= end_ts
    day, c = day[keep], c[keep]
    if day.size > 1 and not (day[1:] > day[:-1]).all():
        raise ValueError(f"{index_path}: {symbol} has more than one row for a date")
    r = c[1:] / c[:-1] - 1.0
    if not np.isfinite(r).all():
        raise ValueError(f"{index_path}: {symbol} has a non-finite return (adj_close <= 0 or missing)")
    return day[1:], r


def fit_daily_regimes(equities_path, index_path, *, index_symbol: str = "SPY", end="2016-12-31",
                      symbols=None, min_returns: int = MIN_RETURNS) -> dict:
    """:func:`_fit_daily_regimes` on one BLAS thread: the optimisers' sums (arch's SLSQP,
    hmmlearn's EM) run through BLAS, whose thread count changes their order and so the fitted
    numbers (AMZN's GARCH moved in the 2nd digit between 1 and 2 threads, and which symbol's
    fit was refused changed), so the same data gave different regimes in a Ray worker
    (OMP_NUM_THREADS=1) than in a shell."""
    import arch.univariate  # noqa: F401  loaded first: threadpoolctl limits only the BLAS libraries
    import hmmlearn.hmm  # noqa: F401      already loaded (numpy's, scipy's own OpenBLAS, sklearn's)
    import scipy.optimize  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _fit_daily_regimes(equities_path, index_path, index_symbol=index_symbol, end=end, symbols=symbols,
                                  min_returns=min_returns)


def _fit_daily_regimes(equities_path, index_path, *, index_symbol: str, end, symbols, min_returns: int) -> dict:
    """GARCH(1,1) per equity and for the index, and the 3-state HMM on the index, fitted
    only on rows dated on or before ``end`` (no look-ahead past a model's training end).

    ``equities_path``: the long-format daily equities file (the daemon feed's ``daily``
    format; closes as the feed adjusts them, :func:`daily_returns`).  ``index_path``: a
    long-format ETF file with ``adj_close`` (:func:`index_returns`).  ``symbols``: the
    equities to fit (all in the file when None).  A symbol with fewer than ``min_returns``
    returns up to ``end`` gets no GARCH entry and is listed under ``skipped``, as does one
    whose fit :func:`alphad.kernels.regime.garch_new` refuses (``alpha + beta`` reaching 1:
    ``arch`` allows it, the daemon does not); the index must have ``min_returns`` (the HMM
    needs them).

    Returns a JSON-ready dict: ``fit_end`` (ISO), ``return_scale``, ``index_symbol``,
    ``hmm`` (:func:`fit_hmm` of the index's returns x ``return_scale``), ``garch``
    (``{symbol: fit_garch(...)}``, the index included), ``nobs`` (returns per symbol, up to
    ``end``), ``last_date`` (date of each symbol's last return used) and ``skipped``.
    Deterministic: the same files and arguments give the same numbers, whatever the
    process's BLAS threads (:func:`fit_daily_regimes` fixes them at one).
    """
    from alphad.kernels.regime import garch_new

    end_d = parse_end(end)
    eq = daily_returns(equities_path, end_d, symbols)
    if index_symbol in eq:
        raise ValueError(f"index symbol {index_symbol!r} is also an equity in {equities_path}; "
                         "expected it in the index file only")
    idx_dates, idx = index_returns(index_path, end_d, index_symbol)
    if idx.size < min_returns:
        raise ValueError(f"{index_path}: {index_symbol} has {idx.size} returns up to {end_d}, "
                         f"expected >= {min_returns} to fit the HMM and GARCH")
    garch, nobs, last, skipped = {}, {}, {}, []
    for s, (d, r) in list(eq.items()) + [(index_symbol, (idx_dates, idx))]:
        nobs[s] = int(r.size)
        if r.size:
            last[s] = str(d[-1])
        if r.size < min_returns:
            skipped.append({"symbol": s, "nobs": int(r.size),
                            "reason": f"{r.size} returns up to {end_d}, fewer than {min_returns}"})
            continue
        g = fit_garch(r)
        try:  # the daemon's kernel refuses a non-stationary fit (arch allows alpha + beta == 1)
            garch_new(g["omega"], g["alpha"], g["beta"], g["mu"], g["backcast"])
        except ValueError as e:
            skipped.append({"symbol": s, "nobs": int(r.size), "reason": f"fit rejected by garch_new: {e}"})
            continue
        garch[s] = g
    return {
        "fit_end": end_d.isoformat(),
        "return_scale": RETURN_SCALE,
        "index_symbol": index_symbol,
        "min_returns": int(min_returns),
        "hmm": fit_hmm(idx * RETURN_SCALE),
        "garch": garch,
        "nobs": nobs,
        "last_date": last,
        "skipped": skipped,
    }


def _returns_from_csv(path: str, symbol: str | None, end=None) -> np.ndarray:
    df = _read_csv(path)
    if symbol is not None:
        if "symbol" not in df.columns:
            raise ValueError(f"{path}: --symbol given but the file has no 'symbol' column")
        df = df[df["symbol"] == symbol]
        if df.empty:
            raise ValueError(f"{path}: no rows for symbol {symbol!r}")
    if end is not None:
        end_d = parse_end(end)
        col = next((c for c in ("date", "DATE") if c in df.columns), None)
        if col is None:
            raise ValueError(f"{path}: --end given but the file has no 'date' (or 'DATE') column")
        df = df[(_dates(path, df[col]) <= np.datetime64(end_d, "D")).to_numpy()]
        if df.empty:
            raise ValueError(f"{path}: no rows dated on or before {end_d}")
    col = next((c for c in ("adjusted_close", "adj_close", "close", "CLOSE") if c in df.columns), None)
    if col is None:
        raise ValueError(f"{path}: expected a close column (adjusted_close, adj_close or close)")
    c = df[col].to_numpy(dtype=np.float64)
    return c[1:] / c[:-1] - 1.0


def _end_arg(text: str) -> datetime.date:
    try:
        return parse_end(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m alphad.ops.fit_regimes", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="model", required=True)
    for name in ("garch", "hmm"):
        q = sub.add_parser(name, help=f"fit the {name.upper()} on one price series")
        q.add_argument("input", help="CSV with close (or adjusted_close / adj_close), optionally symbol and date")
        q.add_argument("--symbol")
        q.add_argument("--end", type=_end_arg, help="use rows dated on or before this ISO date only")
        q.add_argument("-o", "--output", required=True)
    q = sub.add_parser("daily", help="GARCH per equity and for the index, HMM on the index, up to --end")
    q.add_argument("equities", help="long-format daily equities file (symbol, date, OHLC, adjusted_close)")
    q.add_argument("index", help="long-format ETF file (symbol, date, adj_close)")
    q.add_argument("--end", type=_end_arg, required=True, help="fit end: rows dated on or before it only")
    q.add_argument("--index-symbol", default="SPY")
    q.add_argument("--symbols", help="comma-separated equities (default: all in the file)")
    q.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    try:
        if a.model == "daily":
            syms = [s for s in a.symbols.split(",") if s] if a.symbols else None
            params = fit_daily_regimes(a.equities, a.index, index_symbol=a.index_symbol, end=a.end, symbols=syms)
            print(f"fitted GARCH on {len(params['garch'])} symbols and the HMM on {a.index_symbol} up to "
                  f"{params['fit_end']}; skipped {len(params['skipped'])}", file=sys.stderr)
        else:
            r = _returns_from_csv(a.input, a.symbol, a.end)
            params = fit_garch(r) if a.model == "garch" else fit_hmm(r * RETURN_SCALE)
    except (ValueError, FileNotFoundError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 1
    write_params(a.output, params)
    print(f"wrote {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
