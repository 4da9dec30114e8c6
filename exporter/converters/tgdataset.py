"""`tgdataset`: TGDataset files (La Morgia et al., 2023; formats.md §3.5).

One JSON object keyed by channel id; each channel holds metadata (`username`, `title`, …) and
two maps keyed by message id *strings*: `text_messages` and `generic_media` (the brief's
`media_messages` is accepted too). Streamed with ijson events (real files are tens of GB):
one message is built at a time. Traps handled (formats.md §8.17): float epoch dates, string
message keys, Telethon-markdown text (`**bold**`, `[label](url)`; parsed back into plain text
and entities with Telethon's own rules), untyped `author` / `forwarded_from_id`, and a post
with text and media appearing in both maps under the same key.

Duplicates: the text entry becomes the record; a media entry whose key already appeared in the
channel's `text_messages` is counted as skipped ("duplicate of text_messages entry") instead of
being merged, since merging would mean holding the channel's text records until its media map
has been read. Only the ids seen are kept (a set of ints per channel). Real files (crawler
and preview) write `text_messages` before `generic_media` and the metadata before both; in a
file written in another order, a text entry that follows its media twin is still emitted (its
text must not be lost) and the pipeline merges the two on the record key, and metadata that
comes after a map reaches only the messages read after it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import ijson

from .. import normalize as norm
from ..errors import InputError
from ..jsonlines import BOM, WHITESPACE, broken_json, exact_int, require_recognized
from ..jsonstream import basic_events, build_value, skip_value
from .base import ConvertOptions, Item, SourceRef

ROOT_RE = re.compile(rb'^\{\s*"-?[0-9]+"\s*:\s*\{')
MAPS_RE = re.compile(rb'"(?:text_messages|generic_media|media_messages)"\s*:\s*\{')
TEXT_MAP = "text_messages"
MEDIA_MAPS = ("generic_media", "media_messages")
METADATA = ("username", "title")
# Bot API file_id type byte, as Telethon's pack_bot_file_id writes it (media_id = message.file.id).
FILE_ID_TYPES = {
    2: "photo",
    3: "voice",
    4: "video",
    5: "document",
    8: "sticker",
    9: "audio",
    10: "animation",
    13: "video_note",
}
EXTENSION_TYPES = {
    ".jpg": "photo",
    ".jpe": "photo",
    ".jpeg": "photo",
    ".png": "photo",
    ".webp": "photo",
    ".mp4": "video",
    ".mov": "video",
    ".mp3": "audio",
    ".m4a": "audio",
    ".ogg": "voice",
    ".oga": "voice",
}
MARKDOWN_DELIMITERS = {"```": "pre", "**": "bold", "__": "italic", "~~": "strikethrough", "`": "code"}
DELIMITER_RE = re.compile(r"```|\*\*|__|~~|`")
LINK_RE = re.compile(r"\[([\S\s]+?)\]\((.+?)\)")
SPECIAL_RE = re.compile(r"[`*_~\[]")  # the first characters of DELIMITER_RE and LINK_RE
MENTION_LINK_RE = re.compile(r"^tg://user\?id=([0-9]+)$")
EMOJI_LINK_RE = re.compile(r"^emoji/([0-9]+)$")


@dataclass
class Channel:
    key: str
    chat_id: int | None
    username: str | None = None
    title: str | None = None
    text_ids: set[int] = field(default_factory=set)

    @property
    def pointer(self) -> str:
        return "/" + pointer_token(self.key)


def pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


class TgDatasetConverter:
    name = "tgdataset"
    description = "TGDataset JSON (channels keyed by id with text_messages / generic_media maps)"

    def sniff(self, head: bytes, name: str) -> float:
        text = head.lstrip(BOM + WHITESPACE)
        if not ROOT_RE.match(text):
            return 0.0
        if MAPS_RE.search(text):
            return 0.9
        return 0.5 if b'"username"' in text and b'"title"' in text else 0.0

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        yield from require_recognized(self._walk(stream, source), lambda seen: _not_tgdataset(source, seen))

    def iter_channel_range(
        self, stream: BinaryIO, source: SourceRef, options: ConvertOptions, first: bool
    ) -> Iterator[Item]:
        """The items of `{` + whole channels + `}` cut from a TGDataset file (`channelsplit`).

        The format gate runs on the first range only (it opens at the first channel, as for
        the whole file). Anything after the root object is an error here: it means the cut was
        not between two channels (the caller then converts the whole file in one task).
        """
        pairs = self._walk(stream, source, exact=True)
        if first:
            yield from require_recognized(pairs, lambda seen: _not_tgdataset(source, seen))
        else:
            yield from (item for item, _ in pairs if item is not None)

    def _walk(self, stream: BinaryIO, source: SourceRef, exact: bool = False) -> Iterator[tuple[Item | None, bool]]:
        events = basic_events(stream)
        try:
            first = next(events, None)
            if first is None:
                return
            if first[0] != "start_map":
                raise _not_tgdataset(source, 1)
            for kind, key in events:
                if kind == "end_map":
                    if exact and next(events, None) is not None:
                        raise ijson.IncompleteJSONError("data after the root object")
                    return
                yield from self._channel(events, key, next(events))
            raise ijson.IncompleteJSONError("unexpected end of input")
        except ijson.JSONError as exc:
            raise broken_json(source, exc, "check that the download / unzip of the TGDataset file completed") from None

    def _channel(self, events: Iterator, key: str, first: tuple[str, Any]) -> Iterator[tuple[Item | None, bool]]:
        channel = Channel(key, _chat_id(key))
        if first[0] != "start_map":
            skip_value(events, first)
            yield Item(channel.pointer, None, None, ["channel: expected a channel object"]), False
            return
        has_maps = False
        for kind, name in events:
            if kind == "end_map":
                if not has_maps:
                    problem = f"channel: a channel object without {TEXT_MAP} / {MEDIA_MAPS[0]}"
                    yield Item(channel.pointer, None, None, [problem]), False
                return
            value_first = next(events)
            if (name == TEXT_MAP or name in MEDIA_MAPS) and value_first[0] == "start_map":
                has_maps = True
                yield None, True  # a recognised channel, even when its maps are empty
                yield from self._messages(events, channel, name)
            elif name in METADATA and value_first[0] not in ("start_map", "start_array"):
                setattr(channel, name, value_first[1])
            else:
                skip_value(events, value_first)
        raise ijson.IncompleteJSONError("unexpected end of input")

    def _messages(self, events: Iterator, channel: Channel, map_name: str) -> Iterator[tuple[Item, bool]]:
        for kind, key in events:
            if kind == "end_map":
                return
            raw = build_value(events, next(events))
            locator = f"{channel.pointer}/{map_name}/{pointer_token(key)}"
            post_id = exact_int(key)
            if map_name == TEXT_MAP and post_id is not None:
                channel.text_ids.add(post_id)
            elif post_id in channel.text_ids:
                yield Item(locator, raw, None, skip_reason="duplicate of text_messages entry"), True
                continue
            yield message_item(raw, post_id, channel, map_name, locator), True
        raise ijson.IncompleteJSONError("unexpected end of input")


def _chat_id(key: str) -> int | None:
    number = exact_int(key)
    return None if number is None else norm.bare_chat_id(number)


def _not_tgdataset(source: SourceRef, seen: int) -> InputError:
    if not seen:
        return InputError(f"{source.display} is empty", hint="check that the download / unzip completed")
    return InputError(
        f"{source.display} is not a TGDataset file (a JSON object of channels with `text_messages` maps)",
        hint="pass one of the TGDataset JSON files, or pass --from with the right format",
    )


# --- one message ---------------------------------------------------------------------------


def message_item(raw: Any, post_id: int | None, channel: Channel, map_name: str, locator: str) -> Item:
    if not isinstance(raw, dict):
        return Item(locator, raw, None, [f"item: expected a message object, got {type(raw).__name__}"])
    if post_id is None:
        return Item(locator, raw, None, [f"id: the message key is not a message id: {locator.rsplit('/', 1)[-1]!r}"])
    problems: list[str] = []
    rec = norm.empty_record()
    rec["post_id"] = post_id
    rec["chat_id"] = channel.chat_id
    rec["chat_username"] = norm.clean_username(channel.username) if isinstance(channel.username, str) else None
    rec["chat_title"] = channel.title if isinstance(channel.title, str) and channel.title else None
    # TGDataset holds Telegram "channels", i.e. broadcast channels or supergroups: chat_type stays unknown.
    rec["url"] = norm.post_url(rec["chat_username"], channel.chat_id, "channel", post_id)
    if rec["chat_id"] is None and rec["chat_username"] is None:
        problems.append("chat_id: the channel key is not an id and the channel has no username")
    rec["date"] = _date(raw.get("date"), "date", problems, required=True)
    author = exact_int(raw.get("author"))
    if author is not None and author == channel.chat_id:
        rec["sender_id"] = f"channel{author}"  # other authors are untyped ids (user or channel)
    if raw.get("is_forwarded"):
        rec["forward_date"] = _date(raw.get("forwarded_message_date"), "forwarded_message_date", problems)
    if map_name == TEXT_MAP:
        _fill_text(rec, raw.get("message"), problems)
    else:
        _fill_media(rec, raw)
    return Item(locator, raw, rec, problems)


def _date(value: Any, name: str, problems: list[str], required: bool = False) -> str | None:
    if value is None:
        if required:
            problems.append(f"{name}: missing")
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return norm.utc_from_epoch(value)
        if isinstance(value, str):
            return norm.utc_from_epoch(value.strip())
    except (ValueError, OverflowError):
        pass
    problems.append(f"{name}: not a Unix time: {value!r}")
    return None


def _fill_text(rec: dict, message: Any, problems: list[str]) -> None:
    if message is not None and not isinstance(message, str):
        problems.append(f"message: expected a string, got {type(message).__name__}")
        return
    text, entities = unmarkdown(message or "")
    rec["text"] = text
    rec["entities"] = entities
    # The markdown carries formatting only (no mention / hashtag entities): find those in the text.
    rec["hashtags"] = norm.extract_hashtags(text)
    rec["mentions"] = norm.extract_mentions(text)
    rec["urls"] = norm.extract_urls(text, entities)


def unmarkdown(message: str) -> tuple[str, list[dict]]:
    """Telethon markdown (what `Message.text` renders) -> plain text + entities (code points).

    Mirrors `telethon.extensions.markdown.parse`: `**`, `__`, `~~`, `` ` ``, ```` ``` ```` pairs
    and `[label](url)` links, no nesting inside code. Like Telethon, it cannot tell a literal
    `**` or `__` in the original text from formatting (the renderer does not escape them).
    """
    found: list[dict] = []
    i = 0
    while i < len(message):
        special = SPECIAL_RE.search(message, i)  # markup starts only at these characters
        if special is None:
            break
        i = special.start()
        match = DELIMITER_RE.match(message, i)
        if match:
            delim = match.group()
            end = message.find(delim, i + len(delim) + 1)
            if end != -1:
                message = message[:i] + message[i + len(delim) : end] + message[end + len(delim) :]
                _shrink(found, i, len(delim), both_sides=True)
                kind = MARKDOWN_DELIMITERS[delim]
                found.append(norm.make_entity(kind, i, end - i - len(delim)))
                if kind in ("code", "pre"):
                    i = end - len(delim)
                continue
        else:
            link = LINK_RE.match(message, i)
            if link:
                label = link.group(1)
                message = message[:i] + label + message[link.end() :]
                _shrink(found, i, link.end() - i - len(label), both_sides=False)
                found.append(_link_entity(i, len(label), link.group(2)))
                i += len(label)
                continue
        i += 1
    return message, sorted(found, key=lambda e: e["offset"])


def _shrink(found: list[dict], at: int, size: int, both_sides: bool) -> None:
    """Entities enclosing position `at` lose the markup removed there."""
    for entity in found:
        if entity["offset"] + entity["length"] > at:
            enclosed = entity["offset"] <= at
            entity["length"] -= size * 2 if (both_sides and enclosed) else size


def _link_entity(offset: int, length: int, url: str) -> dict:
    mention = MENTION_LINK_RE.match(url)
    if mention:
        return norm.make_entity("text_mention", offset, length, user_id=int(mention.group(1)))
    emoji = EMOJI_LINK_RE.match(url)
    if emoji:
        return norm.make_entity("custom_emoji", offset, length, custom_emoji_id=emoji.group(1))
    return norm.make_entity("text_link", offset, length, url=url)


def file_id_type(media_id: Any) -> str | None:
    """Media kind from the type byte that starts a Bot-API-style file_id."""
    if not isinstance(media_id, str) or len(media_id) < 4:
        return None
    try:
        head = base64.urlsafe_b64decode(media_id[:4])
    except (binascii.Error, ValueError):
        return None
    return FILE_ID_TYPES.get(head[0])


def _fill_media(rec: dict, raw: dict) -> None:
    extension = raw.get("extension") if isinstance(raw.get("extension"), str) else ""
    kind = file_id_type(raw.get("media_id")) or EXTENSION_TYPES.get(extension.lower(), "document")
    title = raw.get("title")
    rec["media_type"] = kind
    rec["media"] = {
        "file_name": title if isinstance(title, str) and title else None,
        "mime_type": None,
        "file_size": None,
        "width": None,
        "height": None,
        "duration_s": None,
        "sticker_emoji": None,
        "available": None,
    }


CONVERTER = TgDatasetConverter()
