"""/metrics families of the journal's disk: the bytes the journal directory holds and the
room left on its filesystem.

The size is the sum of every regular file under the directory (the live journal, rotated
segments, the session file), so rotation changes nothing here.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily


def directory_bytes(path: Path) -> int:
    """Bytes of every regular file under ``path`` (0 when it does not exist yet); a file
    removed while it is read (rotation) is skipped."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def disk_room(path: Path) -> tuple[int, int]:
    """``(free bytes an unprivileged writer may use, filesystem size)`` of the filesystem
    holding ``path`` (its nearest existing ancestor while it does not exist)."""
    p = Path(path).absolute()
    while not p.exists():
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def disk_families(journal_dir: Path):
    size = GaugeMetricFamily("alphad_journal_bytes", "Bytes of every file in the journal directory "
                             "(journal.dir: the live journal and its rotated segments)")
    size.add_metric([], float(directory_bytes(journal_dir)))
    yield size
    free, total = disk_room(journal_dir)
    room = GaugeMetricFamily("alphad_journal_disk_free_bytes", "Free bytes (for a non-root writer) on the "
                             "filesystem holding the journal")
    room.add_metric([], float(free))
    yield room
    cap = GaugeMetricFamily("alphad_journal_disk_size_bytes", "Size of the filesystem holding the journal")
    cap.add_metric([], float(total))
    yield cap
