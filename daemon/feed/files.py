"""A recorded feed file, line by line, with clear errors.

:func:`read` gives the header's cells and an iterator of ``(line number, text)`` over the
non-empty lines after it (numbered from 1 at the header, as an editor shows them).  The
file is read as bytes in blocks (a ``.gz`` file decompressed as it is read); a line ends at
``\n`` or ``\r\n``; a line that is not UTF-8 comes back as ``None`` (the reader counts it
as malformed) instead of ending the read.

Every problem with the file itself is a ``ValueError`` or ``FileNotFoundError`` naming it:
missing, a directory, unreadable, a ``.gz`` that is not gzip, a truncated or corrupt gzip
stream.  (Those end the read: the rows before them were already handed on.)
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path


def open_binary(path: Path):
    """``path`` opened for reading bytes (decompressed when it ends in ``.gz``)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ValueError(f"feed file {path} is a directory, expected a CSV file")
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        return path.open("rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"feed file {path} was not found") from None
    except PermissionError:
        raise ValueError(f"feed file {path} cannot be read: permission denied") from None
    except OSError as e:  # noqa: B014 - anything else the OS says about opening it
        raise ValueError(f"feed file {path} cannot be opened: {e.strerror or e}") from None


def _read_error(path: Path, e: BaseException) -> ValueError:
    """A clear error for what reading (and decompressing) ``path`` raised."""
    if isinstance(e, gzip.BadGzipFile) and "not a gzipped file" in str(e).lower():
        return ValueError(f"feed file {path} is named .gz but is not gzip data ({e}); rename it or compress it")
    if isinstance(e, gzip.BadGzipFile):
        return ValueError(f"feed file {path} is a corrupt gzip file ({e})")
    if isinstance(e, EOFError):
        return ValueError(f"feed file {path} is a truncated gzip file (it ends before the end of its compressed "
                          f"stream); the rows before the cut were read")
    if isinstance(e, zlib.error):
        return ValueError(f"feed file {path} is a corrupt gzip file ({e})")
    if isinstance(e, IsADirectoryError):
        return ValueError(f"feed file {path} is a directory, expected a CSV file")
    return ValueError(f"feed file {path} could not be read: {e}")


#: Bytes read (and decompressed) at a time.
BLOCK = 1 << 20


def _blocks(path: Path):
    """The file's bytes in blocks that end at a line's end (the last one may not)."""
    f = open_binary(path)
    try:
        with f:
            rest = b""
            while True:
                try:
                    block = f.read(BLOCK)
                except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
                    raise _read_error(path, e) from None
                if not block:
                    break
                block = rest + block
                cut = block.rfind(b"\n") + 1
                rest = block[cut:]
                if cut:
                    yield block[:cut]
            if rest:
                yield rest
    except (OSError, EOFError, zlib.error) as e:  # closing a truncated gzip file checks its trailer
        raise _read_error(path, e) from None


def _lines(block: bytes) -> list:
    """A block's lines (text, or None for a line that is not UTF-8), without their ends."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return [_text(b) for b in block.split(b"\n")]
    if "\r" not in text:
        return text.split("\n")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1].endswith("\r"):  # the file's last line, without a \n after its \r
        lines[-1] = lines[-1][:-1]
    return lines


def _text(raw: bytes) -> str | None:
    """One line (a trailing ``\r`` dropped, as from ``\r\n``), or None when not UTF-8."""
    try:
        return raw.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return None


def read(path: Path):
    """``(header cells, iterator of (line number, text or None))``: the header is the first
    line (a UTF-8 byte-order mark dropped, cells stripped of spaces); the iterator yields
    the non-empty lines after it, ``None`` for a line that is not UTF-8 text."""
    path = Path(path)
    blocks = _blocks(path)
    first = next(blocks, b"")
    lines = _lines(first.removeprefix(b"\xef\xbb\xbf"))
    text = lines[0]
    head = [c.strip() for c in text.split(",")] if text else []
    return head, _numbered(lines[1:], blocks)


def _numbered(lines: list, blocks):
    lineno = 1
    while True:
        for line in lines:
            lineno += 1
            if line != "":
                yield lineno, line
        # a block ends with a line's end: its last piece is empty (a line in the next block)
        lineno -= 1
        block = next(blocks, None)
        if block is None:
            return
        lines = _lines(block)
