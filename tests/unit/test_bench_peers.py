"""bench_peers' pure parts: the table, its median and range, the generated alphad config, the
round order and the peers' commands; and its clear error when the peer scripts are missing;
and alphad's own replay-only job.  No network, no peer venv, no peer job is run."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alphad.daemon.config import decode_config
from alphad.ops import bench_peers as bp


def _records():
    recs = []
    for r, (full, feed, hbt) in enumerate([(300e3, 2.0e6, 5.0e6), (310e3, 2.2e6, 5.4e6), (290e3, 2.1e6, 5.2e6)]):
        recs += [dict(round=r + 1, job="alphad_full", events=93078, events_per_s=full, orders=1200),
                 dict(round=r + 1, job="alphad_replay", events=93078, events_per_s=feed, orders=0),
                 dict(round=r + 1, job="hbt_strategy", events=93078, events_per_s=hbt, orders=800 + r)]
    return recs


def test_median_range_when_rounds_then_median_min_max():
    assert bp.median_range([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert bp.median_range([4.0, 1.0, 2.0, 3.0]) == (2.5, 1.0, 4.0)
    with pytest.raises(ValueError):
        bp.median_range([])


def test_fmt_orders_when_rounds_agree_then_one_number_else_range():
    assert bp.fmt_orders([1200, 1200]) == "1,200"
    assert bp.fmt_orders([800, 802, 801]) == "800–802"
    assert bp.fmt_orders([0, 0]) == "0"
    assert bp.fmt_orders([None]) == "—"


def test_summarise_and_table_when_rounds_then_one_row_per_job_in_table_order():
    rows = bp.summarise(_records())
    assert [r["job"] for r in rows] == ["alphad_full", "alphad_replay", "hbt_strategy"]
    full = rows[0]
    assert (full["events_per_s_median"], full["events_per_s_min"], full["events_per_s_max"]) == (300e3, 290e3, 310e3)
    assert full["rounds"] == 3 and full["events"] == 93078
    table = bp.markdown_table(rows).splitlines()
    assert table[0] == "| system | job | events/s, median (min–max) | orders |"
    assert table[2] == "| alphad | full pipeline | 300,000 (290,000–310,000) | 1,200 |"
    assert table[3] == "| alphad | replay only | 2,100,000 (2,000,000–2,200,000) | 0 |"
    assert table[4] == "| hftbacktest | strategy | 5,200,000 (5,000,000–5,400,000) | 800–802 |"


def test_alphad_config_when_generated_then_feed_on_csv_once_model_compiled_universe_kept(tmp_path):
    base = yaml.safe_load(bp.CONFIG.read_text())
    csv = tmp_path / "l2_btc.csv.gz"
    cfg = bp.alphad_config(base, csv)
    assert cfg["feed"]["path"] == str(csv.resolve())
    assert (cfg["feed"]["format"], cfg["feed"]["loop"], cfg["feed"]["source"]) == ("generic", False, "replay")
    assert cfg["model"]["runtime"] == "compiled"
    assert Path(cfg["model"]["card"]).is_absolute() and Path(cfg["model"]["card"]) == bp.MODEL_CARD
    assert cfg["universe"] == base["universe"]
    assert {k: v for k, v in cfg.items() if k not in ("feed", "model")} == \
        {k: v for k, v in base.items() if k not in ("feed", "model")}
    assert base["feed"]["loop"] is True and base["feed"]["path"] != cfg["feed"]["path"]  # the input is untouched
    decoded = decode_config(yaml.safe_dump(cfg))  # alphad itself accepts it
    assert decoded.model.runtime == "compiled" and decoded.feed.loop is False


def test_rounds_order_when_rounds_then_every_job_once_and_the_start_rotates():
    keys = [k for k, _, _ in bp.JOBS]
    for r in range(8):
        assert sorted(bp.rounds_order(r)) == sorted(keys)
    assert [bp.rounds_order(r)[0] for r in range(len(keys))] == keys


def test_peer_command_when_modes_then_scripts_files_and_json(tmp_path):
    out = tmp_path / "o.json"
    hbt = bp.peer_command("hbt_replay", tmp_path, out, 93078)
    assert hbt[0] == str(tmp_path / "hbt" / "bin" / "python") and hbt[1].endswith("hbt_run.py")
    assert hbt[2] == str(tmp_path / "data" / "hbt_l2_btc.npz")
    assert hbt[3:] == ["--mode", "replay", "--source-events", "93078", "--json", str(out)]
    nt = bp.peer_command("nt_strategy", tmp_path, out, 93078)
    assert nt[0] == str(tmp_path / "nt" / "bin" / "python") and nt[1].endswith("nt_run.py")
    assert nt[2:] == [str(tmp_path / "data" / "l2_btc.npz"), "--mode", "strategy", "--json", str(out)]


def test_parse_json_stdout_when_log_lines_first_then_the_document():
    assert bp.parse_json_stdout('compiling\n{\n  "events": 3,\n  "loop": "compiled"\n}\n') == \
        {"events": 3, "loop": "compiled"}
    with pytest.raises(ValueError):
        bp.parse_json_stdout("no json here")


def test_main_when_peer_scripts_missing_then_one_line_error_naming_the_path(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "shared" / "bench" / "peers"
    monkeypatch.setattr(bp, "SCRIPTS", missing)
    assert bp.main(["--peers-dir", str(tmp_path / "peers"), "--rounds", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bench_peers: error:") and str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "peers").exists()  # nothing was set up


def test_main_when_rounds_below_one_then_error(capsys):
    assert bp.main(["--rounds", "0"]) == 1
    assert "--rounds must be at least 1" in capsys.readouterr().err


def test_replay_only_when_run_on_the_demo_feed_then_every_event_moves_through_the_books(tmp_path):
    """The one job this file runs: the market alone through the backtest's process."""
    base = yaml.safe_load(bp.CONFIG.read_text())
    base["feed"]["path"] = str(bp.REPO / base["feed"]["path"])
    base["feed"]["loop"] = False
    base["model"]["card"] = str(bp.MODEL_CARD)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(base))
    got = bp.replay_only(str(tmp_path / "config.yaml"))
    assert got["events"] == 44_282  # the demo recording's events, each stepped once
    assert got["orders"] == 0 and got["replay_s"] > 0 and got["events_per_s"] > 0
