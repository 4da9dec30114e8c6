"""Byte-level framing of Telegram Desktop JSON exports (tdesktop's fixed layout).

Telegram Desktop writes `result.json` by hand in one layout: one space of indentation per
nesting level, and raw newlines only between tokens (a JSON string cannot hold one). So inside
a chat's `messages` array whose elements sit at depth `pad`, every message opens with a line of
exactly `<pad spaces>{` and closes with a line of exactly `<pad spaces>}`, messages are
separated by a comma right after the closing brace, and the array ends with a line
`<pad - 1 spaces>]`. `DocumentFramer` cuts the byte stream into batches of whole messages
without parsing them. Everything outside the messages arrays (the "skeleton": chat names,
types and ids, account sections) goes through an ijson push parser that tracks where in the
document it is, with the same rules as the per-record converter (which arrays are a chat's
messages, the chat's JSON pointer, its name/type/id as seen before the array).

Each batch is checked with vectorized scans (`frame_region`); whatever does not fit the layout
raises `LayoutError`, and the caller falls back to the per-record converter for the input.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import ijson
import numpy as np
from ijson.common import ObjectBuilder
from ijson.utils import sendable_list

from .jsonstream import _BAD_ESCAPE, MAX_DEPTH, EscapeFixingReader

MARKER = b'"messages": ['
SECTIONS = ("chats", "left_chats")
META_KEYS = ("name", "type", "id")
READ_SIZE = 8 << 20
MIN_READ = 64 << 10
BATCH_BYTES = 8 << 20
_SPACE, _QUOTE, _OPEN, _CLOSE, _COMMA, _NL = 32, 34, 123, 125, 44, 10
_ESCAPE_HINT = re.compile(rb"\\x")


class LayoutError(Exception):
    """The bytes do not follow tdesktop's layout (or are not valid JSON): use the per-record path."""


@dataclass(frozen=True)
class ChatContext:
    """The chat whose messages a batch holds, as the per-record converter sees it at the array."""

    pointer: str
    name: Any = None
    raw_type: Any = None
    raw_id: Any = None


# --- vectorized checks of one region of whole messages --------------------------------------------


@dataclass
class Frames:
    """Line structure of a region of messages (all positions are offsets into the region)."""

    opens: np.ndarray  # newline before each message's `{` line
    closes: np.ndarray  # newline before each message's `}` line
    keys: np.ndarray  # top-level key lines per message
    unparsed: np.ndarray  # of those, the lines of UNPARSED_KEYS per message
    end: int  # region length used (the array end line when the array ends inside the region)
    array_ended: bool

    @property
    def count(self) -> int:
        return len(self.opens)

    def span(self, i: int, pad: int) -> tuple[int, int]:
        """Byte span of message `i`, from its `{` to its `}` inclusive."""
        return int(self.opens[i]) + pad + 1, int(self.closes[i]) + pad + 2


def _words(padded: bytes | bytearray) -> np.ndarray:
    """Unaligned little-endian uint64 at every byte offset of `padded` (whose last 8 bytes are spare)."""
    return np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))


# Top-level keys the fast path never parses (`fastpath.messages`): the per-record converter ignores
# them (tests/test_fastpath.py pins that for values of every JSON type), so the key census only
# counts their lines, matching `"<key>": ` exactly, 8 bytes at a time.
UNPARSED_KEYS = (
    "text",
    "date",
    "thumbnail",
    "thumbnail_file_size",
    "title",
    "via_bot",
    "saved_from",
    "performer",
    "media_spoiler",
    "self_destruct_period_seconds",
)


def _key_words(key: str) -> tuple[int, list[tuple[int, np.uint64, np.uint64]]]:
    """(length, [(offset, word, mask)]) of the key line's start `"<key>": `."""
    line = f'"{key}": '.encode()
    chunks = []
    for offset in range(0, len(line), 8):
        piece = line[offset : offset + 8]
        word = np.uint64(int.from_bytes(piece, "little"))
        chunks.append((offset, word, np.uint64((1 << (8 * len(piece))) - 1)))
    return len(line), chunks


# Keys whose line start `"<key>": ` is exactly 8 bytes are told by one word; longer ones are
# grouped by their first word and checked word by word.
_SHORT_WORDS: list[np.uint64] = []
_LONG_BY_FIRST_WORD: dict[np.uint64, list[tuple[int, list[tuple[int, np.uint64, np.uint64]]]]] = {}
for _key in UNPARSED_KEYS:
    _length, _chunks = _key_words(_key)
    assert _length >= 8, "the first word of a key line must hold only the key"
    if _length == 8:
        _SHORT_WORDS.append(_chunks[0][1])
    else:
        _LONG_BY_FIRST_WORD.setdefault(_chunks[0][1], []).append((_length, _chunks[1:]))
_FIRST_WORDS = np.array(_SHORT_WORDS + list(_LONG_BY_FIRST_WORD), np.uint64)
_SHORT = np.array(_SHORT_WORDS, np.uint64)


def _unparsed_lines(words: np.ndarray, nl: np.ndarray, key_lines: np.ndarray, pad: int) -> np.ndarray:
    """Mask over the key lines `nl[key_lines]`: which start with an UNPARSED_KEYS key."""
    quote = nl[key_lines] + pad + 2
    first = words[quote]
    hit = np.zeros(len(quote), bool)
    some = np.flatnonzero(np.isin(first, _FIRST_WORDS))  # one pass over all key lines
    some_first = first[some]
    short = np.isin(some_first, _SHORT)
    hit[some[short]] = True
    some, some_first = some[~short], some_first[~short]
    for word, keys in _LONG_BY_FIRST_WORD.items():
        rows = some[some_first == word]
        for length, rest in keys if len(rows) else ():
            at = quote[rows]
            ok = at + length <= nl[key_lines[rows] + 1]  # the whole key inside the line: in bounds
            for offset, chunk, mask in rest:
                ok &= (words[np.where(ok, at + offset, 0)] & mask) == chunk
            hit[rows[ok]] = True
    return hit


def _per_message(positions: np.ndarray, opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """How many of the (sorted) `positions` fall inside each message."""
    return np.searchsorted(positions, closes) - np.searchsorted(positions, opens)


def frame_region(padded: bytearray, size: int, pad: int) -> Frames:
    """Check that `padded[:size]` is `\\n<pad>{...\\n<pad>}` messages joined by commas.

    The region may run past the end of the messages array: the first line indented less than
    `pad` must then be the array's closing `]`, and the region is cut before it. `padded` holds
    8 spare zero bytes after `size`. Raises LayoutError on anything else.
    """
    if not 1 <= pad <= 6:
        raise LayoutError(f"messages at depth {pad}")
    arr = np.frombuffer(padded, np.uint8, count=size)
    nl = np.flatnonzero(arr == _NL)
    if not len(nl) or nl[0] != 0:
        raise LayoutError("region does not start with a new line")
    words = _words(padded)
    line = words[nl + 1]
    is_pad = (line & np.uint64((1 << (8 * pad)) - 1)) == np.uint64(int.from_bytes(b" " * pad, "little"))
    after = (line >> np.uint64(8 * pad)) & np.uint64(0xFF)
    end, ended = size, False
    shallow = np.flatnonzero(~is_pad)
    if len(shallow):
        cut = int(shallow[0])
        end, ended = int(nl[cut]), True
        if bytes(padded[end : end + pad + 1]) != b"\n" + b" " * (pad - 1) + b"]":
            raise LayoutError("unexpected line inside a messages array")
        nl, is_pad, after, line = nl[:cut], is_pad[:cut], after[:cut], line[:cut]
    element = is_pad & (after != _SPACE)
    is_close = element & (after == _CLOSE)
    opens = nl[element & (after == _OPEN)]
    closes = nl[is_close]
    if len(opens) + len(closes) != int(np.count_nonzero(element)):
        raise LayoutError("a line at message level is neither `{` nor `}`")
    _check_alternation(arr, opens, closes, pad, end)
    keys = is_pad & (after == _SPACE) & (((line >> np.uint64(8 * pad + 8)) & np.uint64(0xFF)) == _QUOTE)
    key_lines = np.flatnonzero(keys)
    key_nl = nl[key_lines]
    unparsed = key_nl[_unparsed_lines(words, nl, key_lines, pad)]
    counts = _per_message(key_nl, opens, closes), _per_message(unparsed, opens, closes)
    return Frames(opens, closes, *counts, end, ended)


def _check_alternation(arr: np.ndarray, opens: np.ndarray, closes: np.ndarray, pad: int, end: int) -> None:
    n = len(opens)
    if n == 0 or n != len(closes):
        raise LayoutError("unbalanced message braces")
    if not (np.all(opens < closes) and np.all(closes[:-1] < opens[1:])):
        raise LayoutError("message braces out of order")
    if np.any(arr[opens + pad + 2] != _NL):
        raise LayoutError("a message does not open with `{` alone on its line")
    if n > 1:
        commas = closes[:-1] + pad + 2
        if np.any(arr[commas] != _COMMA) or np.any(opens[1:] != commas + 1):
            raise LayoutError("messages are not separated by `,` after the closing brace")
    if int(closes[-1]) + pad + 2 != end:
        raise LayoutError("region does not end with a message")


# --- the skeleton: everything outside the messages arrays -----------------------------------------


class _Frame:
    __slots__ = ("is_map", "key", "index", "meta", "chat")

    def __init__(self, is_map: bool, chat: bool) -> None:
        self.is_map, self.key, self.index, self.chat = is_map, None, 0, chat
        self.meta: dict[str, Any] = {}


class Skeleton:
    """Tracks the document path from ijson events of the skeleton bytes (push parser)."""

    def __init__(self) -> None:
        self._events = sendable_list()
        self._coro = ijson.basic_parse_coro(self._events, use_float=True)
        self._stack: list[_Frame] = []
        self._path: list[Any] = []
        self._builder: tuple[ObjectBuilder, int] | None = None
        self._meta_key: str | None = None
        self.saw_root = False
        self.saw_chats = False
        self.opened: ChatContext | None = None  # set when a chat's messages array was just opened

    @property
    def depth(self) -> int:
        return len(self._stack)

    def feed(self, data: bytes | bytearray) -> None:
        if not data:
            return  # an empty chunk would tell the push parser that the input ended
        data = bytes(data)
        if _ESCAPE_HINT.search(data):
            data = _BAD_ESCAPE.sub(rb"\1\\u00\2", data)
        try:
            self._coro.send(data)
        except ijson.JSONError as exc:
            raise LayoutError(f"skeleton is not valid JSON: {exc}") from None
        for event in self._events:
            self._on(*event)
        del self._events[:]

    def close(self) -> None:
        try:
            self._coro.close()
        except ijson.JSONError as exc:
            raise LayoutError(f"skeleton is not valid JSON: {exc}") from None
        for event in self._events:
            self._on(*event)
        del self._events[:]
        if self._stack or not self.saw_root:
            raise LayoutError("document ended early")
        if not self.saw_chats:
            raise LayoutError("no chats")

    def _on(self, kind: str, value: Any) -> None:
        if self._builder is not None:
            self._build(kind, value)
            return
        if kind == "map_key":
            self._stack[-1].key = value
            return
        starts = kind in ("start_map", "start_array")
        if starts or kind not in ("end_map", "end_array"):
            self._value(kind, value, starts)
        else:
            self._stack.pop()
            self._path.pop()
            self._after_value()

    def _value(self, kind: str, value: Any, starts: bool) -> None:
        if not self._stack:
            if kind != "start_map" or self.saw_root:
                raise LayoutError("root is not one object")
            self.saw_root = True
            self._stack.append(_Frame(True, chat=True))
            self._path.append(None)
            return
        parent = self._stack[-1]
        key = parent.key if parent.is_map else parent.index
        if parent.chat and key in META_KEYS:
            if starts:
                self._builder = (ObjectBuilder(), 0)
                self._meta_key = key
                self._build(kind, value)
                return
            parent.meta[key] = value
        if starts:
            self._open(kind == "start_map", key)
        else:
            self._after_value()

    def _open(self, is_map: bool, key: Any) -> None:
        path = [*self._path[1:], key]
        chat = is_map and len(path) == 3 and path[0] in SECTIONS and path[1] == "list" and self._list_of_section()
        frame = _Frame(is_map, chat)
        if not is_map:
            if key == "messages" and self._stack[-1].chat:
                self.saw_chats = True
                self.opened = self._context(path)
            elif key == "list" and len(path) == 2 and path[0] in SECTIONS and self._section_map():
                self.saw_chats = True
        self._stack.append(frame)
        self._path.append(key)

    def _section_map(self) -> bool:
        return len(self._stack) == 2 and self._stack[1].is_map

    def _list_of_section(self) -> bool:
        return len(self._stack) == 3 and self._stack[1].is_map and not self._stack[2].is_map

    def _context(self, path: list[Any]) -> ChatContext:
        chat = self._stack[-1]
        pointer = "" if len(path) == 1 else f"/{path[0]}/list/{path[2]}"
        return ChatContext(pointer, chat.meta.get("name"), chat.meta.get("type"), chat.meta.get("id"))

    def _after_value(self) -> None:
        if self._stack and not self._stack[-1].is_map:
            self._stack[-1].index += 1

    def _build(self, kind: str, value: Any) -> None:
        builder, depth = self._builder  # type: ignore[misc]
        if kind in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_DEPTH:
                raise LayoutError("chat metadata nested too deep")
        elif kind in ("end_map", "end_array"):
            depth -= 1
        builder.event(kind, value)
        self._builder = (builder, depth)
        if depth == 0:
            self._stack[-1].meta[self._meta_key] = builder.value
            self._builder = None
            self._after_value()


# --- the document walker ------------------------------------------------------------------------


@dataclass
class Batch:
    """Whole messages of one chat, as framed bytes plus their line structure.

    `padded[:frames.end]` is `\\n<pad>{ ... \\n<pad>}` messages joined by commas, followed by
    spare bytes (`frame_region`); `chat` and `first_index` place them in the document.
    """

    padded: bytearray
    frames: Frames
    chat: ChatContext
    first_index: int
    pad: int

    @property
    def count(self) -> int:
        return self.frames.count

    def message(self, i: int) -> bytes:
        start, stop = self.frames.span(i, self.pad)
        return bytes(self.padded[start:stop])

    def repair(self) -> bool:
        """Rewrite `\\xHH` escapes as the per-record reader does; False if there were none."""
        data = bytes(self.padded[: self.frames.end])
        if not _ESCAPE_HINT.search(data):
            return False
        fixed, count = _BAD_ESCAPE.subn(rb"\1\\u00\2", data)
        if not count:
            return False
        self.padded = bytearray(len(fixed) + 8)
        self.padded[: len(fixed)] = fixed
        self.frames = frame_region(self.padded, len(fixed), self.pad)
        return True


def read_into(stream: Any, buffer: memoryview) -> int:
    """`stream.readinto(buffer)` when the stream has it (no intermediate bytes object), else a copy."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto(buffer) or 0
    data = stream.read(len(buffer))
    buffer[: len(data)] = data
    return len(data)


class RepairingReader:
    """`jsonstream.EscapeFixingReader` for big reads: same repairs, no copies when there are none.

    Returns whole chunks of about `size` bytes; a chunk never ends inside a backslash run, so
    every `\\xHH` escape is rewritten to `\\u00HH` exactly as the per-record reader does.
    """

    def __init__(self, raw: BinaryIO, repair: bool = True) -> None:
        self._raw = raw
        self._pending = b""
        self._started = False
        self._repair = repair
        self.fixed = 0

    def read(self, size: int) -> bytes:
        chunk = self._raw.read(size)
        data = self._pending + chunk if self._pending else chunk
        if not self._started:
            if chunk and len(data) < len(codecs.BOM_UTF8):
                self._pending = data
                return self.read(size)
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
            self._started = True
        if not self._repair:
            return data
        cut = len(data) if not chunk else EscapeFixingReader._safe_cut(data)
        head, self._pending = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
        if _ESCAPE_HINT.search(head):  # a regex scan is several times faster than `b"\\x" in head`
            head, count = _BAD_ESCAPE.subn(rb"\1\\u00\2", head)
            self.fixed += count
        if not head and chunk:
            return self.read(size)
        return head

    def readinto(self, buffer: memoryview) -> int:
        """`read` into `buffer`; straight from the raw stream once the BOM is behind (no repairs)."""
        if self._started and not self._repair and not self._pending:
            return read_into(self._raw, buffer)
        data = self.read(len(buffer))
        data, self._pending = data[: len(buffer)], data[len(buffer) :] + self._pending
        buffer[: len(data)] = data
        return len(data)


class _Buffered:
    """A read buffer over the raw stream (BOM dropped).

    `\\xHH` escapes are not repaired while reading (that would be one more pass over every
    byte): they are invalid JSON, so pyarrow rejects a batch holding one, and `Batch.repair`
    then rewrites that batch; skeleton bytes are repaired as they are fed to the parser.

    Copies: reads go straight into a fresh buffer that starts with the unconsumed tail (a partial
    message), sized so that it ends near the next batch's end; a region that starts the buffer
    keeps the buffer itself as its `padded` bytes, and only the tail after it is copied on.
    """

    def __init__(self, stream: BinaryIO, batch_bytes: int) -> None:
        self._reader = RepairingReader(stream, repair=False)
        self._batch_bytes = batch_bytes
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    def _more(self, want: int = READ_SIZE) -> bool:
        if self._eof:
            return False
        tail = len(self._buf) - self._pos
        if tail > want:  # completing one long message: append (amortized), do not copy the tail
            chunk = self._reader.read(want)
            if not chunk:
                self._eof = True
                return False
            if self._pos > len(self._buf) // 2:  # drop what was consumed (one move, not one per read)
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += chunk
            return True
        fresh = bytearray(tail + want)
        fresh[:tail] = memoryview(self._buf)[self._pos :]
        with memoryview(fresh) as view, view[tail:] as target:
            got = self._reader.readinto(target)
        if not got:
            self._eof = True
            return False
        if got < want:
            del fresh[tail + got :]
        self._buf, self._pos = fresh, 0
        return True

    def _fill(self, size: int) -> None:
        while len(self._buf) - self._pos < size and self._more(max(size - (len(self._buf) - self._pos), MIN_READ)):
            pass

    def _region(self, stop: int, pad: int, chat: ChatContext, index: int) -> Batch:
        """The batch of `_buf[_pos:stop]`; `_pos` moves past it (and past the comma after it)."""
        size = stop - self._pos
        if self._pos == 0 and stop + 8 <= len(self._buf):  # the buffer becomes the batch's bytes
            padded = self._buf
            frames = frame_region(padded, size, pad)
            consumed = frames.end if frames.array_ended else size + 1
            self._buf, self._pos = padded[consumed:], 0
            return Batch(padded, frames, chat, index, pad)
        padded = bytearray(size + 8)
        padded[:size] = memoryview(self._buf)[self._pos : stop]
        frames = frame_region(padded, size, pad)
        self._pos += frames.end if frames.array_ended else size + 1
        return Batch(padded, frames, chat, index, pad)

    def _frame_messages(self, chat: ChatContext, pad: int, index: int, in_array: bool) -> Iterator[Batch]:
        """Batches from `_pos` on: whole messages until the array's `]` (or the end of the data)."""
        separator = b"\n" + b" " * pad + b"},"
        end_line = b"\n" + b" " * (pad - 1) + b"]"
        while True:
            self._fill(self._batch_bytes)
            stop = self._buf.rfind(separator, self._pos, self._pos + self._batch_bytes)
            if stop < 0:
                stop = self._buf.find(separator, self._pos)
            if stop >= 0:
                region_end = stop + pad + 2
            elif not in_array and self._eof:
                region_end = len(self._buf)
            else:
                last = self._buf.find(end_line, self._pos) if in_array else -1
                if last < 0:
                    if self._more() or not in_array:
                        continue  # more data, or the end of a range's data (the branch above)
                    raise LayoutError("messages array never ends")
                region_end = last + len(end_line)
            batch = self._region(region_end, pad, chat, index)
            index += batch.count
            if batch.frames.array_ended:
                if not in_array:
                    raise LayoutError("a range runs past the end of its messages array")
                yield batch
                return
            yield batch
            if stop < 0:
                return


class DocumentFramer(_Buffered):
    """Walks a whole tdesktop JSON stream and yields batches of whole messages, chat by chat."""

    def __init__(self, stream: BinaryIO, batch_bytes: int = BATCH_BYTES) -> None:
        super().__init__(stream, batch_bytes)
        self.skeleton = Skeleton()

    def batches(self) -> Iterator[Batch]:
        while True:
            context = self._skeleton_until_messages()
            if context is None:
                self.skeleton.close()
                return
            pad = self.skeleton.depth
            self._fill(pad + 3)
            if self._buf[self._pos : self._pos + pad + 3] == b"\n" + b" " * pad + b"{\n":
                yield from self._frame_messages(context, pad, 0, in_array=True)
            elif not self._buf[self._pos : self._pos + 64].strip().startswith(b"]"):
                raise LayoutError("messages array does not start with a message on its own line")

    def _skeleton_until_messages(self) -> ChatContext | None:
        keep = len(MARKER) - 1
        while True:
            found = self._buf.find(MARKER, self._pos)
            if found >= 0:
                stop = found + len(MARKER)
                self.skeleton.feed(self._buf[self._pos : stop])
                self._pos = stop
                if self.skeleton.opened is not None:
                    context, self.skeleton.opened = self.skeleton.opened, None
                    return context
                continue
            if self._eof:
                self.skeleton.feed(self._buf[self._pos :])
                self._pos = len(self._buf)
                return None
            stop = max(self._pos, len(self._buf) - keep)
            piece = bytes(self._buf[self._pos : stop])
            stop = self._pos + (EscapeFixingReader._safe_cut(piece) or len(piece))  # whole escapes only
            self.skeleton.feed(self._buf[self._pos : stop])
            self._pos = stop
            self._more()


class RangeFramer(_Buffered):
    """Batches of the messages in one byte range of a messages array (a split of a big input).

    The stream must start at the new line before a message's `{` and end right after the `}`
    of the range's last message.
    """

    def __init__(self, stream: BinaryIO, chat: ChatContext, pad: int, first_index: int, batch_bytes: int) -> None:
        super().__init__(stream, batch_bytes)
        self._chat, self._pad, self._first = chat, pad, first_index

    def batches(self) -> Iterator[Batch]:
        self._fill(1)
        if len(self._buf) == self._pos:
            return
        yield from self._frame_messages(self._chat, self._pad, self._first, in_array=False)
