"""Shared tools for converter tests: a reader that trickles bytes, and odd-value mutation."""

from __future__ import annotations

import io
from collections.abc import Iterator


class Trickle(io.RawIOBase):
    """A stream that hands out a few bytes per read() and has no readline()."""

    def __init__(self, data: bytes, step: int = 5) -> None:
        self._data, self._pos, self._step = data, 0, step

    def read(self, size: int = -1) -> bytes:
        size = self._step if size is None or size < 0 else min(size, self._step)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:  # ijson's C backend reads through readinto on raw streams
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


ODD_VALUES = [None, 0, -7, 2.5, "", "x", [], {}, True, [1], {"_": 5}]


def paths(value: object, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from paths(child, (*prefix, key))


def replaced(value: object, path: tuple, new: object) -> object:
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy
