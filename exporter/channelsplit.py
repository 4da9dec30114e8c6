"""Split one big TGDataset file into ranges of whole channels (workers convert them in parallel).

A TGDataset file is one JSON object keyed by channel id, often written on a single line of
several GB. Channels carry no state from one to the next (`tgdataset.Channel` is per channel),
so ranges of whole channels convert independently: each worker reads `{` + its bytes + `}` as a
document of its own, with the same locators (`/<channel>/text_messages/<id>`: keys, not
positions) as one task reading the whole file.

Cuts are found without parsing: a channel ends where `}` is followed by `,`, a numeric key and
an object whose first key only channels have (`creation_date`, `username`, ...; messages have
`message`, `date`, `title`...). In valid JSON that byte sequence cannot lie inside a string (the
quote after the comma is unescaped), so it is structural, at some depth. Should it not be a
channel boundary (a message whose first key is `username`), the range before it ends with an
object still open and the range after it closes more than it opens: its worker's parser fails
(`iter_channel_range` also rejects anything after the root object), the input is converted in
one task, and the output is that of `--jobs 1` either way. A channel is never cut: one channel
bigger than a range is one range.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from .splitting import WINDOW, _RawFile

# `}` `,` `"<id>"` `:` `{` and a key that only channel objects have (formats.md §3.5).
CHANNEL_START_RE = re.compile(
    rb'\}[ \t\r\n]*,[ \t\r\n]*"-?[0-9]+"[ \t\r\n]*:[ \t\r\n]*\{[ \t\r\n]*'
    rb'"(?:creation_date|username|description|scam|verified|n_subscribers|text_messages|generic_media|media_messages)"'
    rb"[ \t\r\n]*:"
)
ROOT_RE = re.compile(rb'^(?:\xef\xbb\xbf)?[ \t\r\n]*\{[ \t\r\n]*"')
HEAD_BYTES = 1 << 16
_SPACE = b" \t\r\n"


@dataclass(frozen=True)
class ChannelRange:
    """Whole channel entries `"<id>": {...}, ...` in raw bytes [start, stop) (no comma at
    either end); `owned` is the span of the file it reports as progress (together: every byte)."""

    part: int
    start: int
    stop: int
    owned: tuple[int, int]

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_channels(stream: BinaryIO, chunk: int) -> Iterator[ChannelRange]:
    """Ranges of about `chunk` bytes of whole channels (the first a quarter of it: the second
    worker starts sooner), each yielded as soon as its end is found. Yields nothing when the
    file does not look like one object of channels, or holds too few channels to be cut (it is
    then converted in one task)."""
    raw = _RawFile(stream)
    try:
        head = raw.read(0, HEAD_BYTES)
        root = ROOT_RE.match(head)
        end = _root_end(raw)
        if root is None or end < 0:
            return
        start, owned_from, part = root.end() - 1, 0, 0
        while True:
            target = start + (max(1, chunk // 4) if part == 0 else chunk)
            cut = _next_channel(raw, target, end) if target < end else None
            if cut is not None and end - cut[0] < chunk // 4:
                cut = None  # no small last range: it would finish alone
            if cut is None:
                if part:  # (one range would be converted twice: planned, then as the whole file)
                    yield ChannelRange(part, start, end, (owned_from, raw.size))
                return
            stop, following = cut
            yield ChannelRange(part, start, stop, (owned_from, following))
            start, owned_from, part = following, following, part + 1
    finally:
        raw.close()


def _root_end(raw: _RawFile) -> int:
    """Offset of the root object's closing `}` (the last byte but white space), or -1."""
    base = max(0, raw.size - 4096)
    tail = raw.read(base, raw.size).rstrip(_SPACE)
    return base + len(tail) - 1 if tail.endswith(b"}") else -1


def _next_channel(raw: _RawFile, target: int, end: int) -> tuple[int, int] | None:
    """(end of the channel before, start of the next channel's key) of the first channel start
    at or after `target`, searched window by window over the mapping (no copies), or None."""
    pos = target
    while pos < end:
        stop = min(end, pos + WINDOW)
        found = CHANNEL_START_RE.search(raw.map, pos, min(end, stop + 512))
        raw.forget()
        if found is not None:
            key = raw.map.find(b'"', found.start(), found.end())
            return found.start() + 1, key
        pos = stop
    return None


class FramedRange:
    """`{` + what `inner` reads (a ChannelRange's bytes) + `}`: a document of its own."""

    def __init__(self, inner: Any) -> None:
        self._inner: Any = inner
        self._prefix, self._suffix = b"{", b"}"

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # (ijson reads 0 bytes first, to tell bytes from text)
        out, self._prefix = self._prefix, b""
        if self._inner is not None:
            want = -1 if size < 0 else size - len(out)
            if want:
                data = self._inner.read(want)
                if size < 0 or not data:
                    self._inner = None
                out += data
        if self._inner is None and (size < 0 or len(out) < size):
            out, self._suffix = out + self._suffix, b""
        return out
