"""/metrics families of the risk stage's book, read at scrape time through a
:class:`~alphad.daemon.shell.risk_view.RiskView` (read-only, shared memory): positions per
symbol, gross, net and per-sector exposure, and the drawdown ladder.

Nothing is yielded before the risk stage has made its state (a scrape during start-up).
"""
from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from alphad.daemon.risk.codes import A_GROSS, A_NET, DD_MEASURE_NAMES
from alphad.daemon.risk.drawdown import D_DRAWDOWN, D_LEVEL, D_MAX_DRAWDOWN


def risk_families(view, symbols: list[str]):
    """The families of risk's state ``view`` for the universe ``symbols`` (in id order)."""
    figures = view.figures()  # one moment: gross equals its sectors' sum in every scrape
    if figures is None:
        return
    held, account, sectors, dd = figures
    pos = GaugeMetricFamily("alphad_position", "Net position per symbol in risk's book (base units; "
                            "negative: short)", labels=["symbol"])
    for sym, q in zip(symbols, held):
        pos.add_metric([sym], float(q))
    yield pos
    exp = GaugeMetricFamily("alphad_exposure", "Committed exposure in quote currency, working orders included: "
                            "gross (sum of |position|) and net (signed sum)", labels=["kind"])
    exp.add_metric(["gross"], float(account[A_GROSS]))
    exp.add_metric(["net"], float(account[A_NET]))
    yield exp
    sec = GaugeMetricFamily("alphad_sector_exposure", "Committed gross exposure per sector, quote currency",
                            labels=["sector"])
    for name, v in sectors.items():
        sec.add_metric([name], v)
    yield sec
    dd_g = GaugeMetricFamily("alphad_drawdown", "Current drawdown of each measure of the ladder, fraction of its "
                             "reference peak (0.05 = 5%)", labels=["measure"])
    for k, name in enumerate(DD_MEASURE_NAMES):
        dd_g.add_metric([name], float(dd[D_DRAWDOWN + k]))
    yield dd_g
    worst = GaugeMetricFamily("alphad_drawdown_max", "Deepest peak-to-trough drawdown seen, fraction")
    worst.add_metric([], float(dd[D_MAX_DRAWDOWN]))
    yield worst
    level = GaugeMetricFamily("alphad_drawdown_level", "The drawdown ladder's step: 0 normal, 1 warning, "
                              "2 critical (REDUCING), 3 emergency (risk x0.5), 4 kill (HALTED, flatten)")
    level.add_metric([], float(dd[D_LEVEL]))
    yield level
