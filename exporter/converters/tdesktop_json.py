"""`tdesktop-json`: Telegram Desktop "Export chat history" / "Export Telegram data" JSON.

Streams `result.json` with ijson (never loads the document): the single-chat shape
(root = chat with `messages`) and the full-account shape (`chats.list[]`,
`left_chats.list[]`). Traps handled (formats.md §1, §8): `\\xHH` escapes and a leading BOM,
`text` as string or parts, code-point entity offsets, `date_unixtime` vs local `date` (needs
`--tz`), three `from_id` eras and shifted chat ids (the era is learnt once per file), omitted
keys, negative ids, media detected by key presence, file placeholders, custom-emoji paths,
service messages (their target message, e.g. the pinned one, becomes `reply_to_post_id`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import ijson

from .. import normalize as norm
from ..errors import InputError
from ..jsonstream import EscapeFixingReader, basic_events, build_value, next_event, skip_value
from .base import ConvertOptions, Item, SourceRef

PLACEHOLDER_PREFIXES = ("(File not included", "(File exceeds maximum size", "(File unavailable")
CHAT_TYPES = {
    "personal_chat": "private",
    "bot_chat": "bot",
    "saved_messages": "saved",
    "replies": "unknown",
    "verification_codes": "unknown",
    "private_group": "group",
    "private_supergroup": "supergroup",
    "public_supergroup": "supergroup",
    "private_channel": "channel",
    "public_channel": "channel",
}
MEDIA_TYPES = {
    "sticker": "sticker",
    "video_message": "video_note",
    "voice_message": "voice",
    "animation": "animation",
    "video_file": "video",
    "audio_file": "audio",
}
USER_SHIFT, CHAT_SHIFT, SHIFT_END = 1 << 32, 1 << 33, 1 << 34
SECTIONS = ("chats", "left_chats")
# Root keys of a full-account export (formats.md §1.2).
ACCOUNT_KEYS = frozenset(
    [
        "about",
        "personal_information",
        "profile_pictures",
        "stories",
        "contacts",
        "frequent_contacts",
        "sessions",
        "web_sessions",
        "other_data",
    ]
)
# Service actions whose target message tdesktop writes (via its pushReplyToMsgId) under another key.
SERVICE_REPLY_KEYS = {
    "pin_message": "message_id",
    "set_chat_wallpaper": "message_id",
    "set_same_chat_wallpaper": "message_id",
    "score_in_game": "game_message_id",
    "send_payment": "invoice_message_id",
}
# Payloads with no `media_type` equivalent (formats.md §1.6).
OTHER_MEDIA_KEYS = (
    "game_title",
    "invoice_information",
    "todo_list",
    "giveaway_information",
    "giveaway_results",
    "paid_stars_amount",
)
JSON_KINDS = {"start_array": "an array", "string": "a string", "number": "a number", "boolean": "a boolean"}
NOT_EXPORT_HINT = "export with Telegram Desktop → Export chat history → JSON, or pass --from with the right format"
TZ_HINT = "pass --tz with the time zone of the computer that made the export, e.g. --tz Europe/Berlin"


@dataclass
class Era:
    """Which id encoding the file uses, learnt from its messages (one file = one tdesktop version).

    `legacy` is True before v2.7.2 (integer `from_id`, shifted chat `id`), False from then on,
    None until a message shows it.
    """

    legacy: bool | None = None

    def observe(self, msg: dict[str, Any]) -> bool | None:
        seen = _legacy_era(msg)
        if seen is not None:
            self.legacy = seen
        return self.legacy


@dataclass
class Chat:
    """What the export says about the chat that holds the messages being read."""

    pointer: str
    name: Any = None
    raw_type: Any = None
    raw_id: Any = None
    era: Era = field(default_factory=Era)

    @property
    def chat_type(self) -> str | None:
        if self.raw_type is None and self.raw_id is None and self.name is None:
            return None
        return CHAT_TYPES.get(self.raw_type, "unknown") if isinstance(self.raw_type, str) else "unknown"

    def chat_id(self, legacy: bool | None) -> int | None:
        """Bare chat id. Exports before v2.7.2 wrote tdesktop's shifted PeerId (formats.md §1.2)."""
        value = self.raw_id
        if not _is_int(value):
            return None
        group_like = self.chat_type in ("channel", "supergroup", "group")
        if legacy or (legacy is None and group_like):
            if USER_SHIFT <= value < CHAT_SHIFT and legacy:
                return value - USER_SHIFT
            if CHAT_SHIFT <= value < SHIFT_END:
                return value - CHAT_SHIFT
        return value


class TdesktopJsonConverter:
    name = "tdesktop-json"
    description = "Telegram Desktop JSON export (result.json): one chat or the whole account"

    def sniff(self, head: bytes, name: str) -> float:
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not text.startswith(b"{"):
            return 0.0
        if re.search(rb'"messages"\s*:\s*\[', text) and re.search(rb'"(name|type|id)"\s*:', text):
            return 0.95
        if re.search(rb'"about"\s*:', text) and re.search(rb'"(chats|personal_information|left_chats)"\s*:', text):
            return 0.95
        return 0.0

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        walker = _Walker(source, options)
        try:
            yield from walker.walk_root(basic_events(EscapeFixingReader(stream)))
        except ijson.JSONError as exc:  # includes IncompleteJSONError and jsonstream.NestingError
            raise _broken(source, exc) from None
        except LocalDatesError as exc:
            raise InputError(f"{source.display}: {exc.message}", hint=exc.hint) from None
        if not walker.saw_chats:
            raise walker.not_an_export()


class _Walker:
    """Walks one result.json: the root chat (single-chat export) or the chat sections."""

    def __init__(self, source: SourceRef, options: ConvertOptions) -> None:
        self.source = source
        self.options = options
        self.era = Era()
        self.saw_chats = False  # a `messages` array, or a `chats` / `left_chats` list (maybe empty)
        self.saw_account = False  # root keys that only a full-account export has

    def not_an_export(self) -> InputError:
        if self.saw_account:
            return InputError(
                f"{self.source.display} is a Telegram Desktop account export without any chats",
                hint="in Telegram Desktop → Settings → Advanced → Export Telegram data, tick the chats to export",
            )
        return InputError(
            f"{self.source.display} is JSON but not a Telegram Desktop export (no `messages` and no `chats.list`)",
            hint=NOT_EXPORT_HINT,
        )

    def walk_root(self, events: Iterator) -> Iterator[Item]:
        first = next_event(events)
        if first[0] != "start_map":
            raise InputError(
                f"{self.source.display} is JSON but not a Telegram Desktop export "
                f"(the document is {JSON_KINDS.get(first[0], 'null')}, not an object)",
                hint=NOT_EXPORT_HINT,
            )
        yield from self._walk_chat(events, Chat(pointer="", era=self.era), root=True)

    def _walk_chat(self, events: Iterator, chat: Chat, root: bool = False) -> Iterator[Item]:
        """Walk one chat object (or the root) up to and including its `end_map`."""
        for kind, key in events:
            if kind == "end_map":
                return
            first = next_event(events)
            if key == "messages" and first[0] == "start_array":
                self.saw_chats = True
                yield from self._walk_messages(events, chat)
            elif root and key in SECTIONS and first[0] == "start_map":
                yield from self._walk_section(events, key)
            elif key in ("name", "type", "id"):
                value = build_value(events, first)
                setattr(chat, {"name": "name", "type": "raw_type", "id": "raw_id"}[key], value)
            else:
                self.saw_account = self.saw_account or (root and key in ACCOUNT_KEYS)
                skip_value(events, first)
        raise ijson.IncompleteJSONError("unexpected end of input")

    def _walk_section(self, events: Iterator, section: str) -> Iterator[Item]:
        for kind, key in events:
            if kind == "end_map":
                return
            first = next_event(events)
            if key != "list" or first[0] != "start_array":
                skip_value(events, first)
                continue
            self.saw_chats = True
            for index, event in enumerate(events):
                if event[0] == "end_array":
                    break
                if event[0] != "start_map":
                    skip_value(events, event)
                else:
                    chat = Chat(pointer=f"/{section}/list/{index}", era=self.era)
                    yield from self._walk_chat(events, chat)
        raise ijson.IncompleteJSONError("unexpected end of input")

    def _walk_messages(self, events: Iterator, chat: Chat) -> Iterator[Item]:
        for index, event in enumerate(events):
            if event[0] == "end_array":
                return
            raw = build_value(events, event)
            yield message_item(raw, chat, f"{chat.pointer}/messages/{index}", self.options)
        raise ijson.IncompleteJSONError("unexpected end of input")


def _broken(source: SourceRef, exc: Exception) -> InputError:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    detail = text.strip().splitlines()[0].strip() if text.strip() else type(exc).__name__
    return InputError(
        f"{source.display} is not valid JSON ({detail}); the file looks truncated or damaged",
        hint="re-export the chat, or check that the download/copy of result.json completed",
    )


# --- one message -------------------------------------------------------------------------


def message_item(msg: Any, chat: Chat, locator: str, options: ConvertOptions) -> Item:
    """Turn one tdesktop message object into an Item (record or problems)."""
    if not isinstance(msg, dict):
        return Item(locator, msg, None, [f"message: expected a JSON object, got {type(msg).__name__}"])
    if msg.get("type") == "unsupported":
        return Item(locator, msg, None, skip_reason="unsupported message (Telegram Desktop exported no content)")
    problems: list[str] = []
    rec = norm.empty_record()
    _fill_ids(rec, msg, chat, problems)
    rec["date"] = _date(msg, "date", options, problems, required=True)
    rec["edit_date"] = _date(msg, "edited", options, problems, required=False)
    rec["is_edited"] = rec["edit_date"] is not None or "edited" in msg
    _fill_sender(rec, msg, chat)
    _fill_text(rec, msg, problems)
    if rec["kind"] == "service":
        _fill_service(rec, msg)
    rec["author_signature"] = msg.get("author")
    rec["forward_from_name"] = msg.get("forwarded_from")
    rec["reply_to_post_id"] = _reply_to(msg, rec["kind"])
    _fill_media(rec, msg)
    _fill_reactions(rec, msg)
    return Item(locator, msg, rec, problems)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fill_ids(rec: dict, msg: dict, chat: Chat, problems: list[str]) -> None:
    post_id = msg.get("id")
    if not _is_int(post_id):
        problems.append(f"id: expected an integer message id, got {post_id!r}")
    rec["post_id"] = post_id
    rec["chat_id"] = chat.chat_id(chat.era.observe(msg))
    rec["chat_title"] = chat.name if isinstance(chat.name, str) else None
    rec["chat_type"] = chat.chat_type
    if _is_int(post_id):
        rec["url"] = norm.post_url(None, rec["chat_id"], rec["chat_type"], post_id)
    kind = msg.get("type", "message")
    if kind not in ("message", "service"):
        problems.append(f"type: unknown message type {kind!r}")
    rec["kind"] = kind


def _fill_service(rec: dict, msg: dict) -> None:
    """Service messages: `action` code; the custom action has only `information_text` (§1.9)."""
    info = msg.get("information_text")
    rec["service_action"] = msg.get("action") or ("custom_action" if "information_text" in msg else None)
    if not rec["text"] and isinstance(info, str) and info:
        rec["text"] = info
        rec["hashtags"] = norm.extract_hashtags(info)
        rec["mentions"] = norm.extract_mentions(info)
        rec["urls"] = norm.extract_urls(info)


def _reply_to(msg: dict, kind: Any) -> Any:
    """Same-chat reply target; a cross-chat reply (`reply_to_peer_id`) points elsewhere -> None."""
    if "reply_to_peer_id" in msg:
        return None
    action = msg.get("action")
    if kind == "service" and isinstance(action, str) and action in SERVICE_REPLY_KEYS:
        return msg.get(SERVICE_REPLY_KEYS[action])
    return msg.get("reply_to_message_id")


def _legacy_era(msg: dict[str, Any]) -> bool | None:
    """True for exports before v2.7.2 (integer from_id), False for later ones, None unknown."""
    peer = msg.get("from_id", msg.get("actor_id"))
    if _is_int(peer):
        return True
    if isinstance(peer, str) or "date_unixtime" in msg:
        return False
    return None


class LocalDatesError(InputError):
    """The export has only local wall-clock dates and no `--tz` was given (formats.md §1.12)."""


def _date(msg: dict, key: str, options: ConvertOptions, problems: list[str], required: bool) -> str | None:
    """`<key>_unixtime` (UTC epoch string, v3.7.6+), else the local `<key>` read in `options.tz`."""
    unix = msg.get(key + "_unixtime")
    if unix is not None:
        if (isinstance(unix, str) and unix.strip().isdigit()) or _is_int(unix):
            try:
                return norm.utc_from_epoch(int(unix))
            except (OverflowError, ValueError):
                pass
        problems.append(f"{key}_unixtime: expected Unix seconds, got {unix!r}")
        return None
    local = msg.get(key)
    if local is None:
        if required:
            problems.append(f"{key}: missing (neither `{key}_unixtime` nor `{key}`)")
        return None
    if not isinstance(local, str):
        problems.append(f"{key}: expected a date string, got {local!r}")
        return None
    if options.tz is None:
        raise LocalDatesError(
            f"this export has local-time dates without a time zone (e.g. {key} = {local!r}); "
            "Telegram Desktop wrote `date_unixtime` only from v3.7.6 (June 2022)",
            hint=TZ_HINT,
        )
    try:
        return norm.utc_from_iso(local, options.tz)
    except (OverflowError, ValueError):
        problems.append(f"{key}: not an ISO date: {local!r}")
        return None


def _peer(value: Any, group_prefix: str) -> Any:
    """from_id in any era -> `user123` / `channel123` / `chat123` (other values returned as is)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value < USER_SHIFT:
            return f"user{value}"
        if value < CHAT_SHIFT:
            return f"user{value - USER_SHIFT}"
        if value < SHIFT_END:
            return f"{group_prefix}{value - CHAT_SHIFT}"
        return f"user{value}"
    return value


def _fill_sender(rec: dict, msg: dict, chat: Chat) -> None:
    name_key, id_key = ("actor", "actor_id") if msg.get("type") == "service" else ("from", "from_id")
    group_prefix = "chat" if chat.chat_type == "group" else "channel"
    rec["sender_name"] = msg.get(name_key)
    peer = msg.get(id_key)
    rec["sender_id"] = None if peer is None else _peer(peer, group_prefix)


def plain_text(field: Any) -> str:
    """Plain text of a tdesktop text field (string or list of parts)."""
    if isinstance(field, str):
        return field
    if isinstance(field, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in field if isinstance(p, (str, dict)))
    return ""


def _parts(msg: dict, problems: list[str]) -> list[Any]:
    parts = msg.get("text_entities")
    if not isinstance(parts, list):
        parts = msg.get("text", "")
    if isinstance(parts, str):
        return [parts] if parts else []
    if isinstance(parts, list):
        return parts
    problems.append(f"text: expected a string or a list of parts, got {type(parts).__name__}")
    return []


def _fill_text(rec: dict, msg: dict, problems: list[str]) -> None:
    pieces: list[str] = []
    entities: list[dict] = []
    offset = 0
    for part in _parts(msg, problems):
        if isinstance(part, str):
            text, kind = part, "plain"
        elif isinstance(part, dict) and isinstance(part.get("text", ""), str):
            text, kind = part.get("text", ""), str(part.get("type", "plain"))
        else:
            problems.append(f"text: unexpected part {part!r}")
            continue
        length = len(text)
        if kind != "plain" and length:
            entities.append(_entity(kind, part, text, offset, length))
        pieces.append(text)
        offset += length
    rec["text"] = "".join(pieces)
    rec["entities"] = entities
    rec["hashtags"] = norm.extract_hashtags(rec["text"], entities)
    rec["mentions"] = norm.extract_mentions(rec["text"], entities)
    rec["urls"] = norm.extract_urls(rec["text"], entities)


def _entity(kind: str, part: Any, text: str, offset: int, length: int) -> dict:
    etype = norm.entity_type(kind)
    url = user_id = emoji_id = None
    if etype == "text_link":
        url = part.get("href")
    elif etype == "url":
        url = norm.absolute_url(text)
    elif etype == "text_mention":
        user_id = part.get("user_id")
    elif etype == "custom_emoji":
        emoji_id = norm.numeric_id(part.get("document_id"))
    return norm.make_entity(etype, offset, length, url, user_id, emoji_id)


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIXES)


def _basename(path: Any) -> str | None:
    if not isinstance(path, str) or not path or _is_placeholder(path):
        return None
    return path.replace("\\", "/").rsplit("/", 1)[-1] or None


def _media(msg: dict, file_key: str, size_key: str) -> dict:
    path = msg.get(file_key)
    return {
        "file_name": msg.get("file_name") if file_key == "file" and "file_name" in msg else None,
        "mime_type": msg.get("mime_type"),
        "file_size": msg.get(size_key),
        "width": msg.get("width"),
        "height": msg.get("height"),
        "duration_s": msg.get("duration_seconds"),
        "sticker_emoji": msg.get("sticker_emoji"),
        "available": None if path is None else not _is_placeholder(path),
    }


def _fill_media(rec: dict, msg: dict) -> None:
    if "photo" in msg:
        rec["media_type"] = "photo"
        rec["media"] = _media(msg, "photo", "photo_file_size")
    elif "file" in msg or "media_type" in msg:
        raw_type = msg.get("media_type")
        rec["media_type"] = MEDIA_TYPES.get(raw_type, "other") if isinstance(raw_type, str) else "document"
        media = _media(msg, "file", "file_size")
        if media["file_name"] is None:
            media["file_name"] = _basename(msg.get("file"))
        rec["media"] = media
    elif isinstance(msg.get("poll"), dict):
        rec["media_type"] = "poll"
        rec["poll"] = _poll(msg["poll"])
    elif "location_information" in msg or "place_name" in msg:
        rec["media_type"] = "location"
    elif "contact_information" in msg:
        rec["media_type"] = "contact"
    elif any(key in msg for key in OTHER_MEDIA_KEYS):
        rec["media_type"] = "other"


def _poll(poll: dict) -> dict:
    answers = poll.get("answers") if isinstance(poll.get("answers"), list) else []
    return {
        "question": plain_text(poll.get("question", "")),
        "answers": [
            {"text": plain_text(a.get("text", "")), "voters": a.get("voters")} for a in answers if isinstance(a, dict)
        ],
        "total_voters": poll.get("total_voters"),
        "closed": poll.get("closed"),
        "quiz": None,
    }


def _fill_reactions(rec: dict, msg: dict) -> None:
    raw = msg.get("reactions")
    if not isinstance(raw, list):
        return
    reactions = []
    for reaction in raw:
        if not isinstance(reaction, dict) or reaction.get("type") not in ("emoji", "custom_emoji", "paid"):
            continue
        reactions.append(
            norm.make_reaction(
                reaction["type"],
                reaction.get("count"),
                emoji=reaction.get("emoji") if isinstance(reaction.get("emoji"), str) else None,
                custom_emoji_id=norm.numeric_id(reaction.get("document_id")),
            )
        )
    rec["reactions"] = reactions
    counts = [r["count"] for r in reactions]
    rec["reactions_total"] = sum(counts) if all(isinstance(c, int) for c in counts) else None


CONVERTER = TdesktopJsonConverter()
