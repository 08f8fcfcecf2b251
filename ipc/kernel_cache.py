"""Numba's on-disk cache, keyed by the whole package's source.

Numba (0.68) keys a cached function on its own file only: when a kernel in
``kernels/indicators.py`` changes, ``feature_sets.update_row`` (another file, which
calls it) still loads the machine code compiled against the old kernel, and runs it
without a word.  An upgrade that changes only a callee would do the same in
production, where ``NUMBA_CACHE_DIR`` outlives the install.

So every alphad package points Numba at ``<root>/<hash of every .py file of alphad>``
before any kernel is decorated: changed code finds an empty folder and compiles
afresh, unchanged code reuses its cache.  ``<root>`` is ``$NUMBA_CACHE_DIR`` when set
(the systemd unit sets ``/var/cache/alphad/numba``), else ``~/.cache/alphad/numba``.
Old folders are left for the operator (``rm -r`` is safe at any time: it only costs a
compile).  This module must not import numba: it runs before numba reads its config.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

_PACKAGES = ("daemon", "kernels", "ipc", "ops")
_ENV = "NUMBA_CACHE_DIR"
_digest: str | None = None


def source_digest(root: Path | None = None) -> str:
    """12 hex digits of sha256 over every ``.py`` file of the alphad packages (path and bytes).

    ``root`` holds the package folders (default: this install's); the default is memoised.
    """
    global _digest
    if root is None and _digest is not None:
        return _digest
    base = root if root is not None else Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for path in sorted((base / pkg).rglob("*.py")):
            h.update(str(path.relative_to(base)).encode())
            h.update(path.read_bytes())
    digest = h.hexdigest()[:12]
    if root is None:
        _digest = digest
    return digest


def configure() -> Path:
    """Point Numba's cache at the folder for this source; idempotent, inherited by children."""
    current = os.environ.get(_ENV, "")
    digest = source_digest()
    if Path(current).name == digest:
        path = Path(current)
    else:
        root = Path(current) if current else Path.home() / ".cache" / "alphad" / "numba"
        path = root / digest
        os.environ[_ENV] = str(path)  # stage processes inherit it
    if "numba" in sys.modules:  # imported before us: its config was read already
        from numba.core import config

        config.CACHE_DIR = str(path)
    return path
