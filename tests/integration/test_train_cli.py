"""`alphad train` end to end on a reduced slice of the real daily panel."""
from __future__ import annotations

import hashlib
import json

import lightgbm as lgb
import numpy as np
import pytest

from alphad.daemon.cli import main
from alphad.ops import dataset as dsm
from alphad.ops.export_onnx import make_session
from alphad.daemon.infer.model_card import read_card

SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM", "KO", "PFE", "GE", "WMT"]


def _config(shared_data, *, gates: str, extra: str = "") -> str:
    return f"""
data:
  path: {shared_data / "daily/us_equities_daily_1999-2021.csv.gz"}
  symbols: [{", ".join(SYMBOLS)}]
  start: "2003-01-01"
  end: "2012-12-31"
label:
  kind: forward_return
  horizon: 5
  demean: true
cv:
  scheme: walk_forward
  n_splits: 4
  min_train_days: 750
  embargo_days: 7
model:
  num_threads: 1
  params: {{learning_rate: 0.1, num_leaves: 7, min_data_in_leaf: 200}}
  members:
    - {{name: a, seed: 1, num_boost_round: 20}}
    - {{name: b, seed: 2, num_boost_round: 20, features: [logret_5, logret_20, vol_20, rsi_14, nma_20]}}
gates:
{gates}
verify_rows: 5000
{extra}"""


@pytest.mark.data
def test_train_when_gates_pass_then_exports_onnx_card_boosters_and_report(shared_data, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(_config(shared_data, gates="  min_mean_ic: -1.0\n  min_ic_tstat: -100.0\n  max_is_oos_ratio: 1000000000.0"))
    out = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "fold 4/4" in err and "t-stat" in err  # progress shown

    for f in ("model.onnx", "model_0.txt", "model_1.txt", "model_card.json", "report.md",
              "ic_per_fold.png", "feature_importance.png", "cumulative_oos_return.png"):
        assert (out / f).stat().st_size > 0, f
    card = read_card(out / "model_card.json")  # the daemon's decoder accepts it
    assert card.feature_names == list(dsm.FEATURE_NAMES)
    assert card.onnx_sha256 == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert len(card.folds) == 4 and all(f.test_rows > 0 for f in card.folds)
    assert [g.name for g in card.gates] == ["min_mean_ic", "min_ic_tstat", "max_is_oos_ratio"]
    assert len(card.ensemble_weights) == 2 and sum(card.ensemble_weights) == pytest.approx(1.0)
    assert card.data_sha256 == hashlib.sha256(
        (shared_data / "daily/us_equities_daily_1999-2021.csv.gz").read_bytes()).hexdigest()
    extra = json.loads((out / "model_card.json").read_text())
    assert np.isfinite(extra["oos_ic_tstat"]) and len(extra["drift_reference"]["edges"]) == len(dsm.FEATURE_NAMES)
    assert extra["members"][1]["features"] == ["logret_5", "logret_20", "vol_20", "rsi_14", "nma_20"]

    # The shipped graph equals the weighted sum of the shipped native boosters.
    bars = dsm.load_daily(shared_data / "daily/us_equities_daily_1999-2021.csv.gz", symbols=SYMBOLS,
                          start="2013-01-01", end="2014-12-31")
    _, X = dsm.feature_matrix(bars)
    X = X[np.all(np.isfinite(X), axis=1)]
    names = list(dsm.FEATURE_NAMES)
    cols = [list(range(len(names))), [names.index(f) for f in extra["members"][1]["features"]]]
    expect = sum(w * lgb.Booster(model_file=str(out / f"model_{i}.txt")).predict(X[:, c])
                 for i, (w, c) in enumerate(zip(card.ensemble_weights, cols)))
    got = make_session(out / "model.onnx").run(None, {card.input_name: X})[0][:, 0]
    assert np.abs(got - expect).max() <= 1e-6

    report = (out / "report.md").read_text()
    assert "EXPORTED" in report and report.count("\n| ") >= 4 + 3


@pytest.mark.data
def test_train_when_gate_fails_then_refuses_export_and_names_gate(shared_data, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(_config(shared_data, gates="  min_mean_ic: 0.5\n  min_ic_tstat: -100.0\n  max_is_oos_ratio: 1000000000.0"))
    out = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "gate(s) failed: min_mean_ic" in err
    assert not (out / "model.onnx").exists() and not (out / "model_card.json").exists()
    failed = json.loads((out / "gates_failed.json").read_text())
    assert [g["name"] for g in failed if not g["passed"]] == ["min_mean_ic"]
    assert "REFUSED" in (out / "report.md").read_text()


def test_train_when_config_has_unknown_key_then_error_names_file_and_path(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data: {path: x.csv}\ncv: {n_split: 3}\nmodel: {members: [{name: a}, {name: b}]}\n")
    rc = main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(cfg) in err and "n_split" in err and "$.cv" in err


def test_train_when_one_member_then_error_names_members(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data: {path: x.csv}\nmodel: {members: [{name: a}]}\n")
    rc = main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert rc == 1 and "$.model.members" in capsys.readouterr().err
