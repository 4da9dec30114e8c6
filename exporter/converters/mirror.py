"""`mirror`: one post page of a mirror site (tgoop.com and its family), saved HTML or plain text.

Lower-confidence format (formats.md §5.1, §8.18): no primary source describes the markup, so
both inputs are reduced to text lines (HTML: scripts, styles and page chrome dropped, blocks
and `<br>` → line breaks) and read with one recipe. Traps handled: username and post id from
the mirror URL (canonical link first) → `https://t.me/<u>/<id>`; the post text appears twice
(`Create:` / `Last Update:` sit between the copies and are crawl times, never the post date);
the squashed reactions line (`👏5🤔5❤🔥2`) with compound emoji repaired by re-inserting the
zero-width joiner when the result is an emoji (checked with the `emoji` package) and K/M counts;
`BY <title>` for the chat title; boilerplate from "Share with your friend now:" / "Telegram
News" on, `FROM <country>` lines and button labels dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO

from lxml import etree

from .. import normalize as norm
from ..errors import InputError
from ..htmltext import MAX_PAGE_BYTES, read_html
from .base import ConvertOptions, Item, SourceRef

HINT = "give the saved post page of tgoop.com (or a sibling mirror), or pass --from with the right format"
HOSTS = r"(?:[a-z]{2,3}\.)?(?:tgoop\.com|tg-me\.com|group-telegram\.com)"
MIRROR_URL_RE = re.compile(
    rf"(?:https?://)?(?:www\.)?{HOSTS}/(?:[a-z]{{2}}/)?(?:"
    r"(?P<user>[A-Za-z][A-Za-z0-9_]{3,31})/(?P<post>\d+)/?(?![\w/])"
    r"|(?P<user2>[A-Za-z][A-Za-z0-9_]{3,31})(?:\.com)?/telegram-link\?pid=(?P<post2>\d+))",
    re.IGNORECASE,
)
BY_RE = re.compile(r"^BY\s+(.+)$")
LABEL_RE = re.compile(r"^(Create|Last Update):\s*([0-9][0-9 ./:T+-]*)?$")
CRAWL_VALUE_RE = re.compile(r"^[0-9][0-9 ./:T+-]*$")
COUNT_TOKEN_RE = re.compile(r"^\d+(?:[.,]\d+)?\s*[KkMm]?$")
STOP_LINES = ("share with your friend now:", "telegram news", "telegram | did you know?")
CHROME_LINES = {
    "open telegram",
    "open in telegram",
    "view more",
    "channel & group link",
    "if the open doesn't start, click here",
    "telegram | did you know?",
}
CHROME_RE = re.compile(r"^(FROM|from) [A-Z]{2}$|^Date:\s*\|")
DROP_TAGS = {"script", "style", "noscript", "template", "head", "svg", "nav", "header", "footer", "form", "button"}
DROP_TAGS |= {"iframe"}
BLOCK_TAGS = {"address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset", "figcaption", "figure"}
BLOCK_TAGS |= {"h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "main", "ol", "p", "pre", "section", "table", "tbody"}
BLOCK_TAGS |= {"td", "tfoot", "th", "thead", "tr", "ul", "body", "html"}
ZWJ, VS16 = "\u200d", "\ufe0f"
RAW_LIMIT = 20_000


class MirrorConverter:
    name = "mirror"
    description = "Mirror-site post page (tgoop.com and family), saved HTML or plain text"

    def sniff(self, head: bytes, name: str) -> float:
        text = head.decode("utf-8", "ignore")
        if "tgme_widget_message" in text or 'class="page_wrap"' in text or text.lstrip().startswith(("{", "[")):
            return 0.0
        if not MIRROR_URL_RE.search(text):
            return 0.0
        markers = ("Last Update:", "Create:", "Share with your friend now", "\nBY ", ">BY ")
        return 0.9 if any(marker in text for marker in markers) else 0.0

    def iter_items(self, stream: BinaryIO, source: SourceRef, options: ConvertOptions) -> Iterator[Item]:
        head = stream.read(4096)
        rest = _Chained(head, stream)
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            root = read_html(rest, source, "a mirror post page", HINT)
            lines, canonical, raw = html_lines(root), _canonical(root), None
        else:
            raw = _decode(rest.read(MAX_PAGE_BYTES + 1), source)
            lines, canonical = [line.rstrip() for line in raw.replace("\r\n", "\n").split("\n")], None
        page = parse_page(lines, canonical)
        if page.username is None:
            raise InputError(f"{source.display} has no mirror post URL (e.g. tgoop.com/<username>/<id>)", hint=HINT)
        raw_text = raw if raw is not None else "\n".join(lines)
        yield page.item(raw_text[:RAW_LIMIT])


class _Chained:
    """A stream whose first bytes were already read for peeking."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head, self.stream = head, stream

    def read(self, size: int = -1) -> bytes:
        rest = self.stream.read() if size < 0 else self.stream.read(max(0, size - len(self.head)))
        data, self.head = self.head + rest, b""
        return data


def _decode(data: bytes, source: SourceRef) -> str:
    if len(data) > MAX_PAGE_BYTES or b"\x00" in data[:4096]:
        raise InputError(f"{source.display} is not a text page (binary or too large)", hint=HINT)
    if not data.strip():
        raise InputError(f"{source.display} is empty; expected a mirror post page", hint=HINT)
    try:
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source.display} is not UTF-8 text ({exc.reason} at byte {exc.start})", hint=HINT) from None


# --- HTML → lines ------------------------------------------------------------------------


def html_lines(root: etree._Element) -> list[str]:
    """The page's visible text as lines: chrome dropped, blocks and `<br>` as line breaks."""
    parts: list[str] = []
    _render(root, parts)
    text = re.sub(r"[ \t\f\v]*\x00[\x00\s]*", "\n", "".join(parts))  # soft breaks collapse
    return [line.strip() for line in text.split("\n")]


def _render(el: etree._Element, parts: list[str]) -> None:
    block = el.tag in BLOCK_TAGS
    if block:
        parts.append("\x00")
    parts.append(_squash(el.text))
    for child in el:
        if isinstance(child.tag, str) and child.tag == "br":
            parts.append("\n")
        elif isinstance(child.tag, str) and child.tag not in DROP_TAGS:
            _render(child, parts)
        parts.append(_squash(child.tail))
    if block:
        parts.append("\x00")


def _squash(text: str | None) -> str:
    return re.sub(r"\s+", " ", text) if text else ""


def _canonical(root: etree._Element) -> str | None:
    for xpath in (".//link[@rel='canonical']/@href", ".//meta[@property='og:url']/@content"):
        for value in root.xpath(xpath):
            if MIRROR_URL_RE.search(value):
                return value
    return None


# --- lines → post ------------------------------------------------------------------------


@dataclass
class Page:
    username: str | None = None
    post_id: int | None = None
    title: str | None = None
    text: str = ""
    reactions: list[dict[str, Any]] | None = None
    rounded: bool = False
    problems: list[str] = field(default_factory=list)

    def item(self, raw: str) -> Item:
        locator = f"#{self.username}/{self.post_id}"
        rec = norm.empty_record()
        rec["post_id"] = self.post_id
        rec["chat_username"] = self.username
        rec["chat_title"] = rec["sender_name"] = self.title
        rec["url"] = norm.post_url(self.username, None, None, self.post_id)
        rec["text"] = self.text
        rec["hashtags"] = norm.extract_hashtags(self.text)
        rec["mentions"] = norm.extract_mentions(self.text)
        rec["urls"] = norm.extract_urls(self.text)
        if self.reactions is not None:
            rec["reactions"] = self.reactions
            rec["reactions_total"] = norm.reactions_total(self.reactions, True)
        rec["counts_rounded"] = self.rounded
        return Item(locator, raw, rec, list(self.problems))


def parse_page(lines: list[str], canonical: str | None) -> Page:
    """Apply the §5.1 recipe to the page's text lines."""
    page = Page()
    url_index = _find_post_url(page, lines, canonical)
    if page.username is None:
        return page
    by_index = _by_line(lines, url_index)
    anchors = [i for i in (by_index, url_index) if i is not None]
    end = min(anchors) if anchors else _stop_index(lines, 0)
    if by_index is not None:
        page.title = BY_RE.match(lines[by_index].strip()).group(1).strip()
    head = _trim(lines[:end])
    if page.title and head and re.match(rf"^{re.escape(page.title)}(\s+[—–-]\s+|$)", head[-1]):
        head = _trim(head[:-1])  # "<title> — <description>"
    first, second = _copies(head)
    if second and _reaction_tokens(second[-1]) is not None and (not first or first[-1] != second[-1]):
        _fill_reactions(page, second[-1])
        second = _trim(second[:-1])
    elif not second and len(first) > 1 and _reaction_tokens(first[-1]) is not None:
        _fill_reactions(page, first[-1])
        first = _trim(first[:-1])
    page.text = _choose("\n".join(first), "\n".join(second))
    return page


def _stop_index(lines: list[str], start: int) -> int:
    """Where the boilerplate starts ("Share with your friend now:", "Telegram News", …)."""
    return next((i for i in range(start, len(lines)) if lines[i].strip().lower() in STOP_LINES), len(lines))


def _by_line(lines: list[str], url_index: int | None) -> int | None:
    """The `BY <title>` line: the one right above the post URL, else the first before the boilerplate."""
    if url_index is not None:
        above = next((i for i in range(url_index - 1, -1, -1) if lines[i].strip()), None)
        if above is not None and BY_RE.match(lines[above].strip()):
            return above
    stop = _stop_index(lines, 0)
    return next((i for i in range(stop) if BY_RE.match(lines[i].strip())), None)


def _find_post_url(page: Page, lines: list[str], canonical: str | None) -> int | None:
    """Set username and post id (canonical link first); return the index of the bare URL line."""
    own = [i for i, line in enumerate(lines) if MIRROR_URL_RE.fullmatch(line.strip())]
    values = ([canonical] if canonical else []) + [lines[i] for i in own] + lines
    match = next((m for m in map(MIRROR_URL_RE.search, values) if m), None)
    if match:
        page.username = norm.clean_username(match.group("user") or match.group("user2"))
        page.post_id = int(match.group("post") or match.group("post2"))
    return own[0] if own else None


def _trim(lines: list[str]) -> list[str]:
    """Drop chrome lines and blank lines at both ends (blank lines inside are kept)."""
    kept = [line for line in lines if not _is_chrome(line)]
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def _is_chrome(line: str) -> bool:
    text = line.strip()
    return text.lower() in CHROME_LINES or bool(CHROME_RE.match(text)) or bool(MIRROR_URL_RE.fullmatch(text))


def _copies(head: list[str]) -> tuple[list[str], list[str]]:
    """Split at the `Create:` / `Last Update:` labels (their values are crawl times, not kept)."""
    labels = [i for i, line in enumerate(head) if LABEL_RE.match(line.strip())]
    if not labels:
        return head, []
    after = labels[-1] + 1
    if LABEL_RE.match(head[labels[-1]].strip()).group(2) is None:
        while after < len(head) and not head[after].strip():
            after += 1
        if after < len(head) and CRAWL_VALUE_RE.match(head[after].strip()):
            after += 1
    return _trim(head[: labels[0]]), _trim(head[after:])


def _choose(first: str, second: str) -> str:
    """The post text once: the first copy unless it is a truncated form of the second."""
    if not first or not second:
        return first or second
    a, b = " ".join(first.split()), " ".join(second.split())
    if a == b:
        return first
    if b.startswith(a.rstrip(".… ")):
        return second
    return first


# --- reactions ---------------------------------------------------------------------------


@cache
def _emoji() -> Any:
    """The `emoji` package, imported on first use: it takes ~25 ms, and every run imports this
    module to sniff its inputs, mirror pages or not."""
    import emoji

    return emoji


def _reaction_tokens(line: str) -> list[tuple[list[str], str]] | None:
    """`👏5🤔5❤🔥2` → [(['👏'], '5'), (['🤔'], '5'), (['❤', '🔥'], '2')], or None if not such a line."""
    found = _emoji().emoji_list(line)
    if not found or found[0]["match_start"] != len(line) - len(line.lstrip()):
        return None
    groups: list[tuple[list[str], str]] = []
    glyphs: list[str] = []
    for index, token in enumerate(found):
        glyphs.append(token["emoji"])
        end = found[index + 1]["match_start"] if index + 1 < len(found) else len(line)
        gap = line[token["match_end"] : end].strip()
        if gap:
            if not COUNT_TOKEN_RE.match(gap):
                return None
            groups.append((glyphs, gap))
            glyphs = []
    return groups if groups and not glyphs else None


def _join_zwj(left: str, right: str) -> str | None:
    """`❤` + `🔥` → `❤️‍🔥` when the joined sequence is an emoji (the mirror lost the ZWJ)."""
    bare = left.replace(VS16, "")
    for candidate in (left + ZWJ + right, bare + VS16 + ZWJ + right, bare + ZWJ + right):
        if _emoji().is_emoji(candidate):
            return candidate
    return None


def _fill_reactions(page: Page, line: str) -> None:
    reactions = []
    for glyphs, count_text in _reaction_tokens(line) or []:
        current = glyphs[0]
        for glyph in glyphs[1:]:
            joined = _join_zwj(current, glyph)
            if joined is None:
                page.problems.append(f"reactions: {current!r} has no count in {line!r}")
                current = glyph
            else:
                current = joined
        count, rounded = norm.parse_count(count_text)
        page.rounded = page.rounded or rounded
        reactions.append(norm.make_reaction("emoji", count, emoji=current))
    page.reactions = reactions


CONVERTER = MirrorConverter()
