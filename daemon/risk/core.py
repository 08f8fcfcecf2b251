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

Per signal: target weight → order quantity (target − position − working
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
from alphad.ipc.dtypes import DENIAL_DTYPE, MD_BAR, MD_QUOTE, MD_TRADE, ORDER_F_FLATTEN, ORDER_MARKET

from alphad.daemon.risk.drawdown import update_drawdown
from alphad.daemon.risk.portfolio import PF_OK, on_exec as pf_on_exec, on_mark, on_order_sent, start_session
from alphad.daemon.risk.checks import check_flatten_order, check_kill_switch, flatten_orders, gate_target, resume
from alphad.daemon.risk.codes import (A_EQUITY, A_GROSS, A_REALISED, A_UNREALISED, DENY_STALE_SIGNAL, NO_ORDER, OK,
                                     REASON_NAMES)
from alphad.daemon.risk.config import build_risk_arrays

RISK = STAGE_INDEX["risk"]

# params (float64) the steps take besides the library's arrays
P_MIN_NOTIONAL = 0
P_HYSTERESIS = 1
P_EMERGENCY_MULT = 2
P_MAX_AGE_NS = 3
N_PARAMS = 4

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


@njit(cache=True)
def risk_step(st, sigs, n, out, now):
    """The gate: target weights ``sigs[:n]`` in, orders out; returns the orders written.

    Each denial is counted by reason in ``st.m`` and written to
    ``st.denials[st.den_n[0]]`` (for the journal) while there is room; the shell drains
    it after the call.
    """
    limits, book, sectors, account, control = st.limits, st.book, st.sectors, st.account, st.control
    account_limits, oo_ids, oo_vals, params, tmp, m = st.account_limits, st.oo_ids, st.oo_vals, st.params, st.tmp, st.m
    den, den_n, seen = st.denials, st.den_n, st.seen_seq
    k = 0
    for j in range(n):
        s = sigs[j]
        i = s.instrument
        if 0 <= i < seen.shape[0]:
            if s.seq <= seen[i]:
                continue  # a decision already made (a replayed record): never acted on twice
            seen[i] = s.seq
        if now - s.t_origin > params[P_MAX_AGE_NS]:
            code = DENY_STALE_SIGNAL
            tmp[0] = tmp[1] = 0.0
        else:
            code = gate_target(i, s.target_weight, s.ref_px, np.nan, now, limits, book, sectors, account_limits,
                               account, control, tmp)
        if code == NO_ORDER:
            continue
        if code != OK:
            mx.count_denial(m, RISK, code)
            d = den_n[0]
            if d < den.shape[0]:
                r = den[d]
                r.t_origin = s.t_origin
                r.ts = now
                r.seq = s.seq
                r.instrument = i
                r.reason = code
                r.side = int(tmp[0])
                r.qty = tmp[1]
                r.target_weight = s.target_weight
                r.ref_px = s.ref_px
                den_n[0] = d + 1
            continue
        side = int(tmp[0])
        qty = tmp[1]
        if qty * s.ref_px < params[P_MIN_NOTIONAL]:
            continue  # not worth an order: a threshold, not a denial
        cid = next_order_id(st.ids)
        sent = on_order_sent(cid, i, side, qty, oo_ids, oo_vals, limits, book, sectors, account)
        if sent != PF_OK:  # the open-order table is full (an id is never reused): visible, never silent
            mx.count(m, RISK, mx.C_ERRORS, 1)
            continue
        o = out[k]
        o.t_origin = s.t_origin
        o.ts = now
        o.client_order_id = cid
        o.instrument = i
        o.side = side
        o.kind = ORDER_MARKET
        o.flags = 0
        o.qty = qty
        o.limit_px = np.nan
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
    """Revalue on quotes (mid), trades (last price) and bars (close)."""
    limits, book, sectors, account = st.limits, st.book, st.sectors, st.account
    for j in range(n):
        e = md[j]
        i = e.instrument
        if i < 0 or i >= book.shape[0]:
            continue
        if e.kind == MD_QUOTE and e.bid_px > 0.0 and e.ask_px > e.bid_px:
            on_mark(i, 0.5 * (e.bid_px + e.ask_px), limits, book, sectors, account)
        elif e.kind == MD_TRADE or e.kind == MD_BAR:
            on_mark(i, e.last_px, limits, book, sectors, account)


@njit(cache=True)
def risk_watch(st, now):
    """Drawdown ladder and daily-loss kill switch on the current equity; returns the ladder event."""
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
        o = out[k]
        o.t_origin = now
        o.ts = now
        o.client_order_id = cid
        o.instrument = i
        o.side = f_side[j]
        o.kind = ORDER_MARKET
        o.flags = ORDER_F_FLATTEN
        o.qty = f_qty[j]
        o.limit_px = np.nan
        k += 1
    return k


@njit(cache=True, _nrt=False)
def publish_gauges(account, gauges):
    gauges[mx.G_REALIZED_PNL] = account[A_REALISED]
    gauges[mx.G_UNREALIZED_PNL] = account[A_UNREALISED]
    gauges[mx.G_EQUITY] = account[A_EQUITY]
    gauges[mx.G_GROSS_EXPOSURE] = account[A_GROSS]


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
    ]


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
    """

    OO_CAPACITY = 4096

    def __init__(self, universe, risk_cfg, control: np.ndarray, shared=None, metrics: np.ndarray | None = None,
                 session: int = 0):
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
        state = [arrays.book, arrays.sectors, arrays.account, arrays.oo_ids, arrays.oo_vals,
                 dd.state, dd.idx, dd.win_ts, dd.win_eq, ids, seen_seq]
        if shared is not None:
            views, fresh = shared
            if fresh:
                for view, a in zip(views, state):
                    view[...] = a
            state = views
        (self.book, self.sectors, self.account, self.oo_ids, self.oo_vals,
         self.dd_state, self.dd_idx, self.win_ts, self.win_eq, self.ids, self.seen_seq) = state
        self.thresholds = risk_cfg.drawdown.threshold_table()
        self.params = np.zeros(N_PARAMS)
        self.params[P_MIN_NOTIONAL] = risk_cfg.min_order_notional
        self.params[P_MAX_AGE_NS] = getattr(risk_cfg, "max_signal_age_ms", float("inf")) * 1e6
        self.params[P_HYSTERESIS] = risk_cfg.drawdown.recovery_hysteresis
        self.params[P_EMERGENCY_MULT] = risk_cfg.drawdown.emergency_risk_multiplier
        self.tmp = np.zeros(2)
        self.denials = np.zeros(256, DENIAL_DTYPE)
        self.den_n = np.zeros(1, np.int64)
        n = len(universe)
        self.f_inst = np.zeros(n, np.int64)
        self.f_side = np.zeros(n, np.int64)
        self.f_qty = np.zeros(n)
        self.n_sectors = arrays.sectors.shape[0]

        self.m = metrics if metrics is not None else np.zeros(mx.SIZE // 8, np.int64)
        self.state = _new_risk_state(tuple(getattr(self, f) for f in _RISK_FIELDS))

    def scratch_state(self) -> "RiskState":
        """A twin of :attr:`state` over copies of every array (warm-up runs on it)."""
        return _new_risk_state(tuple(np.copy(getattr(self, f)) for f in _RISK_FIELDS))


# -- the stage's state as one object, and its steps over it -----------------------------
@structref.register
class _RiskStateType(StructRefType):
    pass


class RiskState(structref.StructRefProxy):
    """Every array of the risk stage (see :class:`RiskCore`) as one compiled object: the
    steps take it instead of a dozen arrays, and a new input touches this module only."""


_RISK_FIELDS = ["limits", "book", "sectors", "account_limits", "account", "control", "oo_ids", "oo_vals", "params",
                "tmp", "m", "denials", "den_n", "dd_state", "dd_idx", "win_ts", "win_eq", "thresholds", "f_inst",
                "f_side", "f_qty", "ids", "seen_seq"]
structref.define_proxy(RiskState, _RiskStateType, _RISK_FIELDS)


@njit(cache=True)
def _new_risk_state(a):
    """The state over the arrays ``a``, in :data:`_RISK_FIELDS` order (one tuple: a
    constructor with 21 parameters would be unreadable at every call)."""
    return RiskState(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14],
                     a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22])


@njit(cache=True)
def risk_rebuild(st, orders, reports):
    """Crash-only start: the book, cash, realised PnL and fees rebuilt from a journal's
    ``orders`` (approved, as sent) and exec ``reports``.

    Every order is registered first, then every report applied, so a report an older
    journal holds before its order still finds it.  The supervisor has already journaled
    the end of every order the last run left open (its in-process venues ended with it:
    :func:`alphad.daemon.supervisor.recovery.restore_from_journal`).  The daily loss limit
    is re-armed from the rebuilt equity."""
    for j in range(orders.shape[0]):
        o = orders[j]
        on_order_sent(o.client_order_id, o.instrument, o.side, o.qty, st.oo_ids, st.oo_vals, st.limits, st.book,
                      st.sectors, st.account)
    for j in range(reports.shape[0]):
        pf_on_exec(reports, j, st.oo_ids, st.oo_vals, st.limits, st.book, st.sectors, st.account)
    start_session(st.account)


@njit(cache=True)
def risk_resume(st, now):
    """``ctl resume``: back to ACTIVE, the daily loss limit re-armed from current equity."""
    resume(st.control, st.account, now)

