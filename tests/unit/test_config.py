"""config.yaml decoding: defaults run, unknown keys and bad values fail with the path."""
from __future__ import annotations

import pytest

from alphad.daemon.config import Config, ConfigError, decode_config, load_config

MIN = "universe: [{id: 0, symbol: AAA}]\n"


def test_load_when_repo_default_config_then_decodes_with_five_topology(repo_root):
    cfg, base = load_config(repo_root / "config.yaml")
    assert isinstance(cfg, Config)
    assert cfg.topology.name == "five" and cfg.topology.wait == "block"
    assert [i.symbol for i in cfg.universe] == ["BTCUSDT", "ETHUSDT"]
    assert (base / cfg.feed.path).exists() and (base / cfg.model.card).exists()


def test_decode_when_minimal_then_defaults_fill_every_section():
    cfg = decode_config(MIN)
    assert cfg.rings.md == 4096 and cfg.control.endpoint == "tcp://127.0.0.1:7701"


def test_decode_when_unknown_key_then_error_names_path():
    with pytest.raises(ConfigError, match=r"unknown field `max_pos`.*\$\.risk"):
        decode_config(MIN + "risk: {max_pos: 3}\n")


def test_decode_when_wrong_type_then_error_names_path_and_expectation():
    with pytest.raises(ConfigError, match=r"Expected `float`.*\$\.risk\.instrument_defaults\.max_order_notional"):
        decode_config(MIN + "risk: {instrument_defaults: {max_order_notional: lots}}\n")


def test_decode_when_constraint_violated_then_error_names_path():
    with pytest.raises(ConfigError, match=r"\$\.model\.weight_cap"):
        decode_config(MIN + "model: {weight_cap: 1.5}\n")
    with pytest.raises(ConfigError, match=r"\$\.topology\.name"):
        decode_config(MIN + "topology: {name: seven}\n")
    with pytest.raises(ConfigError, match=r">= 0.*\$\.topology\.infer_keep_warm_us"):
        decode_config(MIN + "topology: {infer_keep_warm_us: -100}\n")


def test_decode_when_universe_ids_not_dense_then_error_explains():
    with pytest.raises(ConfigError, match="universe ids must be 0..1 in order"):
        decode_config("universe: [{id: 0, symbol: A}, {id: 2, symbol: B}]\n")


def test_decode_when_cpus_names_no_stage_then_error_lists_the_stages():
    with pytest.raises(ConfigError, match=r"topology.cpus expected keys among \['feed', .*found \['fead'\].*\$\.topology"):
        decode_config(MIN + "topology: {cpus: {fead: 0}}\n")


def test_config_is_frozen():
    cfg = decode_config(MIN)
    with pytest.raises(AttributeError):
        cfg.risk = None


def test_load_when_file_missing_then_error_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml was not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("written", ["2017-01-01", '"2017-01-01"', "2017-01-01T14:30:00-05:00"])
def test_decode_when_trade_from_is_a_yaml_date_or_text_then_the_same_day(written):
    """YAML reads an unquoted 2017-01-01 as a date; the config keeps it as the text its field parses."""
    cfg = decode_config(MIN + f"feed: {{trade_from: {written}}}\n")
    want = {"2017-01-01": 1_483_228_800, "2017-01-01T14:30:00-05:00": 1_483_299_000}[written.strip('"')]
    assert cfg.feed.trade_from_ns() == want * 1_000_000_000


def test_decode_when_trade_from_is_not_a_date_then_error_names_it():
    with pytest.raises(ConfigError, match=r"feed.trade_from expected an ISO date.*'soon'.*\$\.feed"):
        decode_config(MIN + "feed: {trade_from: soon}\n")


def test_train_config_when_data_end_is_a_yaml_date_or_text_then_the_same_day(tmp_path, repo_root):
    import datetime

    from alphad.ops.train_cli import load_config as load_train_config

    text = (repo_root / "configs/train_daily.yaml").read_text()
    assert "  end: 2016-12-31" in text  # the shipped config writes it unquoted
    for written in ("2016-12-31", '"2016-12-31"'):
        (tmp_path / "t.yaml").write_text(text.replace("  end: 2016-12-31", f"  end: {written}"))
        assert load_train_config(tmp_path / "t.yaml").data.end == datetime.date(2016, 12, 31)
    (tmp_path / "t.yaml").write_text(text.replace("  end: 2016-12-31", "  end: Jan 2016"))
    with pytest.raises(ValueError, match=r"data.end expected a date such as 2016-12-31, found 'Jan 2016'"):
        load_train_config(tmp_path / "t.yaml")
