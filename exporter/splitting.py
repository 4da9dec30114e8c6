"""Split one big Telegram Desktop JSON file into byte ranges that workers convert independently.

The planner reads the raw file once, driver side: the skeleton (everything outside the messages
arrays) goes through the same push parser as `framing.DocumentFramer`; inside the arrays it only
searches and counts bytes (`memmem`-speed): the array's closing line, the separators between
messages near each cut, and the number of messages before each cut (so every range knows the
index of its first message, and locators are exact). A cut is placed only where the state the
per-record converter carries from message to message is known: the chat (pointer, name, type,
id) and the id era (`Era`), learnt from the messages just before the cut.

A range is a list of segments (pieces of messages arrays, each with its chat and first index),
so the ranges together hold every message exactly once, in document order.
"""

from __future__ import annotations

import io
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from .converters.tdesktop_json import _legacy_era
from .framing import MARKER, ChatContext, LayoutError, Skeleton, read_into
from .jsonstream import _BAD_ESCAPE, basic_events, build_value, next_event

WINDOW = 32 << 20
COUNT_SLICE = 2 << 20
ERA_LOOKBACK = 64  # messages searched backwards for one that shows the id era
MIN_RANGE_BYTES = 64 << 20


@dataclass(frozen=True)
class Segment:
    """Messages `first_index`.. of one chat, in raw bytes [start, stop) of the file.

    `start` is the new line before the first message's `{`; `stop` is just after the last `}`.
    """

    chat: ChatContext
    pad: int
    first_index: int
    start: int
    stop: int


@dataclass
class Range:
    """Consecutive segments converted by one worker; `era` is the id era before the first."""

    part: int
    era: bool | None  # `Era.legacy` before the range's first message
    segments: list[Segment] = field(default_factory=list)
    owned: tuple[int, int] = (0, 0)  # raw bytes it reports as progress: every byte in exactly one range

    @property
    def size(self) -> int:
        return sum(s.stop - s.start for s in self.segments)


def range_bytes(size: int, jobs: int) -> int | None:
    """Bytes per range for an input of `size` bytes, or None when it is not worth splitting.

    `TGEXPORT_SPLIT_BYTES` sets the smallest range (tests force tiny ranges with it).
    """
    smallest = int(os.environ.get("TGEXPORT_SPLIT_BYTES", MIN_RANGE_BYTES))
    if jobs < 2 or size < 2 * smallest:
        return None
    return max(smallest, -(-size // (2 * jobs)))


class _RawFile:
    """Searches and reads over the raw bytes of a file, memory-mapped (no copies for searches)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.fd = stream.fileno()
        self.size = os.fstat(self.fd).st_size
        self.map = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ) if self.size else b""
        self._window = bytearray()

    def read(self, start: int, stop: int) -> bytes:
        return self.map[start : max(start, min(stop, self.size))]

    def forget(self) -> None:
        """Drop the mapped pages from this process (they stay in the page cache): bounded RSS."""
        if isinstance(self.map, mmap.mmap):
            self.map.madvise(mmap.MADV_DONTNEED)

    def find(self, needle: bytes, start: int, stop: int | None = None) -> int:
        """First occurrence starting in [start, stop), or -1 (window by window: bounded RSS)."""
        stop = self.size if stop is None else min(stop, self.size)
        while start < stop:
            end = min(stop, start + WINDOW)
            found = self.map.find(needle, start, min(self.size, end + len(needle) - 1))
            self.forget()
            if found >= 0:
                return found
            start = end
        return -1

    def rfind(self, needle: bytes, start: int, stop: int) -> int:
        return self.map.rfind(needle, start, stop)

    def count(self, needle: bytes, start: int, stop: int) -> int:
        """Occurrences starting in [start, stop) (`needle` must not overlap itself).

        With numpy, not `bytes.count`: the planner runs beside the range workers, and
        `bytes.count` held the GIL for 0.8 s of a 1M-message export; numpy's loops release it.
        """
        total = 0
        while start < stop:
            end = min(stop, start + WINDOW)
            got = self._pread(start, min(self.size, end + len(needle) - 1))  # may replace the buffer
            total += _occurrences(np.frombuffer(self._window, np.uint8, count=got), needle, end - start)
            start = end
        return total

    def _pread(self, start: int, stop: int) -> int:
        """Bytes [start, stop) read into the start of one reused buffer; how many were read.

        For whole-file scans `pread` is several times cheaper than touching the mapping page
        by page (measured: the 1M export's plan 1.06 -> 0.7 s of CPU), and adds no RSS."""
        if len(self._window) < stop - start:
            self._window = bytearray(stop - start)
        view = memoryview(self._window)[: stop - start]
        done = 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], start + done)
            if got <= 0:
                break
            done += got
        return done

    def close(self) -> None:
        if isinstance(self.map, mmap.mmap):
            self.map.close()


def _occurrences(data: np.ndarray, needle: bytes, starts_before: int) -> int:
    """Occurrences of `needle` in `data` that start before `starts_before`: the needle's last
    byte located first (rare: `}`), then the bytes before it checked at those places only.
    Slice by slice, so that the temporary masks stay small (RSS)."""
    total = 0
    for low in range(0, len(data), COUNT_SLICE):
        last = np.flatnonzero(data[low : low + COUNT_SLICE] == needle[-1]) + low
        begin = last[last >= len(needle) - 1] - (len(needle) - 1)
        begin = begin[begin < starts_before]
        for offset, byte in enumerate(needle[:-1]):
            begin = begin[data[begin + offset] == byte]
        total += len(begin)
    return total


def plan(stream: BinaryIO, chunk: int) -> Iterator[Range]:
    """Ranges of about `chunk` bytes of messages, each yielded as soon as it is complete.

    Raises LayoutError (or an ijson error) when the file cannot be split safely; ranges already
    yielded must then be discarded.
    """
    raw = _RawFile(stream)
    try:
        yield from _Planner(raw, chunk).ranges()
    finally:
        raw.close()


class _Planner:
    def __init__(self, raw: _RawFile, chunk: int) -> None:
        self.raw, self.chunk = raw, chunk
        self.skeleton = Skeleton()
        self.current = Range(0, None)
        self.first_budget = max(1, chunk // 4)  # a small first range: the second worker starts sooner

    def ranges(self) -> Iterator[Range]:
        pos = 3 if self.raw.read(0, 3) == b"\xef\xbb\xbf" else 0
        while pos < self.raw.size:
            found = self.raw.find(MARKER, pos)
            stop = self.raw.size if found < 0 else found + len(MARKER)
            self._feed(pos, stop)
            pos = stop
            if self.skeleton.opened is not None:
                context, self.skeleton.opened = self.skeleton.opened, None
                pos = yield from self._array(context, pos)
        self.skeleton.close()
        if self.current.segments:
            self.current.owned = (self.current.owned[0], self.raw.size)
            yield self.current

    def _feed(self, start: int, stop: int) -> None:
        while start < stop:
            end = min(stop, start + WINDOW)
            data = self.raw.read(start, end)
            if b"\\x" in data:
                data = _BAD_ESCAPE.sub(rb"\1\\u00\2", data)
            self.skeleton.feed(data)
            start = end

    def _budget(self) -> int:
        limit = self.first_budget if self.current.part == 0 else self.chunk
        return max(1, limit - self.current.size)

    def _array(self, chat: ChatContext, start: int) -> Iterator[Range]:
        """Plan one messages array opening at raw `start`; return where the skeleton resumes."""
        pad = self.skeleton.depth
        if self.raw.read(start, start + pad + 3) != b"\n" + b" " * pad + b"{\n":
            return start  # an empty (or odd) array: the skeleton parser reads it
        end_line = b"\n" + b" " * (pad - 1) + b"]"
        separator = b"\n" + b" " * pad + b"},\n" + b" " * pad + b"{\n"
        # The root chat's array is the last thing in a single-chat export: its end is the last
        # such line of the file (no scan of the array). Should that be wrong, a range would hold
        # a line that is not a message, its worker raises LayoutError, and the input is converted
        # in one task.
        known_end = self.raw.rfind(end_line, start, self.raw.size) if not chat.pointer else -1
        index, pos = 0, start
        while True:
            target = pos + self._budget()
            cut = self.raw.find(separator, target, target + WINDOW)
            if known_end >= 0:
                cut = cut if 0 <= cut < known_end else -1
                end = known_end if cut < 0 else -1
            else:
                end = self.raw.find(end_line, pos, cut if cut >= 0 else None)
            if end >= 0 or cut < 0:
                if end < 0:
                    raise LayoutError("messages array never ends")
                self.current.segments.append(Segment(chat, pad, index, pos, end))
                return end
            stop = cut + pad + 2  # just after the `}` of the last message before the cut
            self.current.segments.append(Segment(chat, pad, index, pos, stop))
            era = self._era_before(stop, pad, start)
            if era is not None:
                self.current.owned = (self.current.owned[0], stop + 1)
                yield self.current
                self.current = Range(self.current.part + 1, era[0], owned=(stop + 1, stop + 1))
            index += self.raw.count(b"\n" + b" " * pad + b"}", pos, stop)
            pos = stop + 1  # past the comma

    def _era_before(self, stop: int, pad: int, array_start: int) -> tuple[bool] | None:
        """(era,) after the message ending at raw `stop`, from the last messages that show it."""
        opener = b"\n" + b" " * pad + b"{\n"
        for _ in range(ERA_LOOKBACK):
            begin = self._rfind(opener, array_start, stop)
            if begin < 0:
                return None
            seen = _legacy_era(_message(self.raw.read(begin + pad + 1, stop)))
            if seen is not None:
                return (seen,)
            stop = begin - 1  # before the comma that ends the previous message
        return None

    def _rfind(self, needle: bytes, floor: int, stop: int) -> int:
        return self.raw.rfind(needle, floor, stop)


def _message(data: bytes) -> Any:
    if b"\\x" in data:
        data = _BAD_ESCAPE.sub(rb"\1\\u00\2", data)
    events = basic_events(io.BytesIO(data))
    return build_value(events, next_event(events))


class SegmentReader:
    """The raw bytes of one segment, as a stream for `framing.RangeFramer` (which repairs them)."""

    def __init__(self, stream: BinaryIO, segment: Segment) -> None:
        stream.seek(segment.start)
        self._stream, self._left = stream, segment.stop - segment.start

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._stream.read(size)
        self._left -= len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        got = read_into(self._stream, buffer[: min(len(buffer), self._left)])
        self._left -= got
        return got
