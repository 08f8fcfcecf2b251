"""Per-stage counters, latency histograms and raw latency samples in shared memory.

Stages only add to int64 words here (a few ns each, no locks: every word has
exactly one writer).  The Prometheus exporter thread in the supervisor and the
bench harness read the block; nothing from prometheus_client runs per event.

Latency rows: one per stage (``now - t_origin`` when that stage emits) plus
:data:`ROW_T2T`, tick-to-trade, recorded by the router when it hands an order to
the venue adapter.  Each row keeps a histogram over :data:`BUCKETS_NS`, the
sum, and the last :data:`SAMPLE_CAP` raw samples (for exact percentiles in
``alphad bench``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .control import STAGES
from .shm import Segment

#: Histogram upper bounds in ns: 1 µs .. 10 ms (Prometheus ``le`` labels, in seconds there).
BUCKETS_NS = np.array(
    [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
     1_000_000, 2_000_000, 5_000_000, 10_000_000],
    dtype=np.int64,
)
N_BUCKETS = len(BUCKETS_NS) + 1  # + the +Inf bucket
ROW_T2T = len(STAGES)
N_ROWS = len(STAGES) + 1
SAMPLE_CAP = 1 << 17

# -- counters per stage
C_EVENTS_IN = 0      # records consumed
C_EVENTS_OUT = 1     # records emitted
C_ORDERS = 2         # orders sent (router) / approved (risk)
C_FILLS = 3          # fills received
C_DENIALS = 4        # risk denials (all reasons)
C_REJECTS = 5        # venue rejects
C_OVERRUNS = 6       # records lost on overwrite rings
C_ERRORS = 7         # recoverable errors (bad input record, ...)
N_COUNTERS = 8
COUNTER_NAMES = ("events_in", "events_out", "orders", "fills", "denials", "rejects", "overruns", "errors")

#: Denials by reason code (risk writes ``DENY_BASE + code``).
N_REASONS = 64

# float64 gauges written by risk (for the status line and /metrics)
G_REALIZED_PNL = 0
G_UNREALIZED_PNL = 1
G_EQUITY = 2
G_GROSS_EXPOSURE = 3
#: The drawdown ladder's risk multiplier, and the sizing of the last signal risk finished
#: (``risk.sizing``; NaN without it): the VIX, HMM regime, GARCH volatility-target and
#: fractional-Kelly multipliers.
G_RISK_MULT = 4
G_VIX_MULT = 5
G_REGIME_MULT = 6
G_VOL_MULT = 7
G_KELLY = 8
#: Portfolio risk: one-period historical VaR and CVaR at 95% of the current positions,
#: fraction of equity, and the mean pairwise correlation of the held instruments' returns.
G_VAR_95 = 9
G_CVAR_95 = 10
G_MEAN_CORR = 11
#: Fees paid (commissions, exchange fees), quote currency: the PnL gauges above are gross of them.
G_FEES = 12
N_GAUGES = 16

#: Market-impact coefficients the router fits from its own fills (daemon/impact_live.py),
#: float64 per instrument id below IMPACT_INSTRUMENTS; observations 0 = not fitted yet.
IMPACT_FIELDS = ("gamma", "alpha", "eta", "observations", "rmse")
IMPACT_INSTRUMENTS = 64

# int64 word offsets
_HIST = 0
_SUM = _HIST + N_ROWS * N_BUCKETS
_COUNT = _SUM + N_ROWS
_SAMPLES = _COUNT + N_ROWS
_COUNTERS = _SAMPLES + N_ROWS * SAMPLE_CAP
_DENY = _COUNTERS + len(STAGES) * N_COUNTERS
_GAUGES = _DENY + N_REASONS
_IMPACT = _GAUGES + N_GAUGES
_WORDS = _IMPACT + IMPACT_INSTRUMENTS * len(IMPACT_FIELDS)
SIZE = _WORDS * 8


@njit(cache=True, _nrt=False)
def observe(m, row, value_ns):
    """Add one latency sample to ``row``: histogram bucket, sum, count, raw sample."""
    b = 0
    while b < BUCKETS_NS.shape[0] and value_ns > BUCKETS_NS[b]:
        b += 1
    m[_HIST + row * N_BUCKETS + b] += 1
    m[_SUM + row] += value_ns
    k = m[_COUNT + row]
    m[_SAMPLES + row * SAMPLE_CAP + (k & (SAMPLE_CAP - 1))] = value_ns
    m[_COUNT + row] = k + 1


@njit(cache=True, _nrt=False)
def count(m, stage, counter, n):
    m[_COUNTERS + stage * N_COUNTERS + counter] += n


@njit(cache=True, _nrt=False)
def count_denial(m, stage, reason):
    m[_COUNTERS + stage * N_COUNTERS + C_DENIALS] += 1
    m[_DENY + reason] += 1


class MetricsBlock:
    """Mapped metrics segment: ``words`` (int64) is what the njit helpers take."""

    def __init__(self, segment: Segment):
        self.segment = segment
        self.words = segment.buf.view(np.int64)
        self.gauges = segment.buf[_GAUGES * 8 : (_GAUGES + N_GAUGES) * 8].view(np.float64)
        self.impact = segment.buf[_IMPACT * 8 : _WORDS * 8].view(np.float64).reshape(
            IMPACT_INSTRUMENTS, len(IMPACT_FIELDS))

    @classmethod
    def create(cls, name: str, *, exist_ok: bool = False) -> "MetricsBlock":
        return cls(Segment.create(name, SIZE, exist_ok=exist_ok))

    @classmethod
    def attach(cls, name: str) -> "MetricsBlock":
        seg = Segment.attach(name)
        if seg.size != SIZE:
            raise RuntimeError(f"{seg.path}: metrics block of {SIZE} bytes expected, the segment has {seg.size}")
        return cls(seg)

    # -- readers (exporter, status, bench)
    def histogram(self, row: int) -> np.ndarray:
        """Per-bucket (not cumulative) counts; last entry is the +Inf bucket."""
        return self.words[_HIST + row * N_BUCKETS : _HIST + (row + 1) * N_BUCKETS].copy()

    def latency_sum_ns(self, row: int) -> int:
        return int(self.words[_SUM + row])

    def latency_count(self, row: int) -> int:
        return int(self.words[_COUNT + row])

    def samples(self, row: int, since: int = 0) -> np.ndarray:
        """Raw samples recorded after the ``since``-th (at most SAMPLE_CAP, oldest first)."""
        total = self.latency_count(row)
        start = max(since, total - SAMPLE_CAP)
        base = _SAMPLES + row * SAMPLE_CAP
        idx = np.arange(start, total) & (SAMPLE_CAP - 1)
        return self.words[base + idx].copy()

    def counter(self, stage: int, counter: int) -> int:
        return int(self.words[_COUNTERS + stage * N_COUNTERS + counter])

    def denials_by_reason(self) -> np.ndarray:
        return self.words[_DENY : _DENY + N_REASONS].copy()

    def close(self) -> None:
        self.words = self.gauges = self.impact = None
        self.segment.close()

    def unlink(self) -> None:
        self.segment.unlink()
