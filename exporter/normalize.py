"""Shared pure helpers that every converter uses to build a post record.

Everything here is a plain function of its arguments: no I/O, no global state.
Offsets in records are Unicode code points of the record's `text` (Python `len`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from typing import Any

from .schema import field_names, load_schema

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ENTITY_TYPE_ALIASES = {
    "link": "url",
    "mention_name": "text_mention",
    "phone": "phone_number",
    "textlink": "text_link",
    "text_url": "text_link",
    "strike": "strikethrough",
    "blockquote_expandable": "blockquote",
    "expandable_blockquote": "blockquote",
    "messageentitymention": "mention",
}
ENTITY_TYPES = frozenset(load_schema()["properties"]["entities"]["items"]["properties"]["type"]["enum"])
VARIATION_SELECTORS = dict.fromkeys((0xFE0E, 0xFE0F))
HASHTAG_RE = re.compile(r"(?<![\w#])#(\w+)")
MENTION_RE = re.compile(r"(?<![\w@/])@([A-Za-z][A-Za-z0-9_]{3,31})\b")
# Bare links in text. The definition, as users read it:
BARE_URL_DEFINITION = re.compile(r"\b(?:https?://|www\.|t\.me/)[^\s<>\"'«»]+", re.IGNORECASE)
# ... and the same matches, written out so that `re` skips ahead to a possible first letter (with
# `\b` and IGNORECASE in front it tries a match at every position: 4x slower). `\b` before a
# letter is "no word character before it"; IGNORECASE folds s to S and ſ, every other letter here
# only to its capital. tests/test_normalize.py proves the two patterns find the same links.
BARE_URL_RE = re.compile(
    r"[HhWwTt](?<!\w.)(?:(?<=[Hh])[Tt][Tt][Pp][Ssſ]?://|(?<=[Ww])[Ww][Ww]\.|(?<=[Tt])\.[Mm][Ee]/)[^\s<>\"'«»]+"
)
COUNT_RE = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*([KkMmBb]?)\s*$")
COUNT_SCALE = {"": 1, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000}


LIST_FIELDS = ("entities", "hashtags", "mentions", "urls", "reactions")


def empty_record() -> dict[str, Any]:
    """A record with every schema field set to its 'not provided' value (fresh lists each)."""
    rec = _empty_template().copy()
    for key in LIST_FIELDS:
        rec[key] = []
    return rec


@cache
def _empty_template() -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(field_names())
    rec.update(text="", counts_rounded=False, content_omitted=False, kind="message")
    return rec


# --- dates -------------------------------------------------------------------------------


def iso_utc(moment: datetime) -> str:
    """RFC 3339 UTC string with `Z`; microseconds only when non-zero."""
    moment = moment.astimezone(UTC)
    if moment.year >= 1000:  # isoformat pads years below 1000, which strftime's %Y does not
        return moment.isoformat()[:-6] + "Z"  # without its "+00:00"
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_from_epoch(seconds: float | int | str) -> str:
    """Unix seconds (int, float or decimal string) -> RFC 3339 UTC."""
    if isinstance(seconds, str):
        seconds = float(seconds) if ("." in seconds or "e" in seconds.lower()) else int(seconds)
    if isinstance(seconds, float):
        micros = round(seconds * 1_000_000)
        return iso_utc(EPOCH + timedelta(microseconds=micros))
    return iso_utc(EPOCH + timedelta(seconds=seconds))


def utc_from_iso(value: str, default_tz: tzinfo | None = None) -> str:
    """ISO 8601 (with `T` or a space, with offset or `Z`) -> RFC 3339 UTC.

    A value without offset needs `default_tz` (the zone of the machine that wrote it);
    without one, ValueError is raised. Ambiguous local times take the first occurrence.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        if default_tz is None:
            raise ValueError(f"date {value!r} has no time zone")
        moment = moment.replace(tzinfo=default_tz)
    return iso_utc(moment)


# --- text and entities -------------------------------------------------------------------


def entity_type(raw_type: str) -> str:
    """Source entity type -> schema entity type (Telegram Bot API names)."""
    key = raw_type.strip().lower()
    key = ENTITY_TYPE_ALIASES.get(key, key)
    if key.startswith("messageentity"):
        key = re.sub(r"(?<!^)(?=[A-Z])", "_", raw_type[len("MessageEntity") :]).lower()
        key = ENTITY_TYPE_ALIASES.get(key, key)
    return key if key in ENTITY_TYPES else "unknown"


def make_entity(
    kind: str,
    offset: int,
    length: int,
    url: str | None = None,
    user_id: int | None = None,
    custom_emoji_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": kind,
        "offset": offset,
        "length": length,
        "url": url,
        "user_id": user_id,
        "custom_emoji_id": custom_emoji_id,
    }


def numeric_id(value: Any) -> str | None:
    """A numeric document id as a string, or None for paths / placeholders / empty."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    text = str(value).strip()
    return text if text.isdigit() else None


def utf16_to_codepoints(text: str, offset: int, length: int) -> tuple[int, int]:
    """Convert an (offset, length) pair in UTF-16 code units to code points of `text`.

    A position is the first code point at or after that many UTF-16 units (an offset inside a
    surrogate pair moves past it); positions beyond the text are its end.
    """
    astral = _astral_positions(text)
    if not astral:  # no surrogate pairs: the same numbers
        return offset, length
    start, end = _codepoint_at(astral, len(text), offset), _codepoint_at(astral, len(text), offset + length)
    if start > end:  # a negative length: the end was reached first, the start never (as it was)
        start = len(text)
    return start, max(0, end - start)


_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_LAST_ASTRAL: tuple[str | None, list[int]] = (None, [])  # the last text's (its entities come in a row)


def _astral_positions(text: str) -> list[int]:
    """Code point indexes of the characters outside the BMP (two UTF-16 units each)."""
    global _LAST_ASTRAL
    last_text, positions = _LAST_ASTRAL  # one read: a consistent pair, whichever thread wrote it
    if last_text is not text:
        positions = [] if text.isascii() else [m.start() for m in _ASTRAL_RE.finditer(text)]
        _LAST_ASTRAL = (text, positions)
    return positions


def _codepoint_at(astral: list[int], size: int, units: int) -> int:
    """The smallest index i <= size with i + (astral characters before i) >= units, else size."""
    low, high = 0, size
    while low < high:  # UTF-16 units before index i grow with i: bisect on them
        middle = (low + high) // 2
        if middle + bisect.bisect_left(astral, middle) >= units:
            high = middle
        else:
            low = middle + 1
    return low


def absolute_url(url: str) -> str:
    """Give scheme-less links (`example.org/x`, `t.me/x`) an explicit `http://`/`https://`."""
    url = url.strip()
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url) or url.startswith(("mailto:", "tg:", "tel:")):
        return url
    if url.lower().startswith("t.me/"):
        return "https://" + url
    return "http://" + url


def extract_hashtags(text: str, entities: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Hashtags without `#`, in order.

    `entities` is the source's complete entity list (Telegram marks every hashtag, so a `#`
    without an entity is not one: "price #1"); pass None when the source has no entities, and
    hashtags are then recognised in the text.
    """
    if entities is not None:
        tags = [text[e["offset"] : e["offset"] + e["length"]].lstrip("#") for e in entities if e["type"] == "hashtag"]
        return [t for t in tags if t]
    return HASHTAG_RE.findall(text)


def extract_mentions(text: str, entities: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Usernames without `@`, lowercase, in order, without duplicates (entities as for hashtags)."""
    if entities is not None:
        found = [text[e["offset"] : e["offset"] + e["length"]].lstrip("@") for e in entities if e["type"] == "mention"]
    else:
        found = MENTION_RE.findall(text)
    return unique(name.lower() for name in found if name)


def extract_urls(text: str, entities: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Absolute URLs from link entities and bare links in the text, in order, without duplicates."""
    found: list[str] = []
    for entity in entities or ():
        if entity["type"] in ("url", "text_link") and entity.get("url"):
            found.append(absolute_url(entity["url"]))
    for match in BARE_URL_RE.finditer(text):
        found.append(absolute_url(match.group(0).rstrip(".,;:!?)]}…")))
    return unique(found)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


# --- counts, reactions, emoji ------------------------------------------------------------


def parse_count(value: Any) -> tuple[int | None, bool]:
    """A displayed count (`123`, `1.2K`, `2.72M`, `1,234`) -> (integer, rounded?)."""
    if value is None or isinstance(value, bool):
        return None, False
    if isinstance(value, int):
        return value, False
    if isinstance(value, float):
        return int(value), False
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+", text):
        return int(text.replace(",", "")), False
    match = COUNT_RE.match(text)
    if not match:
        return None, False
    number, suffix = match.group(1).replace(",", "."), match.group(2).upper()
    if not suffix:
        return (int(float(number)), "." in number) if "." in number else (int(number), False)
    return round(float(number) * COUNT_SCALE[suffix]), True


def normalize_emoji(emoji: str | None) -> str | None:
    """Remove variation selectors so `❤` and `❤️` aggregate as one reaction."""
    if emoji is None:
        return None
    cleaned = emoji.translate(VARIATION_SELECTORS).strip()
    return cleaned or None


def make_reaction(kind: str, count: int, emoji: str | None = None, custom_emoji_id: str | None = None) -> dict:
    return {
        "kind": kind,
        "emoji": normalize_emoji(emoji) if kind == "emoji" else None,
        "custom_emoji_id": custom_emoji_id if kind == "custom_emoji" else None,
        "count": count,
    }


def reactions_total(reactions: Sequence[dict[str, Any]], has_data: bool) -> int | None:
    """Sum of counts, or None when the source has no reaction data at all."""
    if not has_data:
        return None
    return sum(r["count"] for r in reactions)


# --- chats and ids -----------------------------------------------------------------------


def clean_username(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().lstrip("@").lower()
    return name if re.fullmatch(r"[a-z0-9_]+", name) else None


def post_url(username: str | None, chat_id: int | None, chat_type: str | None, post_id: int) -> str | None:
    """`https://t.me/<username>/<id>`, else `https://t.me/c/<chat_id>/<id>` for channels/supergroups."""
    if post_id <= 0:
        return None
    if username:
        return f"https://t.me/{username}/{post_id}"
    if chat_id is not None and chat_type in ("channel", "supergroup"):
        return f"https://t.me/c/{chat_id}/{post_id}"
    return None


def bare_chat_id(value: int) -> int:
    """Strip a Bot API `-100` / `-` prefix from a chat id."""
    if value < 0:
        text = str(-value)
        return int(text[3:]) if text.startswith("100") and len(text) > 12 else -value
    return value


def stamp_provenance(record: dict[str, Any], fmt: str, file: str, sha256: str, locator: str, run_id: str) -> None:
    """Fill the provenance fields the pipeline owns (`source_*`, `run_id`, `sources`)."""
    record["source_format"] = fmt
    record["source_file"] = file
    record["source_sha256"] = sha256
    record["source_locator"] = locator
    record["run_id"] = run_id
    record["sources"] = [{"format": fmt, "file": file, "sha256": sha256, "locator": locator}]
