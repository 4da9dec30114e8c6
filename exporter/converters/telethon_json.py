"""`telethon-json`: Telethon `Message` / `MessageService` dicts (and Pushshift-style ndjson).

Accepts JSON lines (one dict per line, read line by line with orjson), a JSON array, or a
stream of pretty-printed JSON values (both via ijson events), one message held at a time.
Traps handled (formats.md §3, §8.13–14): three date encodings (`to_json` ISO with `T`,
`default=str` with a space, epoch numbers), bytes as base64 or repr, the pre-2020 schema
(`to_id`, integer `from_id`, `reply_to_msg_id`, `fwd_from.channel_id`), string reactions of
2022, UTF-16 entity offsets, ids above 2^53 (never through float), Pushshift rows that wrap
the message under `data`.
"""

from __future__ import annotations

import ast
import base64
import binascii
import io
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

import ijson
import orjson

from .. import normalize as norm
from ..errors import InputError
from ..jsonlines import (
    BOM,
    WHITESPACE,
    PeekReader,
    broken_json,
    exact_int,
    iter_lines,
    parse_line,
    raw_fragment,
    require_recognized,
)
from ..jsonstream import build_value
from .base import ConvertOptions, Item, SourceRef

TL_MESSAGE_RE = re.compile(rb'"_"\s*:\s*"(?:Message|MessageService|MessageEmpty)"')
MESSAGE_TYPES = ("Message", "MessageService")
TZ_HINT = "pass --tz with the time zone of the machine that wrote the dump, e.g. --tz UTC"
PEER_KEYS = (("channel_id", "channel"), ("chat_id", "chat"), ("user_id", "user"))
PEER_TYPES = {"PeerChannel": "channel", "PeerChat": "chat", "PeerUser": "user"}
CHAT_TYPES = {"chat": "group", "user": "private"}


class TelethonJsonConverter:
    name = "telethon-json"
    description = "Telethon Message dicts (to_json / to_dict dumps, JSON lines or array; Pushshift ndjson)"

    def sniff(self, head: bytes, name: str) -> float:
        text = head.lstrip(BOM + WHITESPACE)
        if text[:1] not in (b"{", b"[") or not TL_MESSAGE_RE.search(text):
            return 0.0
        return 0.9

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        reader = PeekReader(stream)
        first = reader.peek_first_line().rstrip()
        if first.startswith(b"["):
            pairs = self._json_values(reader, source, options, in_array=True)
        elif first.endswith((b"{", b"[", b",")):  # pretty-printed JSON, not one object per line
            pairs = self._json_values(reader, source, options, in_array=False)
        else:
            pairs = self._json_lines(reader, options)
        yield from require_recognized(pairs, lambda seen: _not_telethon(source, seen))

    def iter_line_range(
        self, stream: BinaryIO, source: SourceRef, options: ConvertOptions, first_line: int
    ) -> Iterator[Item]:
        """The items of a JSON-lines file's lines from `first_line` on (a range, `linesplit`).

        Only for files whose first line is a Telethon message (`splits_in_lines`): the format
        gate then opens at the first item, so the later ranges need none.
        """
        pairs = self._json_lines(stream, options, first_line)
        if first_line == 1:
            yield from require_recognized(pairs, lambda seen: _not_telethon(source, seen))
        else:
            yield from (item for item, _ in pairs)

    def _json_lines(
        self, stream: BinaryIO, options: ConvertOptions, first_line: int = 1
    ) -> Iterator[tuple[Item, bool]]:
        for number, line in iter_lines(stream, first_line=first_line):
            locator = f"line {number}"
            obj, problem = parse_line(line)
            if problem:
                yield Item(locator, raw_fragment(line), None, [f"json: {problem}"]), False
                continue
            yield message_item(obj, locator, options)

    def _json_values(
        self, stream: BinaryIO, source: SourceRef, options: ConvertOptions, in_array: bool
    ) -> Iterator[tuple[Item, bool]]:
        events = ijson.basic_parse(stream, use_float=True, multiple_values=not in_array, buf_size=1 << 16)
        index = 0
        try:
            if in_array and next(events, None) != ("start_array", None):
                raise ijson.JSONError("the document is not a JSON array")
            for event in events:
                if event[0] == "end_array" and in_array:
                    return
                yield message_item(build_value(events, event), f"/{index}", options)
                index += 1
            if in_array:
                raise ijson.IncompleteJSONError("unexpected end of input")
        except ijson.JSONError as exc:
            raise broken_json(source, exc, "re-run the dump, or check that the copy of the file completed") from None


def splits_in_lines(head: bytes) -> bool:
    """Is a file that starts with `head` read as JSON lines, its first line a Telethon object?

    Then every line is an item of its own, with no state carried from line to line, and the
    file can be cut after any new line (`linesplit`). `iter_items` picks JSON lines from the
    same first line.
    """
    peeked = PeekReader(io.BytesIO(head)).peek_first_line().rstrip()  # what iter_items decides on
    if peeked.startswith(b"[") or peeked.endswith((b"{", b"[", b",")):
        return False
    first, newline, _ = head.lstrip(BOM + WHITESPACE).partition(b"\n")
    if not newline:
        return False
    obj, problem = parse_line(first)
    return problem is None and bool(tl_name(unwrap(obj)[0]))


def _not_telethon(source: SourceRef, seen: int) -> InputError:
    if not seen:
        return InputError(f"{source.display} is empty", hint="check that the dump was written completely")
    return InputError(
        f'{source.display} holds no Telethon message (no JSON object with "_": "Message")',
        hint="dump messages with msg.to_json() or json.dumps(msg.to_dict(), default=str), "
        "or pass --from with the right format",
    )


# --- scalar helpers ------------------------------------------------------------------------


def count(value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    number = exact_int(value)
    return number if number is None or number >= 0 else None


def tl_name(value: Any) -> str:
    name = value.get("_") if isinstance(value, dict) else None
    return name if isinstance(name, str) else ""


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def bytes_key(value: Any) -> bytes | str | None:
    """Bytes serialized as base64 (`to_json`) or as a repr (`default=str`) -> bytes."""
    if not isinstance(value, str):
        return None
    try:
        if value.startswith(("b'", 'b"')):
            decoded = ast.literal_eval(value)
            return decoded if isinstance(decoded, bytes) else value
        return base64.b64decode(value, validate=True)
    except (ValueError, SyntaxError, binascii.Error):
        return value


def parse_date(value: Any, field: str, options: ConvertOptions, problems: list[str]) -> str | None:
    """A Telethon date in any of its serializations -> RFC 3339 UTC."""
    if value is None:
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return norm.utc_from_epoch(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", value):
            return norm.utc_from_epoch(value.strip())
        if isinstance(value, str):
            return _iso_date(value, field, options)
    except (ValueError, OverflowError):
        pass
    problems.append(f"{field}: not a date: {value!r}")
    return None


def _iso_date(value: str, field: str, options: ConvertOptions) -> str:
    try:
        return norm.utc_from_iso(value, options.tz)
    except ValueError:
        if options.tz is None and _is_naive_iso(value):
            raise InputError(
                f"this dump has dates without a time zone (e.g. {field} = {value!r})", hint=TZ_HINT
            ) from None
        raise


def _is_naive_iso(value: str) -> bool:
    try:
        return datetime.fromisoformat(value.strip()).tzinfo is None
    except ValueError:
        return False


# --- one message ---------------------------------------------------------------------------


def message_item(obj: Any, locator: str, options: ConvertOptions) -> tuple[Item, bool]:
    """One parsed JSON value -> (Item, recognised as Telethon?)."""
    msg, wrapper = unwrap(obj)
    kind = tl_name(msg)
    if kind in MESSAGE_TYPES:
        return build_item(msg, wrapper, locator, options), True
    if kind == "MessageEmpty":
        return Item(locator, obj, None, skip_reason="MessageEmpty (deleted or inaccessible message)"), True
    if kind:
        return Item(locator, obj, None, skip_reason=f"not a message ({kind})"), True
    what = type(obj).__name__ if not isinstance(obj, dict) else "an object without a `_` type"
    return Item(locator, obj, None, [f"item: expected a Telethon Message dict, got {what}"]), False


def unwrap(obj: Any) -> tuple[Any, dict | None]:
    """Pushshift database rows keep the message (or its to_json() string) under `data`."""
    if not isinstance(obj, dict) or "_" in obj or "data" not in obj:
        return obj, None
    data = obj["data"]
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return obj, None
    return (data, obj) if isinstance(data, dict) and "_" in data else (obj, None)


def build_item(msg: dict, wrapper: dict | None, locator: str, options: ConvertOptions) -> Item:
    problems: list[str] = []
    rec = norm.empty_record()
    rec["post_id"] = exact_int(msg.get("id"))
    if rec["post_id"] is None:
        problems.append(f"id: expected an integer message id, got {msg.get('id')!r}")
    rec["kind"] = "service" if msg["_"] == "MessageService" else "message"
    _fill_chat(rec, msg, wrapper, problems)
    rec["date"] = parse_date(msg.get("date"), "date", options, problems)
    if msg.get("date") is None:
        problems.append("date: missing")
    rec["edit_date"] = parse_date(msg.get("edit_date"), "edit_date", options, problems)
    if "edit_date" in msg:
        rec["is_edited"] = rec["edit_date"] is not None and not msg.get("edit_hide")
    _fill_sender(rec, msg)
    _fill_text(rec, msg, problems)
    _fill_reply(rec, msg)
    _fill_forward(rec, msg, options, problems)
    _fill_counts(rec, msg)
    _fill_reactions(rec, msg.get("reactions"))
    if rec["kind"] == "service":
        _fill_service(rec, msg.get("action"))
    else:
        _fill_media(rec, msg.get("media"))
    rec["author_signature"] = _str(msg.get("post_author"))
    rec["grouped_id"] = exact_int(msg.get("grouped_id"))
    return Item(locator, msg if wrapper is None else wrapper, rec, problems)


def peer(value: Any) -> tuple[str | None, int | None]:
    """A Peer dict (or a bare int user id of the pre-2020 schema) -> (kind, bare id)."""
    if isinstance(value, dict):
        kind = PEER_TYPES.get(tl_name(value))
        for key, key_kind in PEER_KEYS:
            if key in value and (kind is None or kind == key_kind):
                number = exact_int(value[key])
                return (key_kind, number) if number is not None else (None, None)
        return None, None
    number = exact_int(value)
    return ("user", number) if number is not None else (None, None)


def _fill_chat(rec: dict, msg: dict, wrapper: dict | None, problems: list[str]) -> None:
    legacy = "to_id" in msg and "peer_id" not in msg
    kind, number = peer(msg.get("peer_id", msg.get("to_id")))
    if legacy and kind == "user" and not msg.get("out"):
        # Pre-2020 private messages: `to_id` is the recipient, i.e. the account itself when incoming.
        sender_kind, sender = peer(msg.get("from_id"))
        if sender_kind == "user":
            number = sender
    if number is None and wrapper is not None:
        kind, number = "channel", exact_int(wrapper.get("channel_id"))
    if number is None:
        problems.append("peer_id: no chat id (neither peer_id nor to_id holds a Peer)")
        return
    rec["chat_id"] = norm.bare_chat_id(number) if number < 0 else number
    if kind == "channel":
        post = msg.get("post")
        rec["chat_type"] = None if post is None else ("channel" if post else "supergroup")
    else:
        rec["chat_type"] = CHAT_TYPES.get(kind or "")
    if rec["post_id"] is not None:
        url_type = rec["chat_type"] or ("channel" if kind == "channel" else None)
        rec["url"] = norm.post_url(None, rec["chat_id"], url_type, rec["post_id"])


def _fill_sender(rec: dict, msg: dict) -> None:
    kind, number = peer(msg.get("from_id"))
    if number is None and msg.get("post") and rec["chat_id"] is not None:
        kind, number = "channel", rec["chat_id"]  # as Telethon's Message.sender_id does
    rec["sender_id"] = f"{kind}{number}" if number is not None and number >= 0 else None


def _fill_text(rec: dict, msg: dict, problems: list[str]) -> None:
    text = _str(msg.get("message")) or ""
    entities = [e for e in (_entity(raw, text, problems) for raw in _list(msg.get("entities"))) if e]
    rec["text"] = text
    rec["entities"] = entities
    rec["hashtags"] = norm.extract_hashtags(text, entities)
    rec["mentions"] = norm.extract_mentions(text, entities)
    rec["urls"] = norm.extract_urls(text, entities)


def _entity(raw: Any, text: str, problems: list[str]) -> dict | None:
    offset, length = (raw.get("offset"), raw.get("length")) if isinstance(raw, dict) else (None, None)
    if exact_int(offset) is None or exact_int(length) is None:
        problems.append(f"entities: malformed entity {raw!r}")
        return None
    name = tl_name(raw)
    etype = "text_mention" if name == "InputMessageEntityMentionName" else norm.entity_type(name)
    start, size = norm.utf16_to_codepoints(text, int(offset), int(length))
    url = user_id = emoji_id = None
    if etype == "text_link":
        url = _str(raw.get("url"))
    elif etype == "url":
        url = norm.absolute_url(text[start : start + size])
    elif etype == "text_mention":
        user = raw.get("user_id")
        user_id = exact_int(user.get("user_id") if isinstance(user, dict) else user)
    elif etype == "custom_emoji":
        emoji_id = norm.numeric_id(raw.get("document_id"))
    return norm.make_entity(etype, start, size, url, user_id, emoji_id)


def _fill_reply(rec: dict, msg: dict) -> None:
    header = msg.get("reply_to")
    if not isinstance(header, dict):
        rec["reply_to_post_id"] = exact_int(msg.get("reply_to_msg_id"))  # pre-2020 schema
        return
    if tl_name(header) not in ("MessageReplyHeader", ""):
        return  # e.g. MessageReplyStoryHeader: a reply to a story, not to a post
    target = exact_int(header.get("reply_to_msg_id"))
    top = exact_int(header.get("reply_to_top_id"))
    other_chat = peer(header.get("reply_to_peer_id"))[1]
    if header.get("forum_topic"):
        rec["topic_id"] = top if top is not None else target
        target = target if top is not None else None  # without a top id the target is the topic itself
    if other_chat is None or other_chat == rec["chat_id"]:
        rec["reply_to_post_id"] = target


def _fill_forward(rec: dict, msg: dict, options: ConvertOptions, problems: list[str]) -> None:
    fwd = msg.get("fwd_from")
    if not isinstance(fwd, dict):
        return
    kind, number = peer(fwd.get("from_id"))
    if exact_int(fwd.get("channel_id")) is not None:  # pre-2020 schema
        kind, number = "channel", exact_int(fwd.get("channel_id"))
    if kind in ("channel", "chat") and number is not None:
        rec["forward_from_chat_id"] = number
    rec["forward_from_name"] = _str(fwd.get("from_name"))
    rec["forward_from_post_id"] = exact_int(fwd.get("channel_post"))
    rec["forward_date"] = parse_date(fwd.get("date"), "fwd_from.date", options, problems)


def _fill_counts(rec: dict, msg: dict) -> None:
    rec["views"] = count(msg.get("views"))
    rec["forwards"] = count(msg.get("forwards"))
    replies = msg.get("replies")
    rec["replies"] = count(replies.get("replies")) if isinstance(replies, dict) else count(replies)


def _fill_reactions(rec: dict, raw: Any) -> None:
    if not isinstance(raw, dict):
        return
    reactions = []
    for result in _list(raw.get("results")):
        number = count(_dict(result).get("count"))
        if number is None:
            continue
        reaction = result.get("reaction")
        name = tl_name(reaction)
        if isinstance(reaction, str):  # layers 136-144 (Telethon 1.25, 2022): a bare emoji string
            reactions.append(norm.make_reaction("emoji", number, emoji=reaction))
        elif name == "ReactionEmoji" and isinstance(reaction.get("emoticon"), str):
            reactions.append(norm.make_reaction("emoji", number, emoji=reaction["emoticon"]))
        elif name == "ReactionCustomEmoji":
            emoji_id = norm.numeric_id(reaction.get("document_id"))
            reactions.append(norm.make_reaction("custom_emoji", number, custom_emoji_id=emoji_id))
        elif name == "ReactionPaid":
            reactions.append(norm.make_reaction("paid", number))
    rec["reactions"] = reactions
    rec["reactions_total"] = norm.reactions_total(reactions, True)


def service_action(name: str) -> str | None:
    """`MessageActionPinMessage` -> `pin_message`."""
    if not name.startswith("MessageAction") or len(name) == len("MessageAction"):
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name[len("MessageAction") :]).lower()


def _fill_service(rec: dict, action: Any) -> None:
    rec["service_action"] = service_action(tl_name(action)) or "unknown"
    if tl_name(action) == "MessageActionTopicCreate":
        rec["topic_id"] = rec["post_id"]


# --- media -----------------------------------------------------------------------------------

GEO_MEDIA = ("MessageMediaGeo", "MessageMediaGeoLive", "MessageMediaVenue")
DOCUMENT_KINDS = (  # (attribute class, flag that must be true or None, media_type), first match wins
    ("DocumentAttributeSticker", None, "sticker"),
    ("DocumentAttributeVideo", "round_message", "video_note"),
    ("DocumentAttributeAnimated", None, "animation"),
    ("DocumentAttributeAudio", "voice", "voice"),
    ("DocumentAttributeAudio", None, "audio"),
    ("DocumentAttributeVideo", None, "video"),
)


def _fill_media(rec: dict, media: Any) -> None:
    name = tl_name(media)
    if not name or name == "MessageMediaEmpty":
        return
    if name == "MessageMediaPhoto":
        rec["media_type"], rec["media"] = "photo", _photo(media.get("photo"))
    elif name == "MessageMediaDocument":
        rec["media_type"], rec["media"] = _document(media)
    elif name == "MessageMediaPoll":
        rec["media_type"], rec["poll"] = "poll", _poll(media.get("poll"), media.get("results"))
    elif name == "MessageMediaWebPage":
        rec["media_type"], rec["link_preview"] = "webpage", _webpage(media.get("webpage"))
    elif name in GEO_MEDIA:
        rec["media_type"] = "location"
    elif name == "MessageMediaContact":
        rec["media_type"] = "contact"
    else:
        rec["media_type"] = "other"


def _media_struct(**values: Any) -> dict:
    media = dict.fromkeys(("file_name", "mime_type", "file_size", "width", "height", "duration_s", "sticker_emoji"))
    media.update(values)
    media["available"] = None  # Telethon dumps never say whether the file was downloaded
    return media


def _photo(photo: Any) -> dict:
    """Dimensions and size of the largest size of a Photo."""
    sizes = [s for s in _list(_dict(photo).get("sizes")) if count(_dict(s).get("w")) and count(_dict(s).get("h"))]
    best = max(sizes, key=lambda s: count(s["w"]) * count(s["h"]), default={})
    byte_sizes = [n for n in map(count, _list(best.get("sizes"))) if n is not None]
    file_size = count(best.get("size")) if "size" in best else max(byte_sizes, default=None)
    return _media_struct(width=count(best.get("w")), height=count(best.get("h")), file_size=file_size)


def _document(media: dict) -> tuple[str, dict]:
    document = _dict(media.get("document"))
    attributes = {tl_name(a): a for a in _list(document.get("attributes")) if tl_name(a)}
    kind = next(
        (
            kind
            for name, flag, kind in DOCUMENT_KINDS
            if name in attributes and (not flag or attributes[name].get(flag))
        ),
        "document",
    )
    if kind in ("document", "video") and media.get("round") is True:
        kind = "video_note"
    if kind in ("document", "audio") and media.get("voice") is True:
        kind = "voice"
    dims = attributes.get("DocumentAttributeVideo") or attributes.get("DocumentAttributeImageSize") or {}
    timed = attributes.get("DocumentAttributeVideo") or attributes.get("DocumentAttributeAudio") or {}
    duration = timed.get("duration")
    alt = _str(attributes.get("DocumentAttributeSticker", {}).get("alt"))
    return kind, _media_struct(
        file_name=_str(attributes.get("DocumentAttributeFilename", {}).get("file_name")),
        mime_type=_str(document.get("mime_type")),
        file_size=count(document.get("size")),
        width=count(dims.get("w")),
        height=count(dims.get("h")),
        duration_s=count(round(duration)) if isinstance(duration, (int, float)) else None,
        sticker_emoji=alt or None,
    )


def _tl_text(value: Any) -> str:
    """A plain string, or `TextWithEntities` (polls since layer 178)."""
    return _str(value.get("text") if isinstance(value, dict) else value) or ""


def _poll(poll: Any, results: Any) -> dict:
    poll, results = _dict(poll), _dict(results)
    voters = {bytes_key(_dict(r).get("option")): count(_dict(r).get("voters")) for r in _list(results.get("results"))}
    answers = [a for a in _list(poll.get("answers")) if isinstance(a, dict)]
    return {
        "question": _tl_text(poll.get("question")),
        "answers": [
            {"text": _tl_text(a.get("text")), "voters": voters.get(bytes_key(a.get("option")))} for a in answers
        ],
        "total_voters": count(results.get("total_voters")),
        "closed": poll.get("closed") if isinstance(poll.get("closed"), bool) else None,
        "quiz": poll.get("quiz") if isinstance(poll.get("quiz"), bool) else None,
    }


def _webpage(page: Any) -> dict | None:
    page = _dict(page)
    if _str(page.get("url")) is None:
        return None
    return {key: _str(page.get(key)) for key in ("url", "site_name", "title", "description")}


CONVERTER = TelethonJsonConverter()
