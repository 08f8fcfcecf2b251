"""floorbench runs a real process chain and reports the chain's latency."""
from __future__ import annotations

import json
import os

import pytest

from alphad.ops import floorbench


# yield mode busy-polls in every process after the first: one poller, on a 2-core machine
@pytest.mark.parametrize("wait, stages", [("eventfd", 4), ("yield", 2)])
def test_floorbench_when_chain_runs_then_reports_percentiles_of_every_tick(wait, stages, capsys):
    assert floorbench.main(["--wait", wait, "--stages", str(stages), "--ticks", "300", "--warmup", "50"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["hops"] == stages - 1 and r["wait"] == wait
    q = r["chain_us"]
    assert 0 < q["p50"] <= q["p90"] <= q["p99"] <= q["p999"]


def test_floorbench_when_fewer_ticks_than_warmup_then_usage_error(capsys):
    with pytest.raises(SystemExit):
        floorbench.main(["--ticks", "10", "--warmup", "20"])
    assert "--ticks > --warmup" in capsys.readouterr().err


def test_floorbench_when_pinned_fifo_with_pollers_then_reports_and_gives_back_the_callers_placement(capsys):
    cpu = max(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0), os.sched_getscheduler(0)
    argv = ["--cpus", str(cpu), "--sched", "fifo", "--idle-poll", "--ticks", "300", "--warmup", "50"]
    try:
        code = floorbench.main(argv)
    except SystemExit:  # a host without CAP_SYS_NICE: refused up front, with the reason
        assert "--sched fifo was refused" in capsys.readouterr().err
    else:
        assert code == 0
        r = json.loads(capsys.readouterr().out)
        assert (r["cpus"], r["sched"], r["idle_poll"]) == ([cpu], "fifo", True)
        assert r["chain_us"]["p50"] > 0
    assert (os.sched_getaffinity(0), os.sched_getscheduler(0)) == before


def test_floorbench_when_fifo_and_yield_then_usage_error(capsys):
    with pytest.raises(SystemExit):
        floorbench.main(["--wait", "yield", "--sched", "fifo"])
    assert "--sched fifo needs --wait eventfd" in capsys.readouterr().err
