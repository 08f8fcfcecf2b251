"""Numba's cache folder follows the whole source, so a changed callee is never served stale."""
from __future__ import annotations

import os
import subprocess
import sys

from alphad.ipc.kernel_cache import source_digest

_PROBE = ("import os, numba.core.config as c; from alphad.kernels import quote_features; "
          "print(os.environ['NUMBA_CACHE_DIR']); print(c.CACHE_DIR)")


def _probe(env_dir: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    if env_dir is not None:
        env["NUMBA_CACHE_DIR"] = env_dir
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_cache_dir_when_root_given_then_numba_uses_root_slash_source_digest(tmp_path):
    want = str(tmp_path / source_digest())
    assert _probe(str(tmp_path)) == [want, want]


def test_cache_dir_when_inherited_by_a_stage_process_then_not_nested_again(tmp_path):
    already = str(tmp_path / source_digest())
    assert _probe(already) == [already, already]


def test_cache_dir_when_unset_then_under_home_cache():
    env_dir, numba_dir = _probe(None)
    assert env_dir == numba_dir == os.path.expanduser(f"~/.cache/alphad/numba/{source_digest()}")


def test_source_digest_when_one_callee_file_changes_then_digest_changes(tmp_path):
    for pkg in ("daemon", "kernels", "ipc", "ops"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "kernels" / "indicators.py").write_text("def f(x):\n    return x + 1\n")
    before = source_digest(tmp_path)
    assert source_digest(tmp_path) == before  # deterministic
    (tmp_path / "kernels" / "indicators.py").write_text("def f(x):\n    return x + 2\n")
    assert source_digest(tmp_path) != before
