"""The journal's chain: the key, each entry's MAC, and the anchor file.

Each entry carries ``prev`` (the previous entry's hash) and ``hash``: HMAC-SHA256, under a
key kept outside the journal directory, of ``prev`` + the entry's canonical JSON without
``hash`` (keyed entries say ``"chain": "hmac-sha256"``).  Without the key nobody can
recompute the chain after an edit, so a rewritten journal no longer verifies.  Journals
written before the key existed hold unkeyed entries (``hash`` = sha256 of the same text);
they verify as they are, and the keyed chain continues from their last hash.

The anchor (``journal.anchor`` beside ``journal.jsonl``) is replaced atomically after every
flush and is itself MAC'd: the last entry's number and hash, the file that holds it and
where that entry ends, and the first entry that must be keyed.  A journal that ends before
the anchor's entry has lost its tail, which the chain alone cannot see.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
from pathlib import Path

GENESIS = "0" * 64
#: The ``chain`` field of a keyed entry.
CHAIN = "hmac-sha256"
#: The default key file, beside (never inside) the journal directory.
KEY_NAME = "journal.key"


def canonical(body: dict) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def sha256_digest(prev: str, text: str) -> str:
    """An unkeyed (pre-key) entry's hash."""
    return hashlib.sha256((prev + text).encode()).hexdigest()


class Mac:
    """HMAC-SHA256 under one key; the keyed state is built once and copied per entry."""

    def __init__(self, key: bytes):
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def entry(self, prev: str, text: str) -> str:
        m = self._base.copy()
        m.update((prev + text).encode())
        return m.hexdigest()

    def anchor(self, text: str) -> str:
        m = self._base.copy()
        m.update(b"anchor:" + text.encode())  # another domain than the entries'
        return m.hexdigest()


def entry_hash(body: dict, mac: Mac | None) -> str | None:
    """What ``body``'s ``hash`` should be (``body`` without ``hash``); None for a keyed entry
    when there is no key."""
    text = canonical(body)
    if body.get("chain") == CHAIN:
        return None if mac is None else mac.entry(body.get("prev", ""), text)
    return sha256_digest(body.get("prev", ""), text)


# -- the key ------------------------------------------------------------------------
def key_path(directory: Path, key_file: str | Path | None = None, base: Path | None = None) -> Path:
    """The key file of the journal in ``directory``: ``key_file`` (relative to ``base``, the
    config's folder), or ``journal.key`` in the directory's parent.  A key inside the
    journal directory would travel with the journal, so it is refused."""
    directory = Path(directory)
    if key_file:
        p = Path(key_file)
        p = p if p.is_absolute() or base is None else base / p
    else:
        p = directory.absolute().parent / KEY_NAME
    d, k = directory.absolute().resolve(), p.absolute().resolve()
    if k == d or d in k.parents:
        raise ValueError(f"journal.key_file expected outside the journal directory {directory} (a key beside "
                         f"the journal lets whoever rewrites the journal recompute its chain), was {p}")
    return p


def read_key(path: Path) -> bytes:
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        raise FileNotFoundError(f"journal key expected at {path} (journal.key_file), was missing") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ValueError(f"{path}: journal key expected as at least 32 hex characters, found {len(text)} "
                         "characters that are not one")
    if os.stat(path).st_mode & 0o077:
        print(f"alphad: warning: journal key {path} is readable by other users (chmod 600 it)", file=sys.stderr)
    return key


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``; on the first start, 32 random bytes written there (mode 0600)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another writer made it first
            return read_key(path)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        print(f"alphad: journal key created at {path} (mode 0600): keep it, the journal's chain needs it",
              file=sys.stderr, flush=True)
    return read_key(path)


# -- the anchor -----------------------------------------------------------------------
def anchor_path(active: Path) -> Path:
    """``journal.jsonl`` -> ``journal.anchor``."""
    return active.with_suffix(".anchor")


def write_anchor(active: Path, mac: Mac, *, n: int, hash: str, file: str, end: int, keyed_from: int) -> None:
    """Replace the anchor atomically (a crash leaves the old one or the new one, whole)."""
    body = {"n": n, "hash": hash, "file": file, "end": end, "keyed_from": keyed_from}
    text = canonical(body)
    data = (canonical({**body, "mac": mac.anchor(text)}) + "\n").encode()
    path = anchor_path(active)
    tmp = path.with_name("." + path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_anchor(active: Path, mac: Mac | None) -> tuple[dict | None, str | None]:
    """``(anchor, None)``, ``(None, None)`` when there is none, or ``(None, why)`` when it is
    unreadable or its MAC does not verify (``mac`` None: not checked)."""
    path = anchor_path(active)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        body = json.loads(raw)
        got = body.pop("mac")
        int(body["n"]), str(body["hash"]), str(body["file"]), int(body["end"]), int(body["keyed_from"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, f"{path}: not a journal anchor"
    if mac is not None and not hmac.compare_digest(mac.anchor(canonical(body)), str(got)):
        return None, f"{path}: the anchor's MAC does not verify with the key (edited, or written with another key)"
    return body, None


def fsync_dir(directory: Path) -> None:
    """Make a rename or removal in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
