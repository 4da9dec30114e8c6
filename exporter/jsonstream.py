"""Streaming JSON helpers shared by the JSON-based converters.

`EscapeFixingReader` repairs the invalid `\\xHH` escapes Telegram Desktop writes for control
characters (formats.md §1.12) on the fly, chunk by chunk, and drops a leading UTF-8 byte order
mark; `build_value` turns a run of ijson basic events back into one Python value, so a converter
can stream a huge array and hold one element at a time.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson

# `\x41` preceded by an even run of backslashes (so the last backslash is an escape) -> `\u0041`.
_BAD_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\x([0-9a-fA-F]{2})")
_CHUNK = 1 << 20
_MIN_READ = 64
MAX_DEPTH = 100  # real Telegram exports nest about 6 levels deep inside one message


class NestingError(ijson.JSONError):
    """A JSON value nests deeper than `MAX_DEPTH` (garbage, or not a Telegram export)."""


class EscapeFixingReader:
    """A binary reader that rewrites `\\xHH` escapes into `\\u00HH`; everything else verbatim.

    A leading UTF-8 byte order mark (added by editors that re-save the file) is dropped.
    `read(n)` returns at most `n` bytes, like any file object.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = b""  # raw bytes not yet rewritten (an escape may continue after them)
        self._ready = bytearray()  # rewritten bytes not yet returned
        self._eof = False
        self._started = False
        self.fixed = 0  # number of escapes repaired

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while part := self.read(_CHUNK):
                parts.append(part)
            return b"".join(parts)
        while len(self._ready) < size and not self._eof:
            self._fill(max(size, _MIN_READ))
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    def _fill(self, size: int) -> None:
        chunk = self._raw.read(size)
        buffer = self._pending + chunk
        if not self._started:
            if chunk and len(buffer) < len(codecs.BOM_UTF8):
                self._pending = buffer
                return
            if buffer.startswith(codecs.BOM_UTF8):
                buffer = buffer[len(codecs.BOM_UTF8) :]
            self._started = True
        if not chunk:
            self._eof = True
            cut = len(buffer)
        else:
            cut = self._safe_cut(buffer)
        head, self._pending = buffer[:cut], buffer[cut:]
        if b"\\x" in head:
            head, count = _BAD_ESCAPE.subn(rb"\1\\u00\2", head)
            self.fixed += count
        self._ready += head

    @staticmethod
    def _safe_cut(buffer: bytes) -> int:
        """A cut point such that no escape sequence straddles it and the run parity is kept.

        The last backslash run near the end may start an escape: keep its last one (odd run)
        or two (even run) backslashes for the next read. Pairs before them are literal `\\\\`
        whatever follows, so a long run is never carried over as a whole.
        """
        last = buffer.rfind(b"\\", max(0, len(buffer) - 8))
        if last < 0:
            return len(buffer)
        start = last
        while start > 0 and buffer[start - 1] == 0x5C:
            start -= 1
        return start + 2 * ((last - start) // 2)


def build_value(events: Iterator[tuple[str, Any]], first: tuple[str, Any], depth: int = 0) -> Any:
    """Consume the events of one JSON value that starts with `first` and return it.

    Raises `NestingError` (an `ijson.JSONError`) past `MAX_DEPTH` levels and
    `ijson.IncompleteJSONError` when the events end inside the value.
    """
    kind, value = first
    if kind == "start_map":
        if depth >= MAX_DEPTH:
            raise NestingError(f"JSON nested deeper than {MAX_DEPTH} levels")
        obj: dict[str, Any] = {}
        for kind, value in events:
            if kind == "end_map":
                return obj
            obj[value] = build_value(events, next_event(events), depth + 1)
        raise ijson.IncompleteJSONError("unexpected end of input")
    if kind == "start_array":
        if depth >= MAX_DEPTH:
            raise NestingError(f"JSON nested deeper than {MAX_DEPTH} levels")
        arr: list[Any] = []
        for event in events:
            if event[0] == "end_array":
                return arr
            arr.append(build_value(events, event, depth + 1))
        raise ijson.IncompleteJSONError("unexpected end of input")
    return value


def skip_value(events: Iterator[tuple[str, Any]], first: tuple[str, Any]) -> None:
    """Consume the events of one JSON value without building it."""
    if first[0] not in ("start_map", "start_array"):
        return
    depth = 1
    for kind, _ in events:
        if kind in ("start_map", "start_array"):
            depth += 1
        elif kind in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return
    raise ijson.IncompleteJSONError("unexpected end of input")


def next_event(events: Iterator[tuple[str, Any]]) -> tuple[str, Any]:
    """The next event; `ijson.IncompleteJSONError` (not StopIteration) when there is none."""
    event = next(events, None)
    if event is None:
        raise ijson.IncompleteJSONError("unexpected end of input")
    return event


def basic_events(stream: BinaryIO) -> Iterator[tuple[str, Any]]:
    """ijson basic events with floats (not Decimal) for non-integer numbers."""
    return ijson.basic_parse(stream, use_float=True, buf_size=1 << 16)
