"""router.venue alpaca: what the config accepts and refuses, and the keys' errors, named."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alphad.daemon.config import ConfigError, decode_config, load_config

REPO = Path(__file__).resolve().parents[2]
MIN = "universe: [{id: 0, symbol: BTC/USD}]\n"


def test_shipped_alpaca_paper_config_decodes_as_paper_through_the_gateway():
    cfg, _ = load_config(REPO / "configs" / "alpaca_paper.yaml")
    assert cfg.router.venue == "alpaca" and cfg.router.alpaca.endpoint == "paper"
    assert cfg.feed.source == "alpaca" and cfg.router.execution == "immediate"
    assert cfg.router.alpaca.key_env == "APCA_API_KEY_ID" and cfg.router.alpaca.secret_env == "APCA_API_SECRET_KEY"


def test_alpaca_keys_with_the_paper_venue_are_refused_not_ignored():
    with pytest.raises(ConfigError, match="router.alpaca is set but router.venue is paper"):
        decode_config(MIN + "router: {alpaca: {endpoint: live}}\n")


def test_an_algorithm_with_alpaca_is_refused_as_not_built_and_with_ib_needs_children_that_rest():
    with pytest.raises(ConfigError, match="router.execution twap with router.venue alpaca is not built yet"):
        decode_config(MIN + "router: {venue: alpaca, execution: twap}\n")
    with pytest.raises(ConfigError, match="router.execution pov with router.ib.time_in_force ioc"):
        decode_config(MIN + "router: {venue: ib, execution: pov, ib: {time_in_force: ioc}}\n")
    cfg = decode_config(MIN + "router: {venue: ib, execution: twap, ib: {time_in_force: gtc}}\n")
    assert cfg.router.execution == "twap" and cfg.router.ib.time_in_force == "gtc"


def test_a_bad_endpoint_and_prefix_are_named():
    with pytest.raises(ConfigError, match=r"\$\.router\.alpaca\.endpoint"):
        decode_config(MIN + "router: {venue: alpaca, alpaca: {endpoint: production}}\n")
    with pytest.raises(ConfigError, match="client_order_prefix expected 1..24 characters"):
        decode_config(MIN + "router: {venue: alpaca, alpaca: {client_order_prefix: ''}}\n")


def test_run_without_the_keys_names_the_variables_and_never_starts(tmp_path):
    cfg = (REPO / "configs" / "alpaca_paper.yaml").read_text().replace("prefix: alphad-alpaca",
                                                                      f"prefix: alphad-keys-{tmp_path.name[-12:]}")
    path = tmp_path / "alpaca.yaml"
    path.write_text(cfg.replace("../data/", f"{REPO}/data/").replace("../var/", f"{tmp_path}/var/"))
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("APCA_")}
    run = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(path)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode != 0
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY not set" in run.stderr
    assert "Traceback" not in run.stderr
