"""tme-html: golden records, schema validity, sniffing and malformed pages."""

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

FORMAT = "tme-html"
HERE = FIXTURES / FORMAT
CASES = sorted(HERE.glob("*.html"))
VALIDATOR = Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def convert(data: bytes) -> list:
    source = SourceRef(display="x.html", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    return list(get(FORMAT).iter_items(io.BytesIO(data), source, ConvertOptions()))


def records(name: str) -> dict[int, dict]:
    return {i.record["post_id"]: i.record for i in convert((HERE / name).read_bytes()) if i.record}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    check_golden(FORMAT, path)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_good_records_match_the_schema(path: Path) -> None:
    for item in convert(path.read_bytes()):
        if item.record is None or item.problems:
            continue
        record = dict(item.record)
        stamp_provenance(record, FORMAT, "x", "0" * 64, item.locator, "0" * 16)
        errors = [e.message for e in VALIDATOR.iter_errors(record)]
        assert not errors, f"{path.name} {item.locator}: {errors}"


def test_sniff_accepts_own_fixtures() -> None:
    for path in CASES:
        assert get(FORMAT).sniff(path.read_bytes()[:65536], path.name) >= 0.9, path.name


def test_sniff_rejects_other_formats() -> None:
    others = [p for p in FIXTURES.glob("*/*") if p.parent.name != FORMAT and not p.name.endswith(".expected.json")]
    samples = [p.read_bytes() for p in others if p.is_file()]
    samples += [b'{"name": "Example", "type": "public_channel", "id": 1, "messages": []}', b"", b"\x00\x01"]
    for sample in samples:
        assert get(FORMAT).sniff(sample[:65536], "page.html") == 0.0


def test_reply_preview_is_not_the_post_text() -> None:
    post = records("reply_preview.html")[501]
    assert post["text"] == "the actual reply"
    assert post["reply_to_post_id"] == 500


def test_data_view_gives_the_bare_channel_id() -> None:
    assert records("text_entities.html")[101]["chat_id"] == 1234567890


def test_rounded_counts_are_flagged() -> None:
    posts = records("counts_rounded.html")
    assert (posts[201]["views"], posts[201]["counts_rounded"]) == (2_720_000, True)
    assert (posts[203]["views"], posts[203]["counts_rounded"]) == (999, False)


def test_fallback_page_marks_content_omitted() -> None:
    post = records("content_omitted.html")[1101]
    assert post["content_omitted"] is True
    assert post["text"] == ""


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01binary", b"<html><body><p>some other page</p></body></html>", b"plain words"],
    ids=["empty", "binary", "other-html", "text"],
)
def test_unreadable_inputs_raise_input_error(data: bytes) -> None:
    with pytest.raises(InputError) as caught:
        convert(data)
    assert caught.value.hint


def test_broken_posts_become_problems() -> None:
    items = convert((HERE / "bad_posts.html").read_bytes())
    assert [bool(i.problems) for i in items] == [True, True, False]


def test_inputs_of_other_formats_raise_input_error() -> None:
    others = [p for p in FIXTURES.glob("*/*") if p.parent.name != FORMAT and not p.name.endswith(".expected.json")]
    assert others
    for path in others:
        with pytest.raises(InputError):
            convert(path.read_bytes())
