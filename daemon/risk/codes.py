"""Risk library constants: reason codes, trading states and the layout of the risk arrays.

This module is the contract between the pure risk cores (``risk_checks``, ``sizing``,
``drawdown``, ``portfolio``, ``rebalancer``) and the risk stage that owns their arrays.
Everything here is a plain ``int`` so that ``@njit`` code freezes it as a compile-time
constant.

Arrays (all preallocated by :func:`alphad.daemon.risk.config.build_risk_arrays`)
--------------------------------------------------------------------------------
``limits``   float64 ``(n_instruments, N_LIMIT_COLS)``: per-instrument configuration (``L_*``).
``book``     float64 ``(n_instruments, N_BOOK_COLS)``: per-instrument state (``B_*``).
``sectors``  float64 ``(n_sectors, N_SECTOR_COLS)``: sector limits (config) and exposure (state).
``account_limits`` float64 ``(N_ACCOUNT_LIMITS,)``: account-wide configuration (``G_*``).
``account``  float64 ``(N_ACCOUNT_COLS,)``: account state (``A_*``).
``control``  int64 ``(N_CONTROL_COLS,)``: the trading state word, kill switch latch and
             throttle clock (``C_*``).  This is the only array the kill switch and halt state
             live in; it holds no Python objects so it can be a view on shared memory and survive
             a restart of the risk stage.

The ``control`` columns ``C_*``, ``REASON_OPERATOR`` and the trading states are part of the
shared control block's layout: they live in :mod:`alphad.ipc.control` alone (one name, one
home), and the risk library imports them from there.
"""
from __future__ import annotations

# -- gate reason codes (returned by check_order) ------------------------------------------------
#: The order passed every check.
OK = 0
#: Trading state is HALTED: every new order is denied.
DENY_HALTED = 1
#: Trading state is REDUCING and the order would grow ``|position|``.
DENY_REDUCING = 2
#: The daily loss limit is breached: the kill switch latched HALTED.
DENY_DAILY_LOSS = 3
#: Instrument id outside the universe or not configured.
DENY_UNKNOWN_INSTRUMENT = 4
#: Instrument configured but not tradable (e.g. an index or a suspended name).
DENY_NOT_TRADABLE = 5
#: Outside the instrument's trading session.
DENY_TRADING_HOURS = 6
#: Quantity not a positive finite number, or side not +1/-1.
DENY_BAD_QUANTITY = 7
#: Quantity not a multiple of the lot size.
DENY_LOT_SIZE = 8
#: Limit price not positive, or not on the tick grid.
DENY_TICK_SIZE = 9
#: Market order and no last trade price to value it at.
DENY_NO_REFERENCE_PRICE = 10
#: Quantity above the per-order maximum.
DENY_MAX_ORDER_QTY = 11
#: Notional above the per-order maximum.
DENY_MAX_ORDER_NOTIONAL = 12
#: Limit price outside the band around the last trade.
DENY_PRICE_BAND = 13
#: The order would open or grow a short position where short sales are not permitted.
DENY_SHORT_SALE = 14
#: Post-trade position above the per-instrument share limit.
DENY_POSITION_SHARES = 15
#: Post-trade position above the per-instrument weight limit (fraction of equity).
DENY_POSITION_WEIGHT = 16
#: Post-trade sector gross exposure above the sector limit (fraction of equity).
DENY_SECTOR_EXPOSURE = 17
#: Post-trade gross exposure above the cap (currency).
DENY_GROSS_EXPOSURE = 18
#: Post-trade net exposure above the cap (currency).
DENY_NET_EXPOSURE = 19
#: Post-trade leverage (gross / equity) above the cap, or equity not positive.
DENY_LEVERAGE = 20
#: Order-rate throttle: the token bucket is empty.
DENY_THROTTLE = 21
#: Not a denial: the target is already met (order quantity rounds to zero lots); nothing to send.
NO_ORDER = 22
#: The signal is older than ``risk.max_signal_age_ms`` (a stage was frozen or far behind): a
#: decision on a stale quote is never acted on.
DENY_STALE_SIGNAL = 23
#: Not sent: the benefit/cost filter (``risk.sizing.cost_multiple``): the expected edge is below
#: the cost multiple of the trade's estimated cost (half spread, fees, impact).
DENY_COST_FILTERED = 24
#: Not sent: the sizing had no valid input (prediction or scale not finite): the position stays.
DENY_SIZING_INPUT = 25
#: The live feed reports its market data down (an IB data farm broken, its link lost) and the
#: instrument has had no data for ``risk.max_data_age_ms``: no new order until the feed is
#: healthy again (IB's 2104, 1101, 1102).
DENY_STALE_DATA = 26
#: The operator halted this instrument (``ctl halt --symbol``): no new order on it until
#: ``ctl resume --symbol``; ``flatten`` still closes its position.
DENY_INSTRUMENT_HALTED = 27

#: Name of every gate code, for journals and ``/metrics`` labels (indexed by code).
REASON_NAMES = (
    "ok",
    "halted",
    "reducing",
    "daily_loss",
    "unknown_instrument",
    "not_tradable",
    "trading_hours",
    "bad_quantity",
    "lot_size",
    "tick_size",
    "no_reference_price",
    "max_order_qty",
    "max_order_notional",
    "price_band",
    "short_sale",
    "position_shares",
    "position_weight",
    "sector_exposure",
    "gross_exposure",
    "net_exposure",
    "leverage",
    "throttle",
    "no_order",
    "stale_signal",
    "cost_filtered",
    "sizing_input",
    "stale_data",
    "instrument_halted",
)
#: Number of gate codes (size of a per-reason counter array).
N_REASONS = len(REASON_NAMES)

# -- warning bits (control[C_WARNINGS], rewritten by every check_order call) ---------------------
#: Post-trade sector exposure above the warning level (20% by default) but within the limit.
WARN_SECTOR = 1

# -- sizing codes: kernels/sizing.py (signal.code), one name, one home -----------------------------
from alphad.kernels.sizing import SIZE_BAD_INPUT, SIZE_COST_FILTERED, SIZE_NAMES, SIZE_OK, SIZE_VIX_KILL  # noqa: E402,F401

# -- drawdown ladder levels ----------------------------------------------------------------------
DD_NORMAL = 0
#: 3% by default: alert only.
DD_WARNING = 1
#: 5% by default: trading state REDUCING.
DD_CRITICAL = 2
#: 8% by default: risk multiplier cut to 0.5.
DD_EMERGENCY = 3
#: 10% by default: trading state HALTED and a flatten request.
DD_KILL = 4
DD_LEVEL_NAMES = ("normal", "warning", "critical", "emergency", "kill")

# Drawdown measures (rows of the threshold table, entries of the drawdown vector).
#: Peak-to-trough since inception (or the last ladder reset).
DD_PEAK = 0
#: From the highest equity since the session open.
DD_INTRADAY = 1
#: From the highest equity in the trailing hour.
DD_ROLLING_1H = 2
#: From the highest equity in the trailing four hours.
DD_ROLLING_4H = 3
N_DD_MEASURES = 4
DD_MEASURE_NAMES = ("peak", "intraday", "rolling_1h", "rolling_4h")

# Drawdown events (returned by drawdown.update_drawdown).  An escalation to level L is
# ``DD_EVENT_ESCALATE + L``; a recovery down to level L is ``DD_EVENT_RECOVER + L``.
#: No transition.
DD_EVENT_NONE = 0
DD_EVENT_ESCALATE = 100
DD_EVENT_RECOVER = 200

# -- limits columns (per instrument, float64) ----------------------------------------------------
#: 1.0 when the instrument is configured, 0.0 for an unused slot.
L_KNOWN = 0
#: 1.0 when orders may be sent.
L_TRADABLE = 1
#: Sector index (row of ``sectors``), -1 when the instrument has no sector (ETF, index).
L_SECTOR = 2
#: Price increment, quote currency.
L_TICK = 3
#: Quantity increment, shares.
L_LOT = 4
#: Per-order maximum quantity, shares.
L_MAX_ORDER_QTY = 5
#: Per-order maximum notional, quote currency.
L_MAX_ORDER_NOTIONAL = 6
#: Price band around the last trade, fraction (0.05 = +/-5%).
L_PRICE_BAND = 7
#: Maximum ``|position|`` in shares.
L_MAX_POS_SHARES = 8
#: Maximum ``|position value| / equity``.
L_MAX_POS_WEIGHT = 9
#: 1.0 when short sales are permitted (borrow located).
L_SHORTABLE = 10
#: Current session open, seconds since the Unix epoch (UTC); set by the stage each day.
L_SESSION_OPEN_S = 11
#: Current session close (exclusive), seconds since the Unix epoch (UTC).
L_SESSION_CLOSE_S = 12
N_LIMIT_COLS = 13

# -- book columns (per instrument, float64 state) ------------------------------------------------
#: Signed position, shares.
B_POSITION = 0
#: Average entry price of the open position, quote currency (0 when flat).
B_AVG_PX = 1
#: Last trade price, quote currency (NaN until the first trade); reference for bands and marks.
B_LAST_PX = 2
#: Open (working) buy quantity, shares.
B_OPEN_BUY = 3
#: Open (working) sell quantity, shares.
B_OPEN_SELL = 4
#: Realised PnL, quote currency, before fees.
B_REALISED = 5
#: Fees paid, quote currency.
B_FEES = 6
#: Committed exposure: ``max(|pos + open_buy|, |pos - open_sell|) * last_px`` (worst case if
#: every working order fills), quote currency; summed into sector and gross exposure.
B_EXPOSURE = 7
#: Committed net: ``(pos + open_buy - open_sell) * last_px``, quote currency.
B_NET = 8
N_BOOK_COLS = 9

# -- data_ns columns (int64, one row per instrument; the risk_state segment's last array) --------
#: The latest md record's ``t_origin`` (the steps' clock).
DATA_LAST_NS = 0
#: When the instrument's data became stale (``risk_data_watch``); 0 while fresh.
DATA_STALE_SINCE = 1

# -- sector columns -------------------------------------------------------------------------------
#: Limit, fraction of equity (config).
SEC_LIMIT = 0
#: Warning level, fraction of equity (config).
SEC_WARN = 1
#: Committed gross exposure of the sector, quote currency (state).
SEC_EXPOSURE = 2
N_SECTOR_COLS = 3

# -- account limits (float64 config) -------------------------------------------------------------
#: Maximum committed gross exposure, quote currency.
G_MAX_GROSS = 0
#: Maximum ``|committed net exposure|``, quote currency.
G_MAX_NET = 1
#: Maximum gross / equity.
G_MAX_LEVERAGE = 2
#: Daily loss limit, fraction of the loss reference equity (start of day).
G_DAILY_LOSS = 3
#: Order-rate throttle refill rate, orders per second.
G_THROTTLE_RATE = 4
#: Order-rate throttle bucket size, orders.
G_THROTTLE_BURST = 5
#: 1.0 when the account may sell short at all (instrument permission is also needed).
G_ALLOW_SHORT = 6
N_ACCOUNT_LIMITS = 7

# -- account columns (float64 state) -------------------------------------------------------------
#: Cash, quote currency.
A_CASH = 0
#: Equity = cash + sum(position x last price), quote currency.
A_EQUITY = 1
#: Highest equity seen, quote currency.
A_PEAK_EQUITY = 2
#: Equity at the session open, quote currency.
A_DAY_START_EQUITY = 3
#: Reference for the daily loss limit (day start, or the equity at the last ``resume``).
A_LOSS_REF = 4
#: Committed gross exposure, quote currency (sum of ``B_EXPOSURE``).
A_GROSS = 5
#: Committed net exposure, quote currency (sum of ``B_NET``).
A_NET = 6
#: Throttle tokens left, orders.
A_TOKENS = 7
#: Risk multiplier applied by sizing (1.0 normally, 0.5 from the EMERGENCY drawdown step).
A_RISK_MULT = 8
#: Realised PnL, quote currency, before fees.
A_REALISED = 9
#: Unrealised PnL at the last marks, quote currency.
A_UNREALISED = 10
#: Fees paid, quote currency.
A_FEES = 11
N_ACCOUNT_COLS = 12


def reason_name(code: int) -> str:
    """Name of a gate reason code.

    Parameters
    ----------
    code : int
        A code returned by ``check_order``.

    Returns
    -------
    str
        The name (``"ok"``, ``"halted"``, ...).

    Raises
    ------
    ValueError
        If ``code`` is not a gate code.
    """
    if not 0 <= code < N_REASONS:
        raise ValueError(f"gate reason code expected in 0..{N_REASONS - 1}, was {code}")
    return REASON_NAMES[code]
