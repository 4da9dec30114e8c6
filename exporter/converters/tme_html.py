"""`tme-html`: a saved `https://t.me/s/<channel>` web-preview page (about 20 posts).

One lxml tree per page (no network, no external entities). Traps handled (formats.md §4.2,
§8.15): `data-post` as the only reliable id, the numeric channel id from base64url `data-view`
(`c`, negated; `t` is the request time and ignored), `time[datetime]` in UTC, rounded counts
(`1.2K`, `2.72M`) with `counts_rounded`, reactions (emoji without VS16, custom `tg-emoji`,
paid stars), reply previews that reuse the text class, nested text divs, forwards with name /
username / post id, link previews, media kinds and albums, the `edited` marker (flag only),
the "Please open Telegram to view this post" fallback, and service posts.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import unquote

from lxml import etree

from .. import normalize as norm
from ..errors import InputError
from ..htmltext import (
    FORMAT_TAGS,
    Markup,
    by_class,
    classes,
    empty_media,
    finish_text,
    first_class,
    fragment,
    has_class,
    parse_duration,
    plain,
    read_html,
    rich_text,
    text_of,
)
from .base import ConvertOptions, Item, SourceRef

HINT = "save the page https://t.me/s/<channel> from a browser (HTML only), or pass --from with the right format"
DATA_POST_RE = re.compile(r"^([A-Za-z0-9_]{3,64})/(\d+)$")
TME_LINK_RE = re.compile(r"^https?://(?:www\.)?(?:t\.me|telegram\.me)/(?:s/)?([A-Za-z0-9_]+)(?:/(\d+))?/?(?:[?#].*)?$")
PRIVATE_LINK_RE = re.compile(r"^https?://(?:www\.)?t\.me/c/(\d+)/(\d+)")
SEARCH_RE = re.compile(r"^\?q=(.+)$")
SERVICE_ACTIONS = (
    (re.compile(r"^Channel created$"), "create_channel"),
    (re.compile(r"^Channel photo (updated|changed)$"), "edit_group_photo"),
    (re.compile(r"^Channel photo removed$"), "delete_group_photo"),
    (re.compile(r"^Channel (title|name) (changed|was changed) to"), "edit_group_title"),
    (re.compile(r" pinned "), "pin_message"),
    (re.compile(r"^Live stream (started|finished|scheduled)|^Video chat"), "group_call"),
)
# first match wins, in this order: (class, media_type)
MEDIA_CLASSES = (
    ("tgme_widget_message_roundvideo_player", "video_note"),
    ("tgme_widget_message_roundvideo", "video_note"),
    ("tgme_widget_message_video_player", "video"),
    ("tgme_widget_message_photo_wrap", "photo"),
    ("tgme_widget_message_voice_player", "voice"),
    ("tgme_widget_message_voice", "voice"),
    ("tgme_widget_message_sticker_wrap", "sticker"),
    ("tgme_widget_message_sticker", "sticker"),
    ("tgme_widget_message_document_wrap", "document"),
    ("tgme_widget_message_location_wrap", "location"),
    ("tgme_widget_message_poll", "poll"),
)
FILE_KINDS = {"photo", "video", "video_note", "voice", "audio", "sticker", "document", "animation"}


class TmeHtmlConverter:
    name = "tme-html"
    description = "Saved t.me/s/<channel> web-preview page (public channel posts)"

    def sniff(self, head: bytes, name: str) -> float:
        text = head.lower()
        if b"<" not in text[:1024]:
            return 0.0
        if b"tgme_widget_message" in text and b"data-post=" in text:
            return 0.95
        if b"tgme_channel_info" in text or b"tgme_channel_history" in text:
            return 0.9
        return 0.0

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        root = read_html(stream, source, "a saved t.me/s page", HINT)
        posts = [el for el in by_class(root, "tgme_widget_message") if el.get("data-post") is not None]
        if not posts and first_class(root, "tgme_channel_info") is None:
            raise InputError(
                f"{source.display} is HTML but not a t.me/s channel page (no posts with data-post)", hint=HINT
            )
        title = _channel_title(root)
        for index, post in enumerate(posts):
            yield _post_item(post, index, title)


def _channel_title(root: etree._Element) -> str | None:
    header = first_class(root, "tgme_channel_info_header_title")
    if header is not None:
        return plain(header)
    meta = root.find(".//meta[@property='og:title']")
    if meta is None:
        return None
    return (meta.get("content") or "").strip() or None


def _post_item(post: etree._Element, index: int, title: str | None) -> Item:
    data_post = (post.get("data-post") or "").strip()
    match = DATA_POST_RE.match(data_post)
    locator = f"#{data_post}" if data_post else f"post {index + 1}"
    if not match:
        return Item(locator, fragment(post), None, [f"{locator}: data-post {data_post!r} is not <username>/<id>"])
    problems: list[str] = []
    rec = norm.empty_record()
    rec["post_id"] = int(match.group(2))
    rec["chat_username"] = norm.clean_username(match.group(1))
    rec["chat_type"] = "channel"
    rec["chat_id"] = _view_chat_id(post.get("data-view"))
    rec["url"] = norm.post_url(rec["chat_username"], rec["chat_id"], "channel", rec["post_id"])
    owner = plain(first_class(post, "tgme_widget_message_owner_name"))
    rec["chat_title"] = title or owner
    rec["sender_name"] = owner
    rec["author_signature"] = plain(first_class(post, "tgme_widget_message_from_author"))
    rec["date"] = _date(post, problems)
    rec["is_edited"] = _edited(post)
    rounded = [False]
    rec["views"] = _count(plain(first_class(post, "tgme_widget_message_views")), rounded)
    text_div = _text_div(post)
    if text_div is not None:
        finish_text(rec, *rich_text(text_div, _classify))
    if has_class(post, "service_message"):
        rec["kind"] = "service"
        rec["service_action"] = next((a for p, a in SERVICE_ACTIONS if p.search(rec["text"])), None)
    _fill_forward(rec, post)
    _fill_reply(rec, post)
    _fill_media(rec, post, rounded)
    _fill_reactions(rec, post, rounded)
    rec["content_omitted"] = first_class(post, "message_media_not_supported") is not None
    rec["counts_rounded"] = rounded[0]
    return Item(locator, fragment(post), rec, problems)


def _view_chat_id(value: str | None) -> int | None:
    """`data-view` is base64url JSON whose `c` is the negated channel id."""
    if not value:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    chat = data.get("c") if isinstance(data, dict) else None
    if not isinstance(chat, int) or isinstance(chat, bool) or chat == 0:
        return None
    return norm.bare_chat_id(chat) if chat < 0 else chat


def _date(post: etree._Element, problems: list[str]) -> str | None:
    stamps = [t for t in post.iter("time") if t.get("datetime")]
    link = first_class(post, "tgme_widget_message_date")
    if link is not None:
        stamps = [t for t in link.iter("time") if t.get("datetime")] or stamps
    if not stamps:
        problems.append("date: no time[datetime] in the post footer")
        return None
    value = stamps[0].get("datetime")
    try:
        return norm.utc_from_iso(value)
    except ValueError:
        problems.append(f"date: not an ISO 8601 instant: {value!r}")
        return None


def _edited(post: etree._Element) -> bool:
    meta = first_class(post, "tgme_widget_message_meta")
    if meta is None:
        return False
    own = [meta.text or ""] + [child.tail or "" for child in meta]
    return any(re.search(r"\bedited\b", part) for part in own)


def _count(value: str | None, rounded: list[bool]) -> int | None:
    number, was_rounded = norm.parse_count(value)
    rounded[0] = rounded[0] or was_rounded
    return number


def _inside(el: etree._Element, name: str) -> bool:
    return any(has_class(parent, name) for parent in el.iterancestors())


def _text_div(post: etree._Element) -> etree._Element | None:
    """The post's own text: the innermost text div that is not part of a reply preview."""
    candidates = [
        el
        for el in by_class(post, "tgme_widget_message_text")
        if not has_class(el, "js-message_reply_text") and not _inside(el, "tgme_widget_message_reply")
    ]
    innermost = [el for el in candidates if not by_class(el, "tgme_widget_message_text")]
    return innermost[0] if innermost else None


def _classify(el: etree._Element) -> Markup:
    tag = el.tag.lower()
    names = classes(el)
    if tag == "i" and "emoji" in names:
        return Markup(action="flat")
    if tag == "tg-emoji":
        return Markup(action="flat", etype="custom_emoji", custom_emoji_id=norm.numeric_id(el.get("emoji-id")))
    if tag in ("tg-spoiler",) or "tg-spoiler" in names:
        return Markup(etype="spoiler")
    if tag == "a":
        return _classify_link(el)
    return Markup(etype=FORMAT_TAGS.get(tag))


def _classify_link(el: etree._Element) -> Markup:
    href = (el.get("href") or "").strip()
    text = text_of(el).strip()
    search = SEARCH_RE.match(href)
    if search:
        term = unquote(search.group(1))
        return Markup(etype="cashtag" if term.startswith("$") else "hashtag")
    if not href:
        return Markup()
    if href.startswith("mailto:"):
        return Markup(etype="email")
    if href.startswith("tel:"):
        return Markup(etype="phone_number")
    link = TME_LINK_RE.match(href)
    if text.startswith("@") and link and link.group(1).lower() == text[1:].lower() and not link.group(2):
        return Markup(etype="mention")
    if text == href or norm.absolute_url(text).rstrip("/") == href.rstrip("/"):
        return Markup(etype="url", url=norm.absolute_url(href))
    return Markup(etype="text_link", url=href)


def _fill_forward(rec: dict[str, Any], post: etree._Element) -> None:
    box = first_class(post, "tgme_widget_message_forwarded_from")
    if box is None:
        return
    name_el = first_class(box, "tgme_widget_message_forwarded_from_name")
    rec["forward_from_name"] = plain(name_el) if name_el is not None else None
    href = (name_el.get("href") or "") if name_el is not None else ""
    private = PRIVATE_LINK_RE.match(href)
    link = TME_LINK_RE.match(href)
    if private:
        rec["forward_from_chat_id"], rec["forward_from_post_id"] = int(private.group(1)), int(private.group(2))
    elif link:
        rec["forward_from_username"] = norm.clean_username(link.group(1))
        rec["forward_from_post_id"] = int(link.group(2)) if link.group(2) else None


def _fill_reply(rec: dict[str, Any], post: etree._Element) -> None:
    reply = first_class(post, "tgme_widget_message_reply")
    href = (reply.get("href") or "") if reply is not None else ""
    link = TME_LINK_RE.match(href)
    private = PRIVATE_LINK_RE.match(href)
    if link and link.group(2) and norm.clean_username(link.group(1)) == rec["chat_username"]:
        rec["reply_to_post_id"] = int(link.group(2))
    elif private and rec["chat_id"] is not None and int(private.group(1)) == rec["chat_id"]:
        rec["reply_to_post_id"] = int(private.group(2))


def _fill_media(rec: dict[str, Any], post: etree._Element, rounded: list[bool]) -> None:
    found = _first_media(post)
    if found is not None:
        el, kind = found
        if kind == "document" and first_class(el, "audio") is not None:
            kind = "audio"
        rec["media_type"] = kind
        if kind == "poll":
            rec["poll"] = _poll(el, post, rounded)
        elif kind in FILE_KINDS:
            rec["media"] = _media(el, kind)
    preview = first_class(post, "tgme_widget_message_link_preview")
    if preview is not None:
        rec["link_preview"] = {
            "url": preview.get("href"),
            "site_name": plain(first_class(preview, "link_preview_site_name")),
            "title": plain(first_class(preview, "link_preview_title")),
            "description": plain(first_class(preview, "link_preview_description")),
        }
        rec["media_type"] = rec["media_type"] or "webpage"


def _first_media(post: etree._Element) -> tuple[etree._Element, str] | None:
    """The first media element in document order (an album's first item), outside reply previews."""
    kinds = dict(MEDIA_CLASSES)
    for el in post.iter():
        if not isinstance(el.tag, str) or _inside(el, "tgme_widget_message_reply"):
            continue
        if _inside(el, "tgme_widget_message_link_preview"):
            continue
        names = classes(el)
        for name, kind in kinds.items():
            if name in names:
                return el, kind
    return None


def _media(el: etree._Element, kind: str) -> dict[str, Any]:
    duration = None
    for name in ("message_video_duration", "message_roundvideo_duration", "tgme_widget_message_voice_duration"):
        duration = duration or parse_duration(plain(first_class(el, name)))
    file_name = plain(first_class(el, "tgme_widget_message_document_title")) if kind == "document" else None
    return empty_media(file_name=file_name, duration_s=duration)


def _poll(el: etree._Element, post: etree._Element, rounded: list[bool]) -> dict[str, Any]:
    answers = [
        {"text": plain(first_class(option, "tgme_widget_message_poll_option_text")) or "", "voters": None}
        for option in by_class(el, "tgme_widget_message_poll_option")
    ]
    poll_type = (plain(first_class(el, "tgme_widget_message_poll_type")) or "").lower()
    voters = plain(first_class(post, "tgme_widget_message_voters"))
    return {
        "question": plain(first_class(el, "tgme_widget_message_poll_question")) or "",
        "answers": answers,
        "total_voters": _count(voters.split()[0] if voters else None, rounded),
        "closed": True if "final results" in poll_type else None,
        "quiz": ("quiz" in poll_type) if poll_type else None,
    }


def _fill_reactions(rec: dict[str, Any], post: etree._Element, rounded: list[bool]) -> None:
    box = first_class(post, "tgme_widget_message_reactions")
    if box is None:
        return
    reactions = []
    for span in by_class(box, "tgme_reaction"):
        count_text = "".join([span.text or ""] + [child.tail or "" for child in span]).strip()
        count = _count(count_text, rounded)
        if count is None:
            continue
        custom = next(span.iter("tg-emoji"), None)
        if has_class(span, "tgme_reaction_paid"):
            reactions.append(norm.make_reaction("paid", count))
        elif custom is not None:
            emoji_id = norm.numeric_id(custom.get("emoji-id") or custom.get("data-emoji-id"))
            reactions.append(norm.make_reaction("custom_emoji", count, custom_emoji_id=emoji_id))
        else:
            glyph = next(span.iter("b"), None)
            reactions.append(norm.make_reaction("emoji", count, emoji=plain(glyph) if glyph is not None else None))
    rec["reactions"] = reactions
    rec["reactions_total"] = norm.reactions_total(reactions, True)


CONVERTER = TmeHtmlConverter()
