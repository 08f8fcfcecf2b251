"""Monitoring end to end: a real `alphad run` on its default replay config, a real Prometheus
scraping it every second with the shipped alert rules, and a real local HTTP server taking the
supervisor's webhook posts.

One daemon per module; the tests run in file order (the last ones halt it).  Prometheus
(Debian package ``prometheus``; .ci/run installs it) is required: without it the tests fail.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from alphad.ipc import frames

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import REPO, STAGES, Daemon, Hook, eventually, free_port  # noqa: E402

pytestmark = pytest.mark.slow
MONITORING = REPO / "ops" / "monitoring"


@pytest.fixture(scope="module")
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, hook):
    d = Daemon(tmp_path_factory.mktemp("prometheus"), tag="-prom",
               sections={"supervisor": {"webhook_url": hook.url}})
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def scrape(daemon) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).read().decode()


def parse(body: str) -> dict[tuple, float]:
    """``{(name, 'label="value"', ...): value}`` of an exposition."""
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        assert m, f"unparsable exposition line {line!r}"
        labels = tuple(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), *(v for _, v in labels))] = float(m.group(3))
    return out


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def test_metrics_when_trading_then_book_exposure_drawdown_stages_and_journal_disk_served(daemon):
    eventually(lambda: daemon.status().fills > 5, timeout=30, what="some fills")
    symbols = ["BTCUSDT", "ETHUSDT"]

    def consistent():  # positions move with fills: compare a scrape taken between two equal statuses
        before = daemon.status().positions
        got = parse(scrape(daemon))
        held = {s: got[("alphad_position", s)] for s in symbols}
        return got if before == daemon.status().positions == {s: q for s, q in held.items() if q} else None

    got = eventually(consistent, timeout=30, what="/metrics positions equal to ctl status positions")
    assert any(got[("alphad_position", s)] for s in symbols), "the replay holds a position after fills"
    gross, net = got[("alphad_exposure", "gross")], got[("alphad_exposure", "net")]
    assert gross > 0 and abs(net) <= gross * (1 + 1e-9)
    assert got[("alphad_sector_exposure", "crypto")] == pytest.approx(gross, rel=1e-6)  # one sector
    for measure in ("peak", "intraday", "rolling_1h", "rolling_4h"):
        assert 0.0 <= got[("alphad_drawdown", measure)] < 0.03
    assert got[("alphad_drawdown_level",)] == 0.0  # NORMAL, as the sizing multiplier says
    assert got[("alphad_sizing_multiplier", "risk")] == 1.0
    assert got[("alphad_trading_state_code", "")] == 0.0 and got[("alphad_trading_state", "ACTIVE")] == 1.0
    for s in STAGES:
        assert got[("alphad_stage_ready", s)] == 1.0
        assert got[("alphad_stage_restarts_total", s)] == 0.0
        assert got[("alphad_stage_errors_total", s)] >= 0.0
        assert got[("alphad_stage_heartbeat_age_seconds", s)] >= 0.0
    assert ("alphad_router_rejects_total",) in got
    journal = Path(daemon.config).parent / "journal"
    assert 0 < got[("alphad_journal_bytes",)] <= directory_bytes(journal)  # the journal only grows
    free = shutil.disk_usage(journal).free
    assert got[("alphad_journal_disk_free_bytes",)] == pytest.approx(free, abs=512 << 20)


def test_dashboard_when_loaded_then_every_panel_expr_names_a_metric_the_daemon_serves(daemon):
    eventually(lambda: daemon.status().fills > 5, timeout=30, what="some fills")
    served = {k[0] for k in parse(scrape(daemon))}
    dash = json.loads((MONITORING / "grafana-alphad.json").read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    panels += [q for p in dash["panels"] if p["type"] == "row" for q in p.get("panels", [])]
    for p in panels:
        for t in p["targets"]:
            named = set(re.findall(r"\b(alphad_[a-z0-9_]+|ALERTS)\b", t["expr"]))
            assert named, f"panel {p['title']!r}: expr {t['expr']!r} names no metric"
            missing = named - served - {"ALERTS"}  # ALERTS: Prometheus's own series of its rules
            assert not missing, f"panel {p['title']!r} queries {sorted(missing)}, which /metrics does not serve"


def test_stage_restart_when_router_killed_then_counted_in_metrics_and_posted_to_webhook(daemon, hook):
    daemon.kill_stage("router")
    body = eventually(lambda: hook.of_kind("restart:router"), timeout=30, what="a restart:router webhook post")[0]
    assert body["stage"] == "router" and body["restarts"] == 1 and body["instance"] == daemon.prefix
    got = parse(scrape(daemon))
    assert got[("alphad_stage_restarts_total", "router")] == 1.0
    assert got[("alphad_stage_ready", "router")] == 1.0


class Prometheus:
    """A real Prometheus scraping ``target`` every second with the shipped rules loaded."""

    def __init__(self, tmp: Path, target: str):
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("prometheus not found on PATH: install Debian's `prometheus` package "
                        "(apt-get install -y prometheus; .ci/run does it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp / "prometheus.yml"
        cfg.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(MONITORING / "alerts.yml")],
            "scrape_configs": [{"job_name": "alphad", "static_configs": [{"targets": [target]}]}]}))
        self.log = (tmp / "prometheus.log").open("w+")
        self.proc = subprocess.Popen([exe, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited with {self.proc.returncode}:\n{self.output()}"
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus(daemon, tmp_path):
    p = Prometheus(tmp_path, f"127.0.0.1:{daemon.metrics_port}")
    try:
        yield p
    finally:
        p.stop()
    assert p.proc.poll() is not None


def test_prometheus_when_daemon_halted_then_alphad_halted_alert_fires(daemon, prometheus):
    eventually(prometheus.ready, timeout=60, what="prometheus ready")
    targets = eventually(lambda: [t for t in prometheus.get("/api/v1/targets")["data"]["activeTargets"]
                                  if t["health"] == "up"], timeout=60, what="the daemon's target scraped up")
    assert targets[0]["labels"]["job"] == "alphad"

    def evaluated():  # every rule evaluated at least once (never: year 0001)
        rules = [r for g in prometheus.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules if rules and not any(r["lastEvaluation"].startswith("0001") for r in rules) else None

    rules = eventually(evaluated, timeout=60, what="the shipped rules evaluated")
    assert {r["name"] for r in rules} >= {"AlphadHalted", "AlphadStageDown", "AlphadScrapeDown"}
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
    assert not bad, f"rules failing to evaluate: {bad}"

    def halted_alert():
        alerts = prometheus.get("/api/v1/alerts")["data"]["alerts"]
        seen.append(alerts)
        return [a for a in alerts if a["labels"]["alertname"] == "AlphadHalted" and a["state"] == "firing"]

    seen: list = []
    assert not halted_alert(), "AlphadHalted firing before any halt"
    assert isinstance(daemon.ctl(frames.Halt(reason="prometheus test")), frames.Ok)
    deadline = time.monotonic() + 60
    while not (firing := halted_alert()):
        if time.monotonic() > deadline:
            pytest.fail(f"AlphadHalted not firing 60 s after `ctl halt`; last alerts seen: {seen[-1]}\n"
                        f"prometheus log:\n{prometheus.output()}")
        time.sleep(0.5)
    assert firing[0]["labels"]["severity"] == "critical"
    assert "HALTED" in firing[0]["annotations"]["summary"]


def test_webhook_when_halted_then_halt_posted_with_state_and_reason(daemon, hook):
    assert isinstance(daemon.ctl(frames.Halt(reason="webhook test")), frames.Ok)  # no change if already halted
    posts = eventually(lambda: hook.of_kind("halt"), timeout=30, what="a halt webhook post")
    assert len(posts) == 1, posts
    body = posts[0]
    assert body["trading_state"] == "HALTED" and body["state"] == "HALTED" and body["reason"] == "operator"
    assert body["previous_state"] == "ACTIVE" and body["instance"] == daemon.prefix
    assert "HALTED" in body["summary"] and body["time"].endswith("+00:00")
    assert daemon.status().trading_state == "HALTED"
    assert not hook.of_kind("kill_switch"), "an operator's halt is no kill-switch trip"
