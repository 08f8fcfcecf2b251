"""Daily bars as research and the feed both read them: split- and dividend-adjusted
prices, and highs and lows held near the bar's body.

One definition for both, so the features stage sees the very numbers the research dataset
was built from (``ops/dataset.py``; the feature rows must match bit for bit).
"""
from __future__ import annotations

import numpy as np

#: A daily bar's high (low) is held within this log distance above (below) its body: a few
#: daily bars carry a bad consolidated high or low print (see the data README); left in, one
#: of them moves a 14-bar stochastic for two weeks.
MAX_LOG_RANGE = 0.2


def adjust(open_, high, low, close, adjusted_close):
    """Prices scaled by each bar's ``adjusted_close / close`` (splits and dividends):
    ``(open, high, low, close)`` as float64 arrays, the close being ``adjusted_close``."""
    close = np.asarray(close, np.float64)
    adjusted = np.asarray(adjusted_close, np.float64)
    factor = adjusted / close
    return (np.asarray(open_, np.float64) * factor, np.asarray(high, np.float64) * factor,
            np.asarray(low, np.float64) * factor, adjusted)


def clean_range(o, h, l, c):
    """High and low clipped into ``[body top, top * e^MAX_LOG_RANGE]`` and
    ``[body bottom * e^-MAX_LOG_RANGE, body bottom]``."""
    top = np.maximum(o, c)
    bottom = np.minimum(o, c)
    return (np.clip(h, top, top * np.exp(MAX_LOG_RANGE)),
            np.clip(l, bottom * np.exp(-MAX_LOG_RANGE), bottom))
