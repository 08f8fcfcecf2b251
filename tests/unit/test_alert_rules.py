"""The shipped Prometheus alert rules, example config and Grafana dashboard, checked with
Prometheus's own ``promtool`` (Debian package ``prometheus``; .ci/run installs it).  A
missing promtool fails these tests: it never skips them."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "ops" / "monitoring"
REQUIRED = {"AlphadHalted", "AlphadStageDown", "AlphadStageRestarting", "AlphadStaleData", "AlphadDrawdownLevel",
            "AlphadGatewayDown", "AlphadRouterErrors", "AlphadDiskLow", "AlphadScrapeDown"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found on PATH: install Debian's `prometheus` package "
                    "(apt-get install -y prometheus; .ci/run does it when promtool is missing)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, cwd=MONITORING)


def test_promtool_check_rules_when_run_on_shipped_rules_then_passes():
    r = promtool("check", "rules", "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_test_rules_when_run_then_every_alert_fires_on_its_condition():
    r = promtool("test", "rules", "alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_config_when_run_on_example_then_passes():
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_rules_when_read_then_required_alerts_present_with_annotations_and_for():
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert REQUIRED <= names, f"missing alerts: {sorted(REQUIRED - names)}"
    for r in rules:
        assert "for" in r, f"{r['alert']}: no `for:`"
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"].get("summary") and r["annotations"].get("description"), r["alert"]
    tested = set()
    for t in yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]:
        tested |= {a["alertname"] for a in t["alert_rule_test"] if a["exp_alerts"]}
    assert REQUIRED <= tested, f"alerts without a firing case in alerts_test.yml: {sorted(REQUIRED - tested)}"


def test_dashboard_when_loaded_then_panels_cover_each_topic_and_every_panel_has_a_query():
    dash = json.loads((MONITORING / "grafana-alphad.json").read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert all(p.get("targets") and all(t["expr"].strip() for t in p["targets"]) for p in panels)
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in ("alphad_stage_ready", "alphad_tick_to_trade_seconds_bucket", "alphad_orders_total",
                   "alphad_fills_total", "alphad_risk_denials_total", "alphad_position", "alphad_pnl",
                   "alphad_sector_exposure", "alphad_drawdown", "ALERTS"):
        assert metric in exprs, f"no panel shows {metric}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
