"""Ring semantics in one process: policies, wrap-around, cursors, layout checks."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from alphad.ipc import dtypes
from alphad.ipc.doorbell import Doorbells
from alphad.ipc.ring import LayoutMismatch, Ring

REC = np.dtype([("t_origin", "i8"), ("seq", "u8"), ("check", "u8")], align=True)


def records(start, n):
    r = np.zeros(n, REC)
    r["seq"] = np.arange(start, start + n)
    r["check"] = r["seq"] * np.uint64(2654435761)
    return r


def test_push_pop_when_lossless_ring_fills_then_producer_gets_partial_count(prefix, bells):
    ring = Ring.create(f"{prefix}.r", REC, 8, ["a"], policy="lossless", bells=bells)
    assert ring.push(records(0, 5)) == 5
    assert ring.push(records(5, 5)) == 3  # only 8 slots: the consumer has read nothing
    assert ring.full_waits == 0
    assert ring.push(records(8, 1)) == 0
    assert ring.full_waits == 1
    got = ring.pop(0, 16)
    assert list(got["seq"]) == list(range(8))
    assert ring.push(records(8, 2)) == 2
    assert list(ring.pop(0, 16)["seq"]) == [8, 9]


def test_overwrite_when_consumer_lapped_then_overruns_counted_and_newest_kept(prefix, bells):
    ring = Ring.create(f"{prefix}.r", REC, 8, ["slow", "fast"], policy="overwrite", bells=bells)
    ring.push(records(0, 4))
    assert list(ring.pop(1, 4)["seq"]) == [0, 1, 2, 3]
    ring.push(records(4, 16))  # 20 written, 8 slots
    got = ring.pop(0, 100)
    assert list(got["seq"]) == list(range(12, 20))
    assert ring.overruns(0) == 12
    got = ring.pop(1, 100)
    assert list(got["seq"]) == list(range(12, 20))
    assert ring.overruns(1) == 8


def test_attach_when_layout_differs_then_error_names_both_layouts(prefix, bells):
    Ring.create(f"{prefix}.r", dtypes.ORDER_DTYPE, 16, ["router"], policy="lossless", bells=bells)
    with pytest.raises(LayoutMismatch) as e:
        Ring.attach(f"{prefix}.r", dtypes.EXEC_DTYPE, bells)
    msg = str(e.value)
    assert dtypes.describe(dtypes.ORDER_DTYPE) in msg
    assert dtypes.describe(dtypes.EXEC_DTYPE) in msg


def test_attach_when_segment_missing_then_error_says_what_to_check(prefix, bells):
    with pytest.raises(FileNotFoundError, match="shm.prefix"):
        Ring.attach(f"{prefix}.nothing", REC, bells)


def test_create_when_capacity_not_power_of_two_then_value_error(prefix, bells):
    with pytest.raises(ValueError, match="power of two"):
        Ring.create(f"{prefix}.r", REC, 12, ["a"], policy="lossless", bells=bells)
    with pytest.raises(ValueError, match="policy"):
        Ring.create(f"{prefix}.r2", REC, 8, ["a"], policy="drop", bells=bells)


def test_create_when_reused_after_crash_then_cursors_kept(prefix, bells):
    ring = Ring.create(f"{prefix}.r", REC, 8, ["a"], policy="lossless", bells=bells)
    ring.push(records(0, 3))
    ring.pop(0, 1)
    again = Ring.create(f"{prefix}.r", REC, 8, ["a"], policy="lossless", bells=bells, exist_ok=True)
    assert again.head == 3 and again.cursor(0) == 1
    with pytest.raises(LayoutMismatch, match="capacity"):
        Ring.create(f"{prefix}.r", REC, 16, ["a"], policy="lossless", bells=bells, exist_ok=True)


def test_consumer_index_when_unknown_name_then_lists_known(prefix, bells):
    ring = Ring.create(f"{prefix}.r", REC, 8, ["features", "risk"], policy="overwrite", bells=bells)
    assert ring.consumer_index("risk") == 1
    with pytest.raises(ValueError, match=r"\['features', 'risk'\]"):
        ring.consumer_index("router")


@settings(max_examples=60, deadline=None)
@given(
    cap_log2=st.integers(1, 6),
    n_consumers=st.integers(1, 4),
    policy=st.sampled_from(["lossless", "overwrite"]),
    ops=st.lists(st.tuples(st.integers(0, 4), st.integers(1, 40)), min_size=1, max_size=60),
)
def test_random_interleavings_match_a_model(cap_log2, n_consumers, policy, ops):
    """Against a reference model: lossless loses nothing and keeps order; overwrite
    delivers an increasing subsequence and counts exactly what it skipped."""
    cap = 1 << cap_log2
    prefix = f"alphad-hyp-{os.getpid()}"
    bells = Doorbells.create(f"{prefix}.bells", exist_ok=True)
    ring = Ring.create(f"{prefix}.r", REC, cap, [f"c{i}" for i in range(n_consumers)], policy=policy,
                       bells=bells)
    try:
        written = 0
        seen = [[] for _ in range(n_consumers)]
        for who, count in ops:
            if who == 0 or who > n_consumers:  # producer
                n = ring.push(records(written, count))
                if policy == "overwrite":
                    assert n == count
                else:
                    slowest = min((ring.cursor(i) for i in range(n_consumers)), default=written)
                    assert n == min(count, slowest + cap - written)
                written += n
            else:
                got = ring.pop(who - 1, count)
                assert np.all(got["check"] == got["seq"] * np.uint64(2654435761))  # never torn
                seen[who - 1].extend(int(s) for s in got["seq"])
        for i in range(n_consumers):
            rest = ring.pop(i, 10_000)
            seen[i].extend(int(s) for s in rest["seq"])
            assert seen[i] == sorted(set(seen[i]))
            if policy == "lossless":
                assert seen[i] == list(range(written))
                assert ring.overruns(i) == 0
            else:
                assert ring.overruns(i) == written - len(seen[i])
                if written:
                    assert seen[i][-1] == written - 1
    finally:
        ring.unlink()
        ring.close()
        bells.segment.unlink()


def _resident_kb(path: str) -> list[int]:
    """Resident kB of each of this process's mappings of ``path`` (/proc/self/smaps)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    return [next(int(x.split()[1]) for x in lines[i + 1:] if x.startswith("Rss:"))
            for i, line in enumerate(lines) if line.endswith(path)]


def test_segment_when_created_or_attached_then_every_page_resident_before_first_use(prefix):
    # a page first touched minutes into a run is a fault on the hot path and a creeping RSS
    from alphad.ipc.shm import Segment

    size = 64 * 4096
    seg = Segment.create(f"{prefix}.populate", size)
    try:
        assert _resident_kb(str(seg.path)) == [size // 1024]
        other = Segment.attach(f"{prefix}.populate")
        try:
            assert _resident_kb(str(seg.path)) == [size // 1024] * 2  # the attached mapping too
        finally:
            other.close()
    finally:
        seg.close()
        seg.unlink()
