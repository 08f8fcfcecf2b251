"""The journal's files: the active ``journal.jsonl`` and the rotated ones before it.

A rotated file is named ``journal.<first entry number, 12 digits>.<UTC day of its first
entry, YYYYMMDD>.jsonl``, so the names sort in the order of the chain and say where each
file starts.  Every reader takes the whole set, oldest first, the active file last
(:func:`journal_set`, :func:`open_set`), so a caller that names ``journal.jsonl`` (or its
folder) reads everything the journal still holds.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import BinaryIO

ACTIVE = "journal.jsonl"


def active_path(path: str | Path) -> Path:
    """``journal.jsonl`` of a journal named by its file or its folder."""
    p = Path(path)
    return p / ACTIVE if p.is_dir() else p


def _rotated_pattern(active: Path) -> re.Pattern | None:
    if not active.name.endswith(".jsonl"):
        return None
    return re.compile(re.escape(active.name[: -len(".jsonl")]) + r"\.(\d{12})\.(\d{8})\.jsonl")


def rotated_name(active: Path, first_n: int, ts_ns: int) -> str:
    day = time.strftime("%Y%m%d", time.gmtime(ts_ns / 1e9))
    return f"{active.name[: -len('.jsonl')]}.{first_n:012d}.{day}.jsonl"


def rotated_files(active: Path) -> list[Path]:
    """The rotated files of the journal whose active file is ``active``, oldest first."""
    pattern = _rotated_pattern(active)
    if pattern is None or not active.parent.is_dir():
        return []
    return sorted(active.parent / n for n in os.listdir(active.parent) if pattern.fullmatch(n))


def journal_set(path: str | Path) -> list[Path]:
    """Every file of the journal, oldest first, the active file last (when it exists)."""
    active = active_path(path)
    return rotated_files(active) + ([active] if active.exists() else [])


def open_set(path: str | Path) -> list[tuple[Path, BinaryIO]]:
    """The journal's files opened for reading, in order.  The listing is taken again once
    every file is open: a rotation or removal in between is read again, so a reader of a
    running daemon's journal never misses a file that was renamed under it."""
    for _ in range(20):
        files = journal_set(path)
        handles: list[tuple[Path, BinaryIO]] = []
        try:
            for p in files:
                handles.append((p, p.open("rb")))
        except FileNotFoundError:
            files = None
        if files is not None and journal_set(path) == files:
            if not handles:
                raise FileNotFoundError(f"journal expected at {active_path(path)}, was missing")
            return handles
        for _, f in handles:
            f.close()
    raise RuntimeError(f"{path}: the journal's files kept changing while they were opened")


def entries(path: str | Path):
    """The journal's entries as dicts, in order, across its rotated files (``path``: the
    active ``journal.jsonl`` or the journal's folder).  A torn last line of the last file (a
    crash mid-write, or a line still being written) is left out; any other unreadable line
    raises ``ValueError`` naming it as FILE:LINE."""
    handles = open_set(path)
    try:
        for k, (p, f) in enumerate(handles):
            for lineno, raw in enumerate(f, 1):
                if not raw.endswith(b"\n") and k == len(handles) - 1:
                    return  # torn by a crash while it was written: never acted on
                try:
                    e = json.loads(raw)
                except ValueError:  # bad JSON, bad UTF-8, a torn line inside the set
                    raise ValueError(f"{p}:{lineno}: not a journal entry; `alphad audit verify` says why") from None
                yield e
    finally:
        for _, f in handles:
            f.close()


def first_line(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.readline()


def last_line(path: Path) -> tuple[bytes, int]:
    """The last complete line of ``path`` (b"" when none) and the byte offset it starts at;
    bytes after the last newline (a torn write) are not part of it."""
    size = path.stat().st_size
    with path.open("rb") as f:
        window = 1 << 16
        while True:
            start = max(0, size - window)
            f.seek(start)
            chunk = f.read(size - start)
            end = chunk.rfind(b"\n")
            if end < 0 and start == 0:
                return b"", 0
            if end >= 0:
                cut = chunk.rfind(b"\n", 0, end)
                if cut >= 0 or start == 0:
                    return chunk[cut + 1 : end + 1], start + cut + 1
            window *= 4  # a line longer than the window: read further back


def parse_entry(raw: bytes) -> dict:
    """One line as an entry; ``ValueError`` saying why it is not one (bad UTF-8, bad JSON,
    no chain fields)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"bad UTF-8 at byte {e.start}") from None
    try:
        body = json.loads(text)
    except ValueError as e:
        raise ValueError(f"bad JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(body, dict) or not {"n", "prev", "hash"} <= body.keys():
        raise ValueError("not a journal entry (no n, prev or hash)")
    return body


def recover_torn_tail(active: Path) -> dict | None:
    """A crash mid-write leaves the active file's last line without its newline: cut those
    bytes off (kept in a sidecar file beside the journal) so the chain goes on from the last
    whole entry.  Returns what was cut, or None when the file ends cleanly."""
    if not active.exists():
        return None
    size = active.stat().st_size
    if size == 0:
        return None
    with active.open("rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        line, start = last_line(active)
        cut = start + len(line)
        f.seek(cut)
        torn = f.read()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        sidecar = active.with_name(f"{active.name}.torn-{stamp}-{cut}")
        with sidecar.open("wb") as s:
            s.write(torn)
            s.flush()
            os.fsync(s.fileno())
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    return {"what": "torn_tail", "file": active.name, "offset": cut, "bytes": len(torn), "sidecar": sidecar.name}
