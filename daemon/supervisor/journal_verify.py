"""Check a journal end to end: every file of the rotated set, the keyed chain, the anchor.

:func:`check` reads the files in order and stops at the first bad line, which it names as
``FILE:LINE`` with the reason: a torn line, bad UTF-8, bad JSON, a gap in the entry
numbers, a broken link (``prev`` is not the previous entry's hash; between two files: a
file missing or cut), a hash or HMAC mismatch, an unkeyed entry where the chain is keyed
(rewritten without the key).  Then the anchor: a journal that ends before the entry the
anchor records has lost its tail.  A chain that does not start at the genesis must start
where a ``pruned`` entry says the kept chain starts (``journal.max_total_mb``); and a
``recovered`` entry that records anchored entries lost before a restart fails the check.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from pathlib import Path

from alphad.daemon.supervisor.journal_chain import (CHAIN, GENESIS, Mac, anchor_path, entry_hash, key_path,
                                                    read_anchor, read_key)
from alphad.daemon.supervisor.journal_files import active_path, open_set, parse_entry

#: ``recovered`` notes that mean anchored entries were lost (a torn tail never was anchored).
LOSSES = ("truncated", "anchor_lost", "anchor_mismatch")


@dataclass
class Problem:
    file: str
    line: int
    reason: str
    #: the line's place in the whole set, 0-based (one past the end for a missing tail)
    index: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    entries: int = 0
    first_n: int | None = None
    last_n: int | None = None
    keyed: int = 0
    unkeyed: int = 0
    #: where the kept chain starts when older files were pruned, and the note that says so
    pruned_start: tuple[int, str] | None = None
    pruned_note: str | None = None
    anchor: dict | None = None
    torn_recovered: list[str] = field(default_factory=list)
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Reader:
    """The walk over the set; holds what the next line must match."""

    def __init__(self, report: Report, mac: Mac | None, anchor: dict | None, key_file: Path):
        self.r, self.mac, self.anchor, self.key_file = report, mac, anchor, key_file
        self.prev = self.n = None  # the previous entry's hash and number
        self.prev_file = None
        self.keyed_seen = False
        self.start: tuple[Problem, int, str] | None = None  # a start that is not the genesis
        self.starts_noted: dict[tuple[int, str], str] = {}
        self.index = 0
        self.loss: Problem | None = None  # a `recovered` entry that records lost entries

    def line(self, p: Path, lineno: int, raw: bytes, offset_end: int, first_in_file: bool) -> str | None:
        """The reason line ``lineno`` of ``p`` is bad, or None."""
        if not raw.endswith(b"\n"):
            return "torn line (no newline at its end: a write cut short by a crash, or still being written)"
        try:
            body = parse_entry(raw)
        except ValueError as e:
            return str(e)
        n, prev = body["n"], body["prev"]
        if not isinstance(n, int):
            return f"not a journal entry (n is {n!r})"
        boundary = first_in_file and self.prev_file is not None
        if self.n is None:
            if (n, prev) != (0, GENESIS):  # confirmed later by a `pruned` entry, or a problem
                self.start = (Problem(str(p), lineno, "", self.index), n, prev)
        elif n != self.n + 1:
            return (f"broken link between files: {self.prev_file.name} ends at entry n={self.n}, this file starts at "
                    f"n={n} (a file is missing or was cut)") if boundary else \
                f"gap in entry numbers: expected n={self.n + 1}, found n={n} (lines dropped or reordered)"
        elif prev != self.prev:
            return (f"broken link between files: prev is not the hash of {self.prev_file.name}'s last entry"
                    if boundary else "broken link: prev is not the previous entry's hash")
        reason = self._hash(body, n)
        if reason:
            return reason
        self._notes(body, p, lineno)
        a = self.anchor
        if a is not None and n == a["n"]:
            if body["hash"] != a["hash"]:
                return f"anchor mismatch: the anchor records hash {a['hash'][:16]}… for entry n={n}"
            if p.name == a["file"] and offset_end != a["end"]:
                return f"anchor mismatch: the anchor records {a['file']} ending at byte {a['end']} after entry " \
                       f"n={n}, found byte {offset_end}"
        self.prev, self.n, self.prev_file = body["hash"], n, p
        r = self.r
        r.entries += 1
        r.first_n = n if r.first_n is None else r.first_n
        r.last_n = n
        return None

    def _hash(self, body: dict, n: int) -> str | None:
        h = body["hash"]
        body = {k: v for k, v in body.items() if k != "hash"}
        chain = body.get("chain")
        if chain == CHAIN:
            if self.mac is None:
                self.mac = Mac(read_key(self.key_file))
            self.keyed_seen = True
            self.r.keyed += 1
            return None if hmac.compare_digest(entry_hash(body, self.mac), str(h)) else \
                "HMAC mismatch: the entry was changed, or the chain recomputed without the key"
        if chain is not None:
            return f"unknown chain {chain!r}"
        keyed_from = self.anchor["keyed_from"] if self.anchor else None
        if self.keyed_seen or (keyed_from is not None and n >= keyed_from):
            return "unkeyed entry where the chain is keyed: the chain was recomputed without the key"
        self.r.unkeyed += 1
        return None if entry_hash(body, None) == h else "hash mismatch: the entry was changed"

    def _notes(self, body: dict, p: Path, lineno: int) -> None:
        kind = body.get("type")
        if kind == "pruned":
            self.starts_noted[(body.get("start_n"), body.get("start_prev"))] = f"{p}:{lineno}"
        elif kind == "recovered":
            if body.get("what") in LOSSES and self.loss is None:
                self.loss = Problem(str(p), lineno, f"entries lost before a restart ({body.get('what')}): the "
                                    f"anchor recorded entry n={body.get('anchor_n', '?')}, the journal ended at "
                                    f"n={body.get('journal_n', '?')}", self.index)
            elif body.get("what") == "torn_tail":
                self.r.torn_recovered.append(f"{p}:{lineno}: {body.get('bytes')} torn bytes kept in "
                                             f"{body.get('sidecar')}")


def check(path: str | Path, key_file: str | Path | None = None) -> Report:
    """Verify the journal named by ``path`` (``journal.jsonl`` or its folder) with the key in
    ``key_file`` (default: ``journal.key`` beside the folder)."""
    active = active_path(path)
    key_file = Path(key_file) if key_file else key_path(active.parent)
    mac = Mac(read_key(key_file)) if Path(key_file).exists() else None
    report = Report()
    anchor, why = read_anchor(active, mac)
    if why is None and anchor is not None and mac is None:
        mac = Mac(read_key(key_file))  # an anchor is always keyed: say the key is missing
    report.anchor = anchor
    handles = open_set(active)
    walk = _Reader(report, mac, anchor, key_file)
    try:
        for p, f in handles:
            report.files.append(p.name)
            offset = 0
            for lineno, raw in enumerate(f, 1):
                offset += len(raw)
                reason = walk.line(p, lineno, raw, offset, lineno == 1)
                if reason:
                    report.problem = Problem(str(p), lineno, reason, walk.index)
                    break
                walk.index += 1
            if report.problem:
                break
    finally:
        for _, f in handles:
            f.close()
    _start(walk, report)
    if report.problem is None and walk.loss is not None:
        report.problem = walk.loss
    if report.problem is None:
        _tail(walk, report, active, anchor, why)
    return report


def _start(walk: _Reader, report: Report) -> None:
    """A chain that does not start at the genesis: only where a ``pruned`` entry says."""
    if walk.start is None:
        return
    problem, n, prev = walk.start
    note = walk.starts_noted.get((n, prev))
    if note is None:
        problem.reason = (f"the chain starts at entry n={n}, not at the genesis, and no `pruned` entry records "
                          "that start: files are missing from the start of the journal")
        report.problem = problem
    else:
        report.pruned_start, report.pruned_note = (n, prev), note


def _tail(walk: _Reader, report: Report, active: Path, anchor: dict | None, why: str | None) -> None:
    """The anchor against the journal's end."""
    if why:
        report.problem = Problem(str(anchor_path(active)), 1, why.split(": ", 1)[-1], walk.index)
    elif anchor is None:
        if walk.keyed_seen:
            report.problem = Problem(str(anchor_path(active)), 1, "anchor missing: the journal's end cannot be "
                                     "checked (the anchor is written at every flush)", walk.index)
    elif walk.n is None or anchor["n"] > walk.n:
        last = "no entry" if walk.n is None else f"entry n={walk.n}"
        where = walk.prev_file or active  # the tail is missing after the last entry there is
        report.problem = Problem(str(where), _lines(where) + 1,
                                 f"truncated tail: the anchor records entry n={anchor['n']} ({anchor['file']} up to "
                                 f"byte {anchor['end']}), but the journal ends at {last}", walk.index)


def _lines(p: Path) -> int:
    if not p.exists():
        return 0
    with p.open("rb") as f:
        return sum(1 for _ in f)


def verify(path: str | Path, key_file: str | Path | None = None) -> tuple[int, int | None]:
    """The older interface: (entries checked, index of the first bad line across the whole set, or None)."""
    r = check(path, key_file)
    return (r.entries, None) if r.ok else (r.problem.index, r.problem.index)
