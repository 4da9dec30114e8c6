"""Input discovery: files, folders and archives -> input units (one per file or archive member).

Each unit can be opened as a fresh binary stream any number of times (in any process: its
opener is picklable), is hashed from its bytes, and is given a format by content (`sniff`),
never by its name. Archives (zip, tar, gzip, zstd, nested) are recognised by their magic
bytes and read as streams (`archives`); their members are shown as `a.zip!/inner/path`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

from . import archives, converters, prehash
from .archive_streams import Limits, read_full
from .errors import InputError

HEAD_BYTES = archives.HEAD_BYTES
MIN_CONFIDENCE = 0.5
DESCRIBE_BYTES = 512  # what `describe_head` looks at; all a unit keeps of its head after the scan
ESTIMATE_BYTES = 1 << 20

log = logging.getLogger(__name__)


@dataclass
class InputUnit:
    """One file, or one member of an archive, to convert."""

    display: str  # as the user gave it; archive members as `a.zip!/inner/path`
    opener: Callable[[], BinaryIO] = field(repr=False)
    size: int  # bytes of the (decompressed) content; an estimate until hashed when not size_exact
    explicit: bool = True  # named on the command line (vs found in a folder or an archive)
    size_exact: bool = True
    note: str | None = None  # e.g. an unsafe member name that was sanitized for display
    digest: str | None = field(default=None, repr=False)  # sha256, when the scan already read it all
    path: str | None = field(default=None, repr=False)  # the local file, when the unit is a whole one
    sniffed: tuple[str | None, float, bytes] | None = field(default=None, repr=False)

    def open(self) -> BinaryIO:
        return self.opener()

    def head(self) -> bytes:
        with self.open() as stream:
            return read_full(stream, HEAD_BYTES)

    def sha256(self, on_bytes: Callable[[int], None] | None = None) -> str:
        """Hex sha256 of the unit's bytes; also makes `size` exact."""
        if self.digest is not None:
            if on_bytes:
                on_bytes(self.size)
            return self.digest
        known = prehash.digest(self.path) if self.path is not None else None
        if known is not None:  # hashed while the program loaded
            self.digest, self.size, self.size_exact = known, os.path.getsize(self.path), True
            if on_bytes:
                on_bytes(self.size)
            return self.digest
        digest, total = hashlib.sha256(), 0
        with self.open() as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                total += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        self.digest, self.size, self.size_exact = digest.hexdigest(), total, True
        return self.digest


@dataclass
class Skipped:
    """An input that was seen but not converted, and why."""

    display: str
    reason: str


def discover(
    inputs: list[str], skipped: list[Skipped] | None = None, limits: Limits | None = None
) -> Iterator[InputUnit]:
    """Units for the given paths: folders walked recursively in sorted order, archives opened.

    Archive members that cannot be read as they are (links, encrypted or special members,
    archives nested too deep) are appended to `skipped` with a reason. Limits against
    decompression bombs come from the environment unless given.
    """
    limits = limits or Limits.from_env()
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
                    yield from _units(child, _display(given, child, path), False, limits, skipped)
        elif path.is_file():
            yield from _units(path, given, True, limits, skipped)
        else:
            raise InputError(f"input is not a regular file or folder: {given}", hint="pass files or folders")


def _display(given: str, child: Path, base: Path) -> str:
    return str(Path(given) / child.relative_to(base))


def _units(
    path: Path, display: str, explicit: bool, limits: Limits, skipped: list[Skipped] | None
) -> Iterator[InputUnit]:
    for found in archives.walk(str(path), display, limits):
        if isinstance(found, archives.Skip):
            if skipped is not None:
                skipped.append(Skipped(found.display, found.reason))
            continue
        if found.note:
            log.info("%s: %s", found.display, found.note)
        opener: Callable[[], BinaryIO]
        if found.steps:
            opener = archives.MemberOpener(str(path), found.steps, limits, display)
        else:
            opener = partial(open, str(path), "rb")
        member = any(step.kind not in archives.COMPRESSORS for step in found.steps)
        yield InputUnit(
            display=found.display,
            opener=opener,
            size=found.size,
            explicit=explicit and not member,
            size_exact=found.size_exact,
            note=found.note,
            digest=found.sha256,
            path=None if found.steps else str(path),
            sniffed=_sniff_head(found.head, found.display),
        )


def _sniff_head(head: bytes, display: str) -> tuple[str | None, float, bytes]:
    name = display.rsplit("/", 1)[-1]
    best, score = None, 0.0
    for conv in converters.all_converters():
        confidence = conv.sniff(head, name)
        if confidence > score:
            best, score = conv.name, confidence
    return (best if score >= MIN_CONFIDENCE else None), score, head[:DESCRIBE_BYTES]


def sniff(unit: InputUnit) -> tuple[str | None, float, bytes]:
    """Best (format, confidence) for a unit by content, and (the start of) the head it looked at."""
    if unit.sniffed is not None:
        return unit.sniffed
    try:
        head = unit.head()
    except OSError as exc:
        raise InputError(f"cannot read {unit.display}: {exc.strerror or exc}", hint="check file permissions") from None
    return _sniff_head(head, unit.display)


def describe_head(head: bytes) -> str:
    """A short, printable description of what a file starts with."""
    if not head:
        return "an empty file"
    if b"\x00" in head[:DESCRIBE_BYTES]:
        return "binary data"
    text = head[:60].decode("utf-8", errors="replace").strip().replace("\n", " ")
    return f"text starting with {text!r}"


def unrecognised_reason(head: bytes) -> str:
    return f"not a recognised Telegram dump ({describe_head(head)})"


def skipped_summary(skipped: list[dict[str, str]]) -> str:
    """` (3 skipped; first: a.zip!/x.json: encrypted zip member ...)`, or "" when none were."""
    if not skipped:
        return ""
    first = skipped[0]
    return f" ({len(skipped)} skipped; first: {first['path']}: {first['reason']})"


# Item markers for `detect` estimates: one match per item the converter will read.
ITEM_MARKERS: dict[str, re.Pattern[bytes]] = {
    "tdesktop-json": re.compile(rb'"type"\s*:\s*"(?:message|service)"'),
    "tdesktop-html": re.compile(rb'class="message (?:default|service)'),
    "tme-html": re.compile(rb'data-post="'),
    "telethon-json": re.compile(rb'"_"\s*:\s*"Message(?:Service|Empty)?"'),
    "snscrape-jsonl": re.compile(rb'"_type"\s*:\s*"snscrape\.modules\.telegram\.TelegramPost"'),
    "tgdataset": re.compile(rb'"date"\s*:'),
}
FALLBACK_MARKER = re.compile(rb'"id"\s*:')
ONE_ITEM_FORMATS = ("mirror",)  # one post per page


@dataclass
class ItemEstimate:
    items: int
    basis: str  # counted | extrapolated | lower bound
    size: int | None = None  # (decompressed) bytes of the unit, when the estimate learned them


def estimate_items(unit: InputUnit, fmt: str) -> ItemEstimate:
    """A cheap item count, from the first MiB of the (decompressed) unit only.

    Counts the format's item marker (`ITEM_MARKERS`). Basis `counted`: the unit is no larger
    than that MiB, so every marker was counted; `extrapolated`: the count scaled by the share
    of the unit (or of its compressed bytes) that MiB was; `lower bound`: that share is unknown
    (compressed data nested in compressed data).
    """
    if fmt in ONE_ITEM_FORMATS:
        return ItemEstimate(1, "counted")
    with unit.open() as stream:
        sample = read_full(stream, ESTIMATE_BYTES + 1)
        from_stream = None if unit.size_exact else getattr(stream, "fraction_read", lambda: None)()
    count = len(ITEM_MARKERS.get(fmt, FALLBACK_MARKER).findall(sample[:ESTIMATE_BYTES]))
    if len(sample) <= ESTIMATE_BYTES:
        return ItemEstimate(count, "counted", len(sample))
    if unit.size_exact and unit.size:
        return ItemEstimate(max(count, round(count * unit.size / ESTIMATE_BYTES)), "extrapolated")
    if not from_stream:
        return ItemEstimate(count, "lower bound")
    return ItemEstimate(max(count, round(count / from_stream)), "extrapolated", round(len(sample) / from_stream))


@dataclass
class Detection:
    """What `detect` found for one input unit (or one skipped archive member)."""

    path: str
    status: str  # recognised | unrecognised | skipped
    format: str | None = None
    confidence: float | None = None
    items: int | None = None
    items_basis: str | None = None
    bytes: int | None = None
    bytes_exact: bool | None = None
    reason: str | None = None
    note: str | None = None


def detect_inputs(inputs: list[str], limits: Limits | None = None) -> list[Detection]:
    """Format, confidence and an item estimate per input unit, in discovery order. Writes nothing."""
    found: list[Skipped] = []
    rows: list[Detection] = []
    for unit in discover(inputs, found, limits):
        rows.extend(Detection(s.display, "skipped", reason=s.reason) for s in found)
        found.clear()
        rows.append(_detect_unit(unit))
    rows.extend(Detection(s.display, "skipped", reason=s.reason) for s in found)
    return rows


def _detect_unit(unit: InputUnit) -> Detection:
    fmt, score, head = sniff(unit)
    row = Detection(unit.display, "unrecognised", None, round(score, 2), bytes=unit.size, note=unit.note)
    row.bytes_exact = unit.size_exact
    if fmt is None:
        row.reason = unrecognised_reason(head)
        return row
    estimate = estimate_items(unit, fmt)
    row.status, row.format, row.items, row.items_basis = "recognised", fmt, estimate.items, estimate.basis
    if not unit.size_exact and estimate.size is not None:
        row.bytes, row.bytes_exact = estimate.size, estimate.basis == "counted"
    return row
