"""One small adapter per stage: what the shell knows of a core.

An adapter builds its core's state from config, binds and warms the compositions the
process will call (:mod:`alphad.daemon.shell.tick`), says which record kinds it
consumes (:meth:`consumers`), and does the stage's housekeeping.  In a process that
hosts several stages it hands what its step emitted back to the shell
(:meth:`ProcessRunner.emitted`), which pushes it to a ring or on to the next local
consumer.  A process that hosts one stage and blocks drains it in one
compiled call (``DRAIN`` over :meth:`drain_args`; the loop in :mod:`~alphad.daemon.shell.tick`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from alphad.daemon.config import resolve
from alphad.daemon.features.core import FeatureCore
from alphad.daemon.feed.core import FeedCore, LiveFeedCore, new_feed_state
from alphad.daemon.feed.sources import parse_speed, read_and_report, stream_events
from alphad.daemon.infer.core import InferCore, infer_gather
from alphad.daemon.infer.model_card import read_card
from alphad.daemon.infer.session import ModelSession
from alphad.daemon.jit import bind
from alphad.daemon.risk import core as rk
from alphad.daemon.risk.drawdown import D_LEVEL, AlertSender, DrawdownArrays
from alphad.daemon.risk.analytics import portfolio_risk
from alphad.daemon.risk.codes import A_DAY_START_EQUITY, A_EQUITY, A_LOSS_REF, B_POSITION
from alphad.daemon.risk.portfolio import purge_tombstones
from alphad.daemon.supervisor.journal_checkpoint import load_risk, rebuild_records, since_checkpoint
from alphad.daemon.risk.codes import DD_EVENT_ESCALATE, DD_EVENT_RECOVER
from alphad.daemon.router import core as rt
from alphad.daemon.router.ledger import CAPACITY as LEDGER_CAPACITY
from alphad.daemon.router.parents import N_PG
from alphad.daemon.shell import tick
from alphad.daemon.shell.model_swap import ModelSwap
from alphad.daemon.shell.reload import answer
from alphad.daemon.shell.ports import out_port
from alphad.ipc import feature_list
from alphad.ipc import metrics as mx
from alphad.ipc.control import (C_FLATTEN, FEED_BAD_RECORDS, FEED_DATA_DOWN, FEED_LOOPS, FEED_POS, FEED_SEQ, HALTED,
                                S_EVENTS_IN, S_INFER_PROVIDER, S_INFER_REHEARSALS, STAGE_INDEX, W_CANCEL_ALL_DONE,
                                W_DAY_RESTORED, W_EPOCH, W_ID_SESSION, W_STATE, provider_code, stage_word)
from alphad.ipc.doorbell import ring_doorbell
from alphad.ipc.dtypes import EXEC_DTYPE, VENUE_REQ_DTYPE
from alphad.ipc.ring import Ring, ring_pop, ring_push
from alphad.ipc.shm import Segment, state_size, state_views

FEED, FEATURES, INFER, RISK, ROUTER = (STAGE_INDEX[s] for s in ("feed", "features", "infer", "risk", "router"))


def shared_arrays(name: str, specs: list[tuple[tuple[int, ...], type]], *, set_up: bool = True):
    """Arrays in segment ``name`` that outlive this process (risk positions, router ids).

    Returns ``(segment, fresh, views)``; ``fresh`` is False when a previous
    incarnation of the stage left its state there, which the caller then adopts.
    ``set_up`` False: the caller marks the state set up (``segment.buf[0] = 1``) once it
    has filled it (risk, after its rebuild from the journal).
    """
    seg = Segment.create(name, state_size(specs), exist_ok=True)
    fresh = seg.buf[0] == 0
    views = state_views(seg.buf, specs)
    if set_up:
        seg.buf[0] = 1  # written last: a stage killed while initialising starts fresh again
    return seg, fresh, views




class Warmup:
    """Scratch counters and outputs: warm-up runs touch no live state and push nothing."""

    def __init__(self, shell):
        self.m, self.ctl = np.zeros_like(shell.m), np.zeros_like(shell.ctl)
        self.bells = shell.bells
        self.md = np.zeros(1, shell.bufs_dtype("md"))

    def out(self, kind: str, stage: int, recs: np.ndarray | None = None):
        from alphad.ipc import dtypes

        recs = recs if recs is not None else np.zeros(2, dtypes.RECORDS[kind])
        return out_port(recs, None, self.bells, self.m, self.ctl, stage)

    @staticmethod
    def bound(dispatcher, *args):
        """Bind ``dispatcher`` for these argument types and run it once on them."""
        ep = bind(dispatcher, *args)
        ep(*args)
        return ep


#: Live sources by ``feed.source`` (module, class): a network client in the feed process.
LIVE_SOURCES = {"alpaca": ("alphad.daemon.feed.alpaca", "AlpacaMarketData"),
                "ib": ("alphad.daemon.feed.ib", "IbMarketData")}


class FeedStage:
    name = "feed"
    #: A live source (``feed.source: alpaca`` or ``ib``): :class:`LiveFeedCore` over it.
    live = False

    def __init__(self, shell, *, simulated: bool, bench_rate_hz: float | None):
        cfg = shell.cfg
        self.shell = shell
        if cfg.feed.source in LIVE_SOURCES:
            self._init_live(shell, simulated, bench_rate_hz)
            return
        # The backtest streams the recording in chunks (constant memory); the daemon loads it
        # whole (it replays in a loop, and a restarted feed resumes at a position).
        self._chunks = stream_events(cfg.feed, shell.base, cfg.universe) if simulated else None
        self.load_s = 0.0
        if simulated:
            events = next(self._chunks)
        else:
            loaded = read_and_report(cfg.feed, shell.base, cfg.universe)
            events = loaded.events
            shell.ctl[stage_word(FEED, FEED_BAD_RECORDS)] = loaded.report.total  # for ctl status and /metrics
        speed = 0.0 if simulated else parse_speed(cfg.feed.speed)
        loop = cfg.feed.loop and not simulated
        if bench_rate_hz:
            speed, loop = 1.0, True
        self.core = FeedCore(events, speed=speed, rate_hz=bench_rate_hz, loop=loop)
        ctl = shell.ctl
        if ctl[stage_word(FEED, FEED_SEQ)] > 0 and not simulated:  # restarted: resume, never reuse a seq
            self.core.pos = int(ctl[stage_word(FEED, FEED_POS)]) % len(events)
            self.core.seq = int(ctl[stage_word(FEED, FEED_SEQ)])
            self.core.loops = int(ctl[stage_word(FEED, FEED_LOOPS)])
        self.port = shell.ports["md"]

    def _init_live(self, shell, simulated: bool, bench_rate_hz: float | None) -> None:
        """A live source's stage: its client (keys read from the environment now), the core
        over it; the client connects at the end of :meth:`warm`."""
        import importlib

        source = shell.cfg.feed.source
        if simulated:
            raise ValueError(f"feed.source {source} is a live market-data stream: a backtest or a replay needs a "
                             f"recording (feed.source replay, feed.path)")
        if bench_rate_hz:
            raise ValueError(f"alphad bench paces a recorded feed; feed.source {source} is a live stream")
        module, cls = LIVE_SOURCES[source]
        self.live, self._chunks, self.load_s = True, None, 0.0
        self.source = getattr(importlib.import_module(module), cls).from_config(shell.cfg)
        self.core = LiveFeedCore(self.source)
        if shell.ctl[stage_word(FEED, FEED_SEQ)] > 0:  # restarted: never reuse a seq
            self.core.seq = int(shell.ctl[stage_word(FEED, FEED_SEQ)])
        self.port = shell.ports["md"]
        if shell.wait != "block":  # a loop that never sleeps lets the network thread run this often
            sys.setswitchinterval(min(sys.getswitchinterval(), 1e-4))

    def next_chunk(self) -> bool:
        """The streamed recording's next chunk into the core; False at its end.  The time
        spent reading and parsing adds up in :attr:`load_s` (a backtest reports it apart)."""
        t = time.perf_counter()
        events = next(self._chunks, None) if self._chunks is not None else None
        self.load_s += time.perf_counter() - t
        if events is None:
            return False
        self.core.refill(events)
        return True

    def consumers(self) -> dict:
        return {}

    def warm(self, w: Warmup) -> None:
        scratch = new_feed_state(self.core.events, np.array([0, 1, 0], np.int64))
        self.publish = w.bound(tick.feed_publish, scratch, 0, 0, w.out("md", FEED), -1)
        if self.live:  # the network thread rings this process's doorbell as records arrive, then connects
            bells, idx = self.shell.bells, self.shell.index
            ring = w.bound(ring_doorbell, np.zeros_like(bells.words), bells.addr, idx)
            self.source.notify = lambda: ring(bells.words, bells.addr, idx)
            self.source.start()

    def housekeeping(self, now: int) -> None:
        if self.live:  # its data health, for risk's stale-data stop and for ctl status; what it refused
            self.shell.ctl[stage_word(FEED, FEED_DATA_DOWN)] = self.source.data_down()
            self.shell.ctl[stage_word(FEED, FEED_BAD_RECORDS)] = sum(self.source.bad_records().values())

    def close(self) -> None:
        """Stop a live source's client (bounded)."""
        if self.live:
            self.source.stop()


class FeaturesStage:
    name = "features"
    DRAIN = tick.features_drain
    DRAIN_INPUTS = ("md",)

    def __init__(self, shell):
        cfg, self.shell = shell.cfg, shell
        self._list_seg = Segment.attach(shell.names["feature_list"])
        feature_list.publish(self._list_seg, cfg.features.set, _feature_names(cfg.features.set))
        symbols = [i.symbol for i in cfg.universe]
        tradable = [cfg.risk.instruments.get(sym, cfg.risk.instrument_defaults).tradable for sym in symbols]
        self.core = FeatureCore(cfg.features, len(cfg.universe), symbols=symbols, tradable=tradable, base=shell.base)
        self.state = self.core.state
        self.port = shell.ports["features"]

    def consumers(self) -> dict:
        return {"md": self.on_md}

    def on_md(self, md, n, clock):
        k, pushed = self._publish(self.state, md, n, self.port, clock)
        self.shell.emitted("features", k, pushed, clock)

    def warm(self, w: Warmup) -> None:
        self._publish = w.bound(tick.features_publish, self.core.scratch_state(), w.md, 1, w.out("features", FEATURES),
                                -1)

    def drain_args(self, ports: dict, w: Warmup | None) -> tuple:
        live = w is None
        return (ports["md"], self.shell.batch, self.state if live else self.core.scratch_state(),
                self.port if live else w.out("features", FEATURES))

    def housekeeping(self, now: int) -> None:
        pass


def _feature_names(feature_set: str):
    from alphad.daemon.features.core import feature_names

    return feature_names(feature_set)


class InferStage:
    name = "infer"
    DRAIN = tick.infer_drain
    DRAIN_INPUTS = ("features",)

    def __init__(self, shell, *, keep_warm_ns: int):
        cfg, self.shell = shell.cfg, shell
        seg = Segment.attach(shell.names["feature_list"])
        _, published = feature_list.read(seg, cfg.supervisor.start_timeout_s)
        seg.close()
        session = ModelSession(resolve(shell.base, cfg.model.card), published, provider=cfg.model.provider,
                               max_batch=cfg.model.max_batch, runtime=cfg.model.runtime)
        print(f"alphad stage infer: model {cfg.model.card}, runtime {cfg.model.runtime}, providers in use: "
              f"{session.providers}"
              + ("" if session.fast_path else " (public run_with_iobinding: slower)"), file=sys.stderr, flush=True)
        shell.control.set_stage(INFER, S_INFER_PROVIDER, provider_code(session.providers[0]))
        drift = None
        ref = session.card.drift_reference
        if ref is not None:  # live histograms in shared memory: the exporter computes PSI from them
            shape = (len(ref.feature_names), len(ref.fractions[0]))
            self._drift_seg, _, (drift,) = shared_arrays(shell.names["drift"], [(shape, np.int64)])
        reg = cfg.features.regime
        self.inputs = (bool(reg and reg.vix_symbol), bool(reg and reg.index_symbol), bool(reg and reg.params))
        self.features, self.card_path, self._drift, self._swap = published, resolve(shell.base, cfg.model.card), drift, None
        self.rebind = None  # set by a blocking loop's drain: it holds the state and session
        self._take(session)
        self.port = shell.ports["signals"]
        self.keep_warm_ns = keep_warm_ns
        self.rehearsals = 0

    def _take(self, session) -> None:
        """The core over ``session`` (at start, and at a model swap)."""
        m, cfg = self.shell.cfg.model, self.shell.cfg
        self.core = InferCore(session, weight_per_unit=m.weight_per_unit, weight_cap=m.weight_cap,
                              min_abs_prediction=m.min_abs_prediction, drift_counts=self._drift, sizing=cfg.risk.sizing,
                              inputs=self.inputs)
        self.session, self.state = session, self.core.state

    def reload(self, cfg, gen: int) -> bool | None:
        """``ctl reload`` with another model card (or the same card retrained): loaded beside the
        running model (:class:`ModelSwap`), swapped in at a later housekeeping."""
        card = resolve(self.shell.base, cfg.model.card)
        if card == self.card_path and read_card(card).onnx_sha256 == self.session.card.onnx_sha256:
            return True  # the model is unchanged
        self._swap = ModelSwap(card, self.features, cfg.model, gen)
        return None

    def _finish_swap(self) -> None:
        swap, self._swap = self._swap, None
        if swap.session is None:
            print(f"alphad stage infer: model {swap.card} refused, the running one stays: {swap.error}",
                  file=sys.stderr, flush=True)
            answer(self.shell, "infer", swap.gen, False)
            return
        ref = swap.session.card.drift_reference
        if self._drift is not None and (ref is None or self._drift.shape != (len(ref.feature_names), len(ref.fractions[0]))):
            print("alphad stage infer: the new model's drift reference differs in shape: no live drift until "
                  "a restart", file=sys.stderr, flush=True)
            self._drift = None
        if self._drift is not None:
            self._drift[:] = 0  # histograms of the new model's inputs from now on
        self._take(swap.session)
        self.card_path = swap.card
        if self.rebind is not None:
            self.rebind()
        self.shell.control.set_stage(INFER, S_INFER_PROVIDER, provider_code(swap.session.providers[0]))
        print(f"alphad stage infer: model {swap.card} in use (settings generation {swap.gen})", file=sys.stderr,
              flush=True)
        answer(self.shell, "infer", swap.gen, True)

    def consumers(self) -> dict:
        return {"features": self.on_rows}

    def on_rows(self, rows, n, clock):
        self.last_rows = rows  # what a keep-warm rehearsal replays
        s, st = self.session, self.state
        done = 0
        while done < n:  # a batch larger than the model's runs in model batches
            m = min(n - done, s.max_batch)
            chunk = rows[done : done + m] if done or m < n else rows
            self._gather(st, chunk, m)
            k, pushed = self.publish(st, chunk, m, s.run_bound(m), self.port, clock)
            self.shell.emitted("signals", k, pushed, clock)
            done += m

    def warm(self, w: Warmup) -> None:
        self.session.warm()
        rows = np.zeros(2, self.shell.bufs_dtype("features"))
        self._gather = w.bound(infer_gather, self.core.quiet, rows, 1)
        y = self.session.run_bound(1)
        self.publish = w.bound(tick.infer_publish, self.core.quiet, rows, 1, y, w.out("signals", INFER), -1)
        self.last_rows, self._rehearsal_out = rows, np.zeros(2, self.shell.bufs_dtype("signals"))
        self.core.rehearse(rows, self._rehearsal_out)

    def rehearse(self) -> None:
        """One keep-warm run of the step on a scratch copy (see ``InferCore.rehearse``)."""
        self.core.rehearse(self.last_rows, self._rehearsal_out)
        self.rehearsals += 1

    def drain_args(self, ports: dict, w: Warmup | None) -> tuple:
        return (ports["features"], self.state if w is None else self.core.quiet)

    def housekeeping(self, now: int) -> None:
        if self._swap is not None and self._swap.done:  # between two batches: the model swap
            self._finish_swap()
        if self.keep_warm_ns:
            self.shell.control.set_stage(INFER, S_INFER_REHEARSALS, self.rehearsals)


class RiskStage:
    name = "risk"
    DRAIN = tick.risk_drain
    DRAIN_INPUTS = ("md", "signals", "exec")

    def __init__(self, shell, *, simulated: bool):
        cfg, self.shell = shell.cfg, shell
        self._seg, fresh, views = shared_arrays(shell.names["risk_state"], rk.state_specs_of(cfg), set_up=False)
        # live steps run on CLOCK_MONOTONIC, a backtest's and a replay's on the records' UTC time
        utc_offset = 0 if simulated or shell.replay else time.time_ns() - time.monotonic_ns()
        self.core = rk.RiskCore(cfg.universe, cfg.risk, shell.control.risk_control, shared=(views, fresh),
                                metrics=shell.m, session=int(shell.ctl[W_ID_SESSION]), utc_offset_ns=utc_offset)
        self.state = self.core.state
        if fresh and not simulated and cfg.journal.enabled:
            self.rebuild(resolve(shell.base, cfg.journal.dir) / "journal.jsonl")
        # Set up only now: a stage killed or failing during the rebuild leaves the segment
        # fresh, so the next start rebuilds again instead of adopting half a book.
        self._seg.buf[0] = 1
        self.simulated = simulated
        self.port = shell.ports["orders"]
        self.denials = shell.out_port("denials", RISK, self.core.denials)
        self._resumes_seen = shell.control.resume_requests
        self._next_purge = self._next_risk = 0
        self._dd_level = int(self.core.dd_state[D_LEVEL])
        self._alerts = None
        if cfg.risk.drawdown.webhook_url:  # ladder alerts, posted off the hot path by a thread
            self._alerts = AlertSender(cfg.risk.drawdown.webhook_url, cfg.risk.drawdown.alert_cooldown_s)
            self._ladder = DrawdownArrays(cfg.risk.initial_equity, 16)
            self._ladder.state = self.core.dd_state

    def rebuild(self, journal: Path) -> None:
        """Crash-only: a fresh ``risk_state`` segment (a full restart of the daemon) takes the
        book, cash, realised PnL and fees from the journal before the stage reports ready:
        from its last checkpoint, when there is one (the files before it may be pruned), then
        the entries after it."""
        if not journal.exists():
            return
        cp, after = since_checkpoint(journal, ("order", "exec", "control"))
        self._restore_halts(cp, after)
        orders, reports, due = rebuild_records(after)
        if cp is None and len(orders) == 0 and len(reports) == 0:
            return  # a first start
        if cp is not None:
            load_risk(self.core, cp, self.shell.cfg)
        rk.risk_rebuild(self.state, orders, reports, due)
        control, account = self.shell.control, self.core.account
        if self.shell.ctl[W_DAY_RESTORED]:  # the same trading day: its references, not today's equity
            account[A_DAY_START_EQUITY], account[A_LOSS_REF] = control.day_references
        held = {self.shell.cfg.universe[i].symbol: float(q) for i, q in enumerate(self.core.book[:, B_POSITION]) if q}
        since = "" if cp is None else f"the checkpoint at entry n={cp['n']} and "
        print(f"alphad stage risk: rebuilt from {journal}: {since}{len(orders)} orders, {len(reports)} exec reports; "
              f"positions {held or 'flat'}; equity {account[A_EQUITY]:.2f}, day-start equity "
              f"{account[A_DAY_START_EQUITY]:.2f}", file=sys.stderr, flush=True)

    def _restore_halts(self, cp: dict | None, after: list[dict]) -> None:
        """The instruments an operator halted (``ctl halt --symbol``) and did not resume:
        those checkpoint ``cp`` holds, then the control entries ``after`` it."""
        symbols = [ins.symbol for ins in self.shell.cfg.universe]
        for s in cp["halted"] if cp is not None else ():
            if s in symbols:
                self.core.halts[symbols.index(s)] = 1
        for e in after:
            if e.get("type") == "control" and e.get("symbol") in symbols and e.get("command") in ("halt", "resume"):
                self.core.halts[symbols.index(e["symbol"])] = e["command"] == "halt"
        if self.core.halts.any():
            print(f"alphad stage risk: halted by an operator: {[s for s, h in zip(symbols, self.core.halts) if h]}",
                  file=sys.stderr, flush=True)

    def consumers(self) -> dict:
        return {"md": self.on_md, "signals": self.on_signals, "exec": self.on_exec}

    def on_md(self, md, n, clock):
        # Live, marks only: the drawdown ladder runs from housekeeping (every 20 ms), and the
        # daily-loss kill switch is also checked by the gate on every order.  The backtest
        # and the replay run the ladder per mark, on the event clock, and a KILL step flattens
        # at the mark that struck it (housekeeping's wall-clock cadence would move it).
        self._marks(self.state, md, n)
        if clock >= 0:
            self._watch(self.state, clock)
            if self.core.control[C_FLATTEN] == 1:
                self._flatten_now(clock, clock)
            self._trim_now(clock, clock)

    def on_signals(self, sigs, n, clock):
        k, pushed = self._publish(self.state, sigs, n, self.port, clock)
        self.journal_denials()
        self.shell.emitted("orders", k, pushed, clock)

    def on_exec(self, reports, n, clock):
        self._fills(self.state, reports, n)

    def journal_denials(self) -> None:
        """Hand the step's denials to the journal (an overwrite ring: never blocks the gate)."""
        self._push_denials(self.state, self.denials)

    def warm(self, w: Warmup) -> None:
        s = self.core.scratch_state()
        self._publish = w.bound(tick.risk_publish, s, np.zeros(1, self.shell.bufs_dtype("signals")), 1,
                                w.out("orders", RISK), -1)
        self._fills = w.bound(rk.risk_fills, s, np.zeros(1, self.shell.bufs_dtype("exec")), 1)
        self._marks = w.bound(rk.risk_marks, s, w.md, 1)
        self._watch = w.bound(rk.risk_watch, s, 0)
        self._flatten = w.bound(rk.risk_flatten, s, np.zeros(2, self.shell.bufs_dtype("orders")), 0)
        self._rebalance = w.bound(rk.risk_rebalance, s, np.zeros(2, self.shell.bufs_dtype("orders")), 0)
        self._resume = w.bound(rk.risk_resume, s, 0)
        self._data_watch = w.bound(rk.risk_data_watch, s, 0, 0)
        self._publish_flatten = w.bound(tick.publish_records, w.out("orders", RISK), 0, 0, -1)
        self._push_denials = w.bound(tick.push_denials, s, w.out("denials", RISK, np.zeros(2, self.core.denials.dtype)))
        self._purge = w.bound(purge_tombstones, np.copy(self.core.oo_ids), np.copy(self.core.oo_vals))
        rk.publish_gauges(self.core.account, self.core.last_size, np.zeros(mx.N_GAUGES))

    def drain_args(self, ports: dict, w: Warmup | None) -> tuple:
        live = w is None
        return (ports["md"], ports["signals"], ports["exec"], self.shell.batch,
                self.state if live else self.core.scratch_state(), self.port if live else w.out("orders", RISK),
                self.denials if live else w.out("denials", RISK, np.zeros(2, self.core.denials.dtype)))

    def housekeeping(self, now: int) -> None:
        """Operator requests (resume, flatten), the ladder on time alone, the status gauges."""
        c, control = self.core, self.shell.control
        requests = control.resume_requests
        if requests != self._resumes_seen:
            self._resumes_seen = requests
            self._resume(self.state, now)
        if not self.simulated:  # a backtest runs the ladder on simulated time, per mark
            self._watch(self.state, now)
            self._data_watch(self.state, now, int(self.shell.ctl[stage_word(FEED, FEED_DATA_DOWN)]))
        level = int(c.dd_state[D_LEVEL])
        if level != self._dd_level:  # a ladder step (up or down) since the last look
            event = (DD_EVENT_ESCALATE if level > self._dd_level else DD_EVENT_RECOVER) + level
            self._dd_level = level
            if self._alerts is not None:
                self._alerts.submit_event(event, self._ladder, now)
        if c.control[C_FLATTEN] == 1:  # ctl flatten, or the drawdown KILL step
            clock = self.shell.event_clock  # a backtest's flatten orders go on its clock
            self._flatten_now(now if clock < 0 else clock, clock)
        if not self.simulated:  # a backtest and a replay trim per mark, on the event clock
            self._trim_now(now, -1)
        rk.publish_gauges(c.account, c.last_size, self.shell.metrics.gauges)
        if now >= self._next_risk:  # VaR/CVaR and correlation of the holdings, once a second
            g = self.shell.metrics.gauges
            g[mx.G_VAR_95], g[mx.G_CVAR_95], g[mx.G_MEAN_CORR] = portfolio_risk(c.day_rets, c.day_n[0], c.book,
                                                                                 c.account[A_EQUITY])
            self._next_risk = now + 1_000_000_000
        control.set_day_references(c.account[A_DAY_START_EQUITY], c.account[A_LOSS_REF])  # journaled
        if now >= self._next_purge:  # keep the open-order table's probe chains short
            self._purge(c.oo_ids, c.oo_vals)
            self._next_purge = now + 1_000_000_000

    def _trim_now(self, stamp: int, clock: int) -> None:
        """The rebalancer's trims (``risk.rebalancer``), stamped ``stamp``, on to the router."""
        k = self._rebalance(self.state, self.shell.bufs["orders"], stamp)
        if k:
            k, pushed = self._publish_flatten(self.port, k, 0, clock)
            self.shell.emitted("orders", k, pushed, clock)
        self.journal_denials()

    def _flatten_now(self, stamp: int, clock: int) -> None:
        """The flatten orders (every position to zero), stamped ``stamp``, on to the router."""
        k = self._flatten(self.state, self.shell.bufs["orders"], stamp)
        if k:
            k, pushed = self._publish_flatten(self.port, k, 0, clock)
            self.shell.emitted("orders", k, pushed, clock)
        self.core.control[C_FLATTEN] = 0

    def reload(self, cfg, gen: int) -> bool:
        """``ctl reload`` / ``set``: the new limits take effect at the next order."""
        try:
            self.core.apply_limits(cfg.risk, cfg.universe)
        except ValueError as e:  # the supervisor checked the config: a failure here is a bug, said loudly
            print(f"alphad stage risk: reload generation {gen}: {e}", file=sys.stderr, flush=True)
            return False
        print(f"alphad stage risk: limits of settings generation {gen} in effect", file=sys.stderr, flush=True)
        return True

    def close(self) -> None:
        if self._alerts is not None:
            self._alerts.close(timeout_s=2.0)


def gateway_link(shell) -> dict:
    """The router's ends of a live venue's rings: ``push`` requests onto ``venue_orders``,
    ``pop`` exec reports from ``venue_exec`` (the gateway process holds the other ends)."""
    requests = Ring.attach(shell.names["ring.venue_orders"], VENUE_REQ_DTYPE, shell.bells)
    requests.claim_producer()
    replies = Ring.attach(shell.names["ring.venue_exec"], EXEC_DTYPE, shell.bells)
    ci = replies.consumer_index("router")
    replies.claim(ci)
    bells = shell.bells

    def push(buf, n):
        return ring_push(requests.h64, requests.b8, bells.words, bells.addr, buf, n)

    def pop(buf, max_n):
        return ring_pop(replies.h64, replies.b8, ci, buf, max_n)
    return {"push": push, "pop": pop, "wait": lambda: tick.wait_for_room(shell)}  # venue_orders full


class RouterStage:
    name = "router"
    DRAIN = tick.router_drain
    DRAIN_INPUTS = ("md", "orders")

    def __init__(self, shell):
        cfg, self.shell = shell.cfg, shell
        self._seg, fresh, (last_cid, ledger, progress) = shared_arrays(
            shell.names["router_state"], [((len(cfg.universe),), np.uint64), ((LEDGER_CAPACITY, 3), np.int64),
                                          ((cfg.router.algo.max_parents, N_PG), np.int64)])
        if cfg.router.venue == "paper":
            self.core = rt.RouterCore(cfg.universe, cfg.router, last_cid, ledger=ledger, progress=progress,
                                      metrics=shell.m, impact_out=shell.metrics.impact)
        else:  # a broker, through its gateway process (router/live.py)
            from alphad.daemon.router.live import LiveRouterCore

            self.core = LiveRouterCore(cfg.universe, cfg.router, last_cid, ledger=ledger, metrics=shell.m,
                                       progress=progress, **gateway_link(shell))
        self._restarted = not fresh
        # ctl cancel-all requests acted on, and the trading-state epoch of the last HALTED
        # seen: a halt (operator or kill switch) cancels working orders at the venues once.
        self._cancels_seen = int(shell.ctl[W_CANCEL_ALL_DONE])
        self._halt_epoch = int(shell.ctl[W_EPOCH]) if shell.ctl[W_STATE] == HALTED else -1
        self.port = shell.out_port("exec", ROUTER, self.core.reports)
        #: Exec reports the venues held after the last market data (see :attr:`wants_poll`).
        self.waiting = 0
        self.arrivals = shell.out_port("arrivals", ROUTER, self.core.arrivals)
        self._arrivals_ring = shell.out_rings.get("arrivals")

    @property
    def poll_ns(self) -> int:
        return self.core.poll_ns

    def consumers(self) -> dict:
        return {"md": self.on_md, "orders": self.on_orders}

    @property
    def wants_poll(self) -> bool:
        """Venue latency (reports come due later), or reports the market data caused (a
        resting order filled, a bar): the loop polls after the event (a replay's feed asks)."""
        return self.core.poll_ns > 0 or self.waiting > 0

    def on_md(self, md, n, clock):
        if clock >= 0:  # the event clock: a halt cancels before the first market data after it
            self.cancel_on_halt(clock, clock)
        self.waiting = self.core.on_md(md, n, time.monotonic_ns() if clock < 0 else clock)

    def cancel_on_halt(self, now: int, clock: int) -> None:
        """A new HALTED (operator or kill switch) cancels the working orders at the venues,
        once.  Live, from housekeeping; on the event clock (backtest, replay), before the
        first market data after the halt, so where it lands never depends on wall time."""
        ctl = self.shell.ctl
        if ctl[W_STATE] != HALTED or ctl[W_EPOCH] == self._halt_epoch:
            return
        self._halt_epoch = int(ctl[W_EPOCH])
        self._cancel_all(now, clock, "trading state HALTED")

    def _cancel_all(self, now: int, clock: int, why: str, acted=None) -> int:
        """Cancels for every working order and parent, sent at ``now``; returns how many.
        ``acted(cancelled)`` runs once they are sent and before their reports are published:
        publishing waits on the lossless exec ring, far behind at full feed speed, and the
        operator's ``ctl cancel-all`` answer must not wait for risk to catch up."""
        cancelled, k = self.core.cancel_all(now)
        if acted is not None:
            acted(cancelled)
        self.publish(k, clock)
        if cancelled:
            print(f"alphad stage router: {why}: cancels sent for {cancelled} working orders and parents",
                  file=sys.stderr, flush=True)
        return cancelled

    def on_orders(self, orders, n, clock):
        c = self.core
        sent, k = c.on_orders(orders, n, time.monotonic_ns() if clock < 0 else clock)  # routed, due reports collected
        self.shell.ctl[stage_word(ROUTER, S_EVENTS_IN)] += n
        ring = self._arrivals_ring
        if sent and ring is not None:  # for the journal's TCA; an overwrite ring never blocks
            ring_push(ring.h64, ring.b8, self.shell.bells.words, self.shell.bells.addr, c.arrivals.view(np.uint8),
                      min(sent, len(c.arrivals)))
        self.publish(k, clock)

    def poll(self, now: int, clock: int) -> int:
        """Collect the venues' due exec reports and send them on to risk."""
        self.waiting = 0
        return self.publish(self.core.poll(now), clock)

    def publish(self, k: int, clock: int) -> int:
        if k:
            k, pushed = self._publish(self.port, k, 0, clock)
            self.shell.emitted("exec", k, pushed, clock)
        return k

    def warm(self, w: Warmup) -> None:
        self.core.warm(w.md)  # n = 0: every router kernel, without touching a venue or the store
        self._publish = w.bound(tick.publish_records, w.out("exec", ROUTER), 0, 0, -1)
        if self._restarted:
            self.reconcile()

    def reconcile(self) -> None:
        """A restarted router: the orders its predecessor held, against the venues (mass
        status); those not adopted are reported CANCELED to risk (and the journal) before
        this one is ready."""
        now = time.monotonic_ns()
        summary = self.core.reconcile(now)
        self.publish(summary["reports"], -1)  # resumed parents' first children's reports
        if getattr(self.core, "live", False):
            self._await_answers(summary["asked"])
            return
        total = 0
        while k := self.core.report_lost(now):
            self.publish(k, -1)
            total += k
        if total or summary["adopted"] or summary["resumed"] or summary["stray_cancels"]:
            print(f"alphad stage router: reconciled with the venues: {summary['adopted']} orders adopted as still "
                  f"working, {summary['resumed']} algorithm parents resumed, {total} reported CANCELED (their venue "
                  f"ended with the previous router process, or they ended unheard), {summary['stray_cancels']} "
                  "unknown ones cancelled", file=sys.stderr, flush=True)

    def _await_answers(self, asked: int, timeout_s: float = 60.0) -> None:
        """A live venue: the gateway's answer about every order the ledger held, each
        passed on to risk (ends) or adopted (still working), before this router is ready."""
        deadline = time.monotonic() + timeout_s
        while self.core.pending_queries:
            if time.monotonic() > deadline:
                raise RuntimeError(f"router: the gateway answered {asked - self.core.pending_queries} of {asked} "
                                   f"queries about the orders the previous router held within {timeout_s:g} s")
            if not self.publish(self.core.poll(time.monotonic_ns()), -1):
                time.sleep(0.001)
        if asked:
            print(f"alphad stage router: reconciled through the gateway: {asked} orders the previous router held "
                  f"asked about, {len(self.core.store.open_slots())} adopted as still working",
                  file=sys.stderr, flush=True)

    def drain_args(self, ports: dict, w: Warmup | None) -> tuple:
        live = w is None
        return (ports["md"], ports["orders"], self.shell.batch, self.core.state,
                self.arrivals if live else w.out("arrivals", ROUTER, self.core.arrivals),
                self.port if live else w.out("exec", ROUTER, self.core.reports))

    def housekeeping(self, now: int) -> None:
        self.core.housekeeping(now)
        control = self.shell.control
        requests = control.cancel_all_requests
        if not self.shell.simulated:  # on the event clock the market data does it (on_md)
            self.cancel_on_halt(now, -1)
        if requests != self._cancels_seen:
            clock = self.shell.event_clock  # a backtest's venues run on its clock
            self._cancel_all(now if clock < 0 else clock, clock, "ctl cancel-all",
                             acted=lambda cancelled: control.cancel_all_done(requests, cancelled))
            self._cancels_seen = requests
