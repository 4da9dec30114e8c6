"""normalize: the fast bare-link pattern finds exactly what its readable definition finds."""

from __future__ import annotations

import re
import sys
from datetime import UTC, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import normalize as norm

# Letters of the link prefixes, and the characters IGNORECASE lets match each of them.
FOLDS = {"h": "Hh", "t": "Tt", "p": "Pp", "s": "Ssſ", "w": "Ww", "m": "Mm", "e": "Ee"}


def _links(pattern: re.Pattern[str], text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(0)) for m in pattern.finditer(text)]


EVERY_CHARACTER = "".join(map(chr, range(sys.maxunicode + 1)))


@pytest.mark.parametrize("letter", sorted(FOLDS))
def test_case_folds_are_the_written_out_classes(letter: str) -> None:
    """Every code point that matches `letter` under IGNORECASE, and no other, is in its class."""
    assert set(re.compile(letter, re.IGNORECASE).findall(EVERY_CHARACTER)) == set(FOLDS[letter])


@pytest.mark.parametrize(
    "text",
    [
        "see https://a.b/c, then www.x.y and t.me/chan.",
        "HTTPS://UPPER.CASE/X HttpS://mixed ſ httpſ://long.s/x",
        "Приветhttps://glued.to/cyrillic но «https://quoted.ru/x» и _t.me/x x_www.y.z",
        "https://start.of/text",
        "t.me/",
        "at the end: www.",
        "\nhttp://after.newline\u00a0nbsp https://x.y\u2003em-space",
        "a1http://digit.before 1www.x.y -t.me/dash (t.me/paren) ...https://dots/",
    ],
)
def test_fast_pattern_on_hand_picked_texts(text: str) -> None:
    assert _links(norm.BARE_URL_RE, text) == _links(norm.BARE_URL_DEFINITION, text)
    assert _links(norm.BARE_URL_RE, text) or text in ("t.me/", "at the end: www.")


LETTERS = "htpswmeHTPSWMEſK.:/ _-1aЯя«»\"'<>\n\u00a0\u2003"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["http", "https", "://", "www", "t.me/", "HTTPS", "WwW", *LETTERS]), max_size=30))
def test_fast_pattern_equals_definition(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert _links(norm.BARE_URL_RE, text) == _links(norm.BARE_URL_DEFINITION, text)


LINK_BODY = st.text(st.sampled_from("aZ9+.-:/ \t\u00a0\u2003\x1cétT.mMeE@x"), max_size=10)
LINKS = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["", " ", "https://", "http://", "t.me/", "T.Me/", "mailto:", "tg:", "a+b.c-d://", "9x://"]),
        LINK_BODY,
        st.sampled_from(["", " ", "\u00a0", "\x1c", "\t", "\n", "é", "/", "x"]),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(LINKS, max_size=8))
def test_vectorized_absolute_urls_equal_normalize(links: list[str]) -> None:
    import pyarrow as pa

    from exporter.fastpath.textcols import absolute_urls

    links += ["https://x.y/z ", "http://x\u00a0", "https://x\x1c", "a://", "https://x.y/z", None]
    want = [None if link is None else norm.absolute_url(link) for link in links]
    assert absolute_urls(pa.array(links, pa.string())).to_pylist() == want


def _utf16_reference(text, offset, length):
    """UTF-16 (offset, length) -> code points, unit by unit (the plain definition; text without
    surrogate pairs: the numbers as they are, not clamped to the text)."""
    if all(ord(char) < 0x10000 for char in text):
        return offset, length
    units, start, end = 0, None, None
    for index, char in enumerate(text):
        if start is None and units >= offset:
            start = index
        if units >= offset + length:
            end = index
            break
        units += 2 if ord(char) > 0xFFFF else 1
    start = len(text) if start is None else start
    end = len(text) if end is None else end
    return start, max(0, end - start)


@settings(max_examples=3000, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(["a", "я", "é", "\uffff", "👍", "\U0001f600", "\U00010000", " "]), max_size=14
    ),
    offset=st.integers(-3, 32),
    length=st.integers(-3, 32),
)
def test_utf16_offsets_match_the_unit_by_unit_definition(text, offset, length):
    from exporter.normalize import utf16_to_codepoints

    assert utf16_to_codepoints(text, offset, length) == _utf16_reference(text, offset, length)


def test_empty_records_share_no_list_and_hold_every_field():
    from exporter.schema import field_names

    first, second = norm.empty_record(), norm.empty_record()
    assert tuple(first) == field_names() and first == second
    for key in norm.LIST_FIELDS:
        first[key].append("x")
        assert second[key] == [] and norm.empty_record()[key] == []
    first["text"] = "changed"
    assert norm.empty_record()["text"] == ""


@settings(max_examples=2000, deadline=None)
@given(
    moment=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])),
)
def test_iso_utc_is_the_strftime_form(moment):
    utc = moment.astimezone(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    assert norm.iso_utc(moment) == utc.strftime(fmt)
