"""Helpers shared by the line- and document-oriented JSON converters (telethon-json,
snscrape-jsonl, tgdataset): bounded line reading, first-line peeking, exact ints, and the
"is this file this format at all" gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import orjson

from .converters.base import Item, SourceRef
from .errors import InputError

BOM = b"\xef\xbb\xbf"
WHITESPACE = b" \t\r\n"
MAX_LINE = 64 << 20  # a JSON line longer than this is garbage, not a post
GATE_LIMIT = 1000  # unrecognised items tolerated at the start before the file is rejected
RAW_LIMIT = 4096  # characters of an unparsable fragment kept for the rejects file


class PeekReader:
    """A binary reader that can look at its first line and then replays it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buffer = b""

    def peek_first_line(self, limit: int = 1 << 16) -> bytes:
        """The first non-blank line (at most `limit` bytes of it), without consuming it."""
        while len(self._buffer) < limit:
            text = self._buffer.lstrip(BOM + WHITESPACE)
            if b"\n" in text:
                break
            chunk = self._raw.read(limit)
            if not chunk:
                break
            self._buffer += chunk
        return self._buffer.lstrip(BOM + WHITESPACE).split(b"\n", 1)[0]

    def read(self, size: int = -1) -> bytes:
        if self._buffer:
            if size is None or size < 0 or size >= len(self._buffer):
                head, self._buffer = self._buffer, b""
                return head
            head, self._buffer = self._buffer[:size], self._buffer[size:]
            return head
        return self._raw.read(size)


def exact_int(value: Any) -> int | None:
    """An int64 from an int or a digit string; never from a float (it may have lost digits)."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,19}\s*", value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def iter_lines(stream: BinaryIO, chunk_size: int = 1 << 20, first_line: int = 1) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a byte stream as (1-based line number, bytes), using only `read()`.

    A line longer than MAX_LINE is cut there (the rest is dropped), so memory stays bounded;
    `parse_line` reports it as too long. `first_line`: the number of the stream's first line
    (a range of a bigger file, `linesplit`).
    """
    number, line, overflow = first_line - 1, bytearray(), False
    while chunk := stream.read(chunk_size):
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            number += 1
            if not overflow:
                if line:  # the line began in an earlier chunk
                    line += chunk[start:end]
                    whole = bytes(line)
                    line.clear()
                else:
                    whole = chunk[start:end]
                if whole[:1] not in _BLANK_STARTS or whole.strip(WHITESPACE):  # (no copy for "{…")
                    yield number, _without_bom(whole, number)
            line.clear()
            overflow, start = False, end + 1
        if not overflow:
            line += chunk[start:]
            if len(line) > MAX_LINE:
                yield number + 1, bytes(line[:MAX_LINE])
                line.clear()
                overflow = True
    if line.strip(WHITESPACE) and not overflow:
        yield number + 1, _without_bom(bytes(line), number + 1)


_BLANK_STARTS = frozenset([b""] + [bytes([c]) for c in WHITESPACE])


def _without_bom(line: bytes, number: int) -> bytes:
    return line[len(BOM) :] if number == 1 and line.startswith(BOM) else line


def parse_line(line: bytes) -> tuple[Any, str | None]:
    """One JSON line -> (value, None) or (None, problem)."""
    if len(line) >= MAX_LINE:
        return None, f"line longer than {MAX_LINE} bytes"
    try:
        return orjson.loads(line), None
    except orjson.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc})"


def raw_fragment(line: bytes) -> str:
    return line[:RAW_LIMIT].decode("utf-8", errors="replace")


def require_recognized(
    pairs: Iterable[tuple[Item | None, bool]], error: Callable[[int], InputError], limit: int = GATE_LIMIT
) -> Iterator[Item]:
    """Pass items through once one is recognised as this format; until then hold the others.

    A file with no recognised item at all (or `limit` unrecognised ones before the first)
    is not this format as a whole: `error(items_seen)` is raised instead. A `(None, True)`
    pair marks "recognised" without an item (e.g. a TGDataset channel with empty maps).
    """
    pending: list[Item] = []
    recognized = False
    for item, known in pairs:
        if recognized or known:
            if not recognized:
                recognized = True
                yield from pending
                pending.clear()
            if item is not None:
                yield item
        elif item is not None:
            pending.append(item)
            if len(pending) >= limit:
                raise error(len(pending))
    if not recognized:
        raise error(len(pending))


def broken_json(source: SourceRef, exc: Exception, hint: str) -> InputError:
    # yajl's messages come as bytes with a drawing of the spot on later lines: keep the first line
    raw = exc.args[0] if len(exc.args) == 1 else None
    text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(exc)).strip()
    detail = text.splitlines()[0].strip() if text else type(exc).__name__
    return InputError(f"{source.display} is not valid JSON ({detail}); the file looks truncated or damaged", hint=hint)
