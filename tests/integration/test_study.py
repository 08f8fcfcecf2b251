"""``alphad study`` on a small study (issue 22): the daily model trained by the research
pipeline before a three-month window, a sizing variant and a training variant, run serially and
on a local Ray of two workers, gives the same numbers; a re-run computes nothing; the report has
a row per claim."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml


def _configs(shared_data, repo_root, root):
    daily = shared_data / "daily/us_equities_daily_1999-2021.csv.gz"
    lean = shared_data / "daily/lean_etf_daily_2007-2021.csv.gz"
    train = yaml.safe_load((repo_root / "configs/train_daily.yaml").read_text())
    train["data"]["path"] = str(daily)
    train["data"]["end"] = "2016-12-31"
    train["regimes"]["index_path"] = str(lean)
    train["cv"]["n_splits"] = 4
    for m in train["model"]["members"]:
        m["num_boost_round"] = 10
    train["gates"] = {"min_mean_ic": 0.0, "min_ic_tstat": 0.0, "max_is_oos_ratio": 1000.0}  # a small model
    daemon = yaml.safe_load((repo_root / "configs/daily.yaml").read_text())
    daemon["feed"]["path"] = str(daily)
    daemon["feed"]["trade_from"] = str(daemon["feed"]["trade_from"])
    for extra in daemon["feed"]["also"]:
        extra["path"] = str(shared_data / extra["path"].split("shared/data/")[1])
    (root / "train.yaml").write_text(yaml.safe_dump(train, sort_keys=False))
    (root / "daily.yaml").write_text(yaml.safe_dump(daemon, sort_keys=False))
    study = {
        "name": "small", "backtest": "daily.yaml", "train": "train.yaml", "primary_window": "q1_2017",
        "windows": [{"name": "q1_2017", "trade_from": "2017-01-01", "trade_until": "2017-04-01", "train_end": "2016-12-31"}],
        "bootstrap": {"n_boot": 200}, "pbo_splits": 4,
        "variants": [
            {"name": "no_cost_filter", "backtest": {"risk.sizing.cost_multiple": 0.0}},
            {"name": "equal_weight", "train": {"ensemble.method": "equal"}},
        ],
        "claims": [
            {"name": "cost_filter", "claim": "the cost filter", "claimed": "+1 bps", "source": "test",
             "with": "baseline", "without": "no_cost_filter"},
            {"name": "ic_weighting", "claim": "IC weights", "claimed": "+1 bps", "source": "test",
             "with": "baseline", "without": "equal_weight", "metric": "sharpe"},
        ],
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _study(*args, cwd):
    return subprocess.run([sys.executable, "-m", "alphad.daemon.cli", "study", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def _numbers(out):
    r = json.loads((out / "results.json").read_text())
    for k in ("wall_s", "executor", "computed"):
        r.pop(k)
    return r


def test_a_small_study_gives_the_same_numbers_serially_and_on_ray_and_a_rerun_computes_nothing(
        shared_data, repo_root, tmp_path):
    path = _configs(shared_data, repo_root, tmp_path)
    serial = _study("--config", path, "--out", tmp_path / "serial", "--serial", "--no-report", cwd=repo_root)
    assert serial.returncode == 0, serial.stderr[-3000:]
    on_ray = _study("--config", path, "--out", tmp_path / "ray", "--workers", "2", "--report", tmp_path / "r.md",
                    cwd=repo_root)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "on Ray" in on_ray.stderr

    a, b = _numbers(tmp_path / "serial"), _numbers(tmp_path / "ray")
    assert a == b
    # the models too, byte for byte: the regime fits once differed with a Ray worker's BLAS threads
    models = sorted(p.name for p in (tmp_path / "serial/cache/models").iterdir())
    assert models == sorted(p.name for p in (tmp_path / "ray/cache/models").iterdir()) and len(models) == 2
    for key in models:
        for name in ("model.onnx", "regimes.json", "model_card.json"):
            assert (tmp_path / "serial/cache/models" / key / name).read_bytes() == \
                (tmp_path / "ray/cache/models" / key / name).read_bytes(), (key, name)
    # 2 models (the baseline's, shared by no_cost_filter, and equal_weight's) and 3 backtests, all computed
    assert json.loads((tmp_path / "ray/results.json").read_text())["computed"] == 5
    figs = a["figures"]
    assert set(figs) == {"baseline@q1_2017", "no_cost_filter@q1_2017", "equal_weight@q1_2017"}
    assert all(f["orders"] > 0 and f["days"] > 50 for f in figs.values())
    # the variants really differ from the baseline (a variant that changed nothing would match it)
    assert figs["no_cost_filter@q1_2017"]["orders"] != figs["baseline@q1_2017"]["orders"]
    assert figs["equal_weight@q1_2017"]["model_oos_ic"] != figs["baseline@q1_2017"]["model_oos_ic"]
    assert {c["name"] for c in a["claims"]} == {"cost_filter", "ic_weighting"}
    for c in a["claims"]:
        est, lo, hi = c["windows"]["q1_2017"]["return_bps"]
        assert lo <= est <= hi
        assert c["verdict"] in ("confirmed", "not distinguishable from zero", "contradicted")

    again = _study("--config", path, "--out", tmp_path / "serial", "--serial", "--no-report", cwd=repo_root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 of 5 tasks computed" in again.stderr
    assert _numbers(tmp_path / "serial") == a

    report = (tmp_path / "r.md").read_text()
    assert "| the cost filter (`baseline` vs `no_cost_filter`)" in report
    assert "| IC weights (`baseline` vs `equal_weight`)" in report
    assert (tmp_path / "r" / "equity.png").stat().st_size > 1000


def test_a_bad_study_file_is_one_line_naming_it(tmp_path, repo_root):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\nbacktest: nowhere.yaml\ntrain: nowhere.yaml\nwindows: []\nprimary_window: a\nvariants: []\n")
    r = _study("--config", bad, "--out", tmp_path / "o", "--serial", cwd=repo_root)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert str(bad) in r.stderr and "windows" in r.stderr
