"""Split one big JSON-lines file (Telethon dumps, Pushshift ndjson) into ranges of whole lines.

A JSON-lines item depends on its line alone: the Telethon converter keeps no state from line to
line, so any cut after a new line gives ranges that workers convert independently, in parallel
processes (per-record Python: threads would take turns). Each range knows the number of its
first line, so locators (`line N`) are the same as when one task reads the whole file, and
`ranged.finalize_ranges` writes the same files, rows and rejects as `--jobs 1`.

The planner counts new lines range by range (numpy over `pread` windows, no whole-file copy),
so the first range is handed out before the rest of the file is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .splitting import _RawFile


@dataclass(frozen=True)
class LineRange:
    """Lines `first_line`.. of the file, in raw bytes [start, stop): whole lines only."""

    part: int
    start: int
    stop: int
    first_line: int

    @property
    def owned(self) -> tuple[int, int]:
        return self.start, self.stop

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_lines(stream: BinaryIO, chunk: int) -> Iterator[LineRange]:
    """Ranges of about `chunk` bytes (the first a quarter of it: the second worker starts sooner),
    each cut just after a new line, yielded as soon as its first line's number is known."""
    raw = _RawFile(stream)
    try:
        start, line, part = 0, 1, 0
        while start < raw.size:
            target = start + (max(1, chunk // 4) if part == 0 else chunk)
            newline = raw.find(b"\n", target) if target < raw.size else -1
            stop = raw.size if newline < 0 else newline + 1
            if raw.size - stop < chunk // 4:  # no small last range: it would finish alone
                stop = raw.size
            yield LineRange(part, start, stop, line)
            line += raw.count(b"\n", start, stop)
            start, part = stop, part + 1
    finally:
        raw.close()
