"""`tdesktop-html`: one page (`messages.html`, `messages2.html`, …) of a Telegram Desktop HTML export.

Each page is parsed on its own (≤ 1000 messages, so one lxml tree at a time; no network, no
external entities). Traps handled (formats.md §2, §8): message ids from `id="messageN"`
(negative for migrated history), service blocks vs date separators told apart by class and
text (never by the id sign), `joined` blocks inheriting the previous sender, `title` dates with
and without `UTC±hh:mm` (`--tz` wins when given, as the suffix is only the standard offset),
`<br>` line breaks and framing whitespace, links/formatting as code-point entities, forwards
(name + original date, inherited on joined forwards), replies across pages, media cards and
placeholders, polls, and reactions whose `span.count` is omitted when every reactor is listed.

The generic HTML helpers (`read_html`, `rich_text`, class look-ups) live in `exporter.htmltext`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from lxml import etree

from .. import normalize as norm
from ..errors import InputError
from ..htmltext import (
    FORMAT_TAGS,
    Markup,
    by_class,
    child_with_class,
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

TZ_HINT = "pass --tz with the time zone of the computer that made the export, e.g. --tz Europe/Berlin"
DATE_RE = re.compile(r"^\s*(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})(?:\s*UTC\s*([+-]\d{1,2}):?(\d{2})?)?\s*$")
SEPARATOR_RE = re.compile(
    r"^\d{1,2} (January|February|March|April|May|June|July|August|September|October|November|December) \d{4}$"
)
NOT_ITEMS = ("No exported messages",)
UNSUPPORTED = "This message is not supported by this version of Telegram Desktop"
MESSAGE_ID_RE = re.compile(r"^message(-?\d+)$")
GO_TO_RE = re.compile(r"go_to_message(-?\d+)")
VIA_RE = re.compile(r"\s+via @[A-Za-z0-9_]+$")
SIZE_BYTES_RE = re.compile(r"\b(\d+) B\b")
DIMENSIONS_RE = re.compile(r"\b(\d+)x(\d+)\b")
VOTES_RE = re.compile(r"(\d+) votes?")
STICKER_PATH_RE = re.compile(r"^(?!\w+:)[\w./ -]+\.(?:webp|tgs|webm|png|jpe?g|gif|json)$", re.IGNORECASE)
SERVICE_ACTIONS = (
    (re.compile(r"^Channel «.*» created$"), "create_channel"),
    (re.compile(r" created group «"), "create_group"),
    (re.compile(r"(^Channel title changed to «| changed group title to «)"), "edit_group_title"),
    (re.compile(r"(^Channel photo changed$| changed group photo$)"), "edit_group_photo"),
    (re.compile(r"(^Channel photo removed$| removed group photo$)"), "delete_group_photo"),
    (re.compile(r" pinned "), "pin_message"),
    (re.compile(r" joined group by link from "), "join_group_by_link"),
    (re.compile(r" joined group by request$"), "join_group_by_request"),
    (re.compile(r" converted this group to a supergroup$"), "migrate_to_supergroup"),
    (re.compile(r" converted a basic group to this supergroup "), "migrate_from_group"),
    (re.compile(r"^History cleared$"), "clear_history"),
    (re.compile(r" invited "), "invite_members"),
    (re.compile(r" removed "), "remove_members"),
    (re.compile(r" took a screenshot$"), "take_screenshot"),
    (re.compile(r" joined Telegram$"), "joined_telegram"),
)
FORMAT_TAGS |= {"s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "pre": "pre"}
FORMAT_TAGS |= {"blockquote": "blockquote"}
ONCLICK_TYPES = {
    "ShowHashtag": "hashtag",
    "ShowCashtag": "cashtag",
    "ShowBotCommand": "bot_command",
    "ShowMentionName": "text_mention",
    "ShowNotLoadedEmoji": "custom_emoji",
    "ShowNotAvailableEmoji": "custom_emoji",
}

# --- shared HTML helpers (also used by tme_html and mirror) ------------------------------


@dataclass
class _PageState:
    """Sender and forward origin carried from block to block (the `joined` rule, §2.3)."""

    sender: str | None = None
    forward_name: str | None = None

    def reset(self) -> None:
        self.sender = self.forward_name = None


class TdesktopHtmlConverter:
    name = "tdesktop-html"
    description = "Telegram Desktop HTML export: one messages*.html page of a chat"

    def sniff(self, head: bytes, name: str) -> float:
        text = head.lower()
        if b"<" not in text[:1024]:
            return 0.0
        if re.search(rb'class="page_body chat_page"|class="history"', text) and b"page_wrap" in text:
            return 0.95
        if re.search(rb'class="message (default|service)', text) and b"page_header" in text:
            return 0.9
        return 0.0

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        hint = "export with Telegram Desktop → Export chat history → HTML, or pass --from with the right format"
        root = read_html(stream, source, "a Telegram Desktop HTML page", hint)
        blocks = [div for div in root.iter("div") if has_class(div, "message")]
        history = first_class(root, "history")
        if history is None and not any(classes(b) & {"default", "service"} for b in blocks):
            raise InputError(
                f"{source.display} is HTML but not a Telegram Desktop chat page (no message blocks)", hint=hint
            )
        header = first_class(root, "page_header")
        title = None if header is None else plain(first_class(header, "text"))
        state = _PageState()
        for index, block in enumerate(blocks):
            item = _block_item(block, index, title, state, options)
            if item is not None:
                yield item


def _block_item(
    block: etree._Element, index: int, title: str | None, state: _PageState, options: ConvertOptions
) -> Item | None:
    """One `div.message` block → an Item; None for date separators (told apart by class and text)."""
    match = MESSAGE_ID_RE.match(block.get("id") or "")
    locator = f"#{block.get('id')}" if match else f"message block {index + 1}"
    kinds = classes(block)
    if "service" in kinds:
        state.reset()  # service blocks and date separators break the `joined` chain
        body_text = plain(child_with_class(block, "body")) or ""
        if SEPARATOR_RE.match(body_text) or body_text in NOT_ITEMS:
            return None
        if body_text.startswith(UNSUPPORTED):
            return Item(
                locator, fragment(block), None, skip_reason="unsupported message (Telegram Desktop exported no content)"
            )
    elif "default" not in kinds:
        return Item(locator, fragment(block), None, [f"{locator}: message block of unknown kind {sorted(kinds)}"])
    if not match:
        state.reset()
        return Item(locator, fragment(block), None, [f'{locator}: message block without an id="messageN"'])
    rec = norm.empty_record()
    rec["post_id"] = int(match.group(1))
    rec["chat_title"] = title
    problems: list[str] = []
    if "service" in kinds:
        _fill_service(rec, block)
    else:
        _fill_message(rec, block, state, options, problems)
    return Item(locator, fragment(block), rec, problems)


def _fill_service(rec: dict[str, Any], block: etree._Element) -> None:
    rec["kind"] = "service"
    rec["text"] = plain(child_with_class(block, "body")) or ""
    rec["service_action"] = next((action for pattern, action in SERVICE_ACTIONS if pattern.search(rec["text"])), None)


def _fill_message(
    rec: dict[str, Any], block: etree._Element, state: _PageState, options: ConvertOptions, problems: list[str]
) -> None:
    body = child_with_class(block, "body")
    if body is None:
        problems.append("message block without div.body")
        return
    date_div = child_with_class(body, "date")
    if date_div is None or not date_div.get("title"):
        problems.append("date: missing `title` on div.pull_right.date.details")
    else:
        rec["date"] = td_date(date_div.get("title"), options, problems, "date")
    from_name = child_with_class(body, "from_name")
    if from_name is not None:
        state.sender = _strip_via(plain(from_name))
    elif "joined" not in classes(block):
        state.sender = None
    rec["sender_name"] = state.sender
    content = body
    forwarded = next((c for c in body if isinstance(c.tag, str) and {"forwarded", "body"} <= classes(c)), None)
    if forwarded is not None:
        _fill_forward(rec, forwarded, state, options, problems)
        content = forwarded
    else:
        state.forward_name = None
    _fill_reply(rec, content)
    text_div = child_with_class(content, "text")
    if text_div is not None:
        finish_text(rec, *rich_text(text_div, _classify))
    rec["author_signature"] = plain(child_with_class(content, "signature"))
    _fill_media(rec, content)
    reactions = child_with_class(content, "reactions")
    _fill_reactions(rec, reactions if reactions is not None else child_with_class(body, "reactions"))


def _strip_via(name: str | None) -> str | None:
    return VIA_RE.sub("", name) if name else name


def td_date(value: str, options: ConvertOptions, problems: list[str], key: str) -> str | None:
    """`dd.MM.yyyy HH:mm:ss[ UTC±hh:mm]` → RFC 3339 UTC. `--tz` wins over the (standard-only) suffix."""
    match = DATE_RE.match(value)
    if not match:
        problems.append(f"{key}: not a Telegram Desktop date: {value!r}")
        return None
    day, month, year, hour, minute, second, off_hours, off_minutes = match.groups()
    local = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    if options.tz is None and off_hours is None:
        raise InputError(
            f"this export page has local-time dates without a time zone (e.g. {key} = {value.strip()!r}); "
            "Telegram Desktop added the UTC offset only in v3.7.6 (June 2022)",
            hint=TZ_HINT,
        )
    if options.tz is None:
        sign = "-" if off_hours.startswith("-") else "+"
        local += f"{sign}{abs(int(off_hours)):02d}:{off_minutes or '00'}"
    try:
        return norm.utc_from_iso(local, options.tz)
    except ValueError:
        problems.append(f"{key}: not a valid date: {value!r}")
        return None


def _fill_forward(
    rec: dict[str, Any], forwarded: etree._Element, state: _PageState, options: ConvertOptions, problems: list[str]
) -> None:
    name_div = child_with_class(forwarded, "from_name")
    if name_div is None:  # joined forward: same origin as the block before
        rec["forward_from_name"] = state.forward_name
        return
    date_span = next((s for s in name_div.iter("span") if has_class(s, "details")), None)
    if date_span is not None:
        value = date_span.get("title") or text_of(date_span)
        rec["forward_date"] = td_date(value, options, problems, "forward_date")
    name = " ".join((name_div.text or "").split()) or None
    rec["forward_from_name"] = state.forward_name = _strip_via(name)


def _fill_reply(rec: dict[str, Any], body: etree._Element) -> None:
    reply = child_with_class(body, "reply_to")
    if reply is None:
        return
    for link in reply.iter("a"):
        match = GO_TO_RE.search(link.get("href") or "") or GO_TO_RE.search(link.get("onclick") or "")
        if match:
            rec["reply_to_post_id"] = int(match.group(1))
            return


def _classify(el: etree._Element) -> Markup:
    tag = el.tag.lower()
    if tag == "a":
        return _classify_link(el)
    if tag == "span" and has_class(el, "spoiler"):
        return Markup(etype="spoiler")
    return Markup(etype=FORMAT_TAGS.get(tag))


def _classify_link(el: etree._Element) -> Markup:
    onclick = el.get("onclick") or ""
    for function, etype in ONCLICK_TYPES.items():
        if function in onclick:
            return Markup(etype=etype)
    href = (el.get("href") or "").strip()
    text = text_of(el).strip()
    if not href:
        return Markup()
    if href.startswith("mailto:"):
        return Markup(etype="email")
    if href.startswith("tel:"):
        return Markup(etype="phone_number")
    if text.startswith("@") and href.lower().rstrip("/").endswith("/" + text[1:].lower()):
        return Markup(etype="mention")
    if text == href or norm.absolute_url(text).rstrip("/") == href.rstrip("/"):
        return Markup(etype="url", url=norm.absolute_url(href))
    if STICKER_PATH_RE.match(href):
        return Markup(etype="custom_emoji", custom_emoji_id=norm.numeric_id(href))
    return Markup(etype="text_link", url=href)


# --- media, polls, reactions -------------------------------------------------------------

THUMB_KINDS = {
    "photo_wrap": "photo",
    "video_file_wrap": "video",
    "animated_wrap": "animation",
    "sticker_wrap": "sticker",
}
GENERIC_KINDS = {"media_voice_message": "voice", "media_audio_file": "audio", "media_file": "document"}
GENERIC_KINDS |= {"media_contact": "contact", "media_location": "location", "media_live_location": "location"}
GENERIC_KINDS |= {"media_venue": "location"}
FILE_KINDS = {"photo", "video", "animation", "sticker", "voice", "audio", "document", "video_note"}
VIDEO_TITLES = {"Video message": "video_note", "Animation": "animation"}


def _fill_media(rec: dict[str, Any], content: etree._Element) -> None:
    wrap = child_with_class(content, "media_wrap")
    if wrap is None:
        return
    poll = first_class(wrap, "media_poll")
    if poll is not None:
        rec["media_type"], rec["poll"] = "poll", _poll(poll)
        return
    for el in wrap.iter():
        if not isinstance(el.tag, str):
            continue
        names = classes(el)
        thumb = next((THUMB_KINDS[n] for n in names if n in THUMB_KINDS), None)
        if thumb:
            rec["media_type"], rec["media"] = thumb, _thumb_media(thumb, el)
            return
        if "media" in names:
            rec["media_type"], rec["media"] = _generic_media(el, names)
            return


def _basename(href: str | None) -> str | None:
    if not href:
        return None
    return href.replace("\\", "/").rsplit("/", 1)[-1] or None


def _thumb_media(kind: str, link: etree._Element) -> dict[str, Any]:
    href = link.get("href")
    duration = parse_duration(plain(first_class(link, "video_duration")))
    return empty_media(
        file_name=None if kind == "photo" else _basename(href), duration_s=duration, available=bool(href)
    )


def _generic_media(el: etree._Element, names: set[str]) -> tuple[str, dict[str, Any] | None]:
    kind_class = next((n for n in sorted(names) if n.startswith("media_")), "")
    title = plain(first_class(el, "title"))
    status = plain(first_class(el, "status")) or ""
    href = el.get("href") if el.tag == "a" else None
    if kind_class == "media_photo":
        kind = "sticker" if title == "Sticker" else "photo"
    elif kind_class == "media_video":
        kind = VIDEO_TITLES.get(title or "", "video")
    else:
        kind = GENERIC_KINDS.get(kind_class, "other")
    if kind not in FILE_KINDS:
        return kind, None
    timed = kind in ("voice", "audio", "video", "video_note", "animation")
    media = empty_media(available=bool(href), duration_s=parse_duration(status) if timed else None)
    if kind == "document":
        media["file_name"] = title if title and title != "File" else _basename(href)
    elif kind != "photo":
        media["file_name"] = _basename(href)
    if kind == "sticker":
        first = status.split(",")[0].strip()
        media["sticker_emoji"] = first if first and not any(ch.isdigit() for ch in first) else None
    size = SIZE_BYTES_RE.search(status)
    media["file_size"] = int(size.group(1)) if size else None
    dims = DIMENSIONS_RE.search(status) if kind == "photo" else None
    if dims:
        media["width"], media["height"] = int(dims.group(1)), int(dims.group(2))
    return kind, media


def _poll(poll: etree._Element) -> dict[str, Any]:
    answers = []
    for answer in by_class(poll, "answer"):
        text = " ".join((answer.text or "").split())
        votes = plain(first_class(answer, "details"))
        count = VOTES_RE.search(votes or "")
        answers.append({"text": text.removeprefix("- ").strip(), "voters": int(count.group(1)) if count else 0})
    details = next((plain(c) for c in poll if isinstance(c.tag, str) and classes(c) == {"details"}), None)
    total = plain(first_class(poll, "total"))
    total_count = VOTES_RE.search(total or "")
    return {
        "question": plain(first_class(poll, "question")) or "",
        "answers": answers,
        "total_voters": int(total_count.group(1)) if total_count else (0 if total == "No votes" else None),
        "closed": None if details is None else details == "Final results",
        "quiz": None,
    }


def _fill_reactions(rec: dict[str, Any], box: etree._Element | None) -> None:
    if box is None:
        return
    reactions = []
    for span in box:
        if not isinstance(span.tag, str) or not has_class(span, "reaction"):
            continue
        emoji_el = child_with_class(span, "emoji")
        link = emoji_el.find(".//a") if emoji_el is not None else None
        count_el = child_with_class(span, "count")
        if count_el is not None:
            count = norm.parse_count(plain(count_el))[0] or 0
        else:  # every reactor is listed: count the userpics
            pics = child_with_class(span, "userpics")
            count = 0 if pics is None else sum(1 for p in pics.iter() if has_class(p, "userpic"))
        if has_class(span, "paid"):
            reactions.append(norm.make_reaction("paid", count))
        elif link is not None:
            reactions.append(
                norm.make_reaction("custom_emoji", count, custom_emoji_id=norm.numeric_id(link.get("href")))
            )
        else:
            reactions.append(norm.make_reaction("emoji", count, emoji=plain(emoji_el)))
    rec["reactions"] = reactions
    rec["reactions_total"] = norm.reactions_total(reactions, True)


CONVERTER = TdesktopHtmlConverter()
