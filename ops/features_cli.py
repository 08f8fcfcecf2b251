"""``alphad features INPUT -o OUTPUT [--set NAME]``: compute a feature set over a bar file.

Input: CSV (optionally ``.gz``) or parquet with ``timestamp,open,high,low,close,volume``
and an optional ``symbol`` column (features are computed per symbol, rows kept in file
order within a symbol).  The repository's daily file layout is accepted too: ``date``
for ``timestamp``, and when ``adjusted_close`` is present OHLC are adjusted by
``adjusted_close / close`` so splits and dividends do not show up as returns.

Output: CSV (or parquet when OUTPUT ends in ``.parquet``) with ``timestamp``, ``symbol``
(if given) and one column per feature, named as in ``docs/features.md``.  Warm-up rows
are NaN (written as empty fields), as TA-Lib does.  VWAP sessions are calendar days of
the timestamp.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")
#: Print progress to stderr for inputs with more rows than this.
PROGRESS_ROWS = 200_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from alphad.kernels.feature_sets import FEATURE_SETS

    parser.add_argument("input", help="CSV/CSV.gz/parquet with timestamp,open,high,low,close,volume[,symbol]")
    parser.add_argument("-o", "--output", required=True, help="output CSV, or .parquet")
    parser.add_argument("--set", dest="feature_set", default="full", choices=sorted(FEATURE_SETS),
                        help="feature set to compute (default: full)")


def _read(path: str):
    import pandas as pd

    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _normalise(df, path: str):
    if "timestamp" not in df.columns:
        for alt in ("date", "datetime"):
            if alt in df.columns:
                df = df.rename(columns={alt: "timestamp"})
                break
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: expected columns {', '.join(REQUIRED)}[, symbol]; missing "
                         f"{', '.join(missing)} (columns were: {', '.join(map(str, df.columns))})")
    if "adjusted_close" in df.columns:
        f = df["adjusted_close"] / df["close"]
        df = df.assign(open=df["open"] * f, high=df["high"] * f, low=df["low"] * f,
                       close=df["adjusted_close"])
    return df


def run(args) -> int:
    import pandas as pd

    from alphad.kernels.feature_sets import get_feature_set

    fs = get_feature_set(args.feature_set)
    df = _normalise(_read(args.input), args.input)
    n = len(df)
    verbose = n > PROGRESS_ROWS
    groups = df.groupby("symbol", sort=False) if "symbol" in df.columns else [(None, df)]
    ts = pd.to_datetime(df["timestamp"])
    session = (ts.dt.year * 10000 + ts.dt.month * 100 + ts.dt.day).to_numpy(np.float64)
    out = np.full((n, len(fs.names)), np.nan)
    pos = np.arange(n)
    done = 0
    t0 = time.monotonic()
    for sym, g in groups:
        idx = pos[df.index.get_indexer(g.index)]
        cols = [g[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")]
        try:
            _, x = fs.compute(*cols, session=session[idx])
        except ValueError as e:
            where = f" (symbol {sym})" if sym is not None else ""
            raise ValueError(f"{args.input}{where}: {e}") from None
        out[idx] = x
        done += len(idx)
        if verbose:
            print(f"features: {done}/{n} rows ({done / (time.monotonic() - t0):,.0f} rows/s)",
                  file=sys.stderr)
    keep = ["timestamp"] + (["symbol"] if "symbol" in df.columns else [])
    res = pd.concat([df[keep].reset_index(drop=True), pd.DataFrame(out, columns=list(fs.names))], axis=1)
    if args.output.endswith(".parquet"):
        res.to_parquet(args.output, index=False)
    else:
        res.to_csv(args.output, index=False, float_format="%.10g")
    print(f"features: wrote {n} rows x {len(fs.names)} features ({fs.name}) to {args.output}",
          file=sys.stderr)
    return 0
