"""Drawdown ladder: four drawdown measures, a four-step ladder, its effects, and webhook alerts.

Measures (fractions of the reference peak, >= 0)
-------------------------------------------------
* peak-to-trough: from the highest equity since the ladder was created (or reset);
* intraday: from the highest equity since the session open (:func:`start_session_drawdown`);
* rolling 1 h and rolling 4 h: from the highest equity in the trailing window, kept by a
  monotonic deque in preallocated arrays (O(1) amortised per sample, no allocation).

Ladder (thresholds per measure, configurable; defaults 3 / 5 / 8 / 10%)
-----------------------------------------------------------------------
WARNING (alert), CRITICAL (trading state REDUCING), EMERGENCY (``account[A_RISK_MULT]`` = 0.5),
KILL (HALTED and ``control[C_FLATTEN]`` = 1).  The level is the worst over the four measures.
It escalates as soon as a threshold is reached (several steps at once if need be) and recovers
only when every measure is below ``threshold x (1 - hysteresis)`` of the step it is leaving.
Each transition returns an event code (``DD_EVENT_ESCALATE + level`` or
``DD_EVENT_RECOVER + level``).  Recovery lifts REDUCING (when the ladder set it) and restores
the risk multiplier; HALTED from the KILL step stays until an operator ``resume``.

Alerts go through :class:`AlertSender`, a queue drained by one thread that POSTs JSON with
urllib, so the ladder itself never blocks on the network.
"""
from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from collections.abc import Callable

import numpy as np
from numba import njit

from alphad.daemon.risk.checks import set_state
from alphad.daemon.risk.codes import (
    A_RISK_MULT,
    DD_CRITICAL,
    DD_EMERGENCY,
    DD_EVENT_ESCALATE,
    DD_EVENT_NONE,
    DD_EVENT_RECOVER,
    DD_KILL,
    DD_LEVEL_NAMES,
    DD_MEASURE_NAMES,
    N_DD_MEASURES,
)
from alphad.ipc.control import ACTIVE, C_EPOCH, C_FLATTEN, C_STATE, C_STATE_REASON, C_STATE_TS, HALTED, REDUCING

# -- dd_state columns (float64) ---------------------------------------------------------------------
#: Highest equity since creation/reset.
D_PEAK = 0
#: Highest equity since the session open.
D_SESSION_PEAK = 1
#: Current ladder level (DD_NORMAL .. DD_KILL).
D_LEVEL = 2
#: Measure that set the level at the last escalation.
D_WORST_MEASURE = 3
#: Current drawdown of each measure, ``D_DRAWDOWN + DD_PEAK`` .. ``D_DRAWDOWN + DD_ROLLING_4H``.
D_DRAWDOWN = 4
#: Equity of the last sample.
D_LAST_EQUITY = 8
#: Deepest peak-to-trough drawdown seen.
D_MAX_DRAWDOWN = 9
N_DD_STATE = 10

#: Trailing window lengths, ns (rows 0 and 1 of the window arrays).
_WINDOW_1H_NS = 3_600_000_000_000
_WINDOW_4H_NS = 14_400_000_000_000


class DrawdownArrays:
    """Preallocated state of one ladder: ``state`` (float64), ``idx`` (int64 deque heads/tails),
    ``win_ts`` (int64 ``(2, capacity)``), ``win_eq`` (float64 ``(2, capacity)``).

    Parameters
    ----------
    equity : float
        Starting equity (the first peak), quote currency.
    capacity : int
        Samples each trailing-window deque can hold; when a window holds more samples than this
        (rising equity sampled faster than ``capacity`` per 4 h) the oldest is dropped, which can
        only understate that window's drawdown, never the peak-to-trough one.
    """

    def __init__(self, equity: float, capacity: int = 16_384):
        if not equity > 0:
            raise ValueError(f"drawdown ladder starting equity expected > 0, was {equity}")
        self.state = np.zeros(N_DD_STATE, np.float64)
        self.state[D_PEAK] = equity
        self.state[D_SESSION_PEAK] = equity
        self.state[D_LAST_EQUITY] = equity
        self.idx = np.zeros(4, np.int64)  # head, count for window 0 then window 1
        self.win_ts = np.zeros((2, capacity), np.int64)
        self.win_eq = np.zeros((2, capacity), np.float64)

    @property
    def level(self) -> int:
        return int(self.state[D_LEVEL])

    def drawdowns(self) -> dict[str, float]:
        """Current drawdown of each measure by name."""
        return {n: float(self.state[D_DRAWDOWN + k]) for k, n in enumerate(DD_MEASURE_NAMES)}


@njit(cache=True, _nrt=False)
def _window_max(w, ts_ns, equity, idx, win_ts, win_eq, span_ns):
    cap = win_ts.shape[1]
    head = idx[2 * w]
    cnt = idx[2 * w + 1]
    # Drop samples older than the window from the front.
    while cnt > 0 and win_ts[w, head] <= ts_ns - span_ns:
        head = (head + 1) % cap
        cnt -= 1
    # Monotonic decreasing deque: a new sample evicts every older sample it is >= to.
    while cnt > 0:
        tail = (head + cnt - 1) % cap
        if win_eq[w, tail] <= equity:
            cnt -= 1
        else:
            break
    if cnt == cap:
        head = (head + 1) % cap
        cnt -= 1
    tail = (head + cnt) % cap
    win_ts[w, tail] = ts_ns
    win_eq[w, tail] = equity
    cnt += 1
    idx[2 * w] = head
    idx[2 * w + 1] = cnt
    return win_eq[w, head]


@njit(cache=True)
def start_session_drawdown(dd_state, equity):
    """Session open: the intraday measure restarts from ``equity``."""
    dd_state[D_SESSION_PEAK] = equity


@njit(cache=True, _nrt=False)
def _level_of(dd, thresholds, scale):
    lvl = 0
    worst = 0
    for m in range(thresholds.shape[0]):
        for k in range(thresholds.shape[1]):
            if dd[m] >= thresholds[m, k] * scale and k + 1 > lvl:
                lvl = k + 1
                worst = m
    return lvl, worst


@njit(cache=True, _nrt=False)
def update_drawdown(ts_ns, equity, dd_state, idx, win_ts, win_eq, thresholds, hysteresis,
                    emergency_mult, control, account):
    """Feed one equity sample; move the ladder and apply its effects.

    Parameters
    ----------
    ts_ns : int
        Sample time, ns (non-decreasing).
    equity : float
        Account equity, quote currency.
    dd_state, idx, win_ts, win_eq : ndarray
        :class:`DrawdownArrays` state.
    thresholds : float64 ``(4, 4)``
        Row per measure (peak, intraday, 1 h, 4 h), column per step (warning .. kill).
    hysteresis : float
        Fraction of a threshold the drawdown must fall back below to leave that step.
    emergency_mult : float
        Risk multiplier written to ``account[A_RISK_MULT]`` at EMERGENCY and above.
    control, account : ndarray
        Risk arrays; the trading state and risk multiplier are written here.

    Returns
    -------
    int
        ``DD_EVENT_NONE``, ``DD_EVENT_ESCALATE + level`` or ``DD_EVENT_RECOVER + level``.
        A non-finite equity sample is ignored (returns ``DD_EVENT_NONE``).
    """
    if not np.isfinite(equity):
        return DD_EVENT_NONE
    # A view on the state's drawdown slots: no allocation per sample.
    dd = dd_state[D_DRAWDOWN:D_DRAWDOWN + N_DD_MEASURES]
    # Peaks
    if equity > dd_state[D_PEAK]:
        dd_state[D_PEAK] = equity
    if equity > dd_state[D_SESSION_PEAK]:
        dd_state[D_SESSION_PEAK] = equity
    m1 = _window_max(0, ts_ns, equity, idx, win_ts, win_eq, _WINDOW_1H_NS)
    m4 = _window_max(1, ts_ns, equity, idx, win_ts, win_eq, _WINDOW_4H_NS)
    dd[0] = 1.0 - equity / dd_state[D_PEAK]
    dd[1] = 1.0 - equity / dd_state[D_SESSION_PEAK]
    dd[2] = 1.0 - equity / m1
    dd[3] = 1.0 - equity / m4
    if dd[0] > dd_state[D_MAX_DRAWDOWN]:
        dd_state[D_MAX_DRAWDOWN] = dd[0]
    dd_state[D_LAST_EQUITY] = equity

    cur = int(dd_state[D_LEVEL])
    target, worst = _level_of(dd, thresholds, 1.0)
    event = DD_EVENT_NONE
    if target > cur:
        dd_state[D_LEVEL] = target
        dd_state[D_WORST_MEASURE] = worst
        event = DD_EVENT_ESCALATE + target
        if target >= DD_CRITICAL:
            set_state(control, REDUCING, event, ts_ns)
        if target >= DD_EMERGENCY:
            account[A_RISK_MULT] = emergency_mult
        if target >= DD_KILL:
            set_state(control, HALTED, event, ts_ns)
            control[C_FLATTEN] = 1
    elif target < cur:
        stay, _ = _level_of(dd, thresholds, 1.0 - hysteresis)
        if stay < cur:
            dd_state[D_LEVEL] = stay
            event = DD_EVENT_RECOVER + stay
            if stay < DD_EMERGENCY:
                account[A_RISK_MULT] = 1.0
            # Lift REDUCING only when the ladder raised it (an operator's REDUCING stays).
            r = control[C_STATE_REASON]
            if (stay < DD_CRITICAL and control[C_STATE] == REDUCING
                    and r > DD_EVENT_ESCALATE and r < DD_EVENT_RECOVER):
                control[C_STATE] = ACTIVE
                control[C_STATE_REASON] = 0
                control[C_STATE_TS] = ts_ns
                control[C_EPOCH] += 1
    return event


def event_name(code: int) -> str:
    """Readable name of a drawdown event code, e.g. ``"escalate:kill"``, ``"recover:normal"``."""
    if code == DD_EVENT_NONE:
        return "none"
    if DD_EVENT_ESCALATE < code <= DD_EVENT_ESCALATE + DD_KILL:
        return f"escalate:{DD_LEVEL_NAMES[code - DD_EVENT_ESCALATE]}"
    if DD_EVENT_RECOVER <= code < DD_EVENT_RECOVER + DD_KILL:
        return f"recover:{DD_LEVEL_NAMES[code - DD_EVENT_RECOVER]}"
    raise ValueError(f"drawdown event code expected 0, 101..104 or 200..203, was {code}")


class AlertSender:
    """Posts drawdown alerts to a webhook from a background thread, with a per-kind cooldown.

    :meth:`submit` never blocks: it drops the alert (and counts it) when the same kind was sent
    less than ``cooldown_s`` ago or the queue is full.  Escalations to KILL bypass the cooldown.

    Parameters
    ----------
    url : str
        Webhook endpoint (http or https); the body is JSON, ``Content-Type: application/json``.
    cooldown_s : float
        Minimum seconds between two accepted alerts of the same kind.
    clock : callable
        Seconds, monotonic (injected for tests).
    max_queue : int
        Alerts waiting to be posted at most.
    timeout_s : float
        Per-request timeout.

    Attributes
    ----------
    sent, failed, dropped_cooldown, dropped_full : int
        Counters for /metrics.
    """

    def __init__(self, url: str, cooldown_s: float = 300.0, *, clock: Callable[[], float] = time.monotonic,
                 max_queue: int = 64, timeout_s: float = 2.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url expected http:// or https://, was {url!r}")
        self.url = url
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._timeout = timeout_s
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._last: dict[str, float] = {}
        self.sent = 0
        self.failed = 0
        self.dropped_cooldown = 0
        self.dropped_full = 0
        self._thread = threading.Thread(target=self._run, name="alphad-dd-alerts", daemon=True)
        self._thread.start()

    def submit(self, kind: str, payload: dict, *, urgent: bool = False) -> bool:
        """Queue an alert; returns False when dropped by the cooldown or a full queue."""
        now = self._clock()
        last = self._last.get(kind)
        if not urgent and last is not None and now - last < self.cooldown_s:
            self.dropped_cooldown += 1
            return False
        try:
            self._q.put_nowait(json.dumps({"kind": kind, **payload}).encode())
        except queue.Full:
            self.dropped_full += 1
            return False
        self._last[kind] = now
        return True

    def submit_event(self, event: int, ladder: DrawdownArrays, ts_ns: int) -> bool:
        """Queue the alert of a ladder transition (kind = the event name)."""
        name = event_name(event)
        return self.submit(name, {"ts_ns": int(ts_ns), "level": DD_LEVEL_NAMES[ladder.level],
                                  "drawdowns": ladder.drawdowns(),
                                  "equity": float(ladder.state[D_LAST_EQUITY])},
                           urgent=(event == DD_EVENT_ESCALATE + DD_KILL))

    def _run(self) -> None:
        while True:
            body = self._q.get()
            if body is None:
                return
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                    resp.read()
                self.sent += 1
            except Exception:  # noqa: BLE001 - a dead webhook must never take the stage down
                self.failed += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Post what is queued, then stop the thread (waits at most ``timeout_s``)."""
        try:
            self._q.put(None, timeout=timeout_s)
        except queue.Full:
            return  # the thread is a daemon thread: it dies with the process
        self._thread.join(timeout_s)
