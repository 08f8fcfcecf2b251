"""`alphad bench` end to end: real stage processes, placement overrides, a JSON report."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from daemon_rig import REPO, STAGES

pytestmark = pytest.mark.slow


def test_bench_when_pinned_fifo_kept_warm_then_ticks_reach_the_venue_and_report_names_the_placement(tmp_path):
    cpu = max(os.sched_getaffinity(0))
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "alphad.daemon.cli", "bench", "--config", str(REPO / "config.yaml"),
           "--ticks", "400", "--warmup", "100", "--rate", "500", "--sched", "fifo", "--infer-keep-warm-us", "200",
           "--cpus", ",".join(f"{s}={cpu}" for s in STAGES), "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(out.read_text())
    assert (r["topology"], r["wait"], r["sched"]) == ("five", "block", "fifo")
    assert r["cpus"] == {s: cpu for s in STAGES}
    assert r["orders"] > 0
    # 1 s of 2 ms gaps: the idle infer process rehearsed its step, and the bench still saw every order
    assert r["infer_keep_warm_us"] == 200 and r["infer_rehearsals"] > 100
    t = r["tick_to_trade_us"]
    assert 0 < t["p50"] <= t["p90"] <= t["p99"] <= t["p999"] <= t["max"]
    # each stage stamps on emit, so the path's stages report in order
    p50 = [r["stages_us"][s]["p50"] for s in STAGES]
    assert p50 == sorted(p50)
    assert not list(REPO.glob(".config.effective.*.yaml")), "the effective config was left behind"


def test_bench_when_cpus_names_no_stage_then_exits_with_the_stages_expected():
    done = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "bench", "--config", str(REPO / "config.yaml"),
                           "--cpus", "fead=0"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "expected keys among ['feed', 'features', 'infer', 'risk', 'router']" in done.stderr
