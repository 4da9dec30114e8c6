"""String-level pseudonymization: free text with its entities, links, and raw reject fragments.

`redact_text` replaces spans of a post's text (mentions, text mentions, phone numbers, e-mail
addresses, t.me profile links, names the record already knows) with pseudonyms and moves every
entity so it still covers the same span. `scrub_raw` pseudonymizes the raw fragment of a
quarantined item. The decisions (which username is a person, what a pseudonym is) come from a
`Decider`, implemented by `pseudonymize._Context`; this module only finds and rewrites spans.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any, Protocol

from .normalize import MENTION_RE

EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
PHONE_RES = (  # (pattern, minimum digits); the digit count is checked after matching
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w])"), 8),
    (re.compile(r"(?<![\w(.-])(?:[0-9][ .-]?)?\(\d{2,5}\)[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,3}(?![\w.-])"), 9),
    (re.compile(r"(?<![\w.-])\d{1,4}(?:-\d{2,4}){2,4}(?![\w.-])"), 10),
)
PROFILE_RE = re.compile(
    r"(?<![\w/.])(?P<prefix>(?:https?://)?(?:www\.)?(?:t|telegram)\.me/)"
    r"(?!(?:c|s|joinchat|addstickers|addemoji|share|proxy|iv|login)(?![\w]))"
    r"(?P<name>[A-Za-z][A-Za-z0-9_]{3,31})(?![\w/])",
    re.IGNORECASE,
)
POST_LINK_RE = re.compile(r"(?:t|telegram)\.me/(?:s/)?([A-Za-z][A-Za-z0-9_]{3,31})/\d+", re.IGNORECASE)
INITIALS_RE = re.compile(r'(<div class="initials")([^>]*)>[^<]*(</div>)')
TITLE_RE = re.compile(r' title="([^"]*)"')
USER_LINK_RE = re.compile(r"(tg://user\?id=)(\d+)")
SERVICE_ACTOR_RE = re.compile(  # Telegram Desktop HTML renders who did it into the text
    r"^(?P<actor>.+?) (?=pinned |invited |removed |joined |converted |took a screenshot|created group «"
    r"|changed group |scored |set the |changed the |allowed |started |ended |hid )"
)
SERVICE_OBJECTS_RE = re.compile(r" (?:invited|removed|joined group by link from) (?!group photo)(?P<objects>.+)$")
PSEUDONYM_RE = re.compile(r"(?<![\w:])[a-z]+:[0-9a-f]{16}(?![\w:])")  # already pseudonymized: left alone
MIN_NAME = 3  # shorter names are not searched for in free text
ID_KEYS = frozenset({"from_id", "actor_id", "user_id", "forwarded_from_id", "saved_from_id", "inviter_id"})
NAME_KEYS = frozenset(
    {"from", "actor", "author", "forwarded_from", "saved_from", "post_author", "from_name", "first_name"}
    | {"last_name", "members", "inviter", "signature", "author_signature", "sender_name", "performer"}
)
PHONE_KEYS = frozenset({"phone", "phone_number"})
EMAIL_KEYS = frozenset({"email"})
USERNAME_KEYS = frozenset({"username", "usernames", "via_bot"})
WITHHELD_KEYS = frozenset({"vcard"})  # whole contact cards: names, phones, addresses
WITHHELD = "<withheld: pseudonymized run>"


class Decider(Protocol):
    """The record-aware decisions `redact_text` and `scrub_raw` need."""

    def mention(self, username: str) -> str | None: ...  # pseudonym, or None to keep it
    def user(self, user_id: Any) -> str: ...
    def user_int(self, user_id: Any) -> int: ...
    def peer(self, value: str) -> str: ...  # `user123` / `channel123` / `chat123`
    def name(self, name: str) -> str: ...
    def phone(self, phone: str) -> str: ...
    def email(self, email: str) -> str: ...
    def actor(self, name: str) -> str | None: ...  # a service message's actor; None to keep it
    def alias(self, original: str, pseudonym: str) -> None: ...  # `original` also stands for it
    def known_names(self) -> Iterable[str]: ...  # names this record pseudonymizes
    def found(self) -> dict[str, str]: ...  # original value -> pseudonym, for raw fragments


# --- spans -----------------------------------------------------------------------------------


def apply_spans(text: str, entities: list[dict[str, Any]], spans: list[tuple[int, int, str]]) -> tuple[str, list]:
    """Replace non-overlapping `(start, end, new)` spans; move entities to cover the same spans.

    An entity boundary before, after or exactly on a replaced span moves with it; a boundary
    inside a replaced span snaps outwards to the replacement's edge (so an entity never covers
    half a pseudonym).
    """
    if not spans:
        return text, entities
    spans = sorted(spans)
    pieces, moved, cursor, shift = [], [], 0, 0
    for start, end, new in spans:
        pieces += [text[cursor:start], new]
        new_start = start + shift
        shift += len(new) - (end - start)
        moved.append((start, end, new_start, new_start + len(new)))
        cursor = end
    pieces.append(text[cursor:])

    def move(pos: int, is_end: bool) -> int:
        delta = 0
        for start, end, new_start, new_end in moved:
            if start < pos < end:
                return new_end if is_end else new_start
            if pos < end:
                break
            delta = new_end - end
        return pos + delta

    out = []
    for entity in entities:
        begin = move(entity["offset"], False)
        finish = move(entity["offset"] + entity["length"], True)
        out.append({**entity, "offset": begin, "length": max(0, finish - begin)})
    return "".join(pieces), out


def _free(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    return all(end <= s or start >= e for s, e in taken)


def _entity_span(entity: dict[str, Any], text: str, decide: Decider) -> str | None:
    kind = entity["type"]
    span = text[entity["offset"] : entity["offset"] + entity["length"]]
    if not span:
        return None
    if kind == "mention":
        new = decide.mention(span.lstrip("@"))
        return None if new is None else "@" + new
    if kind == "text_mention":
        if entity.get("user_id") is None:
            return decide.name(span)
        new = decide.user(entity["user_id"])
        decide.alias(span, new)
        return new
    if kind == "phone_number":
        return decide.phone(span)
    if kind == "email":
        return decide.email(span)
    if kind == "url":
        new_url = redact_link(span, decide)
        return None if new_url == span else new_url
    return None


def _pattern_spans(text: str, decide: Decider) -> Iterable[tuple[int, int, str]]:
    for match in EMAIL_RE.finditer(text):
        yield match.start(), match.end(), decide.email(match.group())
    for pattern, minimum in PHONE_RES:
        for match in pattern.finditer(text):
            digits = sum(ch.isdigit() for ch in match.group())
            if minimum <= digits <= 15:
                yield match.start(), match.end(), decide.phone(match.group())
    for match in PROFILE_RE.finditer(text):
        new = decide.mention(match.group("name"))
        if new is not None:
            yield match.start(), match.end(), match.group("prefix") + new
    for match in MENTION_RE.finditer(text):
        new = decide.mention(match.group(1))
        if new is not None:
            yield match.start(), match.end(), "@" + new
    names = sorted({n for n in decide.known_names() if len(n.strip()) >= MIN_NAME}, key=len, reverse=True)
    for name in names:
        for match in re.finditer(rf"(?<!\w){re.escape(name.strip())}(?!\w)", text, re.IGNORECASE):
            yield match.start(), match.end(), decide.name(match.group())


def _service_spans(text: str, decide: Decider) -> Iterable[tuple[int, int, str]]:
    """`Alice Example invited Bob Sample and Carol`: the actor and the objects are persons."""
    actor = SERVICE_ACTOR_RE.match(text)
    if actor:
        new = decide.actor(actor.group("actor"))
        if new is not None:
            yield actor.start("actor"), actor.end("actor"), new
    objects = SERVICE_OBJECTS_RE.search(text)
    if objects:
        start = objects.start("objects")
        for part in re.finditer(r"(?:^|, | and )(?P<name>.+?)(?=, | and |$)", objects.group("objects")):
            yield start + part.start("name"), start + part.end("name"), decide.name(part.group("name"))


def redact_text(
    text: str,
    entities: list[dict[str, Any]],
    decide: Decider,
    service: bool = False,
    target: list[dict[str, Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """`text` with person spans replaced by pseudonyms, and `entities` moved to match.

    Decisions read `entities` (the original ones); the moved copies are made of `target` (the
    same entities, possibly already pseudonymized field by field) when given.
    """
    spans: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = [m.span() for m in PSEUDONYM_RE.finditer(text)]
    for start, end, new in _service_spans(text, decide) if service else ():
        if _free(taken, start, end):
            spans.append((start, end, new))
            taken.append((start, end))
    for entity in entities:
        new = _entity_span(entity, text, decide)
        start, end = entity["offset"], entity["offset"] + entity["length"]
        if new is not None and _free(taken, start, end):
            spans.append((start, end, new))
            taken.append((start, end))
    for start, end, new in _pattern_spans(text, decide):
        if _free(taken, start, end):
            spans.append((start, end, new))
            taken.append((start, end))
    new_text, moved = apply_spans(text, entities if target is None else target, spans)
    for entity in moved:
        if entity.get("url"):
            entity["url"] = redact_link(entity["url"], decide)
    return new_text, moved


def redact_link(url: str, decide: Decider) -> str:
    """A link with the person in it pseudonymized: mailto:, tel:, t.me/<user> profile links."""
    lowered = url.lower()
    if lowered.startswith("mailto:"):
        return "mailto:" + decide.email(url[7:].split("?", 1)[0])
    if lowered.startswith("tel:"):
        return "tel:" + decide.phone(url[4:])
    match = PROFILE_RE.fullmatch(url.strip())
    if match is None:
        return url
    new = decide.mention(match.group("name"))
    return url if new is None else match.group("prefix") + new


def post_link_usernames(urls: Iterable[str]) -> set[str]:
    """Usernames that links to posts (`t.me/<name>/<id>`) show to be chats: users have no posts."""
    return {m.group(1).lower() for url in urls for m in POST_LINK_RE.finditer(url)}


# --- raw fragments of quarantined items ------------------------------------------------------


def scrub_string(value: str, decide: Decider, redact: bool) -> str:
    """Known identities replaced; with `redact`, also every mention, phone and e-mail."""
    value = INITIALS_RE.sub(lambda m: _initials(m, decide), value)
    value = USER_LINK_RE.sub(lambda m: m.group(1) + str(decide.user_int(m.group(2))), value)
    found = decide.found()
    variants: dict[str, str] = {}
    for original, pseudonym in found.items():
        for form in {original, html.escape(original), html.escape(original, quote=False)}:
            if len(form.strip()) >= MIN_NAME:
                variants[form] = pseudonym
    for form in sorted(variants, key=len, reverse=True):
        value = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", lambda _m, f=form: variants[f], value)
    if redact:
        value, _ = redact_text(value, [], decide)
    return value


def _initials(match: re.Match, decide: Decider) -> str:
    """TD HTML userpics: the `title` names the person (e.g. who reacted); the letters are initials."""
    attrs = TITLE_RE.sub(lambda t: f' title="{decide.name(html.unescape(t.group(1)))}"', match.group(2))
    return f"{match.group(1)}{attrs}>{match.group(3)}"


def scrub_raw(raw: Any, decide: Decider, redact: bool, key: str = "") -> Any:
    """A JSON-like raw fragment with person fields pseudonymized (see docs/pseudonymization.md)."""
    if isinstance(raw, dict):
        return {k: scrub_raw(v, decide, redact, str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [scrub_raw(v, decide, redact, key) for v in raw]
    if isinstance(raw, bool) or raw is None:
        return raw
    if key in ID_KEYS or (key in NAME_KEYS and isinstance(raw, int)):
        return _scrub_id(raw, decide)
    if not isinstance(raw, str):
        return raw
    if key in WITHHELD_KEYS:
        return WITHHELD
    if key in NAME_KEYS:
        return decide.name(raw) if raw.strip() else raw
    if key in PHONE_KEYS:
        return decide.phone(raw) if raw.strip() else raw
    if key in EMAIL_KEYS:
        return decide.email(raw) if raw.strip() else raw
    if key in USERNAME_KEYS:
        new = decide.mention(raw.strip().lstrip("@")) if raw.strip() else None
        return raw if new is None else new
    return scrub_string(raw, decide, redact)


def _scrub_id(value: Any, decide: Decider) -> Any:
    if isinstance(value, int):
        return decide.user_int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return str(decide.user_int(value.strip()))
    if isinstance(value, str) and re.fullmatch(r"(user|channel|chat)\d+", value.strip()):
        return decide.peer(value.strip())
    return decide.name(str(value)) if value else value
