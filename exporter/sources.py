"""Input discovery: files and folders -> input units (one per file or archive member).

Each unit can be opened as a fresh binary stream any number of times, is hashed from its
bytes, and is given a format by content (`sniff`), never by its name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

from . import converters
from .errors import InputError

HEAD_BYTES = 1 << 16
MIN_CONFIDENCE = 0.5


@dataclass
class InputUnit:
    """One file, or one member of an archive, to convert."""

    display: str  # as the user gave it; archive members as `a.zip!/inner/path`
    opener: Callable[[], BinaryIO] = field(repr=False)
    size: int
    explicit: bool = True  # named on the command line (vs found while walking a folder)

    def open(self) -> BinaryIO:
        return self.opener()

    def head(self) -> bytes:
        with self.open() as stream:
            return stream.read(HEAD_BYTES)

    def sha256(self, on_bytes: Callable[[int], None] | None = None) -> str:
        digest = hashlib.sha256()
        with self.open() as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        return digest.hexdigest()


@dataclass
class Skipped:
    """An input that was seen but not converted, and why."""

    display: str
    reason: str


def _file_unit(path: Path, display: str, explicit: bool) -> InputUnit:
    return InputUnit(
        display=display, opener=partial(open, str(path), "rb"), size=path.stat().st_size, explicit=explicit
    )


def discover(inputs: list[str]) -> Iterator[InputUnit]:
    """Units for the given paths, folders walked recursively in sorted order."""
    for given in inputs:
        path = Path(given)
        if not path.exists():
            raise InputError(f"input not found: {given}", hint="check the path; quote names with spaces")
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    child = Path(root) / name
                    if name.startswith(".") or not child.is_file():
                        continue
                    yield _file_unit(child, _display(given, child, path), explicit=False)
        elif path.is_file():
            yield _file_unit(path, given, explicit=True)
        else:
            raise InputError(f"input is not a regular file or folder: {given}", hint="pass files or folders")


def _display(given: str, child: Path, base: Path) -> str:
    return str(Path(given) / child.relative_to(base))


def sniff(unit: InputUnit) -> tuple[str | None, float, bytes]:
    """Best (format, confidence) for a unit by content, and the head bytes it looked at."""
    try:
        head = unit.head()
    except OSError as exc:
        raise InputError(f"cannot read {unit.display}: {exc.strerror or exc}", hint="check file permissions") from None
    name = unit.display.rsplit("/", 1)[-1]
    best, score = None, 0.0
    for conv in converters.all_converters():
        confidence = conv.sniff(head, name)
        if confidence > score:
            best, score = conv.name, confidence
    return (best, score, head) if score >= MIN_CONFIDENCE else (None, score, head)


def describe_head(head: bytes) -> str:
    """A short, printable description of what a file starts with."""
    if not head:
        return "an empty file"
    if b"\x00" in head[:512]:
        return "binary data"
    text = head[:60].decode("utf-8", errors="replace").strip().replace("\n", " ")
    return f"text starting with {text!r}"
