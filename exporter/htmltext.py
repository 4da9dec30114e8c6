"""Generic HTML helpers shared by the HTML converters (tdesktop-html, tme-html, mirror).

Parsing is lxml with network access and entity resolution off; text is rebuilt with
line breaks and formatting/link spans as code-point entities.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from lxml import etree

from . import normalize as norm
from .converters.base import SourceRef
from .errors import InputError

DURATION_RE = re.compile(r"\b(?:(\d+):)?(\d{1,2}):(\d{2})\b")
MAX_PAGE_BYTES = 256 * 1024 * 1024
FORMAT_TAGS = {"strong": "bold", "b": "bold", "em": "italic", "i": "italic", "u": "underline", "code": "code"}

_CLASS_XPATH = etree.XPath(".//*[contains(concat(' ', normalize-space(@class), ' '), $token)]")


def read_html(stream: BinaryIO, source: SourceRef, what: str, hint: str) -> etree._Element:
    """Parse one HTML input safely (no network, no entities from outside) or raise InputError."""
    data = stream.read(MAX_PAGE_BYTES + 1)
    if len(data) > MAX_PAGE_BYTES:
        raise InputError(f"{source.display} is larger than {MAX_PAGE_BYTES >> 20} MiB; not a single {what}", hint=hint)
    if not data.strip():
        raise InputError(f"{source.display} is empty; expected {what}", hint=hint)
    if b"\x00" in data[:4096]:
        raise InputError(f"{source.display} is binary data, not {what}", hint=hint)
    parser = etree.HTMLParser(no_network=True, remove_comments=True, remove_pis=True, recover=True, encoding="utf-8")
    try:
        root = etree.fromstring(data.removeprefix(b"\xef\xbb\xbf"), parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise InputError(f"{source.display} cannot be parsed as HTML ({exc})", hint=hint) from None
    if root is None:
        raise InputError(f"{source.display} has no HTML content; expected {what}", hint=hint)
    return root


def classes(el: etree._Element) -> set[str]:
    return set((el.get("class") or "").split())


def has_class(el: etree._Element, name: str) -> bool:
    return name in classes(el)


def by_class(el: etree._Element, name: str) -> list[etree._Element]:
    """Descendants of `el` that carry class `name` (document order)."""
    return _CLASS_XPATH(el, token=f" {name} ")


def first_class(el: etree._Element, name: str) -> etree._Element | None:
    found = by_class(el, name)
    return found[0] if found else None


def child_with_class(el: etree._Element, name: str, tag: str | None = None) -> etree._Element | None:
    for child in el:
        if isinstance(child.tag, str) and (tag is None or child.tag == tag) and has_class(child, name):
            return child
    return None


def text_of(el: etree._Element) -> str:
    """All text inside `el` (entities decoded), without its tail."""
    return "".join(el.itertext())


def plain(el: etree._Element | None) -> str | None:
    """Whitespace-stripped text content of an element, or None when absent or empty."""
    if el is None:
        return None
    text = " ".join(text_of(el).split())
    return text or None


def fragment(el: etree._Element) -> str:
    """The element's markup, for quarantine reports."""
    return etree.tostring(el, encoding="unicode", with_tail=False)


@dataclass
class Markup:
    """How to read one inline element: `action` is descend / flat (take its text) / skip."""

    action: str = "descend"
    etype: str | None = None
    url: str | None = None
    custom_emoji_id: str | None = None


@dataclass
class _TextBuilder:
    parts: list[str] = field(default_factory=list)
    length: int = 0
    entities: list[dict[str, Any]] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.length += len(text)


def rich_text(el: etree._Element, classify: Callable[[etree._Element], Markup]) -> tuple[str, list[dict[str, Any]]]:
    """Plain text of `el` (`<br>` → newline, ends stripped) and its entities in code points."""
    builder = _TextBuilder()
    _walk(el, builder, classify)
    raw = "".join(builder.parts)
    text = raw.strip()
    lead = len(raw) - len(raw.lstrip())
    entities = []
    for entity in builder.entities:
        start = max(0, entity["offset"] - lead)
        end = min(entity["offset"] + entity["length"] - lead, len(text))
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return text, entities


def _walk(el: etree._Element, out: _TextBuilder, classify: Callable[[etree._Element], Markup]) -> None:
    out.add(el.text or "")
    for child in el:
        if isinstance(child.tag, str):
            if child.tag == "br":
                out.add("\n")
            else:
                markup = classify(child)
                start = out.length
                if markup.action == "flat":
                    out.add(text_of(child))
                elif markup.action == "descend":
                    _walk(child, out, classify)
                if markup.etype and out.length > start:
                    out.entities.append(
                        norm.make_entity(
                            markup.etype, start, out.length - start, markup.url, None, markup.custom_emoji_id
                        )
                    )
        out.add(child.tail or "")


def finish_text(rec: dict[str, Any], text: str, entities: list[dict[str, Any]]) -> None:
    """Fill text, entities and the lists derived from them."""
    rec["text"] = text
    rec["entities"] = entities
    rec["hashtags"] = norm.extract_hashtags(text, entities)
    rec["mentions"] = norm.extract_mentions(text, entities)
    rec["urls"] = norm.extract_urls(text, entities)


def parse_duration(text: str | None) -> int | None:
    match = DURATION_RE.search(text or "")
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)


def empty_media(**values: Any) -> dict[str, Any]:
    media = dict.fromkeys(
        ("file_name", "mime_type", "file_size", "width", "height", "duration_s", "sticker_emoji", "available")
    )
    media.update(values)
    return media


# --- the converter -----------------------------------------------------------------------
