"""Portfolio core: positions, cash, PnL, equity and exposure from exec reports and marks.

Every function here is a pure ``@njit(cache=True)`` update of the preallocated arrays laid out
in :mod:`alphad.daemon.risk.codes` (``book``, ``sectors``, ``account``) plus an open-order
table (``oo_ids``, ``oo_vals``).  The pre-trade gate reads the same arrays, so the exposure
the gate checks is always the exposure these updates maintain.

Exposure is *committed*: for each instrument ``max(|pos + open_buy|, |pos - open_sell|) x price``,
the worst case if every working order fills.  Price is the last trade, or the average entry price
before the first trade is seen.

Risk analytics (historical VaR/CVaR, the rolling correlation monitor and hedge ratios) are at the
end; they run off the hot path (once per bar or on demand) but are still plain array functions.

Units: prices and money in quote currency, quantities in shares, times in ns.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from alphad.daemon.risk.codes import (
    A_CASH,
    A_DAY_START_EQUITY,
    A_EQUITY,
    A_FEES,
    A_GROSS,
    A_LOSS_REF,
    A_NET,
    A_PEAK_EQUITY,
    A_REALISED,
    A_UNREALISED,
    B_AVG_PX,
    B_EXPOSURE,
    B_FEES,
    B_LAST_PX,
    B_NET,
    B_OPEN_BUY,
    B_OPEN_SELL,
    B_POSITION,
    B_REALISED,
    L_SECTOR,
    SEC_EXPOSURE,
)
from alphad.ipc.dtypes import EXEC_CANCELED, EXEC_FILL, EXEC_PARTIAL, EXEC_REJECT

# -- open-order table and exec outcome codes ------------------------------------------------------
#: Columns of ``oo_vals`` (float64, ``(capacity, 3)``).
OO_INSTRUMENT = 0
OO_SIDE = 1
OO_LEAVES = 2
N_OO_COLS = 3
#: ``oo_ids`` slot never used.
OO_EMPTY = -1
#: ``oo_ids`` slot freed (keeps probe chains intact).
OO_FREED = -2

#: Exec report or order registration applied.
PF_OK = 0
#: Exec report for an order not in the table: the fill is still booked (positions must match
#: the venue) but open quantities cannot be adjusted; count it and reconcile.
PF_UNKNOWN_ORDER = 1
#: Open-order table full: the order was not registered (the stage must not send it).
PF_TABLE_FULL = 2
#: Order id already registered.
PF_DUPLICATE_ORDER = 3
#: Exec status ACK, or an exec with nothing to apply.
PF_IGNORED = 4
#: Fill with non-positive or non-finite quantity or price: not booked.
PF_BAD_FILL = 5


@njit(cache=True, _nrt=False)
def mark_price(book, inst):
    """Price an instrument is valued at: last trade, or average entry price before any trade.

    Returns 0.0 when neither is known (a flat, never-traded instrument).
    """
    px = book[inst, B_LAST_PX]
    if px > 0.0:
        return px
    px = book[inst, B_AVG_PX]
    if px > 0.0:
        return px
    return 0.0


@njit(cache=True, _nrt=False)
def refresh_exposure(inst, limits, book, sectors, account):
    """Recompute one instrument's committed exposure and push the change into the aggregates.

    O(1): the sector and account totals move by the instrument's delta.  Call after anything
    that changes the instrument's position, working orders or price.
    """
    pos = book[inst, B_POSITION]
    long_wc = abs(pos + book[inst, B_OPEN_BUY])
    short_wc = abs(pos - book[inst, B_OPEN_SELL])
    px = mark_price(book, inst)
    exp_new = max(long_wc, short_wc) * px
    net_new = (pos + book[inst, B_OPEN_BUY] - book[inst, B_OPEN_SELL]) * px
    d_exp = exp_new - book[inst, B_EXPOSURE]
    d_net = net_new - book[inst, B_NET]
    book[inst, B_EXPOSURE] = exp_new
    book[inst, B_NET] = net_new
    account[A_GROSS] += d_exp
    account[A_NET] += d_net
    s = int(limits[inst, L_SECTOR])
    if s >= 0:
        sectors[s, SEC_EXPOSURE] += d_exp


@njit(cache=True)
def revalue(limits, book, sectors, account):
    """Exact recomputation of every aggregate from the per-instrument rows.

    The incremental updates accumulate float rounding; the stage calls this on a timer (or each
    bar) and after rebuilding state from the journal.  Also refreshes equity, unrealised PnL and
    the peak.
    """
    sectors[:, SEC_EXPOSURE] = 0.0
    gross = 0.0
    net = 0.0
    value = 0.0
    unreal = 0.0
    for i in range(book.shape[0]):
        pos = book[i, B_POSITION]
        px = mark_price(book, i)
        e = max(abs(pos + book[i, B_OPEN_BUY]), abs(pos - book[i, B_OPEN_SELL])) * px
        nt = (pos + book[i, B_OPEN_BUY] - book[i, B_OPEN_SELL]) * px
        book[i, B_EXPOSURE] = e
        book[i, B_NET] = nt
        gross += e
        net += nt
        value += pos * px
        unreal += pos * (px - book[i, B_AVG_PX]) if pos != 0.0 else 0.0
        s = int(limits[i, L_SECTOR])
        if s >= 0:
            sectors[s, SEC_EXPOSURE] += e
    account[A_GROSS] = gross
    account[A_NET] = net
    account[A_UNREALISED] = unreal
    account[A_EQUITY] = account[A_CASH] + value
    if account[A_EQUITY] > account[A_PEAK_EQUITY]:
        account[A_PEAK_EQUITY] = account[A_EQUITY]


@njit(cache=True)
def start_session(account):
    """Roll the day: equity now is the day-start and daily-loss reference."""
    account[A_DAY_START_EQUITY] = account[A_EQUITY]
    account[A_LOSS_REF] = account[A_EQUITY]


@njit(cache=True, _nrt=False)
def apply_fill(inst, side, qty, px, fee, limits, book, sectors, account):
    """Book a fill: position, average price, realised PnL, cash, fees, equity and exposure.

    Average-cost accounting: adding to a position moves the average price; reducing realises
    ``closed x (px - avg) x sign``; crossing zero realises the closed part and opens the rest
    at ``px``.

    Parameters
    ----------
    side : int
        +1 buy, -1 sell.
    qty : float
        Filled shares, > 0.
    px : float
        Fill price, quote currency, > 0.
    fee : float
        Fee paid, quote currency (negative for a rebate).

    Returns
    -------
    int
        ``PF_OK`` or ``PF_BAD_FILL``.
    """
    if not (qty > 0.0 and px > 0.0 and np.isfinite(qty) and np.isfinite(px) and np.isfinite(fee)):
        return PF_BAD_FILL
    if side != 1 and side != -1:
        return PF_BAD_FILL
    old_mark = mark_price(book, inst)
    pos = book[inst, B_POSITION]
    avg = book[inst, B_AVG_PX]
    unreal_old = pos * (old_mark - avg)
    d = side * qty
    realised = 0.0
    if pos == 0.0 or (pos > 0.0) == (d > 0.0):
        # Opening or adding: the average moves toward the fill price.
        new_pos = pos + d
        avg = (abs(pos) * avg + qty * px) / abs(new_pos)
    else:
        closed = min(abs(d), abs(pos))
        # A long closes by selling (gain when px > avg); a short closes by buying.
        realised = closed * (px - avg) * (1.0 if pos > 0.0 else -1.0)
        new_pos = pos + d
        if abs(new_pos) < 1e-12 * max(1.0, abs(pos)):
            new_pos = 0.0
            avg = 0.0
        elif (new_pos > 0.0) != (pos > 0.0):
            avg = px  # crossed zero: the remainder opened at the fill price
    book[inst, B_POSITION] = new_pos
    book[inst, B_AVG_PX] = avg
    book[inst, B_REALISED] += realised
    book[inst, B_FEES] += fee
    book[inst, B_LAST_PX] = px
    account[A_CASH] -= d * px + fee
    account[A_REALISED] += realised
    account[A_FEES] += fee
    # Equity moves by the cash flow plus the revaluation of the old and new holdings.
    account[A_EQUITY] += -d * px - fee + new_pos * px - pos * old_mark
    if account[A_EQUITY] > account[A_PEAK_EQUITY]:
        account[A_PEAK_EQUITY] = account[A_EQUITY]
    account[A_UNREALISED] += new_pos * (px - avg) - unreal_old
    refresh_exposure(inst, limits, book, sectors, account)
    return PF_OK


@njit(cache=True, _nrt=False)
def on_mark(inst, px, limits, book, sectors, account):
    """A new last-trade price: revalue the instrument, equity, peak and exposure in O(1).

    Non-positive or non-finite prices are ignored (returns False) so a bad print cannot zero the
    book's value.
    """
    if not (px > 0.0 and np.isfinite(px)):
        return False
    old_mark = mark_price(book, inst)
    pos = book[inst, B_POSITION]
    book[inst, B_LAST_PX] = px
    if pos != 0.0:
        account[A_EQUITY] += pos * (px - old_mark)
        account[A_UNREALISED] += pos * (px - old_mark)
        if account[A_EQUITY] > account[A_PEAK_EQUITY]:
            account[A_PEAK_EQUITY] = account[A_EQUITY]
    refresh_exposure(inst, limits, book, sectors, account)
    return True


# -- open-order table -----------------------------------------------------------------------------
@njit(cache=True, _nrt=False)
def _slot_start(key, mask):
    # Fibonacci hashing: consecutive client order ids spread over the table.
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return int(h >> np.uint64(40)) & mask


@njit(cache=True, _nrt=False)
def _find(oo_ids, key):
    mask = oo_ids.shape[0] - 1
    j = _slot_start(key, mask)
    for _ in range(oo_ids.shape[0]):
        k = oo_ids[j]
        if k == key:
            return j
        if k == OO_EMPTY:
            return -1
        j = (j + 1) & mask
    return -1


@njit(cache=True, _nrt=False)
def on_order_sent(client_order_id, inst, side, qty, oo_ids, oo_vals, limits, book, sectors, account):
    """Register an approved order as working: it now counts in open quantity and exposure.

    ``oo_ids`` (int64, capacity a power of two, filled with ``OO_EMPTY``) holds the client order id
    bit pattern; ``oo_vals`` (float64, ``(capacity, 3)``) instrument, side and leaves quantity.

    Returns
    -------
    int
        ``PF_OK``, ``PF_DUPLICATE_ORDER`` or ``PF_TABLE_FULL``.
    """
    key = np.int64(client_order_id)
    if key == OO_EMPTY or key == OO_FREED:
        return PF_DUPLICATE_ORDER  # the two sentinel bit patterns are reserved
    mask = oo_ids.shape[0] - 1
    j = _slot_start(key, mask)
    free = -1
    for _ in range(oo_ids.shape[0]):
        k = oo_ids[j]
        if k == key:
            return PF_DUPLICATE_ORDER
        if k == OO_FREED and free < 0:
            free = j
        if k == OO_EMPTY:
            if free < 0:
                free = j
            break
        j = (j + 1) & mask
    if free < 0:
        return PF_TABLE_FULL
    oo_ids[free] = key
    oo_vals[free, OO_INSTRUMENT] = inst
    oo_vals[free, OO_SIDE] = side
    oo_vals[free, OO_LEAVES] = qty
    if side > 0:
        book[inst, B_OPEN_BUY] += qty
    else:
        book[inst, B_OPEN_SELL] += qty
    refresh_exposure(inst, limits, book, sectors, account)
    return PF_OK


@njit(cache=True, _nrt=False)
def _reduce_open(j, amount, oo_ids, oo_vals, book):
    inst = int(oo_vals[j, OO_INSTRUMENT])
    leaves = oo_vals[j, OO_LEAVES]
    amount = min(amount, leaves)
    if oo_vals[j, OO_SIDE] > 0:
        book[inst, B_OPEN_BUY] = max(0.0, book[inst, B_OPEN_BUY] - amount)
    else:
        book[inst, B_OPEN_SELL] = max(0.0, book[inst, B_OPEN_SELL] - amount)
    oo_vals[j, OO_LEAVES] = leaves - amount


@njit(cache=True, _nrt=False)
def on_exec(execs, i, oo_ids, oo_vals, limits, book, sectors, account):
    """Apply exec report ``execs[i]`` (an ``EXEC_DTYPE`` array) to the book.

    FILL/PARTIAL book the fill and shrink the order's working quantity by ``fill_qty``; FILL,
    CANCELED and REJECT end the order (its remaining quantity leaves the open totals).  ACK is
    ignored (the order was registered as working when sent).

    Returns
    -------
    int
        ``PF_OK``, ``PF_UNKNOWN_ORDER`` (fill booked, open quantities untouched), ``PF_BAD_FILL``
        or ``PF_IGNORED``.
    """
    rec = execs[i]
    status = rec["status"]
    key = np.int64(rec["client_order_id"])
    j = _find(oo_ids, key)
    inst = int(rec["instrument"])
    code = PF_OK
    if status == EXEC_FILL or status == EXEC_PARTIAL:
        code = apply_fill(inst, int(rec["side"]), rec["fill_qty"], rec["fill_px"], rec["fee"],
                          limits, book, sectors, account)
        if code != PF_OK:
            return code
        if j < 0:
            return PF_UNKNOWN_ORDER
        _reduce_open(j, rec["fill_qty"], oo_ids, oo_vals, book)
        if status == EXEC_FILL or oo_vals[j, OO_LEAVES] <= 0.0:
            _reduce_open(j, oo_vals[j, OO_LEAVES], oo_ids, oo_vals, book)
            oo_ids[j] = OO_FREED
    elif status == EXEC_CANCELED or status == EXEC_REJECT:
        if j < 0:
            return PF_UNKNOWN_ORDER
        _reduce_open(j, oo_vals[j, OO_LEAVES], oo_ids, oo_vals, book)
        oo_ids[j] = OO_FREED
    else:
        return PF_IGNORED
    refresh_exposure(inst, limits, book, sectors, account)
    return code


@njit(cache=True)
def purge_tombstones(oo_ids, oo_vals):
    """Re-insert the live entries so freed slots become empty again; returns tombstones removed.

    Freed slots keep probe chains intact but are only reused, never emptied, so a
    long-running stage would end with no empty slot and every lookup scanning the whole
    table.  The risk stage calls this from housekeeping (off the per-event path).
    """
    n = oo_ids.shape[0]
    ids = oo_ids.copy()
    vals = oo_vals.copy()
    removed = 0
    for j in range(n):
        if oo_ids[j] == OO_FREED:
            removed += 1
        oo_ids[j] = OO_EMPTY
    mask = n - 1
    for j in range(n):
        key = ids[j]
        if key == OO_EMPTY or key == OO_FREED:
            continue
        k = _slot_start(key, mask)
        while oo_ids[k] != OO_EMPTY:
            k = (k + 1) & mask
        oo_ids[k] = key
        oo_vals[k, :] = vals[j, :]
    return removed


def new_open_order_table(capacity: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Allocate an empty open-order table.

    Parameters
    ----------
    capacity : int
        Slots, a power of two; keep it at least twice the most working orders expected.

    Returns
    -------
    (oo_ids, oo_vals)
        int64 ``(capacity,)`` filled with ``OO_EMPTY`` and float64 ``(capacity, 3)``.
    """
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"open-order table capacity expected a power of two >= 2, was {capacity}")
    return np.full(capacity, OO_EMPTY, np.int64), np.zeros((capacity, N_OO_COLS), np.float64)


# -- VaR / CVaR ----------------------------------------------------------------------------------
@njit(cache=True)
def historical_var_cvar(pnl, level):
    """Historical value at risk and conditional VaR (expected shortfall) of a PnL sample.

    VaR is the loss at the ``1 - level`` quantile of ``pnl`` (linear interpolation between order
    statistics, the same definition as ``numpy.quantile``'s default); CVaR is the mean of the
    outcomes at or below that quantile.  Both are returned as positive losses (a sample with no
    losses gives negative numbers).

    Parameters
    ----------
    pnl : float64 array
        Scenario PnL (or returns); NaNs are not allowed.
    level : float
        Confidence, e.g. 0.95 or 0.99.

    Returns
    -------
    (var, cvar) : (float, float)
        In the units of ``pnl``; ``(nan, nan)`` for an empty sample.
    """
    n = pnl.shape[0]
    if n == 0:
        return np.nan, np.nan
    x = np.sort(pnl)
    pos = (1.0 - level) * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    q = x[lo] + (pos - lo) * (x[hi] - x[lo])
    s = 0.0
    m = 0
    for k in range(n):
        if x[k] <= q:
            s += x[k]
            m += 1
        else:
            break
    if m == 0:
        return -q, -x[0]
    return -q, -s / m


def portfolio_var_cvar(returns: np.ndarray, position_values: np.ndarray,
                       levels: tuple[float, ...] = (0.95, 0.99)) -> dict[float, tuple[float, float]]:
    """Historical-simulation VaR and CVaR of the current holdings.

    Parameters
    ----------
    returns : float64 ``(n_days, n_instruments)``
        Simple returns over the lookback (rows with any NaN are dropped).
    position_values : float64 ``(n_instruments,)``
        Signed position values (shares x mark), quote currency.
    levels : tuple of float
        Confidence levels.

    Returns
    -------
    dict
        ``{level: (var, cvar)}`` as positive losses in quote currency over one return period.
    """
    returns = np.asarray(returns, np.float64)
    position_values = np.asarray(position_values, np.float64)
    if returns.ndim != 2 or returns.shape[1] != position_values.shape[0]:
        raise ValueError(
            f"returns expected shape (n_days, {position_values.shape[0]}), was {returns.shape}")
    ok = np.isfinite(returns).all(axis=1)
    pnl = returns[ok] @ position_values
    return {lv: historical_var_cvar(pnl, lv) for lv in levels}


# -- correlation monitor ---------------------------------------------------------------------------
@njit(cache=True)
def correlation_matrix(window):
    """Pearson correlation matrix of the columns of ``window`` (``(n_obs, n)`` returns).

    A column with zero variance gets correlation 0 with the others and 1 with itself.
    """
    t, n = window.shape
    mu = np.zeros(n)
    for j in range(n):
        mu[j] = window[:, j].mean()
    z = np.empty((t, n))
    sd = np.zeros(n)
    for j in range(n):
        for k in range(t):
            z[k, j] = window[k, j] - mu[j]
        sd[j] = np.sqrt((z[:, j] ** 2).sum())
    c = np.eye(n)
    for a in range(n):
        for b in range(a + 1, n):
            if sd[a] > 0.0 and sd[b] > 0.0:
                v = (z[:, a] * z[:, b]).sum() / (sd[a] * sd[b])
                c[a, b] = v
                c[b, a] = v
    return c


@njit(cache=True)
def correlation_summary(corr):
    """Average off-diagonal correlation and concentration of a correlation matrix.

    Concentration is the share of total variance on the first principal component
    (largest eigenvalue / n): 1/n for independent assets, 1.0 when everything moves as one.

    Returns
    -------
    (avg_corr, concentration) : (float, float)
    """
    n = corr.shape[0]
    if n < 2:
        return 1.0, 1.0
    s = 0.0
    for a in range(n):
        for b in range(a + 1, n):
            s += corr[a, b]
    avg = s / (n * (n - 1) / 2)
    ev = np.linalg.eigvalsh(corr)
    return avg, ev[-1] / n


@njit(cache=True)
def hedge_ratios(window, hedge):
    """OLS beta of each column of ``window`` on the hedge instrument's returns.

    ``beta_i = cov(r_i, r_h) / var(r_h)``; hedging a position of value ``v_i`` takes
    ``-beta_i x v_i`` of the hedge instrument.
    """
    t, n = window.shape
    hm = hedge.mean()
    vh = ((hedge - hm) ** 2).sum()
    out = np.zeros(n)
    if vh <= 0.0:
        return out
    for j in range(n):
        mj = window[:, j].mean()
        out[j] = ((window[:, j] - mj) * (hedge - hm)).sum() / vh
    return out


class CorrelationMonitor:
    """Rolling correlation monitor over a fixed window of per-period returns.

    Keeps a preallocated ring of the last ``window`` return rows.  :meth:`report` returns the
    correlation matrix, the average pairwise correlation, the concentration (first principal
    component share) and a regime flag (``avg_corr >= high_threshold``), plus the hedge quantity of
    the hedge instrument that neutralises the portfolio's beta.

    Parameters
    ----------
    n_instruments : int
        Columns per return row.
    window : int
        Rows kept (periods), >= 3.
    high_threshold : float
        Average correlation at or above which the regime flag is raised.
    """

    def __init__(self, n_instruments: int, window: int = 60, high_threshold: float = 0.6):
        if window < 3:
            raise ValueError(f"correlation window expected >= 3 periods, was {window}")
        if n_instruments < 2:
            raise ValueError(f"correlation monitor expected >= 2 instruments, was {n_instruments}")
        self._buf = np.zeros((window, n_instruments))
        self._n = 0
        self._head = 0
        self.window = window
        self.high_threshold = high_threshold

    def push(self, returns_row: np.ndarray) -> None:
        """Add one period's returns (``(n_instruments,)``, finite)."""
        self._buf[self._head] = returns_row
        self._head = (self._head + 1) % self.window
        self._n = min(self._n + 1, self.window)

    @property
    def ready(self) -> bool:
        """True once the window is full."""
        return self._n == self.window

    def report(self, position_values: np.ndarray | None = None, hedge_index: int = -1) -> dict:
        """Correlation matrix, average correlation, concentration, regime flag, hedge suggestion.

        Parameters
        ----------
        position_values : array, optional
            Signed position values (quote currency) used for the hedge suggestion.
        hedge_index : int
            Column of the hedge instrument (e.g. SPY); -1 for no suggestion.

        Returns
        -------
        dict
            ``corr``, ``avg_corr``, ``concentration``, ``high_correlation`` (bool),
            ``betas`` and ``hedge_value`` (signed quote currency of the hedge instrument to trade)
            when a hedge is requested.
        """
        if self._n < 3:
            raise ValueError(f"correlation report expected >= 3 periods pushed, was {self._n}")
        w = self._buf if self.ready else self._buf[: self._n]
        corr = correlation_matrix(np.ascontiguousarray(w))
        avg, conc = correlation_summary(corr)
        out = {"corr": corr, "avg_corr": float(avg), "concentration": float(conc),
               "high_correlation": bool(avg >= self.high_threshold)}
        if hedge_index >= 0 and position_values is not None:
            betas = hedge_ratios(np.ascontiguousarray(w), np.ascontiguousarray(w[:, hedge_index]))
            pv = np.asarray(position_values, np.float64).copy()
            pv[hedge_index] = 0.0  # the hedge leg itself is not hedged
            out["betas"] = betas
            out["hedge_value"] = float(-(betas * pv).sum())
        return out
