"""`alphad soak`, short: the real processes at a steady rate with RSS, journal and ring
checks, its figures as JSON.  The hour-long run is `make soak` (BENCHMARKS.md)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from daemon_rig import REPO
from alphad.ipc.shm import SHM_DIR

pytestmark = pytest.mark.slow


def test_a_short_soak_reports_every_process_and_passes_its_checks(tmp_path):
    out = tmp_path / "soak.json"
    # a short run: RSS still settles after 8 s, so the growth limit is loose here (1% in the full soak)
    r = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "soak", "--config", str(REPO / "config.yaml"),
                        "--duration", "8", "--warmup", "8", "--rate", "1000", "--sample-every", "1",
                        "--max-rss-growth", "50", "--journal-dir", str(tmp_path / "journal"), "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(out.read_text())
    assert set(d["rss"]) == {"supervisor", "feed", "features", "infer", "risk", "router"}
    assert all(v["baseline_mb"] > 0 and v["final_mb"] > 0 for v in d["rss"].values())
    assert d["events"] >= 8_000 and d["failures"] == [] and not any(d["restarts"].values())
    assert d["ring_overruns"]["orders"] == 0 and d["ring_overruns"]["exec"] == 0
    assert d["journal_mb"] > 0 and (tmp_path / "journal").is_dir()
    assert not list(SHM_DIR.glob("alphad-soak-*"))  # every segment removed


def test_a_soak_stopped_by_sigterm_removes_its_processes_and_segments(tmp_path):
    import signal
    import time

    p = subprocess.Popen([sys.executable, "-m", "alphad.daemon.cli", "soak", "--config", str(REPO / "config.yaml"),
                          "--duration", "600", "--warmup", "1", "--rate", "1000",
                          "--journal-dir", str(tmp_path / "journal")],
                         cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(line.startswith("soak:") for line in lines):
            line = p.stderr.readline()
            if not line:
                break
            lines.append(line)
        assert any(line.startswith("soak:") for line in lines), "".join(lines)[-3000:]  # running, every stage ready
        assert list(SHM_DIR.glob(f"alphad-soak-{p.pid}.*"))
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=120) == 128 + signal.SIGTERM
        assert not list(SHM_DIR.glob(f"alphad-soak-{p.pid}.*"))  # every segment removed
        stages = subprocess.run(["pgrep", "-f", f"config.effective.{p.pid}.yaml"], capture_output=True, text=True)
        assert stages.stdout == "", stages.stdout  # and every stage process ended
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
