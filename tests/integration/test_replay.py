"""``alphad replay`` (the five real processes in lockstep on event time) and ``alphad
backtest`` (every core in one process) emit the same orders: ids, sides, quantities, prices
and times, line for line."""
from __future__ import annotations

import json
import subprocess
import sys

import msgspec
import pytest

pytestmark = pytest.mark.slow


def alphad(*args, timeout=900):
    out = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", *args], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout[out.stdout.index("{"):])


@pytest.mark.parametrize("topology", ["five", "fused"])
def test_replay_when_shipped_config_then_the_same_orders_as_the_backtest(repo_root, tmp_path, topology):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"]["path"] = str(repo_root / raw["feed"]["path"])
    raw["model"]["card"] = str(repo_root / raw["model"]["card"])
    config = tmp_path / "config.yaml"
    config.write_bytes(msgspec.yaml.encode(raw))
    replay = alphad("replay", "--config", str(config), "--topology", topology, "--orders", str(tmp_path / "r.jsonl"))
    backtest = alphad("backtest", "--config", str(config), "--orders", str(tmp_path / "b.jsonl"))
    assert replay["events"] == backtest["events"] > 40_000 and replay["topology"] == topology
    r, b = (tmp_path / "r.jsonl").read_text().splitlines(), (tmp_path / "b.jsonl").read_text().splitlines()
    assert len(b) > 1000 and len(r) == len(b)
    for k, (x, y) in enumerate(zip(r, b)):
        assert json.loads(x) == json.loads(y), f"order {k}"


@pytest.mark.parametrize("router", [{"venues": [{"name": "paper", "taker_bps": 1.0, "entry": {"median_ns": 2_000_000},
                                                 "response": {"median_ns": 3_000_000}}]},
                                    {"execution": "twap", "algo": {"horizon_s": 2.0, "slices": 4, "step_ms": 50}}],
                         ids=["venue latency", "twap"])
def test_replay_when_venue_latency_or_twap_then_the_same_orders_as_the_backtest(repo_root, tmp_path, router):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"]["path"] = str(repo_root / raw["feed"]["path"])
    raw["model"]["card"] = str(repo_root / raw["model"]["card"])
    raw["router"].update(router)
    config = tmp_path / "config.yaml"
    config.write_bytes(msgspec.yaml.encode(raw))
    replay = alphad("replay", "--config", str(config), "--orders", str(tmp_path / "r.jsonl"))
    alphad("backtest", "--config", str(config), "--orders", str(tmp_path / "b.jsonl"))
    r, b = (tmp_path / "r.jsonl").read_text().splitlines(), (tmp_path / "b.jsonl").read_text().splitlines()
    assert replay["events"] > 40_000 and len(b) > 500 and len(r) == len(b)
    for k, (x, y) in enumerate(zip(r, b)):
        assert json.loads(x) == json.loads(y), f"order {k}"
