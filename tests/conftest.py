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


@pytest.fixture(scope="session")
def daily_run(shared_data, repo_root, tmp_path_factory):
    """The folder ``alphad train --config configs/train_daily.yaml --out DIR`` writes (61 stocks,
    2000..2016, ~1-2 min): one training per session, shared by the tests of the daily model."""
    from alphad.daemon.cli import main

    text = (repo_root / "configs/train_daily.yaml").read_text()
    shipped = "../../shared/data/daily/us_equities_daily_1999-2021.csv.gz"
    assert shipped in text, f"configs/train_daily.yaml no longer reads {shipped}; update this fixture"
    root = tmp_path_factory.mktemp("train_daily")
    cfg = root / "train_daily.yaml"  # the shipped config, reading the data wherever shared_data is
    lean = "../../shared/data/daily/lean_etf_daily_2007-2021.csv.gz"  # the HMM's index (regimes.json)
    assert lean in text, f"configs/train_daily.yaml no longer reads {lean}; update this fixture"
    cfg.write_text(text.replace(shipped, str(shared_data / "daily/us_equities_daily_1999-2021.csv.gz"))
                   .replace(lean, str(shared_data / "daily/lean_etf_daily_2007-2021.csv.gz")))
    out = root / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    return out


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
