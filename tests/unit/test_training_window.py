"""The model card's training window and the in-sample guard of ``alphad backtest`` and
``alphad replay``: a feed starting on or before the card's ``train_end`` is refused (exit 2)
unless ``--allow-in-sample``; ``alphad train`` writes the window from its dataset."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys

import msgspec
import numpy as np
import pytest

from alphad.daemon.cli import main
from alphad.daemon.infer.model_card import ModelCard, read_card

DEMO_FEED = "data/demo_btc_eth_quotes_trades.csv.gz"
#: The demo feed's first event: 1723161254024619568 ns = 2024-08-08T23:54:14Z.
FEED_FIRST_DAY = "2024-08-08"


def small_feed(repo_root, path, n_events: int = 3000) -> None:
    """The demo recording's first events: the same first event, a run of seconds."""
    with gzip.open(repo_root / DEMO_FEED, "rt") as f:
        lines = [next(f) for _ in range(n_events + 1)]  # + the header
    path.write_text("".join(lines))


def card_folder(repo_root, folder, *, with_onnx: bool = True, **window) -> None:
    """The demo model's card (plus its model.onnx when asked) with ``window`` fields added."""
    folder.mkdir()
    card = json.loads((repo_root / "data/demo_model/model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, **window}))
    if with_onnx:
        shutil.copy(repo_root / "data/demo_model/model.onnx", folder / "model.onnx")


def config(repo_root, tmp_path, card_dir, feed) -> str:
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["feed"]["path"] = str(feed)
    raw["model"]["card"] = str(card_dir / "model_card.json")
    path = tmp_path / f"{card_dir.name}.yaml"
    path.write_bytes(msgspec.yaml.encode(raw))
    return str(path)


def summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


# -- the card ------------------------------------------------------------------------------

def test_card_when_window_recorded_then_decoded_as_dates(repo_root, tmp_path):
    card_folder(repo_root, tmp_path / "m", with_onnx=False, train_start="2003-01-02", train_end="2016-12-30",
                feature_set="daily")
    card = read_card(tmp_path / "m/model_card.json")
    assert (card.train_start, card.train_end, card.feature_set) == ("2003-01-02", "2016-12-30", "daily")
    assert card.train_end_date.isoformat() == "2016-12-30"


def test_card_when_older_card_then_no_window(repo_root):
    card = read_card(repo_root / "data/demo_model/model_card.json")
    assert card.train_start is None and card.train_end is None and card.train_end_date is None


@pytest.mark.parametrize("window, message", [
    ({"train_end": "2016-13-01"}, "train_end expected an ISO date YYYY-MM-DD, found '2016-13-01'"),
    ({"train_start": "2017-01-03", "train_end": "2016-12-30"},
     "train_start 2017-01-03 expected on or before train_end 2016-12-30"),
])
def test_card_when_window_malformed_then_error_names_file_and_field(repo_root, tmp_path, window, message):
    card_folder(repo_root, tmp_path / "m", with_onnx=False, **window)
    with pytest.raises(ValueError) as e:
        read_card(tmp_path / "m/model_card.json")
    assert str(tmp_path / "m/model_card.json") in str(e.value) and message in str(e.value)


# -- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["backtest", "replay"])
def test_cli_when_feed_starts_on_train_end_then_refused_with_exit_2(repo_root, tmp_path, capsys, command):
    # No model.onnx beside the card: the refusal comes before the model is loaded (a load
    # would fail on the missing file with exit 1 instead).
    card_folder(repo_root, tmp_path / "m", with_onnx=False, train_start="2024-01-02", train_end=FEED_FIRST_DAY)
    cfg = config(repo_root, tmp_path, tmp_path / "m", repo_root / DEMO_FEED)
    rc = main([command, "--config", cfg])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    line, = err.splitlines()  # one line, no traceback
    assert line.startswith(f"alphad {command}: error: in-sample run refused")
    assert str(tmp_path / "m/model_card.json") in line
    assert f"train_end {FEED_FIRST_DAY}" in line and f"the feed trades from {FEED_FIRST_DAY}" in line
    assert "--allow-in-sample" in line


def test_backtest_when_train_end_after_feed_start_then_refused(repo_root, tmp_path, capsys):
    card_folder(repo_root, tmp_path / "m", with_onnx=False, train_end="2024-12-31")
    rc = main(["backtest", "--config", config(repo_root, tmp_path, tmp_path / "m", repo_root / DEMO_FEED)])
    assert rc == 2 and "train_end 2024-12-31" in capsys.readouterr().err


# -- runs ------------------------------------------------------------------------------------

def test_backtest_when_allow_in_sample_then_runs_and_summary_says_in_sample(repo_root, tmp_path, capsys):
    small_feed(repo_root, tmp_path / "feed.csv")
    card_folder(repo_root, tmp_path / "m", train_end=FEED_FIRST_DAY)
    rc = main(["backtest", "--config", config(repo_root, tmp_path, tmp_path / "m", tmp_path / "feed.csv"),
               "--allow-in-sample"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    s = summary(out)
    assert s["in_sample"] is True and s["events"] == 3000
    assert "running in sample (--allow-in-sample)" in err


def test_backtest_when_feed_starts_after_train_end_then_runs_out_of_sample(repo_root, tmp_path, capsys):
    small_feed(repo_root, tmp_path / "feed.csv")
    card_folder(repo_root, tmp_path / "m", train_start="2024-01-02", train_end="2024-08-07")
    rc = main(["backtest", "--config", config(repo_root, tmp_path, tmp_path / "m", tmp_path / "feed.csv")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert summary(out)["in_sample"] is False and "in sample" not in err


def test_backtest_when_card_has_no_window_then_runs_with_a_note(repo_root, tmp_path, capsys):
    small_feed(repo_root, tmp_path / "feed.csv")
    card_folder(repo_root, tmp_path / "m")
    rc = main(["backtest", "--config", config(repo_root, tmp_path, tmp_path / "m", tmp_path / "feed.csv")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert summary(out)["in_sample"] is None and summary(out)["events"] == 3000
    note = [ln for ln in err.splitlines() if "training window" in ln]
    assert note == [f"note: model card {tmp_path / 'm/model_card.json'} records no training window (train_end): "
                    "the in-sample check is skipped"]


@pytest.mark.slow
def test_replay_when_allow_in_sample_then_runs_and_summary_says_in_sample(repo_root, tmp_path):
    small_feed(repo_root, tmp_path / "feed.csv")
    card_folder(repo_root, tmp_path / "m", train_end=FEED_FIRST_DAY)
    cfg = config(repo_root, tmp_path, tmp_path / "m", tmp_path / "feed.csv")
    run = subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "replay", "--config", cfg, "--topology",
                          "fused", "--allow-in-sample"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    s = summary(run.stdout)
    assert s["in_sample"] is True and s["events"] == 3000


# -- alphad train writes the window ---------------------------------------------------------

TRAIN_SYMBOLS = ["AAPL", "MSFT", "KO"]


@pytest.mark.data
def test_train_when_exported_then_card_window_is_the_datasets_label_span(shared_data, tmp_path, capsys):
    from alphad.ops import dataset as dsm

    daily = shared_data / "daily/us_equities_daily_1999-2021.csv.gz"
    (tmp_path / "train.yaml").write_text(f"""
data: {{path: {daily}, symbols: [{", ".join(TRAIN_SYMBOLS)}], start: "2010-01-01", end: "2013-06-30"}}
feature_set: daily
label: {{kind: forward_return, horizon: 5, demean: true}}
cv: {{scheme: walk_forward, n_splits: 2, min_train_days: 300, embargo_days: 7}}
model:
  params: {{learning_rate: 0.1, num_leaves: 4, min_data_in_leaf: 50}}
  members: [{{name: a, seed: 1, num_boost_round: 5}}, {{name: b, seed: 2, num_boost_round: 5}}]
gates: {{min_mean_ic: -1.0, min_ic_tstat: -100.0, max_is_oos_ratio: 1000000000.0}}
verify_rows: 500
""")
    rc = main(["train", "--config", str(tmp_path / "train.yaml"), "--out", str(tmp_path / "run"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    card = read_card(tmp_path / "run/model_card.json")

    bars = dsm.load_daily(daily, symbols=TRAIN_SYMBOLS, start="2010-01-01", end="2013-06-30")
    ds = dsm.build_dataset(bars, horizon=5, demean=True, feature_set="daily")
    last_bar = str(bars["date"].max())[:10]
    # train_end is the end of the last label's horizon: the file's last bar (2013-06-28, a
    # Friday), five bars after the last row a label starts on, not that feature date.
    assert card.train_end == str(ds.t_end.max())[:10] == last_bar == "2013-06-28"
    assert card.train_end > str(ds.t_start.max())[:10]
    assert card.train_start == str(ds.t_start.min())[:10] > "2010-01-01"  # after the features' warm-up
    assert card.feature_set == "daily"
    assert isinstance(card, ModelCard) and np.isfinite(card.prediction_scale)
    assert "training window (model card): " + f"{card.train_start} .. {card.train_end}" in \
        (tmp_path / "run/report.md").read_text()
