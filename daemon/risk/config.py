"""Risk configuration: frozen msgspec Structs with documented defaults, and the arrays built from them.

Decoded once (unknown keys rejected, errors name the path); :func:`build_risk_arrays` turns a
:class:`RiskConfig` plus the universe into the plain arrays the ``@njit`` cores take, so hot code
never touches a Struct or a dict.  The daemon config mounts :class:`Risk` (a :class:`RiskConfig` plus the
account's start) under ``risk:``.

Example
-------
>>> cfg = msgspec.convert({"account": {"max_leverage": 1.5}}, type=RiskConfig)
>>> arrays = build_risk_arrays(cfg, [("AAPL", "Information Technology", 0.01, 1.0)], equity=1e6)
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
from msgspec import Meta

from alphad.daemon.config_base import Base, Fraction, NonNegFloat, PositiveFloat, PositiveFraction
from alphad.daemon.risk.portfolio import new_open_order_table
from alphad.daemon.risk.codes import (
    A_CASH,
    A_DAY_START_EQUITY,
    A_EQUITY,
    A_LOSS_REF,
    A_PEAK_EQUITY,
    A_RISK_MULT,
    A_TOKENS,
    B_LAST_PX,
    G_ALLOW_SHORT,
    G_DAILY_LOSS,
    G_MAX_GROSS,
    G_MAX_LEVERAGE,
    G_MAX_NET,
    G_THROTTLE_BURST,
    G_THROTTLE_RATE,
    L_KNOWN,
    L_LOT,
    L_MAX_ORDER_NOTIONAL,
    L_MAX_ORDER_QTY,
    L_MAX_POS_SHARES,
    L_MAX_POS_WEIGHT,
    L_PRICE_BAND,
    L_SECTOR,
    L_SESSION_CLOSE_S,
    L_SESSION_OPEN_S,
    L_SHORTABLE,
    L_TICK,
    L_TRADABLE,
    N_ACCOUNT_COLS,
    N_ACCOUNT_LIMITS,
    N_BOOK_COLS,
    N_DD_MEASURES,
    N_LIMIT_COLS,
    N_SECTOR_COLS,
    SEC_LIMIT,
    SEC_WARN,
)
from alphad.ipc.control import C_THROTTLE_NS, N_CONTROL_COLS

#: ``HH:MM``, 24-hour clock.
ClockTime = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class InstrumentLimits(Base):
    """Per-instrument gate limits (defaults apply to every instrument without an override).

    Attributes
    ----------
    tradable : bool
        Orders may be sent (default True).
    max_order_qty : float
        Per-order maximum, shares (default 10,000).
    max_order_notional : float
        Per-order maximum, quote currency (default 250,000).
    price_band : float
        Limit price band around the last trade, fraction (default 0.05 = +/-5%).
    max_position_shares : float
        Maximum ``|position|``, shares (default 50,000).
    max_position_weight : float
        Maximum ``|position value| / equity`` (default 0.03: sizing caps at 2%, the gate leaves
        room for price drift between decisions).
    shortable : bool
        Short sales permitted (borrow located) (default True).
    calendar : str
        The instrument's exchange calendar (``exchange_calendars`` name: XNYS, XLON, CMES ...,
        or "24/7"); its sessions (holidays and early closes included) are the trading hours;
        "" (default): ``risk.sessions.calendar``.
    """

    tradable: bool = True
    max_order_qty: PositiveFloat = 10_000.0
    max_order_notional: PositiveFloat = 250_000.0
    price_band: PositiveFloat = 0.05
    max_position_shares: PositiveFloat = 50_000.0
    max_position_weight: PositiveFraction = 0.03
    shortable: bool = True
    calendar: str = ""


class AccountLimits(Base):
    """Account-wide gate limits.

    Attributes
    ----------
    max_gross_notional : float
        Committed gross exposure cap, quote currency (default 5,000,000).
    max_net_notional : float
        ``|committed net exposure|`` cap, quote currency (default 2,000,000).
    max_leverage : float
        Gross / equity cap (default 2.0).
    daily_loss_limit : float
        Loss from the day-start equity, fraction, that trips the kill switch (default 0.02).
    throttle_rate : float
        Sustained orders per second (default 50).
    throttle_burst : float
        Token bucket size, orders (default 20).
    allow_short : bool
        Account may sell short at all (default True).
    sector_limit : float
        Sector gross exposure cap, fraction of equity (default 0.25).
    sector_warning : float
        Sector exposure warning level, fraction of equity (default 0.20).
    sector_limits : dict[str, float]
        Per-sector overrides of ``sector_limit`` keyed by GICS sector name.
    """

    max_gross_notional: PositiveFloat = 5_000_000.0
    max_net_notional: PositiveFloat = 2_000_000.0
    max_leverage: PositiveFloat = 2.0
    daily_loss_limit: PositiveFraction = 0.02
    throttle_rate: PositiveFloat = 50.0
    throttle_burst: Annotated[float, Meta(ge=1)] = 20.0
    allow_short: bool = True
    sector_limit: PositiveFraction = 0.25
    sector_warning: PositiveFraction = 0.20
    sector_limits: dict[str, PositiveFraction] = {}

    def __post_init__(self) -> None:
        if self.sector_warning > self.sector_limit:
            raise ValueError(f"sector_warning expected <= sector_limit ({self.sector_limit}), "
                             f"was {self.sector_warning}")


class SizingConfig(Base):
    """Prediction-to-weight sizing (see :mod:`alphad.kernels.sizing`).

    Attributes
    ----------
    regime_multipliers : tuple[float, ...]
        Multiplier for the bull, bear and sideways HMM states (default 1.0, 0.3, 0.6).
    vix_breaks : tuple[float, ...]
        Ascending VIX levels separating the multiplier bands (default 20, 25, 30, 35).
    vix_multipliers : tuple[float, ...]
        One more entry than ``vix_breaks`` (default 1.0, 0.8, 0.6, 0.4, 0.25).
    vix_kill : float
        VIX at or above which every target is flat (default 45).
    target_annual_vol : float
        Volatility target, annualised fraction (default 0.15).
    periods_per_year : float
        Periods per year of the variance forecast (default 252: daily GARCH).
    max_vol_multiplier : float
        Cap on the vol-targeting multiplier (default 2.0).
    kelly_fraction : float
        Fraction of full Kelly (default 0.25).
    fixed_fraction : float
        A fixed fraction of equity, at most 1, in place of the Kelly multiplier (the model
        card's win rate and payoff are then unused); conviction, regime, VIX, vol target,
        drawdown ladder, cap and cost filter apply as before.  0 (default): fractional Kelly.
    max_position_weight : float
        Cap per position, fraction of equity (default 0.02).
    cost_multiple : float
        Minimum expected edge / estimated cost (default 2.0).
    fee_rate : float
        Fees, fraction of notional (default 0.0001 = 1 bp).
    impact_coefficient : float
        Square-root impact coefficient: impact = coef x daily vol x sqrt(notional / ADV)
        (default 0.1).
    bar_half_spread_bps : float
        Half spread the cost filter assumes where the row has no quote (bars), bps (default 2,
        the paper venue's ``bar_half_spread_bps``).
    """

    regime_multipliers: tuple[NonNegFloat, ...] = (1.0, 0.3, 0.6)
    vix_breaks: tuple[PositiveFloat, ...] = (20.0, 25.0, 30.0, 35.0)
    vix_multipliers: tuple[NonNegFloat, ...] = (1.0, 0.8, 0.6, 0.4, 0.25)
    vix_kill: PositiveFloat = 45.0
    target_annual_vol: PositiveFloat = 0.15
    periods_per_year: PositiveFloat = 252.0
    max_vol_multiplier: PositiveFloat = 2.0
    kelly_fraction: PositiveFraction = 0.25
    fixed_fraction: Fraction = 0.0
    max_position_weight: PositiveFraction = 0.02
    cost_multiple: NonNegFloat = 2.0
    fee_rate: NonNegFloat = 0.0001
    impact_coefficient: NonNegFloat = 0.1
    bar_half_spread_bps: NonNegFloat = 2.0

    def __post_init__(self) -> None:
        if len(self.regime_multipliers) != 3:
            raise ValueError(f"regime_multipliers expected 3 entries (bull, bear, sideways), "
                             f"was {len(self.regime_multipliers)}")
        if len(self.vix_multipliers) != len(self.vix_breaks) + 1:
            raise ValueError(f"vix_multipliers expected {len(self.vix_breaks) + 1} entries "
                             f"(one more than vix_breaks), was {len(self.vix_multipliers)}")
        if any(b <= a for a, b in zip(self.vix_breaks, self.vix_breaks[1:])):
            raise ValueError(f"vix_breaks expected strictly ascending, was {self.vix_breaks}")


class DrawdownConfig(Base):
    """Drawdown ladder (see :mod:`alphad.daemon.risk.drawdown`).

    Attributes
    ----------
    warning, critical, emergency, kill : float
        Drawdown fractions of the four steps (default 0.03, 0.05, 0.08, 0.10); every measure
        (peak-to-trough, intraday, rolling 1 h, rolling 4 h) uses them unless overridden.
    intraday, rolling_1h, rolling_4h : tuple[float, ...] | None
        Per-measure overrides, four ascending fractions.
    recovery_hysteresis : float
        A step is left only when the drawdown is below ``threshold x (1 - hysteresis)``
        (default 0.2), so a path hovering at a threshold does not flap.
    emergency_risk_multiplier : float
        Risk multiplier at EMERGENCY and above (default 0.5).
    webhook_url : str
        Alert endpoint; empty disables alerts (default "").
    alert_cooldown_s : float
        Minimum seconds between two alerts of the same kind (default 300).
    window_capacity : int
        Equity samples kept for the rolling 4 h window (default 16,384: one a second is 4.5 h).
    """

    warning: PositiveFraction = 0.03
    critical: PositiveFraction = 0.05
    emergency: PositiveFraction = 0.08
    kill: PositiveFraction = 0.10
    intraday: tuple[PositiveFraction, ...] | None = None
    rolling_1h: tuple[PositiveFraction, ...] | None = None
    rolling_4h: tuple[PositiveFraction, ...] | None = None
    recovery_hysteresis: Annotated[float, Meta(ge=0, lt=1)] = 0.2
    emergency_risk_multiplier: PositiveFraction = 0.5
    webhook_url: str = ""
    alert_cooldown_s: NonNegFloat = 300.0
    window_capacity: Annotated[int, Meta(ge=16)] = 16_384

    def __post_init__(self) -> None:
        for name, row in self._rows():
            if len(row) != 4 or any(b <= a for a, b in zip(row, row[1:])):
                raise ValueError(f"drawdown {name} thresholds expected 4 strictly ascending "
                                 f"fractions, was {list(row)}")

    def _rows(self):
        base = [self.warning, self.critical, self.emergency, self.kill]
        return [("peak", base), ("intraday", self.intraday or base),
                ("rolling_1h", self.rolling_1h or base), ("rolling_4h", self.rolling_4h or base)]

    def threshold_table(self) -> np.ndarray:
        """Thresholds as float64 ``(4 measures, 4 steps)`` for :func:`drawdown.update_drawdown`."""
        t = np.array([row for _, row in self._rows()], np.float64)
        assert t.shape == (N_DD_MEASURES, 4)
        return t


class RebalancerConfig(Base):
    """Sector rebalancer (see :mod:`alphad.daemon.risk.rebalancer`).

    Attributes
    ----------
    method : "largest_first" | "pro_rata"
        How the excess is spread over the sector's positions (default largest_first).
    target_buffer : float
        Trim to ``limit - target_buffer`` so the sector does not re-breach on the next tick
        (default 0.01 of equity).
    min_trim_value : float
        Trims smaller than this, quote currency, are not sent (default 1,000).
    daily_turnover_cap : float
        Total trimmed value per day, fraction of equity (default 0.10).
    cooldown_s : float
        Seconds before the same sector may be trimmed again (default 900).
    """

    method: Literal["largest_first", "pro_rata"] = "largest_first"
    target_buffer: NonNegFloat = 0.01
    min_trim_value: NonNegFloat = 1_000.0
    daily_turnover_cap: PositiveFraction = 0.10
    cooldown_s: NonNegFloat = 900.0


class SessionsConfig(Base):
    """Trading days and hours (see :mod:`alphad.daemon.risk.sessions`).

    Attributes
    ----------
    calendar : str
        The account's exchange calendar (``exchange_calendars``; default "24/7": UTC days):
        at each of its session opens the day rolls: the daily loss limit and the intraday
        drawdown restart from the equity then, and the rebalancer's daily turnover from 0.
        It is also the calendar of every instrument that names none.
    outside_hours : "deny" | "queue"
        ``deny`` (default): an order outside its instrument's session is denied
        (``trading_hours``).  ``queue``: it is sent and works at the venue from the next open
        (a daily strategy decides at the close and trades the next open).
    """

    calendar: str = "24/7"
    outside_hours: Literal["deny", "queue"] = "deny"


class RiskConfig(Base):
    """The ``risk:`` section of the daemon config.

    Attributes
    ----------
    instrument_defaults : InstrumentLimits
        Limits for every instrument.
    instruments : dict[str, InstrumentLimits]
        Full per-symbol replacements of ``instrument_defaults``.
    account, drawdown, sessions
        See the Struct of each.
    sizing : SizingConfig | None
        Present: every signal is sized in full (conviction x fractional Kelly x regime x VIX x
        volatility target in infer, x the drawdown ladder's risk multiplier, the cap and the
        benefit/cost filter in risk).  Absent: the model section's linear weight
        (``model.weight_per_unit``, ``weight_cap``).
    rebalancer : RebalancerConfig | None
        Present: the risk stage trims a sector above its limit through the gate.  Absent: no
        trims (the gate still denies orders that would breach a limit).
    """

    instrument_defaults: InstrumentLimits = InstrumentLimits()
    instruments: dict[str, InstrumentLimits] = {}
    account: AccountLimits = AccountLimits()
    sizing: SizingConfig | None = None
    drawdown: DrawdownConfig = DrawdownConfig()
    rebalancer: RebalancerConfig | None = None
    sessions: SessionsConfig = SessionsConfig()


class Risk(RiskConfig):
    """The ``risk:`` section as the daemon config mounts it: every limit of the pre-trade gate,
    sizing and drawdown ladder (:class:`RiskConfig`), plus the account's start."""

    initial_equity: PositiveFloat = 1_000_000.0
    #: Orders smaller than this notional are not worth sending (a threshold, not a denial).
    min_order_notional: NonNegFloat = 0.0
    #: A signal older than this when the gate sees it (``now - t_origin``: a frozen or
    #: restarted stage, a ring far behind) is denied as ``stale_signal``, never acted on.
    max_signal_age_ms: PositiveFloat = 2000.0
    #: While the live feed reports its market data down (an IB data farm broken, its link
    #: lost), an instrument with no data for this long gets no new order (``stale_data``)
    #: until the feed reports it healthy again (IB's 2104, 1101, 1102).  A quiet instrument on
    #: a healthy feed is never stopped.
    max_data_age_ms: PositiveFloat = 5000.0


def decode_risk_config(data: bytes | str, fmt: Literal["json", "yaml"] = "json") -> RiskConfig:
    """Decode a ``risk:`` section; a bad value raises ``ValueError`` naming its path."""
    try:
        if fmt == "json":
            return msgspec.json.decode(data, type=RiskConfig)
        return msgspec.yaml.decode(data, type=RiskConfig)
    except msgspec.ValidationError as e:
        raise ValueError(f"invalid risk config: {e}") from None


@dataclass
class RiskArrays:
    """The preallocated arrays of the risk cores (layouts in :mod:`alphad.daemon.risk.codes`).

    ``control`` is the only holder of the trading state and the kill-switch latch; the stage
    may allocate it in shared memory and pass it as ``control=`` to :func:`build_risk_arrays`.
    """

    limits: np.ndarray
    book: np.ndarray
    sectors: np.ndarray
    account_limits: np.ndarray
    account: np.ndarray
    control: np.ndarray
    oo_ids: np.ndarray
    oo_vals: np.ndarray
    symbols: list[str]
    sector_names: list[str]

    def gate_args(self) -> tuple:
        """``(limits, book, sectors, account_limits, account, control)`` for ``check_order``."""
        return (self.limits, self.book, self.sectors, self.account_limits, self.account,
                self.control)


def _parse_universe(universe) -> list[tuple[str, str, float, float]]:
    rows = []
    seen = set()
    for k, row in enumerate(universe):
        if len(row) != 4:
            raise ValueError(f"universe row {k} expected (symbol, sector, tick_size, lot_size), "
                             f"was {row!r}")
        sym, sector, tick, lot = row
        if not isinstance(sym, str) or not sym:
            raise ValueError(f"universe row {k} symbol expected a non-empty str, was {sym!r}")
        if sym in seen:
            raise ValueError(f"universe row {k} symbol expected unique, was a repeat of {sym!r}")
        seen.add(sym)
        tick = float(tick)
        lot = float(lot)
        if not (tick > 0 and math.isfinite(tick)):
            raise ValueError(f"universe {sym} tick_size expected > 0, was {tick}")
        if not (lot > 0 and math.isfinite(lot)):
            raise ValueError(f"universe {sym} lot_size expected > 0, was {lot}")
        rows.append((sym, sector or "", tick, lot))
    if not rows:
        raise ValueError("universe expected at least one instrument, was empty")
    return rows


def calendar_of(cfg: RiskConfig, symbol: str) -> str:
    """The exchange calendar of ``symbol``: its own, else ``risk.sessions.calendar``."""
    lim = cfg.instruments.get(symbol, cfg.instrument_defaults)
    return lim.calendar or cfg.sessions.calendar


def session_bounds(cfg: RiskConfig, symbol: str, date: _dt.date) -> tuple[float, float]:
    """The session of ``symbol``'s calendar on ``date`` as epoch seconds (open, close);
    ``(inf, inf)`` on a day without one (a holiday, a weekend)."""
    from alphad.daemon.risk.sessions import build_session_table

    day = int(_dt.datetime.combine(date, _dt.time(12), _dt.timezone.utc).timestamp()) * 10**9
    t = build_session_table([calendar_of(cfg, symbol)], day - 86_400 * 10**9, day + 86_400 * 10**9)
    for s in range(int(t.counts[0])):
        o, c = int(t.opens[0, s]), int(t.closes[0, s])
        if _dt.datetime.fromtimestamp(o / 1e9, ZoneInfo("UTC")).date() == date or o <= day < c:
            return o / 1e9, c / 1e9
    return math.inf, math.inf


def set_sessions(arrays: RiskArrays, cfg: RiskConfig, date: _dt.date) -> None:
    """Write every instrument's session of ``date`` (its calendar's) into ``limits``."""
    for i, sym in enumerate(arrays.symbols):
        arrays.limits[i, L_SESSION_OPEN_S], arrays.limits[i, L_SESSION_CLOSE_S] = session_bounds(cfg, sym, date)


def build_risk_arrays(cfg: RiskConfig, universe, *, equity: float,
                      session_date: _dt.date | None = None, control: np.ndarray | None = None,
                      open_order_capacity: int = 4096) -> RiskArrays:
    """Build the arrays the risk cores take from the config and the universe.

    Parameters
    ----------
    cfg : RiskConfig
        Decoded ``risk:`` section.
    universe : iterable of (symbol, sector, tick_size, lot_size)
        Row ``i`` is instrument id ``i``; ``sector`` is the GICS sector name or "" for none.
    equity : float
        Starting cash = equity, quote currency.
    session_date : date, optional
        Session whose trading hours are written; without it every session is open
        (-inf, +inf) until :func:`set_sessions` is called.
    control : int64 array, optional
        An existing control block (e.g. a shared-memory view) to use; its contents are kept, so a
        restarted stage inherits HALTED.  A new one is allocated when omitted.

    Raises
    ------
    ValueError
        Bad universe row, an override for a symbol not in the universe, or a bad control block.
    """
    rows = _parse_universe(universe)
    symbols = [r[0] for r in rows]
    unknown = sorted(set(cfg.instruments) - set(symbols))
    if unknown:
        raise ValueError(f"risk.instruments overrides expected symbols of the universe, was {unknown}")
    sector_names = sorted({r[1] for r in rows if r[1]})
    unknown = sorted(set(cfg.account.sector_limits) - set(sector_names))
    if unknown:
        raise ValueError(f"risk.account.sector_limits expected sectors of the universe "
                         f"{sector_names}, was {unknown}")
    if not (equity > 0 and math.isfinite(equity)):
        raise ValueError(f"equity expected > 0, was {equity}")
    n = len(rows)
    limits = np.zeros((n, N_LIMIT_COLS), np.float64)
    for i, (sym, sector, tick, lot) in enumerate(rows):
        lim = cfg.instruments.get(sym, cfg.instrument_defaults)
        limits[i, L_KNOWN] = 1.0
        limits[i, L_TRADABLE] = 1.0 if lim.tradable else 0.0
        limits[i, L_SECTOR] = sector_names.index(sector) if sector else -1
        limits[i, L_TICK] = tick
        limits[i, L_LOT] = lot
        limits[i, L_MAX_ORDER_QTY] = lim.max_order_qty
        limits[i, L_MAX_ORDER_NOTIONAL] = lim.max_order_notional
        limits[i, L_PRICE_BAND] = lim.price_band
        limits[i, L_MAX_POS_SHARES] = lim.max_position_shares
        limits[i, L_MAX_POS_WEIGHT] = lim.max_position_weight
        limits[i, L_SHORTABLE] = 1.0 if lim.shortable else 0.0
        if session_date is None:
            limits[i, L_SESSION_OPEN_S] = -np.inf
            limits[i, L_SESSION_CLOSE_S] = np.inf
        else:
            limits[i, L_SESSION_OPEN_S], limits[i, L_SESSION_CLOSE_S] = session_bounds(cfg, sym, session_date)
    sectors = np.zeros((max(1, len(sector_names)), N_SECTOR_COLS), np.float64)
    for s, name in enumerate(sector_names):
        sectors[s, SEC_LIMIT] = cfg.account.sector_limits.get(name, cfg.account.sector_limit)
        sectors[s, SEC_WARN] = min(cfg.account.sector_warning, sectors[s, SEC_LIMIT])
    a = cfg.account
    account_limits = np.zeros(N_ACCOUNT_LIMITS, np.float64)
    account_limits[G_MAX_GROSS] = a.max_gross_notional
    account_limits[G_MAX_NET] = a.max_net_notional
    account_limits[G_MAX_LEVERAGE] = a.max_leverage
    account_limits[G_DAILY_LOSS] = a.daily_loss_limit
    account_limits[G_THROTTLE_RATE] = a.throttle_rate
    account_limits[G_THROTTLE_BURST] = a.throttle_burst
    account_limits[G_ALLOW_SHORT] = 1.0 if a.allow_short else 0.0
    book = np.zeros((n, N_BOOK_COLS), np.float64)
    book[:, B_LAST_PX] = np.nan
    account = np.zeros(N_ACCOUNT_COLS, np.float64)
    for col in (A_CASH, A_EQUITY, A_PEAK_EQUITY, A_DAY_START_EQUITY, A_LOSS_REF):
        account[col] = equity
    account[A_TOKENS] = a.throttle_burst
    account[A_RISK_MULT] = 1.0
    if control is None:
        control = np.zeros(N_CONTROL_COLS, np.int64)
        control[C_THROTTLE_NS] = -1
    elif control.dtype != np.int64 or control.shape != (N_CONTROL_COLS,):
        raise ValueError(f"control block expected int64 ({N_CONTROL_COLS},), "
                         f"was {control.dtype} {control.shape}")
    oo_ids, oo_vals = new_open_order_table(open_order_capacity)
    return RiskArrays(limits, book, sectors, account_limits, account, control, oo_ids, oo_vals,
                      symbols, sector_names)
