"""The converter interface: every input format implements it; the pipeline owns the rest.

A converter reads one input stream and yields `Item`s. It never validates and never writes.
It fills the content fields of a record (starting from `normalize.empty_record()`); the
pipeline stamps the provenance fields (`source_*`, `run_id`), validates, and routes items
to the dataset, the merge step, or the quarantine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, BinaryIO, ClassVar, Protocol


@dataclass(frozen=True)
class SourceRef:
    """One input unit: a file, or a member of an archive."""

    display: str  # path as given; archive members as `dump.zip!/inner/path`
    sha256: str
    size: int


@dataclass(frozen=True)
class ConvertOptions:
    """What the user told us that changes how items are read."""

    tz: tzinfo | None = None  # zone of the machine that wrote local-time dates
    tz_name: str | None = None


@dataclass(slots=True)
class Item:
    """One input item and what became of it in the converter.

    `record` is None when the item could not be turned into a record at all; `problems`
    then says why (the item is quarantined). `skip_reason` marks items that are read but
    deliberately not written (e.g. tdesktop `unsupported` placeholders); they count as
    skipped with that reason.
    """

    locator: str
    raw: Any
    record: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    skip_reason: str | None = None


class Converter(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]

    def sniff(self, head: bytes, name: str) -> float:
        """Confidence 0..1 that a file starting with `head` (first 64 KiB) is this format."""

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        """Stream the items of one input. Raise `InputError` when the file as a whole is unreadable."""
