"""Kernels compiled without Numba's reference-counting runtime (``_nrt=False``) never hand
a reference back.

Every array a compiled function reads through a state object or creates as a view costs an
atomic increment and decrement; on the backtest's path that was most of the time per event
(BENCHMARKS.md, issue 17).  The leaf kernels, which only read and write arrays their caller
owns, compile with ``_nrt=False`` (so do their callees).  That is safe only while none of
them allocates (Numba refuses to compile that) or returns a reference-counted value (an
array, a view, a state object): the caller would release a reference it was never given.
This test compiles the whole backtest path from an empty cache and checks the return type
of every ``_nrt=False`` specialisation Numba made.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec

_PROBE = r"""
import importlib, json, pathlib, sys
from numba.core.registry import cpu_target
from numba.core.registry import CPUDispatcher
from alphad.daemon.config import load_config
from alphad.daemon.shell.backtest import backtest

cfg, base = load_config(sys.argv[1])
_, summary = backtest(cfg, base)
models = cpu_target.target_context.data_model_manager
checked, declared = {}, []
root = pathlib.Path(sys.argv[2])
for path in sorted(p for pkg in ("daemon", "kernels", "ipc") for p in (root / pkg).rglob("*.py")):
    mod = importlib.import_module("alphad." + ".".join(path.relative_to(root).with_suffix("").parts))
    for name, obj in vars(mod).items():
        if not isinstance(obj, CPUDispatcher) or obj.targetoptions.get("_nrt", True) or obj.__module__ != mod.__name__:
            continue
        declared.append(f"{mod.__name__}.{name}")
        for sig in obj.nopython_signatures:
            key = f"{mod.__name__}.{name}{sig.args}"
            checked[key] = [str(sig.return_type), models[sig.return_type].contains_nrt_meminfo()]
print(json.dumps({"summary": summary, "checked": checked, "declared": declared}))
"""


def test_kernels_without_refcounts_when_the_backtest_compiles_them_cold_then_none_returns_a_reference(
        tmp_path, repo_root):
    raw = msgspec.yaml.decode((repo_root / "config.yaml").read_bytes())
    raw["model"]["card"] = str(repo_root / raw["model"]["card"])
    raw["model"]["runtime"] = "compiled"  # the compiled loop: every stage's kernels in one call
    raw["feed"]["path"] = str(repo_root / raw["feed"]["path"])
    (tmp_path / "config.yaml").write_bytes(msgspec.yaml.encode(raw))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))  # nothing cached: every callee compiled here
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "config.yaml"), str(repo_root)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["summary"]["loop"] == "compiled" and got["summary"]["orders"] > 0
    checked = got["checked"]
    # the path's kernels are there: the venue, the gate, the features, the model, the drawdown ladder
    for kernel in ("paper._on_md_all", "paper._process", "checks.gate_target", "portfolio.on_exec",
                   "quote_features.on_md_batch", "trees.evaluate", "drawdown.update_drawdown"):
        assert any(kernel + "(" in k for k in checked), kernel
    # each one compiled here: one that only another path reaches would meet Numba's own
    # refusals (an allocation, a slice copy) in that path's first run instead of here
    assert sorted(set(got["declared"]) - {k.split("(")[0] for k in checked}) == []
    returning_references = {k: t for k, (t, counted) in checked.items() if counted}
    assert returning_references == {}
