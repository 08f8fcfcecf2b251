"""Offline fitting of the regime models (``arch`` GARCH(1,1), ``hmmlearn`` GaussianHMM) to JSON.

The daemon never imports ``arch`` or ``hmmlearn``: it reads the JSON these helpers write
and runs :mod:`alphad.kernels.regime`.

Usage::

    python -m alphad.ops.fit_regimes garch daily.csv --symbol SPY -o garch.json
    python -m alphad.ops.fit_regimes hmm daily.csv --symbol SPY -o hmm.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: Returns are multiplied by this before fitting (percent): arch's optimiser is tuned for
#: returns of order 1, and its DataScaleWarning fires for raw fractional returns.
RETURN_SCALE = 100.0
STATE_NAMES = ("bull", "bear", "sideways")


def fit_garch(returns, *, scale: float = RETURN_SCALE) -> dict:
    """Fit a constant-mean GARCH(1,1) with normal errors to fractional ``returns``.

    Returns a JSON-ready dict: ``mu, omega, alpha, beta`` (in scaled units), ``scale``,
    ``backcast`` (arch's start-up variance, so the daemon's recursion starts identically),
    ``loglik`` and ``nobs``.
    """
    from arch import arch_model  # offline only

    y = np.asarray(returns, dtype=np.float64) * scale
    if y.ndim != 1 or y.shape[0] < 100 or not np.isfinite(y).all():
        raise ValueError(f"fit_garch: expected >= 100 finite returns, was shape {y.shape}")
    model = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    res = model.fit(disp="off")
    p = res.params
    from alphad.kernels.regime import garch_backcast
    return {
        "model": "garch11",
        "mu": float(p["mu"]), "omega": float(p["omega"]),
        "alpha": float(p["alpha[1]"]), "beta": float(p["beta[1]"]),
        # arch seeds from the residuals of its *starting* mean (the sample mean), not the fit
        "scale": scale, "backcast": garch_backcast(y - y.mean()),
        "loglik": float(res.loglikelihood), "nobs": int(y.shape[0]),
    }


def fit_hmm(X, *, n_states: int = 3, seed: int = 0, n_iter: int = 200) -> dict:
    """Fit a diagonal-covariance GaussianHMM; states ordered bull, bear, sideways.

    ``X`` is ``(T, D)`` with the (scaled) return in column 0.  States are relabelled by
    their mean return: highest = bull, lowest = bear, the rest sideways.
    """
    from hmmlearn.hmm import GaussianHMM  # offline only

    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if n_states != 3:
        raise ValueError(f"fit_hmm: expected 3 states (bull/bear/sideways), was {n_states}")
    model = GaussianHMM(n_components=n_states, covariance_type="diag", n_iter=n_iter,
                        random_state=seed, tol=1e-6)
    model.fit(X)
    mean_ret = model.means_[:, 0]
    order = [int(np.argmax(mean_ret)), int(np.argmin(mean_ret))]
    order.append(next(i for i in range(n_states) if i not in order))
    var = np.asarray(model._covars_)[order]  # diag: (K, D)
    return {
        "model": "gaussian_hmm_diag",
        "states": list(STATE_NAMES),
        "startprob": model.startprob_[order].tolist(),
        "transmat": model.transmat_[np.ix_(order, order)].tolist(),
        "means": model.means_[order].tolist(),
        "variances": var.tolist(),
        "loglik": float(model.score(X)),
        "nobs": int(X.shape[0]),
    }


def write_params(path, params: dict) -> None:
    """Write parameters as JSON (sorted keys, so diffs between refits are readable)."""
    Path(path).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def read_params(path) -> dict:
    """Read a parameter JSON written by :func:`write_params`."""
    return json.loads(Path(path).read_text())


def _returns_from_csv(path: str, symbol: str | None) -> np.ndarray:
    import pandas as pd

    df = pd.read_csv(path)
    if symbol is not None:
        if "symbol" not in df.columns:
            raise ValueError(f"{path}: --symbol given but the file has no 'symbol' column")
        df = df[df["symbol"] == symbol]
        if df.empty:
            raise ValueError(f"{path}: no rows for symbol {symbol!r}")
    col = "adjusted_close" if "adjusted_close" in df.columns else "close"
    c = df[col].to_numpy(dtype=np.float64)
    return c[1:] / c[:-1] - 1.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m alphad.ops.fit_regimes", description=__doc__.splitlines()[0])
    p.add_argument("model", choices=("garch", "hmm"))
    p.add_argument("input", help="CSV with close (or adjusted_close), optionally symbol")
    p.add_argument("--symbol")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    r = _returns_from_csv(a.input, a.symbol)
    params = fit_garch(r) if a.model == "garch" else fit_hmm(r * RETURN_SCALE)
    write_params(a.output, params)
    print(f"wrote {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
