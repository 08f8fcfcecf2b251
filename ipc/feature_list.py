"""The feature list the features stage publishes, read by the inference stage.

A small segment holding ``u32 length`` + UTF-8 JSON ``{"set": NAME, "names": [...]}``.
The features stage writes it before it reports ready; the inference stage waits
for it and refuses a model whose card lists other features (or another order),
so the two processes cannot silently disagree about what column ``j`` means.
"""
from __future__ import annotations

import json
import struct
import time

from .shm import Segment

SIZE = 16384


def publish(segment: Segment, set_name: str, names: list[str] | tuple[str, ...]) -> None:
    body = json.dumps({"set": set_name, "names": list(names)}).encode()
    if len(body) + 4 > SIZE:
        raise ValueError(f"feature list of {len(body)} bytes does not fit the {SIZE}-byte segment")
    segment.buf[4 : 4 + len(body)] = memoryview(body)
    segment.buf[:4] = memoryview(struct.pack("<I", len(body)))  # length last: readers see all or nothing


def read(segment: Segment, timeout_s: float = 60.0) -> tuple[str, list[str]]:
    """Wait up to ``timeout_s`` for the features stage to publish; returns (set, names)."""
    deadline = time.monotonic() + timeout_s
    while True:
        (n,) = struct.unpack("<I", bytes(segment.buf[:4]))
        if n:
            meta = json.loads(bytes(segment.buf[4 : 4 + n]))
            return meta["set"], meta["names"]
        if time.monotonic() > deadline:
            raise RuntimeError(f"the features stage did not publish its feature list within {timeout_s} s")
        time.sleep(0.01)
