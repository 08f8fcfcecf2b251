"""The published feature list: written whole by features, read by infer, compared with the card."""
from __future__ import annotations

import os
import threading
import time

import pytest

from alphad.daemon.infer.session import ModelMismatch, ModelSession
from alphad.ipc import feature_list
from alphad.ipc.shm import Segment
from alphad.kernels.quote_features import FEATURE_NAMES


@pytest.fixture
def segment():
    seg = Segment.create(f"alphad-fl-{os.getpid()}", feature_list.SIZE)
    yield seg
    seg.unlink()
    seg.close()


def test_read_when_published_later_then_waits_and_gets_the_ordered_list(segment):
    threading.Timer(0.05, feature_list.publish, (segment, "quote", FEATURE_NAMES)).start()
    t = time.monotonic()
    name, names = feature_list.read(segment, timeout_s=5)
    assert (name, names) == ("quote", list(FEATURE_NAMES)) and time.monotonic() - t >= 0.04


def test_read_when_never_published_then_error_says_so(segment):
    with pytest.raises(RuntimeError, match="did not publish its feature list"):
        feature_list.read(segment, timeout_s=0.05)


def test_infer_when_published_order_differs_from_card_then_refuses(segment, repo_root):
    feature_list.publish(segment, "quote", list(FEATURE_NAMES[1:]) + [FEATURE_NAMES[0]])
    _, names = feature_list.read(segment)
    with pytest.raises(ModelMismatch):
        ModelSession(repo_root / "data/demo_model/model_card.json", names)
