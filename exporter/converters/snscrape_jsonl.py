"""`snscrape-jsonl`: `snscrape --jsonl telegram-channel` output, upstream and the bellingcat fork.

One `TelegramPost` per line (formats.md §6). Traps handled: the `/s/` post URL (-> username,
post id, canonical `https://t.me/<username>/<id>`), `content` without line breaks upstream
(kept as given) and `null` for media-only posts, `outlinks` mixing real links with hashtag
searches (`t.me/s/<channel>?q=%23tag`), mention links and self links, `--with-entity`
`Channel` lines (not posts; their title names the channel of the following posts), the fork's
`mentions` / `hashtags` / `forwarded` / `forwardedUrl` / `media` and its rounded `views`
(`IntWithGranularity` as `views` + `views.granularity`, or a `[value, granularity]` pair).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from .. import normalize as norm
from ..errors import InputError
from ..jsonlines import (
    BOM,
    WHITESPACE,
    exact_int,
    iter_lines,
    parse_line,
    raw_fragment,
    require_recognized,
)
from .base import ConvertOptions, Item, SourceRef

SNSCRAPE_RE = re.compile(rb'"_type"\s*:\s*"snscrape\.modules\.telegram\.(?:TelegramPost|Channel)"')
POST_TYPE = "snscrape.modules.telegram.TelegramPost"
POST_URL_RE = re.compile(r"^https?://(?:www\.)?t\.me/(?:s/)?([A-Za-z0-9_]+)/([0-9]+)/?(?:[?#].*)?$")
CHAT_URL_RE = re.compile(r"^https?://(?:www\.)?t\.me/(?:s/)?([A-Za-z0-9_]+)/?$")
MEDIA_TYPES = {"Photo": "photo", "Video": "video", "VoiceMessage": "voice", "Gif": "animation"}


class SnscrapeJsonlConverter:
    name = "snscrape-jsonl"
    description = "snscrape telegram-channel JSONL (upstream and the bellingcat fork)"

    def sniff(self, head: bytes, name: str) -> float:
        text = head.lstrip(BOM + WHITESPACE)
        return 0.95 if text.startswith(b"{") and SNSCRAPE_RE.search(text) else 0.0

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        yield from require_recognized(self._pairs(stream), lambda seen: _not_snscrape(source, seen))

    def _pairs(self, stream: BinaryIO) -> Iterator[tuple[Item, bool]]:
        titles: dict[str, str] = {}  # channel username -> title, from `--with-entity` lines
        for number, line in iter_lines(stream):
            locator = f"line {number}"
            obj, problem = parse_line(line)
            if problem:
                yield Item(locator, raw_fragment(line), None, [f"json: {problem}"]), False
                continue
            kind = obj.get("_type") if isinstance(obj, dict) else None
            if not isinstance(kind, str) or not kind.startswith("snscrape."):
                what = "an object without `_type`" if isinstance(obj, dict) else type(obj).__name__
                yield Item(locator, obj, None, [f"item: expected an snscrape item, got {what}"]), False
            elif kind == POST_TYPE:
                yield post_item(obj, locator, titles), True
            elif kind.endswith(".Channel"):
                _remember_title(obj, titles)
                yield Item(locator, obj, None, skip_reason="channel entity line (--with-entity), not a post"), True
            else:
                yield Item(locator, obj, None, skip_reason=f"not a Telegram post ({kind})"), True


def _not_snscrape(source: SourceRef, seen: int) -> InputError:
    if not seen:
        return InputError(f"{source.display} is empty", hint="check that the snscrape run wrote its output")
    return InputError(
        f"{source.display} holds no snscrape item (no JSON line with an snscrape `_type`)",
        hint="write it with `snscrape --jsonl telegram-channel NAME`, or pass --from with the right format",
    )


def _remember_title(obj: dict, titles: dict[str, str]) -> None:
    username = norm.clean_username(obj.get("username") if isinstance(obj.get("username"), str) else None)
    if username and isinstance(obj.get("title"), str):
        titles[username] = obj["title"]


# --- one post ------------------------------------------------------------------------------


def post_item(obj: dict, locator: str, titles: dict[str, str]) -> Item:
    problems: list[str] = []
    rec = norm.empty_record()
    url = obj.get("url")
    match = POST_URL_RE.match(url) if isinstance(url, str) else None
    if not match or exact_int(match.group(2)) is None:
        return Item(locator, obj, None, [f"url: not a t.me post link: {url!r}"])
    username, rec["post_id"] = match.group(1).lower(), exact_int(match.group(2))
    rec["chat_username"] = username
    rec["chat_title"] = titles.get(username)
    rec["chat_type"] = "channel"  # t.me/s previews exist only for public channels
    rec["url"] = norm.post_url(username, None, "channel", rec["post_id"])
    rec["date"] = _date(obj.get("date"), problems)
    content = obj.get("content")
    rec["text"] = content if isinstance(content, str) else ""
    _fill_links(rec, obj, username)
    _fill_forward(rec, obj)
    _fill_views(rec, obj)
    _fill_media(rec, obj.get("media"))
    preview = obj.get("linkPreview")
    if isinstance(preview, dict):
        rec["link_preview"] = {
            "url": _string(preview.get("href")),
            "site_name": _string(preview.get("siteName")),
            "title": _string(preview.get("title")),
            "description": _string(preview.get("description")),
        }
        rec["media_type"] = rec["media_type"] or "webpage"
    return Item(locator, obj, rec, problems)


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _date(value: Any, problems: list[str]) -> str | None:
    if value is None:
        problems.append("date: missing")
        return None
    try:
        if isinstance(value, str):
            return norm.utc_from_iso(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return norm.utc_from_epoch(value)
    except (ValueError, OverflowError):
        pass
    problems.append(f"date: not an ISO date with offset: {value!r}")
    return None


def hashtag_of(link: str) -> str | None:
    """`https://t.me/s/<channel>?q=%23tag` (a hashtag search link) -> `tag`."""
    parts = urlsplit(link)
    if parts.netloc.lower() not in ("t.me", "www.t.me") or not parts.path.lower().startswith("/s/"):
        return None
    query = parse_qs(parts.query).get("q", [""])[0]
    return query[1:] if query.startswith("#") and len(query) > 1 else None


def _is_self_link(link: str, username: str, post_id: int) -> bool:
    match = POST_URL_RE.match(link)
    return bool(match and match.group(1).lower() == username and exact_int(match.group(2)) == post_id)


def _fill_links(rec: dict, obj: dict, username: str) -> None:
    outlinks = obj.get("outlinks") if isinstance(obj.get("outlinks"), list) else []
    links = [norm.absolute_url(x) for x in outlinks if isinstance(x, str) and x.strip()]
    fork_tags = obj.get("hashtags")
    fork_mentions = obj.get("mentions")
    searched = [tag for tag in (hashtag_of(link) for link in links) if tag]
    if isinstance(fork_tags, list):
        rec["hashtags"] = [t.lstrip("#") for t in fork_tags if isinstance(t, str) and t.lstrip("#")]
    else:
        rec["hashtags"] = searched
    if isinstance(fork_mentions, list):
        rec["mentions"] = norm.unique(
            m.lstrip("@").lower() for m in fork_mentions if isinstance(m, str) and m.strip("@")
        )
    else:
        rec["mentions"] = norm.extract_mentions(rec["text"])
    mentioned = set(rec["mentions"])
    urls = []
    for link in links:
        chat = CHAT_URL_RE.match(link)
        if hashtag_of(link) or _is_self_link(link, username, rec["post_id"]):
            continue
        if chat and chat.group(1).lower() in mentioned:
            continue  # the link of an @mention, not a URL in the text
        urls.append(link)
    rec["urls"] = norm.unique(urls)


def _fill_forward(rec: dict, obj: dict) -> None:
    link = obj.get("forwardedUrl")
    match = POST_URL_RE.match(link) if isinstance(link, str) else None
    chat = CHAT_URL_RE.match(link) if isinstance(link, str) else None
    forwarded = obj.get("forwarded")
    name = forwarded.get("username") if isinstance(forwarded, dict) else None
    if match:
        name, rec["forward_from_post_id"] = match.group(1), exact_int(match.group(2))
    elif chat:
        name = chat.group(1)
    rec["forward_from_username"] = norm.clean_username(name) if isinstance(name, str) else None


def _fill_views(rec: dict, obj: dict) -> None:
    """Fork `views`: an int with a `views.granularity` key, or a `[value, granularity]` pair."""
    views, granularity = obj.get("views"), obj.get("views.granularity")
    if isinstance(views, list) and len(views) == 2:
        views, granularity = views
    number, rounded = norm.parse_count(views)
    if number is None or number < 0:
        return
    rec["views"] = number
    is_coarse = isinstance(granularity, int) and not isinstance(granularity, bool) and granularity > 1
    rec["counts_rounded"] = rounded or is_coarse


def _fill_media(rec: dict, media: Any) -> None:
    items = [m for m in media if isinstance(m, dict)] if isinstance(media, list) else []
    if not items:
        return
    rec["media_type"] = MEDIA_TYPES.get(str(items[0].get("_type", "")).rsplit(".", 1)[-1], "other")
    duration = items[0].get("duration")
    if isinstance(duration, str) and duration.isdigit():
        duration = int(duration)
    seconds = round(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None
    rec["media"] = {
        "file_name": None,
        "mime_type": None,
        "file_size": None,
        "width": None,
        "height": None,
        "duration_s": seconds if seconds is None or seconds >= 0 else None,
        "sticker_emoji": None,
        "available": None,
    }


CONVERTER = SnscrapeJsonlConverter()
