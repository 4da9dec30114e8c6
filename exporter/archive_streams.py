"""Stream wrappers under `archives`: bomb limits, byte counting, and seeking by re-opening.

Decompressed bytes are counted as they stream, per layer (`Guard`), so a decompression bomb is
stopped after at most one chunk past its limit, during the scan, hashing and conversion alike.
"""

from __future__ import annotations

import errno
import lzma
import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import zstandard

from .errors import InputError, UsageError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
CHUNK = 1 << 20  # most bytes a layer hands out per read, so limits are checked at least this often
PIECE = 1 << 12  # compressed bytes fed per read, so the ratio check sees what was really consumed
TAIL = 4 << 20  # end of a re-opened stream kept in memory (a zip's central directory lives there)

ENV_MAX_EXPAND = "TGEXPORT_MAX_EXPAND"
ENV_MAX_RATIO = "TGEXPORT_MAX_RATIO"
ENV_RATIO_AFTER = "TGEXPORT_RATIO_AFTER"
ENV_MAX_MEMBERS = "TGEXPORT_MAX_MEMBERS"

# What reading a damaged archive raises, layer by layer (gzip.BadGzipFile is an OSError).
DAMAGE = (
    zlib.error,
    EOFError,
    OSError,
    zipfile.BadZipFile,
    tarfile.TarError,
    zstandard.ZstdError,
    lzma.LZMAError,
    NotImplementedError,
)
DAMAGE_HINT = (
    "the file is damaged or cut short: check its size or checksum against the original, or re-create it "
    "(`unzip -t`, `tar -tf`, `gzip -t` or `zstd -t` show the problem); nothing was written"
)


def parse_size(text: str) -> int:
    """`20GiB`, `500M`, `1024` -> bytes (K, M, G, T are binary multiples, with or without `iB`/`B`)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not found:
        raise ValueError(text)
    power = " KMGT".index(found.group(2).upper() or " ")
    return int(float(found.group(1)) * (1 << (10 * power)))


def format_size(size: float) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(size)} B"


@dataclass(frozen=True)
class Limits:
    """When decompression counts as a bomb: past `max_expand` bytes (from one layer), or past
    `max_ratio` times the compressed bytes read once past `ratio_after` bytes. 0 switches a limit off."""

    max_expand: int = 20 * GiB
    max_ratio: float = 1000.0
    ratio_after: int = 64 * MiB
    max_members: int = 1_000_000  # per file on disk, nested archives included

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if environ is None else environ
        fields: dict[str, Any] = {}
        for name, key, parse in (
            (ENV_MAX_EXPAND, "max_expand", parse_size),
            (ENV_MAX_RATIO, "max_ratio", float),
            (ENV_RATIO_AFTER, "ratio_after", parse_size),
            (ENV_MAX_MEMBERS, "max_members", int),
        ):
            if env.get(name, "").strip():
                try:
                    fields[key] = parse(env[name])
                except ValueError:
                    raise UsageError(
                        f"{name}={env[name]!r} is not valid", hint="use a number, or a size such as 20GiB or 500MiB"
                    ) from None
        return cls(**fields)

    def check(self, label: str, produced: int, consumed: int, declared: bool = False) -> None:
        """Raise InputError when `produced` bytes from `consumed` compressed bytes look like a bomb."""
        how = "declares that it expands" if declared else "expands"
        if self.max_expand and produced > self.max_expand:
            raise InputError(
                f"{label} {how} beyond {format_size(self.max_expand)} when decompressed; "
                "stopped (a decompression bomb?)",
                hint=f"if the archive is genuine, raise the limit: {ENV_MAX_EXPAND}=100GiB (0 = no limit)",
                limit=self.max_expand,
            )
        if self.max_ratio and produced > self.ratio_after and produced > self.max_ratio * max(consumed, 1):
            raise InputError(
                f"{label} {how} beyond {self.max_ratio:g} times its compressed size; stopped (a decompression bomb?)",
                hint=f"if the archive is genuine, raise the limit: {ENV_MAX_RATIO}=10000 (0 = no limit)",
                ratio=self.max_ratio,
            )


def damaged(label: str, what: str, exc: BaseException) -> InputError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return InputError(f"{label} cannot be read: damaged or truncated {what} ({reason})", hint=DAMAGE_HINT)


def read_full(stream: Any, size: int) -> bytes:
    """Up to `size` bytes, fewer only at the end of the stream."""
    parts, left = [], size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class ZstdFrames:
    """Follows zstd frame and block headers in the compressed bytes, to tell a complete stream
    from one cut short (the zstandard stream reader just stops where its input stops)."""

    def __init__(self) -> None:
        self._state, self._need, self._skip, self._checksum = "magic", 4, 0, 0
        self._buf = bytearray()
        self.bad = False

    @property
    def complete(self) -> bool:
        return not self.bad and self._state == "magic" and not self._buf and not self._skip

    def feed(self, data: bytes) -> None:
        i, end = 0, len(data)
        while i < end and not self.bad:
            if self._skip:
                take = min(self._skip, end - i)
                self._skip -= take
                i += take
                continue
            take = min(self._need - len(self._buf), end - i)
            self._buf += data[i : i + take]
            i += take
            if len(self._buf) == self._need:
                field = bytes(self._buf)
                self._buf.clear()
                self._advance(field)

    def _advance(self, field: bytes) -> None:
        value = int.from_bytes(field, "little")
        if self._state == "magic":
            if value == 0xFD2FB528:
                self._state, self._need = "header", 1
            elif value & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
                self._state, self._need = "skippable", 4
            else:
                self.bad = True
        elif self._state == "skippable":
            self._skip, self._state, self._need = value, "magic", 4
        elif self._state == "header":
            single = value >> 5 & 1
            size_field = (single, 2, 4, 8)[value >> 6]
            self._checksum = value >> 2 & 1
            self._skip = (1 - single) + (0, 1, 2, 4)[value & 3] + size_field
            self._state, self._need = "block", 3
        else:  # block header: last flag, type, size
            kind, size = value >> 1 & 3, value >> 3
            if kind == 3:
                self.bad = True
                return
            self._skip = 1 if kind == 1 else size
            if value & 1:
                self._skip += 4 * self._checksum
                self._state, self._need = "magic", 4


class Counter:
    """Hands a decompressor its input in small pieces and counts them (for the ratio check)."""

    def __init__(self, raw: Any, frames: ZstdFrames | None = None) -> None:
        self.raw, self.frames, self.count = raw, frames, 0
        self.mode, self.name = "rb", ""

    def read(self, size: int | None = -1) -> bytes:
        data = self.raw.read(PIECE if size is None or size < 0 else min(size, PIECE))
        self.count += len(data)
        if self.frames is not None:
            self.frames.feed(data)
        return data

    def readable(self) -> bool:
        return True

    def consumed(self) -> int:
        return self.count

    def close(self) -> None:
        return None


class Guard:
    """The output of one decompressing layer: counted, checked against `Limits`, errors made clear."""

    def __init__(self, raw: Any, label: str, limits: Limits, what: str, consumed: Callable[[], int],
                 frames: ZstdFrames | None = None) -> None:  # fmt: skip
        self.raw, self.label, self.limits, self.what = raw, label, limits, what
        self.consumed, self.frames, self.produced = consumed, frames, 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        try:
            data = self.raw.read(min(size, CHUNK))
        except DAMAGE as exc:
            raise damaged(self.label, self.what, exc) from None
        if not data and size and self.frames is not None and not self.frames.complete:
            raise damaged(self.label, self.what, EOFError("the data ends inside a zstd frame"))
        self.produced += len(data)
        self.limits.check(self.label, self.produced, self.consumed())
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Prefixed:
    """A stream whose first bytes were already read (to sniff them): gives them back first."""

    def __init__(self, head: bytes, raw: Any) -> None:
        self.head, self.raw, self.mode, self.name = head, raw, "rb", ""

    def read(self, size: int | None = -1) -> bytes:
        if not self.head:
            return self.raw.read(size)
        if size is None or size < 0:
            out, self.head = self.head + self.raw.read(), b""
            return out
        out, self.head = self.head[:size], self.head[size:]
        return out

    def readable(self) -> bool:
        return True


class Top:
    """The stream a converter gets: full reads, clear errors; closing it closes the whole chain."""

    def __init__(self, raw: Any, stack: ExitStack, label: str, progress: tuple[Counter, int] | None) -> None:
        self.raw, self.stack, self.label, self.progress = raw, stack, label, progress
        self.closed = False

    def read(self, size: int | None = -1) -> bytes:
        try:
            if size is None or size < 0:
                return b"".join(iter(lambda: self.raw.read(CHUNK), b""))
            return read_full(self.raw, size)
        except DAMAGE as exc:
            raise damaged(self.label, "archive member", exc) from None

    def fraction_read(self) -> float | None:
        """Share of the innermost compressed input consumed so far (for estimates), if known."""
        if self.progress is None:
            return None
        counter, total = self.progress
        return min(counter.count / total, 1.0) if total else None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stack.close()

    def __enter__(self) -> Top:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Reopening:
    """Random access over a forward-only stream: seeking back re-opens it and skips ahead.

    The first size query reads the stream once to its end and keeps the last `TAIL` bytes, so
    a zip's central directory is then read from memory; reading members in offset order after
    that costs one more pass.
    """

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self._stream: Any = None
        self._at = 0  # position of self._stream
        self._pos = 0
        self._size: int | None = None
        self._tail, self._tail_at = b"", 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos}.get(whence)
        pos = offset + (self._measure() if base is None else base)
        if pos < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(self._measure() - self._pos, 0)
        parts = []
        while size > 0:
            chunk = self._read_some(size)
            if not chunk:
                break
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def _read_some(self, size: int) -> bytes:
        if self._size is not None and self._pos >= self._tail_at:
            start = self._pos - self._tail_at
            data = self._tail[start : start + size]
        else:
            self._goto(self._pos)
            data = self._stream.read(min(size, CHUNK))
            self._at += len(data)
        self._pos += len(data)
        return data

    def _reopen(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream, self._at = self._opener(), 0

    def _goto(self, pos: int) -> None:
        if self._stream is None or self._at > pos:
            self._reopen()
        while self._at < pos:
            skipped = self._stream.read(min(CHUNK, pos - self._at))
            if not skipped:
                break
            self._at += len(skipped)

    def _measure(self) -> int:
        if self._size is None:
            if self._stream is None:
                self._reopen()
            tail = bytearray()
            while chunk := self._stream.read(CHUNK):
                self._at += len(chunk)
                tail += chunk
                if len(tail) > TAIL:
                    del tail[: len(tail) - TAIL]
            self._size, self._tail, self._tail_at = self._at, bytes(tail), self._at - len(tail)
        return self._size

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> Reopening:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
