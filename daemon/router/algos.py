"""Execution algorithms: immediate, TWAP, VWAP and POV parents that emit child orders.

An algorithm owns one *parent* order and decides, at each :meth:`ExecAlgo.step`
(a timer, e.g. every 100 ms, with the current best bid/ask and the market
volume seen so far), which child orders to send, cancel or replace.  It hears
back through :meth:`ExecAlgo.on_exec` with the venue's exec reports.  It never
reads a clock and never talks to a venue: its driver does that (in the daemon the
router stage's :class:`~alphad.daemon.router.parents.ParentBook`), so the same
algorithm runs in a backtest, in paper trading and live.

Quantities are counted in integer **lots** inside the algorithm, so the
children can sum *exactly* to the parent: a child is only ever sized from the
deficit ``target - filled - open`` (all integers), a replace never grows a
child, and the parent ends in one of three states:

* ``COMPLETED``: filled == quantity;
* ``EXPIRED``: the end time passed; open children are cancelled and
  ``remainder_lots`` (quantity - filled) is reported;
* ``CANCELED``: :meth:`ExecAlgo.cancel` was called; same remainder rule.

Pricing and urgency
-------------------
A child is a limit order priced between the near touch and the far touch:
``urgency`` 0 joins the near touch (passive), 1 sits at the far touch
(marketable).  When the parent falls behind its schedule by more than
``catch_up`` of its quantity, or in the last ``finish_ns`` before the end, the
child crosses the spread (``urgency`` = 1).
A child that has been working for ``replace_after_ns`` while the price the
algorithm wants has moved away is replaced at the new price (the
cancel/replace loop); the replacement keeps only the child's open quantity.
:class:`Immediate` sends one marketable limit (or a market order when no
limit is given and urgency is 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple, Sequence

import numpy as np

from alphad.daemon.router.order_fsm import REASON_CXL_REPLACED, child_order_id
from alphad.ipc.dtypes import (
    EXEC_ACK,
    EXEC_CANCELED,
    EXEC_FILL,
    EXEC_PARTIAL,
    EXEC_REJECT,
    ORDER_LIMIT,
    ORDER_MARKET,
)

__all__ = [
    "ParentState", "ParentSpec", "ChildAction", "ExecAlgo", "Immediate", "TWAP", "VWAP", "POV",
    "intraday_volume_profile", "NEW", "CANCEL", "REPLACE",
]

NEW, CANCEL, REPLACE = 1, 2, 3


class ParentState(IntEnum):
    WORKING = 0
    COMPLETED = 1
    EXPIRED = 2
    CANCELED = 3


@dataclass(frozen=True, kw_only=True)
class ParentSpec:
    """The parent order.

    Attributes
    ----------
    parent_id : int
        Unique per parent; with ``strategy`` and ``instrument`` it seeds the
        deterministic child ids (the decision sequence).
    strategy, instrument : int
    side : int
        +1 buy, -1 sell.
    qty_lots : int
        Parent quantity in lots (> 0).
    lot, tick : float
        Lot size (base units) and price tick (quote currency).
    start_ns, end_ns : int
        Execution window (ns, the router clock); the parent expires at ``end_ns``.
    urgency : float
        0 (passive, join the near touch) .. 1 (marketable, at the far touch).
    limit_px : float
        Worst acceptable price (NaN = none): buy children never above it, sell never below.
    min_child_lots : int
        Smallest child worth sending (except the last one before the end).
    """

    parent_id: int
    strategy: int = 0
    instrument: int
    side: int
    qty_lots: int
    lot: float
    tick: float
    start_ns: int
    end_ns: int
    urgency: float = 0.3
    limit_px: float = math.nan
    min_child_lots: int = 1

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ValueError(f"side expected +1 or -1, was {self.side}")
        if not (isinstance(self.qty_lots, (int, np.integer)) and self.qty_lots > 0):
            raise ValueError(f"qty_lots expected an int > 0, was {self.qty_lots!r}")
        if not (self.lot > 0 and self.tick > 0):
            raise ValueError(f"lot and tick expected > 0, was {self.lot} and {self.tick}")
        if not self.end_ns > self.start_ns:
            raise ValueError(f"end_ns expected after start_ns ({self.start_ns}), was {self.end_ns}")
        if not 0.0 <= self.urgency <= 1.0:
            raise ValueError(f"urgency expected in [0, 1], was {self.urgency}")

    @property
    def qty(self) -> float:
        return self.qty_lots * self.lot


class ChildAction(NamedTuple):
    """What the algorithm asks the driver to send."""

    action: int          # NEW, CANCEL or REPLACE
    cid: int             # the child (for REPLACE: the old child)
    new_cid: int         # REPLACE only: the replacement's id; else 0
    qty_lots: int        # NEW/REPLACE: lots; CANCEL: 0
    px: float            # limit price (NaN for a market order)
    kind: int            # ORDER_LIMIT or ORDER_MARKET


@dataclass
class _Child:
    qty: int                 # lots the child is (or will be) for
    px: float
    sent_ns: int
    filled: int = 0
    status: int = 0          # 0 open, 1 pending cancel, 2 pending replace, 3 done
    counted: bool = True     # counts toward the open quantity (False: replacement not yet live)
    acked: bool = False      # the venue acknowledged it (only acked children are replaced)
    replaced_by: int = 0
    origin: int = 0          # for a replacement: the child it replaces


_OPEN, _PCANCEL, _PREPLACE, _DONE = 0, 1, 2, 3


class ExecAlgo:
    """Base class: child bookkeeping, pricing, the cancel/replace loop and expiry.

    Subclasses implement :meth:`target_lots` (the cumulative lots that should
    be done by ``now``).

    Parameters
    ----------
    spec : ParentSpec
    replace_after_ns : int
        A child working this long while the wanted price moved is replaced.
    catch_up : float
        Behind schedule by more than this fraction of the parent: cross the spread.
    finish_ns : int, optional
        In the last ``finish_ns`` before the end, children cross the spread so the
        parent completes rather than expires (default: a tenth of the window;
        0 disables it, for a strictly passive parent that may expire).
    """

    def __init__(self, spec: ParentSpec, *, replace_after_ns: int = 2_000_000_000,
                 catch_up: float = 0.1, finish_ns: int | None = None) -> None:
        self.spec = spec
        self.replace_after_ns = int(replace_after_ns)
        self.catch_up = float(catch_up)
        self.finish_ns = (spec.end_ns - spec.start_ns) // 10 if finish_ns is None else int(finish_ns)
        self.state = ParentState.WORKING
        self.children: dict[int, _Child] = {}
        self.filled = 0                 # lots
        self.notional = 0.0             # quote currency
        self.fees = 0.0
        self.n_child = 0
        #: Child ids start at this index: a parent resumed after a router restart goes on
        #: from its predecessor's count, so no child id is ever used twice.
        self.child_base = 0
        self.n_replaced = 0
        self._stopping = False          # expiry or cancel requested: no new children
        self._stop_state = ParentState.WORKING
        self.market_volume = 0.0        # market volume since start (base units, ours included)
        self.market_notional = 0.0      # sum px * qty of those trades: the interval VWAP
        self.last_px = math.nan         # last market trade price: the "close" at the end

    # -- schedule ------------------------------------------------------------------
    def target_lots(self, now: int) -> int:
        """Cumulative lots that should be done by ``now`` (0 .. qty_lots)."""
        raise NotImplementedError

    # -- bookkeeping -----------------------------------------------------------------
    @property
    def open_lots(self) -> int:
        """Lots working at the venue (or on their way)."""
        return sum(c.qty - c.filled for c in self.children.values()
                   if c.status != _DONE and c.counted)

    @property
    def remainder_lots(self) -> int:
        return self.spec.qty_lots - self.filled

    @property
    def avg_px(self) -> float:
        return self.notional / (self.filled * self.spec.lot) if self.filled else math.nan

    def _next_cid(self) -> int:
        s = self.spec
        cid = child_order_id(s.strategy, s.instrument, s.parent_id, self.child_base + self.n_child)
        self.n_child += 1
        return cid

    def _price(self, bid: float, ask: float, urgency: float) -> float:
        s = self.spec
        near, far = (bid, ask) if s.side > 0 else (ask, bid)
        raw = near + urgency * (far - near)
        # Round toward the near touch so urgency never crosses more than asked.
        k = raw / s.tick
        k = math.floor(k + 1e-9) if s.side > 0 else math.ceil(k - 1e-9)
        px = round(k * s.tick, 10)
        if not math.isnan(s.limit_px):
            px = min(px, s.limit_px) if s.side > 0 else max(px, s.limit_px)
        return px

    # -- the step ------------------------------------------------------------------
    def on_market_trade(self, px: float, qty: float, ts: int) -> None:
        """A market trade print (any participant, ours included) while the parent runs."""
        if self.spec.start_ns <= ts < self.spec.end_ns and self.state == ParentState.WORKING:
            self.market_volume += qty
            self.market_notional += px * qty
        self.last_px = px

    @property
    def interval_vwap(self) -> float:
        """Market VWAP over the parent's life so far (NaN before any trade)."""
        return self.market_notional / self.market_volume if self.market_volume > 0 else math.nan

    def step(self, now: int, bid: float, ask: float, market_volume: float | None = None
             ) -> list[ChildAction]:
        """Decide the child actions at ``now``.

        Parameters
        ----------
        now : int
            ns, router clock.
        bid, ask : float
            Current best bid and ask (quote currency).
        market_volume : float, optional
            Cumulative market volume traded since the parent started (base
            units, ours included); overrides what :meth:`on_market_trade` summed.
        """
        if market_volume is not None:
            self.market_volume = float(market_volume)
        if self.state != ParentState.WORKING:
            return []
        s = self.spec
        acts: list[ChildAction] = []
        if now >= s.end_ns and not self._stopping:
            self._stopping = True
            self._stop_state = ParentState.EXPIRED
        if self._stopping:
            acts.extend(self._cancel_open(now))
            self._maybe_finish()
            return acts
        if now < s.start_ns or not (math.isfinite(bid) and math.isfinite(ask)) or ask <= bid:
            return acts
        target = min(s.qty_lots, self.target_lots(now))
        behind = (target - self.filled) > self.catch_up * s.qty_lots
        finishing = s.end_ns - now <= self.finish_ns
        urgency = 1.0 if behind or finishing else s.urgency
        want_px = self._price(bid, ask, urgency)
        # Cancel/replace loop: reprice children the market has left behind.
        for cid, c in list(self.children.items()):
            if c.status != _OPEN or not c.counted or not c.acked or \
                    now - c.sent_ns < self.replace_after_ns:
                continue
            stale = (want_px > c.px) if s.side > 0 else (want_px < c.px)
            if stale and c.qty - c.filled > 0:
                new_cid = self._next_cid()
                lots = c.qty - c.filled
                c.status = _PREPLACE
                c.replaced_by = new_cid
                self.children[new_cid] = _Child(qty=lots, px=want_px, sent_ns=now, counted=False,
                                                origin=cid)
                self.n_replaced += 1
                acts.append(ChildAction(REPLACE, cid, new_cid, lots, want_px, ORDER_LIMIT))
        # Lots of a replacement not yet live are still counted on the child it replaces.
        deficit = target - self.filled - self.open_lots
        last_chance = target == s.qty_lots
        if deficit > 0 and (deficit >= s.min_child_lots or last_chance):
            cid = self._next_cid()
            self.children[cid] = _Child(qty=deficit, px=want_px, sent_ns=now)
            acts.append(ChildAction(NEW, cid, 0, deficit, want_px, ORDER_LIMIT))
        return acts

    def cancel(self, now: int) -> list[ChildAction]:
        """Cancel the parent: cancel every open child; it ends CANCELED when they are done."""
        if self.state != ParentState.WORKING:
            return []
        self._stopping = True
        self._stop_state = ParentState.CANCELED
        acts = self._cancel_open(now)
        self._maybe_finish()
        return acts

    def _cancel_open(self, now: int) -> list[ChildAction]:
        acts = []
        for cid, c in self.children.items():
            if c.status == _OPEN and c.counted:
                c.status = _PCANCEL
                acts.append(ChildAction(CANCEL, cid, 0, 0, math.nan, ORDER_LIMIT))
        return acts

    def _maybe_finish(self) -> None:
        if self.filled >= self.spec.qty_lots:
            self.state = ParentState.COMPLETED
        elif self._stopping and all(c.status == _DONE for c in self.children.values()):
            self.state = self._stop_state

    # -- reports -------------------------------------------------------------------
    def on_exec(self, cid: int, status: int, reason: int, fill_qty: float, fill_px: float,
                fee: float, leaves_qty: float) -> None:
        """One exec report for child ``cid`` (the ``EXEC_DTYPE`` fields)."""
        c = self.children.get(cid)
        if c is None:
            raise KeyError(f"child order id {cid} does not belong to parent {self.spec.parent_id}")
        lot = self.spec.lot
        if status in (EXEC_PARTIAL, EXEC_FILL):
            lots = int(round(fill_qty / lot))
            c.filled += lots
            self.filled += lots
            self.notional += fill_qty * fill_px
            self.fees += fee
            if c.filled >= c.qty:
                c.status = _DONE
                if c.replaced_by:  # filled before the replace arrived: the replacement dies
                    self.children[c.replaced_by].counted = False
        elif status == EXEC_ACK:
            c.acked = True
            # The venue's leaves are authoritative (a replacement may be clamped).
            live = int(round(leaves_qty / lot))
            if c.qty - c.filled > live:
                c.qty = c.filled + live
        elif status == EXEC_CANCELED:
            if reason == REASON_CXL_REPLACED and c.replaced_by:
                new = self.children[c.replaced_by]
                new.counted = True
                new.qty = min(new.qty, c.qty - c.filled)
            c.status = _DONE
        elif status == EXEC_REJECT:
            if c.status == _PREPLACE and reason >= 200:
                c.status = _OPEN  # replace refused: the old child keeps working
                c.replaced_by = 0
            elif c.status == _PCANCEL and 100 <= reason < 200:
                # Cancel refused: the order is gone (filled/expired) or the
                # final report is on its way; keep waiting for it unless done.
                if c.filled >= c.qty:
                    c.status = _DONE
                else:
                    c.status = _OPEN
            else:
                c.status = _DONE
                c.counted = False
        self._maybe_finish()


class Immediate(ExecAlgo):
    """Everything at once: one marketable limit at the far touch plus
    ``offset_ticks`` (or a market order when ``market=True``)."""

    def __init__(self, spec: ParentSpec, *, offset_ticks: int = 0, market: bool = False, **kw) -> None:
        super().__init__(spec, **kw)
        self.offset_ticks = int(offset_ticks)
        self.market = bool(market)

    def target_lots(self, now: int) -> int:
        return self.spec.qty_lots

    def step(self, now, bid, ask, market_volume=None):
        if self.n_child or self.state != ParentState.WORKING or now >= self.spec.end_ns:
            return super().step(now, bid, ask, market_volume)
        s = self.spec
        cid = self._next_cid()
        if self.market:
            px, kind = math.nan, ORDER_MARKET
        else:
            far = ask if s.side > 0 else bid
            px = round(far + s.side * self.offset_ticks * s.tick, 10)
            if not math.isnan(s.limit_px):
                px = min(px, s.limit_px) if s.side > 0 else max(px, s.limit_px)
            kind = ORDER_LIMIT
        self.children[cid] = _Child(qty=s.qty_lots, px=px, sent_ns=now)
        return [ChildAction(NEW, cid, 0, s.qty_lots, px, kind)]


class TWAP(ExecAlgo):
    """Equal slices: ``floor(qty * k / n)`` lots due once slice ``k`` has begun.

    Parameters
    ----------
    slice_ns : int
        Slice length (ns); ``n = ceil((end - start) / slice_ns)`` slices.
    """

    def __init__(self, spec: ParentSpec, *, slice_ns: int, **kw) -> None:
        super().__init__(spec, **kw)
        if slice_ns <= 0:
            raise ValueError(f"slice_ns expected > 0, was {slice_ns}")
        self.slice_ns = int(slice_ns)
        self.n_slices = max(1, -(-(spec.end_ns - spec.start_ns) // self.slice_ns))

    def target_lots(self, now: int) -> int:
        if now < self.spec.start_ns:
            return 0
        k = min(self.n_slices, (now - self.spec.start_ns) // self.slice_ns + 1)
        return self.spec.qty_lots * k // self.n_slices


class VWAP(ExecAlgo):
    """Slices sized by a time-of-day volume profile.

    Parameters
    ----------
    profile : sequence of float
        Expected share of volume in each of ``len(profile)`` equal buckets
        covering ``[start_ns, end_ns)`` (see :func:`intraday_volume_profile`);
        normalised here.  Lots due once bucket ``k`` has begun:
        ``floor(qty * W_k / W)`` with integer cumulative weights, so the last
        bucket is due exactly ``qty``.
    """

    def __init__(self, spec: ParentSpec, *, profile: Sequence[float], **kw) -> None:
        super().__init__(spec, **kw)
        w = np.asarray(profile, dtype=np.float64)
        if w.ndim != 1 or len(w) == 0 or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("profile expected a non-empty 1-D array of finite weights >= 0 "
                             "with a positive sum, was not")
        # Integer weights make the cumulative schedule exact (no float drift).
        self._cum = np.cumsum(np.round(w / w.sum() * 1_000_000_000).astype(np.int64))
        self._bucket_ns = (spec.end_ns - spec.start_ns) / len(w)

    def target_lots(self, now: int) -> int:
        if now < self.spec.start_ns:
            return 0
        k = min(len(self._cum) - 1, int((now - self.spec.start_ns) // self._bucket_ns))
        return int(self.spec.qty_lots * int(self._cum[k]) // int(self._cum[-1]))


class POV(ExecAlgo):
    """A share of the market volume: after others trade ``V``, ``rate/(1-rate) * V`` is due,
    so our share of all volume (ours included) is ``rate``.

    Parameters
    ----------
    rate : float
        Participation rate, 0 < rate < 1.
    """

    def __init__(self, spec: ParentSpec, *, rate: float, **kw) -> None:
        super().__init__(spec, **kw)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"rate expected in (0, 1), was {rate}")
        self.rate = float(rate)

    def target_lots(self, now: int) -> int:
        others = max(0.0, self.market_volume - self.filled * self.spec.lot)
        due = self.rate / (1.0 - self.rate) * others / self.spec.lot
        return min(self.spec.qty_lots, int(math.floor(due + 1e-9)))


def intraday_volume_profile(minute_of_day: np.ndarray, volume: np.ndarray, *, start_minute: int,
                            end_minute: int, bucket_minutes: int) -> np.ndarray:
    """Average share of session volume per time-of-day bucket, from history.

    Each day's volume is first normalised to its own session total, so a
    busy day does not dominate the profile; then the shares are averaged.

    Parameters
    ----------
    minute_of_day : int array
        Minute of the bar within its day (e.g. 9*60+30 for 09:30), one per bar.
        Days are told apart by a change to a smaller minute (bars in time order).
    volume : float array
        Bar volume.
    start_minute, end_minute : int
        Session ``[start, end)`` in minutes of the day.
    bucket_minutes : int
        Bucket width.

    Returns
    -------
    ndarray
        ``(end - start) / bucket_minutes`` shares summing to 1.
    """
    m = np.asarray(minute_of_day, dtype=np.int64)
    v = np.asarray(volume, dtype=np.float64)
    if m.shape != v.shape or m.ndim != 1:
        raise ValueError(f"minute_of_day and volume expected equal 1-D shapes, was {m.shape} and {v.shape}")
    n_b = (end_minute - start_minute) // bucket_minutes
    if n_b <= 0:
        raise ValueError(f"session expected at least one bucket, was {start_minute}..{end_minute}")
    day = np.concatenate([[0], np.cumsum(np.diff(m) < 0)])
    inside = (m >= start_minute) & (m < start_minute + n_b * bucket_minutes)
    shares = []
    for d in np.unique(day[inside]):
        sel = inside & (day == d)
        b = (m[sel] - start_minute) // bucket_minutes
        per = np.bincount(b, weights=v[sel], minlength=n_b)
        if per.sum() > 0:
            shares.append(per / per.sum())
    if not shares:
        raise ValueError("volume expected inside the session on at least one day, was none")
    prof = np.mean(shares, axis=0)
    return prof / prof.sum()
