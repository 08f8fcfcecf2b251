"""Shared fixtures.

Tests that read real market data are marked ``@pytest.mark.data`` and use the
``shared_data`` fixture.  When ``../shared/data`` is missing the fixture *fails*
(it never skips): CI must have the data, and a silently skipped oracle test is
a defect.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ALPHAD_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; fails the test loudly when it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.fail(
            f"real market data expected at {SHARED_DATA} (or $ALPHAD_SHARED_DATA) was not found; "
            "tests marked 'data' need it"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def prefix(request):
    """A /dev/shm name prefix of this test's own; every segment under it is removed after."""
    p = f"alphad-test-{os.getpid()}-{abs(hash(request.node.nodeid)) % 10**8}"
    yield p
    from alphad.ipc.shm import list_segments

    for path in list_segments(p):
        path.unlink()


@pytest.fixture
def bells(prefix):
    """A doorbell segment under ``prefix`` (this process rings and sleeps on bell 0)."""
    from alphad.ipc.doorbell import Doorbells

    b = Doorbells.create(f"{prefix}.bells")
    yield b
    b.segment.close()
