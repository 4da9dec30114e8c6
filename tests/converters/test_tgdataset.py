"""tgdataset: golden records, schema validity, sniffing, malformed input, markdown parsing."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from golden import FIXTURES, check_golden
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from kit import ODD_VALUES, Trickle, paths, replaced

from exporter.converters import get
from exporter.converters.base import ConvertOptions, Item, SourceRef
from exporter.converters.tgdataset import unmarkdown
from exporter.errors import InputError
from exporter.normalize import stamp_provenance
from exporter.schema import load_schema

FMT = "tgdataset"
CASES = sorted(p for p in (FIXTURES / FMT).iterdir() if ".expected." not in p.name)
OTHER_FIXTURES = sorted(
    p for p in FIXTURES.glob("*/*") if p.parent.name != FMT and ".expected." not in p.name and p.is_file()
)
VALIDATOR = Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
SOURCE = SourceRef(display="x", sha256="0" * 64, size=0)
CHANNEL = b'{"1234567890": {"username": "examplechannel", "text_messages": {"1": {"message": "m", "date": 1.0}}}}'


def convert(data: bytes, stream: io.RawIOBase | None = None) -> list[Item]:
    return list(get(FMT).iter_items(stream or io.BytesIO(data), SOURCE, ConvertOptions()))


def stamped(item: Item) -> dict:
    record = dict(item.record)
    stamp_provenance(record, FMT, "x", "0" * 64, item.locator, "0" * 16)
    return record


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_golden(path: Path) -> None:
    check_golden(FMT, path)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_good_records_are_schema_valid(path: Path) -> None:
    for item in convert(path.read_bytes()):
        if item.record is not None and not item.problems and not item.skip_reason:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(stamped(item))]
            assert not errors, f"{path.name} {item.locator}: {errors}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_chunked_reads_give_the_same_items(path: Path) -> None:
    data = path.read_bytes()
    whole = [(i.locator, i.record, i.problems, i.skip_reason) for i in convert(data)]
    assert [(i.locator, i.record, i.problems, i.skip_reason) for i in convert(b"", Trickle(data))] == whole


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_sniff_accepts_own_fixtures(path: Path) -> None:
    assert get(FMT).sniff(path.read_bytes()[: 1 << 16], path.name) >= 0.5


@pytest.mark.parametrize("path", OTHER_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sniff_rejects_other_formats(path: Path) -> None:
    assert get(FMT).sniff(path.read_bytes()[: 1 << 16], path.name) == 0.0


def test_sniff_rejects_tdesktop_export() -> None:
    head = b'{\n "name": "Example Channel",\n "type": "public_channel",\n "id": 1234567890,\n "messages": [\n'
    assert get(FMT).sniff(head, "result.json") == 0.0


def test_ids_above_2_53_stay_exact() -> None:
    records = [i.record for i in convert((FIXTURES / FMT / "float-dates-string-keys.json").read_bytes())]
    assert 9007199254740993 in [r["post_id"] for r in records]


def test_duplicate_is_counted_as_skip_not_dropped_silently() -> None:
    items = convert((FIXTURES / FMT / "text-and-media-duplicate.json").read_bytes())
    assert [i.skip_reason for i in items] == [None, "duplicate of text_messages entry", None]
    assert items[1].raw["title"] == "Example Report.pdf"  # the raw media entry travels with the skip


@pytest.mark.parametrize(
    ("markdown", "text", "spans"),
    [
        ("plain", "plain", []),
        ("**a** b", "a b", [("bold", 0, 1)]),
        ("__init__ stays a name", "init stays a name", [("italic", 0, 4)]),  # Telethon's own ambiguity
        ("****", "****", []),
        ("x ** y", "x ** y", []),
        ("[a](https://e.org) **b**", "a b", [("text_link", 0, 1), ("bold", 2, 1)]),
        ("**[a](https://e.org) c**", "a c", [("bold", 0, 3), ("text_link", 0, 1)]),
        ("\U0001f600 **é**", "\U0001f600 é", [("bold", 2, 1)]),
    ],
)
def test_unmarkdown(markdown: str, text: str, spans: list) -> None:
    got_text, entities = unmarkdown(markdown)
    assert got_text == text
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == spans


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"\x00\x01garbage", b"[1, 2]", b'"a string"', b"{}", b'{"name": "x", "type": "y", "id": 1}'],
    ids=["empty", "blank", "binary", "array", "string", "empty-object", "tdesktop-like"],
)
def test_whole_file_failures_raise_input_error_with_hint(data: bytes) -> None:
    with pytest.raises(InputError) as err:
        convert(data)
    assert err.value.hint


def test_truncated_file_yields_what_it_read_then_fails() -> None:
    data = CHANNEL[:-3] + b', "2": {"message": "cut here'
    stream = get(FMT).iter_items(io.BytesIO(data), SOURCE, ConvertOptions())
    assert next(stream).record["post_id"] == 1
    with pytest.raises(InputError, match="truncated") as err:
        next(stream)
    assert err.value.hint


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_truncation_anywhere_raises_only_input_error(path: Path) -> None:
    data = path.read_bytes()
    for cut in range(1, len(data), max(1, len(data) // 40)):
        with contextlib.suppress(InputError):  # any other exception type fails the test
            convert(data[:cut])


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_odd_value_types_never_raise_anything_but_input_error(path: Path) -> None:
    document = json.loads(path.read_text())
    for where in paths(document):
        for odd in ODD_VALUES:
            with contextlib.suppress(InputError):
                convert(json.dumps(replaced(document, where, odd)).encode())


def _unmarkdown_reference(message):
    """`unmarkdown` trying the markup at every character: its skip-ahead search made to stop at
    each one (what the loop did before it skipped)."""
    import re
    from unittest import mock

    from exporter.converters import tgdataset

    with mock.patch.object(tgdataset, "SPECIAL_RE", re.compile(r"(?s).")):
        return unmarkdown(message)


MARKUP = ["**", "__", "~~", "`", "```", "[", "]", "(", ")", "*", "_", "~", "a", "б", " ", "\n", "👍", "[a](b)"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from([*MARKUP, "tg://user?id=1", "emoji/5"]), max_size=16).map("".join))
def test_unmarkdown_skips_only_characters_no_markup_starts_with(message):
    assert unmarkdown(message) == _unmarkdown_reference(message)
