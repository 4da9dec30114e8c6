"""snscrape-jsonl: golden records, schema validity, sniffing, malformed input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from golden import FIXTURES, check_golden
from jsonschema import Draft202012Validator
from kit import ODD_VALUES, Trickle, paths, replaced

from exporter.converters import get
from exporter.converters.base import ConvertOptions, Item, SourceRef
from exporter.errors import InputError
from exporter.normalize import stamp_provenance
from exporter.schema import load_schema

FMT = "snscrape-jsonl"
CASES = sorted(p for p in (FIXTURES / FMT).iterdir() if ".expected." not in p.name)
OTHER_FIXTURES = sorted(
    p for p in FIXTURES.glob("*/*") if p.parent.name != FMT and ".expected." not in p.name and p.is_file()
)
VALIDATOR = Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
SOURCE = SourceRef(display="x", sha256="0" * 64, size=0)
POST = (
    '{"_type": "snscrape.modules.telegram.TelegramPost", "url": "https://t.me/s/examplechannel/%d", '
    '"date": "2024-01-01T00:00:00+00:00", "content": "c", "outlinks": [], "linkPreview": null}'
)


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


def test_channel_title_applies_only_to_its_own_channel() -> None:
    entity = b'{"_type": "snscrape.modules.telegram.Channel", "username": "otherchannel", "title": "Other"}\n'
    [skipped, post] = convert(entity + POST.encode() % 1)
    assert skipped.skip_reason and post.record["chat_title"] is None


def test_post_id_beyond_int64_is_a_problem() -> None:
    [item] = convert((POST % 1).replace("/1", "/99999999999999999999").encode())
    assert item.record is None and item.problems[0].startswith("url: ")


def test_bom_and_crlf_are_tolerated() -> None:
    data = b"\xef\xbb\xbf" + (POST % 1).encode() + b"\r\n" + (POST % 2).encode() + b"\r\n"
    assert [i.record["post_id"] for i in convert(data)] == [1, 2]


@pytest.mark.parametrize(
    "data",
    [b"", b"\n \n", b"\x00\x01\x02garbage\xff", b"not json\nat all\n", b'{"a": 1}\n{"b": 2}\n', b"[1, 2]\n"],
    ids=["empty", "blank", "binary", "text", "objects-without-type", "array"],
)
def test_whole_file_failures_raise_input_error_with_hint(data: bytes) -> None:
    with pytest.raises(InputError) as err:
        convert(data)
    assert err.value.hint


def test_wrong_shape_telethon_lines() -> None:
    line = b'{"_": "Message", "id": 1, "peer_id": {"_": "PeerChannel", "channel_id": 1}, "date": 0}\n'
    with pytest.raises(InputError, match="no snscrape item"):
        convert(line * 2)


def test_bad_line_is_one_problem_and_reading_continues() -> None:
    first, broken, last = convert("\n".join([POST % 1, "{broken", POST % 3]).encode())
    assert broken.record is None and broken.locator == "line 2" and broken.problems[0].startswith("json: ")
    assert (first.record["post_id"], last.record["post_id"]) == (1, 3)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_truncation_anywhere_raises_only_input_error(path: Path) -> None:
    data = path.read_bytes()
    for cut in range(1, len(data), max(1, len(data) // 40)):
        with contextlib.suppress(InputError):  # any other exception type fails the test
            convert(data[:cut])


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_odd_value_types_never_raise_anything_but_input_error(path: Path) -> None:
    for obj in [item.raw for item in convert(path.read_bytes()) if isinstance(item.raw, dict)]:
        for where in paths(obj):
            for odd in ODD_VALUES:
                with contextlib.suppress(InputError):
                    convert(json.dumps(replaced(obj, where, odd)).encode())
