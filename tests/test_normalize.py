"""normalize: the fast bare-link pattern finds exactly what its readable definition finds."""

from __future__ import annotations

import re
import sys

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
