"""Research datasets from real bars: features, labels, event windows, weights.

Rows are (symbol, date) events.  Every row keeps the window its label looks at,
``[t_start, t_end]`` (datetime64[ns]), so the splitters in
:mod:`alphad.ops.cv` purge by time, not by row number, and a panel (many
symbols per date) purges correctly.

Layout of a :class:`Dataset`: rows sorted by ``(t_start, symbol)``; ``X`` is
float32 (the dtype the features stage publishes and ONNX consumes), labels are
float64.

Bars are long format: ``symbol, date, open, high, low, close, volume`` with
prices already adjusted for splits and dividends (:func:`load_daily` does that
for the daily equities file).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from alphad.kernels.feature_sets import compute, get_feature_set
from alphad.kernels import bars as daily_bars

__all__ = [
    "Dataset",
    "load_daily",
    "feature_matrix",
    "forward_returns",
    "triple_barrier",
    "uniqueness_weights",
    "build_dataset",
    "FEATURE_NAMES",
    "TB_UPPER",
    "TB_LOWER",
    "TB_TIME",
]

#: Triple-barrier outcome: the profit-take barrier was touched first.
TB_UPPER = 1
#: Triple-barrier outcome: the stop-loss barrier was touched first.
TB_LOWER = -1
#: Triple-barrier outcome: neither barrier within the horizon (time limit).
TB_TIME = 0

#: The feature set research datasets use unless told otherwise (docs/features.md).
DEFAULT_FEATURE_SET = "daily"
#: Ordered feature names of :data:`DEFAULT_FEATURE_SET`.
FEATURE_NAMES: tuple[str, ...] = get_feature_set(DEFAULT_FEATURE_SET).names

_BAR_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Dataset:
    """A supervised dataset with event windows.

    Attributes
    ----------
    feature_names : list of str
        Column ``i`` of ``X`` is ``feature_names[i]``.
    X : ndarray, float32, shape (n, f)
    y : ndarray, float64, shape (n,)
        The label (forward log return, or triple-barrier outcome -1/0/+1).
    t_start, t_end : ndarray, datetime64[ns], shape (n,)
        First and last bar time the label depends on (inclusive).
    symbol : ndarray of str, shape (n,)
    fwd_ret_1 : ndarray, float64, shape (n,)
        Log return from this bar's close to the next bar's close (for P&L curves).
    weight : ndarray, float64, shape (n,)
        Average uniqueness of each label (1.0 when not requested).
    label_name : str
    """

    feature_names: list[str]
    X: np.ndarray
    y: np.ndarray
    t_start: np.ndarray
    t_end: np.ndarray
    symbol: np.ndarray
    fwd_ret_1: np.ndarray
    weight: np.ndarray
    label_name: str

    def __len__(self) -> int:
        return len(self.y)

    def sha256(self) -> str:
        """Hash of what a model is trained on: names, X, y and windows."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.feature_names).encode())
        for a in (self.X, self.y, self.t_start.view(np.int64), self.t_end.view(np.int64)):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def load_daily(
    path: str | Path,
    *,
    symbols: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> pd.DataFrame:
    """Read the long-format daily equities file and adjust OHLC.

    Parameters
    ----------
    path : str or Path
        ``us_equities_daily_1999-2021.csv.gz`` (columns symbol, date, open, high,
        low, close, adjusted_close, volume, ...).
    symbols : list of str, optional
        Keep only these symbols (all when None or empty).
    start, end : str, optional
        Inclusive ISO dates.

    Returns
    -------
    DataFrame
        Columns ``symbol, date, open, high, low, close, volume``; prices in USD
        adjusted for splits and dividends (raw OHLC times
        ``adjusted_close / close``), sorted by (symbol, date).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"daily bar file expected at {path} was not found")
    df = pd.read_csv(path, parse_dates=["date"])
    need = {"symbol", "date", "open", "high", "low", "close", "adjusted_close", "volume"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{path}: expected columns {sorted(need)}; missing {sorted(missing)}")
    if symbols:
        unknown = sorted(set(symbols) - set(df["symbol"].unique()))
        if unknown:
            raise ValueError(f"{path}: symbols {unknown} were requested but are not in the file")
        df = df[df["symbol"].isin(symbols)]
    if start:
        df = df[df["date"] >= pd.Timestamp(start)]
    if end:
        df = df[df["date"] <= pd.Timestamp(end)]
    if df.empty:
        raise ValueError(f"{path}: no rows left after selecting symbols={symbols} start={start} end={end}")
    o, h, l, c = daily_bars.adjust(*(df[k].to_numpy(np.float64) for k in ("open", "high", "low", "close",
                                                                     "adjusted_close")))
    out = pd.DataFrame(
        {
            "symbol": df["symbol"].to_numpy(),
            "date": df["date"].to_numpy().astype("datetime64[ns]"),
            "open": o,
            "high": h,
            "low": l,
            "close": c,
            "volume": df["volume"].to_numpy(dtype=np.float64),
        }
    )
    return out.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def _check_bars(bars: pd.DataFrame) -> None:
    missing = [c for c in _BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars: expected columns {list(_BAR_COLUMNS)}; missing {missing}")
    sym = bars["symbol"].to_numpy()
    date = bars["date"].to_numpy()
    same = sym[1:] == sym[:-1]
    if np.any(same & (date[1:] <= date[:-1])):
        raise ValueError("bars: expected rows sorted by (symbol, date) with strictly rising dates per symbol")
    # Contiguity: a symbol must not reappear after another one started.
    starts = sym[np.r_[True, ~same]]
    if len(set(starts)) != len(starts):
        raise ValueError("bars: expected each symbol's rows to be contiguous (sort by symbol, date)")


def feature_matrix(bars: pd.DataFrame, feature_set: str = DEFAULT_FEATURE_SET) -> tuple[list[str], np.ndarray]:
    """Per-instrument features for each bar, from the daemon's own kernels.

    Each symbol's bars run through :func:`alphad.kernels.feature_sets.compute`, the
    batch form of the very ``update_row`` call a features stage makes per bar, so a
    model trained here sees exactly the columns a live stage would publish.  Every
    feature at row t uses bars up to and including t only (no look-ahead).

    Parameters
    ----------
    bars : DataFrame
        Long format sorted by (symbol, date): ``symbol, date, open, high, low,
        close, volume`` (adjusted prices).
    feature_set : str
        A name from :data:`alphad.kernels.feature_sets.FEATURE_SETS`.

    Returns
    -------
    names : list of str
        The set's ordered column names.
    X : ndarray, float32, shape (len(bars), len(names))
        NaN during each symbol's warm-up (TA-Lib's convention, per column).
    """
    _check_bars(bars)
    fs = get_feature_set(feature_set)
    o, h, l, c, v = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume"))
    h, l = _clean_range(o, h, l, c)
    X = np.empty((len(bars), len(fs.names)), dtype=np.float32)
    bounds = _symbol_bounds(bars)
    for a, b in zip(bounds[:-1], bounds[1:]):
        X[a:b] = compute(fs, o[a:b], h[a:b], l[a:b], c[a:b], v[a:b])
    return list(fs.names), X


def _clean_range(o, h, l, c):
    """High and low held near the bar's body (:func:`alphad.kernels.bars.clean_range`)."""
    return daily_bars.clean_range(o, h, l, c)


def _symbol_bounds(bars: pd.DataFrame) -> np.ndarray:
    """Row offsets where each symbol's block starts, plus len(bars) at the end."""
    sym = bars["symbol"].to_numpy()
    starts = np.flatnonzero(np.r_[True, sym[1:] != sym[:-1]])
    return np.r_[starts, len(sym)].astype(np.int64)


def forward_returns(bars: pd.DataFrame, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward log return over ``h`` bars, from this bar's close.

    Returns
    -------
    y : ndarray, float64
        ``log(close[t+h] / close[t])`` per symbol; NaN for the last ``h`` bars.
    end_row : ndarray, int64
        Row index of bar ``t+h`` (the label's last bar); -1 where y is NaN.
    """
    if h < 1:
        raise ValueError(f"forward return horizon must be >= 1 bar; was {h}")
    _check_bars(bars)
    logc = np.log(bars["close"].to_numpy(np.float64))
    bounds = _symbol_bounds(bars)
    y = np.full(len(logc), np.nan)
    end_row = np.full(len(logc), -1, np.int64)
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a > h:
            y[a : b - h] = logc[a + h : b] - logc[a : b - h]
            end_row[a : b - h] = np.arange(a + h, b)
    return y, end_row


@njit(cache=True)
def _triple_barrier_kernel(logc, sigma, bounds, h, pt, sl, out_label, out_ret, out_end):
    """Walk each event forward until a barrier or the time limit.

    Barriers are ``+pt*sigma*sqrt(h)`` and ``-sl*sigma*sqrt(h)`` in log-return
    units; a zero multiplier disables that barrier.  Events with NaN sigma or
    fewer than ``h`` bars ahead are left as written by the caller (NaN / -1).
    """
    root_h = np.sqrt(h)
    for s in range(len(bounds) - 1):
        a = bounds[s]
        b = bounds[s + 1]
        for t in range(a, b - h):
            sg = sigma[t]
            if not (sg > 0.0):
                continue
            upper = pt * sg * root_h
            lower = -sl * sg * root_h
            label = 0
            end = t + h
            for j in range(t + 1, t + h + 1):
                r = logc[j] - logc[t]
                if pt > 0.0 and r >= upper:
                    label = 1
                    end = j
                    break
                if sl > 0.0 and r <= lower:
                    label = -1
                    end = j
                    break
            out_label[t] = label
            out_ret[t] = logc[end] - logc[t]
            out_end[t] = end


def triple_barrier(
    bars: pd.DataFrame, h: int, *, pt: float = 2.0, sl: float = 2.0, vol_window: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triple-barrier outcomes (profit-take, stop-loss, time limit) on closes.

    The barrier width scales with the instrument's recent volatility: ``pt``
    (``sl``) times the std of 1-bar log returns over ``vol_window`` bars
    (known at t) times ``sqrt(h)``.

    Returns
    -------
    label : ndarray, float64
        :data:`TB_UPPER`, :data:`TB_LOWER` or :data:`TB_TIME`; NaN where no event.
    ret : ndarray, float64
        Log return from t to the touch (or time limit).
    end_row : ndarray, int64
        Row of the touch or of the time limit; -1 where no event.
    """
    if h < 1:
        raise ValueError(f"triple-barrier horizon must be >= 1 bar; was {h}")
    if pt < 0 or sl < 0 or (pt == 0 and sl == 0):
        raise ValueError(f"barrier multipliers must be >= 0 and not both 0; were pt={pt}, sl={sl}")
    _check_bars(bars)
    logc = np.log(bars["close"].to_numpy(np.float64))
    r1 = np.diff(logc, prepend=np.nan)
    bounds = _symbol_bounds(bars)
    r1[bounds[:-1]] = np.nan
    sigma = (
        pd.Series(r1).groupby(bars["symbol"].to_numpy(), sort=False).transform(lambda s: s.rolling(vol_window).std())
    ).to_numpy(np.float64)
    label = np.full(len(logc), np.nan)
    ret = np.full(len(logc), np.nan)
    end = np.full(len(logc), -1, np.int64)
    _triple_barrier_kernel(logc, sigma, bounds, int(h), float(pt), float(sl), label, ret, end)
    return label, ret, end


def uniqueness_weights(start_row: np.ndarray, end_row: np.ndarray, n_rows: int) -> np.ndarray:
    """Average uniqueness of each label (López de Prado, AFML ch. 4).

    At each bar, concurrency ``c`` is the number of labels whose window covers
    it; a label's uniqueness is the mean of ``1/c`` over its own window.  Rows
    are positions in the symbol-contiguous bar table, so labels of different
    symbols never overlap each other.

    Parameters
    ----------
    start_row, end_row : ndarray of int
        Inclusive row window of each event (``end_row >= start_row``).
    n_rows : int
        Number of bar rows.

    Returns
    -------
    ndarray, float64, in (0, 1]
    """
    start_row = np.asarray(start_row, np.int64)
    end_row = np.asarray(end_row, np.int64)
    if np.any(end_row < start_row):
        raise ValueError("uniqueness_weights: expected end_row >= start_row for every event")
    diff = np.zeros(n_rows + 1, np.int64)
    np.add.at(diff, start_row, 1)
    np.add.at(diff, end_row + 1, -1)
    conc = np.cumsum(diff[:-1])
    inv = np.where(conc > 0, 1.0 / np.maximum(conc, 1), 0.0)
    csum = np.r_[0.0, np.cumsum(inv)]
    return (csum[end_row + 1] - csum[start_row]) / (end_row - start_row + 1)


def build_dataset(
    bars: pd.DataFrame,
    *,
    label: str = "forward_return",
    horizon: int = 5,
    pt: float = 2.0,
    sl: float = 2.0,
    vol_window: int = 20,
    demean: bool = False,
    weights: bool = False,
    feature_set: str = DEFAULT_FEATURE_SET,
) -> Dataset:
    """Features plus labels with event windows, rows sorted by (date, symbol).

    Parameters
    ----------
    bars : DataFrame
        Long format, sorted by (symbol, date); see :func:`load_daily`.
    label : {"forward_return", "triple_barrier"}
    horizon : int
        Bars ahead (time limit for the triple barrier).
    pt, sl, vol_window
        Triple-barrier parameters (see :func:`triple_barrier`).
    demean : bool
        Subtract the cross-sectional mean label of each date (forward returns
        only): the label becomes a market-neutral, relative return.
    weights : bool
        Compute uniqueness weights (else all ones).
    feature_set : str
        The kernels' feature set the columns come from (see :func:`feature_matrix`).

    Returns
    -------
    Dataset
        Rows with any NaN feature or label dropped.
    """
    names, X = feature_matrix(bars, feature_set)
    if label == "forward_return":
        y, end_row = forward_returns(bars, horizon)
        label_name = f"fwd_log_return_h{horizon}" + ("_demeaned" if demean else "")
    elif label == "triple_barrier":
        if demean:
            raise ValueError("demean applies to forward_return labels only; was set with triple_barrier")
        y, _, end_row = triple_barrier(bars, horizon, pt=pt, sl=sl, vol_window=vol_window)
        label_name = f"triple_barrier_h{horizon}_pt{pt:g}_sl{sl:g}"
    else:
        raise ValueError(f"label kind expected 'forward_return' or 'triple_barrier'; was {label!r}")
    f1, _ = forward_returns(bars, 1)
    keep = np.isfinite(y) & np.all(np.isfinite(X), axis=1) & np.isfinite(f1)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise ValueError(f"no usable rows: {len(bars)} bars gave no row with all features and a {label} label")
    w = uniqueness_weights(rows, end_row[rows], len(bars)) if weights else np.ones(rows.size)
    dates = bars["date"].to_numpy().astype("datetime64[ns]")
    sym = bars["symbol"].to_numpy().astype(str)
    t_start = dates[rows]
    t_end = dates[end_row[rows]]
    yy = y[rows]
    if demean:
        yy = yy - pd.Series(yy).groupby(t_start).transform("mean").to_numpy()
    order = np.lexsort((sym[rows], t_start))
    return Dataset(
        feature_names=names,
        X=np.ascontiguousarray(X[rows][order]),
        y=yy[order].astype(np.float64),
        t_start=t_start[order],
        t_end=t_end[order],
        symbol=sym[rows][order],
        fwd_ret_1=f1[rows][order],
        weight=w[order],
        label_name=label_name,
    )
