"""The exporter's families of risk's book, the stages and the journal's disk, read from real
shared segments: a real risk core on the ``risk_state`` segment (fills, marks and the drawdown
ladder moved by the risk library's own steps), the control and metrics blocks, a journal
directory of known files.  Exposition goes through prometheus_client as the daemon serves it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec
import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from alphad.daemon.config import decode_config
from alphad.daemon.risk import core as rk
from alphad.daemon.risk.codes import A_EQUITY, A_GROSS, A_NET
from alphad.daemon.risk.drawdown import update_drawdown
from alphad.daemon.risk.portfolio import apply_fill, on_mark
from alphad.daemon.shell.risk_view import RiskView
from alphad.daemon.shell.stages import shared_arrays
from alphad.daemon.shell.topology import segment_names
from alphad.daemon.supervisor.control_port import ControlPort
from alphad.daemon.supervisor.data_health import DataHealth
from alphad.ipc import gateway_block as gb
from alphad.ipc import metrics as mx
from alphad.ipc.control import S_READY, S_RESTARTS, STAGE_INDEX, STAGES, ControlBlock
from alphad.ops.exporter import AlphadCollector

REPO = Path(__file__).resolve().parents[2]
UNIVERSE = [{"id": 0, "symbol": "AAA", "sector": "Tech"}, {"id": 1, "symbol": "BBB", "sector": "Tech"},
            {"id": 2, "symbol": "XXX", "sector": "Energy"}]
RISK = {"initial_equity": 1_000_000.0,
        "instrument_defaults": {"max_order_qty": 1e6, "max_order_notional": 1e7, "max_position_shares": 1e6,
                                "max_position_weight": 1.0},
        "account": {"sector_limit": 1.0, "sector_warning": 0.9, "max_leverage": 10.0}}


def config():
    return decode_config(msgspec.yaml.encode({"universe": UNIVERSE, "risk": RISK}).decode())


def samples(collector) -> dict[tuple, float]:
    """``{(sample name, label values...): value}`` of one scrape."""
    return {(s.name, *s.labels.values()): s.value for f in collector.collect() for s in f.samples}


def exposition(collector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


@pytest.fixture
def blocks(prefix):
    names = segment_names(prefix)
    control, metrics = ControlBlock.create(names["control"]), mx.MetricsBlock.create(names["metrics"])
    yield names, control, metrics
    control.close()
    metrics.close()


def test_collector_when_risk_holds_a_book_then_positions_exposure_drawdown_stages_and_disk_exported(blocks, tmp_path):
    names, control, metrics = blocks
    cfg = config()
    seg, fresh, views = shared_arrays(names["risk_state"], rk.state_specs_of(cfg))
    core = rk.RiskCore(cfg.universe, cfg.risk, control.risk_control, shared=(views, fresh), metrics=metrics.words)
    for i in range(3):
        on_mark(i, 100.0, core.limits, core.book, core.sectors, core.account)
    apply_fill(0, 1, 1000.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    apply_fill(1, 1, 200.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    apply_fill(2, -1, 500.0, 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
    # equity 6% under its peak: the ladder steps to CRITICAL and sets REDUCING (its reason: the step)
    equity = core.account[A_EQUITY]
    dd = cfg.risk.drawdown
    update_drawdown(1, equity, core.dd_state, core.dd_idx, core.win_ts, core.win_eq, dd.threshold_table(),
                    dd.recovery_hysteresis, dd.emergency_risk_multiplier, control.risk_control, core.account)
    update_drawdown(2, equity * 0.94, core.dd_state, core.dd_idx, core.win_ts, core.win_eq, dd.threshold_table(),
                    dd.recovery_hysteresis, dd.emergency_risk_multiplier, control.risk_control, core.account)
    for s in STAGES:
        control.set_stage(STAGE_INDEX[s], S_READY, int(s != "infer"))
    control.set_stage(STAGE_INDEX["router"], S_RESTARTS, 3)
    mx.count(metrics.words, STAGE_INDEX["router"], mx.C_ERRORS, 2)
    mx.count(metrics.words, STAGE_INDEX["router"], mx.C_REJECTS, 5)
    journal = tmp_path / "journal"
    (journal / "rotated").mkdir(parents=True)
    (journal / "journal.jsonl").write_bytes(b"x" * 1000)
    (journal / "journal.1.jsonl").write_bytes(b"y" * 234)
    (journal / "rotated" / "journal.0.jsonl.gz").write_bytes(b"z" * 66)
    (journal / "session").write_text("7\n")
    os.symlink(journal / "journal.jsonl", journal / "current")  # a link is not counted twice

    collector = AlphadCollector(metrics, control, symbols=[i.symbol for i in cfg.universe],
                                risk=RiskView(names["risk_state"], cfg), journal_dir=journal,
                                reason_name=ControlPort.reason_name)
    got = samples(collector)
    assert got[("alphad_position", "AAA")] == 1000.0
    assert got[("alphad_position", "BBB")] == 200.0
    assert got[("alphad_position", "XXX")] == -500.0
    assert got[("alphad_exposure", "gross")] == pytest.approx(170_000.0) == core.account[A_GROSS]
    assert got[("alphad_exposure", "net")] == pytest.approx(70_000.0) == core.account[A_NET]
    assert got[("alphad_sector_exposure", "Tech")] == pytest.approx(120_000.0)
    assert got[("alphad_sector_exposure", "Energy")] == pytest.approx(50_000.0)
    assert got[("alphad_drawdown_level",)] == 2.0
    assert got[("alphad_drawdown", "peak")] == pytest.approx(0.06)
    assert got[("alphad_drawdown", "intraday")] == pytest.approx(0.06)
    assert got[("alphad_drawdown_max",)] == pytest.approx(0.06)
    # the trading state as a number, labelled with its reason; the one-hot family stays
    assert got[("alphad_trading_state_code", "drawdown_escalate:critical")] == 1.0
    assert got[("alphad_trading_state", "REDUCING")] == 1.0
    for s in STAGES:
        assert got[("alphad_stage_ready", s)] == float(s != "infer")
        assert got[("alphad_stage_restarts_total", s)] == (3.0 if s == "router" else 0.0)
    assert got[("alphad_stage_errors_total", "router")] == 2.0
    assert got[("alphad_router_rejects_total",)] == 5.0
    assert got[("alphad_journal_bytes",)] == 1000 + 234 + 66 + 2
    st = os.statvfs(journal)
    assert got[("alphad_journal_disk_size_bytes",)] == st.f_blocks * st.f_frsize
    assert got[("alphad_journal_disk_free_bytes",)] == pytest.approx(st.f_bavail * st.f_frsize, abs=256 << 20)
    seg.close()


def test_collector_when_risk_has_no_state_yet_then_book_families_left_out_and_rest_served(blocks, tmp_path):
    names, control, metrics = blocks
    collector = AlphadCollector(metrics, control, symbols=["AAA", "BBB", "XXX"],
                                risk=RiskView(names["risk_state"], config()), journal_dir=tmp_path / "not-yet",
                                reason_name=ControlPort.reason_name)
    got = samples(collector)
    assert not any(k[0] in ("alphad_position", "alphad_exposure", "alphad_drawdown_level") for k in got)
    assert got[("alphad_trading_state_code", "")] == 0.0
    assert got[("alphad_journal_bytes",)] == 0.0  # the journal directory is made at start
    assert got[("alphad_journal_disk_free_bytes",)] > 0


def test_alert_rules_when_read_then_every_metric_they_name_is_one_the_exporter_serves(blocks, prefix, tmp_path):
    """alerts.yml against the exposition of a collector with every optional part present
    (risk's book, a live venue's gateway block, the feed's data health, the journal)."""
    import yaml

    names, control, metrics = blocks
    cfg = config()
    seg, fresh, views = shared_arrays(names["risk_state"], rk.state_specs_of(cfg))
    rk.RiskCore(cfg.universe, cfg.risk, control.risk_control, shared=(views, fresh), metrics=metrics.words)
    gateway = gb.GatewayBlock.create(names["gateway"], len(cfg.universe))
    try:
        body = exposition(AlphadCollector(
            metrics, control, gateway=gateway, symbols=[i.symbol for i in cfg.universe],
            data_health=lambda: DataHealth(), risk=RiskView(names["risk_state"], cfg), journal_dir=tmp_path,
            reason_name=ControlPort.reason_name))
    finally:
        gateway.segment.close()
        seg.close()
    served = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}
    rules = yaml.safe_load((REPO / "ops/monitoring/alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        named = set(re.findall(r"\b(alphad_[a-z0-9_]+)", rule["expr"]))
        if rule["alert"] == "AlphadScrapeDown":  # Prometheus's own `up` of the alphad job
            assert 'up{job="alphad"}' in rule["expr"] and not named
            continue
        assert named, f"{rule['alert']}: expr names no alphad metric: {rule['expr']}"
        assert named <= served, f"{rule['alert']} names {sorted(named - served)}, which /metrics does not serve"


def _move_marks(core, seconds: float) -> None:
    """Risk's writer in a forked process: the real ``on_mark`` on the shared book, each
    mark 1% from the last (gross, equity and each sector move together, compiled stores a
    few nanoseconds apart), as risk's steps move them."""
    import time

    end, k = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        k += 1
        for i in range(3):
            on_mark(i, 100.0 * (1.01 if k % 2 else 0.99) ** (i + 1), core.limits, core.book, core.sectors,
                    core.account)
        time.sleep(0.0002)


def test_figures_when_risk_marks_meanwhile_then_every_read_is_of_one_moment(blocks):
    import multiprocessing as mp

    names, control, _ = blocks
    cfg = config()
    seg, fresh, views = shared_arrays(names["risk_state"], rk.state_specs_of(cfg))
    try:
        core = rk.RiskCore(cfg.universe, cfg.risk, control.risk_control, shared=(views, fresh))
        for i in range(3):
            on_mark(i, 100.0, core.limits, core.book, core.sectors, core.account)
            apply_fill(i, 1, 100.0 * (i + 1), 100.0, 0.0, core.limits, core.book, core.sectors, core.account)
        view = RiskView(names["risk_state"], cfg)
        assert view.sector_names == ["Energy", "Tech"]
        writer = mp.get_context("fork").Process(target=_move_marks, args=(core, 1.5))
        writer.start()
        reads, torn = 0, []
        while writer.is_alive():
            f = view.figures()
            reads += 1
            if f.account[A_GROSS] != pytest.approx(sum(f.sectors.values()), rel=1e-12):
                torn.append((f.account[A_GROSS], f.sectors))
        writer.join(5)
        assert writer.exitcode == 0 and reads > 1000 and view.figures().account[A_GROSS] > 0
        assert torn == [], f"{len(torn)} of {reads} reads mixed two moments, e.g. {torn[:3]}"
    finally:
        seg.unlink()
        seg.close()
