"""The features stage's set comes from config, and infer refuses a model trained on another."""
from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import msgspec
import pytest

from alphad.daemon.cli import main
from alphad.kernels.quote_features import FEATURE_SETS

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import REPO, Daemon, eventually  # noqa: E402

pytestmark = pytest.mark.slow


def test_micro_set_when_model_trained_on_it_then_daemon_trades_and_exports_its_16_inputs(tmp_path):
    model = tmp_path / "model"
    raw = msgspec.yaml.decode((REPO / "config.yaml").read_bytes())
    raw["features"]["set"] = "micro"
    raw["feed"]["path"] = str(REPO / raw["feed"]["path"])
    cfg = tmp_path / "train.yaml"
    cfg.write_bytes(msgspec.yaml.encode(raw))
    assert main(["train-demo", "--config", str(cfg), "--out", str(model), "--trees", "20"]) == 0
    (tmp_path / "run").mkdir()
    d = Daemon(tmp_path / "run", topology="fused", tag="-micro",
               sections={"features": {"set": "micro"}, "model": {"card": str(model / "model_card.json")}})
    try:
        d.wait_ready()
        st = eventually(lambda: (s := d.status()).fills > 0 and s, timeout=20, what="a fill")
        assert all(s.alive for s in st.stages.values())
        body = urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5).read().decode()
        psi = {l.split('"')[1] for l in body.splitlines() if l.startswith("alphad_feature_psi{")}
        assert psi == set(FEATURE_SETS["micro"])
    finally:
        d.stop()


def test_micro_set_when_model_lists_quote_set_then_infer_refuses_and_names_both(tmp_path):
    d = Daemon(tmp_path, topology="fused", tag="-mismatch", sections={"features": {"set": "micro"}})
    try:
        assert d.proc.wait(timeout=120) != 0  # refuses to start rather than trade on shuffled inputs
        out = d.output()
        assert "the model expects features ['ret_1'" in out and "'vol_ema']" in out
        assert "publishes ['ret_1'" in out and "'imb_mean'" in out and "exited with code 1 before it was ready" in out
    finally:
        d.stop()
