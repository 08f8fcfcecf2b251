"""Single-producer, multi-consumer ring of fixed-width records in shared memory.

Policies
--------
``lossless``  the producer never overwrites a slot some consumer has not read;
              :func:`ring_push` returns fewer than asked when the ring is full
              and the caller waits (orders, exec reports, feature rows).
``overwrite`` the producer never waits; a consumer that falls more than a ring
              behind detects it, counts the lost records in its ``overruns``
              and resyncs to the oldest record still intact (market data).

No torn reads
-------------
Every slot starts with a 64-bit sequence word (a per-slot seqlock): the
producer writes ``2*pos+1`` (busy), the record, then ``2*pos+2`` (complete),
and publishes ``head = pos+1`` after the batch.  A reader copies a slot only
if its word reads ``2*pos+2`` before *and* after the copy.  A producer killed
mid-write leaves a busy slot beyond ``head``, which readers never look at; the
restarted producer rewrites it.

Segment layout (all offsets in bytes)
-------------------------------------
======  ==========================================================
0       int64 words: magic, layout version, record size, capacity,
        slot stride, policy, consumer count, header size
64      dtype description (1024 bytes, NUL padded) — checked on attach
1088    ring name (64 bytes)
1152    ``head`` (own cache line), producer pid, producer full-waits
1280    consumer ``i`` at ``1280 + 128*i``: cursor, overruns, doorbell
        index, pid, name (32 bytes at +64)
4096    ``capacity`` slots of ``stride`` bytes: seq word + record
======  ==========================================================
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit

from . import dtypes
from .doorbell import Doorbells, ring_doorbell
from .shm import Segment
from .sync import fence

MAGIC = int.from_bytes(b"ALPHDRNG", "little")
HEADER_BYTES = 4096
MAX_CONSUMERS = 16
POLICIES = {"lossless": 0, "overwrite": 1}
LOSSLESS = 0
OVERWRITE = 1

# int64 word indices in the header
H_MAGIC, H_VERSION, H_RECSIZE, H_CAP, H_STRIDE, H_POLICY, H_NCONS, H_HDRSIZE = range(8)
_DESCR_OFF, _DESCR_LEN = 64, 1024
_NAME_OFF, _NAME_LEN = 1088, 64
H_HEAD = 1152 // 8
H_PRODUCER_PID = H_HEAD + 1
H_FULL_WAITS = H_HEAD + 2
_CONS_OFF = 1280
_CONS_BYTES = 128
# consumer i's slot: int64 words (_CONS_OFF + _CONS_BYTES * i) // 8 + CONS_*
CONS_CURSOR, CONS_OVERRUNS, CONS_DOORBELL, CONS_PID = 0, 1, 2, 3
_CONS_NAME_OFF, _CONS_NAME_LEN = 64, 32


class LayoutMismatch(RuntimeError):
    """A ring's header describes a different record layout than the attaching code."""


def _cons_word(i: int, field: int) -> int:
    return (_CONS_OFF + _CONS_BYTES * i) // 8 + field


# -- the hot path: njit over the int64 and uint8 views of one segment -----------


@njit(cache=True)
def ring_push(h64, b8, bells, bells_addr, src, n):
    """Append up to ``n`` records from ``src`` (uint8, ``n*record_size`` bytes).

    Returns how many were appended: fewer than ``n`` only on a full lossless ring.
    """
    cap = h64[H_CAP]
    mask = cap - 1
    stride = h64[H_STRIDE]
    rsize = h64[H_RECSIZE]
    ncons = h64[H_NCONS]
    lossless = h64[H_POLICY] == LOSSLESS
    head = h64[H_HEAD]
    limit = head + n
    if lossless:
        slowest = head
        for i in range(ncons):
            c = h64[(_CONS_OFF + _CONS_BYTES * i) // 8 + CONS_CURSOR]
            if c < slowest:
                slowest = c
        if slowest + cap < limit:
            limit = slowest + cap
    done = 0
    pos = head
    while pos < limit:
        off = HEADER_BYTES + (pos & mask) * stride
        h64[off // 8] = 2 * pos + 1
        fence()
        b8[off + 8 : off + 8 + rsize] = src[done * rsize : (done + 1) * rsize]
        fence()
        h64[off // 8] = 2 * pos + 2
        pos += 1
        done += 1
    if done == 0:
        if n > 0:
            h64[H_FULL_WAITS] += 1
        return 0
    fence()
    h64[H_HEAD] = pos
    fence()  # store(head) -> load(sleeping): the Dekker half of the doorbell handshake
    for i in range(ncons):
        db = h64[(_CONS_OFF + _CONS_BYTES * i) // 8 + CONS_DOORBELL]
        if db >= 0:
            ring_doorbell(bells, bells_addr, db)
    return done


@njit(cache=True)
def ring_pop(h64, b8, consumer, dst, max_n):
    """Copy up to ``max_n`` unread records for ``consumer`` into ``dst`` (uint8).

    Returns the number copied.  On an overwrite ring, records the producer lapped
    are skipped and added to the consumer's overrun count.
    """
    cap = h64[H_CAP]
    mask = cap - 1
    stride = h64[H_STRIDE]
    rsize = h64[H_RECSIZE]
    cw = (_CONS_OFF + _CONS_BYTES * consumer) // 8
    c = h64[cw + CONS_CURSOR]
    head = h64[H_HEAD]
    fence()
    n = 0
    while c < head and n < max_n:
        if head - c > cap:
            # Lapped before we even looked: jump to the oldest slot still intact.
            h64[cw + CONS_OVERRUNS] += head - cap - c
            c = head - cap
            continue
        off = HEADER_BYTES + (c & mask) * stride
        want = 2 * c + 2
        s1 = h64[off // 8]
        fence()
        if s1 == want:
            dst[n * rsize : (n + 1) * rsize] = b8[off + 8 : off + 8 + rsize]
            fence()
            if h64[off // 8] == want:
                n += 1
                c += 1
                continue
        # The slot holds (or is being written with) a newer record: we were lapped
        # while reading.  Re-read head and skip to the oldest intact position.
        head = h64[H_HEAD]
        fence()
        nc = head - cap + 1
        if nc <= c:
            nc = c + 1
        h64[cw + CONS_OVERRUNS] += nc - c
        c = nc
    h64[cw + CONS_CURSOR] = c
    return n


@njit(cache=True, _nrt=False)
def ring_pending(h64, consumer):
    """Records waiting for ``consumer`` (may exceed capacity on a lapped overwrite ring)."""
    return h64[H_HEAD] - h64[(_CONS_OFF + _CONS_BYTES * consumer) // 8 + CONS_CURSOR]


# -- the Python side: create / attach / inspect -----------------------------------


class Ring:
    """A mapped ring.  Hot code calls :func:`ring_push`/:func:`ring_pop` with
    ``ring.h64``, ``ring.b8`` and plain ints; these methods are for set-up,
    tests and tools."""

    def __init__(self, segment: Segment, dtype: np.dtype, bells: Doorbells):
        self.segment = segment
        self.dtype = dtype
        self.b8 = segment.buf
        self.h64 = segment.buf.view(np.int64)
        self.bells = bells
        self.capacity = int(self.h64[H_CAP])
        self.policy = "lossless" if self.h64[H_POLICY] == LOSSLESS else "overwrite"
        self.n_consumers = int(self.h64[H_NCONS])

    # -- construction
    @classmethod
    def create(
        cls,
        name: str,
        dtype: np.dtype,
        capacity: int,
        consumers: list[str],
        *,
        policy: str,
        bells: Doorbells,
        doorbell_of: dict[str, int] | None = None,
        exist_ok: bool = False,
    ) -> "Ring":
        """Create a ring segment.

        Parameters
        ----------
        consumers : names of the consumers, each getting its own cursor, in order.
        policy : ``"lossless"`` or ``"overwrite"``.
        doorbell_of : consumer name -> doorbell index of the process that reads it;
            consumers absent from it are never woken (spin/yield readers).
        exist_ok : reuse an existing segment with an identical layout (crash restart).
        """
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two >= 2, was {capacity}")
        if policy not in POLICIES:
            raise ValueError(f"ring policy must be one of {sorted(POLICIES)}, was {policy!r}")
        if not 0 < len(consumers) <= MAX_CONSUMERS:
            raise ValueError(f"a ring takes 1..{MAX_CONSUMERS} consumers, was {len(consumers)}")
        stride = 8 + ((dtype.itemsize + 7) // 8) * 8
        size = HEADER_BYTES + capacity * stride
        seg = Segment.create(name, size, exist_ok=exist_ok)
        h64 = seg.buf.view(np.int64)
        if h64[H_MAGIC] == MAGIC:  # reused after a crash: must match exactly
            ring = cls(seg, dtype, bells)
            ring._check_layout(dtype, capacity)
            return ring
        descr = dtypes.describe(dtype).encode()
        if len(descr) > _DESCR_LEN:
            raise ValueError(f"dtype description of {len(descr)} bytes exceeds {_DESCR_LEN}")
        seg.buf[_DESCR_OFF : _DESCR_OFF + len(descr)] = np.frombuffer(descr, np.uint8)
        nb = name.encode()[:_NAME_LEN]
        seg.buf[_NAME_OFF : _NAME_OFF + len(nb)] = np.frombuffer(nb, np.uint8)
        doorbell_of = doorbell_of or {}
        for i, cname in enumerate(consumers):
            h64[_cons_word(i, CONS_DOORBELL)] = doorbell_of.get(cname, -1)
            cb = cname.encode()[:_CONS_NAME_LEN]
            o = _CONS_OFF + _CONS_BYTES * i + _CONS_NAME_OFF
            seg.buf[o : o + len(cb)] = np.frombuffer(cb, np.uint8)
        h64[H_VERSION] = dtypes.LAYOUT_VERSION
        h64[H_RECSIZE] = dtype.itemsize
        h64[H_CAP] = capacity
        h64[H_STRIDE] = stride
        h64[H_POLICY] = POLICIES[policy]
        h64[H_NCONS] = len(consumers)
        h64[H_HDRSIZE] = HEADER_BYTES
        h64[H_MAGIC] = MAGIC  # last: a half-initialised header never passes attach
        return cls(seg, dtype, bells)

    @classmethod
    def attach(cls, name: str, dtype: np.dtype, bells: Doorbells) -> "Ring":
        """Map an existing ring, refusing one whose layout differs from ``dtype``."""
        seg = Segment.attach(name)
        if seg.size < HEADER_BYTES or seg.buf.view(np.int64)[H_MAGIC] != MAGIC:
            raise LayoutMismatch(f"{seg.path} is not an alphad ring (bad magic or size {seg.size})")
        ring = cls(seg, dtype, bells)
        ring._check_layout(dtype, None)
        return ring

    def _check_layout(self, dtype: np.dtype, capacity: int | None) -> None:
        expected = dtypes.describe(dtype)
        found = self.header_layout()
        if found != expected or self.h64[H_VERSION] != dtypes.LAYOUT_VERSION:
            raise LayoutMismatch(
                f"ring {self.segment.name}: layout expected {expected!r} "
                f"(version {dtypes.LAYOUT_VERSION}) but the segment holds {found!r} "
                f"(version {int(self.h64[H_VERSION])})"
            )
        if capacity is not None and capacity != self.capacity:
            raise LayoutMismatch(
                f"ring {self.segment.name}: capacity expected {capacity} but the segment holds {self.capacity}"
            )

    def header_layout(self) -> str:
        raw = bytes(self.b8[_DESCR_OFF : _DESCR_OFF + _DESCR_LEN])
        return raw.rstrip(b"\0").decode(errors="replace")

    # -- consumers
    def consumer_names(self) -> list[str]:
        names = []
        for i in range(self.n_consumers):
            o = _CONS_OFF + _CONS_BYTES * i + _CONS_NAME_OFF
            names.append(bytes(self.b8[o : o + _CONS_NAME_LEN]).rstrip(b"\0").decode())
        return names

    def consumer_index(self, name: str) -> int:
        names = self.consumer_names()
        try:
            return names.index(name)
        except ValueError:
            raise ValueError(f"ring {self.segment.name} has no consumer {name!r}; its consumers are {names}") from None

    def claim(self, consumer: int) -> None:
        """Record this process as the consumer's reader (for status and debugging)."""
        self.h64[_cons_word(consumer, CONS_PID)] = os.getpid()

    def claim_producer(self) -> None:
        self.h64[H_PRODUCER_PID] = os.getpid()

    @property
    def head(self) -> int:
        return int(self.h64[H_HEAD])

    def cursor(self, consumer: int) -> int:
        return int(self.h64[_cons_word(consumer, CONS_CURSOR)])

    def overruns(self, consumer: int) -> int:
        return int(self.h64[_cons_word(consumer, CONS_OVERRUNS)])

    @property
    def full_waits(self) -> int:
        return int(self.h64[H_FULL_WAITS])

    # -- convenience wrappers (tests and tools; stages call the njit functions)
    def push(self, records: np.ndarray) -> int:
        records = np.ascontiguousarray(records, dtype=self.dtype)
        return int(ring_push(self.h64, self.b8, self.bells.words, self.bells.addr, records.view(np.uint8), len(records)))

    def pop(self, consumer: int, max_n: int) -> np.ndarray:
        out = np.empty(max_n, dtype=self.dtype)
        n = ring_pop(self.h64, self.b8, consumer, out.view(np.uint8), max_n)
        return out[:n]

    def close(self) -> None:
        self.b8 = self.h64 = None
        self.segment.close()

    def unlink(self) -> None:
        self.segment.unlink()
