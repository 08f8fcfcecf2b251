"""The one Prometheus endpoint: a collector that reads the shared metrics block.

prometheus_client is used for exposition only.  At scrape time the collector
turns the stages' plain int64 counters and bucket counts into metric families;
no prometheus_client object is touched per event.
"""
from __future__ import annotations

import time

from prometheus_client import start_http_server
from prometheus_client.core import (CollectorRegistry, CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

from alphad.ipc import metrics as mx
from alphad.ipc.control import (FEED_BAD_RECORDS, PROVIDERS, S_EVENTS_IN, S_EVENTS_OUT, S_HEARTBEAT, S_INFER_PROVIDER,
                                S_READY, S_RESTARTS, STAGE_INDEX, STAGES, STATE_NAMES, W_REASON, ControlBlock)
from alphad.ipc.metrics import MetricsBlock
from alphad.ops.exporter_disk import disk_families
from alphad.ops.exporter_risk import risk_families


def _histogram(block: MetricsBlock, row: int) -> tuple[list[tuple[str, float]], float]:
    counts = block.histogram(row)
    buckets, cum = [], 0
    for bound_ns, c in zip(mx.BUCKETS_NS, counts[:-1]):
        cum += int(c)
        buckets.append((repr(int(bound_ns) / 1e9), cum))
    cum += int(counts[-1])
    buckets.append(("+Inf", cum))
    return buckets, block.latency_sum_ns(row) / 1e9


class DriftView:
    """Live PSI per feature from the inference stage's shared histogram counts."""

    def __init__(self, reference, segment_name: str):
        import numpy as np

        self.names = list(reference.feature_names)
        self.reference = np.asarray(reference.fractions, np.float64)
        self.segment_name = segment_name
        self._counts = None

    def rows(self) -> int:
        """Live rows counted so far (0 until the stage created its counts)."""
        return 0 if self._counts is None else int(self._counts[0].sum())

    def psi(self):
        """PSI per feature (NaN before any live row), or None until the stage created its counts."""
        import numpy as np

        from alphad.ipc.shm import Segment
        from alphad.daemon.infer.drift import psi

        if self._counts is None:
            try:
                seg = Segment.attach(self.segment_name)
            except FileNotFoundError:
                return None
            self._seg = seg
            self._counts = seg.buf[64 : 64 + self.reference.size * 8].view(np.int64).reshape(self.reference.shape)
        return psi(self.reference, self._counts)


class AlphadCollector:
    def __init__(self, metrics: MetricsBlock, control: ControlBlock, rings: dict | None = None,
                 reason_names: dict[int, str] | None = None, drift: DriftView | None = None,
                 gateway=None, symbols: list[str] | None = None, data_health=None, risk=None,
                 journal_dir=None, reason_name=None):
        """``gateway``: a live venue's gateway block (ipc/gateway_block.py), with the
        universe's ``symbols``; None without one.  ``data_health``: a callable returning the
        feed's :class:`~alphad.daemon.supervisor.data_health.DataHealth`, or None.  ``risk``:
        a :class:`~alphad.daemon.shell.risk_view.RiskView` (positions, exposure, drawdown);
        ``journal_dir``: the journal's directory (its size, its disk's room); ``reason_name``:
        the name of a trading-state reason code (``ControlPort.reason_name``)."""
        self.risk = risk
        self.journal_dir = journal_dir
        self.reason_name = reason_name or str
        self.gateway = gateway
        self.data_health = data_health
        self.symbols = symbols or []
        self.metrics = metrics
        self.control = control
        self.rings = rings or {}
        self.reason_names = reason_names or {}
        self.drift = drift

    @classmethod
    def for_supervisor(cls, sup) -> "AlphadCollector":
        """The collector of a running :class:`~alphad.daemon.supervisor.supervisor.Supervisor`."""
        from alphad.daemon.config import resolve
        from alphad.daemon.risk.core import REASONS

        return cls(sup.metrics, sup.control, sup.rings, REASONS, sup.drift, gateway=sup.gateway,
                   symbols=[i.symbol for i in sup.cfg.universe], data_health=sup.port.data.read,
                   risk=sup.port.data.view, reason_name=sup.port.reason_name,
                   journal_dir=resolve(sup.base, sup.cfg.journal.dir) if sup.cfg.journal.enabled else None)

    def collect(self):
        m = self.metrics
        t2t = HistogramMetricFamily("alphad_tick_to_trade_seconds",
                                    "Feed ingress (t_origin) to the order handed to the venue adapter")
        buckets, total = _histogram(m, mx.ROW_T2T)
        t2t.add_metric([], buckets, total)
        yield t2t
        stage_lat = HistogramMetricFamily("alphad_stage_latency_seconds",
                                          "t_origin to the moment each stage emitted its output", labels=["stage"])
        for i, s in enumerate(STAGES):
            buckets, total = _histogram(m, i)
            stage_lat.add_metric([s], buckets, total)
        yield stage_lat
        events = CounterMetricFamily("alphad_events", "Records consumed and emitted per stage",
                                     labels=["stage", "direction"])
        for i, s in enumerate(STAGES):
            events.add_metric([s, "in"], self.control.stage(i, S_EVENTS_IN))
            events.add_metric([s, "out"], self.control.stage(i, S_EVENTS_OUT))
        yield events
        ri, ro = STAGES.index("risk"), STAGES.index("router")
        orders = CounterMetricFamily("alphad_orders", "Orders sent to the venue adapter")
        orders.add_metric([], m.counter(ro, mx.C_ORDERS))
        yield orders
        fills = CounterMetricFamily("alphad_fills", "Fills applied by the risk stage")
        fills.add_metric([], m.counter(ri, mx.C_FILLS))
        yield fills
        denials = CounterMetricFamily("alphad_risk_denials", "Orders denied by the pre-trade gate",
                                      labels=["reason"])
        for code, n in enumerate(m.denials_by_reason()):
            if n:
                denials.add_metric([self.reason_names.get(code, str(code))], int(n))
        yield denials
        overruns = CounterMetricFamily("alphad_ring_overruns", "Records a consumer lost on an overwrite ring",
                                       labels=["ring", "consumer"])
        for kind, ring in self.rings.items():
            for ci, cname in enumerate(ring.consumer_names()):
                overruns.add_metric([kind, cname], ring.overruns(ci))
        yield overruns
        state = GaugeMetricFamily("alphad_trading_state", "1 for the current trading state", labels=["state"])
        for code, name in STATE_NAMES.items():
            state.add_metric([name], 1.0 if self.control.trading_state == code else 0.0)
        yield state
        yield from self._stages()
        if self.risk is not None:
            yield from risk_families(self.risk, self.symbols)
        if self.journal_dir is not None:
            yield from disk_families(self.journal_dir)
        pnl = GaugeMetricFamily("alphad_pnl", "Profit and loss in quote currency: realized and unrealized are "
                                "gross of fees; net = realized + unrealized - fees", labels=["kind"])
        g = m.gauges
        pnl.add_metric(["realized"], float(g[mx.G_REALIZED_PNL]))
        pnl.add_metric(["unrealized"], float(g[mx.G_UNREALIZED_PNL]))
        pnl.add_metric(["fees"], float(g[mx.G_FEES]))
        pnl.add_metric(["net"], float(g[mx.G_REALIZED_PNL] + g[mx.G_UNREALIZED_PNL] - g[mx.G_FEES]))
        yield pnl
        code = self.control.stage(STAGE_INDEX["infer"], S_INFER_PROVIDER)
        if code:
            prov = GaugeMetricFamily("alphad_inference_provider", "1 for the ONNX Runtime execution provider "
                                     "the infer stage's session runs on", labels=["provider"])
            prov.add_metric([PROVIDERS[code]], 1.0)
            yield prov
        eq = GaugeMetricFamily("alphad_equity", "Account equity in quote currency")
        eq.add_metric([], float(m.gauges[mx.G_EQUITY]))
        yield eq
        mult = GaugeMetricFamily("alphad_sizing_multiplier", "Sizing multipliers: the drawdown ladder's risk "
                                 "multiplier, and the VIX, HMM regime, GARCH volatility-target and fractional-Kelly "
                                 "multipliers of the last signal risk sized (risk.sizing)", labels=["kind"])
        for name, g in (("risk", mx.G_RISK_MULT), ("vix", mx.G_VIX_MULT), ("regime", mx.G_REGIME_MULT),
                        ("vol_target", mx.G_VOL_MULT), ("kelly", mx.G_KELLY)):
            if m.gauges[g] == m.gauges[g]:  # NaN: no sizing yet (or none configured)
                mult.add_metric([name], float(m.gauges[g]))
        yield mult
        risk = GaugeMetricFamily("alphad_portfolio_risk", "One-day historical VaR and CVaR at 95% of the positions "
                                 "held (fraction of equity) and the mean pairwise correlation of their day returns",
                                 labels=["measure"])
        for name, g in (("var_95", mx.G_VAR_95), ("cvar_95", mx.G_CVAR_95), ("mean_correlation", mx.G_MEAN_CORR)):
            if m.gauges[g] == m.gauges[g]:  # NaN: under 20 days of returns, or nothing held
                risk.add_metric([name], float(m.gauges[g]))
        yield risk
        fitted = [i for i in range(mx.IMPACT_INSTRUMENTS) if m.impact[i, 3] > 0]
        if fitted:
            g = GaugeMetricFamily("alphad_impact_coefficient", "Almgren-Chriss impact coefficients the router "
                                  "fitted from its own fills", labels=["instrument", "param"])
            for i in fitted:
                for f, name in enumerate(mx.IMPACT_FIELDS):
                    g.add_metric([str(i), name], float(m.impact[i, f]))
            yield g
        values = self.drift.psi() if self.drift is not None else None
        if values is not None:
            g = GaugeMetricFamily("alphad_feature_psi", "Population stability index of each model input "
                                  "against the training data (> 0.25: drifted)", labels=["feature"])
            for name, v in zip(self.drift.names, values):
                g.add_metric([name], float(v))
            yield g
        if self.gateway is not None:
            yield from self._gateway()
        if self.data_health is not None:
            yield from self._data(self.data_health())

    def _stages(self):
        """The trading state's number and reason; each stage's liveness, restarts and errors."""
        code = GaugeMetricFamily("alphad_trading_state_code", "The trading state as a number (0 ACTIVE, "
                                 "1 REDUCING, 2 HALTED), labelled with the reason it was last raised", labels=["reason"])
        code.add_metric([self.reason_name(int(self.control.words[W_REASON]))], float(self.control.trading_state))
        yield code
        now = time.monotonic_ns()
        ready = GaugeMetricFamily("alphad_stage_ready", "1 while the stage is ready (0: starting, dead, "
                                  "restarting)", labels=["stage"])
        age = GaugeMetricFamily("alphad_stage_heartbeat_age_seconds", "Seconds since the stage's last heartbeat "
                                "(-1 before the first)", labels=["stage"])
        restarts = CounterMetricFamily("alphad_stage_restarts", "Restarts of the stage by the supervisor since "
                                       "the daemon started", labels=["stage"])
        errors = CounterMetricFamily("alphad_stage_errors", "Recoverable errors each stage counted (router: a "
                                     "repeated or unanswerable order, a full queue; risk: a bad record)", labels=["stage"])
        for i, s in enumerate(STAGES):
            hb = self.control.stage(i, S_HEARTBEAT)
            ready.add_metric([s], float(self.control.stage(i, S_READY)))
            age.add_metric([s], (now - hb) / 1e9 if hb else -1.0)
            restarts.add_metric([s], self.control.stage(i, S_RESTARTS))
            errors.add_metric([s], self.metrics.counter(i, mx.C_ERRORS))
        yield from (ready, age, restarts, errors)
        rejects = CounterMetricFamily("alphad_router_rejects", "Orders the router answered REJECTED (venue "
                                      "reject, full order store or venue queue)")
        rejects.add_metric([], self.metrics.counter(STAGE_INDEX["router"], mx.C_REJECTS))
        yield rejects

    def _data(self, health):
        down = GaugeMetricFamily("alphad_feed_data_down", "Market data the live feed reports down: its broken data "
                                 "farms (IB's 2103/2105) plus 1 while its link is lost; 0 when healthy")
        down.add_metric([], float(health.feed_data_down))
        yield down
        bad = CounterMetricFamily("alphad_feed_bad_records", "Market data records the feed skipped as bad "
                                  "(feed.on_bad_record: a recording's rows at load, a live source's messages)")
        bad.add_metric([], self.control.stage(STAGE_INDEX["feed"], FEED_BAD_RECORDS))
        yield bad
        stale = GaugeMetricFamily("alphad_instrument_data_stale", "1 while risk gives an instrument no new order "
                                  "for lack of data (the feed down and none for risk.max_data_age_ms)", labels=["symbol"])
        for sym in self.symbols:
            stale.add_metric([sym], float(sym in health.stale))
        yield stale

    def _gateway(self):
        from alphad.ipc import gateway_block as gb

        w = self.gateway.words
        up = GaugeMetricFamily("alphad_gateway_up", "The live venue's gateway process is ready (1) or not (0), and "
                               "its order-event stream is connected", labels=["what"])
        up.add_metric(["ready"], float(w[gb.G_READY]))
        up.add_metric(["stream"], float(w[gb.G_STREAM_UP]))
        yield up
        events = CounterMetricFamily("alphad_gateway_events", "What the gateway met: stream reconnects, HTTP errors "
                                     "(5xx, timeouts, refused), 429s, orders sent, venue rejects, fills recovered "
                                     "by a query, position differences booked the broker's way, process starts", labels=["kind"])
        for name, word in (("reconnects", gb.G_RECONNECTS), ("http_errors", gb.G_HTTP_ERRORS),
                           ("rate_limited", gb.G_RATE_LIMITED), ("sent", gb.G_SENT), ("rejects", gb.G_REJECTS),
                           ("recovered_fills", gb.G_RECOVERED_FILLS), ("adjustments", gb.G_ADJUSTMENTS),
                           ("disconnects", gb.G_DISCONNECTS), ("starts", gb.G_STARTS)):
            events.add_metric([name], int(w[word]))
        yield events
        farms = GaugeMetricFamily("alphad_gateway_data_farms_down", "Market-data farms the venue reports broken "
                                  "now (IB's 2103/2105; 2104/2106 clear them)")
        farms.add_metric([], float(w[gb.G_FARMS_DOWN]))
        yield farms
        unknown = GaugeMetricFamily("alphad_gateway_unknown_orders", "Orders whose fate at the venue is unknown now "
                                    "(a 5xx, timeout or disconnect; a query settles each)")
        unknown.add_metric([], float(w[gb.G_UNKNOWN]))
        yield unknown
        pos = GaugeMetricFamily("alphad_venue_position", "Net position the broker holds, as last read",
                                labels=["symbol"])
        for sym, q in zip(self.symbols, self.gateway.positions):
            if q == q:
                pos.add_metric([sym], float(q))
        yield pos


def serve(collector: AlphadCollector, host: str, port: int):
    """Start the HTTP endpoint in a daemon thread; returns the server (``server.server_port``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
