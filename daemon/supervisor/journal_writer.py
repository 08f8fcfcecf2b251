"""Appends to the daemon's journal: the keyed chain, rotation, the anchor, the disk cap.

* Each entry is chained and MAC'd (:mod:`journal_chain`) and written to ``journal.jsonl``.
* Rotation: when the active file reaches ``journal.rotate_mb``, or the first entry of a new
  UTC day comes, the file is renamed ``journal.<first n>.<day>.jsonl`` (:mod:`journal_files`)
  and a new one begins; the chain goes on across the files.
* :meth:`JournalWriter.flush` fsyncs, then replaces the anchor (the last entry's number,
  hash and place), so a tail cut off later is seen by ``alphad audit verify``.
* Crash-only start: a torn last line (a crash mid-write) is cut off into a sidecar file and
  noted (``recovered``), never blocking the start; an anchor ahead of the journal (lost
  entries) is noted the same way.
* ``journal.max_total_mb``: beyond it the oldest rotated files are removed, after a
  ``checkpoint`` entry (what a full restart reads back, as of the entries before it:
  :mod:`journal_checkpoint`) and a ``pruned`` entry that says which and the number and
  ``prev`` hash the kept chain starts from (both written and fsynced first: a crash in
  between removes nothing unrecorded).  So a restart rebuilds the same book, halts and
  trading state from a pruned journal as from the whole one.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from alphad.daemon.supervisor.journal_checkpoint import StartState
from alphad.daemon.supervisor.journal_chain import (CHAIN, GENESIS, Mac, anchor_path, canonical, entry_hash,
                                                    fsync_dir, key_path, load_or_create_key, read_anchor,
                                                    write_anchor)
from alphad.daemon.supervisor.journal_files import (ACTIVE, first_line, journal_set, last_line, parse_entry,
                                                    recover_torn_tail, rotated_files, rotated_name)

MB = 1024 * 1024
DAY_NS = 86_400 * 1_000_000_000


class JournalWriter:
    """Appends entries to the hash-chained journal ``DIRECTORY/journal.jsonl`` (see above).

    ``key_file``: the HMAC key (relative to ``base``; default ``journal.key`` beside the
    directory, created on the first start).  ``clock``: wall-clock ns (tests set the day).
    ``config``: the daemon's config (its universe and ``risk`` section), which a capped
    writer needs for its checkpoints; a writer without one (tools, tests) prunes without.
    Not :class:`alphad.ops.tca.TcaJournalWriter`, which writes TCA events without a chain.
    """

    def __init__(self, directory: str | Path, *, key_file: str | Path | None = None, base: Path | None = None,
                 rotate_mb: float = 256.0, max_total_mb: float = 0.0, clock=time.time_ns, config=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / ACTIVE
        self.key_file = key_path(self.dir, key_file, base)
        self.mac = Mac(load_or_create_key(self.key_file))
        self.rotate_bytes = max(1, int(rotate_mb * MB))
        self.max_total_bytes = int(max_total_mb * MB)
        self.clock = clock
        notes = [n for n in [recover_torn_tail(self.path)] if n]
        last = self._last_entry()
        self.prev, self.n = (GENESIS, 0) if last is None else (last[0]["hash"], int(last[0]["n"]) + 1)
        self.keyed_from = self._check_anchor(last, notes)
        # what a restart reads back, kept up to date at each append for the checkpoint
        # written before files are pruned (none without a cap: nothing is ever lost then)
        self.start_state = StartState(config).load(self.path) if self.max_total_bytes and config else None
        self.file = self.path.open("ab")
        self.size = os.fstat(self.file.fileno()).st_size
        self.first_n, self.first_ts = self._file_start()
        # where the last entry ends: the anchor records it
        self.last_file, self.last_end = (ACTIVE, self.size) if self.size or last is None else \
            (last[1].name, last[1].stat().st_size)
        self.dirty, self._pruning = True, False
        for note in notes:
            self.append("recovered", note)
        self.flush()
        self.prune()

    @classmethod
    def from_config(cls, cfg, base: Path, config=None) -> "JournalWriter":
        """The writer of config section ``journal`` (paths relative to ``base``) of the
        daemon's ``config``."""
        from alphad.daemon.config_base import resolve

        return cls(resolve(base, cfg.dir), key_file=cfg.key_file or None, base=base, rotate_mb=cfg.rotate_mb,
                   max_total_mb=cfg.max_total_mb, config=config)

    # -- start ---------------------------------------------------------------------
    def _last_entry(self) -> tuple[dict, Path] | None:
        """The journal's last entry and its file; None for a new journal."""
        for p in reversed(journal_set(self.path)):
            if p.stat().st_size == 0:
                continue
            raw, offset = last_line(p)
            try:
                body = parse_entry(raw)
            except ValueError as e:
                raise RuntimeError(f"{p}: its last line (byte {offset}) is not a journal entry ({e}); run "
                                   f"`alphad audit verify {self.dir}` and repair the file") from None
            if body.get("chain") == CHAIN:
                check = {k: v for k, v in body.items() if k != "hash"}
                if entry_hash(check, self.mac) != body["hash"]:
                    raise RuntimeError(f"journal key {self.key_file} does not verify the last entry of {p} (n="
                                       f"{body['n']}): it is not the key this journal was written with; restore "
                                       "that key, or move the journal away to start a new one")
            return body, p
        return None

    def _check_anchor(self, last, notes: list[dict]) -> int:
        """Compare the anchor with the journal's end; note what was lost.  Returns the first
        entry number that must be keyed."""
        anchor, why = read_anchor(self.path, self.mac)
        last_n = -1 if last is None else int(last[0]["n"])
        last_keyed = last is not None and last[0].get("chain") == CHAIN
        if anchor is None:
            if why or last_keyed:
                notes.append({"what": "anchor_lost", "detail": why or f"{anchor_path(self.path)} was missing",
                              "journal_n": last_n})
                _alert(f"{why or anchor_path(self.path).name + ' was missing'}; journaled as `recovered`")
            return last_n if last_keyed else self.n  # an older, unkeyed journal: keyed from here
        if anchor["n"] > last_n:
            notes.append({"what": "truncated", "anchor_n": anchor["n"], "anchor_hash": anchor["hash"],
                          "anchor_file": anchor["file"], "anchor_end": anchor["end"], "journal_n": last_n,
                          "lost": anchor["n"] - last_n})
            _alert(f"the anchor records entry n={anchor['n']} but the journal ends at n={last_n}: "
                   f"{anchor['n'] - last_n} entries lost; journaled as `recovered`")
        elif last is not None and anchor["n"] == last_n and anchor["hash"] != last[0]["hash"]:
            notes.append({"what": "anchor_mismatch", "anchor_n": anchor["n"], "anchor_hash": anchor["hash"],
                          "journal_hash": last[0]["hash"]})
            _alert(f"the anchor's hash for entry n={last_n} is not the journal's; journaled as `recovered`")
        return int(anchor["keyed_from"])

    def _file_start(self) -> tuple[int, int | None]:
        """The first entry number and wall time of the active file (this writer's next ones
        when it is empty)."""
        if self.size == 0:
            return self.n, None
        try:
            body = parse_entry(first_line(self.path))
            return int(body["n"]), int(body["ts_ns"])
        except (ValueError, KeyError) as e:
            raise RuntimeError(f"{self.path}:1: not a journal entry ({e}); run `alphad audit verify {self.dir}`") \
                from None

    # -- writing -------------------------------------------------------------------
    def append(self, kind: str, fields: dict) -> None:
        ts = self.clock()
        if self.size and ts // DAY_NS != self.first_ts // DAY_NS:
            self.rotate()  # a new UTC day starts a new file
        body = {"n": self.n, "ts_ns": ts, "type": kind, **fields, "chain": CHAIN, "prev": self.prev}
        text = canonical(body)
        h = self.mac.entry(self.prev, text)
        line = (text[:-1] + ',"hash":"' + h + '"}\n').encode()
        if self.size == 0:
            self.first_n, self.first_ts = self.n, ts
        self.file.write(line)
        self.size += len(line)
        self.prev, self.n = h, self.n + 1
        self.last_file, self.last_end, self.dirty = ACTIVE, self.size, True
        if self.start_state is not None:
            self.start_state.apply(kind, fields)
        if self.size >= self.rotate_bytes:
            self.rotate()

    def flush(self) -> None:
        """Everything appended made durable, then the anchor replaced."""
        if not self.dirty:
            return
        self.file.flush()
        os.fsync(self.file.fileno())
        write_anchor(self.path, self.mac, n=self.n - 1, hash=self.prev, file=self.last_file, end=self.last_end,
                     keyed_from=self.keyed_from)
        self.dirty = False

    def close(self) -> None:
        if not self.file.closed:
            self.flush()
            self.file.close()

    def rotate(self) -> None:
        """The active file, complete and durable, renamed into the rotated set; a new one begun."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        target = self.dir / rotated_name(self.path, self.first_n, self.first_ts)
        if target.exists():
            raise RuntimeError(f"{target} exists already: two journal files would start at entry {self.first_n}")
        os.rename(self.path, target)
        fsync_dir(self.dir)
        self.file = self.path.open("ab")
        if self.last_file == ACTIVE:
            self.last_file = target.name
        self.size, self.first_ts, self.dirty = 0, None, True
        self.flush()
        self.prune()

    def prune(self) -> None:
        """Remove the oldest rotated files while the journal holds more than
        ``max_total_mb`` (the active file always stays), after journaling what goes."""
        if not self.max_total_bytes or self._pruning:
            return
        rotated = rotated_files(self.path)
        sizes = [p.stat().st_size for p in rotated]
        total, k = sum(sizes) + self.size, 0
        while k < len(rotated) and total > self.max_total_bytes:
            total -= sizes[k]
            k += 1
        if k == 0:
            return
        drop, keep = rotated[:k], rotated[k:]
        start = parse_entry(first_line(keep[0] if keep else self.path)) if keep or self.size else None
        start_n, start_prev = (self.n, self.prev) if start is None else (int(start["n"]), start["prev"])
        from_n = int(parse_entry(first_line(drop[0]))["n"])
        self._pruning = True  # (a rotation by the entries below prunes nothing more)
        try:
            if self.start_state is not None:  # what the files removed leave a restart: all before it
                self.append("checkpoint", self.start_state.snapshot())
            self.append("pruned", {"files": [p.name for p in drop], "bytes": sum(sizes[:k]),
                                   "entries": start_n - from_n, "from_n": from_n, "start_n": start_n,
                                   "start_prev": start_prev, "max_total_mb": self.max_total_bytes / MB})
            self.flush()
        finally:
            self._pruning = False
        for p in drop:
            p.unlink(missing_ok=True)
        fsync_dir(self.dir)
        print(f"alphad: journal over journal.max_total_mb {self.max_total_bytes / MB:g}: removed {k} oldest files "
              f"(entries {from_n}..{start_n - 1}); the kept chain starts at entry {start_n}", file=sys.stderr,
              flush=True)


def _alert(what: str) -> None:
    print(f"alphad: alert: journal: {what} (`alphad audit verify` reports it)", file=sys.stderr, flush=True)
