"""mirror: golden records, schema validity, sniffing and malformed pages."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from golden import FIXTURES, check_golden
from jsonschema import Draft202012Validator

from exporter.converters import get
from exporter.converters.base import ConvertOptions, SourceRef
from exporter.errors import InputError
from exporter.normalize import stamp_provenance
from exporter.schema import load_schema

FORMAT = "mirror"
HERE = FIXTURES / FORMAT
CASES = sorted(p for p in HERE.iterdir() if p.suffix in (".txt", ".html"))
VALIDATOR = Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def convert(data: bytes) -> list:
    source = SourceRef(display="x", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    return list(get(FORMAT).iter_items(io.BytesIO(data), source, ConvertOptions()))


def record(name: str) -> dict:
    (item,) = convert((HERE / name).read_bytes())
    return item.record


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_golden(path: Path) -> None:
    check_golden(FORMAT, path)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_good_records_match_the_schema(path: Path) -> None:
    for item in convert(path.read_bytes()):
        if item.record is None or item.problems:
            continue
        rec = dict(item.record)
        stamp_provenance(rec, FORMAT, "x", "0" * 64, item.locator, "0" * 16)
        errors = [e.message for e in VALIDATOR.iter_errors(rec)]
        assert not errors, f"{path.name} {item.locator}: {errors}"


def test_sniff_accepts_own_fixtures() -> None:
    for path in CASES:
        assert get(FORMAT).sniff(path.read_bytes()[:65536], path.name) >= 0.9, path.name


def test_sniff_rejects_other_formats() -> None:
    others = [p for p in FIXTURES.glob("*/*") if p.parent.name != FORMAT and not p.name.endswith(".expected.json")]
    samples = [p.read_bytes() for p in others if p.is_file()]
    samples += [b'{"name": "Example", "type": "public_channel", "id": 1, "messages": []}', b"", b"\x00\x01"]
    samples.append(b"Just some notes that mention tgoop.com/examplechannel/1 once.")
    for sample in samples:
        assert get(FORMAT).sniff(sample[:65536], "page.txt") == 0.0


def test_text_once_url_canonical_and_no_boilerplate() -> None:
    rec = record("post.txt")
    assert rec["url"] == "https://t.me/examplechannel/345"
    assert rec["text"].count("Morning update") == 1
    assert "Telegram News" not in rec["text"] and "FROM US" not in rec["text"]
    assert rec["date"] is None  # Create:/Last Update: are crawl times


def test_compound_emoji_get_their_zero_width_joiner_back() -> None:
    emojis = [r["emoji"] for r in record("post.txt")["reactions"]]
    assert "\u2764\u200d\U0001f525" in emojis  # heart on fire, variation selector removed
    assert "\u2764\u200d\U0001fa79" in [r["emoji"] for r in record("rounded_reactions.txt")["reactions"]]


def test_same_page_as_html_and_text_agree() -> None:
    html = record("saved_page.html")
    assert html["text"] == "Evening summary: three items.\nOne & two\nand three."
    assert html["post_id"] == 350 and html["chat_title"] == "Example Channel"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01binary", b"A text without any mirror link.\nBY Nobody\n", b"<html><body><p>hi</p></body></html>"],
    ids=["empty", "binary", "no-url", "html-no-url"],
)
def test_unreadable_inputs_raise_input_error(data: bytes) -> None:
    with pytest.raises(InputError) as caught:
        convert(data)
    assert caught.value.hint


def test_non_utf8_text_raises_input_error() -> None:
    with pytest.raises(InputError):
        convert("Caf\u00e9 tgoop.com/examplechannel/1\nBY X\n".encode("latin-1"))


def test_garbled_reactions_become_a_problem() -> None:
    (item,) = convert((HERE / "unjoinable_reactions.txt").read_bytes())
    assert item.problems and "no count" in item.problems[0]


def test_inputs_of_other_formats_raise_input_error() -> None:
    others = [p for p in FIXTURES.glob("*/*") if p.parent.name != FORMAT and not p.name.endswith(".expected.json")]
    assert others
    for path in others:
        with pytest.raises(InputError):
            convert(path.read_bytes())
