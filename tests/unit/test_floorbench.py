"""floorbench runs a real process chain and reports the chain's latency."""
from __future__ import annotations

import json

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
