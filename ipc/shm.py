"""Named shared-memory segments under /dev/shm, mapped as numpy arrays.

``multiprocessing.shared_memory`` is not used: its resource tracker unlinks
segments when the *creating* process exits and warns in the others, which is
the wrong ownership model for stages that systemd or the supervisor restarts
independently.  Here the supervisor creates and unlinks; stages only attach.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

SHM_DIR = Path(os.environ.get("ALPHAD_SHM_DIR", "/dev/shm"))


#: Every page mapped now (MAP_POPULATE): a ring's or a latency table's page is otherwise
#: first touched minutes into a run, as its write cursor first gets there: a page fault on
#: the hot path then, and a resident size that creeps up until every ring has wrapped (the
#: soak's router grew 2-3 MB that way, BENCHMARKS.md).
MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)

#: Bytes before a stage state segment's arrays (``risk_state``, ``router_state``; byte 0:
#: 1 once a stage has initialised them; daemon/shell/stages.py ``shared_arrays``).
STATE_HEADER = 64


class Segment:
    """One mapped segment.  ``buf`` is a writable uint8 view of the whole mapping."""

    __slots__ = ("name", "path", "size", "_mm", "buf")

    def __init__(self, name: str, path: Path, mm: mmap.mmap):
        self.name = name
        self.path = path
        self._mm = mm
        self.size = len(mm)
        self.buf = np.frombuffer(mm, dtype=np.uint8)

    @classmethod
    def create(cls, name: str, size: int, *, exist_ok: bool = False) -> "Segment":
        """Create (zero-filled) segment ``name`` of ``size`` bytes.

        With ``exist_ok`` an existing segment of the same size is reused as it is:
        that is how a restarted supervisor finds the state a crash left behind.
        """
        path = segment_path(name)
        flags = os.O_RDWR | os.O_CREAT | (0 if exist_ok else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise FileExistsError(
                f"shared-memory segment {path} already exists; another alphad instance may be "
                "running with the same shm prefix, or a crashed one left it (remove it or change "
                "`shm.prefix`)"
            ) from None
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, MAP_FLAGS, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        return cls(name, path, mm)

    @classmethod
    def attach(cls, name: str) -> "Segment":
        path = segment_path(name)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"shared-memory segment {path} was not found: is the supervisor (`alphad run`) up, "
                "and do both sides use the same `shm.prefix`?"
            ) from None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise RuntimeError(f"shared-memory segment {path} is empty (its creator died while sizing it)")
            mm = mmap.mmap(fd, size, MAP_FLAGS, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        return cls(name, path, mm)

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        # numpy views keep the mmap exported; dropping our view lets close succeed when
        # no other view is alive.  A BufferError means a caller still holds a view: the
        # mapping then goes away with the process, which is harmless.
        self.buf = None
        try:
            self._mm.close()
        except BufferError:
            pass


def segment_path(name: str) -> Path:
    if "/" in name or not name:
        raise ValueError(f"segment name must be a non-empty file name without '/', was {name!r}")
    return SHM_DIR / name


def list_segments(prefix: str) -> list[Path]:
    """Every segment whose name starts with ``prefix + '.'`` (used to verify clean shutdown)."""
    return sorted(p for p in SHM_DIR.glob(f"{prefix}.*"))


def _nbytes(specs) -> list[int]:
    return [int(np.prod(shape)) * np.dtype(dt).itemsize for shape, dt in specs]


def state_size(specs: list[tuple[tuple[int, ...], type]]) -> int:
    """Bytes of a state segment holding the arrays ``specs`` (shape, dtype), after its header."""
    return STATE_HEADER + sum(_nbytes(specs))


def state_views(buf, specs: list[tuple[tuple[int, ...], type]]) -> list[np.ndarray]:
    """The arrays ``specs`` lays out in a state segment's buffer ``buf`` (views, no copy)."""
    views, off = [], STATE_HEADER
    for (shape, dt), nb in zip(specs, _nbytes(specs)):
        views.append(buf[off : off + nb].view(dt).reshape(shape))
        off += nb
    return views
