"""Risk stage core: the full pre-trade gate, portfolio and drawdown ladder over shared arrays.

The maths lives in the pure risk library (``risk_checks``, ``portfolio``,
``drawdown``; layouts in ``risk_codes``); this module is the stage's step
functions and the place its arrays live:

* ``control`` (trading state, kill-switch latch, flatten request, throttle clock)
  is a view on the shared control block, so ``alphad ctl halt`` takes effect on
  the next order and a HALTED (operator, daily loss or drawdown KILL) survives a
  restart of this stage;
* every other state array (book, account, sectors, open orders, drawdown
  windows) is a view on the ``risk_state`` segment, adopted as it is by a
  restarted stage, so positions and PnL survive too.

Per signal: target weight (with ``risk.sizing``, finished here first: the drawdown
ladder's risk multiplier, the per-position cap and the benefit/cost filter, see
:func:`finish_target`) → order quantity (target − position − working
orders, on the lot grid) → :func:`alphad.daemon.risk.checks.check_order`, whose
fixed order of checks and reason codes are documented there.  A denial is
counted per reason in the metrics block (``alphad_risk_denials_total{reason}``);
it is never an exception and never silent.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.experimental import structref

from alphad.daemon.jit import StructRefType

from alphad.ipc import metrics as mx
from alphad.ipc.control import C_THROTTLE_NS, STAGE_INDEX
from alphad.ipc.dtypes import (DENIAL_DTYPE, MD_BAR, MD_QUOTE, MD_TRADE, ORDER_F_FLATTEN, ORDER_F_TRIM, ORDER_MARKET,
                               SIG_F_SIZED)
from alphad.kernels import sizing as sz

from alphad.daemon.risk.drawdown import start_session_drawdown, update_drawdown
from alphad.daemon.risk.rebalancer import rebalancer_params, trim_sector
from alphad.daemon.risk.sessions import ALWAYS_OPEN, DAY_NS, next_open, session_index
from alphad.daemon.risk.portfolio import (PF_OK, mark_price, on_exec as pf_on_exec, on_mark, on_order_sent,
                                         start_session)
from alphad.daemon.risk.checks import (check_flatten_order, check_kill_switch, check_order, flatten_orders, gate_target,
                                      resume)
from alphad.daemon.risk.codes import (A_EQUITY, A_FEES, A_GROSS, A_REALISED, A_RISK_MULT, A_UNREALISED, B_OPEN_BUY,
                                     B_LAST_PX, B_OPEN_SELL, B_POSITION, DATA_LAST_NS, DATA_STALE_SINCE,
                                     DENY_COST_FILTERED, DENY_INSTRUMENT_HALTED, DENY_SIZING_INPUT, DENY_STALE_DATA,
                                     DENY_STALE_SIGNAL, L_SESSION_CLOSE_S, L_SESSION_OPEN_S, NO_ORDER, OK,
                                     REASON_NAMES, SEC_EXPOSURE, SEC_LIMIT, SEC_WARN, SIZE_BAD_INPUT, SIZE_OK)
from alphad.daemon.risk.config import build_risk_arrays

RISK = STAGE_INDEX["risk"]

# params (float64) the steps take besides the library's arrays
P_MIN_NOTIONAL = 0
P_HYSTERESIS = 1
P_EMERGENCY_MULT = 2
P_MAX_AGE_NS = 3
P_MAX_DATA_AGE_NS = 4
N_PARAMS = 5

#: Reason names by code for the exporter's ``reason`` label.
REASONS = dict(enumerate(REASON_NAMES))


#: Client order ids are ``(session << ID_SESSION_SHIFT) | n``: ``n`` counts the orders risk
#: has given an id in this run of the daemon (kept in the ``risk_state`` segment, so a
#: restarted risk stage goes on counting) and ``session`` is the daemon run's number (the
#: supervisor's ``W_ID_SESSION``, one more at every start), so an id never repeats across
#: restarts and does not depend on the universe's size.  Ids increase in the order risk
#: emits them, flatten orders included: the router's per-instrument "not above the last id"
#: check drops only true repeats.  Words of ``ids``: the counter, the session.
ID_SESSION_SHIFT = 40
ID_COUNT, ID_SESSION = 0, 1


@njit(cache=True, _nrt=False)
def order_id(session, n):
    """The ``n``-th client order id of daemon run ``session`` (n from 1)."""
    return (session << ID_SESSION_SHIFT) | n


@njit(cache=True, inline="always")
def next_order_id(ids):
    ids[ID_COUNT] += 1
    return order_id(ids[ID_SESSION], ids[ID_COUNT])


@njit(cache=True, inline="always")
def market_order(o, t_origin, now, cid, i, side, flags, qty):
    """Write a market order into the record ``o`` (its sizing fields are the caller's); returns ``o``."""
    o.t_origin = t_origin
    o.ts = now
    o.client_order_id = cid
    o.instrument = i
    o.side = side
    o.kind = ORDER_MARKET
    o.flags = flags
    o.qty = qty
    o.limit_px = np.nan
    return o


@njit(cache=True, inline="always")
def no_sizing(o):
    """An order no signal sized (flatten, trim): its sizing fields NaN."""
    o.prediction = o.target_weight = o.m_conviction = o.m_kelly = o.m_regime = o.m_vix = o.m_vol = np.nan
    o.m_risk = np.nan


# last_size words: the sizing of the last signal finished (the /metrics gauges)
LS_RISK_MULT, LS_VIX_MULT, LS_REGIME_MULT, LS_VOL_MULT, LS_KELLY = 0, 1, 2, 3, 4
N_LAST_SIZE = 8


@njit(cache=True)
def finish_target(st, s, tmp):
    """Risk's half of the full sizing of signal ``s`` (:func:`alphad.kernels.sizing.finish_weight`
    then :func:`~alphad.kernels.sizing.cost_filtered`, against the worst-case working
    position at the signal's price); returns ``OK`` with the target in ``tmp[2]`` and the
    risk multiplier in ``tmp[3]``, or the denial code."""
    i = s.instrument
    equity = st.account[A_EQUITY]
    risk_mult = st.account[A_RISK_MULT]
    tmp[3] = risk_mult
    if not (0 <= i < st.book.shape[0] and s.ref_px > 0.0 and equity > 0.0):
        return DENY_SIZING_INPUT
    b = st.book
    current = (b[i, B_POSITION] + b[i, B_OPEN_BUY] - b[i, B_OPEN_SELL]) * s.ref_px / equity
    code, w = sz.finish_weight(s.code, s.target_weight, current, risk_mult, equity, st.sparams)
    ls = st.last_size
    ls[LS_RISK_MULT] = risk_mult
    ls[LS_VIX_MULT] = s.m_vix
    ls[LS_REGIME_MULT] = s.m_regime
    ls[LS_VOL_MULT] = s.m_vol
    ls[LS_KELLY] = s.m_kelly
    if code == SIZE_BAD_INPUT:
        return DENY_SIZING_INPUT
    tmp[2] = w
    if code == SIZE_OK and sz.cost_filtered(s.prediction, w, current, s.half_spread, s.daily_vol, s.adv, equity,
                                            st.sparams):
        return DENY_COST_FILTERED
    return OK


# sess words (int64, kept in the risk_state segment): the account calendar's row, the index of
# the session last seen (SESS_UNSEEN: none yet), 1 when orders queue outside hours, the
# offset from the step's clock to UTC (a live stage's clock is CLOCK_MONOTONIC; a backtest's
# and a replay's is the records' own UTC time: 0), and the next UTC time anything can change
# (a session open of the account, a close of an instrument): before it a call does nothing
SESS_ROW, SESS_LAST, SESS_QUEUE, SESS_UTC_OFFSET, SESS_NEXT = 0, 1, 2, 3, 4
N_SESS = 5
SESS_UNSEEN = -(2**62)


@njit(cache=True, inline="always")
def _session_at(st, c, t):
    """Index of calendar row ``c``'s latest session opened by UTC time ``t`` (a 24/7 row:
    the UTC day, whatever ``t``), and whether ``t`` is inside it."""
    if st.s_always[c]:
        return t // DAY_NS, True
    j = session_index(st.s_opens, st.s_closes, st.s_counts, c, t)
    return j, j >= 0 and t < st.s_closes[c, j]


#: Days of mark-to-mark returns kept for the VaR/CVaR and correlation gauges.
RISK_WINDOW_DAYS = 250


@njit(cache=True)
def sample_day(st):
    """At a day roll: each instrument's return since the last roll (its mark), one row of
    the ``day_rets`` window (NaN where either mark is missing); the window the portfolio
    risk gauges read (:func:`alphad.daemon.risk.analytics.portfolio_risk`)."""
    row = st.day_n[0] % st.day_rets.shape[0]
    for i in range(st.book.shape[0]):
        px = st.book[i, B_LAST_PX]
        prev = st.day_px[i]
        st.day_rets[row, i] = px / prev - 1.0 if px > 0.0 and prev > 0.0 else np.nan
        st.day_px[i] = px
    st.day_n[0] += 1


@njit(cache=True)
def roll_sessions(st, now):
    """The day roll and the trading hours on the injected clock.

    At each session open of the account's calendar the daily loss limit and the intraday
    drawdown restart from the equity then and the rebalancer's daily turnover from 0 (the
    first call only notes the session: a start is not a roll).  Unless orders queue
    outside hours, each instrument's session bounds in ``limits`` (what the gate's hours
    check reads, on the same clock as ``now``) move on when its session has closed: to the
    session holding ``now`` or the next one (a holiday or a weekend has none).  A 24/7
    calendar is always open and rolls at 00:00 UTC."""
    sess = st.sess
    off = sess[SESS_UTC_OFFSET]
    t = now + off
    if t < sess[SESS_NEXT]:
        return  # nothing opens or closes before then: one comparison per event
    row = sess[SESS_ROW]
    idx, _ = _session_at(st, row, t)
    if idx != sess[SESS_LAST]:
        if sess[SESS_LAST] != SESS_UNSEEN:
            start_session(st.account)
            start_session_drawdown(st.dd_state, st.account[A_EQUITY])
            st.turnover[0] = 0.0
            sample_day(st)
        sess[SESS_LAST] = idx
    nxt = (idx + 1) * DAY_NS if st.s_always[row] else next_open(st.s_opens, st.s_closes, st.s_counts, row, t)
    if not sess[SESS_QUEUE]:
        limits = st.limits
        now_s = now * 1e-9
        for i in range(limits.shape[0]):
            c = st.inst_cal[i]
            if st.s_always[c]:
                continue
            if now_s >= limits[i, L_SESSION_CLOSE_S]:
                j, inside = _session_at(st, c, t)
                if not inside:
                    j += 1
                if 0 <= j < st.s_counts[c]:  # bounds on the step's clock
                    limits[i, L_SESSION_OPEN_S] = (st.s_opens[c, j] - off) * 1e-9
                    limits[i, L_SESSION_CLOSE_S] = (st.s_closes[c, j] - off) * 1e-9
                else:
                    limits[i, L_SESSION_OPEN_S] = limits[i, L_SESSION_CLOSE_S] = np.inf
            close = limits[i, L_SESSION_CLOSE_S]
            if close < np.inf:
                nxt = min(nxt, int(close * 1e9) + off + 1)
    sess[SESS_NEXT] = nxt


@njit(cache=True)
def _deny(st, code, i, side, qty, now, t_origin, seq, weight, ref_px):
    """Count a denial by reason and keep it for the journal while there is room."""
    mx.count_denial(st.m, RISK, code)
    d = st.den_n[0]
    if d < st.denials.shape[0]:
        r = st.denials[d]
        r.t_origin = t_origin
        r.ts = now
        r.seq = seq
        r.instrument = i
        r.reason = code
        r.side = side
        r.qty = qty
        r.target_weight = weight
        r.ref_px = ref_px
        st.den_n[0] = d + 1


@njit(cache=True)
def risk_rebalance(st, out, now):
    """The sector rebalancer (``risk.rebalancer``; none: no trims): each sector above its
    limit trimmed by :func:`alphad.daemon.risk.rebalancer.trim_sector`, every trim through
    the full gate (:func:`~alphad.daemon.risk.checks.check_order`) like any order, sent
    flagged ``ORDER_F_TRIM``.  Returns the orders written."""
    if st.rparams.shape[0] == 0:
        return 0
    limits, book, sectors, account = st.limits, st.book, st.sectors, st.account
    k = 0
    for sct in range(sectors.shape[0]):
        if not (sectors[sct, SEC_EXPOSURE] > sectors[sct, SEC_LIMIT] * account[A_EQUITY]):
            continue  # within its limit: the common case, checked here without a call (per event)
        _, n = trim_sector(sct, now, account[A_EQUITY], limits, book, sectors, st.last_trim, st.turnover,
                           st.rparams, st.t_inst, st.t_qty)
        for j in range(n):
            i = st.t_inst[j]
            side = 1 if st.t_qty[j] > 0.0 else -1
            qty = abs(st.t_qty[j])
            code = check_order(i, side, qty, np.nan, now, limits, book, sectors, st.account_limits, account,
                               st.control)
            if code == OK and data_stale(st, i, now):
                code = DENY_STALE_DATA
            if code == OK and st.halts[i] != 0:
                code = DENY_INSTRUMENT_HALTED
            if code != OK:
                _deny(st, code, i, side, qty, now, now, 0, np.nan, mark_price(book, i))
                continue
            cid = next_order_id(st.ids)
            if on_order_sent(cid, i, side, qty, st.oo_ids, st.oo_vals, limits, book, sectors, account) != PF_OK:
                mx.count(st.m, RISK, mx.C_ERRORS, 1)
                continue
            no_sizing(market_order(out[k], now, now, cid, i, side, ORDER_F_TRIM, qty))
            k += 1
    if k:
        mx.count(st.m, RISK, mx.C_ORDERS, k)
    return k


@njit(cache=True)
def risk_step(st, sigs, n, out, now):
    """The gate: target weights ``sigs[:n]`` in, orders out; returns the orders written.

    Each denial is counted by reason in ``st.m`` and written to
    ``st.denials[st.den_n[0]]`` (for the journal) while there is room; the shell drains
    it after the call.
    """
    limits, book, sectors, account, control = st.limits, st.book, st.sectors, st.account, st.control
    account_limits, oo_ids, oo_vals, params, tmp, m = st.account_limits, st.oo_ids, st.oo_vals, st.params, st.tmp, st.m
    seen = st.seen_seq
    roll_sessions(st, now)
    k = 0
    for j in range(n):
        s = sigs[j]
        i = s.instrument
        if 0 <= i < seen.shape[0]:
            if s.seq <= seen[i]:
                continue  # a decision already made (a replayed record): never acted on twice
            seen[i] = s.seq
        sized = s.flags & SIG_F_SIZED
        tmp[3] = account[A_RISK_MULT]  # the drawdown ladder's: 0.5 from EMERGENCY, linear sizing too
        tmp[2] = s.target_weight * max(0.0, tmp[3])
        if now - s.t_origin > params[P_MAX_AGE_NS]:
            code = DENY_STALE_SIGNAL
            tmp[0] = tmp[1] = 0.0
        elif data_stale(st, i, now):
            code = DENY_STALE_DATA
            tmp[0] = tmp[1] = 0.0
        elif 0 <= i < st.halts.shape[0] and st.halts[i] != 0:
            code = DENY_INSTRUMENT_HALTED
            tmp[0] = tmp[1] = 0.0
        else:
            code = finish_target(st, s, tmp) if sized else OK
            if code == OK:
                code = gate_target(i, tmp[2], s.ref_px, np.nan, now, limits, book, sectors, account_limits,
                                   account, control, tmp)
            else:
                tmp[0] = tmp[1] = 0.0
        if code == NO_ORDER:
            continue
        if code != OK:
            _deny(st, code, i, int(tmp[0]), tmp[1], now, s.t_origin, s.seq, tmp[2], s.ref_px)
            continue
        side = int(tmp[0])
        qty = tmp[1]
        if qty * s.ref_px < params[P_MIN_NOTIONAL] and tmp[2] != 0.0:
            continue  # not worth an order: a threshold, not a denial (a flat target is always worth it)
        cid = next_order_id(st.ids)
        sent = on_order_sent(cid, i, side, qty, oo_ids, oo_vals, limits, book, sectors, account)
        if sent != PF_OK:  # the open-order table is full (an id is never reused): visible, never silent
            mx.count(m, RISK, mx.C_ERRORS, 1)
            continue
        o = market_order(out[k], s.t_origin, now, cid, i, side, 0, qty)
        o.prediction = s.prediction
        o.target_weight = tmp[2]
        o.m_conviction = s.m_conviction
        o.m_kelly = s.m_kelly
        o.m_regime = s.m_regime
        o.m_vix = s.m_vix
        o.m_vol = s.m_vol
        o.m_risk = tmp[3]
        k += 1
    if k:
        mx.count(m, RISK, mx.C_ORDERS, k)
    return k


@njit(cache=True)
def risk_fills(st, reports, n):
    """Book exec reports (fills, rejects, cancels); returns the number of fills."""
    fills = 0
    for j in range(n):
        pf_on_exec(reports, j, st.oo_ids, st.oo_vals, st.limits, st.book, st.sectors, st.account)
        if reports[j].fill_qty > 0.0:
            fills += 1
    if fills:
        mx.count(st.m, RISK, mx.C_FILLS, fills)
    return fills


@njit(cache=True)
def risk_marks(st, md, n):
    """Revalue on quotes (mid), trades (last price) and bars (close); note each
    instrument's latest data (:func:`data_stale`)."""
    limits, book, sectors, account, data_ns = st.limits, st.book, st.sectors, st.account, st.data_ns
    for j in range(n):
        e = md[j]
        i = e.instrument
        if i < 0 or i >= book.shape[0]:
            continue
        if e.t_origin > data_ns[i, DATA_LAST_NS]:
            data_ns[i, DATA_LAST_NS] = e.t_origin
        if e.kind == MD_QUOTE and e.bid_px > 0.0 and e.ask_px > e.bid_px:
            on_mark(i, 0.5 * (e.bid_px + e.ask_px), limits, book, sectors, account)
        elif e.kind == MD_TRADE or e.kind == MD_BAR:
            on_mark(i, e.last_px, limits, book, sectors, account)


@njit(cache=True)
def data_stale(st, i, now):
    """Instrument ``i``'s data may be missing: the live feed reports its market data down
    (``feed_down``: an IB data farm broken, its link lost) and ``i``'s latest record is older
    than ``risk.max_data_age_ms``.  A quiet instrument on a healthy feed is never stale, and a
    backtest's or a replay's feed is never down."""
    if st.feed_down[0] == 0 or i < 0 or i >= st.data_ns.shape[0]:
        return False
    return now - st.data_ns[i, DATA_LAST_NS] > st.params[P_MAX_DATA_AGE_NS]


@njit(cache=True)
def risk_data_watch(st, now, feed_down):
    """The feed's data health (``feed_down``: its broken data farms and lost links, 0 when
    healthy) for :func:`data_stale`; each instrument's stale-since mark (0: fresh) kept for
    ``ctl status`` and /metrics.  Returns how many instruments are stale."""
    st.feed_down[0] = feed_down
    data_ns = st.data_ns
    k = 0
    for i in range(data_ns.shape[0]):
        if data_stale(st, i, now):
            if data_ns[i, DATA_STALE_SINCE] == 0:
                data_ns[i, DATA_STALE_SINCE] = now
            k += 1
        else:
            data_ns[i, DATA_STALE_SINCE] = 0
    return k


@njit(cache=True)
def risk_watch(st, now):
    """The day roll and trading hours (:func:`roll_sessions`), the drawdown ladder and the
    daily-loss kill switch on the current equity; returns the ladder event."""
    roll_sessions(st, now)
    ev = update_drawdown(now, st.account[A_EQUITY], st.dd_state, st.dd_idx, st.win_ts, st.win_eq, st.thresholds,
                         st.params[P_HYSTERESIS], st.params[P_EMERGENCY_MULT], st.control, st.account)
    check_kill_switch(st.account_limits, st.account, st.control, now)
    return ev


@njit(cache=True)
def risk_flatten(st, out, now):
    """Orders that take every position to zero (``ctl flatten`` or the KILL step): the one
    path past HALTED, each through ``check_flatten_order``.  Returns the orders written."""
    limits, book, sectors, account, control = st.limits, st.book, st.sectors, st.account, st.control
    oo_ids, oo_vals, f_inst, f_side, f_qty = st.oo_ids, st.oo_vals, st.f_inst, st.f_side, st.f_qty
    n = flatten_orders(limits, book, f_inst, f_side, f_qty)
    k = 0
    for j in range(n):
        i = f_inst[j]
        if check_flatten_order(i, f_side[j], f_qty[j], limits, book, control) != OK:
            continue
        cid = next_order_id(st.ids)
        if on_order_sent(cid, i, f_side[j], f_qty[j], oo_ids, oo_vals, limits, book, sectors, account) != PF_OK:
            continue
        no_sizing(market_order(out[k], now, now, cid, i, f_side[j], ORDER_F_FLATTEN, f_qty[j]))
        k += 1
    return k


@njit(cache=True, _nrt=False)
def publish_gauges(account, last_size, gauges):
    gauges[mx.G_REALIZED_PNL] = account[A_REALISED]
    gauges[mx.G_UNREALIZED_PNL] = account[A_UNREALISED]
    gauges[mx.G_FEES] = account[A_FEES]
    gauges[mx.G_EQUITY] = account[A_EQUITY]
    gauges[mx.G_GROSS_EXPOSURE] = account[A_GROSS]
    gauges[mx.G_RISK_MULT] = account[A_RISK_MULT]
    gauges[mx.G_VIX_MULT] = last_size[LS_VIX_MULT]
    gauges[mx.G_REGIME_MULT] = last_size[LS_REGIME_MULT]
    gauges[mx.G_VOL_MULT] = last_size[LS_VOL_MULT]
    gauges[mx.G_KELLY] = last_size[LS_KELLY]


def state_specs(n_instruments: int, n_sectors: int, oo_capacity: int, window_capacity: int):
    """Shapes and dtypes of the state arrays kept in the ``risk_state`` segment."""
    from alphad.daemon.risk.drawdown import N_DD_STATE
    from alphad.daemon.risk.codes import N_ACCOUNT_COLS, N_BOOK_COLS, N_SECTOR_COLS

    return [
        ((n_instruments, N_BOOK_COLS), np.float64),      # book
        ((n_sectors, N_SECTOR_COLS), np.float64),        # sectors (limits + exposure)
        ((N_ACCOUNT_COLS,), np.float64),                 # account
        ((oo_capacity,), np.int64),                      # open-order ids
        ((oo_capacity, 3), np.float64),                  # open-order values
        ((N_DD_STATE,), np.float64),                     # drawdown state
        ((4,), np.int64),                                # drawdown deque heads
        ((2, window_capacity), np.int64),                # drawdown window times
        ((2, window_capacity), np.float64),              # drawdown window equity
        ((2,), np.int64),                                # order ids: counter, session
        ((n_instruments,), np.int64),                    # last signal seq acted on, per instrument
        ((N_SESS,), np.int64),                           # sessions: account row, last seen, queue, ...
        ((n_sectors,), np.int64),                        # rebalancer: each sector's last trim
        ((1,), np.float64),                              # rebalancer: value trimmed today
        ((n_instruments, 2), np.int64),                  # data_ns: latest data, stale since (DATA_*)
        ((n_instruments,), np.int64),                    # halts: an operator's halt of one instrument (1)
    ]


def state_specs_of(cfg):
    """:func:`state_specs` for a daemon config: its universe and sectors, its drawdown window."""
    n_sectors = max(1, len({i.sector for i in cfg.universe if i.sector}))
    return state_specs(len(cfg.universe), n_sectors, RiskCore.OO_CAPACITY, cfg.risk.drawdown.window_capacity)


class RiskCore:
    """The risk stage's arrays.

    Parameters
    ----------
    universe : the config's instruments.
    risk_cfg : the config's ``risk`` section (:class:`alphad.daemon.config.Risk`).
    control : int64 view of the risk words of the shared control block.
    shared : optional ``(views, fresh)`` from the ``risk_state`` segment (see
        :func:`state_specs`); ``fresh`` False means a previous incarnation's state is
        adopted unchanged.
    metrics : int64 words of the metrics block (denial and order counters); a private
        block when absent.
    session : the daemon run's number, the high bits of every client order id (see
        :data:`ID_SESSION_SHIFT`); 0 in a backtest, so its ids are the same every run.
    utc_offset_ns : UTC minus the steps' clock (a live stage steps on CLOCK_MONOTONIC; a
        backtest and a replay on the records' UTC time: 0), for the exchange sessions.
    """

    OO_CAPACITY = 4096

    def __init__(self, universe, risk_cfg, control: np.ndarray, shared=None, metrics: np.ndarray | None = None,
                 session: int = 0, utc_offset_ns: int = 0):
        from alphad.daemon.risk.drawdown import DrawdownArrays

        rows = [(ins.symbol, ins.sector, ins.tick_size, ins.lot_size) for ins in universe]
        fresh_control = control[C_THROTTLE_NS] == 0  # C_THROTTLE_NS: -1 once initialised
        arrays = build_risk_arrays(risk_cfg, rows, equity=risk_cfg.initial_equity, control=control,
                                   open_order_capacity=self.OO_CAPACITY)
        if fresh_control:
            control[C_THROTTLE_NS] = -1
        dd = DrawdownArrays(risk_cfg.initial_equity, risk_cfg.drawdown.window_capacity)
        self.limits = arrays.limits
        self.account_limits = arrays.account_limits
        self.control = control
        ids = np.array([0, session], np.int64)
        seen_seq = np.full(len(universe), -1, np.int64)
        table, inst_cal = _session_table(universe, risk_cfg)
        sess = np.array([0, SESS_UNSEEN, risk_cfg.sessions.outside_hours == "queue", utc_offset_ns,
                         SESS_UNSEEN], np.int64)
        last_trim = np.full(arrays.sectors.shape[0], -(2**62), np.int64)
        state = [arrays.book, arrays.sectors, arrays.account, arrays.oo_ids, arrays.oo_vals,
                 dd.state, dd.idx, dd.win_ts, dd.win_eq, ids, seen_seq, sess, last_trim, np.zeros(1),
                 np.zeros((len(universe), 2), np.int64), np.zeros(len(universe), np.int64)]
        if shared is not None:
            views, fresh = shared
            if fresh:
                for view, a in zip(views, state):
                    view[...] = a
            state = views
        (self.book, self.sectors, self.account, self.oo_ids, self.oo_vals, self.dd_state, self.dd_idx, self.win_ts,
         self.win_eq, self.ids, self.seen_seq, self.sess, self.last_trim, self.turnover, self.data_ns,
         self.halts) = state
        self.feed_down = np.zeros(1, np.int64)  # the feed's data health, from housekeeping (risk_data_watch)
        self.sessions = table
        self.s_opens, self.s_closes, self.s_counts, self.inst_cal = table.opens, table.closes, table.counts, inst_cal
        self.s_always = np.array([name == ALWAYS_OPEN for name in table.names], np.int64)
        self.sess[SESS_UTC_OFFSET] = utc_offset_ns  # a restarted stage's clock may have moved
        self.sess[SESS_NEXT] = SESS_UNSEEN  # and its hours are rebuilt: look at the first call
        if not self.sess[SESS_QUEUE]:  # the hours move on at the first roll_sessions (24/7: always open)
            timed = self.s_always[inst_cal] == 0
            self.limits[timed, L_SESSION_OPEN_S] = self.limits[timed, L_SESSION_CLOSE_S] = -np.inf
        reb = risk_cfg.rebalancer
        self.rparams = rebalancer_params(reb) if reb is not None else np.zeros(0)
        self.t_inst = np.zeros(len(universe), np.int64)
        self.t_qty = np.zeros(len(universe))
        self.day_rets = np.full((RISK_WINDOW_DAYS, len(universe)), np.nan)
        self.day_px = np.full(len(universe), np.nan)
        self.day_n = np.zeros(1, np.int64)
        self.thresholds = risk_cfg.drawdown.threshold_table()
        self.params = np.zeros(N_PARAMS)
        self.params[P_MIN_NOTIONAL] = risk_cfg.min_order_notional
        self.params[P_MAX_AGE_NS] = getattr(risk_cfg, "max_signal_age_ms", float("inf")) * 1e6
        self.params[P_MAX_DATA_AGE_NS] = getattr(risk_cfg, "max_data_age_ms", float("inf")) * 1e6
        self.params[P_HYSTERESIS] = risk_cfg.drawdown.recovery_hysteresis
        self.params[P_EMERGENCY_MULT] = risk_cfg.drawdown.emergency_risk_multiplier
        self.tmp = np.zeros(4)
        self.sparams = np.zeros(sz.N_PARAMS)
        if risk_cfg.sizing is not None:  # risk's half reads the cap, costs and cost multiple only
            self.sparams[:] = sz.sizing_params(risk_cfg.sizing, oos_win_rate=0.5, oos_payoff_ratio=1.0,
                                               prediction_scale=1.0)[0]
        self.last_size = np.full(N_LAST_SIZE, np.nan)
        self.denials = np.zeros(256, DENIAL_DTYPE)
        self.den_n = np.zeros(1, np.int64)
        n = len(universe)
        self.f_inst = np.zeros(n, np.int64)
        self.f_side = np.zeros(n, np.int64)
        self.f_qty = np.zeros(n)
        self.n_sectors = arrays.sectors.shape[0]

        self.m = metrics if metrics is not None else np.zeros(mx.SIZE // 8, np.int64)
        self.state = _new_risk_state(tuple(getattr(self, f) for f in _RISK_FIELDS))

    def apply_limits(self, risk_cfg, universe) -> None:
        """A reloaded ``risk:`` section's limits (``ctl reload`` / ``ctl set``), in place: the
        per-instrument and account limits, the sector limits and the gate's thresholds.  The
        book, the open orders, the ladder and the trading hours worked out so far are kept."""
        rows = [(ins.symbol, ins.sector, ins.tick_size, ins.lot_size) for ins in universe]
        new = build_risk_arrays(risk_cfg, rows, equity=risk_cfg.initial_equity)
        hours = [L_SESSION_OPEN_S, L_SESSION_CLOSE_S]
        kept = self.limits[:, hours].copy()
        self.limits[:] = new.limits
        self.limits[:, hours] = kept
        self.sectors[:, SEC_LIMIT] = new.sectors[:, SEC_LIMIT]
        self.sectors[:, SEC_WARN] = new.sectors[:, SEC_WARN]
        self.account_limits[:] = new.account_limits
        self.params[P_MIN_NOTIONAL] = risk_cfg.min_order_notional
        self.params[P_MAX_AGE_NS] = risk_cfg.max_signal_age_ms * 1e6
        self.params[P_MAX_DATA_AGE_NS] = risk_cfg.max_data_age_ms * 1e6

    def scratch_state(self) -> "RiskState":
        """A twin of :attr:`state` over copies of every array (warm-up runs on it)."""
        return _new_risk_state(tuple(np.copy(getattr(self, f)) for f in _RISK_FIELDS))


#: The span of the session tables: every date the shipped data holds, to two years ahead.
SESSIONS_FROM = "1990-01-01"
SESSIONS_AHEAD_DAYS = 730


def _session_table(universe, risk_cfg):
    """The exchange sessions of the account's calendar (row 0) and every instrument's
    (:mod:`alphad.daemon.risk.sessions`), and each instrument's row."""
    import datetime as dt

    from alphad.daemon.risk.config import calendar_of
    from alphad.daemon.risk.sessions import SessionTable, build_session_table

    names = [risk_cfg.sessions.calendar]
    names += sorted({calendar_of(risk_cfg, ins.symbol) for ins in universe} - set(names))
    start = int(dt.datetime.fromisoformat(SESSIONS_FROM).replace(tzinfo=dt.timezone.utc).timestamp()) * 10**9
    end = (int(dt.datetime.now(dt.timezone.utc).timestamp()) + SESSIONS_AHEAD_DAYS * 86_400) * 10**9
    if all(name == ALWAYS_OPEN for name in names):
        # 24/7 rows are worked out from the clock (t // day): no table, and no import of the
        # calendar library and pandas, which would lengthen every start and restart by seconds
        empty = np.zeros((len(names), 1), np.int64)
        table = SessionTable(tuple(names), empty, empty.copy(), np.zeros(len(names), np.int64))
    else:
        try:
            table = build_session_table(names, start, end)
        except ValueError as e:
            raise ValueError(f"risk.sessions: {e}") from None
    inst_cal = np.array([names.index(calendar_of(risk_cfg, ins.symbol)) for ins in universe], np.int64)
    return table, inst_cal


# -- the stage's state as one object, and its steps over it -----------------------------
@structref.register
class _RiskStateType(StructRefType):
    pass


class RiskState(structref.StructRefProxy):
    """Every array of the risk stage (see :class:`RiskCore`) as one compiled object: the
    steps take it instead of a dozen arrays, and a new input touches this module only."""


_RISK_FIELDS = ["limits", "book", "sectors", "account_limits", "account", "control", "oo_ids", "oo_vals", "params",
                "tmp", "m", "denials", "den_n", "dd_state", "dd_idx", "win_ts", "win_eq", "thresholds", "f_inst",
                "f_side", "f_qty", "ids", "seen_seq", "sparams", "last_size", "sess", "s_opens", "s_closes", "s_counts",
                "s_always", "inst_cal", "rparams", "last_trim", "turnover", "t_inst", "t_qty", "day_rets", "day_px",
                "day_n", "data_ns", "feed_down", "halts"]
structref.define_proxy(RiskState, _RiskStateType, _RISK_FIELDS)


@njit(cache=True)
def _new_risk_state(a):
    """The state over the arrays ``a``, in :data:`_RISK_FIELDS` order (one tuple: a
    constructor with 21 parameters would be unreadable at every call)."""
    return RiskState(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14],
                     a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24], a[25], a[26], a[27],
                     a[28], a[29], a[30], a[31], a[32], a[33], a[34], a[35], a[36], a[37], a[38], a[39], a[40], a[41])


@njit(cache=True)
def risk_rebuild(st, orders, reports, due):
    """Crash-only start: the book, cash, realised PnL and fees rebuilt from a journal's
    ``orders`` (approved, as sent) and exec ``reports``.

    Report ``j`` is applied once ``orders[:due[j]]`` are registered (``due`` non-decreasing:
    :func:`alphad.daemon.supervisor.journal_checkpoint.rebuild_records`), so the open-order
    table holds, as it did live, the orders working at that point of the journal, never the
    whole journal's (which would overflow it), and a report an older journal holds before
    its order still finds it.  The supervisor has already journaled the end of every order
    the last run left open (its in-process venues ended with it:
    :func:`alphad.daemon.supervisor.recovery.restore_from_journal`).  The daily loss limit
    is re-armed from the rebuilt equity."""
    k, n = 0, reports.shape[0]
    for j in range(n + 1):  # the pass after the last report registers the orders left
        until = due[j] if j < n else orders.shape[0]
        while k < until:
            o = orders[k]
            on_order_sent(o.client_order_id, o.instrument, o.side, o.qty, st.oo_ids, st.oo_vals, st.limits, st.book,
                          st.sectors, st.account)
            k += 1
        if j < n:
            pf_on_exec(reports, j, st.oo_ids, st.oo_vals, st.limits, st.book, st.sectors, st.account)
    start_session(st.account)


@njit(cache=True)
def risk_resume(st, now):
    """``ctl resume``: back to ACTIVE, the daily loss limit re-armed from current equity."""
    resume(st.control, st.account, now)

