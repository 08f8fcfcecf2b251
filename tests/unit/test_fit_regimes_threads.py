"""The regime fits do not depend on the process's BLAS threads (issue 22: a Ray worker runs with
OMP_NUM_THREADS=1, a shell with every core; before the fits were pinned to one thread, AMZN's
GARCH differed in the 2nd digit between them, and with it every sized order)."""
from __future__ import annotations

import os
import subprocess
import sys

FIT = """
import json, sys
from alphad.ops.fit_regimes import fit_daily_regimes
d = sys.argv[1]
p = fit_daily_regimes(d + "/daily/us_equities_daily_1999-2021.csv.gz", d + "/daily/lean_etf_daily_2007-2021.csv.gz",
                      end="2016-12-31", symbols=["AMZN", "TXN", "PG"])
print(json.dumps(p, sort_keys=True))
"""


def test_the_same_data_gives_the_same_regimes_on_one_blas_thread_or_two(shared_data):
    out = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        r = subprocess.run([sys.executable, "-c", FIT, str(shared_data)], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        out.append(r.stdout)
    assert '"AMZN"' in out[0]
    assert out[0] == out[1]
