"""infer_bench times the real infer step (real ONNX session) hot, cold and after each gap."""
from __future__ import annotations

import json

from alphad.ops import infer_bench


def test_infer_bench_when_gaps_given_then_one_row_per_gap_with_ordered_percentiles(repo_root, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert infer_bench.main(["--n", "50", "--gaps-us", "0,200", "--run-paths", "--keep-warm-us", "250"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["providers"] == ["CPUExecutionProvider"]
    rows = [r["batch_1"]["hot"], r["batch_64"]["after_1ms_sleep"], *r["batch_1_after_spin_gap_us"].values(),
            *r["run_paths_batch_1"].values(), r["batch_1_after_1ms_sleep_kept_warm_every_250us"]]
    assert set(r["run_paths_batch_1"]) == {"public_run_with_iobinding", "native_preallocated_run_options"}
    assert list(r["batch_1_after_spin_gap_us"]) == ["0", "200"]
    assert all(0 < q["p50"] <= q["p99"] for q in rows)
