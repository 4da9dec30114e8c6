"""tdesktop-html: golden records, schema validity, sniffing and malformed pages."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from golden import FIXTURES, check_golden
from jsonschema import Draft202012Validator

from exporter.converters import get
from exporter.converters.base import ConvertOptions, SourceRef
from exporter.errors import InputError
from exporter.normalize import stamp_provenance
from exporter.schema import load_schema

FORMAT = "tdesktop-html"
HERE = FIXTURES / FORMAT
CASES = sorted(p for p in HERE.glob("*.html"))
BERLIN = ConvertOptions(tz=ZoneInfo("Europe/Berlin"), tz_name="Europe/Berlin")
OPTIONS = {"tz_missing": BERLIN}
VALIDATOR = Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def convert(data: bytes, options: ConvertOptions | None = None) -> list:
    source = SourceRef(display="x.html", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    return list(get(FORMAT).iter_items(io.BytesIO(data), source, options or ConvertOptions()))


def by_id(path: Path, options: ConvertOptions | None = None) -> dict[int, dict]:
    return {i.record["post_id"]: i.record for i in convert(path.read_bytes(), options) if i.record}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    check_golden(FORMAT, path, OPTIONS.get(path.stem))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_good_records_match_the_schema(path: Path) -> None:
    for item in convert(path.read_bytes(), OPTIONS.get(path.stem)):
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
        assert get(FORMAT).sniff(sample[:65536], "messages.html") == 0.0


def test_zone_suffix_is_used_without_tz_but_tz_wins() -> None:
    path = HERE / "tz_suffix.html"
    assert by_id(path)[2]["date"] == "2024-07-15T13:00:00Z"  # wall clock minus the standard offset
    assert by_id(path, BERLIN)[2]["date"] == "2024-07-15T12:00:00Z"  # real CEST offset
    assert by_id(path, BERLIN)[1]["date"] == "2024-01-15T09:00:00Z"


def test_dates_without_zone_need_tz() -> None:
    with pytest.raises(InputError) as caught:
        convert((HERE / "tz_missing.html").read_bytes())
    assert "--tz" in caught.value.hint


def test_joined_blocks_inherit_the_sender() -> None:
    records = by_id(HERE / "joined_sender.html")
    assert [records[n]["sender_name"] for n in (10, 11, 12, 13, 15)] == [
        "Alice Example",
        "Alice Example",
        "Bob Sample",
        "Bob Sample",
        "Alice Example",
    ]


def test_separators_are_not_items_and_kinds_come_from_classes() -> None:
    items = convert((HERE / "service_vs_separator.html").read_bytes())
    assert [i.locator for i in items] == [
        "#message-999999995",
        "#message-999999990",
        "#message1",
        "#message2",
        "#message3",
    ]
    kinds = [i.record["kind"] if i.record else i.skip_reason for i in items]
    assert kinds[:4] == ["service", "message", "service", "message"]
    assert items[4].skip_reason and items[4].record is None


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n", b"\x00\x01\x02binary", b"<html><body><p>just a page</p></body></html>", b"not html at all"],
    ids=["empty", "blank", "binary", "other-html", "text"],
)
def test_unreadable_inputs_raise_input_error(data: bytes) -> None:
    with pytest.raises(InputError) as caught:
        convert(data)
    assert caught.value.hint


def test_export_list_page_is_rejected() -> None:
    page = (
        b'<!DOCTYPE html><html><body onload="CheckLocation();"><div class="page_wrap">'
        b'<div class="page_header"><div class="content"><div class="text bold">Chats</div></div></div>'
        b'<div class="page_body list_page"><div class="entry_list"></div></div></div></body></html>'
    )
    assert get(FORMAT).sniff(page, "chats.html") == 0.0
    with pytest.raises(InputError):
        convert(page)


def test_truncated_page_quarantines_only_the_cut_message() -> None:
    items = convert((HERE / "truncated.html").read_bytes())
    assert items[0].record and not items[0].problems
    assert items[-1].problems and "date" in items[-1].problems[0]


def test_inputs_of_other_formats_raise_input_error() -> None:
    others = [p for p in FIXTURES.glob("*/*") if p.parent.name != FORMAT and not p.name.endswith(".expected.json")]
    assert others
    for path in others:
        with pytest.raises(InputError):
            convert(path.read_bytes())
