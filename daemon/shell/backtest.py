"""``alphad backtest``: the ``single`` topology on a simulated clock.

Every stage core runs in this one process, exactly the code the daemon runs,
handing records from core to core by direct call; the clock is the feed's own
event time, so a run is deterministic: same file, same model, same orders.  Events
go one at a time: a decision made on event ``i`` reaches the venue at ``t_i`` plus
its entry latency and meets the book as it stands then (never a later event's).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

from alphad.ipc import dtypes, metrics as mx
from alphad.ipc.control import S_EVENTS_OUT, STAGE_INDEX, ControlBlock
from alphad.ipc.doorbell import Doorbells
from alphad.ipc.metrics import MetricsBlock
from alphad.ipc import feature_list
from alphad.ipc.shm import Segment, list_segments

from alphad.daemon.config import Config, load_config
from alphad.daemon.jit import bind
from alphad.daemon.shell import backtest_shm, sample_window, tick
from alphad.daemon.shell.day_samples import DaySamples
from alphad.daemon.shell.progress import Progress
from alphad.daemon.shell.runner import ProcessRunner
from alphad.daemon.shell.topology import plan as make_plan, segment_names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--orders", default=None, help="write every order as JSON lines here")
    p.add_argument("--loop", choices=("auto", "python"), default="auto",
                   help="auto: one compiled loop over the events when the model is compiled (model.runtime: "
                        "compiled) and execution immediate; python: the process loop, the same steps with Python "
                        "between them (default: %(default)s)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write a performance report here (created if missing): metrics.json, equity.csv (equity at "
                        "the end of each event-time UTC day), report.md and PNG plots (needs matplotlib: "
                        "pip install 'alphad[train]')")
    p.add_argument("--periods-per-year", type=_positive_int, default=252, metavar="N",
                   help="day-end samples per year, to annualise the report's CAGR, Sharpe, Sortino and volatility: "
                        "252 for exchange-traded equities (trading days), 365 for crypto (default: %(default)s)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines on stderr (by default: every second on a terminal, every 10 s otherwise)")
    sample_window.add_argument(p)


class CompiledLoop:
    """The backtest's whole replay in compiled chunks (:func:`~alphad.daemon.shell.tick.backtest_events`),
    housekeeping between them as the process loop does it (every 1024 events, at most every
    20 ms).  For a compiled model (``model.runtime: compiled``) and immediate execution (the
    algorithms' parents are Python objects); :meth:`able` says whether it applies."""

    CHUNK = 1024
    SINK = 1 << 16

    def __init__(self, runner: ProcessRunner):
        a = runner.adapters
        self.runner, self.feed = runner, a["feed"]
        inf, router = a["infer"], a["router"]
        self.cores = (self.feed.core.state, a["features"].state, inf.state, a["risk"].state, router.core.state)
        self.ports = (runner.ports["md"], runner.ports["features"], runner.ports["signals"], runner.ports["orders"],
                      router.port)
        t = inf.session.runner.trees
        self.model = (t.roots, t.nodes, t.leaves, t.base, inf.session.y[:, 0])
        self.sinks = (np.zeros(self.SINK, dtypes.ORDER_DTYPE), np.zeros(self.SINK, dtypes.EXEC_DTYPE),
                      np.zeros(self.SINK, dtypes.ARRIVAL_DTYPE))
        self.poll = router.core.poll_ns > 0
        # Bound once (compiled or loaded now): a dispatcher call would type these nested
        # tuples on every chunk, ~60 µs, against ~1.5 µs for the bound entry point.
        self.step = bind(tick.backtest_events, self.cores, self.ports, self.model, self.sinks, 0, self.poll)

    @staticmethod
    def able(runner: ProcessRunner) -> bool:
        a = runner.adapters
        return a["infer"].session.providers == ["compiled"] and a["router"].core.parents is None

    def run(self, orders: list, reports: list | None, arrivals: list | None = None, samples: DaySamples | None = None,
            progress: Progress | None = None) -> None:
        """``orders``, ``reports``, ``arrivals``: lists that receive each call's batch (copies);
        ``samples``: day-end samples (each call then stops at a day's last event);
        ``progress``: told the events done after each call."""
        ticks, next_housekeeping, feed, router = 0, 0, self.feed, self.runner.adapters["router"]
        while not feed.core.exhausted or feed.next_chunk():
            core = feed.core
            self.cores = (core.state, *self.cores[1:])  # a new chunk, a new feed state
            if core.pos < len(core.events):  # a halt (the step stops after it): cancels before the next event
                t = int(core.events["ts_exch"][core.pos])
                router.cancel_on_halt(t, t)
            limit = self.CHUNK - ticks % self.CHUNK
            if samples is not None:  # a call never crosses a day's end: the sample is taken there
                limit = max(1, min(limit, samples.limit(core.events, core.pos)))  # and always moves on
            done, n_o, n_r, n_a = self.step(self.cores, self.ports, self.model, self.sinks, limit, self.poll)
            if n_o:
                orders.append(self.sinks[0][:n_o].copy())
            if n_r and reports is not None:
                reports.append(self.sinks[1][:n_r].copy())
            if n_a and arrivals is not None:
                arrivals.append(self.sinks[2][:n_a].copy())
            ticks += done
            if done:  # the event clock, for housekeeping that acts on the venues (a halt's cancels)
                self.runner.loop.sim_now = int(core.events["ts_exch"][core.pos - 1])
                if samples is not None:
                    samples.processed_until(self.runner.loop.sim_now)
                if progress is not None:
                    progress.update(ticks, self.runner.loop.sim_now)
            now = time.monotonic_ns()
            if ticks % self.CHUNK == 0 and now >= next_housekeeping:
                self.runner.housekeeping(now)
                next_housekeeping = now + tick.HOUSEKEEPING_NS


@contextlib.contextmanager
def single_process(cfg: Config, base: Path):
    """The ``single`` topology's stages in this process on the simulated clock, warmed and
    READY, in segments of their own (removed on exit, on SIGTERM and SIGINT too; a killed
    run's are removed by the next: :mod:`~alphad.daemon.shell.backtest_shm`); yields
    ``(runner, control, metrics)``."""
    cfg = msgspec.structs.replace(cfg, topology=msgspec.structs.replace(cfg.topology, name="single"),
                                  shm=msgspec.structs.replace(cfg.shm, prefix=backtest_shm.prefix_for(os.getpid())))
    names = segment_names(cfg.shm.prefix)
    with backtest_shm.stop_on_signals():
        backtest_shm.sweep_leftovers()
        try:
            Doorbells.create(names["doorbells"])
            control = ControlBlock.create(names["control"])
            metrics = MetricsBlock.create(names["metrics"])
            Segment.create(names["feature_list"], feature_list.SIZE).close()
            runner = ProcessRunner(cfg, base, make_plan("single", cfg.rings), 0, simulated=True)
            runner.warm()
            yield runner, control, metrics
        finally:
            for p in list_segments(cfg.shm.prefix):
                p.unlink(missing_ok=True)


def backtest(cfg: Config, base: Path, *, reports: list | None = None, loop: str = "auto", arrivals: list | None = None,
             samples: DaySamples | None = None, progress: Progress | None = None) -> tuple[np.ndarray, dict]:
    """Run the recording once through every core, one event at a time on its own clock;
    returns (orders, summary).  ``reports``: a list that receives every batch of exec
    reports the venues sent back (copies).  ``loop``: ``auto`` runs :class:`CompiledLoop`
    where it applies, ``python`` always the process loop (the same steps, Python between).
    ``arrivals``: a list that receives the quote each order met when handed to the venues
    (``ARRIVAL_DTYPE`` batches).  ``samples``: filled with the account and book at the end
    of each event-time UTC day (:mod:`~alphad.daemon.shell.day_samples`).  ``progress``:
    progress lines on stderr (:mod:`~alphad.daemon.shell.progress`).  None of these
    changes an order or a fill."""
    if loop not in ("auto", "python"):
        raise ValueError(f"loop expected 'auto' or 'python', was {loop!r}")
    t0 = time.perf_counter()
    with single_process(cfg, base) as (runner, control, metrics):
        orders = []
        runner.add_sink("orders", lambda recs, n, now: orders.append(recs[:n].copy()))
        if reports is not None:
            runner.add_sink("exec", lambda recs, n, now: reports.append(recs[:n].copy()))
        if arrivals is not None:  # after the router's handler: the arrivals of the orders it just routed
            runner.handlers["orders"].append(_arrival_keeper(runner.adapters["router"].core, arrivals))
        if samples is not None:
            samples.attach(runner.adapters["risk"].core)
        compiled = CompiledLoop(runner) if loop == "auto" and CompiledLoop.able(runner) else None
        runner.mark_ready(True)
        setup_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        if progress is not None:
            progress.begin()
        if compiled is not None:
            compiled.run(orders, reports, arrivals, samples, progress)
        else:
            runner.loop.on_event = _event_hook(samples, progress)
            runner.run()
        if samples is not None:
            samples.finish()
        if progress is not None:
            progress.close(runner.loop.sim_now)
        load_s = runner.adapters["feed"].load_s  # reading the recording's later chunks
        replay_s = time.perf_counter() - t1 - load_s
        from alphad.daemon.risk.codes import B_POSITION, REASON_NAMES

        events = int(control.stage(STAGE_INDEX["feed"], S_EVENTS_OUT))
        summary = {
            "events": events,
            # the replay alone: before it, loading the model and the feed's first chunk and
            # compiling or loading kernels (setup_s); during it, reading the later chunks (load_s)
            "replay_s": round(replay_s, 3),
            "events_per_s": round(events / replay_s) if replay_s > 0 else None,
            "setup_s": round(setup_s, 3),
            "load_s": round(load_s, 3),
            "loop": "compiled" if compiled is not None else "python",
            "orders": int(sum(len(o) for o in orders)),
            "fills": metrics.counter(STAGE_INDEX["risk"], mx.C_FILLS),
            "denials": metrics.counter(STAGE_INDEX["risk"], mx.C_DENIALS),
            "denials_by_reason": {REASON_NAMES[c]: int(v) for c, v in enumerate(metrics.denials_by_reason()) if v},
            "positions": runner.adapters["risk"].core.book[:, B_POSITION].tolist(),
        }
        from alphad.daemon.risk.core import publish_gauges

        g = np.zeros(mx.N_GAUGES)
        risk_core = runner.adapters["risk"].core
        publish_gauges(risk_core.account, risk_core.last_size, g)
        summary["realized_pnl"] = float(g[mx.G_REALIZED_PNL])
        summary["unrealized_pnl"] = float(g[mx.G_UNREALIZED_PNL])
        summary.update(final_account(cfg, risk_core.account, control, float(g[mx.G_FEES])))
        # the feed's rows skipped (or, by unknown_symbol, not of the universe), by reason
        bad = getattr(runner.adapters["feed"]._chunks, "bad", None)
        summary["bad_records"] = bad.as_dict() if bad is not None else {}
        if bad is not None:
            bad.print(f"{cfg.feed.path}: {events} events replayed")
        all_orders = np.concatenate(orders) if orders else np.zeros(0, dtype=runner.bufs_dtype("orders"))
        return all_orders, summary


def _arrival_keeper(router_core, arrivals: list):
    """An ``orders`` handler run after the router's: the arrival quotes of the orders it just
    routed (its ``arrivals`` buffer holds those of its last call; a slot it did not
    rewrite, an order refused as a repeat, keeps an older order's id and is left out)."""
    buf = router_core.arrivals

    def keep(recs, n, clock):
        a = buf[: min(n, len(buf))]
        if (a["client_order_id"] == recs["client_order_id"][: len(a)]).all() and (a["ts"] == clock).all():
            arrivals.append(a.copy())  # every order routed, in order: the usual case, and the cheap one
        else:
            arrivals.append(a[np.isin(a["client_order_id"], recs["client_order_id"][:n]) & (a["ts"] == clock)].copy())
    return keep


def _event_hook(samples: DaySamples | None, progress: Progress | None):
    """The process loop's ``on_event``: day-end samples and progress, or None (nothing called)."""
    if samples is None and progress is None:
        return None
    if progress is None:
        return samples.at_event
    if samples is None:
        return progress.tick

    def on_event(ts: int) -> None:
        samples.at_event(ts)
        progress.tick(ts)
    return on_event


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"a positive whole number expected, was {text!r}")
    return v


def write_orders(path, orders: np.ndarray) -> None:
    """Orders as JSON lines, one per order, every field but padding (NaN: null): the format
    ``alphad backtest --orders`` and ``alphad replay --orders`` share."""
    with open(path, "w") as f:
        for o in orders:
            f.write(json.dumps({k: (o[k].item() if o[k] == o[k] else None) for k in orders.dtype.names if k != "pad"})
                    + "\n")


def final_account(cfg, account, control, fees: float) -> dict:
    """What a backtest ended with: PnL net of its fees, equity, and the trading state (a run
    that ended HALTED by its kill switch says so)."""
    from alphad.daemon.risk.codes import A_EQUITY, A_PEAK_EQUITY
    from alphad.daemon.supervisor.control_port import ControlPort
    from alphad.ipc.control import STATE_NAMES, W_REASON

    gross = float(account[A_EQUITY]) - cfg.risk.initial_equity + fees  # equity is net of fees already
    return {"fees": round(fees, 2), "gross_pnl": round(gross, 2), "net_pnl": round(gross - fees, 2),
            "equity": {"start": cfg.risk.initial_equity, "end": round(float(account[A_EQUITY]), 2),
                       "peak": round(float(account[A_PEAK_EQUITY]), 2)},
            "trading_state": STATE_NAMES[control.trading_state],
            "state_reason": ControlPort.reason_name(int(control.words[W_REASON]))}


def run(args) -> int:
    cfg, base = load_config(args.config)
    in_sample = sample_window.check_training_window(cfg, base, allow_in_sample=args.allow_in_sample)
    # --report: its folder is made (or refused) before the run, which records what it needs
    report_dir = None
    record: dict = {}
    if args.report:
        from alphad.ops import backtest_report

        report_dir = backtest_report.prepare(args.report)
        record = {"reports": [], "arrivals": [], "samples": DaySamples(from_ns=cfg.feed.trade_from_ns())}
    try:
        orders, summary = backtest(cfg, base, loop=args.loop, progress=None if args.quiet else Progress(), **record)
    except backtest_shm.Stopped as e:
        print(f"alphad backtest: stopped by {e.name}; its shared-memory segments were removed", file=sys.stderr)
        return e.code
    summary["in_sample"] = in_sample
    if args.orders:
        write_orders(args.orders, orders)
    if report_dir is not None:
        t = time.perf_counter()
        backtest_report.write(report_dir, cfg, orders, summary, periods_per_year=args.periods_per_year,
                              config_path=args.config, base=base, **record)
        summary["report"] = str(report_dir)
        summary["report_s"] = round(time.perf_counter() - t, 3)
    print(json.dumps(summary, indent=2))
    return 0
