"""Sizing's market inputs, kept by the features stage and written into every feature row.

Sizing (:mod:`alphad.kernels.sizing`) needs the VIX level, the HMM regime of an index,
each instrument's GARCH variance forecast, its spread and its traded value.  They are
market state, so they live where market data is folded, event by event, and travel to
infer in the row: a five-process replay and a backtest then size every decision on the
same inputs (a row made before an event never sees it).

* **VIX**: the level of the ``features.regime.vix_symbol`` instrument (a bar's close, a
  trade, or a quote's mid).  The daily file's VIX closes at 16:15 New York, after the
  stocks, and its bar is ordered after theirs: a decision at a close sees the previous
  close's VIX.
* **HMM**: the forward filter (:func:`alphad.kernels.regime.hmm_update`) on the bar returns
  of ``index_symbol`` (x 100, as fitted), parameters from ``regimes.json``.
* **GARCH(1,1)** per instrument (:func:`alphad.kernels.regime.garch_update`) on its bar
  returns, parameters per symbol from ``regimes.json``; the row carries the one-bar-ahead
  variance of decimal returns.
* **Traded value**: an EMA over ``adv_bars`` bars of close x volume (the impact term).
* **Half spread** from the last quote (NaN on bars: the cost filter then uses
  ``risk.sizing.bar_half_spread_bps``).

The parameters are fitted offline, only on data up to the model's training end
(``alphad train`` writes ``regimes.json`` beside the card; ``alphad.ops.fit_regimes``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from numba import njit

from alphad.ipc.dtypes import MD_BAR, MD_QUOTE, MD_TRADE
from alphad.kernels.regime import garch_new, garch_update, hmm_new, hmm_update

# -- account-wide words (``reg``, float64) -----------------------------------------------------
R_VIX = 0
R_P_BULL = 1      # P_BEAR, P_SIDEWAYS follow
R_VIX_ID = 4      # instrument ids of the inputs (-1: none)
R_INDEX_ID = 5
R_SCALE = 6       # returns x scale before the recursions (the fit's units)
R_ADV_ALPHA = 7
N_REG = 8

# -- per-instrument columns (``inst``, float64) -------------------------------------------------
I_LAST = 0        # last bar close
I_GARCH = 1       # 5 words: omega, alpha, beta, mu, sigma2 next (kernels.regime.garch_new)
I_HAS_GARCH = 6
I_ADV = 7
I_HALF_SPREAD = 8
N_INST = 9


class RegimeInputs:
    """The arrays of the regime state for ``features.regime`` and the universe.

    Raises ``ValueError`` naming the file and what is missing (a symbol of the config
    absent from the universe, an index without HMM parameters)."""

    def __init__(self, regime_cfg, symbols: list[str], base: Path):
        n = len(symbols)
        self.reg = np.full(N_REG, np.nan)
        self.inst = np.full((n, N_INST), np.nan)
        self.inst[:, I_HAS_GARCH] = 0.0
        self.hmm = hmm_new(3)
        self.startprob = np.full(3, 1.0 / 3.0)
        self.transmat = np.eye(3)
        self.means = np.zeros((3, 1))
        self.variances = np.ones((3, 1))
        self.x = np.zeros(1)
        self.garch_symbols: list[str] = []
        self.reg[R_VIX_ID] = self.reg[R_INDEX_ID] = -1.0
        self.reg[R_SCALE] = 1.0
        if regime_cfg is None:
            return
        c = regime_cfg
        self.reg[R_ADV_ALPHA] = 2.0 / (c.adv_bars + 1.0)
        for key, word in (("vix_symbol", R_VIX_ID), ("index_symbol", R_INDEX_ID)):
            sym = getattr(c, key)
            if sym:
                if sym not in symbols:
                    raise ValueError(f"features.regime.{key} expected a symbol of the universe, was {sym!r}")
                self.reg[word] = symbols.index(sym)
        params = self._read(base / c.params) if c.params else {}
        self.reg[R_SCALE] = float(params.get("return_scale", 1.0))
        if c.index_symbol:
            hmm = params.get("hmm")
            if hmm is None:
                raise ValueError(f"features.regime.index_symbol {c.index_symbol!r} needs HMM parameters: "
                                 f"{'no params file set' if not c.params else c.params + ' has no hmm'}")
            self.startprob = np.asarray(hmm["startprob"], np.float64)
            self.transmat = np.asarray(hmm["transmat"], np.float64)
            self.means = np.asarray(hmm["means"], np.float64).reshape(3, -1)[:, :1].copy()
            self.variances = np.asarray(hmm["variances"], np.float64).reshape(3, -1)[:, :1].copy()
        for sym, g in params.get("garch", {}).items():
            if sym in symbols:
                i = symbols.index(sym)
                self.inst[i, I_GARCH:I_GARCH + 5] = garch_new(g["omega"], g["alpha"], g["beta"], g["mu"],
                                                               g.get("backcast"))
                self.inst[i, I_HAS_GARCH] = 1.0
                self.garch_symbols.append(sym)

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"features.regime.params: {path} not found (alphad train writes regimes.json "
                             f"beside the model card)") from None
        except ValueError as e:
            raise ValueError(f"features.regime.params: {path} is not JSON: {e}") from None

    def arrays(self) -> tuple:
        return (self.reg, self.inst, self.hmm, self.startprob, self.transmat, self.means, self.variances, self.x)

    def copy(self) -> tuple:
        return tuple(np.copy(a) for a in self.arrays())


@njit(cache=True)
def regime_on_md(e, reg, inst, hmm, startprob, transmat, means, variances, x):
    """Fold one md record into the regime state."""
    i = e.instrument
    if i < 0 or i >= inst.shape[0]:
        return
    kind = e.kind
    if kind == MD_QUOTE:
        if e.bid_px > 0.0 and e.ask_px > e.bid_px:
            mid = 0.5 * (e.bid_px + e.ask_px)
            inst[i, I_HALF_SPREAD] = 0.5 * (e.ask_px - e.bid_px) / mid
            if i == reg[R_VIX_ID]:
                reg[R_VIX] = mid
        return
    if kind == MD_TRADE:
        if i == reg[R_VIX_ID] and e.last_px > 0.0:
            reg[R_VIX] = e.last_px
        return
    if kind != MD_BAR or not (e.last_px > 0.0):
        return
    px = e.last_px
    if i == reg[R_VIX_ID]:
        reg[R_VIX] = px
        return
    last = inst[i, I_LAST]
    inst[i, I_LAST] = px
    value = px * e.last_sz
    if value >= 0.0:
        a = inst[i, I_ADV]
        inst[i, I_ADV] = value if np.isnan(a) else a + reg[R_ADV_ALPHA] * (value - a)
    if not (last > 0.0):
        return
    r = (px / last - 1.0) * reg[R_SCALE]
    if inst[i, I_HAS_GARCH] == 1.0:
        garch_update(inst[i, I_GARCH:I_GARCH + 5], r)
    if i == reg[R_INDEX_ID]:
        x[0] = r
        hmm_update(hmm, startprob, transmat, means, variances, x)
        for k in range(3):
            reg[R_P_BULL + k] = hmm[1 + k]


@njit(cache=True)
def regime_into_row(r, reg, inst):
    """Write the inputs sizing reads into the feature row ``r`` (its instrument's)."""
    i = r.instrument
    r.vix = reg[R_VIX]
    r.p_bull = reg[R_P_BULL]
    r.p_bear = reg[R_P_BULL + 1]
    r.p_sideways = reg[R_P_BULL + 2]
    s = reg[R_SCALE]
    r.variance = inst[i, I_GARCH + 4] / (s * s) if inst[i, I_HAS_GARCH] == 1.0 else math.nan
    r.half_spread = inst[i, I_HALF_SPREAD]
    r.adv = inst[i, I_ADV]
